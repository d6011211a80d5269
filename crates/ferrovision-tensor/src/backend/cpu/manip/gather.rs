//! CPU gather/scatter kernels behind [`Backend::index_op`](crate::backend::Backend::index_op)
//! and `index_op_backward`: `gather`, `scatter`, `scatter_add` and their gradients, on all
//! dtypes.
//!
//! The index tensor is walked row by row (its last dimension) with running offsets into the
//! strided source and the contiguous destination (`walk_rows`), so the common case (along the
//! last axis into a contiguous output) is a tight loop; big index tensors are split over threads
//! by rows of dimension 0 (for scatter only when it does not run along dimension 0, where rows
//! would collide).

use super::{with_contig, with_data, Scalar, PAR_MIN, PAR_TASK};
use crate::autograd::Op;
use crate::ops::manip::{check_range, identity, index_values};
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, numel, Layout};
use crate::{DType, Result, Tensor};
use half::{bf16, f16};

/// Runs `f` on the index values, borrowed when `index` is a contiguous i64 tensor that shares
/// no storage with `others` (the tensors `f` reads).
fn with_index<R>(
    op: &'static str,
    index: &Tensor,
    others: &[&Tensor],
    f: impl FnOnce(&[i64]) -> Result<R>,
) -> Result<R> {
    index.check_cpu(op)?;
    if index.dtype() == DType::I64
        && index.is_contiguous()
        && !others.iter().any(|t| t.same_storage(index))
    {
        return with_data(index, |s: &[i64], l| f(&s[l.offset..l.offset + l.numel()]));
    }
    f(&index_values(op, index)?)
}

/// Walks the rows (last dimension) of a contiguous index tensor of shape `ishape` whose first
/// coordinate lies in `r0..r1`, calling `f(p, a, b, len)` for each run of `len` positions
/// starting at position `p`, with `a = Σ_{d≠axis} p_d·sa_d` and `b = Σ_d p_d·sb_d` at the run's
/// start (both including the `r0` rows skipped). Along a run, `a` advances by `sa_last` and `b`
/// by `sb_last` of [`run_strides`].
fn walk_rows(
    ishape: &[usize],
    axis: usize,
    sa: &[usize],
    sb: &[usize],
    r0: usize,
    r1: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let r = ishape.len();
    let last = r - 1;
    let len = ishape[last];
    if len == 0 || r0 >= r1 {
        return;
    }
    if r == 1 {
        f(r0, 0, r0 * sb[0], r1 - r0);
        return;
    }
    let mut sa = sa[..last].to_vec();
    if axis < last {
        sa[axis] = 0;
    }
    let rows_per: usize = ishape[1..last].iter().product();
    let mut idx = vec![0usize; last];
    idx[0] = r0;
    let (mut a, mut b) = (r0 * sa[0], r0 * sb[0]);
    for row in r0 * rows_per..r1 * rows_per {
        f(row * len, a, b, len);
        for d in (0..last).rev() {
            idx[d] += 1;
            a += sa[d];
            b += sb[d];
            if idx[d] < ishape[d] || d == 0 {
                break;
            }
            a -= sa[d] * ishape[d];
            b -= sb[d] * ishape[d];
            idx[d] = 0;
        }
    }
}

/// Steps of `a` and `b` along a run of [`walk_rows`].
fn run_strides(ishape: &[usize], axis: usize, sa: &[usize], sb: &[usize]) -> (usize, usize) {
    let last = ishape.len() - 1;
    (if axis == last { 0 } else { sa[last] }, sb[last])
}

/// Rows of dimension 0 per parallel task for a walk over `ishape`, or `None` for one thread.
fn walk_tasks(ishape: &[usize]) -> Option<usize> {
    let n = numel(ishape);
    if n < PAR_MIN {
        return None;
    }
    let inner = n / ishape[0];
    crate::ops::par_chunk(ishape[0], PAR_TASK.div_ceil(inner))
}

