//! `LambdaCallback`: a callback made of closures.

use super::{Callback, Logs, TrainParams};
use crate::{Model, Result};

type TrainBegin = Box<dyn FnMut(&mut Model, &TrainParams) -> Result<()> + Send>;
type TrainEnd = Box<dyn FnMut(&mut Model, &Logs) -> Result<()> + Send>;
type Begin = Box<dyn FnMut(&mut Model, usize) -> Result<()> + Send>;
type End = Box<dyn FnMut(&mut Model, usize, &Logs) -> Result<()> + Send>;

/// A callback built from closures with the same arguments as the [`Callback`] methods
/// (Keras' `LambdaCallback`, which also hands the closures the model here).
///
/// ```
/// use ferrovision_train::callbacks::LambdaCallback;
/// let cb = LambdaCallback::new().on_epoch_end(|_model, epoch, logs| {
///     println!("epoch {epoch}: loss {:?}", logs.get("loss"));
///     Ok(())
/// });
/// # let _ = cb;
/// ```
#[derive(Default)]
pub struct LambdaCallback {
    train_begin: Option<TrainBegin>,
    train_end: Option<TrainEnd>,
    epoch_begin: Option<Begin>,
    epoch_end: Option<End>,
    batch_begin: Option<Begin>,
    batch_end: Option<End>,
}

impl LambdaCallback {
    /// A callback that does nothing until closures are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called at the start of `fit`.
    pub fn on_train_begin(
        mut self,
        f: impl FnMut(&mut Model, &TrainParams) -> Result<()> + Send + 'static,
    ) -> Self {
        self.train_begin = Some(Box::new(f));
        self
    }

    /// Called at the end of `fit` with the last epoch's logs.
    pub fn on_train_end(
        mut self,
        f: impl FnMut(&mut Model, &Logs) -> Result<()> + Send + 'static,
    ) -> Self {
        self.train_end = Some(Box::new(f));
        self
    }

    /// Called with the epoch index (from 0) before each epoch.
    pub fn on_epoch_begin(
        mut self,
        f: impl FnMut(&mut Model, usize) -> Result<()> + Send + 'static,
    ) -> Self {
        self.epoch_begin = Some(Box::new(f));
        self
    }

    /// Called with the epoch index and the epoch's logs after each epoch.
    pub fn on_epoch_end(
        mut self,
        f: impl FnMut(&mut Model, usize, &Logs) -> Result<()> + Send + 'static,
    ) -> Self {
        self.epoch_end = Some(Box::new(f));
        self
    }

    /// Called with the batch index (within the epoch) before each batch.
    pub fn on_batch_begin(
        mut self,
        f: impl FnMut(&mut Model, usize) -> Result<()> + Send + 'static,
    ) -> Self {
        self.batch_begin = Some(Box::new(f));
        self
    }

    /// Called with the batch index and the running logs after each batch.
    pub fn on_batch_end(
        mut self,
        f: impl FnMut(&mut Model, usize, &Logs) -> Result<()> + Send + 'static,
    ) -> Self {
        self.batch_end = Some(Box::new(f));
        self
    }
}

impl Callback for LambdaCallback {
    fn on_train_begin(&mut self, model: &mut Model, params: &TrainParams) -> Result<()> {
        self.train_begin
            .as_mut()
            .map_or(Ok(()), |f| f(model, params))
    }
    fn on_train_end(&mut self, model: &mut Model, logs: &Logs) -> Result<()> {
        self.train_end.as_mut().map_or(Ok(()), |f| f(model, logs))
    }
    fn on_epoch_begin(&mut self, model: &mut Model, epoch: usize) -> Result<()> {
        self.epoch_begin
            .as_mut()
            .map_or(Ok(()), |f| f(model, epoch))
    }
    fn on_epoch_end(&mut self, model: &mut Model, epoch: usize, logs: &Logs) -> Result<()> {
        self.epoch_end
            .as_mut()
            .map_or(Ok(()), |f| f(model, epoch, logs))
    }
    fn on_batch_begin(&mut self, model: &mut Model, batch: usize) -> Result<()> {
        self.batch_begin
            .as_mut()
            .map_or(Ok(()), |f| f(model, batch))
    }
    fn on_batch_end(&mut self, model: &mut Model, batch: usize, logs: &Logs) -> Result<()> {
        self.batch_end
            .as_mut()
            .map_or(Ok(()), |f| f(model, batch, logs))
    }
}
