//! Adadelta (Keras `Adadelta`).

use super::base::{OptimizerBase, Rule, StepCtx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras `Adadelta`: `Eg = rho Eg + (1-rho) g^2; d = -sqrt(Ed + eps) / sqrt(Eg + eps) * g;
/// Ed = rho Ed + (1-rho) d^2; w += lr * d`. Defaults: `lr = 0.001` (Keras' default, which makes
/// Adadelta very slow; the paper's is 1.0), `rho = 0.95`, `epsilon = 1e-7`.
pub struct Adadelta {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: AdadeltaRule,
}

/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdadeltaRule {
    #[serde(deserialize_with = "super::config::num")]
    rho: f64,
    #[serde(deserialize_with = "super::config::num")]
    epsilon: f64,
}

impl Adadelta {
    /// Adadelta with Keras defaults.
    pub fn new() -> Self {
        Adadelta {
            base: OptimizerBase::new("adadelta", 0.001),
            rule: AdadeltaRule {
                rho: 0.95,
                epsilon: 1e-7,
            },
        }
    }

    /// Decay rate of the running averages.
    pub fn rho(mut self, rho: f64) -> Self {
        self.rule.rho = rho;
        self
    }

    /// Added inside both square roots.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.rule.epsilon = epsilon;
        self
    }
}

optimizer_common!(Adadelta, AdadeltaRule);

impl Rule for AdadeltaRule {
    const CLASS: &'static str = "Adadelta";

    fn slot_names(&self) -> &'static [&'static str] {
        &["accumulated_grad", "accumulated_delta_var"]
    }

    fn validate(&self, _: &OptimizerBase) -> Result<()> {
        if !((0.0..=1.0).contains(&self.rho) && self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            return Err(Error::config(format!(
                "Adadelta: 'rho' must be in [0, 1] and 'epsilon' finite and >= 0, got {} and {}",
                self.rho, self.epsilon
            )));
        }
        Ok(())
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        let [ag, ad] = slots else { return false };
        let (lr, rho, eps) = (c.lr, self.rho as f32, self.epsilon as f32);
        let one_m_rho = 1.0 - rho;
        for (((w, &g), ag), ad) in w.iter_mut().zip(g).zip(ag.iter_mut()).zip(ad.iter_mut()) {
            let g = c.g(g);
            *ag = rho * *ag + one_m_rho * (g * g);
            let d = -(((*ad + eps).sqrt() * g) / (*ag + eps).sqrt());
            *ad = rho * *ad + one_m_rho * (d * d);
            *w = c.w(*w) + lr * d;
        }
        true
    }
}
