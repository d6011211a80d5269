//! Stochastic gradient descent with optional (Nesterov) momentum (Keras `SGD`).

use super::base::{OptimizerBase, Rule, StepCtx};
use super::config::Cfg;
use crate::{Error, Result};
use serde_json::{json, Map, Value};

/// Keras `SGD`: `m = momentum * m - lr * g; w += m` (Nesterov: `w += momentum * m - lr * g`);
/// plain `w -= lr * g` when `momentum` is 0. Defaults: `lr = 0.01`, `momentum = 0`.
pub struct Sgd {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: SgdRule,
}

#[derive(Clone, Debug)]
pub(crate) struct SgdRule {
    momentum: f64,
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
    const KEYS: &'static [&'static str] = &["momentum", "nesterov"];

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

    fn apply_config(&mut self, cfg: &Cfg) -> Result<()> {
        self.momentum = cfg.num("momentum", self.momentum)?;
        self.nesterov = cfg.boolean("nesterov", self.nesterov)?;
        Ok(())
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [Vec<f32>]) -> bool {
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

    fn config(&self, m: &mut Map<String, Value>) {
        m.insert("momentum".into(), json!(self.momentum));
        m.insert("nesterov".into(), json!(self.nesterov));
    }
}
