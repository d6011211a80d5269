//! Elementwise unary ops (math functions and activations) and scalar arithmetic.
//!
//! Each op method names its `Op` and runs it on the tensor's backend (`Backend::unary`; the CPU
//! one runs the vectorised kernels of [`crate::kernels::elementwise`]); each backward is one
//! fused pass over the output gradient and the saved input or output. Gradients at kinks
//! follow PyTorch: `relu'(0) = 0`, `abs'(0) = 0`, clamp passes the gradient on its closed range.
//!
//! Not yet behind the backend seam: those backward passes (`zip_map` / `zip_slices`, also used
//! by other gradient rules) still read f32 buffers here, because they take generic closures
//! that a `dyn Backend` method cannot; moving them needs a `unary_backward` keyed by the `Op`.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved as Recorded};
use crate::backend::{
    self,
    cpu::{clamp_bounds, map_unary, sign_f32, SELU_ALPHA, SELU_SCALE},
};
use crate::kernels::elementwise as ew;
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Elements per parallel task of the elementwise kernels.
const PAR_MIN: usize = 1 << 15;

/// Combines two same-shape f32 tensors elementwise into a new tensor (used by backward rules).
/// Prefer [`zip_map`] with a `Copy` function in hot paths.
#[allow(dead_code)]
pub(crate) fn zip_map_f32(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<Tensor> {
    zip_map(a, b, op, &f)
}

/// [`zip_map_f32`] taking the function by value: a `Copy` function item or closure is called
/// directly in the vectorised loop (a `&F` adds a call shim that LLVM may not inline for big
/// bodies such as the GELU derivative).
pub(crate) fn zip_map<F>(a: &Tensor, b: &Tensor, op: &'static str, f: F) -> Result<Tensor>
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    let mut out = pool::take_uninit(a.numel());
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| match super::par_chunk(xs.len(), PAR_MIN) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk).zip(ys.par_chunks(chunk)))
                .for_each(|(o, (x, y))| ew::map2(x, y, o, f)),
            None => ew::map2(xs, ys, &mut out, f),
        })
    })??;
    Ok(Tensor::from_f32(out, a.shape()))
}

/// Which tensor a unary op's backward reads.
#[derive(Clone, Copy)]
enum Saved {
    /// The op's input.
    Input,
    /// The op's output.
    Output,
    /// Nothing (the derivative is a constant).
    Nothing,
}

/// Runs the slice kernel `k(g, s, out)` over two same-shape f32 tensors, in parallel for big
/// inputs.
fn zip_slices(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    k: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    let mut out = pool::take_uninit(a.numel());
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| match super::par_chunk(xs.len(), PAR_MIN) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk).zip(ys.par_chunks(chunk)))
                .for_each(|(o, (x, y))| k(x, y, o)),
            None => k(xs, ys, &mut out),
        })
    })??;
    Ok(Tensor::from_f32(out, a.shape()))
}

impl Tensor {
    /// Runs the elementwise op `op` on this tensor's backend, saving its input or output (or
    /// nothing) for the op's gradient in [`grad`].
    fn unary(&self, op: Op, saved: Saved) -> Result<Tensor> {
        let out = backend::for_device(self.device(), op.name())?.unary(&op, self)?;
        if !is_recorded(&[self]) {
            return Ok(out);
        }
        let saved = match saved {
            Saved::Input => Recorded::tensors(vec![self.detach()]),
            Saved::Output => Recorded::tensors(vec![out.detach()]),
            Saved::Nothing => Recorded::none(),
        };
        Ok(record_rule(out, op, &[self], grad, saved))
    }

