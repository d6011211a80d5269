//! Tensor manipulation: concatenation and stacking, splitting, gather/scatter, index selection,
//! padding, flipping, repetition and one-hot encoding.
//!
//! Every copy op runs on all dtypes (labels, masks and indices included) through generic kernels
//! over the [`Buffer`] element types. Ops with float outputs are differentiable; integer and bool
//! outputs are recorded as non-differentiable.
//!
//! Most ops are one generic kernel, `map_copy`: output element `(i_0, .., i_k)` is input element
//! `(m_0[i_0], .., m_k[i_k])` for per-dimension index maps `m_d`, or a fill value. Padding, flips,
//! index selection, repetition and crops are all such maps; their gradients are the adjoint kernel
//! `map_accumulate` (or the inverse map where one exists).

use crate::autograd::{record_op_non_differentiable, record_rule, GradCtx, GradRule, Op, Saved};
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, normalize_axes, normalize_axis, numel, Layout};
use crate::storage::{pool, Buffer, Storage};
use crate::{BufferElement, DType, Element, Error, Result, Tensor};
use half::{bf16, f16};
use std::sync::Arc;

/// Outputs with at least this many elements are copied by several threads.
const PAR_MIN: usize = 1 << 16;
/// Smallest amount of work (elements) given to one parallel task.
const PAR_TASK: usize = 1 << 15;
/// A map entry that takes the fill value instead of an input element.
const NONE: usize = usize::MAX;

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

/// Records the backward rule of an op with a float output; other outputs are recorded as
/// non-differentiable (asking for their gradient names the op).
fn record_float(out: Tensor, op: Op, inputs: &[&Tensor], rule: GradRule, saved: Saved) -> Tensor {
    if out.dtype().is_float() {
        record_rule(out, op, inputs, rule, saved)
    } else {
        record_op_non_differentiable(out, op, inputs)
    }
}

/// Index values as i64 (I64, I32 and U8 indices are accepted).
fn index_values(op: &'static str, index: &Tensor) -> Result<Vec<i64>> {
    index.check_cpu(op)?;
    match index.dtype() {
        DType::I64 => index.to_vec::<i64>(),
        DType::I32 => Ok(index.to_vec::<i32>()?.into_iter().map(i64::from).collect()),
        DType::U8 => Ok(index.to_vec::<u8>()?.into_iter().map(i64::from).collect()),
        d => Err(Error::dtype(op, d, "an integer index tensor (i64)")),
    }
}

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

/// Errors with [`Error::IndexOutOfRange`] on the first index outside `0..size`.
fn check_range(op: &'static str, idx: &[i64], size: usize) -> Result<()> {
    // Branch-free scan (vectorises); negative values wrap to huge u64.
    let bad = idx
        .iter()
        .fold(false, |acc, &v| acc | (v as u64 >= size as u64));
    if !bad {
        return Ok(());
    }
    match idx.iter().find(|&&v| v < 0 || v as u64 >= size as u64) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, size }),
        None => Ok(()),
    }
}

