//! Reductions over axes (with keepdim): sum, mean, max, min, argmax, argmin, prod, var, std,
//! logsumexp, norm; and the broadcasting-gradient helper `sum_to_shape`.
//!
//! The kernel never permutes the data: the shape is split into alternating runs of kept and
//! reduced dimensions, and each reduced run is folded in place of the layout, innermost first —
//! either along contiguous rows (`[K, R]`: vector lane accumulators) or across rows (`[K1, R, K2]`:
//! whole rows combined into an accumulator row). Batch-norm style `[N,C,H,W]` over `[0,2,3]` is
//! one pass of row sums over `H·W` followed by a `[N, C]` column fold. Big inputs are split over
//! threads along whichever dimension has enough work.

use super::broadcast::{broadcast_map2, broadcast_map3, expand_vec};
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::kernels::elementwise::{self as ew, MaxOp, MinOp, ProdOp, Reducer, SumOp};
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, normalize_axes, normalize_axis, numel, StridedIter};
use crate::storage::pool;
use crate::{DType, Error, Result, Tensor};

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

// ----- kernels -----

/// Inputs below this many elements are reduced on one thread.
const PAR_MIN: usize = 1 << 16;
/// Rows folded into a block accumulator before it joins the total (accuracy of long sums).
const ROW_BLOCK: usize = 64;

/// Reduces the row-major `data` of `shape` over the sorted `axes` with `R`, returning the kept
/// elements in row-major order (identity values when the reduced extent is empty).
pub(crate) fn reduce_f32<R: Reducer>(
    data: &[f32],
    shape: &[usize],
    axes: &[usize],
    r: R,
) -> Vec<f32> {
    let n_out: usize = (0..shape.len())
        .filter(|d| !axes.contains(d))
        .map(|d| shape[d])
        .product();
    if data.is_empty() {
        let mut v = pool::take_uninit(n_out);
        v.fill(R::IDENTITY);
        return v;
    }
    // Runs of (size, reduced); size-1 dims vanish.
    let mut blocks: Vec<(usize, bool)> = Vec::new();
    for (d, &s) in shape.iter().enumerate() {
        if s == 1 {
            continue;
        }
        let red = axes.contains(&d);
        match blocks.last_mut() {
            Some((size, rr)) if *rr == red => *size *= s,
            _ => blocks.push((s, red)),
        }
    }
    let mut cur: Option<Vec<f32>> = None;
    while let Some(j) = blocks.iter().rposition(|b| b.1) {
        let k1: usize = blocks[..j].iter().map(|b| b.0).product();
        let rs = blocks[j].0;
        let k2: usize = blocks[j + 1..].iter().map(|b| b.0).product();
        let src: &[f32] = cur.as_deref().unwrap_or(data);
        let next = if k2 == 1 {
            reduce_rows(src, k1, rs, r)
        } else {
            reduce_mid(src, k1, rs, k2, r)
        };
        if let Some(old) = cur.replace(next) {
            pool::give_back(old);
        }
        blocks.remove(j);
        if j > 0 && j < blocks.len() {
            // Two kept runs are now adjacent.
            let s = blocks.remove(j).0;
            blocks[j - 1].0 *= s;
        }
    }
    match cur {
        Some(v) => v,
        None => {
            let mut v = pool::take_uninit(data.len());
            v.copy_from_slice(data);
            v
        }
    }
}

/// `out[i] = R(x[i, :])` for `x` of shape `[k, r]`.
fn reduce_rows<R: Reducer>(x: &[f32], k: usize, r: usize, op: R) -> Vec<f32> {
    let mut out = pool::take_uninit(k);
    let threads = crate::parallel::num_threads();
    if k * r < PAR_MIN || threads <= 1 {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(r)) {
            *o = ew::reduce(row, op);
        }
    } else if k >= 2 * threads {
        let per = k.div_ceil(4 * threads).max(1);
        out.par_chunks_mut(per)
            .zip(x.par_chunks(per * r))
            .for_each(|(o, rows)| {
                for (v, row) in o.iter_mut().zip(rows.chunks_exact(r)) {
                    *v = ew::reduce(row, op);
                }
            });
    } else {
        // Few long rows: split each row over the threads.
        let per = r.div_ceil(threads).max(4096);
        for (o, row) in out.iter_mut().zip(x.chunks_exact(r)) {
            let partial: Vec<f32> = row.par_chunks(per).map(|c| ew::reduce(c, op)).collect();
            *o = partial.into_iter().fold(R::IDENTITY, R::combine);
        }
    }
    out
}

