//! CPU reductions: the kernels behind [`Backend::reduce`](super::super::Backend::reduce),
//! `reduce_backward` and `arg_reduce`.
//!
//! The kernel never permutes the data: the shape is split into alternating runs of kept and
//! reduced dimensions, and each reduced run is folded in place of the layout, innermost first —
//! either along contiguous rows (`[K, R]`: vector lane accumulators) or across rows (`[K1, R, K2]`:
//! whole rows combined into an accumulator row). Batch-norm style `[N,C,H,W]` over `[0,2,3]` is
//! one pass of row sums over `H·W` followed by a `[N, C]` column fold. Big inputs are split over
//! threads along whichever dimension has enough work. The composite reductions (mean, var/std,
//! logsumexp, norm) and the gradient rules' kernels are here too; the op file
//! (`ops/reduce.rs`) validates, resolves axes and records.

use crate::autograd::Op;
use crate::kernels::elementwise::{self as ew, MaxOp, MinOp, ProdOp, Reducer, SumOp};
use crate::ops::broadcast::{broadcast_map2, broadcast_map3, expand_vec};
use crate::ops::reduce::reduced_shape;
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, numel, StridedIter};
use crate::storage::pool;
use crate::{DType, Error, NormOrd, Result, Tensor};

/// A reduction's forward `(output, auxiliary)`: the auxiliary tensor is the keepdim mean of
/// var/std and the keepdim result of logsumexp (saved by their gradient rules), else `None`.
pub(super) fn forward(op: &Op, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    match op {
        Op::Sum { dims, keepdim } => Ok((reduce_raw(x, "sum", dims, *keepdim, SumOp)?, None)),
        Op::Mean { dims, keepdim } => {
            let count: usize = dims.iter().map(|&d| x.shape()[d]).product();
            let out = reduce_raw(x, "mean", dims, *keepdim, SumOp)?;
            let c = count as f32;
            out.with_f32_mut("mean", |v| ew::apply(v, |s| s / c))?;
            Ok((out, None))
        }
        Op::Max { dims, keepdim } => Ok((reduce_raw(x, "max", dims, *keepdim, MaxOp)?, None)),
        Op::Min { dims, keepdim } => Ok((reduce_raw(x, "min", dims, *keepdim, MinOp)?, None)),
        Op::Prod { dims, keepdim } => Ok((reduce_raw(x, "prod", dims, *keepdim, ProdOp)?, None)),
        Op::Var {
            dims,
            correction,
            keepdim,
        } => var_std(x, "var", dims, *correction, *keepdim, false),
        Op::Std {
            dims,
            correction,
            keepdim,
        } => var_std(x, "std", dims, *correction, *keepdim, true),
        Op::LogSumExp { dims, keepdim } => logsumexp(x, dims, *keepdim),
        Op::Norm { ord, dims, keepdim } => Ok((norm(x, *ord, dims, *keepdim)?, None)),
        _ => Err(super::not_in_family(op, "reduction")),
    }
}

/// Runs `R` over `axes` of an f32 tensor into a tensor of the reduced shape.
fn reduce_raw<R: Reducer>(
    x: &Tensor,
    op: &'static str,
    axes: &[usize],
    keepdim: bool,
    r: R,
) -> Result<Tensor> {
    x.expect_f32(op)?;
    let shape = x.shape().to_vec();
    let vals = x.with_f32(op, |x| reduce_f32(x, &shape, axes, r))?;
    Ok(Tensor::from_f32(
        vals,
        &reduced_shape(&shape, axes, keepdim),
    ))
}