fn identity(n: usize) -> Vec<usize> {
    (0..n).collect()
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
            super::par_chunk(out.len(), PAR_TASK)
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

// ----- gather / scatter kernels -----

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
    super::par_chunk(ishape[0], PAR_TASK.div_ceil(inner))
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

/// Checks the operands of gather/scatter (all but the index values) and resolves the axis.
fn check_index_op(
    op: &'static str,
    input: &Tensor,
    axis: isize,
    index: &Tensor,
    src: Option<&Tensor>,
) -> Result<usize> {
    input.check_cpu(op)?;
    let ax = normalize_axis(op, axis, input.rank())?;
    let mismatch = |other: &Tensor, detail: String| Error::ShapeMismatch {
        op,
        lhs: input.shape().to_vec(),
        rhs: other.shape().to_vec(),
        detail,
    };
    if index.rank() != input.rank() {
        return Err(mismatch(
            index,
            "the index must have the same rank as the input".into(),
        ));
    }
    for d in 0..input.rank() {
        if d != ax && index.shape()[d] > input.shape()[d] {
            return Err(mismatch(
                index,
                format!(
                    "index size {} exceeds the input size {} at dimension {d}",
                    index.shape()[d],
                    input.shape()[d]
                ),
            ));
        }
    }
    if let Some(src) = src {
        src.check_cpu(op)?;
        if src.dtype() != input.dtype() {
            return Err(Error::dtype(
                op,
                src.dtype(),
                format!("{:?} (the input's dtype) for src", input.dtype()),
            ));
        }
        if src.rank() != index.rank() || src.shape().iter().zip(index.shape()).any(|(s, i)| i > s) {
            return Err(Error::ShapeMismatch {
                op,
                lhs: index.shape().to_vec(),
                rhs: src.shape().to_vec(),
                detail: "src must have the index's rank and be at least as large in every \
                         dimension"
                    .into(),
            });
        }
    }
    Ok(ax)
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

/// Common checks of cat/stack: non-empty, one dtype, CPU.
fn check_list(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    let Some(first) = tensors.first() else {
        return Err(Error::invalid(op, "needs at least one tensor"));
    };
    for (i, t) in tensors.iter().enumerate() {
        t.check_cpu(op)?;
        if t.dtype() != first.dtype() {
            return Err(Error::dtype(
                op,
                t.dtype(),
                format!("{:?} like tensor 0 (tensor {i} differs)", first.dtype()),
            ));
        }
    }
    Ok(())
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
        check_list(OP, tensors)?;
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
        let out = concat(tensors, &blocks, &out_shape);
        Ok(record_float(
            out,
            Op::Cat { axis: ax },
            tensors,
            cat_grad,
            Saved::none(),
        ))
    }

    /// Stacks equally shaped tensors along a new dimension `axis` (in `-(rank+1)..=rank`),
    /// like `torch.stack`.
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "stack";
        check_list(OP, tensors)?;
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
        let out = concat(tensors, &blocks, &out_shape);
        Ok(record_float(
            out,
            Op::Stack { axis: ax },
            tensors,
            stack_grad,
            Saved::none(),
        ))
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

    /// Picks values along `axis` at `index` (an i64 tensor of the same rank, no larger than
    /// `self` outside `axis`), like `torch.gather`: `out[i][j] = self[index[i][j]][j]` for
    /// `axis = 0`. The output has the index's shape.
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let ax = check_index_op(OP, self, axis, index, None)?;
        let ishape = index.shape().to_vec();
        let out = with_index(OP, index, &[self], |idx| {
            check_range(OP, idx, self.shape()[ax])?;
            Ok(dispatch!(self.dtype(), T => {
                let mut buf = T::alloc(idx.len());
                with_data(self, |s: &[T], l| {
                    gather_into(s, l, ax, idx, &ishape, T::slice_mut(&mut buf), &contiguous_strides(&ishape))
                });
                Tensor::from_buffer(buf, &ishape)
            }))
        })?;
        let saved = index.detach();
        Ok(record_float(
            out,
            Op::Gather { axis: ax },
            &[self, index],
            gather_grad,
            Saved::tensors(vec![saved]),
        ))
    }

    /// Out-of-place `torch.scatter`: a copy of `self` where `out[index[i][j]][j] = src[i][j]`
    /// (for `axis = 0`). `index` and `src` have `self`'s rank; `src` is at least as large as
    /// `index`. When several elements go to one place, the last one in row-major order wins.
    /// Gradients flow to `self` (where not overwritten) and to the winning `src` elements.
    pub fn scatter(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_impl("scatter", axis, index, src, false)
    }

    /// Out-of-place `torch.scatter_add`: a copy of `self` with `src[i][j]` added at
    /// `[index[i][j]][j]` (for `axis = 0`). Gradients flow to `self` and `src`.
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_impl("scatter_add", axis, index, src, true)
    }

    fn scatter_impl(
        &self,
        op: &'static str,
        axis: isize,
        index: &Tensor,
        src: &Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        let ax = check_index_op(op, self, axis, index, Some(src))?;
        let ishape = index.shape().to_vec();
        let in_shape = self.shape().to_vec();
        let out = with_index(op, index, &[self, src], |idx| {
            check_range(op, idx, in_shape[ax])?;
            Ok(dispatch!(self.dtype(), T => {
                let maps: Vec<Vec<usize>> = in_shape.iter().map(|&n| identity(n)).collect();
                let mut buf = T::alloc(numel(&in_shape));
                with_data(self, |s: &[T], l| map_copy(s, l, &maps, T::ZERO, T::slice_mut(&mut buf)));
                with_data(src, |s: &[T], l| {
                    scatter_into(T::slice_mut(&mut buf), &in_shape, ax, idx, &ishape, s, l, accumulate)
                });
                Tensor::from_buffer(buf, &in_shape)
            }))
        })?;
        let saved = index.detach();
        Ok(record_float(
            out,
            if accumulate {
                Op::ScatterAdd { axis: ax }
            } else {
                Op::Scatter { axis: ax }
            },
            &[self, index, src],
            scatter_grad,
            Saved::tensors(vec![saved]),
        ))
    }

    /// The slices of `axis` listed in `index` (a 1-D i64 tensor; repeats allowed), like
    /// `torch.index_select`. The gradient adds back into the selected slices (`index_add`).
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        self.check_cpu(OP)?;
        let ax = normalize_axis(OP, axis, self.rank())?;
        if index.rank() > 1 {
            return Err(Error::bad_shape(OP, index.shape(), "a 1-D index"));
        }
        let idx = index_values(OP, index)?;
        check_range(OP, &idx, self.shape()[ax])?;
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        maps[ax] = idx.iter().map(|&v| v as usize).collect();
        let out = apply_maps(self, self.layout(), &maps, 0.0);
        Ok(record_float(
            out,
            Op::IndexSelect { axis: ax },
            &[self, index],
            index_select_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// Pads the last `pads.len()` dimensions; `pads[k] = (before, after)` for dimension
    /// `rank - pads.len() + k` (natural order: `&[(top, bottom), (left, right)]` pads H and W of
    /// NCHW). See [`PadMode`] for the fill; reflect/replicate follow PyTorch.
    pub fn pad(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad";
        self.check_cpu(OP)?;
        let rank = self.rank();
        if pads.len() > rank {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                format!(
                    "rank >= {} for {} (before, after) pairs",
                    pads.len(),
                    pads.len()
                ),
            ));
        }
        let first = rank - pads.len();
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        for (k, &(pb, pa)) in pads.iter().enumerate() {
            let d = first + k;
            let n = self.shape()[d];
            if n.checked_add(pb).and_then(|v| v.checked_add(pa)).is_none() {
                return Err(Error::invalid(
                    "pad",
                    format!("pads {pads:?} are too large"),
                ));
            }
            let src = |i: usize| i as isize - pb as isize;
            maps[d] = match mode {
                PadMode::Constant(_) => (0..pb + n + pa)
                    .map(|i| if i >= pb && i < pb + n { i - pb } else { NONE })
                    .collect(),
                PadMode::Reflect => {
                    if (pb > 0 || pa > 0) && (pb >= n || pa >= n) {
                        return Err(Error::invalid(
                            OP,
                            format!(
                                "reflect padding ({pb}, {pa}) must be smaller than the size {n} \
                                 of dimension {d} (shape {:?})",
                                self.shape()
                            ),
                        ));
                    }
                    let last = n as isize - 1;
                    (0..pb + n + pa)
                        .map(|i| {
                            let s = src(i);
                            (if s < 0 {
                                -s
                            } else if s > last {
                                2 * last - s
                            } else {
                                s
                            }) as usize
                        })
                        .collect()
                }
                PadMode::Replicate => {
                    if n == 0 && (pb > 0 || pa > 0) {
                        return Err(Error::invalid(
                            OP,
                            format!(
                                "replicate padding of the empty dimension {d} (shape {:?})",
                                self.shape()
                            ),
                        ));
                    }
                    (0..pb + n + pa)
                        .map(|i| src(i).clamp(0, n as isize - 1) as usize)
                        .collect()
                }
            };
        }
        let fill = match mode {
            PadMode::Constant(v) => v as f64,
            _ => 0.0,
        };
        let out = apply_maps(self, self.layout(), &maps, fill);
        let pads = pads.to_vec();
        Ok(record_float(
            out,
            Op::Pad {
                pads: pads.clone(),
                mode,
            },
            &[self],
            pad_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// Reverses the order of elements along each of `axes` (a copy), like `torch.flip`.
    pub fn flip(&self, axes: &[isize]) -> Result<Tensor> {
        const OP: &str = "flip";
        self.check_cpu(OP)?;
        let axes = normalize_axes(OP, axes, self.rank())?;
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        for &d in &axes {
            maps[d].reverse();
        }
        let out = apply_maps(self, self.layout(), &maps, 0.0);
        Ok(record_float(
            out,
            Op::Flip { dims: axes },
            &[self],
            flip_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// Tiles the tensor `reps[d]` times along each dimension, like `torch.Tensor.repeat`:
    /// `reps.len()` must be at least the rank; extra leading entries add new dimensions.
    pub fn repeat(&self, reps: &[usize]) -> Result<Tensor> {
        const OP: &str = "repeat";
        self.check_cpu(OP)?;
        if reps.len() < self.rank() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} repetitions for a tensor of rank {} (shape {:?}); give at least one per \
                     dimension",
                    reps.len(),
                    self.rank(),
                    self.shape()
                ),
            ));
        }
        let extra = reps.len() - self.rank();
        let l = self.layout();
        let mut shape = vec![1; extra];
        shape.extend_from_slice(&l.shape);
        let mut strides = vec![0; extra];
        strides.extend_from_slice(&l.strides);
        let layout = Layout {
            shape: shape.clone(),
            strides,
            offset: l.offset,
        };
        let out_shape: Option<Vec<usize>> = shape
            .iter()
            .zip(reps)
            .map(|(&n, &r)| n.checked_mul(r))
            .collect();
        match out_shape {
            Some(s) => super::view::check_numel(OP, &s)?,
            None => {
                return Err(Error::invalid(
                    OP,
                    format!("{reps:?} repetitions overflow the size"),
                ))
            }
        };
        let mut maps = Vec::with_capacity(reps.len());
        for (&n, &r) in shape.iter().zip(reps) {
            let len = n.checked_mul(r).ok_or_else(|| {
                Error::invalid(OP, format!("{reps:?} repetitions overflow the size"))
            })?;
            maps.push((0..len).map(|i| i % n).collect::<Vec<usize>>());
        }
        let out = apply_maps(self, &layout, &maps, 0.0);
        Ok(record_float(
            out,
            Op::Repeat {
                reps: reps.to_vec(),
            },
            &[self],
            repeat_grad,
            Saved::with_state(vec![], (maps, shape)),
        ))
    }

    /// Like [`Tensor::repeat`], but a `reps` shorter than the rank is padded with leading 1s
    /// (`torch.tile` / `numpy.tile`).
    pub fn tile(&self, reps: &[usize]) -> Result<Tensor> {
        if reps.len() >= self.rank() {
            return self.repeat(reps);
        }
        let mut full = vec![1; self.rank() - reps.len()];
        full.extend_from_slice(reps);
        self.repeat(&full)
    }

    /// One-hot encoding of integer class ids (i64/i32/u8) as f32: shape `self.shape() + [C]`
    /// with a 1 at each id. Ids must lie in `0..num_classes`.
    pub fn one_hot(&self, num_classes: usize) -> Result<Tensor> {
        const OP: &str = "one_hot";
        if num_classes == 0 {
            return Err(Error::invalid(OP, "num_classes must be positive"));
        }
        let idx = index_values(OP, self)?;
        check_range(OP, &idx, num_classes)?;
        super::view::check_numel(OP, &[idx.len(), num_classes])?;
        let mut out = pool::take_zeroed(idx.len() * num_classes);
        for (row, &v) in out.chunks_mut(num_classes).zip(&idx) {
            row[v as usize] = 1.0;
        }
        let mut shape = self.shape().to_vec();
        shape.push(num_classes);
        Ok(Tensor::from_f32(out, &shape))
    }
}

