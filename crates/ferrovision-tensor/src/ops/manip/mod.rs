//! Tensor manipulation: concatenation and stacking, splitting, gather/scatter, index selection,
//! padding, flipping, repetition and one-hot encoding.
//!
//! Every copy op runs on all dtypes (labels, masks and indices included). Ops with float
//! outputs are differentiable; integer and bool outputs are recorded as non-differentiable.
//!
//! The op methods validate and plan, then copy through the tensors' backend
//! ([`Backend`](crate::backend::Backend)'s copy methods; the CPU kernels are in
//! `backend/cpu/manip.rs`). Most ops are planned as per-dimension index maps for one generic
//! copy, `map_copy`: output element `(i_0, .., i_k)` is input element `(m_0[i_0], .., m_k[i_k])`,
//! or a fill value where a map entry is [`NONE`]. Padding, flips, index selection, repetition
//! and crops are all such maps; their gradients are the adjoint `map_accumulate` (or the inverse
//! map where one exists). Concatenation (`cat`/`stack`, here) and gather/scatter
//! (`index.rs`) have their own backend methods; `pad.rs` holds pad, flip and repeat.

mod index;
mod pad;

pub(crate) use index::{check_range, index_values};

use crate::autograd::{record_op_non_differentiable, record_rule, GradCtx, GradRule, Op, Saved};
use crate::backend::{self, Backend};
use crate::shape::normalize_axis;
use crate::{Error, Result, Tensor};

/// A map entry that takes the fill value instead of an input element.
pub(crate) const NONE: usize = usize::MAX;

/// How [`Tensor::pad`] fills the new border.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant value (converted to the tensor's dtype; nonzero is `true` for bool).
    Constant(f32),
    /// Mirror without repeating the edge element (`[a b c]` padded by 2: `c b [a b c] b a`);
    /// each pad must be smaller than the size of its dimension.
    Reflect,
    /// Repeat the edge element (`a a [a b c] c c`).
    Replicate,
}

