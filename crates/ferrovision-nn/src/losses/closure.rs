//! Custom losses from closures.

use super::util::{check_pred, sample_weight, weighted_mean};
use super::{Loss, PerSampleLoss};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use std::sync::Arc;

type LossFn = dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync;

/// A loss from a closure `|y_true, y_pred| -> values`, differentiable through whatever tensor
/// ops it uses.
///
/// The closure returns per-sample values (`[N]` or `[N, ...]`, reduced like the built-in
/// losses: `sum(w·l) / numel(l)`) or an already reduced scalar. A scalar cannot be weighted
/// per sample: with `sample_weight` it is scaled by the mean weight (what Keras does when a
/// loss returns a scalar). Closures have no config, so models using one cannot be restored from
/// a saved config without rebuilding the loss in code.
///
/// ```
/// use ferrovision_nn::losses::FnLoss;
/// use ferrovision_nn::Loss;
/// use ferrovision_nn::tensor::Tensor;
/// let l1 = FnLoss::new("l1", |t: &Tensor, p: &Tensor| Ok(p.sub(t)?.abs()?.mean(&[1], false)?));
/// let t = Tensor::zeros(&[2, 3]);
/// let p = Tensor::ones(&[2, 3]);
/// assert_eq!(l1.call(&t, &p, None)?.item()?, 1.0);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
#[derive(Clone)]
pub struct FnLoss {
    name: String,
    f: Arc<LossFn>,
}

impl std::fmt::Debug for FnLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnLoss").field("name", &self.name).finish()
    }
}

impl FnLoss {
    /// A loss named `name` computed by `f(y_true, y_pred)`.
    pub fn new(
        name: &str,
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        FnLoss {
            name: name.into(),
            f: Arc::new(f),
        }
    }

    fn values(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        check_pred(&self.name, y_pred)?;
        let v = (self.f)(y_true, y_pred)?;
        let n = y_pred.shape()[0];
        if v.rank() > 0 && v.shape()[0] != n {
            return Err(Error::config(format!(
                "loss '{}': the closure returned shape {:?}; expected a scalar or per-sample \
                 values [{n}, ...] (y_pred has shape {:?})",
                self.name,
                v.shape(),
                y_pred.shape()
            )));
        }
        Ok(v)
    }
}

impl Loss for FnLoss {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        let v = self.values(y_true, y_pred)?;
        let n = y_pred.shape()[0];
        if v.rank() == 0 {
            return match sample_weight(&self.name, sw, n, 1)? {
                Some(w) if n > 0 => Ok(v.mul(&w.mean_all()?)?),
                _ => Ok(v),
            };
        }
        let w = sample_weight(&self.name, sw, n, v.rank())?;
        weighted_mean(&v, w.as_ref())
    }
}

impl PerSampleLoss for FnLoss {
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let v = self.values(y_true, y_pred)?;
        if v.rank() == 0 {
            // One value for the batch: every sample gets it.
            let n = y_pred.shape()[0];
            return Ok(v.reshape(&[1])?.expand(&[n])?.contiguous()?);
        }
        super::util::per_sample_mean(&v)
    }
}
