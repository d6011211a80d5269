//! Nadam: Adam with Nesterov momentum and Dozat's momentum schedule (Keras `Nadam`).

use super::adam::check_betas;
use super::base::{OptimizerBase, Rule, StepCtx};
use crate::Result;
use serde::{Deserialize, Serialize};

/// Keras `Nadam`: momentum schedule `u_t = b1 (1 - 0.5 * 0.96^t)` with the running product
/// `U_t = u_1 ... u_t`; `m_hat = u_{t+1} m / (1 - U_t u_{t+1}) + (1 - u_t) g / (1 - U_t)`,
/// `v_hat = v / (1 - b2^t)`, `w -= lr m_hat / (sqrt(v_hat) + eps)`. Defaults: `lr = 0.001`,
/// `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-7`.
pub struct Nadam {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: NadamRule,
}

/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NadamRule {
    #[serde(deserialize_with = "super::config::num")]
    beta_1: f64,
    #[serde(deserialize_with = "super::config::num")]
    beta_2: f64,
    #[serde(deserialize_with = "super::config::num")]
    epsilon: f64,
    /// `U_t`, a function of the step count (recomputed on restore).
    #[serde(skip, default = "super::config::one")]
    u_product: f64,
    /// Per-step coefficients of `m`, `g` and `v` (see the type docs).
    #[serde(skip)]
    cm: f32,
    #[serde(skip)]
    cg: f32,
    #[serde(skip, default = "super::config::one_f32")]
    v_div: f32,
}

impl Nadam {
    /// Nadam with Keras defaults.
    pub fn new() -> Self {
        Nadam {
            base: OptimizerBase::new("nadam", 0.001),
            rule: NadamRule {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                u_product: 1.0,
                cm: 0.0,
                cg: 0.0,
                v_div: 1.0,
            },
        }
    }

    /// Decay of the first moment.
    pub fn beta_1(mut self, beta_1: f64) -> Self {
        self.rule.beta_1 = beta_1;
        self
    }

    /// Decay of the second moment.
    pub fn beta_2(mut self, beta_2: f64) -> Self {
        self.rule.beta_2 = beta_2;
        self
    }

    /// Added to `sqrt(v_hat)`.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.rule.epsilon = epsilon;
        self
    }
}

optimizer_common!(Nadam, NadamRule);

/// Keras casts Nadam's constants (`beta_1`, `beta_2`, `0.96`) to the variable dtype through
/// float32 constants inside the update (not in the running product), so the same rounding is
/// applied here to match it closely.
fn f32_rounded(x: f64) -> f64 {
    x as f32 as f64
}

impl NadamRule {
    /// `u_t = b1 (1 - 0.5 * 0.96^t)` as the running product takes it (exact constants).
    fn u(&self, t: u64) -> f64 {
        self.beta_1 * (1.0 - 0.5 * 0.96f64.powf(t as f64))
    }

    /// `u_t` as the update takes it (float32-rounded constants, like Keras).
    fn u_cast(&self, t: u64) -> f64 {
        f32_rounded(self.beta_1) * (1.0 - 0.5 * f32_rounded(0.96).powf(t as f64))
    }
}

impl Rule for NadamRule {
    const CLASS: &'static str = "Nadam";

    fn slot_names(&self) -> &'static [&'static str] {
        &["momentum", "velocity"]
    }

    fn validate(&self, _: &OptimizerBase) -> Result<()> {
        check_betas(Self::CLASS, self.beta_1, self.beta_2, self.epsilon)
    }

    fn prepare(&mut self, _lr: f64, step: u64) {
        self.u_product *= self.u(step);
        let (u_t, u_next) = (self.u_cast(step), self.u_cast(step + 1));
        let u_product_next = self.u_product * u_next;
        self.cm = (u_next / (1.0 - u_product_next)) as f32;
        self.cg = ((1.0 - u_t) / (1.0 - self.u_product)) as f32;
        self.v_div = (1.0 - f32_rounded(self.beta_2).powf(step as f64)) as f32;
    }

    fn reset(&mut self, iterations: u64) {
        // Same product, same order as the steps took it, so a restore is bit-exact.
        self.u_product = 1.0;
        for t in 1..=iterations {
            self.u_product *= self.u(t);
            if self.u_product == 0.0 {
                break; // underflowed (after ~7000 steps); stays 0.
            }
        }
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        let [m, v] = slots else { return false };
        let (lr, eps, cm, cg, v_div) = (c.lr, self.epsilon as f32, self.cm, self.cg, self.v_div);
        let (one_m_b1, one_m_b2) = (
            (1.0 - f32_rounded(self.beta_1)) as f32,
            (1.0 - f32_rounded(self.beta_2)) as f32,
        );
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = c.g(g);
            *m += (g - *m) * one_m_b1;
            *v += (g * g - *v) * one_m_b2;
            let m_hat = cm * *m + cg * g;
            let v_hat = *v / v_div;
            *w = c.w(*w) - (m_hat * lr) / (v_hat.sqrt() + eps);
        }
        true
    }
}
