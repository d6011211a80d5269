//! Adam with optional AMSGrad (Keras `Adam`) and AdamW (Adam with decoupled weight decay on by
//! default, Keras `AdamW`).

use super::base::{OptimizerBase, Rule, StepCtx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras `Adam`: `m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2)`;
/// `w -= alpha m / (sqrt(v) + eps)` with the bias corrections folded into
/// `alpha = lr sqrt(1 - b2^t) / (1 - b1^t)` (so epsilon is Keras' "epsilon hat"). AMSGrad uses
/// the running maximum of `v`. Defaults: `lr = 0.001`, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-7`.
pub struct Adam {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: AdamRule<false>,
}

/// Keras `AdamW`: [`Adam`] with decoupled weight decay `w -= lr * weight_decay * w` applied
/// before each update; `weight_decay` defaults to 0.004 and must be set.
pub struct AdamW {
    pub(crate) base: OptimizerBase,
    pub(crate) rule: AdamRule<true>,
}

/// The Adam update; `W` only picks the class name (AdamW's decay lives in the shared base).
/// Serialised as the optimizer-specific config keys (Keras names).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AdamRule<const W: bool> {
    #[serde(deserialize_with = "super::config::num")]
    beta_1: f64,
    #[serde(deserialize_with = "super::config::num")]
    beta_2: f64,
    #[serde(deserialize_with = "super::config::num")]
    epsilon: f64,
    #[serde(deserialize_with = "super::config::flag")]
    amsgrad: bool,
    /// `lr sqrt(1 - b2^t) / (1 - b1^t)` of the current step.
    #[serde(skip)]
    alpha: f32,
}

impl<const W: bool> AdamRule<W> {
    fn keras_defaults() -> Self {
        AdamRule {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            alpha: 0.0,
        }
    }
}

macro_rules! adam_builders {
    ($ty:ident) => {
        impl $ty {
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

            /// Added to `sqrt(v)` (after the bias correction folded into the step size).
            pub fn epsilon(mut self, epsilon: f64) -> Self {
                self.rule.epsilon = epsilon;
                self
            }

            /// AMSGrad: divide by the running maximum of the second moment.
            pub fn amsgrad(mut self, amsgrad: bool) -> Self {
                self.rule.amsgrad = amsgrad;
                self
            }
        }
    };
}

impl Adam {
    /// Adam with Keras defaults.
    pub fn new() -> Self {
        Adam {
            base: OptimizerBase::new("adam", 0.001),
            rule: AdamRule::keras_defaults(),
        }
    }
}

impl AdamW {
    /// AdamW with Keras defaults (`weight_decay = 0.004`).
    pub fn new() -> Self {
        let mut base = OptimizerBase::new("adamw", 0.001);
        base.weight_decay = Some(0.004);
        AdamW {
            base,
            rule: AdamRule::keras_defaults(),
        }
    }
}

adam_builders!(Adam);
adam_builders!(AdamW);
optimizer_common!(Adam, AdamRule<false>);
optimizer_common!(AdamW, AdamRule<true>);

pub(crate) fn check_betas(class: &str, beta_1: f64, beta_2: f64, epsilon: f64) -> Result<()> {
    let beta = |b: f64| (0.0..1.0).contains(&b);
    if !(beta(beta_1) && beta(beta_2) && epsilon >= 0.0 && epsilon.is_finite()) {
        return Err(Error::config(format!(
            "{class}: 'beta_1' and 'beta_2' must be in [0, 1) and 'epsilon' finite and >= 0, \
             got {beta_1}, {beta_2} and {epsilon}"
        )));
    }
    Ok(())
}

impl<const W: bool> Rule for AdamRule<W> {
    const CLASS: &'static str = if W { "AdamW" } else { "Adam" };

    fn slot_names(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["momentum", "velocity", "velocity_hat"]
        } else {
            &["momentum", "velocity"]
        }
    }

    fn validate(&self, base: &OptimizerBase) -> Result<()> {
        if W && base.weight_decay.is_none() {
            return Err(Error::config(
                "AdamW: 'weight_decay' must be a number (Keras default 0.004), got null",
            ));
        }
        check_betas(Self::CLASS, self.beta_1, self.beta_2, self.epsilon)
    }

    fn prepare(&mut self, lr: f64, step: u64) {
        let t = step as f64;
        // Keras casts the betas to the variable dtype through a float32 constant, so its bias
        // corrections use float32-rounded betas (even for float64 weights); do the same.
        let b1p = (self.beta_1 as f32 as f64).powf(t);
        let b2p = (self.beta_2 as f32 as f64).powf(t);
        self.alpha = (lr * (1.0 - b2p).sqrt() / (1.0 - b1p)) as f32;
    }

    #[inline(always)]
    fn update(&self, c: &StepCtx, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) -> bool {
        // Multiplying by the weight's learning-rate multiplier (1: exact no-op).
        let (alpha, eps) = (self.alpha * c.lr_scale, self.epsilon as f32);
        let (one_m_b1, one_m_b2) = ((1.0 - self.beta_1) as f32, (1.0 - self.beta_2) as f32);
        match slots {
            [m, v] => {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = c.g(g);
                    *m += (g - *m) * one_m_b1;
                    *v += (g * g - *v) * one_m_b2;
                    *w = c.w(*w) - (*m * alpha) / (v.sqrt() + eps);
                }
            }
            [m, v, vh] => {
                for ((((w, &g), m), v), vh) in w
                    .iter_mut()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .zip(vh.iter_mut())
                {
                    let g = c.g(g);
                    *m += (g - *m) * one_m_b1;
                    *v += (g * g - *v) * one_m_b2;
                    // Not f32::max, which would hide a NaN moment.
                    if *v > *vh || v.is_nan() {
                        *vh = *v;
                    }
                    *w = c.w(*w) - (*m * alpha) / (vh.sqrt() + eps);
                }
            }
            _ => return false,
        }
        true
    }
}