/// `out[b(p)] = src[p with coordinate axis replaced by idx[p]]` over the index positions `p`;
/// `out` is contiguous with strides `out_strides` and at least the index's extent.
fn gather_into<T: Scalar>(
    src: &[T],
    layout: &Layout,
    axis: usize,
    idx: &[i64],
    ishape: &[usize],
    out: &mut [T],
    out_strides: &[usize],
) {
    if idx.is_empty() {
        return;
    }
    let sax = layout.strides[axis];
    let off = layout.offset;
    let row = out_strides[0];
    let (sal, sbl) = run_strides(ishape, axis, &layout.strides, out_strides);
    let run = |r0: usize, r1: usize, o: &mut [T]| {
        let shift = r0 * row;
        walk_rows(
            ishape,
            axis,
            &layout.strides,
            out_strides,
            r0,
            r1,
            |p, a, b, len| {
                let ids = &idx[p..p + len];
                let base = off + a;
                let ob = b - shift;
                if sal == 0 && sbl == 1 {
                    // Along the last axis into a contiguous output: the common case.
                    for (o, &v) in o[ob..ob + len].iter_mut().zip(ids) {
                        *o = src[base + v as usize * sax];
                    }
                } else {
                    for (j, &v) in ids.iter().enumerate() {
                        o[ob + j * sbl] = src[base + j * sal + v as usize * sax];
                    }
                }
            },
        );
    };
    let region = &mut out[..ishape[0] * row];
    match walk_tasks(ishape) {
        Some(per) => region
            .par_chunks_mut(per * row)
            .enumerate()
            .for_each(|(i, o)| run(i * per, (i * per + per).min(ishape[0]), o)),
        None => run(0, ishape[0], region),
    }
}

/// `out[p with coordinate axis replaced by idx[p]] (+)= src[p]` over the index positions `p`;
/// `out` is contiguous of `oshape`, `src` is read through its layout.
#[allow(clippy::too_many_arguments)]
fn scatter_into<T: Scalar>(
    out: &mut [T],
    oshape: &[usize],
    axis: usize,
    idx: &[i64],
    ishape: &[usize],
    src: &[T],
    src_layout: &Layout,
    accumulate: bool,
) {
    if idx.is_empty() {
        return;
    }
    let os = contiguous_strides(oshape);
    let sax = os[axis];
    let soff = src_layout.offset;
    let (sal, sbl) = run_strides(ishape, axis, &os, &src_layout.strides);
    let run = |r0: usize, r1: usize, o: &mut [T], shift: usize| {
        walk_rows(
            ishape,
            axis,
            &os,
            &src_layout.strides,
            r0,
            r1,
            |p, a, b, len| {
                let ids = &idx[p..p + len];
                let (tb, sbase) = (a - shift, soff + b);
                if accumulate {
                    for (j, &v) in ids.iter().enumerate() {
                        let t = tb + j * sal + v as usize * sax;
                        o[t] = o[t].add(src[sbase + j * sbl]);
                    }
                } else {
                    for (j, &v) in ids.iter().enumerate() {
                        o[tb + j * sal + v as usize * sax] = src[sbase + j * sbl];
                    }
                }
            },
        );
    };
    // Different rows of dimension 0 write disjoint outputs unless the scatter runs along it.
    match walk_tasks(ishape).filter(|_| axis != 0) {
        Some(per) => {
            let row = os[0];
            out[..ishape[0] * row]
                .par_chunks_mut(per * row)
                .enumerate()
                .for_each(|(i, o)| run(i * per, (i * per + per).min(ishape[0]), o, i * per * row));
        }
        None => run(0, ishape[0], out, 0),
    }
}

/// Gradient of gather: `g` scattered (added) into zeros of `in_shape`.
fn gather_backward(
    g: &Tensor,
    axis: usize,
    idx: &[i64],
    ishape: &[usize],
    in_shape: &[usize],
) -> Tensor {
    dispatch!(g.dtype(), T => {
        let mut buf = T::alloc_zeroed(numel(in_shape));
        with_data(g, |s: &[T], l| {
            scatter_into(T::slice_mut(&mut buf), in_shape, axis, idx, ishape, s, l, true)
        });
        Tensor::from_buffer(buf, in_shape)
    })
}

/// `g` gathered at the index into zeros of `shape` (the src gradient of scatter_add).
fn gather_padded(
    g: &Tensor,
    axis: usize,
    idx: &[i64],
    ishape: &[usize],
    shape: &[usize],
) -> Tensor {
    dispatch!(g.dtype(), T => {
        let mut buf = if shape == ishape {
            T::alloc(numel(shape))
        } else {
            T::alloc_zeroed(numel(shape))
        };
        with_data(g, |s: &[T], l| {
            gather_into(s, l, axis, idx, ishape, T::slice_mut(&mut buf), &contiguous_strides(shape))
        });
        Tensor::from_buffer(buf, shape)
    })
}