/// The gradient rule of `cat`: each input's slice of `g` along the axis.
fn cat_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Cat { axis: ax } = *op else {
        return Err(ctx.unexpected());
    };
    let sizes: Vec<usize> = (0..ctx.num_inputs())
        .map(|i| ctx.input_shape(i)[ax])
        .collect();
    let needs: Vec<bool> = (0..ctx.num_inputs()).map(|i| ctx.needs(i)).collect();
    let mut start = 0;
    let mut grads = Vec::with_capacity(sizes.len());
    for (&size, &need) in sizes.iter().zip(&needs) {
        grads.push(need.then(|| {
            let mut maps: Vec<Vec<usize>> = g.shape().iter().map(|&n| identity(n)).collect();
            maps[ax] = (start..start + size).collect();
            apply_maps(g, g.layout(), &maps, 0.0)
        }));
        start += size;
    }
    Ok(grads)
}

/// The gradient rule of `stack`: each input's index of `g` along the new axis.
fn stack_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Stack { axis: ax } = *op else {
        return Err(ctx.unexpected());
    };
    let in_shape = ctx.input_shape(0).to_vec();
    let needs: Vec<bool> = (0..ctx.num_inputs()).map(|i| ctx.needs(i)).collect();
    let mut grads = Vec::with_capacity(needs.len());
    for (i, &need) in needs.iter().enumerate() {
        grads.push(if need {
            let mut maps: Vec<Vec<usize>> = g.shape().iter().map(|&n| identity(n)).collect();
            maps[ax] = vec![i];
            Some(apply_maps(g, g.layout(), &maps, 0.0).reshape(&in_shape)?)
        } else {
            None
        });
    }
    Ok(grads)
}