    // ----- scalar arithmetic -----

    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(Op::Neg, Saved::Nothing)
    }

    /// `self + c`.
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(Op::AddScalar { c }, Saved::Nothing)
    }

    /// `self - c`.
    pub fn sub_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(Op::SubScalar { c }, Saved::Nothing)
    }

    /// `c - self`.
    pub fn rsub_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(Op::RsubScalar { c }, Saved::Nothing)
    }

    /// `self * c`.
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(Op::MulScalar { c }, Saved::Nothing)
    }

    /// `self / c` (a true division, like PyTorch, not a multiplication by `1/c`).
    pub fn div_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(Op::DivScalar { c }, Saved::Nothing)
    }

    /// `self ^ p`. Like PyTorch, the exponents 2, 3, 0.5, -0.5, -1 and -2 use exact
    /// products, square roots and divisions instead of `powf`; the gradient `p·x^(p-1)` is 0 for
    /// `p = 0`.
    pub fn pow_scalar(&self, p: f32) -> Result<Tensor> {
        self.unary(Op::PowScalar { p }, Saved::Input)
    }

    /// `1 / self`.
    pub fn reciprocal(&self) -> Result<Tensor> {
        self.unary(Op::Reciprocal, Saved::Output)
    }

    /// `self²`.
    pub fn square(&self) -> Result<Tensor> {
        self.unary(Op::Square, Saved::Input)
    }

    /// `√self` (NaN below 0; the gradient at 0 is inf like PyTorch).
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(Op::Sqrt, Saved::Output)
    }

    /// `1 / √self`.
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(Op::Rsqrt, Saved::Output)
    }

    /// `|self|`; the gradient at 0 is 0.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(Op::Abs, Saved::Input)
    }

    /// `-1`, `0` or `1` by the sign of each element (0 for NaN, like PyTorch's CPU kernel); the
    /// gradient is 0.
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(Op::Sign, Saved::Nothing)
    }

    // ----- exponentials, logarithms, trigonometry -----

    /// `e^self` (fast vectorised kernel, ≤ 1 ulp).
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(Op::Exp, Saved::Output)
    }

    /// Natural logarithm (fast vectorised kernel, ≤ 2 ulp).
    pub fn log(&self) -> Result<Tensor> {
        self.unary(Op::Log, Saved::Input)
    }

    /// `ln(1 + self)`, accurate near 0.
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary(Op::Log1p, Saved::Input)
    }

    /// Sine.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(Op::Sin, Saved::Input)
    }

    /// Cosine.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(Op::Cos, Saved::Input)
    }

    /// Hyperbolic tangent (fast vectorised kernel).
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(Op::Tanh, Saved::Output)
    }

    /// Logistic sigmoid `1 / (1 + e^-x)` (fast vectorised kernel).
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(Op::Sigmoid, Saved::Output)
    }

    // ----- activations -----

    /// `max(self, 0)` (NaN stays NaN, like PyTorch); the gradient at 0 is 0.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(Op::Relu, Saved::Output)
    }

    /// `min(max(self, 0), 6)`; gradient on the open range `(0, 6)` like PyTorch.
    pub fn relu6(&self) -> Result<Tensor> {
        self.unary(Op::Relu6, Saved::Input)
    }

    /// `x` for `x > 0`, `slope·x` otherwise.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(Op::LeakyRelu { slope }, Saved::Input)
    }

    /// ELU: `x` for `x > 0`, `alpha·(e^x − 1)` otherwise.
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary(Op::Elu { alpha }, Saved::Input)
    }

    /// SELU: `scale·elu(x, alpha)` with the constants of Klambauer et al. (as PyTorch).
    pub fn selu(&self) -> Result<Tensor> {
        self.unary(Op::Selu, Saved::Input)
    }

    /// GELU, exact form `x·Φ(x)` with Φ the standard normal CDF (fast vectorised erf).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(Op::Gelu, Saved::Input)
    }

    /// GELU, tanh approximation `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(Op::GeluTanh, Saved::Input)
    }

    /// Softplus `ln(1 + e^x)` with β = 1 and PyTorch's threshold 20 (identity above it).
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(Op::Softplus, Saved::Input)
    }

    /// SiLU `x·σ(x)` (also called swish).
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(Op::Silu, Saved::Input)
    }

    /// Alias of [`Tensor::silu`].
    pub fn swish(&self) -> Result<Tensor> {
        self.silu()
    }

    /// Hard sigmoid `relu6(x + 3) / 6` (PyTorch / Keras 3); gradient `1/6` on `(-3, 3)`.
    pub fn hard_sigmoid(&self) -> Result<Tensor> {
        self.unary(Op::HardSigmoid, Saved::Input)
    }

    /// Hard swish `x·relu6(x + 3) / 6`, with PyTorch's gradient (`x/3 + 1/2` on `[-3, 3]`).
    pub fn hard_swish(&self) -> Result<Tensor> {
        self.unary(Op::HardSwish, Saved::Input)
    }

    /// Clamps to `[min, max]` (either bound optional; NaN stays NaN; with `min > max` every
    /// element becomes `max`, like PyTorch). The gradient passes where `min <= x <= max`.
    pub fn clamp(&self, min: Option<f32>, max: Option<f32>) -> Result<Tensor> {
        if min.is_none() && max.is_none() {
            return Err(Error::invalid(
                "clamp",
                "at least one of min and max must be given",
            ));
        }
        if min.is_some_and(f32::is_nan) || max.is_some_and(f32::is_nan) {
            return Err(Error::invalid("clamp", "bounds must not be NaN"));
        }
        self.unary(Op::Clamp { min, max }, Saved::Input)
    }
}

