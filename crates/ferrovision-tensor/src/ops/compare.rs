//! Comparisons (Bool outputs, broadcasting, any numeric dtype), logical ops, `where_`,
//! `masked_fill`, `isnan` and `isfinite`.
//!
//! Tensors of the same dtype compare in that dtype; mixed dtypes compare as f64 (exact for every
//! dtype but i64 beyond 2^53). Comparisons have no gradient; `where_` and `masked_fill` pass
//! gradients to their float inputs.
//!
//! The methods validate (dtypes, devices) and compute through [`Backend::compare`] keyed by the
//! typed [`Op`] (`Compare`, `CompareScalar`, `Logical`, `IsNan`, `IsFinite`, `Where`,
//! `MaskedFill`); the gradient rules mask through [`Backend::compare_backward`]. The kernels are
//! in `backend/cpu/compare.rs`.
//!
//! [`Backend::compare`]: crate::backend::Backend::compare
//! [`Backend::compare_backward`]: crate::backend::Backend::compare_backward

use crate::autograd::{record_rule, Cmp, GradCtx, Logic, Op, Saved};
use crate::backend;
use crate::{DType, Error, Result, Tensor};

fn expect_bool(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::Bool {
        return Err(Error::dtype(
            op,
            t.dtype(),
            "Bool (a mask from a comparison)",
        ));
    }
    t.check_cpu(op)
}

/// Runs a comparison-family op on the inputs' backend.
fn dispatch(op: Op, inputs: &[&Tensor]) -> Result<Tensor> {
    backend::for_device(inputs[0].device(), op.name())?.compare(&op, inputs)
}

/// `g` where `cond == keep`, 0 elsewhere (the gradient of `op`), on `g`'s backend.
fn mask_grad(op: &Op, cond: &Tensor, g: &Tensor, keep: bool) -> Result<Tensor> {
    backend::for_device(g.device(), op.name())?.compare_backward(op, cond, g, keep)
}

impl Tensor {
    fn compare(&self, other: &Tensor, cmp: Cmp) -> Result<Tensor> {
        let op = Op::Compare { cmp };
        super::same_device(op.name(), self, other)?;
        self.check_cpu(op.name())?;
        dispatch(op, &[self, other])
    }

    fn compare_scalar(&self, value: f64, cmp: Cmp) -> Result<Tensor> {
        let op = Op::CompareScalar { cmp, value };
        self.check_cpu(op.name())?;
        dispatch(op, &[self])
    }

    /// `self == other` elementwise with broadcasting, as a Bool tensor.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Eq)
    }

    /// `self != other` elementwise with broadcasting (true where either is NaN).
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ne)
    }

    /// `self < other` elementwise with broadcasting.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Lt)
    }

    /// `self <= other` elementwise with broadcasting.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Le)
    }

    /// `self > other` elementwise with broadcasting.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Gt)
    }

    /// `self >= other` elementwise with broadcasting.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ge)
    }

    /// `self == value` as a Bool tensor. Float tensors compare with `value` rounded to their
    /// dtype (like PyTorch); integer tensors compare exactly.
    pub fn eq_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Eq)
    }

    /// `self != value` (see [`Tensor::eq_scalar`]).
    pub fn ne_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Ne)
    }

    /// `self < value` (see [`Tensor::eq_scalar`]).
    pub fn lt_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Lt)
    }

    /// `self <= value` (see [`Tensor::eq_scalar`]).
    pub fn le_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Le)
    }

    /// `self > value` (see [`Tensor::eq_scalar`]).
    pub fn gt_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Gt)
    }

    /// `self >= value` (see [`Tensor::eq_scalar`]).
    pub fn ge_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Ge)
    }

    fn logical(&self, other: &Tensor, kind: Logic) -> Result<Tensor> {
        let op = Op::Logical { kind };
        super::same_device(op.name(), self, other)?;
        self.check_cpu(op.name())?;
        other.check_cpu(op.name())?;
        dispatch(op, &[self, other])
    }

    /// Elementwise AND with broadcasting, as a Bool tensor. Non-Bool inputs count as true where
    /// non-zero (like PyTorch).
    pub fn logical_and(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, Logic::And)
    }

    /// Elementwise OR with broadcasting (see [`Tensor::logical_and`]).
    pub fn logical_or(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, Logic::Or)
    }

    /// Elementwise XOR with broadcasting (see [`Tensor::logical_and`]).
    pub fn logical_xor(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, Logic::Xor)
    }

    /// Elementwise NOT, as a Bool tensor (non-Bool inputs: true where zero).
    pub fn logical_not(&self) -> Result<Tensor> {
        self.check_cpu("logical_not")?;
        dispatch(Op::Logical { kind: Logic::Not }, &[self])
    }

    /// Elementwise select: `a` where `self` (a Bool condition) is true, `b` elsewhere; all three
    /// broadcast. `a` and `b` must share a dtype; for f32 the gradient flows to `a` where the
    /// condition holds and to `b` elsewhere.
    pub fn where_(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where";
        expect_bool(OP, self)?;
        super::same_device(OP, self, a)?;
        super::same_device(OP, a, b)?;
        if a.dtype() != b.dtype() {
            return Err(Error::dtype(
                OP,
                b.dtype(),
                format!("the dtype of the other branch ({:?})", a.dtype()),
            ));
        }
        let out = dispatch(Op::Where, &[self, a, b])?;
        if a.dtype() != DType::F32 {
            return Ok(out);
        }
        Ok(record_rule(
            out,
            Op::Where,
            &[a, b],
            where_grad,
            Saved::tensors(vec![self.detach()]),
        ))
    }

    /// `value` where `mask` (Bool) is true, `self` elsewhere; `self` and `mask` broadcast. For
    /// f32 the gradient passes where the mask is false.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        const OP: &str = "masked_fill";
        expect_bool(OP, mask)?;
        super::same_device(OP, self, mask)?;
        let out = dispatch(Op::MaskedFill { value }, &[self, mask])?;
        if self.dtype() != DType::F32 {
            return Ok(out);
        }
        Ok(record_rule(
            out,
            Op::MaskedFill { value },
            &[self],
            masked_fill_grad,
            Saved::tensors(vec![mask.detach()]),
        ))
    }

    /// True where the value is NaN (always false for integer and Bool tensors).
    pub fn isnan(&self) -> Result<Tensor> {
        self.check_cpu("isnan")?;
        dispatch(Op::IsNan, &[self])
    }

    /// True where the value is neither infinite nor NaN (always true for integers and Bool).
    pub fn isfinite(&self) -> Result<Tensor> {
        self.check_cpu("isfinite")?;
        dispatch(Op::IsFinite, &[self])
    }
}

/// The gradient rule of `where_`: `g` masked by the condition (and its negation), summed
/// back to each input's shape.
fn where_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let cond = ctx.saved(0)?;
    let (ra, rb) = (ctx.needs(0), ctx.needs(1));
    let (sa, sb) = (ctx.input_shape(0), ctx.input_shape(1));
    let ga = if ra {
        Some(mask_grad(op, cond, g, true)?.sum_to_shape(sa)?)
    } else {
        None
    };
    let gb = if rb {
        Some(mask_grad(op, cond, g, false)?.sum_to_shape(sb)?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

/// The gradient rule of `masked_fill`: `g` where the mask is false.
fn masked_fill_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let m = ctx.saved(0)?;
    let sx = ctx.input_shape(0);
    Ok(vec![Some(mask_grad(op, m, g, false)?.sum_to_shape(sx)?)])
}
