//! Reductions over axes (with keepdim): sum, mean, max, min, argmax, argmin, prod, var, std,
//! logsumexp, norm; and the broadcasting-gradient helper `sum_to_shape`.
//!
//! The op methods validate and resolve the axes, build the op record and run it on the device's
//! backend (`Backend::reduce`, `arg_reduce`; the gradient rule `reduce_backward`); the CPU
//! kernels (a permutation-free fold over runs of kept and reduced dims) are described in
//! `backend/cpu/reduce.rs`.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::shape::{normalize_axes, normalize_axis};
use crate::{Error, Result, Tensor};

/// The vector norms of [`Tensor::norm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormOrd {
    /// Sum of absolute values.
    L1,
    /// Euclidean norm.
    L2,
}

/// Moves the reduced axes last and returns (contiguous values, kept shape, reduced count).
#[allow(dead_code)]
pub(crate) fn reduce_layout(t: &Tensor, axes: &[usize]) -> Result<(Tensor, Vec<usize>, usize)> {
    let r = t.rank();
    let kept: Vec<usize> = (0..r).filter(|d| !axes.contains(d)).collect();
    let mut perm = kept.clone();
    perm.extend_from_slice(axes);
    let moved = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        t.detach()
    } else {
        t.detach().permute(&perm)?
    };
    let moved = moved.contiguous()?;
    let kept_shape: Vec<usize> = kept.iter().map(|&d| t.shape()[d]).collect();
    let count = axes.iter().map(|&d| t.shape()[d]).product();
    Ok((moved, kept_shape, count))
}

/// Output shape of a reduction over `axes` with or without kept dims.
pub(crate) fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (d, &s) in shape.iter().enumerate() {
        if axes.contains(&d) {
            if keepdim {
                out.push(1);
            }
        } else {
            out.push(s);
        }
    }
    out
}

/// Sorted axes of a reduction; empty means all axes.
fn resolve_axes(op: &'static str, t: &Tensor, axes: &[isize]) -> Result<Vec<usize>> {
    if axes.is_empty() {
        Ok((0..t.rank()).collect())
    } else {
        normalize_axes(op, axes, t.rank())
    }
}

impl Tensor {
    /// Runs the reduction `rec` on the device's backend: its output and auxiliary tensor (see
    /// `Backend::reduce`).
    fn reduce_on_backend(&self, rec: &Op) -> Result<(Tensor, Option<Tensor>)> {
        backend::for_device(self.device(), rec.name())?.reduce(rec, self)
    }