/// Variance (or its square root) over `axes`, and the keepdim mean.
fn var_std(
    x: &Tensor,
    op: &'static str,
    axes: &[usize],
    correction: usize,
    keepdim: bool,
    take_sqrt: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let count: usize = axes.iter().map(|&d| x.shape()[d]).product();
    let denom = count.saturating_sub(correction) as f32;
    let mean = reduce_raw(x, op, axes, true, SumOp)?;
    let c = count as f32;
    mean.with_f32_mut(op, |v| ew::apply(v, |s| s / c))?;
    let sq = broadcast_map2(op, x, &mean, |x, m| (x - m) * (x - m))?;
    let out = reduce_raw(&sq, op, axes, keepdim, SumOp)?;
    out.with_f32_mut(op, |v| {
        if take_sqrt {
            ew::apply(v, |s| (s / denom).sqrt())
        } else {
            ew::apply(v, |s| s / denom)
        }
    })?;
    Ok((out, Some(mean)))
}

/// `log(Σ exp(x))` over `axes`, shifted by the maximum; and the keepdim result.
fn logsumexp(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<(Tensor, Option<Tensor>)> {
    let m = reduce_raw(x, "logsumexp", axes, true, MaxOp)?;
    // An infinite maximum (all -inf, or a +inf) would give NaN in x - m; shift by 0 then.
    m.with_f32_mut("logsumexp", |v| {
        ew::apply(v, |m| if m.is_infinite() { 0.0 } else { m })
    })?;
    let e = broadcast_map2("logsumexp", x, &m, exp_diff)?;
    let s = reduce_raw(&e, "logsumexp", axes, true, SumOp)?;
    drop(e);
    let keep = super::unary_grad::zip_map(&s, &m, "logsumexp", |s, m| ew::log(s) + m)?;
    let out = keep.reshape(&reduced_shape(x.shape(), axes, keepdim))?;
    Ok((out, Some(keep)))
}

/// L1 `Σ|x|` or L2 `√Σx²` over `axes`.
fn norm(x: &Tensor, p: NormOrd, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    match p {
        NormOrd::L1 => {
            let a = super::map_unary(x, "norm", f32::abs)?;
            reduce_raw(&a, "norm", axes, keepdim, SumOp)
        }
        NormOrd::L2 => {
            if axes.len() == x.rank() {
                // Whole tensor: one fused pass.
                let s = x.with_f32("norm", |v| {
                    if v.len() >= PAR_MIN && crate::parallel::num_threads() > 1 {
                        let parts: Vec<f32> = v.par_chunks(PAR_MIN).map(ew::sum_sq).collect();
                        parts.iter().sum::<f32>()
                    } else {
                        ew::sum_sq(v)
                    }
                })?;
                Ok(Tensor::from_f32(
                    vec![s.sqrt()],
                    &reduced_shape(x.shape(), axes, keepdim),
                ))
            } else {
                let sq = super::map_unary(x, "norm", |v| v * v)?;
                let out = reduce_raw(&sq, "norm", axes, keepdim, SumOp)?;
                out.with_f32_mut("norm", |v| ew::apply(v, f32::sqrt))?;
                Ok(out)
            }
        }
    }
}

/// The index of the first extremum along the middle axis of `x` seen as `[k1, r, k2]`, as an
/// I64 tensor of `out_shape` (any dtype; half floats and bools compare as f32).
pub(super) fn arg_reduce(
    op: &'static str,
    x: &Tensor,
    (k1, r, k2): (usize, usize, usize),
    is_max: bool,
    out_shape: &[usize],
) -> Result<Tensor> {
    let idx = match x.dtype() {
        DType::F32 => x.with_f32(op, |x| arg_kernel(x, k1, r, k2, is_max))?,
        DType::I64 => arg_kernel(&x.to_vec::<i64>()?, k1, r, k2, is_max),
        DType::I32 => arg_kernel(&x.to_vec::<i32>()?, k1, r, k2, is_max),
        DType::U8 => arg_kernel(&x.to_vec::<u8>()?, k1, r, k2, is_max),
        DType::F16 | DType::BF16 | DType::Bool => {
            let f = x.to_dtype(DType::F32)?;
            f.with_f32(op, |x| arg_kernel(x, k1, r, k2, is_max))?
        }
    };
    Tensor::from_vec(idx, out_shape)
}

/// Saved tensor `i` of a reduction's gradient rule.
fn saved_at<'a>(saved: &[Option<&'a Tensor>; 3], i: usize, op: &str) -> Result<&'a Tensor> {
    saved[i].ok_or_else(|| {
        Error::Backward(format!(
            "internal error in the gradient of op '{op}': a saved tensor is missing"
        ))
    })
}

