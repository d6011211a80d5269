//! Optimizers (Keras defaults), gradient clipping and learning-rate schedules.

use crate::{Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// Updates weights from their accumulated gradients.
///
/// The training loop calls `step` once per batch with the trainable weights (stable names, same
/// order every step) and clears the gradients afterwards. Per-weight state (momentum, moments)
/// is keyed by the weight's name so checkpoints can save and restore it.
pub trait Optimizer: Send {
    /// Applies one update (clipping, schedule and weight decay included) and counts the step.
    fn step(&mut self, params: &[(String, Param)]) -> Result<()>;

    /// The learning rate the next step uses (after the schedule).
    fn learning_rate(&self) -> f64;

    /// Replaces the learning rate (a schedule is replaced by this constant), as
    /// `ReduceLROnPlateau` and `LearningRateScheduler` do.
    fn set_learning_rate(&mut self, lr: f64);

    /// Number of steps taken.
    fn iterations(&self) -> u64;

    /// The optimizer's slots, named `<weight name>/<slot>` (e.g. `dense/kernel/m`).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores [`Optimizer::state`] and the step count (resuming a checkpoint).
    fn load_state(&mut self, iterations: u64, state: &[(String, Tensor)]) -> Result<()>;

    /// Name and hyper-parameters as JSON (saved with the model).
    fn config(&self) -> Value;
}
