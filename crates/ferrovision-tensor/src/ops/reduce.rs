//! Reductions over axes (with keepdim) and the broadcasting-gradient helper `sum_to_shape`.

use crate::autograd::record;
use crate::shape::{normalize_axes, numel};
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Moves the reduced axes last and returns (contiguous values, kept shape, reduced count).
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

impl Tensor {
    /// Sum over `axes` (negative allowed; empty = all axes).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("sum")?;
        let axes = if axes.is_empty() {
            (0..self.rank()).collect()
        } else {
            normalize_axes("sum", axes, self.rank())?
        };
        let out_shape = reduced_shape(self.shape(), &axes, keepdim);
        let out = sum_kernel(self, &axes)?.reshape(&out_shape)?;
        let in_shape = self.shape().to_vec();
        let keep_shape = reduced_shape(self.shape(), &axes, true);
        Ok(record(out, "sum", &[self], move |g| {
            Ok(vec![Some(
                g.reshape(&keep_shape)?.expand(&in_shape)?.contiguous()?,
            )])
        }))
    }

    /// Sum of all elements (a scalar tensor).
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `axes` (empty = all).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let axes_n = if axes.is_empty() {
            (0..self.rank()).collect()
        } else {
            normalize_axes("mean", axes, self.rank())?
        };
        let count: usize = axes_n.iter().map(|&d| self.shape()[d]).product();
        if count == 0 {
            return Err(Error::invalid(
                "mean",
                format!("mean over an empty axis of shape {:?}", self.shape()),
            ));
        }
        self.sum(axes, keepdim)?.mul_scalar(1.0 / count as f32)
    }

    /// Mean of all elements.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
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
            if d < lead {
                axes.push(d as isize);
            } else if shape[d - lead] == 1 && self.shape()[d] != 1 {
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

/// Sums over sorted axes into a flat vector of the kept elements.
fn sum_kernel(t: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let (moved, kept_shape, count) = reduce_layout(t, axes)?;
    let n_out = numel(&kept_shape);
    let mut out = pool::take_uninit(n_out.max(1));
    out.truncate(n_out.max(1));
    moved.with_f32("sum", |s| {
        if count == 0 {
            out.fill(0.0);
            return;
        }
        for (o, chunk) in out.iter_mut().zip(s.chunks(count)) {
            // Pairwise-ish accumulation in 8 lanes for accuracy and vectorisation.
            let mut acc = [0.0f32; 8];
            let mut it = chunk.chunks_exact(8);
            for c in &mut it {
                for i in 0..8 {
                    acc[i] += c[i];
                }
            }
            let mut total: f32 = acc.iter().sum();
            for &x in it.remainder() {
                total += x;
            }
            *o = total;
        }
    })?;
    Ok(Tensor::from_f32(out, &kept_shape))
}
