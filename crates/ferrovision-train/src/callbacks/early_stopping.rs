//! `EarlyStopping`: stop training when a monitored quantity stops improving.

use super::monitor::{Mode, Monitor};
use super::{Callback, Logs, TrainParams};
use crate::{Model, Result};
use ferrovision_nn::network::NetworkExt;
use ferrovision_tensor::Tensor;

/// Stops `fit` when `monitor` has not improved for `patience` epochs (Keras semantics).
///
/// ```
/// use ferrovision_train::callbacks::{EarlyStopping, Mode};
/// let es = EarlyStopping::new("val_accuracy")
///     .mode(Mode::Max)
///     .patience(3)
///     .min_delta(1e-3)
///     .restore_best_weights(true);
/// # let _ = es;
/// ```
pub struct EarlyStopping {
    monitor: String,
    mode: Mode,
    min_delta: f64,
    patience: usize,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    verbose: u8,
    op: Option<Monitor>,
    wait: usize,
    stopped_epoch: Option<usize>,
    best: Option<f64>,
    best_epoch: Option<usize>,
    best_weights: Option<Vec<Tensor>>,
}

impl EarlyStopping {
    /// Monitors the log key `monitor` (`"val_loss"` is Keras' default), patience 0.
    pub fn new(monitor: impl Into<String>) -> Self {
        EarlyStopping {
            monitor: monitor.into(),
            mode: Mode::Auto,
            min_delta: 0.0,
            patience: 0,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            verbose: 0,
            op: None,
            wait: 0,
            stopped_epoch: None,
            best: None,
            best_epoch: None,
            best_weights: None,
        }
    }

    /// Direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Smallest change that counts as an improvement (its sign is ignored).
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// Epochs without improvement before stopping.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// A value the quantity must beat: epochs that improve on the best so far but not on the
    /// baseline still count towards `patience`.
    pub fn baseline(mut self, baseline: f64) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// At the end of training, restore the weights of the best epoch (if any epoch was
    /// monitored), whether or not training stopped early.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }

    /// Epochs (from 0) to ignore before monitoring starts (warm-up).
    pub fn start_from_epoch(mut self, epoch: usize) -> Self {
        self.start_from_epoch = epoch;
        self
    }

    /// 1 prints when stopping and restoring.
    pub fn verbose(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }

    /// The epoch (from 0) training was stopped at, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best monitored value seen.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epoch (from 0) of the best value (with `restore_best_weights`, the epoch whose
    /// weights are restored).
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, _model: &mut Model, _params: &TrainParams) -> Result<()> {
        self.op = Some(Monitor::new(
            "EarlyStopping",
            &self.monitor,
            self.mode,
            self.min_delta,
        )?);
        self.wait = 0;
        self.stopped_epoch = None;
        self.best = None;
        self.best_epoch = None;
        self.best_weights = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let op = match self.op {
            Some(op) => op,
            None => {
                let op = Monitor::new("EarlyStopping", &self.monitor, self.mode, self.min_delta)?;
                self.op = Some(op);
                op
            }
        };
        let Some(current) = logs.get(&self.monitor) else {
            // Keras warns and carries on; a typo would silently disable the callback, so say it.
            eprintln!(
                "EarlyStopping: '{}' is not in the logs (available: {})",
                self.monitor,
                logs.iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
            );
            return Ok(());
        };
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(model.network().get_weights()?);
            self.best_epoch = Some(epoch);
        }
        self.wait += 1;
        if op.is_improvement(current, self.best) {
            self.best = Some(current);
            self.best_epoch = Some(epoch);
            if self.restore_best_weights {
                self.best_weights = Some(model.network().get_weights()?);
            }
            // Only restart the wait when the baseline is beaten too.
            if self.baseline.is_none() || op.is_improvement(current, self.baseline) {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            model.stop_training = true;
        }
        Ok(())
    }

    fn on_train_end(&mut self, model: &mut Model, _logs: &Logs) -> Result<()> {
        if let (Some(e), true) = (self.stopped_epoch, self.verbose > 0) {
            println!("Epoch {}: early stopping", e + 1);
        }
        if self.restore_best_weights {
            if let Some(w) = self.best_weights.take() {
                if self.verbose > 0 {
                    println!(
                        "Restoring model weights from the end of the best epoch: {}.",
                        self.best_epoch.map_or(0, |e| e + 1)
                    );
                }
                model.network().set_weights(&w)?;
            }
        }
        Ok(())
    }
}
