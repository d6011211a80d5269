//! Learning-rate callbacks: `LearningRateScheduler` and `ReduceLROnPlateau`.

use super::monitor::{Mode, Monitor};
use super::{Callback, Logs, TrainParams};
use crate::{Error, Model, Result};
use ferrovision_nn::Optimizer;

fn optimizer<'a>(model: &'a mut Model, who: &str) -> Result<&'a mut (dyn Optimizer + 'static)> {
    model
        .optimizer_mut()
        .ok_or_else(|| Error::config(format!("{who}: the model is not compiled")))
}

type Schedule = Box<dyn FnMut(usize, f64) -> f64 + Send>;

/// Sets the learning rate at the start of each epoch to `schedule(epoch, current_lr)`
/// (epoch from 0), as Keras' `LearningRateScheduler`.
///
/// ```
/// use ferrovision_train::callbacks::LearningRateScheduler;
/// // Halve the rate every 10 epochs.
/// let s = LearningRateScheduler::new(|epoch, lr| if epoch > 0 && epoch % 10 == 0 { lr * 0.5 } else { lr });
/// # let _ = s;
/// ```
pub struct LearningRateScheduler {
    schedule: Schedule,
    verbose: u8,
}

impl LearningRateScheduler {
    /// A scheduler from a closure `(epoch, lr) -> new lr`.
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + Send + 'static) -> Self {
        LearningRateScheduler {
            schedule: Box::new(schedule),
            verbose: 0,
        }
    }

    /// 1 prints the rate set each epoch.
    pub fn verbose(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, model: &mut Model, epoch: usize) -> Result<()> {
        let opt = optimizer(model, "LearningRateScheduler")?;
        let lr = (self.schedule)(epoch, opt.learning_rate());
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::config(format!(
                "LearningRateScheduler: the schedule returned {lr} for epoch {epoch}; a \
                 learning rate must be finite and >= 0"
            )));
        }
        opt.set_learning_rate(lr);
        if self.verbose > 0 {
            println!(
                "Epoch {}: LearningRateScheduler setting learning rate to {lr}.",
                epoch + 1
            );
        }
        Ok(())
    }
}

/// Multiplies the learning rate by `factor` when `monitor` has not improved for `patience`
/// epochs, then waits `cooldown` epochs before counting again, never going below `min_lr`
/// (Keras' `ReduceLROnPlateau`, same defaults: factor 0.1, patience 10, min_delta 1e-4).
pub struct ReduceLROnPlateau {
    monitor: String,
    mode: Mode,
    factor: f64,
    patience: usize,
    min_delta: f64,
    cooldown: usize,
    min_lr: f64,
    verbose: u8,
    op: Option<Monitor>,
    best: Option<f64>,
    wait: usize,
    cooldown_counter: usize,
}

impl ReduceLROnPlateau {
    /// Watches the log key `monitor` (Keras' default is `"val_loss"`).
    pub fn new(monitor: impl Into<String>) -> Self {
        ReduceLROnPlateau {
            monitor: monitor.into(),
            mode: Mode::Auto,
            factor: 0.1,
            patience: 10,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            verbose: 0,
            op: None,
            best: None,
            wait: 0,
            cooldown_counter: 0,
        }
    }

    /// Direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Multiplier of the rate, in (0, 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Epochs without improvement before reducing.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// Smallest change that counts as an improvement.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// Epochs to wait after a reduction before counting again.
    pub fn cooldown(mut self, cooldown: usize) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Lower bound of the rate.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// 1 prints each reduction.
    pub fn verbose(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(&mut self, _model: &mut Model, _params: &TrainParams) -> Result<()> {
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(Error::config(format!(
                "ReduceLROnPlateau: factor must be in (0, 1), got {}",
                self.factor
            )));
        }
        if !(self.min_lr >= 0.0 && self.min_lr.is_finite()) {
            return Err(Error::config(format!(
                "ReduceLROnPlateau: min_lr must be finite and >= 0, got {}",
                self.min_lr
            )));
        }
        self.op = Some(Monitor::new(
            "ReduceLROnPlateau",
            &self.monitor,
            self.mode,
            self.min_delta,
        )?);
        self.best = None;
        self.wait = 0;
        self.cooldown_counter = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        let op = self
            .op
            .ok_or_else(|| Error::config("ReduceLROnPlateau: on_train_begin was not called"))?;
        let Some(current) = logs.get(&self.monitor) else {
            eprintln!(
                "ReduceLROnPlateau: '{}' is not in the logs (available: {})",
                self.monitor,
                logs.iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
            );
            return Ok(());
        };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if op.is_improvement(current, self.best) {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let opt = optimizer(model, "ReduceLROnPlateau")?;
                let old = opt.learning_rate();
                // Keras compares against min_lr rounded to float32 (its variables are f32).
                if old > self.min_lr as f32 as f64 {
                    let new = (old * self.factor).max(self.min_lr);
                    opt.set_learning_rate(new);
                    if self.verbose > 0 {
                        println!(
                            "Epoch {}: ReduceLROnPlateau reducing learning rate to {new}.",
                            epoch + 1
                        );
                    }
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}