    /// Sum over `axes` (negative allowed; empty = all axes).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("sum")?;
        let axes = resolve_axes("sum", self, axes)?;
        let rec = Op::Sum {
            dims: axes,
            keepdim,
        };
        let (out, _) = self.reduce_on_backend(&rec)?;
        Ok(record_rule(out, rec, &[self], grad, Saved::none()))
    }

    /// Sum of all elements (a scalar tensor).
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `axes` (empty = all). Errors on an empty reduction.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("mean")?;
        let axes = resolve_axes("mean", self, axes)?;
        let count: usize = axes.iter().map(|&d| self.shape()[d]).product();
        if count == 0 {
            return Err(Error::invalid(
                "mean",
                format!("mean over an empty axis of shape {:?}", self.shape()),
            ));
        }
        let rec = Op::Mean {
            dims: axes,
            keepdim,
        };
        let (out, _) = self.reduce_on_backend(&rec)?;
        Ok(record_rule(out, rec, &[self], grad, Saved::none()))
    }

    /// Mean of all elements.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Maximum over `axes` (empty = all); NaN propagates. The gradient goes to the first
    /// maximal element of each group in row-major order (PyTorch's `max(dim)` convention; ties
    /// are not split as `amax` does).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("max", axes, keepdim, true)
    }

    /// Minimum over `axes` (empty = all); NaN propagates. The gradient goes to the first minimal
    /// element of each group (see [`Tensor::max`]).
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("min", axes, keepdim, false)
    }

    /// Maximum of all elements.
    pub fn max_all(&self) -> Result<Tensor> {
        self.max(&[], false)
    }

    /// Minimum of all elements.
    pub fn min_all(&self) -> Result<Tensor> {
        self.min(&[], false)
    }

    fn extremum(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        is_max: bool,
    ) -> Result<Tensor> {
        self.expect_f32(op)?;
        let axes = resolve_axes(op, self, axes)?;
        if axes.iter().any(|&d| self.shape()[d] == 0) {
            return Err(Error::invalid(
                op,
                format!(
                    "cannot reduce over an empty axis of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let rec = if is_max {
            Op::Max {
                dims: axes,
                keepdim,
            }
        } else {
            Op::Min {
                dims: axes,
                keepdim,
            }
        };
        let (out, _) = self.reduce_on_backend(&rec)?;
        if !crate::autograd::is_recorded(&[self]) {
            return Ok(out);
        }
        let (x, y) = (self.detach(), out.detach());
        Ok(record_rule(
            out,
            rec,
            &[self],
            grad,
            Saved::tensors(vec![x, y]),
        ))
    }

    /// Index of the maximum along `axis` (first occurrence; NaN counts as the maximum, like
    /// PyTorch), as an I64 tensor. Works for float and integer dtypes.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum("argmax", axis, keepdim, true)
    }

    /// Index of the minimum along `axis` (first occurrence; NaN counts as the minimum), as an
    /// I64 tensor.
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extremum("argmin", axis, keepdim, false)
    }

    /// Flat (row-major) index of the maximum of all elements, as a 0-d I64 tensor.
    pub fn argmax_all(&self) -> Result<Tensor> {
        self.detach().reshape(&[self.numel()])?.argmax(0, false)
    }

    /// Flat (row-major) index of the minimum of all elements, as a 0-d I64 tensor.
    pub fn argmin_all(&self) -> Result<Tensor> {
        self.detach().reshape(&[self.numel()])?.argmin(0, false)
    }

    fn arg_extremum(
        &self,
        op: &'static str,
        axis: isize,
        keepdim: bool,
        is_max: bool,
    ) -> Result<Tensor> {
        let b = backend::for_device(self.device(), op)?;
        let ax = normalize_axis(op, axis, self.rank().max(1))?;
        let shape: Vec<usize> = if self.rank() == 0 {
            vec![1]
        } else {
            self.shape().to_vec()
        };
        let r = shape[ax];
        if r == 0 {
            return Err(Error::invalid(
                op,
                format!("axis {ax} of shape {:?} is empty", self.shape()),
            ));
        }
        let k1: usize = shape[..ax].iter().product();
        let k2: usize = shape[ax + 1..].iter().product();
        let out_shape = if self.rank() == 0 {
            vec![]
        } else {
            reduced_shape(self.shape(), &[ax], keepdim)
        };
        b.arg_reduce(op, self, (k1, r, k2), is_max, &out_shape)
    }

    /// Product over `axes` (empty = all). The gradient is exact with zeros: with one zero in a
    /// group only the zero gets the product of the others, with two or more all get 0.
    pub fn prod(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("prod")?;
        let axes = resolve_axes("prod", self, axes)?;
        let rec = Op::Prod {
            dims: axes,
            keepdim,
        };
        let (out, _) = self.reduce_on_backend(&rec)?;
        if !crate::autograd::is_recorded(&[self]) {
            return Ok(out);
        }
        let x = self.detach();
        Ok(record_rule(
            out,
            rec,
            &[self],
            grad,
            Saved::tensors(vec![x]),
        ))
    }

    /// Variance over `axes` (empty = all) with `correction` subtracted from the count
    /// (0: population, 1: Bessel's unbiased estimate). Like PyTorch, a count not above the
    /// correction gives inf/NaN.
    pub fn var(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        self.var_std("var", axes, correction, keepdim, false)
    }

    /// Standard deviation, the square root of [`Tensor::var`].
    pub fn std(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        self.var_std("std", axes, correction, keepdim, true)
    }

    fn var_std(
        &self,
        op: &'static str,
        axes: &[isize],
        correction: usize,
        keepdim: bool,
        take_sqrt: bool,
    ) -> Result<Tensor> {
        self.expect_f32(op)?;
        let axes = resolve_axes(op, self, axes)?;
        let rec = if take_sqrt {
            Op::Std {
                dims: axes,
                correction,
                keepdim,
            }
        } else {
            Op::Var {
                dims: axes,
                correction,
                keepdim,
            }
        };
        let (out, mean) = self.reduce_on_backend(&rec)?;
        let mean = mean.ok_or_else(|| missing_aux(op))?;
        let (x, y) = (self.detach(), out.detach());
        Ok(record_rule(
            out,
            rec,
            &[self],
            grad,
            Saved::tensors(vec![x, mean, y]),
        ))
    }

    /// `log(Σ exp(x))` over `axes` (empty = all), computed stably by shifting with the maximum.
    /// The gradient is the softmax over the reduced axes.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("logsumexp")?;
        let axes = resolve_axes("logsumexp", self, axes)?;
        let rec = Op::LogSumExp {
            dims: axes,
            keepdim,
        };
        let (out, keep) = self.reduce_on_backend(&rec)?;
        let keep = keep.ok_or_else(|| missing_aux("logsumexp"))?;
        let x = self.detach();
        Ok(record_rule(
            out,
            rec,
            &[self],
            grad,
            Saved::tensors(vec![x, keep]),
        ))
    }

    /// Vector norm over `axes` (empty = all): L1 `Σ|x|` or L2 `√Σx²`. The L2 gradient at a zero
    /// norm is 0, the L1 gradient at 0 elements is 0.
    pub fn norm(&self, p: NormOrd, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("norm")?;
        let axes = resolve_axes("norm", self, axes)?;
        let rec = Op::Norm {
            ord: p,
            dims: axes,
            keepdim,
        };
        let (out, _) = self.reduce_on_backend(&rec)?;
        let x = self.detach();
        let saved = match p {
            NormOrd::L1 => vec![x],
            NormOrd::L2 => vec![x, out.detach()],
        };
        Ok(record_rule(out, rec, &[self], grad, Saved::tensors(saved)))
    }

    /// Sums a broadcast gradient back to `shape` (the inverse of broadcasting `shape` to
    /// `self.shape()`).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let r = self.rank();
        if shape.len() > r {
            return Err(Error::shape_mismatch("sum_to_shape", self.shape(), shape));
        }
        let lead = r - shape.len();
        let mut axes = Vec::new();
        for d in 0..r {
            if d < lead || (shape[d - lead] == 1 && self.shape()[d] != 1) {
                axes.push(d as isize);
            } else if shape[d - lead] != self.shape()[d] {
                return Err(Error::shape_mismatch("sum_to_shape", self.shape(), shape));
            }
        }
        if axes.is_empty() {
            return self.reshape(shape);
        }
        self.sum(&axes, false)?.reshape(shape)
    }
}

/// The error for a backend that returned no auxiliary tensor for a reduction that saves one.
fn missing_aux(op: &'static str) -> Error {
    Error::invalid(
        op,
        "internal error: the backend returned no auxiliary tensor",
    )
}

/// The gradient rule of the reductions: the tensors each op saved are handed to the device's
/// backend, which broadcasts the output gradient back over the reduced axes times the
/// reduction's local derivative.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let n_saved = match op {
        Op::Sum { .. } | Op::Mean { .. } => 0,
        Op::Prod { .. }
        | Op::Norm {
            ord: NormOrd::L1, ..
        } => 1,
        Op::Max { .. } | Op::Min { .. } | Op::LogSumExp { .. } | Op::Norm { .. } => 2,
        Op::Var { .. } | Op::Std { .. } => 3,
        _ => return Err(ctx.unexpected()),
    };
    let mut saved = [None; 3];
    for (i, s) in saved.iter_mut().enumerate().take(n_saved) {
        *s = Some(ctx.saved(i)?);
    }
    let gx = backend::for_device(g.device(), op.name())?.reduce_backward(
        op,
        ctx.input_shape(0),
        saved,
        g,
    )?;
    Ok(vec![Some(gx)])
}
