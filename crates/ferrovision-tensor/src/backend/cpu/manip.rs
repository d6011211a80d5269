//! CPU copy kernels behind the copy methods of [`Backend`](super::super::Backend):
//! `contiguous`, `map_copy`, `map_accumulate`, `concat` (here) and the gather/scatter kernels of
//! `index_op` / `index_op_backward` (in `manip/gather.rs`).
//!
//! Every copy runs on all dtypes (labels, masks and indices included) through generic kernels
//! over the [`Buffer`] element types.
//!
//! Most copy ops are one generic kernel, `map_copy`: output element `(i_0, .., i_k)` is input
//! element `(m_0[i_0], .., m_k[i_k])` for per-dimension index maps `m_d`, or a fill value.
//! Padding, flips, index selection, repetition and crops are all such maps (planned by the op
//! files in `ops/manip/`); their gradients are the adjoint kernel `map_accumulate` (or the
//! inverse map where one exists). Rows are cut into runs (`segments`) so they copy with
//! `copy_from_slice` where they can, and big outputs are split over threads by rows.

use crate::autograd::Op;
use crate::ops::manip::{identity, NONE};
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, numel, Layout};
use crate::storage::{pool, Buffer, Storage};
use crate::{BufferElement, DType, Element, Result, Tensor};
use half::{bf16, f16};
use std::sync::Arc;

/// Outputs with at least this many elements are copied by several threads.
const PAR_MIN: usize = 1 << 16;
/// Smallest amount of work (elements) given to one parallel task.
const PAR_TASK: usize = 1 << 15;

// ----- dtype-generic plumbing -----

/// The element types the manipulation kernels run on: all of them, with the few operations
/// the kernels need (an addition for gradient accumulation and typed buffer access).
pub(crate) trait Scalar: Element {
    const ZERO: Self;
    /// Addition used by accumulating kernels (`or` for bool, wrapping for integers).
    fn add(self, other: Self) -> Self;
    /// A buffer of `n` elements whose contents the caller overwrites completely.
    fn alloc(n: usize) -> Buffer;
    /// A buffer of `n` zeros.
    fn alloc_zeroed(n: usize) -> Buffer;
    /// The elements of a buffer of this type.
    fn slice_mut(b: &mut Buffer) -> &mut [Self];
}

macro_rules! scalar_impl {
    ($t:ty, $variant:ident, $zero:expr, |$a:ident, $b:ident| $add:expr) => {
        impl Scalar for $t {
            const ZERO: Self = $zero;
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                let ($a, $b) = (self, other);
                $add
            }
            fn alloc(n: usize) -> Buffer {
                Buffer::$variant(vec![$zero; n])
            }
            fn alloc_zeroed(n: usize) -> Buffer {
                Buffer::$variant(vec![$zero; n])
            }
            fn slice_mut(b: &mut Buffer) -> &mut [Self] {
                match b {
                    Buffer::$variant(v) => v,
                    _ => unreachable!("buffer allocated with the matching dtype"),
                }
            }
        }
    };
}

impl Scalar for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn alloc(n: usize) -> Buffer {
        Buffer::F32(pool::take_uninit(n))
    }
    fn alloc_zeroed(n: usize) -> Buffer {
        Buffer::F32(pool::take_zeroed(n))
    }
    fn slice_mut(b: &mut Buffer) -> &mut [Self] {
        match b {
            Buffer::F32(v) => v,
            _ => unreachable!("buffer allocated with the matching dtype"),
        }
    }
}
scalar_impl!(f16, F16, f16::ZERO, |a, b| f16::from_f32(
    a.to_f32() + b.to_f32()
));
scalar_impl!(bf16, BF16, bf16::ZERO, |a, b| bf16::from_f32(
    a.to_f32() + b.to_f32()
));
scalar_impl!(i64, I64, 0, |a, b| a.wrapping_add(b));
scalar_impl!(i32, I32, 0, |a, b| a.wrapping_add(b));
scalar_impl!(u8, U8, 0, |a, b| a.wrapping_add(b));
scalar_impl!(bool, Bool, false, |a, b| a | b);

/// Runs `$body` with `$T` bound to the Rust element type of `$dtype`.
macro_rules! dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F16 => {
                type $T = f16;
                $body
            }
            DType::BF16 => {
                type $T = bf16;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}

