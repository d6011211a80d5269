//! Binary elementwise ops with NumPy broadcasting: add, sub, mul, div, pow, maximum, minimum,
//! and their gradient rule. The broadcast iteration itself is in [`super::broadcast`].

use super::broadcast::broadcast_map3;
use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved};
use crate::backend::{self, cpu::pow_f32};
use crate::{Error, Result, Tensor};

/// Runs the broadcasting binary `op` on the operands' backend (no autodiff).
fn binary_forward(op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    backend::for_device(a.device(), op.name())?.binary(op, a, b)
}

/// `relu(a op b)` in one pass, not recorded: a traced plan's fusion of a binary op and the
/// ReLU after it (equal to the two ops, bit for bit).
pub(crate) fn binary_relu(op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    backend::for_device(a.device(), op.name())?.binary_relu(op, a, b)
}

/// The axes of `shape` that broadcasting `target` up to `shape` expanded (leading dims and
/// size-1 dims of `target`), or a `ShapeMismatch` naming `op`.
fn expanded_axes(op: &'static str, shape: &[usize], target: &[usize]) -> Result<Vec<usize>> {
    if target.len() > shape.len() {
        return Err(Error::shape_mismatch(op, shape, target));
    }
    let lead = shape.len() - target.len();
    let mut axes = Vec::new();
    for d in 0..shape.len() {
        if d < lead || (target[d - lead] == 1 && shape[d] != 1) {
            axes.push(d);
        } else if target[d - lead] != shape[d] {
            return Err(Error::shape_mismatch(op, shape, target));
        }
    }
    Ok(axes)
}

/// `(g·x).sum_to_shape(target)`, the gradient of a broadcast factor of a product; fused (no
/// full-size temporary) when `x` has the shape of `g`.
fn mul_sum_to_shape(op: &'static str, g: &Tensor, x: &Tensor, target: &[usize]) -> Result<Tensor> {
    if target == g.shape() || x.shape() != g.shape() {
        return binary_forward(&Op::Mul, g, x)?.sum_to_shape(target);
    }
    let axes = expanded_axes(op, g.shape(), target)?;
    crate::backend::for_device(g.device(), op)?.dot_reduce(op, g, x, &axes, target)
}

/// Sums a gradient of the broadcast shape back to an input's shape, when that input wants one.
fn reduce_grad(g: Tensor, shape: &[usize], wanted: bool) -> Result<Option<Tensor>> {
    if !wanted {
        return Ok(None);
    }
    Ok(Some(g.sum_to_shape(shape)?))
}

impl Tensor {
    /// `self + other` with broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(&Op::Add, self, other)?;
        Ok(record_rule(
            out,
            Op::Add,
            &[self, other],
            grad,
            Saved::none(),
        ))
    }

    /// `self - other` with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(&Op::Sub, self, other)?;
        Ok(record_rule(
            out,
            Op::Sub,
            &[self, other],
            grad,
            Saved::none(),
        ))
    }

    /// `self * other` (elementwise) with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_saving_inputs(Op::Mul, other)
    }

    /// `self / other` (elementwise) with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(&Op::Div, self, other)?;
        if !is_recorded(&[self, other]) {
            return Ok(out);
        }
        let saved = Saved::tensors(vec![other.detach(), out.detach()]);
        Ok(record_rule(out, Op::Div, &[self, other], grad, saved))
    }

    /// `self ^ other` (elementwise power) with broadcasting. Like PyTorch, the base gradient is
    /// 0 where the exponent is 0, and the exponent gradient (`y·ln(self)`) is 0 where
    /// `self == 0` and `other >= 0`; elsewhere it is only meaningful where `self > 0`.
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_saving_inputs(Op::Pow, other)
    }

    /// Elementwise maximum with broadcasting; NaN propagates. Like PyTorch, ties split the
    /// gradient evenly between the two inputs.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_saving_inputs(Op::Maximum, other)
    }

    /// Elementwise minimum with broadcasting; NaN propagates. Like PyTorch, ties split the
    /// gradient evenly between the two inputs.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_saving_inputs(Op::Minimum, other)
    }

    /// A binary op whose gradient reads both inputs.
    fn binary_saving_inputs(&self, op: Op, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(&op, self, other)?;
        if !is_recorded(&[self, other]) {
            return Ok(out);
        }
        let saved = Saved::tensors(vec![self.detach(), other.detach()]);
        Ok(record_rule(out, op, &[self, other], grad, saved))
    }
}