/// `out[c] = R over j of x[j·stride + c]` for `j < r`, `c < out.len()`.
fn fold_slab<R: Reducer>(x: &[f32], r: usize, stride: usize, out: &mut [f32], op: R) {
    let w = out.len();
    out.copy_from_slice(&x[..w]);
    let first = r.min(ROW_BLOCK);
    for j in 1..first {
        ew::combine_into(out, &x[j * stride..j * stride + w], op);
    }
    if r <= ROW_BLOCK {
        return;
    }
    // Two-level order: blocks of rows are folded separately, then added to the total.
    let mut blk = pool::take_uninit(w);
    let mut j = first;
    while j < r {
        let end = (j + ROW_BLOCK).min(r);
        blk.copy_from_slice(&x[j * stride..j * stride + w]);
        for jj in j + 1..end {
            ew::combine_into(&mut blk, &x[jj * stride..jj * stride + w], op);
        }
        ew::combine_into(out, &blk, op);
        j = end;
    }
    pool::give_back(blk);
}

/// `out[i, c] = R over j of x[i, j, c]` for `x` of shape `[k1, r, k2]`.
fn reduce_mid<R: Reducer>(x: &[f32], k1: usize, r: usize, k2: usize, op: R) -> Vec<f32> {
    let mut out = pool::take_uninit(k1 * k2);
    let threads = crate::parallel::num_threads();
    let slab = r * k2;
    if k1 * slab < PAR_MIN || threads <= 1 {
        for (o, s) in out.chunks_exact_mut(k2).zip(x.chunks_exact(slab)) {
            fold_slab(s, r, k2, o, op);
        }
    } else if k1 >= 2 * threads {
        out.par_chunks_mut(k2)
            .zip(x.par_chunks(slab))
            .for_each(|(o, s)| fold_slab(s, r, k2, o, op));
    } else if k2 >= 256 * threads {
        // Wide rows: split the columns.
        let per = k2.div_ceil(threads);
        for (o, s) in out.chunks_exact_mut(k2).zip(x.chunks_exact(slab)) {
            o.par_chunks_mut(per)
                .enumerate()
                .for_each(|(ci, oc)| fold_slab(&s[ci * per..], r, k2, oc, op));
        }
    } else {
        // Tall and narrow: split the reduced rows, then combine the partial results.
        let per = r.div_ceil(threads);
        let parts: Vec<Vec<f32>> = (0..r.div_ceil(per))
            .into_par_iter()
            .map(|p| {
                let (j0, j1) = (p * per, ((p + 1) * per).min(r));
                let mut part = pool::take_uninit(k1 * k2);
                for (i, o) in part.chunks_exact_mut(k2).enumerate() {
                    fold_slab(&x[i * slab + j0 * k2..], j1 - j0, k2, o, op);
                }
                part
            })
            .collect();
        let mut it = parts.into_iter();
        let first = it.next().expect("r > 0");
        out.copy_from_slice(&first);
        pool::give_back(first);
        for p in it {
            ew::combine_into(&mut out, &p, op);
            pool::give_back(p);
        }
    }
    out
}