/// Gradients of an overwriting scatter: the input gets `g` where nothing was written, and each
/// written position's gradient goes to the src element that won (the last one in order).
#[allow(clippy::too_many_arguments)]
fn scatter_backward<T: Scalar>(
    g: &[T],
    axis: usize,
    idx: &[i64],
    ishape: &[usize],
    in_shape: &[usize],
    src_shape: &[usize],
    need_in: bool,
    need_src: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let os = contiguous_strides(in_shape);
    let ss = contiguous_strides(src_shape);
    let mut pairs = Vec::with_capacity(idx.len());
    if !idx.is_empty() {
        let (sal, sbl) = run_strides(ishape, axis, &os, &ss);
        walk_rows(ishape, axis, &os, &ss, 0, ishape[0], |p, a, b, len| {
            for (j, &v) in idx[p..p + len].iter().enumerate() {
                pairs.push((a + j * sal + v as usize * os[axis], b + j * sbl));
            }
        });
    }
    let mut taken = vec![false; g.len()];
    let mut gsrc = T::alloc_zeroed(numel(src_shape));
    {
        let gs = T::slice_mut(&mut gsrc);
        for &(t, b) in pairs.iter().rev() {
            if !taken[t] {
                taken[t] = true;
                gs[b] = g[t];
            }
        }
    }
    let gin = need_in.then(|| {
        let mut buf = T::alloc(g.len());
        for ((o, &v), &w) in T::slice_mut(&mut buf).iter_mut().zip(g).zip(&taken) {
            *o = if w { T::ZERO } else { v };
        }
        Tensor::from_buffer(buf, in_shape)
    });
    let gsrc = need_src.then(|| Tensor::from_buffer(gsrc, src_shape));
    (gin, gsrc)
}

// ----- entry points of the backend methods -----

/// `gather` (`src` is `None`), `scatter` or `scatter_add` (of `src`) of `x` at `index` along the
/// op's axis, validated except for the index values (checked here).
pub(in crate::backend::cpu) fn forward(
    op: &Op,
    x: &Tensor,
    index: &Tensor,
    src: Option<&Tensor>,
) -> Result<Tensor> {
    let name = op.name();
    x.check_cpu(name)?;
    let ishape = index.shape().to_vec();
    match (op, src) {
        (&Op::Gather { axis: ax }, None) => with_index(name, index, &[x], |idx| {
            check_range(name, idx, x.shape()[ax])?;
            Ok(dispatch!(x.dtype(), T => {
                let mut buf = T::alloc(idx.len());
                with_data(x, |s: &[T], l| {
                    gather_into(s, l, ax, idx, &ishape, T::slice_mut(&mut buf), &contiguous_strides(&ishape))
                });
                Tensor::from_buffer(buf, &ishape)
            }))
        }),
        (&(Op::Scatter { axis: ax } | Op::ScatterAdd { axis: ax }), Some(src)) => {
            src.check_cpu(name)?;
            let accumulate = matches!(op, Op::ScatterAdd { .. });
            let in_shape = x.shape().to_vec();
            with_index(name, index, &[x, src], |idx| {
                check_range(name, idx, in_shape[ax])?;
                Ok(dispatch!(x.dtype(), T => {
                    let maps: Vec<Vec<usize>> = in_shape.iter().map(|&n| identity(n)).collect();
                    let mut buf = T::alloc(numel(&in_shape));
                    with_data(x, |s: &[T], l| super::map_copy(s, l, &maps, T::ZERO, T::slice_mut(&mut buf)));
                    with_data(src, |s: &[T], l| {
                        scatter_into(T::slice_mut(&mut buf), &in_shape, ax, idx, &ishape, s, l, accumulate)
                    });
                    Tensor::from_buffer(buf, &in_shape)
                }))
            })
        }
        _ => Err(crate::backend::cpu::not_in_family(op, "gather/scatter")),
    }
}

/// The gradients `[d_input, d_src]` of `gather` / `scatter` / `scatter_add` for the output
/// gradient `g`, each where `needs` asks (`d_src` only for the scatters).
pub(in crate::backend::cpu) fn backward(
    op: &Op,
    g: &Tensor,
    index: &Tensor,
    in_shape: &[usize],
    src_shape: &[usize],
    needs: [bool; 2],
) -> Result<[Option<Tensor>; 2]> {
    let name = op.name();
    g.check_cpu(name)?;
    let ishape = index.shape();
    let [need_in, need_src] = needs;
    match *op {
        Op::Gather { axis: ax } => with_index(name, index, &[g], |idx| {
            Ok([Some(gather_backward(g, ax, idx, ishape, in_shape)), None])
        }),
        Op::ScatterAdd { axis: ax } => {
            let gin = need_in.then(|| g.clone());
            let gsrc = if need_src {
                Some(with_index(name, index, &[g], |idx| {
                    Ok(gather_padded(g, ax, idx, ishape, src_shape))
                })?)
            } else {
                None
            };
            Ok([gin, gsrc])
        }
        Op::Scatter { axis: ax } => {
            let (gin, gsrc) = with_index(name, index, &[g], |idx| {
                Ok(dispatch!(g.dtype(), T => with_contig(g, |gs: &[T]| {
                    scatter_backward(gs, ax, idx, ishape, in_shape, src_shape, need_in, need_src)
                })?))
            })?;
            Ok([gin, gsrc])
        }
        _ => Err(crate::backend::cpu::not_in_family(op, "gather/scatter")),
    }
}