pub(super) mod gather;

/// Runs `f` on the whole storage of `t` (typed) and its layout; no copy.
fn with_data<T: Scalar, R>(t: &Tensor, f: impl FnOnce(&[T], &Layout) -> R) -> R {
    let guard = t.storage().read();
    let data = T::slice_of(&guard).expect("a tensor's dtype matches its buffer");
    f(data, t.layout())
}

/// `t` itself when contiguous, else a contiguous copy made by the parallel copy kernel.
fn contiguous_of(t: &Tensor) -> Tensor {
    if t.is_contiguous() {
        t.detach()
    } else {
        let maps: Vec<Vec<usize>> = t.shape().iter().map(|&n| identity(n)).collect();
        apply_maps(t, t.layout(), &maps, 0.0)
    }
}

/// Runs `f` on the elements of `t` in row-major order (borrowed when contiguous).
fn with_contig<T: Scalar, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    t.check_cpu("copy")?;
    let c = contiguous_of(t);
    Ok(with_data(&c, |s: &[T], l| {
        f(&s[l.offset..l.offset + l.numel()])
    }))
}

fn is_identity(map: &[usize], size: usize) -> bool {
    map.len() == size && map.iter().enumerate().all(|(i, &m)| m == i)
}

use crate::parallel::par_rows;