/// The gradient rule of the broadcasting binary ops: each input's share of `g`, summed back to
/// the input's shape.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (ra, rb) = (ctx.needs(0), ctx.needs(1));
    match op {
        Op::Add => Ok(vec![
            reduce_grad(g.clone(), ctx.input_shape(0), ra)?,
            reduce_grad(g.clone(), ctx.input_shape(1), rb)?,
        ]),
        Op::Sub => {
            let gb = match reduce_grad(g.clone(), ctx.input_shape(1), rb)? {
                // Negate after reducing: fewer elements.
                Some(t) => Some(t.neg()?),
                None => None,
            };
            Ok(vec![reduce_grad(g.clone(), ctx.input_shape(0), ra)?, gb])
        }
        Op::Mul => {
            let (a, b) = (ctx.saved(0)?, ctx.saved(1)?);
            let ga = if ra {
                Some(mul_sum_to_shape("mul backward", g, b, a.shape())?)
            } else {
                None
            };
            let gb = if rb {
                Some(mul_sum_to_shape("mul backward", g, a, b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }
        Op::Div => {
            let (b, y) = (ctx.saved(0)?, ctx.saved(1)?);
            let g_over_b = binary_forward(&Op::Div, g, b)?;
            let gb = if rb {
                // d(a/b)/db = -a/b² = -(a/b)/b, so the gradient is -Σ(g/b)·y.
                Some(mul_sum_to_shape("div backward", &g_over_b, y, b.shape())?.neg()?)
            } else {
                None
            };
            Ok(vec![reduce_grad(g_over_b, ctx.input_shape(0), ra)?, gb])
        }
        Op::Pow => {
            let (a, b) = (ctx.saved(0)?, ctx.saved(1)?);
            let shape = g.shape().to_vec();
            let ga = if ra {
                let full = broadcast_map3("pow backward", g, a, b, &shape, |g, a, b| {
                    if b == 0.0 {
                        0.0
                    } else {
                        g * b * a.powf(b - 1.0)
                    }
                })?;
                Some(full.sum_to_shape(a.shape())?)
            } else {
                None
            };
            let gb = if rb {
                let full = broadcast_map3("pow backward", g, a, b, &shape, |g, a, b| {
                    if a == 0.0 && b >= 0.0 {
                        0.0
                    } else {
                        g * pow_f32(a, b) * a.ln()
                    }
                })?;
                Some(full.sum_to_shape(b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }
        Op::Maximum | Op::Minimum => {
            let (a, b) = (ctx.saved(0)?, ctx.saved(1)?);
            let shape = g.shape().to_vec();
            let is_max = *op == Op::Maximum;
            // Share of the gradient that goes to `a`: 1 where a wins (or is NaN), ½ on ties.
            let ga_full = broadcast_map3("maximum backward", g, a, b, &shape, move |g, a, b| {
                let a_wins = if is_max { a > b } else { a < b } || a.is_nan();
                if a_wins {
                    g
                } else if a == b {
                    0.5 * g
                } else {
                    0.0
                }
            })?;
            let gb =
                if rb {
                    // g - ga is exact: it is 0, g/2 or g.
                    let gb_full = crate::backend::for_device(g.device(), "maximum backward")?
                        .binary(&Op::Sub, g, &ga_full)?;
                    Some(gb_full.sum_to_shape(b.shape())?)
                } else {
                    None
                };
            Ok(vec![reduce_grad(ga_full, a.shape(), ra)?, gb])
        }
        _ => Err(ctx.unexpected()),
    }
}
