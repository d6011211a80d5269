//! Elementwise unary ops (math functions and activations) and scalar arithmetic.
//!
//! Each op method names its `Op` and runs it on the tensor's backend (`Backend::unary`; the CPU
//! one runs the vectorised kernels of [`crate::kernels::elementwise`]); each backward is one
//! fused pass over the output gradient and the saved input or output (`Backend::unary_backward`,
//! on the CPU `backend/cpu/unary_grad.rs`). Gradients at kinks follow PyTorch: `relu'(0) = 0`,
//! `abs'(0) = 0`, clamp passes the gradient on its closed range.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved as Recorded};
use crate::backend;
use crate::{Error, Result, Tensor};

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

    /// The elementwise unary ops `ops` applied one after the other, in one pass where the
    /// backend can (`Backend::unary_chain`; in this tensor's buffer when nothing else holds
    /// it): a traced inference plan's elementwise-chain fusion. Not recorded for autodiff, so
    /// refused where a gradient would be recorded.
    pub(crate) fn unary_chain(self, ops: &[Op]) -> Result<Tensor> {
        const OP: &str = "unary_chain";
        if is_recorded(&[&self]) {
            return Err(Error::invalid(
                OP,
                "internal error: a fused chain cannot record gradients",
            ));
        }
        backend::for_device(self.device(), OP)?.unary_chain(ops, self)
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
/// the saved input or output (see each op for which), or a constant factor for the linear
/// ones, computed by the backend ([`Backend::unary_backward`](crate::backend::Backend)).
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let gx = match *op {
        Op::Sign => Tensor::zeros(ctx.input_shape(0)),
        Op::Neg
        | Op::RsubScalar { .. }
        | Op::AddScalar { .. }
        | Op::SubScalar { .. }
        | Op::MulScalar { .. }
        | Op::DivScalar { .. } => {
            backend::for_device(g.device(), op.name())?.unary_backward(op, None, g)?
        }
        _ => {
            let s = ctx.saved(0)?;
            backend::for_device(g.device(), op.name())?.unary_backward(op, Some(s), g)?
        }
    };
    Ok(vec![Some(gx)])
}