/// The input gradient of a reduction: the output gradient `g` broadcast back over the reduced
/// axes of the input (of shape `x_shape`), times each reduction's local derivative; `saved` are
/// the tensors its op method saved.
pub(super) fn backward(
    op: &Op,
    x_shape: &[usize],
    saved: [Option<&Tensor>; 3],
    g: &Tensor,
) -> Result<Tensor> {
    let name = op.name();
    match op {
        Op::Sum { dims, .. } => {
            let in_shape = x_shape.to_vec();
            let keep_shape = reduced_shape(&in_shape, dims, true);
            let v = expand_vec(&g.reshape(&keep_shape)?, &in_shape)?;
            Ok(Tensor::from_f32(v, &in_shape))
        }
        Op::Mean { dims, .. } => {
            let in_shape = x_shape.to_vec();
            let keep_shape = reduced_shape(&in_shape, dims, true);
            let c = dims.iter().map(|&d| in_shape[d]).product::<usize>() as f32;
            let mut v = expand_vec(&g.reshape(&keep_shape)?, &in_shape)?;
            ew::apply(&mut v, |x| x / c);
            Ok(Tensor::from_f32(v, &in_shape))
        }
        Op::Max { dims: axes, .. } | Op::Min { dims: axes, .. } => {
            let op = op.name();
            let (x, y) = (saved_at(&saved, 0, name)?, saved_at(&saved, 1, name)?);
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
            Ok(Tensor::from_f32(gx, &shape))
        }
        Op::Prod { dims: axes, .. } => {
            let x = saved_at(&saved, 0, name)?;
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
            Ok(Tensor::from_f32(gx, &shape))
        }
        Op::Var {
            dims, correction, ..
        }
        | Op::Std {
            dims, correction, ..
        } => {
            let op = op.name();
            let take_sqrt = matches!(op, "std");
            let (x, mean, y) = (
                saved_at(&saved, 0, name)?,
                saved_at(&saved, 1, name)?,
                saved_at(&saved, 2, name)?,
            );
            let keep_shape = reduced_shape(x.shape(), dims, true);
            let count: usize = dims.iter().map(|&d| x.shape()[d]).product();
            let denom = count.saturating_sub(*correction) as f32;
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let gx = if take_sqrt {
                // d std = d var / (2 std)
                let gs = super::unary_grad::zip_map(&gk, &y.reshape(&keep_shape)?, op, |g, s| {
                    g / (denom * s)
                })?;
                broadcast_map3(op, x, mean, &gs, &shape, |x, m, g| g * (x - m))?
            } else {
                let k = 2.0 / denom;
                broadcast_map3(op, x, mean, &gk, &shape, move |x, m, g| g * k * (x - m))?
            };
            Ok(gx)
        }
        Op::LogSumExp { .. } => {
            let (x, keep) = (saved_at(&saved, 0, name)?, saved_at(&saved, 1, name)?);
            let keep_shape = keep.shape().to_vec();
            let shape = x.shape().to_vec();
            let gk = g.reshape(&keep_shape)?;
            let gx = broadcast_map3("logsumexp backward", x, keep, &gk, &shape, softmax_grad)?;
            Ok(gx)
        }
        Op::Norm {
            ord: NormOrd::L1,
            dims,
            ..
        } => {
            let x = saved_at(&saved, 0, name)?;
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
            Ok(gx)
        }
        Op::Norm {
            ord: NormOrd::L2,
            dims,
            ..
        } => {
            let (x, y) = (saved_at(&saved, 0, name)?, saved_at(&saved, 1, name)?);
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
            Ok(gx)
        }
        _ => Err(super::not_in_family(op, "reduction")),
    }
}

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