/// The gradient rule of the elementwise unary ops: one fused pass over the output gradient and
/// the saved input or output (see each op for which), or a constant factor for the linear ones.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let name = op.name();
    // Ops with a constant derivative save nothing.
    let linear = |scale: f32| -> Result<Tensor> {
        if scale == 1.0 {
            Ok(g.clone())
        } else {
            map_unary(g, name, move |v| v * scale)
        }
    };
    let gx = match *op {
        Op::Neg | Op::RsubScalar { .. } => linear(-1.0)?,
        Op::AddScalar { .. } | Op::SubScalar { .. } => linear(1.0)?,
        Op::MulScalar { c } => linear(c)?,
        Op::DivScalar { c } => map_unary(g, "div_scalar", move |v| v / c)?,
        Op::Sign => Tensor::zeros(ctx.input_shape(0)),
        _ => saved_grad(op, ctx.saved(0)?, g)?,
    };
    Ok(vec![Some(gx)])
}

/// The gradient of the unary ops that read their saved input or output `s`.
fn saved_grad(op: &Op, s: &Tensor, g: &Tensor) -> Result<Tensor> {
    let name = op.name();
    match *op {
        Op::PowScalar { p } => {
            if p == 0.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |_, _| 0.0))
            } else if p == 1.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |g, _| g))
            } else if p == 2.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |g, x| g * 2.0 * x))
            } else if p == 3.0 {
                zip_slices(g, s, name, |g, s, o| {
                    ew::map2(g, s, o, |g, x| g * 3.0 * (x * x))
                })
            } else {
                zip_slices(g, s, name, move |g, s, o| {
                    ew::map2(g, s, o, move |g: f32, x: f32| g * p * x.powf(p - 1.0))
                })
            }
        }
        Op::Reciprocal => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| -g * y * y)
        }),
        Op::Square => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| 2.0 * x * g)
        }),
        Op::Sqrt => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| g / (2.0 * y))
        }),
        Op::Rsqrt => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| -0.5 * g * (y * y * y))
        }),
        Op::Abs => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| g * sign_f32(x))
        }),
        Op::Exp => zip_slices(g, s, name, |g, y, o| ew::map2(g, y, o, |g, y| g * y)),
        Op::Log => zip_slices(g, s, name, |g, x, o| ew::map2(g, x, o, |g, x| g / x)),
        Op::Log1p => zip_slices(g, s, name, |g, x, o| {
            ew::map2(g, x, o, |g, x| g / (1.0 + x))
        }),
        Op::Sin => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| g * x.cos())
        }),
        Op::Cos => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| -g * x.sin())
        }),
        Op::Tanh => zip_slices(g, s, name, ew::tanh_backward_slice),
        Op::Sigmoid => zip_slices(g, s, name, ew::sigmoid_backward_slice),
        Op::Relu => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| if y > 0.0 { g } else { 0.0 })
        }),
        Op::Relu6 => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| if x > 0.0 && x < 6.0 { g } else { 0.0 })
        }),
        Op::LeakyRelu { slope } => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, move |g, x| if x > 0.0 { g } else { g * slope })
        }),
        Op::Elu { alpha } => zip_slices(g, s, name, move |g, x, o| {
            ew::elu_backward_slice(g, x, o, alpha, 1.0)
        }),
        Op::Selu => zip_slices(g, s, name, |g, x, o| {
            ew::elu_backward_slice(g, x, o, SELU_ALPHA, SELU_SCALE)
        }),
        Op::Gelu => zip_slices(g, s, name, ew::gelu_backward_slice),
        Op::GeluTanh => zip_slices(g, s, name, ew::gelu_tanh_backward_slice),
        Op::Softplus => zip_slices(g, s, name, ew::softplus_backward_slice),
        Op::Silu => zip_slices(g, s, name, ew::silu_backward_slice),
        Op::HardSigmoid => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(
                g,
                s,
                o,
                |g, x| {
                    if x > -3.0 && x < 3.0 {
                        g / 6.0
                    } else {
                        0.0
                    }
                },
            )
        }),
        Op::HardSwish => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    g * (x / 3.0 + 0.5)
                } else {
                    g
                }
            })
        }),
        Op::Clamp { min, max } => {
            let (lo, hi) = clamp_bounds(min, max);
            zip_slices(g, s, name, move |g, s, o| {
                ew::map2(
                    g,
                    s,
                    o,
                    move |g, x| if x >= lo && x <= hi { g } else { 0.0 },
                )
            })
        }
        _ => Err(Error::Backward(format!(
            "internal error: '{name}' is not an elementwise unary op"
        ))),
    }
}
