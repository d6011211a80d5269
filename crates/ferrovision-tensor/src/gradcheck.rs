//! Finite-difference gradient checking for any differentiable function of tensors.
//!
//! The check draws a random cotangent `w` of the output's shape, back-propagates it
//! (`backward_with(w)`), and compares each input gradient with central differences of
//! `L(x) = sum(f(x) * w)`, accumulated in f64. Elements are sampled when inputs are large.
//!
//! ```
//! use ferrovision_tensor::{gradcheck::GradCheck, Tensor};
//! let x = Tensor::from_vec(vec![0.3f32, -1.2, 2.0], &[3]).unwrap();
//! GradCheck::default().run(|xs| xs[0].exp(), &[x]).unwrap();
//! ```

use crate::rng::Rng;
use crate::{no_grad, DType, Error, Result, Tensor};

/// Settings of a finite-difference check.
#[derive(Debug, Clone)]
pub struct GradCheck {
    /// Step of the central difference.
    pub eps: f32,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the larger magnitude of the two gradients).
    pub rtol: f64,
    /// At most this many elements are checked per input (spread at random).
    pub max_elements: usize,
    /// Seed of the cotangent and the element sample.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-2,
            atol: 2e-3,
            rtol: 2e-2,
            max_elements: 64,
            seed: 7,
        }
    }
}

impl GradCheck {
    /// Checks the gradients of `f` with respect to every f32 input. Non-f32 inputs (labels,
    /// indices) are passed through unchanged. Returns the largest error seen, or an error
    /// describing the first mismatch.
    pub fn run(&self, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<f64> {
        let mut rng = Rng::new(self.seed);
        let leaves: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                let c = t.copy_data().expect("inputs are CPU tensors");
                if t.dtype() == DType::F32 {
                    c.requires_grad_(true)
                } else {
                    c
                }
            })
            .collect();
        let y = f(&leaves)?;
        if y.dtype() != DType::F32 {
            return Err(Error::invalid(
                "gradcheck",
                "the function must return an f32 tensor",
            ));
        }
        let w: Vec<f32> = (0..y.numel()).map(|_| rng.normal() as f32).collect();
        let w_t = Tensor::from_vec(w.clone(), y.shape())?;
        y.backward_with(&w_t)?;

        let loss = |xs: &[Tensor]| -> Result<f64> {
            let y = no_grad(|| f(xs))?;
            let v = y.to_vec::<f32>()?;
            Ok(v.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum())
        };
        let mut worst = 0.0f64;
        for (idx, leaf) in leaves.iter().enumerate() {
            if leaf.dtype() != DType::F32 {
                continue;
            }
            let analytic = match leaf.grad() {
                Some(g) => g.to_vec::<f32>()?,
                None => vec![0.0; leaf.numel()],
            };
            let base = leaf.to_vec::<f32>()?;
            let n = base.len();
            let picks: Vec<usize> = if n <= self.max_elements {
                (0..n).collect()
            } else {
                (0..self.max_elements)
                    .map(|_| rng.below(n as u64) as usize)
                    .collect()
            };
            for j in picks {
                let eval = |delta: f32| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += delta;
                    let mut xs: Vec<Tensor> = leaves.iter().map(|t| t.detach()).collect();
                    xs[idx] = Tensor::from_vec(v, leaf.shape())?;
                    loss(&xs)
                };
                let numeric = (eval(self.eps)? - eval(-self.eps)?) / (2.0 * self.eps as f64);
                let a = analytic[j] as f64;
                let err = (a - numeric).abs();
                let tol = self.atol + self.rtol * a.abs().max(numeric.abs());
                if err.is_nan() || err > tol {
                    return Err(Error::invalid(
                        "gradcheck",
                        format!(
                            "input {idx} element {j}: analytic {a:.6} vs numeric {numeric:.6} (|diff| {err:.2e} > tol {tol:.2e})"
                        ),
                    ));
                }
                worst = worst.max(err);
            }
        }
        Ok(worst)
    }
}