/// `Σ a·b` over the sorted `axes` of two row-major arrays of `shape`, without materialising
/// the product: the innermost reduced run is folded with fused multiply-add kernels, the rest
/// by [`reduce_f32`] on the (smaller) partial sums.
pub(crate) fn dot_reduce_f32(a: &[f32], b: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
    debug_assert_eq!(a.len(), b.len());
    let mut blocks: Vec<(usize, bool)> = Vec::new();
    for (d, &s) in shape.iter().enumerate() {
        if s == 1 {
            continue;
        }
        let red = axes.contains(&d);
        match blocks.last_mut() {
            Some((size, rr)) if *rr == red => *size *= s,
            _ => blocks.push((s, red)),
        }
    }
    let Some(j) = blocks.iter().rposition(|b| b.1).filter(|_| !a.is_empty()) else {
        let mut out = pool::take_uninit(a.len());
        ew::map2(a, b, &mut out, |x, y| x * y);
        return reduce_f32(&out, shape, axes, SumOp);
    };
    let k1: usize = blocks[..j].iter().map(|b| b.0).product();
    let rs = blocks[j].0;
    let k2: usize = blocks[j + 1..].iter().map(|b| b.0).product();
    let partial = if k2 == 1 {
        dot_rows(a, b, k1, rs)
    } else {
        dot_mid(a, b, k1, rs, k2)
    };
    blocks.remove(j);
    let rest: Vec<usize> = blocks.iter().map(|b| b.0).collect();
    let rest_axes: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i].1).collect();
    if rest_axes.is_empty() {
        return partial;
    }
    let out = reduce_f32(&partial, &rest, &rest_axes, SumOp);
    pool::give_back(partial);
    out
}

/// `out[i] = Σ_j a[i, j]·b[i, j]` for `[k, r]` data.
fn dot_rows(a: &[f32], b: &[f32], k: usize, r: usize) -> Vec<f32> {
    let mut out = pool::take_uninit(k);
    let threads = crate::parallel::num_threads();
    if k * r < PAR_MIN || threads <= 1 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = ew::dot(&a[i * r..(i + 1) * r], &b[i * r..(i + 1) * r]);
        }
    } else if k >= 2 * threads {
        let per = k.div_ceil(4 * threads).max(1);
        out.par_chunks_mut(per).enumerate().for_each(|(ci, o)| {
            for (ii, v) in o.iter_mut().enumerate() {
                let i = ci * per + ii;
                *v = ew::dot(&a[i * r..(i + 1) * r], &b[i * r..(i + 1) * r]);
            }
        });
    } else {
        let per = r.div_ceil(threads).max(4096);
        for (i, o) in out.iter_mut().enumerate() {
            let (ra, rb) = (&a[i * r..(i + 1) * r], &b[i * r..(i + 1) * r]);
            let parts: Vec<f32> = ra
                .par_chunks(per)
                .zip(rb.par_chunks(per))
                .map(|(x, y)| ew::dot(x, y))
                .collect();
            *o = parts.iter().sum();
        }
    }
    out
}

/// `out[c] = Σ_j a[j·stride + c]·b[j·stride + c]` for `j < r` (blocked like [`fold_slab`]).
fn dot_slab(a: &[f32], b: &[f32], r: usize, stride: usize, out: &mut [f32]) {
    let w = out.len();
    out.fill(0.0);
    let mut blk = pool::take_uninit(w);
    let mut j = 0;
    while j < r {
        let end = (j + ROW_BLOCK).min(r);
        blk.fill(0.0);
        for jj in j..end {
            let o = jj * stride;
            ew::mul_add_into(&mut blk, &a[o..o + w], &b[o..o + w]);
        }
        ew::combine_into(out, &blk, SumOp);
        j = end;
    }
    pool::give_back(blk);
}

