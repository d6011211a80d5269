//! Optimizers (Keras defaults), gradient clipping and learning-rate schedules.
//!
//! Every optimizer follows Keras 3's update formulas and defaults (checked against Keras with
//! the fixtures of `reference/make_nn_optim_fixtures.py`) and shares Keras' common options:
//! learning rate as a number or a [`LearningRateSchedule`], `clipnorm` (per weight),
//! `clipvalue`, `global_clipnorm`, decoupled `weight_decay` (`w -= lr * wd * w` before the
//! update, for every optimizer) and the step counter `iterations`. Two additions: a coupled
//! (L2, PyTorch-style) `coupled_weight_decay` added to the gradient, and a per-weight
//! learning-rate multiplier ([`crate::Param::set_lr_multiplier`]) that scales the scheduled
//! learning rate (and with it the decoupled decay) for that weight.
//!
//! ```
//! use ferrovision_nn::optim::{Adam, LearningRateSchedule, Sgd};
//! let sgd = Sgd::new().lr(0.1).momentum(0.9).nesterov(true).clipnorm(1.0);
//! let adam = Adam::new().lr(LearningRateSchedule::cosine_decay(1e-3, 10_000.0, 0.0));
//! ```
//!
//! Updates run in place on the weights' f32 data, one fused loop per weight (clipping, weight
//! decay and the rule together); the slot buffers are allocated on a weight's first update.
//! Weights without a gradient are skipped (their slots are not created or touched).

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

    /// Replaces the learning rate by a schedule (evaluated at the step count, so a schedule set
    /// before training starts at its step 0). Optimizers outside this crate may not support
    /// it (the default is an error).
    fn set_schedule(&mut self, schedule: LearningRateSchedule) -> Result<()> {
        let _ = schedule;
        Err(crate::Error::config(
            "this optimizer does not take a learning-rate schedule",
        ))
    }

    /// Number of steps taken.
    fn iterations(&self) -> u64;

    /// The optimizer's slots, named `<weight name>/<slot>` (e.g. `dense/kernel/momentum`).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores [`Optimizer::state`] and the step count (resuming a checkpoint).
    fn load_state(&mut self, iterations: u64, state: &[(String, Tensor)]) -> Result<()>;

    /// Name and hyper-parameters as JSON (saved with the model).
    fn config(&self) -> Value;
}

/// Builder methods, config loading and the [`Optimizer`] impl every optimizer shares.
macro_rules! optimizer_common {
    ($ty:ident, $rule:ty) => {
        impl $ty {
            /// Sets the learning rate: a number or a [`LearningRateSchedule`].
            pub fn lr(mut self, lr: impl Into<$crate::optim::LearningRateSchedule>) -> Self {
                self.base.learning_rate = lr.into();
                self
            }

            /// Decoupled weight decay: `w -= lr * weight_decay * w` before each update.
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.base.weight_decay = Some(weight_decay);
                self
            }

            /// Coupled weight decay (L2), PyTorch's `weight_decay`: `g += weight_decay * w`
            /// after clipping, before the rule (so momentum and adaptive moments see it).
            pub fn coupled_weight_decay(mut self, weight_decay: f64) -> Self {
                self.base.coupled_weight_decay = Some(weight_decay);
                self
            }

            /// Clips each weight's gradient to at most this L2 norm.
            pub fn clipnorm(mut self, clipnorm: f64) -> Self {
                self.base.clipnorm = Some(clipnorm);
                self
            }

            /// Clips gradients element-wise to `[-clipvalue, clipvalue]`.
            pub fn clipvalue(mut self, clipvalue: f64) -> Self {
                self.base.clipvalue = Some(clipvalue);
                self
            }

            /// Scales all gradients together so their global L2 norm is at most this.
            pub fn global_clipnorm(mut self, global_clipnorm: f64) -> Self {
                self.base.global_clipnorm = Some(global_clipnorm);
                self
            }

            /// Weights whose name contains one of these substrings get no weight decay
            /// (e.g. `["bias", "gamma", "beta"]`).
            pub fn exclude_from_weight_decay(mut self, names: &[&str]) -> Self {
                self.base.exclude_from_weight_decay = names.iter().map(|s| s.to_string()).collect();
                self
            }

            /// Renames the optimizer.
            pub fn named(mut self, name: &str) -> Self {
                self.base.name = name.to_string();
                self
            }

            /// The shared options and step counter.
            pub fn base(&self) -> &$crate::optim::OptimizerBase {
                &self.base
            }

            /// Builds the optimizer from the `config` object of its serialised form (ours or
            /// Keras'); absent keys take the Keras defaults.
            pub fn from_config(config: &serde_json::Value) -> $crate::Result<Self> {
                let mut o = Self::new();
                $crate::optim::config::read(&mut o.base, &mut o.rule, config)?;
                o.base.validate()?;
                $crate::optim::base::Rule::validate(&o.rule, &o.base)?;
                Ok(o)
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $crate::optim::Optimizer for $ty {
            fn step(&mut self, params: &[(String, $crate::Param)]) -> $crate::Result<()> {
                self.base.apply(&mut self.rule, params)
            }

            fn learning_rate(&self) -> f64 {
                self.base.learning_rate.value(self.base.iterations)
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.base.learning_rate = $crate::optim::LearningRateSchedule::Constant(lr);
            }

            fn set_schedule(
                &mut self,
                schedule: $crate::optim::LearningRateSchedule,
            ) -> $crate::Result<()> {
                schedule.validate()?;
                self.base.learning_rate = schedule;
                Ok(())
            }

            fn iterations(&self) -> u64 {
                self.base.iterations
            }

            fn state(&self) -> Vec<(String, ferrovision_tensor::Tensor)> {
                self.base.state(&self.rule)
            }

            fn load_state(
                &mut self,
                iterations: u64,
                state: &[(String, ferrovision_tensor::Tensor)],
            ) -> $crate::Result<()> {
                self.base.load_state(&mut self.rule, iterations, state)
            }

            fn config(&self) -> serde_json::Value {
                let m = $crate::optim::config::write(&self.base, &self.rule);
                serde_json::json!({
                    "class_name": <$rule as $crate::optim::base::Rule>::CLASS,
                    "config": m,
                })
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", $crate::optim::Optimizer::config(self))
            }
        }
    };
}

mod adadelta;
mod adagrad;
mod adam;
pub(crate) mod base;
pub(crate) mod config;
mod nadam;
mod registry;
mod rmsprop;
mod schedules;
mod sgd;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use base::OptimizerBase;
pub use nadam::Nadam;
pub use registry::{
    optimizer_by_name, optimizer_from_config, optimizer_registry, register_optimizer,
    OPTIMIZER_NAMES,
};
pub use rmsprop::RmsProp;
pub use schedules::LearningRateSchedule;
pub use sgd::Sgd;