/// The gradient rule of `gather`: `g` scattered (added) back to the gathered positions.
fn gather_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Gather { axis: ax } = *op else {
        return Err(ctx.unexpected());
    };
    const OP: &str = "gather";
    let saved = ctx.saved(0)?;
    let (in_shape, ishape) = (ctx.input_shape(0), ctx.input_shape(1));
    let gs = with_index(OP, saved, &[g], |idx| {
        Ok(gather_backward(g, ax, idx, ishape, in_shape))
    })?;
    Ok(vec![Some(gs), None])
}

/// The gradient rule of `scatter` / `scatter_add`: `g` passes to `self` (minus the
/// overwritten positions for `scatter`) and is gathered at the index for `src`.
fn scatter_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (ax, accumulate) = match *op {
        Op::Scatter { axis } => (axis, false),
        Op::ScatterAdd { axis } => (axis, true),
        _ => return Err(ctx.unexpected()),
    };
    let op = op.name();
    let saved = ctx.saved(0)?;
    let (in_shape, ishape, src_shape) =
        (ctx.input_shape(0), ctx.input_shape(1), ctx.input_shape(2));
    let (need_in, need_src) = (ctx.needs(0), ctx.needs(2));
    if accumulate {
        let gsrc = if need_src {
            Some(with_index(op, saved, &[g], |idx| {
                Ok(gather_padded(g, ax, idx, ishape, src_shape))
            })?)
        } else {
            None
        };
        return Ok(vec![need_in.then(|| g.clone()), None, gsrc]);
    }
    let (gin, gsrc) = with_index(op, saved, &[g], |idx| {
        Ok(dispatch!(g.dtype(), T => with_contig(g, |gs: &[T]| {
        scatter_backward(gs, ax, idx, ishape, in_shape, src_shape, need_in, need_src)
    })?))
    })?;
    Ok(vec![gin, None, gsrc])
}