/// `out[i, c] = Σ_j a[i, j, c]·b[i, j, c]` for `[k1, r, k2]` data.
fn dot_mid(a: &[f32], b: &[f32], k1: usize, r: usize, k2: usize) -> Vec<f32> {
    let mut out = pool::take_uninit(k1 * k2);
    let threads = crate::parallel::num_threads();
    let slab = r * k2;
    if k1 * slab < PAR_MIN || threads <= 1 {
        for (i, o) in out.chunks_exact_mut(k2).enumerate() {
            dot_slab(&a[i * slab..], &b[i * slab..], r, k2, o);
        }
    } else if k1 >= 2 * threads {
        out.par_chunks_mut(k2)
            .enumerate()
            .for_each(|(i, o)| dot_slab(&a[i * slab..], &b[i * slab..], r, k2, o));
    } else if k2 >= 256 * threads {
        let per = k2.div_ceil(threads);
        for (i, o) in out.chunks_exact_mut(k2).enumerate() {
            o.par_chunks_mut(per).enumerate().for_each(|(ci, oc)| {
                let off = i * slab + ci * per;
                dot_slab(&a[off..], &b[off..], r, k2, oc)
            });
        }
    } else {
        let per = r.div_ceil(threads);
        let parts: Vec<Vec<f32>> = (0..r.div_ceil(per))
            .into_par_iter()
            .map(|p| {
                let (j0, j1) = (p * per, ((p + 1) * per).min(r));
                let mut part = pool::take_uninit(k1 * k2);
                for (i, o) in part.chunks_exact_mut(k2).enumerate() {
                    let off = i * slab + j0 * k2;
                    dot_slab(&a[off..], &b[off..], j1 - j0, k2, o);
                }
                part
            })
            .collect();
        out.fill(0.0);
        for p in parts {
            ew::combine_into(&mut out, &p, SumOp);
            pool::give_back(p);
        }
    }
    out
}

/// Storage offsets (into the row-major input) of each reduction group's elements: calls
/// `f(group, offsets)` per output element, with the offsets in row-major order of the reduced
/// axes.
fn for_each_group(shape: &[usize], axes: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let strides = contiguous_strides(shape);
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let count: usize = axes.iter().map(|&d| shape[d]).product();
    let n_out: usize = kept.iter().map(|&d| shape[d]).product();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let pshape: Vec<usize> = perm.iter().map(|&d| shape[d]).collect();
    let pstrides: Vec<usize> = perm.iter().map(|&d| strides[d]).collect();
    if count == 0 {
        return;
    }
    let mut it = StridedIter::new(&pshape, &pstrides, 0);
    let mut offs = vec![0usize; count];
    for o in 0..n_out {
        for v in offs.iter_mut() {
            *v = it.next().expect("sized by shape");
        }
        f(o, &offs);
    }
}

// ----- ops -----

impl Tensor {
    /// Runs `R` over `axes` of this f32 tensor into a tensor of the reduced shape (no autodiff).
    fn reduce_raw<R: Reducer>(
        &self,
        op: &'static str,
        axes: &[usize],
        keepdim: bool,
        r: R,
    ) -> Result<Tensor> {
        self.expect_f32(op)?;
        let shape = self.shape().to_vec();
        let vals = self.with_f32(op, |x| reduce_f32(x, &shape, axes, r))?;
        Ok(Tensor::from_f32(
            vals,
            &reduced_shape(&shape, axes, keepdim),
        ))
    }

