//! Elementwise unary ops (math functions and activations) and scalar arithmetic.
//!
//! Forward passes run the vectorised kernels of [`crate::kernels::elementwise`]; each backward is
//! one fused pass over the output gradient and the saved input or output. Gradients at kinks
//! follow PyTorch: `relu'(0) = 0`, `abs'(0) = 0`, clamp passes the gradient on its closed range.

use crate::autograd::record;
use crate::kernels::elementwise as ew;
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Elements per parallel task of the elementwise kernels.
const PAR_MIN: usize = 1 << 15;

/// Applies `f` to every element (f32) into a new contiguous tensor, in parallel for big inputs.
pub(crate) fn map_f32(
    t: &Tensor,
    op: &'static str,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<Tensor> {
    t.expect_f32(op)?;
    let mut out = pool::take_uninit(t.numel());
    t.with_f32(op, |src| match super::par_chunk(src.len(), PAR_MIN) {
        Some(chunk) => out
            .par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(o, s)| f(s, o)),
        None => f(src, &mut out),
    })?;
    Ok(Tensor::from_f32(out, t.shape()))
}

/// Applies the scalar function `f` to every element with the vectorised kernel of the best ISA.
pub(crate) fn map_unary<F>(t: &Tensor, op: &'static str, f: F) -> Result<Tensor>
where
    F: Fn(f32) -> f32 + Copy + Send + Sync,
{
    map_f32(t, op, move |s, o| ew::map1(s, o, f))
}

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
    /// Runs an elementwise op given as slice kernels: `fwd(x, y)` and the fused backward
    /// `bwd(g, s, grad_in)` where `s` is the saved input or output.
    fn unary_op_k<F, B>(&self, name: &'static str, fwd: F, saved: Saved, bwd: B) -> Result<Tensor>
    where
        F: Fn(&[f32], &mut [f32]) + Sync,
        B: Fn(&[f32], &[f32], &mut [f32]) + Send + Sync + 'static,
    {
        let out = map_f32(self, name, fwd)?;
        if !self.requires_grad() || !crate::is_grad_enabled() {
            return Ok(out);
        }
        let s = match saved {
            Saved::Input => self.detach(),
            Saved::Output => out.detach(),
        };
        Ok(record(out, name, &[self], move |g| {
            Ok(vec![Some(zip_slices(g, &s, name, bwd)?)])
        }))
    }

    /// Runs an elementwise op whose gradient is `d(g, s)` where `s` is the saved input or
    /// output. For small `f` and `d` (larger ones get dedicated slice kernels).
    fn unary_op<F, D>(&self, name: &'static str, f: F, saved: Saved, d: D) -> Result<Tensor>
    where
        F: Fn(f32) -> f32 + Copy + Send + Sync,
        D: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static,
    {
        self.unary_op_k(
            name,
            move |x, y| ew::map1(x, y, f),
            saved,
            move |g, s, o| ew::map2(g, s, o, d),
        )
    }

    /// An op whose gradient is the output gradient times a constant.
    fn linear_op<F>(&self, name: &'static str, f: F, scale: f32) -> Result<Tensor>
    where
        F: Fn(f32) -> f32 + Copy + Send + Sync,
    {
        let out = map_unary(self, name, f)?;
        Ok(record(out, name, &[self], move |g| {
            let gi = if scale == 1.0 {
                g.clone()
            } else {
                map_unary(g, name, move |v| v * scale)?
            };
            Ok(vec![Some(gi)])
        }))
    }

    // ----- scalar arithmetic -----

    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        self.linear_op("neg", |x| -x, -1.0)
    }

    /// `self + c`.
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.linear_op("add_scalar", move |x| x + c, 1.0)
    }

    /// `self - c`.
    pub fn sub_scalar(&self, c: f32) -> Result<Tensor> {
        self.linear_op("sub_scalar", move |x| x - c, 1.0)
    }

    /// `c - self`.
    pub fn rsub_scalar(&self, c: f32) -> Result<Tensor> {
        self.linear_op("rsub_scalar", move |x| c - x, -1.0)
    }

    /// `self * c`.
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.linear_op("mul_scalar", move |x| x * c, c)
    }

    /// `self / c` (a true division, like PyTorch, not a multiplication by `1/c`).
    pub fn div_scalar(&self, c: f32) -> Result<Tensor> {
        let out = map_unary(self, "div_scalar", move |x| x / c)?;
        Ok(record(out, "div_scalar", &[self], move |g| {
            Ok(vec![Some(map_unary(g, "div_scalar", move |v| v / c)?)])
        }))
    }

    /// `self ^ p`. Like PyTorch, the exponents 2, 3, 0.5, -0.5, -1 and -2 use exact
    /// products, square roots and divisions instead of `powf`; the gradient `p·x^(p-1)` is 0 for
    /// `p = 0`.
    pub fn pow_scalar(&self, p: f32) -> Result<Tensor> {
        const OP: &str = "pow_scalar";
        let generic = move |g: f32, x: f32| g * p * x.powf(p - 1.0);
        if p == 0.0 {
            self.unary_op(OP, |_| 1.0, Saved::Input, |_, _| 0.0)
        } else if p == 1.0 {
            self.unary_op(OP, |x| x, Saved::Input, |g, _| g)
        } else if p == 2.0 {
            self.unary_op(OP, |x| x * x, Saved::Input, |g, x| g * 2.0 * x)
        } else if p == 3.0 {
            self.unary_op(OP, |x| x * x * x, Saved::Input, |g, x| g * 3.0 * (x * x))
        } else if p == 0.5 {
            self.unary_op(OP, f32::sqrt, Saved::Input, generic)
        } else if p == -0.5 {
            self.unary_op(OP, |x| 1.0 / x.sqrt(), Saved::Input, generic)
        } else if p == -1.0 {
            self.unary_op(OP, |x| 1.0 / x, Saved::Input, generic)
        } else if p == -2.0 {
            self.unary_op(OP, |x| 1.0 / (x * x), Saved::Input, generic)
        } else {
            self.unary_op(OP, move |x| x.powf(p), Saved::Input, generic)
        }
    }

    /// `1 / self`.
    pub fn reciprocal(&self) -> Result<Tensor> {
        self.unary_op("reciprocal", |x| 1.0 / x, Saved::Output, |g, y| -g * y * y)
    }

    /// `self²`.
    pub fn square(&self) -> Result<Tensor> {
        self.unary_op("square", |x| x * x, Saved::Input, |g, x| 2.0 * x * g)
    }

    /// `√self` (NaN below 0; the gradient at 0 is inf like PyTorch).
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary_op("sqrt", f32::sqrt, Saved::Output, |g, y| g / (2.0 * y))
    }

    /// `1 / √self`.
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary_op(
            "rsqrt",
            |x| 1.0 / x.sqrt(),
            Saved::Output,
            |g, y| -0.5 * g * (y * y * y),
        )
    }

    /// `|self|`; the gradient at 0 is 0.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary_op("abs", f32::abs, Saved::Input, |g, x| g * sign_f32(x))
    }

    /// `-1`, `0` or `1` by the sign of each element (0 for NaN, like PyTorch's CPU kernel); the
    /// gradient is 0.
    pub fn sign(&self) -> Result<Tensor> {
        let out = map_unary(self, "sign", sign_f32)?;
        let shape = self.shape().to_vec();
        Ok(record(out, "sign", &[self], move |_| {
            Ok(vec![Some(Tensor::zeros(&shape))])
        }))
    }

    // ----- exponentials, logarithms, trigonometry -----

    /// `e^self` (fast vectorised kernel, ≤ 1 ulp).
    pub fn exp(&self) -> Result<Tensor> {
        self.unary_op_k("exp", ew::exp_slice, Saved::Output, |g, y, o| {
            ew::map2(g, y, o, |g, y| g * y)
        })
    }

    /// Natural logarithm (fast vectorised kernel, ≤ 2 ulp).
    pub fn log(&self) -> Result<Tensor> {
        self.unary_op_k("log", ew::log_slice, Saved::Input, |g, x, o| {
            ew::map2(g, x, o, |g, x| g / x)
        })
    }

    /// `ln(1 + self)`, accurate near 0.
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary_op_k("log1p", ew::log1p_slice, Saved::Input, |g, x, o| {
            ew::map2(g, x, o, |g, x| g / (1.0 + x))
        })
    }

    /// Sine.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary_op("sin", f32::sin, Saved::Input, |g, x| g * x.cos())
    }

    /// Cosine.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary_op("cos", f32::cos, Saved::Input, |g, x| -g * x.sin())
    }

    /// Hyperbolic tangent (fast vectorised kernel).
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary_op_k(
            "tanh",
            ew::tanh_slice,
            Saved::Output,
            ew::tanh_backward_slice,
        )
    }

    /// Logistic sigmoid `1 / (1 + e^-x)` (fast vectorised kernel).
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary_op_k(
            "sigmoid",
            ew::sigmoid_slice,
            Saved::Output,
            ew::sigmoid_backward_slice,
        )
    }

    // ----- activations -----

    /// `max(self, 0)` (NaN stays NaN, like PyTorch); the gradient at 0 is 0.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary_op(
            "relu",
            |x| if x > 0.0 || x.is_nan() { x } else { 0.0 },
            Saved::Output,
            |g, y| if y > 0.0 { g } else { 0.0 },
        )
    }

    /// `min(max(self, 0), 6)`; gradient on the open range `(0, 6)` like PyTorch.
    pub fn relu6(&self) -> Result<Tensor> {
        self.unary_op(
            "relu6",
            |x| clamp_f32(x, 0.0, 6.0),
            Saved::Input,
            |g, x| if x > 0.0 && x < 6.0 { g } else { 0.0 },
        )
    }

    /// `x` for `x > 0`, `slope·x` otherwise.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary_op(
            "leaky_relu",
            move |x| if x > 0.0 { x } else { x * slope },
            Saved::Input,
            move |g, x| if x > 0.0 { g } else { g * slope },
        )
    }

    /// ELU: `x` for `x > 0`, `alpha·(e^x − 1)` otherwise.
    pub fn elu(&self, alpha: f32) -> Result<Tensor> {
        self.unary_op_k(
            "elu",
            move |x, y| ew::elu_slice(x, y, alpha, 1.0),
            Saved::Input,
            move |g, x, o| ew::elu_backward_slice(g, x, o, alpha, 1.0),
        )
    }

    /// SELU: `scale·elu(x, alpha)` with the constants of Klambauer et al. (as PyTorch).
    pub fn selu(&self) -> Result<Tensor> {
        self.unary_op_k(
            "selu",
            |x, y| ew::elu_slice(x, y, SELU_ALPHA, SELU_SCALE),
            Saved::Input,
            |g, x, o| ew::elu_backward_slice(g, x, o, SELU_ALPHA, SELU_SCALE),
        )
    }

    /// GELU, exact form `x·Φ(x)` with Φ the standard normal CDF (fast vectorised erf).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary_op_k(
            "gelu",
            ew::gelu_slice,
            Saved::Input,
            ew::gelu_backward_slice,
        )
    }

    /// GELU, tanh approximation `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary_op_k(
            "gelu_tanh",
            ew::gelu_tanh_slice,
            Saved::Input,
            ew::gelu_tanh_backward_slice,
        )
    }

    /// Softplus `ln(1 + e^x)` with β = 1 and PyTorch's threshold 20 (identity above it).
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary_op_k(
            "softplus",
            ew::softplus_slice,
            Saved::Input,
            ew::softplus_backward_slice,
        )
    }

    /// SiLU `x·σ(x)` (also called swish).
    pub fn silu(&self) -> Result<Tensor> {
        self.unary_op_k(
            "silu",
            ew::silu_slice,
            Saved::Input,
            ew::silu_backward_slice,
        )
    }

    /// Alias of [`Tensor::silu`].
    pub fn swish(&self) -> Result<Tensor> {
        self.silu()
    }

    /// Hard sigmoid `relu6(x + 3) / 6` (PyTorch / Keras 3); gradient `1/6` on `(-3, 3)`.
    pub fn hard_sigmoid(&self) -> Result<Tensor> {
        self.unary_op(
            "hard_sigmoid",
            |x| clamp_f32(x + 3.0, 0.0, 6.0) / 6.0,
            Saved::Input,
            |g, x| {
                if x > -3.0 && x < 3.0 {
                    g / 6.0
                } else {
                    0.0
                }
            },
        )
    }

    /// Hard swish `x·relu6(x + 3) / 6`, with PyTorch's gradient (`x/3 + 1/2` on `[-3, 3]`).
    pub fn hard_swish(&self) -> Result<Tensor> {
        self.unary_op(
            "hard_swish",
            |x| x * clamp_f32(x + 3.0, 0.0, 6.0) / 6.0,
            Saved::Input,
            |g, x| {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    g * (x / 3.0 + 0.5)
                } else {
                    g
                }
            },
        )
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
        let lo = min.unwrap_or(f32::NEG_INFINITY);
        let hi = max.unwrap_or(f32::INFINITY);
        self.unary_op(
            "clamp",
            move |x| clamp_f32(x, lo, hi),
            Saved::Input,
            move |g, x| if x >= lo && x <= hi { g } else { 0.0 },
        )
    }
}

/// `-1`, `0` or `1` (0 for NaN).
#[inline(always)]
fn sign_f32(x: f32) -> f32 {
    ((x > 0.0) as i32 - (x < 0.0) as i32) as f32
}

/// Clamp that keeps NaN and resolves `lo > hi` to `hi`.
#[inline(always)]
fn clamp_f32(x: f32, lo: f32, hi: f32) -> f32 {
    let v = if x < lo { lo } else { x };
    if v > hi {
        hi
    } else {
        v
    }
}

/// SELU constants (Klambauer et al., as in PyTorch).
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