/// Visits `count` rows starting at row `r0` of an outer shape, calling `f(k, base)` with the
/// summed table offsets of the row (`None` when some dimension maps to the fill value).
fn for_rows(
    shape: &[usize],
    tabs: &[Vec<usize>],
    r0: usize,
    count: usize,
    mut f: impl FnMut(usize, Option<usize>),
) {
    let k = shape.len();
    let mut idx = vec![0usize; k];
    let mut rem = r0;
    for d in (0..k).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    for i in 0..count {
        let mut base = Some(0usize);
        for d in 0..k {
            let t = tabs[d][idx[d]];
            if t == NONE {
                base = None;
                break;
            }
            base = base.map(|b| b + t);
        }
        f(i, base);
        for d in (0..k).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// A stretch of an output row: fill values, or input elements at ascending or descending
/// offsets (`off` is the element offset of the first one, relative to the row base).
#[derive(Debug, Clone, Copy)]
enum Seg {
    Fill(usize),
    Fwd { off: usize, len: usize },
    Rev { off: usize, len: usize },
}

/// Cuts the last-dimension map into runs so rows copy with `copy_from_slice` where they can.
fn segments(map: &[usize], stride: usize) -> Vec<Seg> {
    let n = map.len();
    let mut segs = Vec::new();
    let mut j = 0;
    while j < n {
        let s = j;
        if map[j] == NONE {
            while j < n && map[j] == NONE {
                j += 1;
            }
            segs.push(Seg::Fill(j - s));
            continue;
        }
        j += 1;
        let next = |j: usize| if j < n { map[j] } else { NONE };
        if next(j) != NONE && next(j) == map[s] + 1 {
            while next(j) != NONE && next(j) == map[j - 1] + 1 {
                j += 1;
            }
            segs.push(Seg::Fwd {
                off: map[s] * stride,
                len: j - s,
            });
        } else if next(j) != NONE && next(j) + 1 == map[s] {
            while next(j) != NONE && next(j) + 1 == map[j - 1] {
                j += 1;
            }
            segs.push(Seg::Rev {
                off: map[s] * stride,
                len: j - s,
            });
        } else {
            segs.push(Seg::Fwd {
                off: map[s] * stride,
                len: 1,
            });
        }
    }
    segs
}

#[inline]
fn copy_row<T: Copy>(src: &[T], base: usize, segs: &[Seg], stride: usize, fill: T, out: &mut [T]) {
    let mut o = 0;
    for seg in segs {
        match *seg {
            Seg::Fill(len) => {
                out[o..o + len].fill(fill);
                o += len;
            }
            Seg::Fwd { off, len } => {
                let s = base + off;
                if stride == 1 {
                    out[o..o + len].copy_from_slice(&src[s..s + len]);
                } else {
                    for (k, v) in out[o..o + len].iter_mut().enumerate() {
                        *v = src[s + k * stride];
                    }
                }
                o += len;
            }
            Seg::Rev { off, len } => {
                let s = base + off;
                for (k, v) in out[o..o + len].iter_mut().enumerate() {
                    *v = src[s - k * stride];
                }
                o += len;
            }
        }
    }
}

/// `out[i_0, .., i_k] = src[maps[0][i_0], .., maps[k][i_k]]`, or `fill` where an entry is
/// [`NONE`]. `src` is read through `layout` (any strides); `out` is contiguous with dimension
/// `d` of size `maps[d].len()` and is completely written.
fn map_copy<T: Scalar>(src: &[T], layout: &Layout, maps: &[Vec<usize>], fill: T, out: &mut [T]) {
    debug_assert_eq!(maps.len(), layout.rank());
    if out.is_empty() {
        return;
    }
    if maps.is_empty() {
        out[0] = src[layout.offset];
        return;
    }
    // Merge the trailing dimensions that are copied whole into one identity run, so rows are
    // long and copy as slices (without materialising the merged map).
    let r = maps.len();
    let (shape, strides) = (&layout.shape, &layout.strides);
    let mut k = r; // dimensions k.. form the last (merged identity) dimension when k < r
    let (mut run_len, mut run_stride) = (1usize, 0usize);
    if is_identity(&maps[r - 1], shape[r - 1]) {
        k = r - 1;
        (run_len, run_stride) = (shape[r - 1], strides[r - 1]);
        while k > 0 && is_identity(&maps[k - 1], shape[k - 1]) {
            let (s, st) = (shape[k - 1], strides[k - 1]);
            if run_len == 1 {
                run_stride = st;
            } else if s != 1 && st != run_stride * run_len {
                break;
            }
            run_len *= s;
            k -= 1;
        }
    }
    let (outer_dims, row_len, last_stride, segs) = if k < r {
        let segs = vec![Seg::Fwd {
            off: 0,
            len: run_len,
        }];
        (k, run_len, run_stride, segs)
    } else {
        let st = strides[r - 1];
        (r - 1, maps[r - 1].len(), st, segments(&maps[r - 1], st))
    };
    let offset = layout.offset;
    if outer_dims == 0 {
        // One row: split it across threads.
        let chunk = if out.len() >= PAR_MIN {
            crate::ops::par_chunk(out.len(), PAR_TASK)
        } else {
            None
        };
        match chunk {
            Some(c) => out.par_chunks_mut(c).enumerate().for_each(|(i, o)| {
                if k < r {
                    let seg = [Seg::Fwd {
                        off: i * c * last_stride,
                        len: o.len(),
                    }];
                    copy_row(src, offset, &seg, last_stride, fill, o);
                } else {
                    // A general last-dimension map: element by element.
                    for (j, v) in o.iter_mut().enumerate() {
                        let m = maps[r - 1][i * c + j];
                        *v = if m == NONE {
                            fill
                        } else {
                            src[offset + m * last_stride]
                        };
                    }
                }
            }),
            None => copy_row(src, offset, &segs, last_stride, fill, out),
        }
        return;
    }
    let outer: Vec<usize> = maps[..outer_dims].iter().map(Vec::len).collect();
    let tabs: Vec<Vec<usize>> = (0..outer_dims)
        .map(|d| {
            maps[d]
                .iter()
                .map(|&m| if m == NONE { NONE } else { m * strides[d] })
                .collect()
        })
        .collect();
    par_rows(out, row_len, |r0, chunk| {
        for_rows(&outer, &tabs, r0, chunk.len() / row_len, |i, base| {
            let o = &mut chunk[i * row_len..(i + 1) * row_len];
            match base {
                Some(b) => copy_row(src, offset + b, &segs, last_stride, fill, o),
                None => o.fill(fill),
            }
        });
    });
}

/// The adjoint of [`map_copy`]: a zeroed tensor of `in_shape` (contiguous) that receives
/// `out[maps(i)] += g[i]` for every position `i` of the contiguous `g` (fill entries skipped).
fn map_accumulate<T: Scalar>(g: &[T], maps: &[Vec<usize>], in_shape: &[usize]) -> Buffer {
    let mut buf = T::alloc_zeroed(numel(in_shape));
    let out = T::slice_mut(&mut buf);
    if g.is_empty() || out.is_empty() {
        return buf;
    }
    if maps.is_empty() {
        out[0] = g[0];
        return buf;
    }
    let r = maps.len();
    // Leading dimensions copied whole split the work into independent blocks.
    let mut lead = 0;
    while lead < r - 1 && is_identity(&maps[lead], in_shape[lead]) {
        lead += 1;
    }
    let blocks: usize = in_shape[..lead].iter().product();
    let in_block = out.len() / blocks;
    let out_block = g.len() / blocks;
    let sub = &maps[lead..];
    let strides = contiguous_strides(&in_shape[lead..]);
    let k = sub.len() - 1;
    let last = &sub[k];
    let row_len = last.len();
    let outer: Vec<usize> = sub[..k].iter().map(Vec::len).collect();
    let tabs: Vec<Vec<usize>> = (0..k)
        .map(|d| {
            sub[d]
                .iter()
                .map(|&m| if m == NONE { NONE } else { m * strides[d] })
                .collect()
        })
        .collect();
    let body = |gb: &[T], ob: &mut [T]| {
        for_rows(&outer, &tabs, 0, gb.len() / row_len, |i, base| {
            if let Some(b) = base {
                let grow = &gb[i * row_len..(i + 1) * row_len];
                for (&m, &v) in last.iter().zip(grow) {
                    if m != NONE {
                        ob[b + m] = ob[b + m].add(v);
                    }
                }
            }
        });
    };
    if g.len() >= PAR_MIN && blocks >= 2 {
        out.par_chunks_mut(in_block)
            .zip(g.par_chunks(out_block))
            .with_min_len(PAR_TASK.div_ceil(out_block))
            .for_each(|(ob, gb)| body(gb, ob));
    } else {
        for (ob, gb) in out.chunks_mut(in_block).zip(g.chunks(out_block)) {
            body(gb, ob);
        }
    }
    buf
}

/// A new contiguous tensor `map_copy(t read through layout)` of any dtype (no autodiff).
fn apply_maps(t: &Tensor, layout: &Layout, maps: &[Vec<usize>], fill: f64) -> Tensor {
    let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    dispatch!(t.dtype(), T => {
        let mut buf = T::alloc(numel(&shape));
        with_data(t, |s: &[T], _| {
            map_copy(s, layout, maps, T::from_f64(fill), T::slice_mut(&mut buf))
        });
        Tensor::from_buffer(buf, &shape)
    })
}

/// [`map_accumulate`] of a gradient tensor of any dtype (no autodiff).
fn accumulate_maps(g: &Tensor, maps: &[Vec<usize>], in_shape: &[usize]) -> Result<Tensor> {
    g.check_cpu("map backward")?;
    Ok(dispatch!(g.dtype(), T => {
        let buf = with_contig(g, |gs: &[T]| map_accumulate(gs, maps, in_shape))?;
        Tensor::from_buffer(buf, in_shape)
    }))
}

// ----- concatenation -----

/// Concatenates row blocks: output row `r` is input 0's block `r`, then input 1's, ...
/// (`blocks[i]` elements each). Non-contiguous inputs are copied first. The tensors are checked
/// CPU tensors of one dtype.
fn concat(tensors: &[&Tensor], blocks: &[usize], out_shape: &[usize]) -> Tensor {
    let contig: Vec<Tensor> = tensors.iter().map(|t| contiguous_of(t)).collect();
    // One read guard per distinct storage (the same tensor may appear twice).
    let mut uniq: Vec<&Arc<Storage>> = Vec::new();
    let mut which = Vec::with_capacity(contig.len());
    for t in &contig {
        let s = t.storage();
        match uniq.iter().position(|u| Arc::ptr_eq(u, s)) {
            Some(k) => which.push(k),
            None => {
                which.push(uniq.len());
                uniq.push(s);
            }
        }
    }
    let guards: Vec<_> = uniq.iter().map(|s| s.read()).collect();
    let n = numel(out_shape);
    let row: usize = blocks.iter().sum();
    dispatch!(tensors[0].dtype(), T => {
        let slices: Vec<&[T]> = contig
            .iter()
            .zip(&which)
            .map(|(t, &k)| {
                let s = T::slice_of(&guards[k]).expect("dtypes were checked equal");
                let l = t.layout();
                &s[l.offset..l.offset + l.numel()]
            })
            .collect();
        let mut buf = T::alloc(n);
        let out = T::slice_mut(&mut buf);
        if n > 0 {
            if n >= PAR_MIN && n == row {
                // A single row (e.g. stacking along axis 0): one task per input.
                let mut pieces = Vec::with_capacity(blocks.len());
                let mut rest = out;
                for &b in blocks {
                    let (p, r) = rest.split_at_mut(b);
                    pieces.push(p);
                    rest = r;
                }
                pieces
                    .into_par_iter()
                    .zip(slices.par_iter())
                    .for_each(|(p, s)| p.copy_from_slice(s));
            } else {
                par_rows(out, row, |r0, chunk| {
                    for (k, orow) in chunk.chunks_mut(row).enumerate() {
                        let r = r0 + k;
                        let mut o = 0;
                        for (s, &b) in slices.iter().zip(blocks) {
                            orow[o..o + b].copy_from_slice(&s[r * b..(r + 1) * b]);
                            o += b;
                        }
                    }
                });
            }
        }
        Tensor::from_buffer(buf, out_shape)
    })
}

// ----- entry points of the backend methods -----

/// A contiguous copy of `x` (any dtype), the plain strided copy.
pub(super) fn contiguous(x: &Tensor) -> Result<Tensor> {
    x.copy_data()
}

/// `x` read through `layout` and copied along the index `maps` (`fill` where an entry is
/// [`NONE`]), a new contiguous tensor of the maps' lengths.
pub(super) fn copy(
    op: &Op,
    x: &Tensor,
    layout: &Layout,
    maps: &[Vec<usize>],
    fill: f64,
) -> Result<Tensor> {
    x.check_cpu(op.name())?;
    Ok(apply_maps(x, layout, maps, fill))
}

/// The adjoint of [`copy`] for the output gradient `g`: a tensor of `in_shape`.
pub(super) fn accumulate(
    op: &Op,
    g: &Tensor,
    maps: &[Vec<usize>],
    in_shape: &[usize],
) -> Result<Tensor> {
    g.check_cpu(op.name())?;
    accumulate_maps(g, maps, in_shape)
}

/// The row-block concatenation of `tensors` (checked to share one dtype) into `out_shape`.
pub(super) fn cat(
    op: &Op,
    tensors: &[&Tensor],
    blocks: &[usize],
    out_shape: &[usize],
) -> Result<Tensor> {
    for t in tensors {
        t.check_cpu(op.name())?;
    }
    Ok(concat(tensors, blocks, out_shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_runs() {
        let segs = segments(&[NONE, NONE, 0, 1, 2, 1, 0, 5], 3);
        let lens: Vec<usize> = segs
            .iter()
            .map(|s| match *s {
                Seg::Fill(l) | Seg::Fwd { len: l, .. } | Seg::Rev { len: l, .. } => l,
            })
            .collect();
        assert_eq!(lens.iter().sum::<usize>(), 8);
        assert!(matches!(segs[0], Seg::Fill(2)));
        assert!(matches!(segs[1], Seg::Fwd { off: 0, len: 3 }));
        assert!(matches!(segs[2], Seg::Rev { off: 3, len: 2 }));
        assert!(matches!(segs[3], Seg::Fwd { off: 15, len: 1 }));
    }

    #[test]
    fn map_copy_and_adjoint() {
        // 2x3 input, output picks rows [1, 1, NONE] and columns reversed.
        let src = [0i64, 1, 2, 3, 4, 5];
        let layout = Layout::contiguous(&[2, 3]);
        let maps = vec![vec![1, 1, NONE], vec![2, 1, 0]];
        let mut out = vec![0i64; 9];
        map_copy(&src, &layout, &maps, -1, &mut out);
        assert_eq!(out, vec![5, 4, 3, 5, 4, 3, -1, -1, -1]);
        let g = [1i64; 9];
        let Buffer::I64(acc) = map_accumulate(&g, &maps, &[2, 3]) else {
            panic!()
        };
        assert_eq!(acc, vec![0, 0, 0, 2, 2, 2]);
    }
}
