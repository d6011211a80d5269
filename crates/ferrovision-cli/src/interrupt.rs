//! Graceful stop of training on SIGINT (Ctrl-C) and SIGTERM.
//!
//! The signal handlers only set a flag (async-signal-safe, through `signal-hook`); the
//! training loop polls it after every step ([`StopOnInterrupt`]), finishes the step, and the
//! epoch in progress is suspended and saved as `checkpoints/partial.safetensors` (weights,
//! optimizer and random state, the steps done and the epoch's running means and metrics; see
//! [`crate::run_journal`]): `--resume` continues that epoch at the next step and ends exactly
//! where an uninterrupted run ends. A second
//! signal while stopping ends the process at once (exit status 128 + the signal number).

use ferrovision_train::callbacks::{Callback, Logs};
use ferrovision_train::Model;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};

static INSTALL: Once = Once::new();

/// The number of the first signal received (0: none).
fn signal_slot() -> &'static Arc<AtomicUsize> {
    static SLOT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    SLOT.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Installs the SIGINT/SIGTERM handlers (once per process; later calls do nothing). Where
/// handlers cannot be installed, training simply is not stoppable gracefully.
pub fn install() {
    INSTALL.call_once(|| {
        #[cfg(unix)]
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let flag = Arc::new(AtomicBool::new(false));
            // Registered first: on the second signal the flag is already set and this exits.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone());
            let _ = signal_hook::flag::register(sig, flag);
            let _ = signal_hook::flag::register_usize(sig, signal_slot().clone(), sig as usize);
        }
    });
}

/// The signal that asked training to stop (SIGINT 2, SIGTERM 15), if any.
pub fn requested() -> Option<i32> {
    match signal_slot().load(Ordering::Relaxed) {
        0 => None,
        s => Some(s as i32),
    }
}

/// The signal's name for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// The error [`StopOnInterrupt`] ends `fit` with when a stop is requested between epochs.
pub const INTERRUPTED: &str = "training interrupted";

/// Stops `fit` once a stop was requested: after the step in progress it suspends the epoch
/// (`Model::suspend_training`: `fit` returns with the epoch's progress, which the caller
/// checkpoints); before an epoch starts it ends `fit` with an error (nothing to save: the
/// previous epoch was just committed).
pub struct StopOnInterrupt;

impl Callback for StopOnInterrupt {
    fn on_batch_end(
        &mut self,
        model: &mut Model,
        _batch: usize,
        _logs: &Logs,
    ) -> ferrovision_nn::Result<()> {
        if requested().is_some() {
            model.suspend_training = true;
        }
        Ok(())
    }

    fn on_epoch_begin(&mut self, _model: &mut Model, _epoch: usize) -> ferrovision_nn::Result<()> {
        match requested() {
            Some(_) => Err(ferrovision_nn::Error::config(INTERRUPTED)),
            None => Ok(()),
        }
    }
}
