//! The broadcast iteration plan ([`Broadcast`]) and the f32 elementwise drivers built on it
//! (`broadcast_map2`/`broadcast_map3`, `expand_vec`), shared by the binary, comparison and
//! reduction ops (its own module so that those families depend on it, not on each other).

use crate::kernels::elementwise as ew;
use crate::parallel::prelude::*;
use crate::shape::{broadcast_shapes, numel, Layout};
use crate::storage::{pool, Buffer};
use crate::{Error, Result, Tensor};
use std::ops::Range;

/// Row-by-row iteration over `K` strided operands broadcast to a common shape.
///
/// Size-1 dimensions are dropped and adjacent dimensions that are contiguous for every operand
/// are merged, so `[N,C,H,W] + [1,C,1,1]` runs as rows of `H·W` elements with the bias fixed per
/// row. The innermost (merged) dimension is `inner`; operand `k` reads
/// `data[offset + i * inner_strides[k]]` for `i < inner` on each row.
pub(crate) struct Broadcast<const K: usize> {
    outer: Vec<usize>,
    outer_strides: [Vec<usize>; K],
    offsets: [usize; K],
    /// Elements per row.
    pub(crate) inner: usize,
    /// Stride of each operand along the row (0 when broadcast).
    pub(crate) inner_strides: [usize; K],
    /// Number of rows.
    pub(crate) rows: usize,
}

impl<const K: usize> Broadcast<K> {
    /// A plan for reading each layout as `shape` (the caller has checked that they broadcast).
    pub(crate) fn new(shape: &[usize], layouts: [&Layout; K]) -> Self {
        let strides: [Vec<usize>; K] = std::array::from_fn(|k| layouts[k].broadcast_strides(shape));
        let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
        let mut st: [Vec<usize>; K] = std::array::from_fn(|_| Vec::with_capacity(shape.len()));
        for (d, &size) in shape.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let mergeable =
                !dims.is_empty() && (0..K).all(|k| *st[k].last().unwrap() == strides[k][d] * size);
            if mergeable {
                *dims.last_mut().unwrap() *= size;
                for k in 0..K {
                    *st[k].last_mut().unwrap() = strides[k][d];
                }
            } else {
                dims.push(size);
                for k in 0..K {
                    st[k].push(strides[k][d]);
                }
            }
        }
        let inner = dims.pop().unwrap_or(1);
        let inner_strides = std::array::from_fn(|k| st[k].pop().unwrap_or(0));
        let rows = if numel(shape) == 0 { 0 } else { numel(&dims) };
        Broadcast {
            outer: dims,
            outer_strides: st,
            offsets: std::array::from_fn(|k| layouts[k].offset),
            inner,
            inner_strides,
            rows,
        }
    }

    /// Calls `f(row, offsets)` for each row in `rows`, in order, with the storage offset of the
    /// row's first element in each operand.
    pub(crate) fn for_rows(&self, rows: Range<usize>, mut f: impl FnMut(usize, [usize; K])) {
        let nd = self.outer.len();
        let mut idx = vec![0usize; nd];
        let mut off = self.offsets;
        let mut rem = rows.start;
        for d in (0..nd).rev() {
            idx[d] = rem % self.outer[d];
            rem /= self.outer[d];
            for (o, st) in off.iter_mut().zip(&self.outer_strides) {
                *o += idx[d] * st[d];
            }
        }
        for r in rows {
            f(r, off);
            // Advance the multi-index like an odometer.
            for d in (0..nd).rev() {
                idx[d] += 1;
                if idx[d] < self.outer[d] {
                    for (o, st) in off.iter_mut().zip(&self.outer_strides) {
                        *o += st[d];
                    }
                    break;
                }
                for (o, st) in off.iter_mut().zip(&self.outer_strides) {
                    *o -= st[d] * (self.outer[d] - 1);
                }
                idx[d] = 0;
            }
        }
    }

    /// The slice of operand `k`'s storage that a row segment of `len` elements starting at
    /// `off` reads.
    #[inline]
    pub(crate) fn row_slice<'a, T>(
        &self,
        data: &'a [T],
        k: usize,
        off: usize,
        len: usize,
    ) -> &'a [T] {
        let s = self.inner_strides[k];
        let span = if s == 0 || len == 0 {
            1
        } else {
            (len - 1) * s + 1
        };
        &data[off..off + span]
    }

    /// Calls `f(offsets, dst)` for segments of the output (row-major, `rows * inner` elements):
    /// `dst` is a run of one row and `offsets` the storage offset of its first element in each
    /// operand. Big outputs are split over threads, by rows or, for few long rows, by columns.
    pub(crate) fn par_rows<T: Send>(&self, out: &mut [T], f: impl Fn([usize; K], &mut [T]) + Sync) {
        debug_assert_eq!(out.len(), self.rows * self.inner);
        if self.rows == 0 || self.inner == 0 {
            return;
        }
        const PAR_MIN: usize = 1 << 15;
        let inner = self.inner;
        let threads = crate::parallel::num_threads();
        if out.len() < 2 * PAR_MIN || threads <= 1 {
            self.for_rows(0..self.rows, |r, off| {
                f(off, &mut out[r * inner..(r + 1) * inner])
            });
        } else if self.rows >= 2 * threads {
            let per = self.rows.div_ceil(4 * threads).max(PAR_MIN.div_ceil(inner));
            out.par_chunks_mut(per * inner)
                .enumerate()
                .for_each(|(i, o)| {
                    let r0 = i * per;
                    self.for_rows(r0..r0 + o.len() / inner, |r, off| {
                        f(off, &mut o[(r - r0) * inner..(r - r0 + 1) * inner])
                    })
                });
        } else {
            let cols = inner.div_ceil(2 * threads).max(PAR_MIN / 4);
            self.for_rows(0..self.rows, |r, off| {
                out[r * inner..(r + 1) * inner]
                    .par_chunks_mut(cols)
                    .enumerate()
                    .for_each(|(ci, o)| {
                        let c0 = ci * cols;
                        let seg: [usize; K] =
                            std::array::from_fn(|k| off[k] + c0 * self.inner_strides[k]);
                        f(seg, o)
                    })
            });
        }
    }
}

