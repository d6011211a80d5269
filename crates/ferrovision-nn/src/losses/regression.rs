//! Regression losses: mean squared error, mean absolute error, Huber.

use super::config::{serialized, BaseConfig, HuberConfig};
use super::util::{align_same_shape, per_sample_mean, sample_weight, weighted_mean};
use super::{Loss, PerSampleLoss};
use crate::{Error, Result};
use ferrovision_tensor::{Reduction, Tensor};
use serde_json::Value;

/// Which element-wise regression loss.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Mse,
    Mae,
    Huber(f32),
}

/// Element losses `[N, ...]` (unreduced) or their plain mean, from the engine's fused ops.
fn elementwise(kind: Kind, name: &str, yt: &Tensor, yp: &Tensor, r: Reduction) -> Result<Tensor> {
    Ok(match kind {
        Kind::Mse => yp.mse_loss(yt, r)?,
        Kind::Mae => yp.l1_loss(yt, r)?,
        Kind::Huber(delta) => {
            if delta.is_nan() || delta <= 0.0 {
                return Err(Error::config(format!(
                    "loss '{name}': delta must be positive, got {delta}"
                )));
            }
            yp.huber_loss(yt, delta, r)?
        }
    })
}

fn call_elementwise(
    kind: Kind,
    name: &str,
    y_true: &Tensor,
    y_pred: &Tensor,
    sw: Option<&Tensor>,
) -> Result<Tensor> {
    let yt = align_same_shape(name, y_true, y_pred)?;
    let w = sample_weight(name, sw, y_pred.shape()[0], y_pred.rank())?;
    match w {
        // Keras means over the last axis, then over the rest: the mean of all elements.
        None if y_pred.numel() > 0 => elementwise(kind, name, &yt, y_pred, Reduction::Mean),
        w => weighted_mean(
            &elementwise(kind, name, &yt, y_pred, Reduction::None)?,
            w.as_ref(),
        ),
    }
}

fn per_sample_elementwise(
    kind: Kind,
    name: &str,
    y_true: &Tensor,
    y_pred: &Tensor,
) -> Result<Tensor> {
    let yt = align_same_shape(name, y_true, y_pred)?;
    per_sample_mean(&elementwise(kind, name, &yt, y_pred, Reduction::None)?)
}

/// Keras `MeanSquaredError`: `mean((y_pred - y_true)²)`; targets and predictions share a shape
/// (targets `[N]` against predictions `[N, 1]` are aligned).
#[derive(Debug, Clone)]
pub struct MeanSquaredError {
    name: String,
}

impl Default for MeanSquaredError {
    fn default() -> Self {
        MeanSquaredError {
            name: "mean_squared_error".into(),
        }
    }
}

impl MeanSquaredError {
    /// The loss, named `mean_squared_error`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
}

impl Loss for MeanSquaredError {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        call_elementwise(Kind::Mse, &self.name, y_true, y_pred, sw)
    }
    fn config(&self) -> Value {
        serialized("MeanSquaredError", &BaseConfig::new(&self.name))
    }
}

impl PerSampleLoss for MeanSquaredError {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        per_sample_elementwise(Kind::Mse, &self.name, y_true, y_pred)
    }
}

/// Keras `MeanAbsoluteError`: `mean(|y_pred - y_true|)` (gradient 0 where they are equal).
#[derive(Debug, Clone)]
pub struct MeanAbsoluteError {
    name: String,
}

impl Default for MeanAbsoluteError {
    fn default() -> Self {
        MeanAbsoluteError {
            name: "mean_absolute_error".into(),
        }
    }
}

impl MeanAbsoluteError {
    /// The loss, named `mean_absolute_error`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
}

impl Loss for MeanAbsoluteError {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        call_elementwise(Kind::Mae, &self.name, y_true, y_pred, sw)
    }
    fn config(&self) -> Value {
        serialized("MeanAbsoluteError", &BaseConfig::new(&self.name))
    }
}

impl PerSampleLoss for MeanAbsoluteError {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        per_sample_elementwise(Kind::Mae, &self.name, y_true, y_pred)
    }
}

/// Keras `Huber(delta)`: `0.5·e²` where `|e| <= delta`, else `delta·|e| − 0.5·delta²`, with
/// `e = y_pred − y_true`, averaged. `delta` defaults to 1 and must be positive (checked when
/// the loss is called or restored).
#[derive(Debug, Clone)]
pub struct Huber {
    name: String,
    delta: f32,
}

impl Default for Huber {
    fn default() -> Self {
        Huber {
            name: "huber_loss".into(),
            delta: 1.0,
        }
    }
}

impl Huber {
    /// Huber loss with this `delta`, named `huber_loss`.
    pub fn new(delta: f32) -> Self {
        Huber {
            delta,
            ..Self::default()
        }
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The transition point between the quadratic and linear parts.
    pub fn delta(&self) -> f32 {
        self.delta
    }
}

impl Loss for Huber {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        call_elementwise(Kind::Huber(self.delta), &self.name, y_true, y_pred, sw)
    }
    fn config(&self) -> Value {
        serialized(
            "Huber",
            &HuberConfig {
                base: BaseConfig::new(&self.name),
                delta: self.delta,
            },
        )
    }
}

impl PerSampleLoss for Huber {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        per_sample_elementwise(Kind::Huber(self.delta), &self.name, y_true, y_pred)
    }
}
