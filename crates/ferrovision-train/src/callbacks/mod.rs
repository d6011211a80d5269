//! Callbacks: hooks the training loop calls at train/epoch/batch begin and end.
//!
//! Keras' callbacks with Keras semantics: [`ProgbarLogger`], [`EarlyStopping`],
//! [`ModelCheckpoint`], [`LearningRateScheduler`], [`ReduceLROnPlateau`], [`CSVLogger`],
//! [`TerminateOnNaN`], [`LambdaCallback`] and [`TensorBoard`] (real event files, also writable
//! directly through [`TensorBoardWriter`]).
//!
//! `fit` takes its callbacks by value. To read a callback's state afterwards (the epoch
//! `EarlyStopping` stopped at, the files `ModelCheckpoint` wrote), pass an
//! `Arc<Mutex<C>>` clone: it is a callback too.

mod checkpoint;
mod csv_logger;
mod early_stopping;
mod lambda;
mod lr;
mod monitor;
mod progbar;
mod pyfmt;
mod tensorboard;
mod terminate;

pub use checkpoint::{ModelCheckpoint, SaveFreq};
pub use csv_logger::{history_csv, CSVLogger};
pub use early_stopping::EarlyStopping;
pub use lambda::LambdaCallback;
pub use lr::{LearningRateScheduler, ReduceLROnPlateau};
pub use monitor::Mode;
pub use progbar::{format_logs, ProgbarLogger};
pub use pyfmt::{format_template, py_float_repr};
pub use tensorboard::{Histogram, TensorBoard, TensorBoardWriter, UpdateFreq, WriterOptions};
pub use terminate::TerminateOnNaN;

use crate::{Model, Result};
use std::sync::{Arc, Mutex};

/// Values logged by the training loop: `loss`, metrics, `val_*`, `lr`, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logs(Vec<(String, f64)>);

impl Logs {
    /// Empty logs.
    pub fn new() -> Self {
        Logs(Vec::new())
    }

    /// Sets `key` (replacing an existing value, keeping its position).
    pub fn insert(&mut self, key: impl Into<String>, value: f64) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// All entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// True when nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `fit` was asked to do, passed to `on_train_begin`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    /// Last epoch (exclusive), counting from 0.
    pub epochs: usize,
    /// First epoch (resuming).
    pub initial_epoch: usize,
    /// Batches per epoch, when known.
    pub steps: Option<usize>,
    /// 0 quiet, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
}

/// A training hook. Every method has an empty default. Callbacks may change the model: save
/// it, set its weights, change the optimizer's learning rate, or set `model.stop_training`.
#[allow(unused_variables)]
pub trait Callback: Send {
    fn on_train_begin(&mut self, model: &mut Model, params: &TrainParams) -> Result<()> {
        Ok(())
    }
    fn on_train_end(&mut self, model: &mut Model, logs: &Logs) -> Result<()> {
        Ok(())
    }
    fn on_epoch_begin(&mut self, model: &mut Model, epoch: usize) -> Result<()> {
        Ok(())
    }
    /// `logs` holds the epoch's training and validation values.
    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        Ok(())
    }
    fn on_batch_begin(&mut self, model: &mut Model, batch: usize) -> Result<()> {
        Ok(())
    }
    /// `logs` holds the running means of loss and metrics over the epoch so far.
    fn on_batch_end(&mut self, model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        Ok(())
    }
}

/// A shared callback: lets the caller keep a handle and read the callback's state after `fit`.
impl<C: Callback + ?Sized> Callback for Arc<Mutex<C>> {
    fn on_train_begin(&mut self, model: &mut Model, params: &TrainParams) -> Result<()> {
        lock(self).on_train_begin(model, params)
    }
    fn on_train_end(&mut self, model: &mut Model, logs: &Logs) -> Result<()> {
        lock(self).on_train_end(model, logs)
    }
    fn on_epoch_begin(&mut self, model: &mut Model, epoch: usize) -> Result<()> {
        lock(self).on_epoch_begin(model, epoch)
    }
    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        lock(self).on_epoch_end(model, epoch, logs)
    }
    fn on_batch_begin(&mut self, model: &mut Model, batch: usize) -> Result<()> {
        lock(self).on_batch_begin(model, batch)
    }
    fn on_batch_end(&mut self, model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        lock(self).on_batch_end(model, batch, logs)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the callback's state
/// is still the best we have, so keep going.
fn lock<C: ?Sized>(m: &Mutex<C>) -> std::sync::MutexGuard<'_, C> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