/// Borrows the f32 buffer behind a read guard (the caller checked the dtype).
pub(crate) fn f32_data(buf: &Buffer) -> &[f32] {
    match buf {
        Buffer::F32(v) => v,
        _ => &[],
    }
}

/// Checks that every tensor is an f32 CPU tensor on the same device.
fn expect_all_f32(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        t.expect_f32(op)?;
    }
    for t in &ts[1..] {
        super::same_device(op, ts[0], t)?;
    }
    Ok(())
}

/// One output row of `f(a, b)` with inner strides `sa`, `sb` (vectorised for strides 0 and 1).
#[inline(always)]
fn row2<F: Fn(f32, f32) -> f32 + Copy>(
    f: F,
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    out: &mut [f32],
) {
    match (sa, sb) {
        (1, 1) => ew::map2(a, b, out, f),
        (1, 0) => {
            let y = b[0];
            ew::map1(a, out, move |x| f(x, y))
        }
        (0, 1) => {
            let x = a[0];
            ew::map1(b, out, move |y| f(x, y))
        }
        (0, 0) => out.fill(f(a[0], b[0])),
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(a[i * sa], b[i * sb]);
            }
        }
    }
}

/// `f(a, b)` over the broadcast of two f32 tensors, as a new contiguous tensor (no autodiff).
pub(crate) fn broadcast_map2<F>(op: &'static str, a: &Tensor, b: &Tensor, f: F) -> Result<Tensor>
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    expect_all_f32(op, &[a, b])?;
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let mut out = pool::take_uninit(numel(&shape));
    {
        let (ga, gb) = (a.storage().read(), b.storage().read());
        let (da, db) = (f32_data(&ga), f32_data(&gb));
        let plan = Broadcast::new(&shape, [a.layout(), b.layout()]);
        let [sa, sb] = plan.inner_strides;
        plan.par_rows(&mut out, |[pa, pb], dst| {
            let n = dst.len();
            row2(
                f,
                plan.row_slice(da, 0, pa, n),
                sa,
                plan.row_slice(db, 1, pb, n),
                sb,
                dst,
            );
        });
    }
    Ok(Tensor::from_f32(out, &shape))
}

/// `f(a, b, c)` over the broadcast of three f32 tensors to `shape` (which each must broadcast
/// to), as a new contiguous tensor (no autodiff).
pub(crate) fn broadcast_map3<F>(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    shape: &[usize],
    f: F,
) -> Result<Tensor>
where
    F: Fn(f32, f32, f32) -> f32 + Copy + Send + Sync,
{
    expect_all_f32(op, &[a, b, c])?;
    for t in [a, b, c] {
        if broadcast_shapes(op, t.shape(), shape)? != shape {
            return Err(Error::shape_mismatch(op, t.shape(), shape));
        }
    }
    let mut out = pool::take_uninit(numel(shape));
    {
        let (ga, gb, gc) = (a.storage().read(), b.storage().read(), c.storage().read());
        let (da, db, dc) = (f32_data(&ga), f32_data(&gb), f32_data(&gc));
        let plan = Broadcast::new(shape, [a.layout(), b.layout(), c.layout()]);
        let [sa, sb, sc] = plan.inner_strides;
        plan.par_rows(&mut out, |[pa, pb, pc], dst| {
            let n = dst.len();
            let (ra, rb, rc) = (
                plan.row_slice(da, 0, pa, n),
                plan.row_slice(db, 1, pb, n),
                plan.row_slice(dc, 2, pc, n),
            );
            match (sa, sb, sc) {
                (1, 1, 1) => ew::map3(ra, rb, rc, dst, f),
                (1, 1, 0) => {
                    let z = rc[0];
                    ew::map2(ra, rb, dst, move |x, y| f(x, y, z))
                }
                (1, 0, 0) => {
                    let (y, z) = (rb[0], rc[0]);
                    ew::map1(ra, dst, move |x| f(x, y, z))
                }
                _ => {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = f(ra[i * sa], rb[i * sb], rc[i * sc]);
                    }
                }
            }
        });
    }
    Ok(Tensor::from_f32(out, shape))
}

/// The f32 values of `t` broadcast to `shape`, row-major, in a pooled vector (no autodiff).
pub(crate) fn expand_vec(t: &Tensor, shape: &[usize]) -> Result<Vec<f32>> {
    t.expect_f32("expand")?;
    if broadcast_shapes("expand", t.shape(), shape)? != shape {
        return Err(Error::shape_mismatch("expand", t.shape(), shape));
    }
    let mut out = pool::take_uninit(numel(shape));
    {
        let g = t.storage().read();
        let d = f32_data(&g);
        let plan = Broadcast::new(shape, [t.layout()]);
        let [s] = plan.inner_strides;
        plan.par_rows(&mut out, |[p], dst| match s {
            0 => dst.fill(d[p]),
            1 => dst.copy_from_slice(&d[p..p + dst.len()]),
            _ => {
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = d[p + i * s];
                }
            }
        });
    }
    Ok(out)
}
