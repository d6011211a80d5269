//! Progress output of `fit` (Keras `ProgbarLogger`).

use super::{Callback, Logs, TrainParams};
use crate::{Model, Result};

/// Prints training progress: `verbose` 0 = nothing, 1 = progress bar, 2 = one line per epoch.
pub struct ProgbarLogger {
    verbose: u8,
    epochs: usize,
}

impl ProgbarLogger {
    /// A logger for this verbosity.
    pub fn new(verbose: u8) -> Self {
        ProgbarLogger { verbose, epochs: 0 }
    }
}

/// `loss: 0.1234 - accuracy: 0.9876` (Keras' log format).
pub fn format_logs(logs: &Logs) -> String {
    logs.iter()
        .map(|(k, v)| format!("{k}: {v:.4}"))
        .collect::<Vec<_>>()
        .join(" - ")
}

impl Callback for ProgbarLogger {
    fn on_train_begin(&mut self, _model: &mut Model, params: &TrainParams) -> Result<()> {
        self.epochs = params.epochs;
        Ok(())
    }

    fn on_epoch_end(&mut self, _model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        if self.verbose > 0 {
            println!(
                "Epoch {}/{} - {}",
                epoch + 1,
                self.epochs,
                format_logs(logs)
            );
        }
        Ok(())
    }
}
