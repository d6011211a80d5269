//! Views: reshape, permute/transpose, narrow/slice with steps, expand (broadcast), squeeze and
//! unsqueeze. They share memory with their source when the layout allows and copy otherwise.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::shape::{contiguous_strides, normalize_axis, Layout};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// The same elements in a new shape (row-major order); a view when the data is contiguous.
    /// See [`Tensor::reshape_infer`] for a `-1` dimension.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(self.numel()) {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
                detail: format!("{} elements cannot take shape {:?}", self.numel(), shape),
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let src = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let layout = Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: src.layout().offset,
        };
        let out = src.view_with_layout(layout);
        Ok(record_rule(out, Op::Reshape, &[&src], grad, Saved::none()))
    }

    /// Reshape where one entry may be `-1` (inferred), like `torch.reshape`.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let n_infer = shape.iter().filter(|&&d| d == -1).count();
        if n_infer > 1 || shape.iter().any(|&d| d < -1) {
            return Err(Error::invalid(
                "reshape",
                format!("bad target shape {shape:?}"),
            ));
        }
        let dims: Vec<usize> = if n_infer == 1 {
            if known == 0 || !self.numel().is_multiple_of(known) {
                return Err(Error::invalid(
                    "reshape",
                    format!(
                        "cannot infer a dimension of {shape:?} for {} elements",
                        self.numel()
                    ),
                ));
            }
            shape
                .iter()
                .map(|&d| {
                    if d == -1 {
                        self.numel() / known
                    } else {
                        d as usize
                    }
                })
                .collect()
        } else {
            shape.iter().map(|&d| d as usize).collect()
        };
        self.reshape(&dims)
    }

    /// Flattens dimensions `start..=end` into one (negative axes count from the end).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let s = normalize_axis("flatten", start, self.rank())?;
        let e = normalize_axis("flatten", end, self.rank())?;
        if s > e {
            return Err(Error::invalid(
                "flatten",
                format!("start {start} is after end {end}"),
            ));
        }
        let mut shape: Vec<usize> = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape(&shape)
    }

    /// Reorders dimensions: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "permute",
                format!(
                    "{perm:?} is not a permutation of 0..{r} (shape {:?})",
                    self.shape()
                ),
            ));
        }
        let l = self.layout();
        let layout = Layout {
            shape: perm.iter().map(|&p| l.shape[p]).collect(),
            strides: perm.iter().map(|&p| l.strides[p]).collect(),
            offset: l.offset,
        };
        let out = self.view_with_layout(layout);
        Ok(record_rule(
            out,
            Op::Permute {
                perm: perm.to_vec(),
            },
            &[self],
            grad,
            Saved::none(),
        ))
    }

    /// Swaps two dimensions.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = normalize_axis("transpose", a, self.rank())?;
        let b = normalize_axis("transpose", b, self.rank())?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of a matrix (rank 2) or of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::bad_shape("t", self.shape(), "rank >= 2"));
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` starting at `start` (a view).
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let ax = normalize_axis("narrow", axis, self.rank())?;
        let size = self.shape()[ax];
        match start.checked_add(len) {
            Some(end) if end <= size => self.slice(axis, start, end, 1),
            _ => Err(Error::invalid(
                "narrow",
                format!("start {start} + length {len} exceeds size {size} of axis {ax}"),
            )),
        }
    }

    /// Elements `start, start+step, ... < end` of `axis` (a view), like `x[start:end:step]`.
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let ax = normalize_axis("slice", axis, self.rank())?;
        let size = self.shape()[ax];
        if step == 0 || start > end || end > size {
            return Err(Error::invalid(
                "slice",
                format!("range {start}..{end} step {step} is invalid for axis {ax} of size {size}"),
            ));
        }
        let l = self.layout();
        let mut layout = l.clone();
        layout.shape[ax] = (end - start).div_ceil(step);
        layout.strides[ax] = l.strides[ax] * step;
        layout.offset = l.offset + start * l.strides[ax];
        let out = self.view_with_layout(layout);
        Ok(record_rule(
            out,
            Op::Slice {
                axis: ax,
                start,
                end,
                step,
            },
            &[self],
            grad,
            Saved::none(),
        ))
    }

    /// Broadcasts size-1 (or missing leading) dimensions to `shape` without copying.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let target = crate::shape::broadcast_shapes("expand", self.shape(), shape)?;
        if target != shape
            || shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none()
        {
            return Err(Error::shape_mismatch("expand", self.shape(), shape));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = Layout {
            shape: shape.to_vec(),
            strides: self.layout().broadcast_strides(shape),
            offset: self.layout().offset,
        };
        let out = self.view_with_layout(layout);
        Ok(record_rule(out, Op::Expand, &[self], grad, Saved::none()))
    }

    /// Removes dimension `axis`, which must have size 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis("squeeze", axis, self.rank())?;
        if self.shape()[ax] != 1 {
            return Err(Error::bad_shape(
                "squeeze",
                self.shape(),
                format!("size 1 at axis {ax}"),
            ));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(ax);
        self.reshape(&shape)
    }

    /// Removes every size-1 dimension.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let shape: Vec<usize> = self.shape().iter().copied().filter(|&d| d != 1).collect();
        self.reshape(&shape)
    }

    /// Inserts a size-1 dimension at `axis` (`-1` appends).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let ax = normalize_axis("unsqueeze", axis, self.rank() + 1)?;
        let mut shape = self.shape().to_vec();
        shape.insert(ax, 1);
        self.reshape(&shape)
    }
}

/// Gradient of a slice: zeros of the input shape with `g` written at the sliced positions.
/// The gradient rule of the views: the gradient viewed back (reshape, permute), scattered into
/// zeros (slice) or summed over the broadcast dims (expand).
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let in_shape = ctx.input_shape(0);
    let gx = match op {
        Op::Reshape => g.reshape(in_shape)?,
        Op::Permute { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            g.permute(&inverse)?
        }
        Op::Slice {
            axis, start, step, ..
        } => slice_backward(op, g, in_shape, *axis, *start, *step)?,
        Op::Expand => g.sum_to_shape(in_shape)?,
        _ => return Err(ctx.unexpected()),
    };
    Ok(vec![Some(gx)])
}

/// The slice gradient as an index-map copy of `g` ([`Backend::map_copy`] with fill 0): input
/// position `j` of `ax` reads `g` at `(j − start) / step` when it was sliced, else 0.
///
/// [`Backend::map_copy`]: crate::backend::Backend::map_copy
fn slice_backward(
    op: &Op,
    g: &Tensor,
    in_shape: &[usize],
    ax: usize,
    start: usize,
    step: usize,
) -> Result<Tensor> {
    use crate::ops::manip::{identity, NONE};
    let mut maps: Vec<Vec<usize>> = in_shape.iter().map(|&n| identity(n)).collect();
    let taken = g.shape()[ax];
    maps[ax] = (0..in_shape[ax])
        .map(|j| match j.checked_sub(start) {
            Some(d) if d % step == 0 && d / step < taken => d / step,
            _ => NONE,
        })
        .collect();
    crate::backend::for_device(g.device(), "slice backward")?.map_copy(
        op,
        g,
        g.layout(),
        &maps,
        0.0,
    )
}

/// Errors unless a tensor of `shape` has a representable element count (no `usize` overflow)
/// and its f32 buffer fits in `isize::MAX` bytes; ops call it before allocating an output.
pub(crate) fn check_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 8)
        .ok_or_else(|| Error::invalid(op, format!("output shape {shape:?} is too large")))
}
