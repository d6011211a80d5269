//! Kullback-Leibler divergence.

use super::config::{serialized, BaseConfig};
use super::util::{
    check_pred, float_targets, per_sample_mean, sample_weight, shape_error, weighted_mean, EPS,
};
use super::{Loss, PerSampleLoss};
use crate::Result;
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// Keras `KLDivergence`: `Σ_c y·log(y / p)` over the class axis (axis 1, channels-first) with
/// both `y` and `p` clipped to `[1e-7, 1]`, averaged over samples and positions.
#[derive(Debug, Clone)]
pub struct KLDivergence {
    name: String,
}

impl Default for KLDivergence {
    fn default() -> Self {
        KLDivergence {
            name: "kl_divergence".into(),
        }
    }
}

impl KLDivergence {
    /// The loss, named `kl_divergence`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the loss.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Per-position divergences `[N, d...]`.
    fn positions(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        check_pred(&self.name, y_pred)?;
        if y_true.shape() != y_pred.shape() || y_pred.rank() < 2 {
            return Err(shape_error(
                &self.name,
                y_true.shape(),
                y_pred.shape(),
                "both must be distributions of the same shape [N, C] or [N, C, d1, ...]",
            ));
        }
        let yt = float_targets(y_true)?.clamp(Some(EPS), Some(1.0))?;
        let yp = y_pred.clamp(Some(EPS), Some(1.0))?;
        Ok(yt.mul(&yt.div(&yp)?.log()?)?.sum(&[1], false)?)
    }
}

impl Loss for KLDivergence {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        let l = self.positions(y_true, y_pred)?;
        let w = sample_weight(&self.name, sw, y_pred.shape()[0], l.rank())?;
        weighted_mean(&l, w.as_ref())
    }

    fn config(&self) -> Value {
        serialized("KLDivergence", &BaseConfig::new(&self.name))
    }
}

impl PerSampleLoss for KLDivergence {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        per_sample_mean(&self.positions(y_true, y_pred)?)
    }
}
