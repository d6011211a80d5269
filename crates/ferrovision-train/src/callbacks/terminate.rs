//! `TerminateOnNaN`: stop when the loss becomes NaN or infinite.

use super::{Callback, Logs};
use crate::{Error, Model, Result};

/// Stops `fit` after a batch whose running loss is NaN or infinite (Keras' `TerminateOnNaN`);
/// with `raise_error`, `fit` fails with an error instead.
#[derive(Debug, Default)]
pub struct TerminateOnNaN {
    raise_error: bool,
    stopped_at: Option<usize>,
}

impl TerminateOnNaN {
    /// Stops training quietly (prints one line).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `fit` return an error instead of stopping.
    pub fn raise_error(mut self, on: bool) -> Self {
        self.raise_error = on;
        self
    }

    /// The batch (within its epoch) whose loss was invalid.
    pub fn stopped_at_batch(&self) -> Option<usize> {
        self.stopped_at
    }
}

impl Callback for TerminateOnNaN {
    fn on_batch_end(&mut self, model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        let Some(loss) = logs.get("loss") else {
            return Ok(());
        };
        if !loss.is_finite() {
            self.stopped_at = Some(batch);
            if self.raise_error {
                return Err(Error::config(format!(
                    "NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. \
                     Terminating training."
                )));
            }
            println!("Batch {batch}: Invalid loss, terminating training");
            model.stop_training = true;
        }
        Ok(())
    }
}
