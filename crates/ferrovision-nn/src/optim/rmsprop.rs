//! RMSprop with optional momentum and centering (Keras `RMSprop`).

use super::base::{OptimizerBase, Rule, StepCtx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras `RMSprop`: `v = rho v + (1-rho) g^2`; centered: `a = rho a + (1-rho) g`,
/// `den = v - a^2 + eps`, else `den = v + eps`; `inc = lr g / sqrt(den)`; with momentum
/// `m = momentum m + inc; w -= m`, else `w -= inc`. Defaults: `lr = 0.001`, `rho = 0.9`,
/// `momentum = 0`, `epsilon = 1e-7`, `centered = false`.
pub struct RmsProp {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: RmsPropRule,
}

/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RmsPropRule {
    #[serde(deserialize_with = "super::config::num")]
    rho: f64,
    #[serde(deserialize_with = "super::config::num")]
    momentum: f64,
    #[serde(deserialize_with = "super::config::num")]
    epsilon: f64,
    #[serde(deserialize_with = "super::config::flag")]
    centered: bool,
}

impl RmsProp {
    /// RMSprop with Keras defaults.
    pub fn new() -> Self {
        RmsProp {
            base: OptimizerBase::new("rmsprop", 0.001),
            rule: RmsPropRule {
                rho: 0.9,
                momentum: 0.0,
                epsilon: 1e-7,
                centered: false,
            },
        }
    }

    /// Decay of the squared-gradient average.
    pub fn rho(mut self, rho: f64) -> Self {
        self.rule.rho = rho;
        self
    }

    /// Momentum (0 disables it and its slot).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.rule.momentum = momentum;
        self
    }

    /// Added to the denominator inside the square root.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.rule.epsilon = epsilon;
        self
    }

    /// Normalises by the variance instead of the second moment.
    pub fn centered(mut self, centered: bool) -> Self {
        self.rule.centered = centered;
        self
    }
}

optimizer_common!(RmsProp, RmsPropRule);

impl Rule for RmsPropRule {
    const CLASS: &'static str = "RMSprop";

    fn slot_names(&self) -> &'static [&'static str] {
        match (self.momentum > 0.0, self.centered) {
            (false, false) => &["velocity"],
            (true, false) => &["velocity", "momentum"],
            (false, true) => &["velocity", "average_gradient"],
            (true, true) => &["velocity", "momentum", "average_gradient"],
        }
    }

    fn validate(&self, _: &OptimizerBase) -> Result<()> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !(unit(self.rho)
            && unit(self.momentum)
            && self.epsilon >= 0.0
            && self.epsilon.is_finite())
        {
            return Err(Error::config(format!(
                "RMSprop: 'rho' and 'momentum' must be in [0, 1] and 'epsilon' finite and >= 0, got {}, {} and {}",
                self.rho, self.momentum, self.epsilon
            )));
        }
        Ok(())
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        let (lr, rho, eps, mu) = (
            c.lr,
            self.rho as f32,
            self.epsilon as f32,
            self.momentum as f32,
        );
        let one_m_rho = 1.0 - rho;
        match slots {
            [v] => {
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    let g = c.g(g);
                    *v = rho * *v + one_m_rho * (g * g);
                    *w = c.w(*w) - (lr * g) / (*v + eps).sqrt();
                }
            }
            [v, m] if !self.centered => {
                for (((w, &g), v), m) in w.iter_mut().zip(g).zip(v.iter_mut()).zip(m.iter_mut()) {
                    let g = c.g(g);
                    *v = rho * *v + one_m_rho * (g * g);
                    *m = mu * *m + (lr * g) / (*v + eps).sqrt();
                    *w = c.w(*w) - *m;
                }
            }
            [v, a] => {
                for (((w, &g), v), a) in w.iter_mut().zip(g).zip(v.iter_mut()).zip(a.iter_mut()) {
                    let g = c.g(g);
                    *v = rho * *v + one_m_rho * (g * g);
                    *a = rho * *a + one_m_rho * g;
                    *w = c.w(*w) - (lr * g) / ((*v - *a * *a) + eps).sqrt();
                }
            }
            [v, m, a] => {
                for ((((w, &g), v), m), a) in w
                    .iter_mut()
                    .zip(g)
                    .zip(v.iter_mut())
                    .zip(m.iter_mut())
                    .zip(a.iter_mut())
                {
                    let g = c.g(g);
                    *v = rho * *v + one_m_rho * (g * g);
                    *a = rho * *a + one_m_rho * g;
                    *m = mu * *m + (lr * g) / ((*v - *a * *a) + eps).sqrt();
                    *w = c.w(*w) - *m;
                }
            }
            _ => return false,
        }
        true
    }
}