/// The identity map of a dimension of size `n`.
pub(crate) fn identity(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Records the backward rule of an op with a float output; other outputs are recorded as
/// non-differentiable (asking for their gradient names the op).
fn record_float(out: Tensor, op: Op, inputs: &[&Tensor], rule: GradRule, saved: Saved) -> Tensor {
    if out.dtype().is_float() {
        record_rule(out, op, inputs, rule, saved)
    } else {
        record_op_non_differentiable(out, op, inputs)
    }
}

/// Common checks of cat/stack (non-empty, one dtype, one device); the backend of the device.
fn check_list(op: &'static str, tensors: &[&Tensor]) -> Result<&'static dyn Backend> {
    let Some(first) = tensors.first() else {
        return Err(Error::invalid(op, "needs at least one tensor"));
    };
    for (i, t) in tensors.iter().enumerate() {
        crate::ops::same_device(op, first, t)?;
        if t.dtype() != first.dtype() {
            return Err(Error::dtype(
                op,
                t.dtype(),
                format!("{:?} like tensor 0 (tensor {i} differs)", first.dtype()),
            ));
        }
    }
    backend::for_device(first.device(), op)
}

impl Tensor {
    /// Concatenates tensors along `axis` (negative counts from the end), like `torch.cat`.
    /// All tensors need the same dtype, rank and sizes outside `axis`.
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1i64, 2], &[1, 2]).unwrap();
    /// let b = Tensor::from_vec(vec![3i64, 4, 5, 6], &[2, 2]).unwrap();
    /// let c = Tensor::cat(&[&a, &b], 0).unwrap();
    /// assert_eq!(c.shape(), &[3, 2]);
    /// assert_eq!(c.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    /// ```
    pub fn cat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "cat";
        let b = check_list(OP, tensors)?;
        let first = tensors[0];
        let ax = normalize_axis(OP, axis, first.rank())?;
        for (i, t) in tensors.iter().enumerate() {
            let same = t.rank() == first.rank()
                && (0..first.rank()).all(|d| d == ax || t.shape()[d] == first.shape()[d]);
            if !same {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                    detail: format!("tensor {i} differs from tensor 0 outside axis {ax}"),
                });
            }
        }
        let inner: usize = first.shape()[ax + 1..].iter().product();
        let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[ax]).collect();
        let blocks: Vec<usize> = sizes.iter().map(|s| s * inner).collect();
        let mut out_shape = first.shape().to_vec();
        out_shape[ax] = sizes.iter().sum();
        let rec = Op::Cat { axis: ax };
        let out = b.concat(&rec, tensors, &blocks, &out_shape)?;
        Ok(record_float(out, rec, tensors, cat_grad, Saved::none()))
    }

    /// Stacks equally shaped tensors along a new dimension `axis` (in `-(rank+1)..=rank`),
    /// like `torch.stack`.
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "stack";
        let b = check_list(OP, tensors)?;
        let first = tensors[0];
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                    detail: format!("tensor {i} differs from tensor 0"),
                });
            }
        }
        let ax = normalize_axis(OP, axis, first.rank() + 1)?;
        let inner: usize = first.shape()[ax..].iter().product();
        let blocks = vec![inner; tensors.len()];
        let mut out_shape = first.shape().to_vec();
        out_shape.insert(ax, tensors.len());
        let rec = Op::Stack { axis: ax };
        let out = b.concat(&rec, tensors, &blocks, &out_shape)?;
        Ok(record_float(out, rec, tensors, stack_grad, Saved::none()))
    }

    /// Splits along `axis` into pieces of the given sizes (which must add up to the size of
    /// `axis`). The pieces are views sharing memory with `self`.
    pub fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
        const OP: &str = "split";
        let ax = normalize_axis(OP, axis, self.rank())?;
        let n = self.shape()[ax];
        let total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
        if total != Some(n) {
            return Err(Error::invalid(
                OP,
                format!(
                    "sizes {sizes:?} do not add up to the size {n} of axis {ax} (shape {:?})",
                    self.shape()
                ),
            ));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let piece = self.narrow(ax as isize, start, len);
                start += len;
                piece
            })
            .collect()
    }

    /// Splits along `axis` into `n` views of `ceil(size / n)` elements (the last one smaller),
    /// like `torch.chunk`: fewer than `n` pieces come back when the size does not allow `n`.
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Tensor>> {
        const OP: &str = "chunk";
        if n == 0 {
            return Err(Error::invalid(OP, "the number of chunks must be positive"));
        }
        let ax = normalize_axis(OP, axis, self.rank())?;
        let size = self.shape()[ax];
        let sizes: Vec<usize> = if size == 0 {
            vec![0; n]
        } else {
            let step = size.div_ceil(n);
            (0..size.div_ceil(step))
                .map(|i| step.min(size - i * step))
                .collect()
        };
        self.split(&sizes, ax as isize)
    }
}

/// The gradient rule of `cat`: each input's slice of `g` along the axis.
fn cat_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Cat { axis: ax } = *op else {
        return Err(ctx.unexpected());
    };
    let b = backend::for_device(g.device(), op.name())?;
    let sizes: Vec<usize> = (0..ctx.num_inputs())
        .map(|i| ctx.input_shape(i)[ax])
        .collect();
    let needs: Vec<bool> = (0..ctx.num_inputs()).map(|i| ctx.needs(i)).collect();
    let mut start = 0;
    let mut grads = Vec::with_capacity(sizes.len());
    for (&size, &need) in sizes.iter().zip(&needs) {
        grads.push(
            need.then(|| {
                let mut maps: Vec<Vec<usize>> = g.shape().iter().map(|&n| identity(n)).collect();
                maps[ax] = (start..start + size).collect();
                b.map_copy(op, g, g.layout(), &maps, 0.0)
            })
            .transpose()?,
        );
        start += size;
    }
    Ok(grads)
}

/// The gradient rule of `stack`: each input's index of `g` along the new axis.
fn stack_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Stack { axis: ax } = *op else {
        return Err(ctx.unexpected());
    };
    let b = backend::for_device(g.device(), op.name())?;
    let in_shape = ctx.input_shape(0).to_vec();
    let needs: Vec<bool> = (0..ctx.num_inputs()).map(|i| ctx.needs(i)).collect();
    let mut grads = Vec::with_capacity(needs.len());
    for (i, &need) in needs.iter().enumerate() {
        grads.push(if need {
            let mut maps: Vec<Vec<usize>> = g.shape().iter().map(|&n| identity(n)).collect();
            maps[ax] = vec![i];
            Some(
                b.map_copy(op, g, g.layout(), &maps, 0.0)?
                    .reshape(&in_shape)?,
            )
        } else {
            None
        });
    }
    Ok(grads)
}