    /// Sum over `axes` (negative allowed; empty = all axes).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("sum")?;
        let axes = resolve_axes("sum", self, axes)?;
        let out = self.reduce_raw("sum", &axes, keepdim, SumOp)?;
        Ok(record_rule(
            out,
            Op::Sum {
                dims: axes,
                keepdim,
            },
            &[self],
            grad,
            Saved::none(),
        ))
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
        let out = self.reduce_raw("mean", &axes, keepdim, SumOp)?;
        let c = count as f32;
        out.with_f32_mut("mean", |v| ew::apply(v, |s| s / c))?;
        Ok(record_rule(
            out,
            Op::Mean {
                dims: axes,
                keepdim,
            },
            &[self],
            grad,
            Saved::none(),
        ))
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
        let out = if is_max {
            self.reduce_raw(op, &axes, keepdim, MaxOp)?
        } else {
            self.reduce_raw(op, &axes, keepdim, MinOp)?
        };
        if !self.requires_grad() || !crate::is_grad_enabled() {
            return Ok(out);
        }
        let (x, y) = (self.detach(), out.detach());
        let rec = if is_max {
            Op::Max {
                dims: axes.clone(),
                keepdim,
            }
        } else {
            Op::Min {
                dims: axes.clone(),
                keepdim,
            }
        };
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
        self.check_cpu(op)?;
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
        let idx = match self.dtype() {
            DType::F32 => self.with_f32(op, |x| arg_kernel(x, k1, r, k2, is_max))?,
            DType::I64 => arg_kernel(&self.to_vec::<i64>()?, k1, r, k2, is_max),
            DType::I32 => arg_kernel(&self.to_vec::<i32>()?, k1, r, k2, is_max),
            DType::U8 => arg_kernel(&self.to_vec::<u8>()?, k1, r, k2, is_max),
            DType::F16 | DType::BF16 | DType::Bool => {
                let f = self.to_dtype(DType::F32)?;
                f.with_f32(op, |x| arg_kernel(x, k1, r, k2, is_max))?
            }
        };
        let out_shape = if self.rank() == 0 {
            vec![]
        } else {
            reduced_shape(self.shape(), &[ax], keepdim)
        };
        Tensor::from_vec(idx, &out_shape)
    }

    /// Product over `axes` (empty = all). The gradient is exact with zeros: with one zero in a
    /// group only the zero gets the product of the others, with two or more all get 0.
    pub fn prod(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_f32("prod")?;
        let axes = resolve_axes("prod", self, axes)?;
        let out = self.reduce_raw("prod", &axes, keepdim, ProdOp)?;
        if !self.requires_grad() || !crate::is_grad_enabled() {
            return Ok(out);
        }
        let x = self.detach();
        Ok(record_rule(
            out,
            Op::Prod {
                dims: axes.clone(),
                keepdim,
            },
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
        let count: usize = axes.iter().map(|&d| self.shape()[d]).product();
        let denom = count.saturating_sub(correction) as f32;
        let x = self.detach();
        let mean = x.reduce_raw(op, &axes, true, SumOp)?;
        let c = count as f32;
        mean.with_f32_mut(op, |v| ew::apply(v, |s| s / c))?;
        let sq = broadcast_map2(op, &x, &mean, |x, m| (x - m) * (x - m))?;
        let out = sq.reduce_raw(op, &axes, keepdim, SumOp)?;
        out.with_f32_mut(op, |v| {
            if take_sqrt {
                ew::apply(v, |s| (s / denom).sqrt())
            } else {
                ew::apply(v, |s| s / denom)
            }
        })?;
        let y = out.detach();
        let dims = axes.clone();
        let rec = if take_sqrt {
            Op::Std {
                dims,
                correction,
                keepdim,
            }
        } else {
            Op::Var {
                dims,
                correction,
                keepdim,
            }
        };
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
        let x = self.detach();
        let m = x.reduce_raw("logsumexp", &axes, true, MaxOp)?;
        // An infinite maximum (all -inf, or a +inf) would give NaN in x - m; shift by 0 then.
        m.with_f32_mut("logsumexp", |v| {
            ew::apply(v, |m| if m.is_infinite() { 0.0 } else { m })
        })?;
        let e = broadcast_map2("logsumexp", &x, &m, exp_diff)?;
        let s = e.reduce_raw("logsumexp", &axes, true, SumOp)?;
        drop(e);
        let keep = super::unary::zip_map(&s, &m, "logsumexp", |s, m| ew::log(s) + m)?;
        let out = keep.reshape(&reduced_shape(self.shape(), &axes, keepdim))?;
        Ok(record_rule(
            out,
            Op::LogSumExp {
                dims: axes.clone(),
                keepdim,
            },
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
        let x = self.detach();
        match p {
            NormOrd::L1 => {
                let a = crate::backend::cpu::map_unary(&x, "norm", f32::abs)?;
                let out = a.reduce_raw("norm", &axes, keepdim, SumOp)?;
                drop(a);
                Ok(record_rule(
                    out,
                    Op::Norm {
                        ord: p,
                        dims: axes.clone(),
                        keepdim,
                    },
                    &[self],
                    grad,
                    Saved::tensors(vec![x]),
                ))
            }
            NormOrd::L2 => {
                let out = if axes.len() == self.rank() {
                    // Whole tensor: one fused pass.
                    let s = x.with_f32("norm", |v| {
                        if v.len() >= PAR_MIN && crate::parallel::num_threads() > 1 {
                            let parts: Vec<f32> = v.par_chunks(PAR_MIN).map(ew::sum_sq).collect();
                            parts.iter().sum::<f32>()
                        } else {
                            ew::sum_sq(v)
                        }
                    })?;
                    Tensor::from_f32(vec![s.sqrt()], &reduced_shape(self.shape(), &axes, keepdim))
                } else {
                    let sq = crate::backend::cpu::map_unary(&x, "norm", |v| v * v)?;
                    let out = sq.reduce_raw("norm", &axes, keepdim, SumOp)?;
                    out.with_f32_mut("norm", |v| ew::apply(v, f32::sqrt))?;
                    out
                };
                let y = out.detach();
                Ok(record_rule(
                    out,
                    Op::Norm {
                        ord: p,
                        dims: axes.clone(),
                        keepdim,
                    },
                    &[self],
                    grad,
                    Saved::tensors(vec![x, y]),
                ))
            }
        }
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

/// The gradient rule of the reductions: the output gradient broadcast back over the reduced
/// axes, times each reduction's local derivative.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    match op {
        Op::Sum { dims, .. } => {
            let in_shape = ctx.input_shape(0).to_vec();
            let keep_shape = reduced_shape(&in_shape, dims, true);
            let v = expand_vec(&g.reshape(&keep_shape)?, &in_shape)?;
            Ok(vec![Some(Tensor::from_f32(v, &in_shape))])
        }
        Op::Mean { dims, .. } => {
            let in_shape = ctx.input_shape(0).to_vec();
            let keep_shape = reduced_shape(&in_shape, dims, true);
            let c = dims.iter().map(|&d| in_shape[d]).product::<usize>() as f32;
            let mut v = expand_vec(&g.reshape(&keep_shape)?, &in_shape)?;
            ew::apply(&mut v, |x| x / c);
            Ok(vec![Some(Tensor::from_f32(v, &in_shape))])
        }
        Op::Max { dims: axes, .. } | Op::Min { dims: axes, .. } => {
            let op = op.name();
            let (x, y) = (ctx.saved(0)?, ctx.saved(1)?);
            let shape = x.shape().to_vec();
            let mut gx = pool::take_zeroed(numel(&shape));
            x.with_f32(op, |xs| {
                y.with_f32(op, |ys| {
                    g.with_f32(op, |gs| {
                        for_each_group(&shape, axes, |o, offs| {
                            let t = ys[o];
                            let hit = offs
                                .iter()
                                .find(|&&i| xs[i] == t || (t.is_nan() && xs[i].is_nan()));
                            if let Some(&i) = hit {
                                gx[i] = gs[o];
                            }
                        })
                    })
                })
            })???;
            Ok(vec![Some(Tensor::from_f32(gx, &shape))])
        }
        Op::Prod { dims: axes, .. } => {
            let x = ctx.saved(0)?;
            let shape = x.shape().to_vec();
            let mut gx = pool::take_zeroed(numel(&shape));
            x.with_f32("prod backward", |xs| {
                g.with_f32("prod backward", |gs| {
                    for_each_group(&shape, axes, |o, offs| {
                        let mut zeros = 0;
                        let mut zero_at = 0;
                        let mut p = 1.0f32;
                        for &i in offs {
                            if xs[i] == 0.0 {
                                zeros += 1;
                                zero_at = i;
                            } else {
                                p *= xs[i];
                            }
                        }
                        match zeros {
                            0 => {
                                for &i in offs {
                                    gx[i] = gs[o] * (p / xs[i]);
                                }
                            }
                            1 => gx[zero_at] = gs[o] * p,
                            _ => {}
                        }
                    })
                })
            })??;
            Ok(vec![Some(Tensor::from_f32(gx, &shape))])
        }
        Op::Var {
            dims, correction, ..
        }
        | Op::Std {
            dims, correction, ..
        } => {
            let op = op.name();
            let take_sqrt = matches!(op, "std");
            let (x, mean, y) = (ctx.saved(0)?, ctx.saved(1)?, ctx.saved(2)?);
            let keep_shape = reduced_shape(x.shape(), dims, true);
            let count: usize = dims.iter().map(|&d| x.shape()[d]).product();
            let denom = count.saturating_sub(*correction) as f32;
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let gx = if take_sqrt {
                // d std = d var / (2 std)
                let gs = super::unary::zip_map(&gk, &y.reshape(&keep_shape)?, op, |g, s| {
                    g / (denom * s)
                })?;
                broadcast_map3(op, x, mean, &gs, &shape, |x, m, g| g * (x - m))?
            } else {
                let k = 2.0 / denom;
                broadcast_map3(op, x, mean, &gk, &shape, move |x, m, g| g * k * (x - m))?
            };
            Ok(vec![Some(gx)])
        }
        Op::LogSumExp { .. } => {
            let (x, keep) = (ctx.saved(0)?, ctx.saved(1)?);
            let keep_shape = keep.shape().to_vec();
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let gx = broadcast_map3("logsumexp backward", x, keep, &gk, &shape, softmax_grad)?;
            Ok(vec![Some(gx)])
        }
        Op::Norm {
            ord: NormOrd::L1,
            dims,
            ..
        } => {
            let x = ctx.saved(0)?;
            let keep_shape = reduced_shape(x.shape(), dims, true);
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let gx = broadcast_map2("norm backward", x, &gk, |x, g| {
                if x > 0.0 {
                    g
                } else if x < 0.0 {
                    -g
                } else {
                    0.0
                }
            })?;
            debug_assert_eq!(gx.shape(), shape.as_slice());
            Ok(vec![Some(gx)])
        }
        Op::Norm {
            ord: NormOrd::L2,
            dims,
            ..
        } => {
            let (x, y) = (ctx.saved(0)?, ctx.saved(1)?);
            let keep_shape = reduced_shape(x.shape(), dims, true);
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let yk = y.reshape(&keep_shape)?;
            let gx = broadcast_map3("norm backward", x, &yk, &gk, &shape, |x, n, g| {
                if n == 0.0 {
                    0.0
                } else {
                    x * (g / n)
                }
            })?;
            Ok(vec![Some(gx)])
        }
        _ => Err(ctx.unexpected()),
    }
}

/// Index of the first extremum along the middle axis of `[k1, r, k2]` data; NaN wins.
fn arg_kernel<T: Copy + PartialOrd>(
    x: &[T],
    k1: usize,
    r: usize,
    k2: usize,
    is_max: bool,
) -> Vec<i64> {
    #[allow(clippy::eq_op)]
    let better = |v: T, best: T| -> bool {
        let v_nan = v != v;
        let b_nan = best != best;
        !b_nan && (v_nan || if is_max { v > best } else { v < best })
    };
    let mut out = vec![0i64; k1 * k2];
    let mut best: Vec<T> = Vec::with_capacity(k2);
    for i in 0..k1 {
        let slab = &x[i * r * k2..(i + 1) * r * k2];
        let idx = &mut out[i * k2..(i + 1) * k2];
        best.clear();
        best.extend_from_slice(&slab[..k2]);
        for j in 1..r {
            let row = &slab[j * k2..(j + 1) * k2];
            for c in 0..k2 {
                if better(row[c], best[c]) {
                    best[c] = row[c];
                    idx[c] = j as i64;
                }
            }
        }
    }
    out
}

/// `e^(x - m)` (kept out of closures so that it inlines into the vectorised loops).
#[inline(always)]
fn exp_diff(x: f32, m: f32) -> f32 {
    ew::exp(x - m)
}

/// `g·e^(x - lse)`: the gradient of logsumexp.
#[inline(always)]
fn softmax_grad(x: f32, lse: f32, g: f32) -> f32 {
    g * ew::exp(x - lse)
}
