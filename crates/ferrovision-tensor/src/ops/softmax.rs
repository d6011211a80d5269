//! Softmax and log-softmax along any axis, numerically stable (max subtraction), with fused
//! backward kernels.
//!
//! The tensor is viewed as `[outer, C, inner]` with the softmax axis in the middle; the op
//! methods resolve the axis, run [`Backend::softmax`](crate::backend::Backend::softmax) and
//! record, the gradient rule runs `Backend::softmax_backward` (the row and tile kernels are in
//! `backend/cpu/softmax.rs`).

use super::axis::AxisDims;
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::shape::normalize_axis;
use crate::{Result, Tensor};

fn softmax_impl(x: &Tensor, axis: isize, log: bool) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    x.expect_f32(op)?;
    let shape = x.shape().to_vec();
    // A 0-d tensor is a single position of one class (like PyTorch).
    let ax = if shape.is_empty() {
        normalize_axis(op, axis, 1)?;
        0
    } else {
        normalize_axis(op, axis, shape.len())?
    };
    let d = if shape.is_empty() {
        AxisDims {
            outer: 1,
            c: 1,
            inner: 1,
        }
    } else {
        AxisDims::new(&shape, ax)
    };
    let rec = if log {
        Op::LogSoftmax { axis: ax }
    } else {
        Op::Softmax { axis: ax }
    };
    let out = backend::for_device(x.device(), op)?.softmax(&rec, (d.outer, d.c, d.inner), x)?;
    let y = out.detach();
    Ok(record_rule(out, rec, &[x], grad, Saved::tensors(vec![y])))
}

impl Tensor {
    /// Softmax along `axis` (negative counts from the end): `exp(x - max) / Σ exp(x - max)`.
    /// Rows that are all `-inf` give NaN (like PyTorch). Fast paths: the last axis, and axis 1
    /// of NCHW (per-pixel over channels).
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 1.0], &[2, 2]).unwrap();
    /// assert_eq!(x.softmax(-1).unwrap().to_vec::<f32>().unwrap(), vec![0.5; 4]);
    /// ```
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        softmax_impl(self, axis, false)
    }

    /// Log-softmax along `axis`: `x - max - ln Σ exp(x - max)` (never takes the log of a
    /// softmax, so it is exact for very negative scores).
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        softmax_impl(self, axis, true)
    }
}

/// The gradient rule of `softmax` / `log_softmax` from the saved output `y`:
/// `dx = y·(g − Σ g·y)` and `dx = g − softmax·Σ g` per position.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (Op::Softmax { axis } | Op::LogSoftmax { axis }) = *op else {
        return Err(ctx.unexpected());
    };
    let y = ctx.saved(0)?;
    // A 0-d tensor is a single position of one class.
    let d = if y.rank() == 0 {
        AxisDims {
            outer: 1,
            c: 1,
            inner: 1,
        }
    } else {
        AxisDims::new(y.shape(), axis)
    };
    let dx = backend::for_device(y.device(), op.name())?.softmax_backward(
        op,
        (d.outer, d.c, d.inner),
        y,
        g,
    )?;
    Ok(vec![Some(dx)])
}