/// The gradient rule of `index_select`: `g` added back along the selection maps.
fn index_select_grad(_: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    let in_shape = ctx.input_shape(0);
    Ok(vec![Some(accumulate_maps(g, &maps, in_shape)?), None])
}

/// The gradient rule of `pad`: the interior of `g` (constant padding) or `g` added back along
/// the reflect/replicate maps.
fn pad_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Pad { pads, mode } = op else {
        return Err(ctx.unexpected());
    };
    let mode = *mode;
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    let in_shape = ctx.input_shape(0);
    let first = in_shape.len() - pads.len();
    let grad = match mode {
        PadMode::Constant(_) => {
            // The gradient is the interior of g: a crop.
            let mut crop: Vec<Vec<usize>> = in_shape.iter().map(|&n| identity(n)).collect();
            for (k, &(pb, _)) in pads.iter().enumerate() {
                let d = first + k;
                crop[d] = (pb..pb + in_shape[d]).collect();
            }
            apply_maps(g, g.layout(), &crop, 0.0)
        }
        _ => accumulate_maps(g, &maps, in_shape)?,
    };
    Ok(vec![Some(grad)])
}

/// The gradient rule of `flip`: `g` flipped back.
fn flip_grad(_: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    Ok(vec![Some(apply_maps(g, g.layout(), &maps, 0.0))])
}

/// The gradient rule of `repeat`: `g` summed over the repetitions.
fn repeat_grad(_: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let state = ctx.take_state::<(Vec<Vec<usize>>, Vec<usize>)>()?;
    let (maps, shape) = (&state.0, &state.1);
    let in_shape = ctx.input_shape(0);
    Ok(vec![Some(
        accumulate_maps(g, maps, shape)?.reshape(in_shape)?,
    )])
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
