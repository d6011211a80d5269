//! Stochastic gradient descent with optional (Nesterov) momentum (Keras `SGD`).

use super::base::{OptimizerBase, Rule, StepCtx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras `SGD`: `m = momentum * m - lr * g; w += m` (Nesterov: `w += momentum * m - lr * g`);
/// plain `w -= lr * g` when `momentum` is 0. Defaults: `lr = 0.01`, `momentum = 0`.
pub struct Sgd {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: SgdRule,
}

/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SgdRule {
    #[serde(deserialize_with = "super::config::num")]
    momentum: f64,
    #[serde(deserialize_with = "super::config::flag")]
    nesterov: bool,
}

impl Sgd {
    /// SGD with Keras defaults (`lr = 0.01`, no momentum).
    pub fn new() -> Self {
        Sgd {
            base: OptimizerBase::new("sgd", 0.01),
            rule: SgdRule {
                momentum: 0.0,
                nesterov: false,
            },
        }
    }

    /// Momentum in `[0, 1]` (0 disables it and its slot).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.rule.momentum = momentum;
        self
    }

    /// Nesterov momentum.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.rule.nesterov = nesterov;
        self
    }
}

optimizer_common!(Sgd, SgdRule);

impl Rule for SgdRule {
    const CLASS: &'static str = "SGD";

    fn slot_names(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum"]
        } else {
            &[]
        }
    }

    fn validate(&self, _: &OptimizerBase) -> Result<()> {
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::config(format!(
                "SGD: 'momentum' must be in [0, 1], got {}",
                self.momentum
            )));
        }
        Ok(())
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        let lr = c.lr;
        match slots {
            [] => {
                for (w, &g) in w.iter_mut().zip(g) {
                    *w = c.w(*w) - c.g(g) * lr;
                }
            }
            [m] => {
                let mu = self.momentum as f32;
                if self.nesterov {
                    for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                        let g = c.g(g);
                        *m = *m * mu - g * lr;
                        *w = c.w(*w) + (*m * mu - g * lr);
                    }
                } else {
                    for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                        *m = *m * mu - c.g(g) * lr;
                        *w = c.w(*w) + *m;
                    }
                }
            }
            _ => return false,
        }
        true
    }
}
