//! Adagrad (Keras `Adagrad`).

use super::base::{OptimizerBase, Rule, StepCtx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras `Adagrad`: `acc += g^2; w -= lr * g / sqrt(acc + epsilon)`. Defaults: `lr = 0.001`,
/// `initial_accumulator_value = 0.1`, `epsilon = 1e-7`.
pub struct Adagrad {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: AdagradRule,
}

/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdagradRule {
    #[serde(deserialize_with = "super::config::num")]
    initial_accumulator_value: f64,
    #[serde(deserialize_with = "super::config::num")]
    epsilon: f64,
}

impl Adagrad {
    /// Adagrad with Keras defaults.
    pub fn new() -> Self {
        Adagrad {
            base: OptimizerBase::new("adagrad", 0.001),
            rule: AdagradRule {
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            },
        }
    }

    /// Starting value of the squared-gradient accumulator.
    pub fn initial_accumulator_value(mut self, v: f64) -> Self {
        self.rule.initial_accumulator_value = v;
        self
    }

    /// Added to the accumulator inside the square root.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.rule.epsilon = epsilon;
        self
    }
}

optimizer_common!(Adagrad, AdagradRule);

impl Rule for AdagradRule {
    const CLASS: &'static str = "Adagrad";

    fn slot_names(&self) -> &'static [&'static str] {
        &["accumulator"]
    }

    fn slot_init(&self, _slot: usize) -> f32 {
        self.initial_accumulator_value as f32
    }

    fn validate(&self, _: &OptimizerBase) -> Result<()> {
        let ok = |v: f64| v >= 0.0 && v.is_finite();
        if !(ok(self.initial_accumulator_value) && ok(self.epsilon)) {
            return Err(Error::config(format!(
                "Adagrad: 'initial_accumulator_value' and 'epsilon' must be finite and >= 0, got {} and {}",
                self.initial_accumulator_value, self.epsilon
            )));
        }
        Ok(())
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        let [acc] = slots else { return false };
        let (lr, eps) = (c.lr, self.epsilon as f32);
        for ((w, &g), a) in w.iter_mut().zip(g).zip(acc.iter_mut()) {
            let g = c.g(g);
            *a += g * g;
            *w = c.w(*w) - (lr * g) / (*a + eps).sqrt();
        }
        true
    }
}
