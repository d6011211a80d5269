//! The max separable engine: per-axis max passes that track, per output, the flat index of the
//! chosen element within its plane.
//!
//! Ties go to the smallest flat index (the first in PyTorch's row-major scan, whatever the pass
//! order); a NaN in a window wins. The forward pass saves these indices as `i32` (in buffers
//! recycled between steps) only when a gradient or the indices are asked for, and the backward
//! pass scatters the output gradient through them. The max loops are branch-free selects over
//! register blocks of 16 (8 with indices) outputs, because on real data the comparisons are
//! unpredictable. Max unpooling (a scatter of values to saved indices) and its gradient (a
//! gather) are here too.

use super::linear::active;
use super::*;
use crate::kernels::pool2x2::{max_pool_2x2, Pool2x2};
use crate::kernels::pool3x3::{max_pool_3x3s2, window, Pool3x3};
use crate::storage::pool as bufpool;

// ---------------------------------------------------------------------------------------------
// Max separable engine
// ---------------------------------------------------------------------------------------------

/// Where the flat plane index of an input element comes from: its own position (first pass)
/// or the index carried from an earlier pass.
pub(crate) trait IdxSrc: Copy {
    /// Indices grow with positions, so a later tap never wins a tie (taps are ascending).
    const ORDERED: bool;
    /// Index of element `p` (relative to this source).
    fn at(self, p: usize) -> i32;
    /// The source shifted to start at `p` and covering `len` elements.
    fn sub(self, p: usize, len: usize) -> Self;
}

/// Indices equal to positions (plus an offset).
#[derive(Clone, Copy)]
pub(crate) struct Implicit(usize);

impl IdxSrc for Implicit {
    const ORDERED: bool = true;
    #[inline(always)]
    fn at(self, p: usize) -> i32 {
        (self.0 + p) as i32
    }
    #[inline(always)]
    fn sub(self, p: usize, _len: usize) -> Self {
        Implicit(self.0 + p)
    }
}

impl IdxSrc for &[i32] {
    const ORDERED: bool = false;
    #[inline(always)]
    fn at(self, p: usize) -> i32 {
        self[p]
    }
    #[inline(always)]
    fn sub(self, p: usize, len: usize) -> Self {
        &self[p..p + len]
    }
}

/// True when candidate `(v, i)` replaces the running max `(m, mi)`: larger, or equal with a
/// smaller flat index (PyTorch's first-in-scan-order), or NaN (which propagates).
///
/// Non-short-circuit `|`/`&` and select-style updates at the call sites keep the loops
/// branch-free: on real data the comparisons are unpredictable.
#[inline(always)]
pub(crate) fn better(v: f32, i: i32, m: f32, mi: i32) -> bool {
    (v > m) | ((v == m) & (i < mi)) | v.is_nan()
}

/// [`better`] for a candidate from source `I`; ordered sources skip the tie test.
#[inline(always)]
pub(crate) fn better_from<I: IdxSrc>(v: f32, i: i32, m: f32, mi: i32) -> bool {
    if I::ORDERED {
        (v > m) | v.is_nan()
    } else {
        better(v, i, m, mi)
    }
}

pub(crate) use crate::kernels::pool2x2::max_nan;

/// Max over the taps of each output; `TRACK` also writes the winning flat index.
pub(crate) fn max_pass<const TRACK: bool, I: IdxSrc>(
    x: &[f32],
    ix: I,
    a: usize,
    b: usize,
    t: &Taps,
    out: &mut [f32],
    oidx: &mut [i32],
) {
    let (lin, lout) = (t.len_in, t.len_out);
    if b == 1 {
        for ai in 0..a {
            let (xo, oo) = (ai * lin, ai * lout);
            let (or, oi) = if TRACK {
                (&mut out[oo..oo + lout], &mut oidx[oo..oo + lout])
            } else {
                (&mut out[oo..oo + lout], &mut [][..])
            };
            max_row::<TRACK, I>(&x[xo..xo + lin], ix, xo, t, or, oi);
        }
        return;
    }
    for ai in 0..a {
        let xa = ai * lin * b;
        for o in 0..lout {
            let op = (ai * lout + o) * b;
            let (ids, _) = t.taps(o);
            if ids.is_empty() {
                out[op..op + b].fill(f32::NEG_INFINITY);
                if TRACK {
                    oidx[op..op + b].fill(-1);
                }
                continue;
            }
            // Tracked lanes carry an index too: half as many fit the registers.
            if TRACK {
                cover_blocks!(b, 8, 4, 2, |col, N| {
                    let oi = &mut oidx[op + col..op + col + N];
                    max_cols::<TRACK, I, N>(x, ix, xa + col, b, ids, &mut out[op + col..], oi);
                });
            } else {
                cover_blocks!(b, 16, 8, 4, |col, N| {
                    max_cols::<TRACK, I, N>(x, ix, xa + col, b, ids, &mut out[op + col..], &mut []);
                });
            }
        }
    }
}

/// Max over the rows `ids` (stride `b`, from offset `base`) of `N` consecutive columns.
#[inline(always)]
pub(crate) fn max_cols<const TRACK: bool, I: IdxSrc, const N: usize>(
    x: &[f32],
    ix: I,
    base: usize,
    b: usize,
    ids: &[usize],
    out: &mut [f32],
    oidx: &mut [i32],
) {
    let p0 = base + ids[0] * b;
    let mut m: [f32; N] = x[p0..p0 + N].try_into().expect("N values");
    let mut mi = [0i32; N];
    if TRACK {
        let s = ix.sub(p0, N);
        for (l, d) in mi.iter_mut().enumerate() {
            *d = s.at(l);
        }
    }
    for &r in &ids[1..] {
        let p = base + r * b;
        let xr: &[f32; N] = x[p..p + N].try_into().expect("N values");
        if TRACK {
            let s = ix.sub(p, N);
            for l in 0..N {
                let (v, i) = (xr[l], s.at(l));
                let c = better_from::<I>(v, i, m[l], mi[l]);
                m[l] = if c { v } else { m[l] };
                mi[l] = if c { i } else { mi[l] };
            }
        } else {
            for l in 0..N {
                m[l] = max_nan(m[l], xr[l]);
            }
        }
    }
    out[..N].copy_from_slice(&m);
    if TRACK {
        oidx[..N].copy_from_slice(&mi);
    }
}

/// Width pass of [`max_pass`] on one row starting at plane offset `base`.
pub(crate) fn max_row<const TRACK: bool, I: IdxSrc>(
    x: &[f32],
    ix: I,
    base: usize,
    t: &Taps,
    out: &mut [f32],
    oidx: &mut [i32],
) {
    // Index of position `q` of the row; untracked passes have no carried indices to read.
    let at = |q: usize| if TRACK { ix.at(base + q) } else { 0 };
    let (lo, hi) = match t.affine {
        Some(af) if af.hi > af.lo => {
            match (af.k, af.s, af.d) {
                (2, 2, 1) => max_row_affine::<TRACK, I, 2, 2>(x, ix, base, af, out, oidx),
                (3, 2, 1) => max_row_affine::<TRACK, I, 3, 2>(x, ix, base, af, out, oidx),
                (3, 1, 1) => max_row_affine::<TRACK, I, 3, 1>(x, ix, base, af, out, oidx),
                _ => {
                    for o in af.lo..af.hi {
                        let st = o * af.s - af.pad;
                        let (mut m, mut mi) = (x[st], at(st));
                        for j in 1..af.k {
                            let q = st + j * af.d;
                            let (v, i) = (x[q], at(q));
                            let c = better(v, i, m, mi);
                            m = if c { v } else { m };
                            mi = if c { i } else { mi };
                        }
                        out[o] = m;
                        if TRACK {
                            oidx[o] = mi;
                        }
                    }
                }
            }
            (af.lo, af.hi)
        }
        _ => (0, 0),
    };
    for o in (0..lo).chain(hi..t.len_out) {
        let (ids, _) = t.taps(o);
        let (mut m, mut mi) = (f32::NEG_INFINITY, -1);
        if let Some((&l0, rest)) = ids.split_first() {
            m = x[l0];
            mi = at(l0);
            for &l in rest {
                let (v, i) = (x[l], at(l));
                let c = better(v, i, m, mi);
                m = if c { v } else { m };
                mi = if c { i } else { mi };
            }
        }
        out[o] = m;
        if TRACK {
            oidx[o] = mi;
        }
    }
}

/// Interior of the width pass for a `K`-wide, stride-`S`, undilated window.
#[inline(always)]
pub(crate) fn max_row_affine<const TRACK: bool, I: IdxSrc, const K: usize, const S: usize>(
    x: &[f32],
    ix: I,
    base: usize,
    af: Affine,
    out: &mut [f32],
    oidx: &mut [i32],
) {
    let n = af.hi - af.lo;
    let st0 = af.lo * S - af.pad;
    if TRACK {
        cover_blocks!(n, 8, 4, 2, |o, N| {
            max_strided::<TRACK, I, K, S, N>(x, ix, base, st0 + o * S, af.lo + o, out, oidx);
        });
    } else {
        cover_blocks!(n, 16, 8, 4, |o, N| {
            max_strided::<TRACK, I, K, S, N>(x, ix, base, st0 + o * S, af.lo + o, out, oidx);
        });
    }
}

/// `N` outputs from `o0` of a `K`-wide, stride-`S` max over the row from position `q0`.
#[inline(always)]
pub(crate) fn max_strided<
    const TRACK: bool,
    I: IdxSrc,
    const K: usize,
    const S: usize,
    const N: usize,
>(
    x: &[f32],
    ix: I,
    base: usize,
    q0: usize,
    o0: usize,
    out: &mut [f32],
    oidx: &mut [i32],
) {
    let span = (N - 1) * S + K;
    let w = &x[q0..q0 + span];
    let mut m = [0f32; N];
    let mut mi = [0i32; N];
    let s = if TRACK {
        Some(ix.sub(base + q0, span))
    } else {
        None
    };
    for l in 0..N {
        m[l] = w[l * S];
        if let Some(s) = s {
            mi[l] = s.at(l * S);
        }
    }
    for j in 1..K {
        for l in 0..N {
            let v = w[l * S + j];
            if let Some(s) = s {
                let i = s.at(l * S + j);
                let c = better_from::<I>(v, i, m[l], mi[l]);
                m[l] = if c { v } else { m[l] };
                mi[l] = if c { i } else { mi[l] };
            } else {
                m[l] = max_nan(m[l], v);
            }
        }
    }
    out[o0..o0 + N].copy_from_slice(&m);
    if TRACK {
        oidx[o0..o0 + N].copy_from_slice(&mi);
    }
}

/// Max over the separable window of `np` planes; with `TRACK` also the flat index of each
/// maximum within its plane.
pub(crate) fn max_forward_planes<const TRACK: bool>(
    x: &[f32],
    np: usize,
    dims: [usize; 3],
    taps: &[Option<Taps>; 3],
    out: &mut [f32],
    oidx: &mut [i32],
    scr: &mut Scratch,
) {
    let (axes, n) = active(taps);
    let in_plane: usize = dims.iter().product();
    if n == 0 {
        out.copy_from_slice(x);
        if TRACK {
            for (k, d) in oidx.iter_mut().enumerate() {
                *d = (k % in_plane) as i32;
            }
        }
        return;
    }
    let mut cur = dims;
    for (pi, &ax) in axes[..n].iter().enumerate() {
        let t = taps[ax].as_ref().expect("active axis");
        let a: usize = np * cur[..ax].iter().product::<usize>();
        let b: usize = cur[ax + 1..].iter().product();
        let mut next = cur;
        next[ax] = t.len_out;
        let next_n: usize = np * next.iter().product::<usize>();
        let last = pi + 1 == n;
        let mut dstv = (!last).then(|| {
            let mut v = std::mem::take(&mut scr.f[pi % 2]);
            v.resize(next_n, 0.0);
            let mut i = std::mem::take(&mut scr.i[pi % 2]);
            if TRACK {
                i.resize(next_n, 0);
            }
            (v, i)
        });
        {
            let dst: (&mut [f32], &mut [i32]) = match &mut dstv {
                Some((v, i)) => (v, i),
                None => (&mut *out, &mut *oidx),
            };
            if pi == 0 {
                max_pass::<TRACK, Implicit>(x, Implicit(0), a, b, t, dst.0, dst.1);
            } else {
                let src = &scr.f[(pi - 1) % 2];
                let sidx: &[i32] = &scr.i[(pi - 1) % 2];
                max_pass::<TRACK, &[i32]>(src, sidx, a, b, t, dst.0, dst.1);
            }
        }
        if let Some((v, i)) = dstv {
            scr.f[pi % 2] = v;
            scr.i[pi % 2] = i;
        }
        cur = next;
    }
    // The passes tracked positions in the whole group; make them relative to each plane.
    if TRACK && np > 1 {
        let out_plane = oidx.len() / np;
        for (k, plane) in oidx.chunks_exact_mut(out_plane).enumerate().skip(1) {
            let shift = (k * in_plane) as i32;
            for i in plane {
                if *i >= 0 {
                    *i -= shift;
                }
            }
        }
    }
}

/// First maximum (NaN wins) of a whole plane and its index, in lanes.
pub(crate) fn plane_argmax(x: &[f32]) -> (f32, i32) {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut mi = [-1i32; LANES];
    let mut it = x.chunks_exact(LANES);
    for (c, chunk) in (&mut it).enumerate() {
        let base = (c * LANES) as i32;
        for l in 0..LANES {
            let (v, i) = (chunk[l], base + l as i32);
            // Lanes scan increasing indices, so a strict comparison keeps the first maximum.
            let take = (v > m[l]) | v.is_nan() | (mi[l] < 0);
            m[l] = if take { v } else { m[l] };
            mi[l] = if take { i } else { mi[l] };
        }
    }
    let (mut bm, mut bi) = (f32::NEG_INFINITY, -1i32);
    let tail = it.remainder();
    let tail_base = x.len() - tail.len();
    let cands = m.iter().zip(&mi).map(|(&v, &i)| (v, i)).chain(
        tail.iter()
            .enumerate()
            .map(|(k, &v)| (v, (tail_base + k) as i32)),
    );
    for (v, i) in cands {
        if i < 0 {
            continue;
        }
        if bi < 0 || better(v, i, bm, bi) {
            bm = v;
            bi = i;
        }
    }
    (bm, bi)
}

/// The geometry for the dedicated 2×2 stride-2 kernel when `plan` is that pool (2-d, no padding
/// or dilation, floor mode), which computes the same values and indices in one pass.
fn two_by_two(plan: &SepPlan) -> Option<Pool2x2> {
    let axis = |t: &Option<Taps>| match t.as_ref().and_then(|t| t.affine.map(|af| (t, af))) {
        Some((t, af))
            if (af.k, af.s, af.d, af.pad, af.lo) == (2, 2, 1, 0, 0)
                && af.hi == t.len_out
                && 2 * t.len_out <= t.len_in =>
        {
            Some((t.len_in, t.len_out))
        }
        _ => None,
    };
    if plan.taps[0].is_some() || plan.dims[0] != 1 {
        return None;
    }
    let ((h, oh), (w, ow)) = (axis(&plan.taps[1])?, axis(&plan.taps[2])?);
    Some(Pool2x2 {
        planes: plan.planes,
        h,
        w,
        oh,
        ow,
    })
}

/// The geometry for the dedicated 3×3 stride-2 kernel when `plan` is that pool (2-d, undilated,
/// padding ≤ 1, floor or ceil mode), which computes the same values and indices in one pass.
fn three_by_three(plan: &SepPlan) -> Option<Pool3x3> {
    let axis = |t: &Option<Taps>| {
        let t = t.as_ref()?;
        let af = t.affine?;
        // Every window, border ones included, must be the kernel's clipped window.
        let same = (0..af.lo).chain(af.hi..t.len_out).all(|o| {
            let (s, e) = window(o, t.len_in, af.pad);
            t.taps(o).0.iter().copied().eq(s..e)
        });
        ((af.k, af.s, af.d) == (3, 2, 1) && af.pad <= 1 && same)
            .then_some((t.len_in, t.len_out, af.pad))
    };
    if plan.taps[0].is_some() || plan.dims[0] != 1 {
        return None;
    }
    let ((h, oh, pad_h), (w, ow, pad_w)) = (axis(&plan.taps[1])?, axis(&plan.taps[2])?);
    let g = Pool3x3 {
        planes: plan.planes,
        h,
        w,
        oh,
        ow,
        pad_h,
        pad_w,
    };
    g.is_valid().then_some(g)
}

/// Max over the planned windows of the planes of `x`, with the argmax where `track`.
pub(crate) fn forward(
    op: &'static str,
    plan: &SepPlan,
    x: &Tensor,
    track: bool,
) -> Result<(Tensor, Option<IdxBuf>)> {
    let (dims, taps) = (plan.dims, &plan.taps);
    let (in_plane, out_plane) = (plan.in_plane, plan.out_plane);
    let whole = whole_plane(dims, taps).is_some();
    let grp = group_size(in_plane.max(out_plane));
    let mut out = bufpool::take_uninit(plan.planes * out_plane);
    let mut idx = IdxBuf::take(if track { plan.planes * out_plane } else { 0 });
    let idx_plane = if track { out_plane } else { 0 };
    let two_by_two = two_by_two(plan);
    let three_by_three = three_by_three(plan);
    x.with_f32(op, |xs| {
        par_planes(
            plan.planes,
            in_plane + out_plane,
            &mut out,
            out_plane,
            &mut idx,
            idx_plane,
            |r, o, ii| {
                if let Some(g) = two_by_two {
                    let g = Pool2x2 {
                        planes: r.len(),
                        ..g
                    };
                    let xp = &xs[r.start * in_plane..r.end * in_plane];
                    max_pool_2x2(xp, g, o, track.then_some(ii));
                    return;
                }
                if let Some(g) = three_by_three {
                    let g = Pool3x3 {
                        planes: r.len(),
                        ..g
                    };
                    let xp = &xs[r.start * in_plane..r.end * in_plane];
                    max_pool_3x3s2(xp, g, o, track.then_some(ii));
                    return;
                }
                if whole {
                    for (k, p) in r.enumerate() {
                        let (m, i) = plane_argmax(&xs[p * in_plane..(p + 1) * in_plane]);
                        o[k] = m;
                        if track {
                            ii[k] = i;
                        }
                    }
                    return;
                }
                let mut scr = Scratch::default();
                for_groups(r, grp, |p, np, k| {
                    let xp = &xs[p * in_plane..(p + np) * in_plane];
                    let op = &mut o[k * out_plane..(k + np) * out_plane];
                    if track {
                        let ip = &mut ii[k * out_plane..(k + np) * out_plane];
                        max_forward_planes::<true>(xp, np, dims, taps, op, ip, &mut scr);
                    } else {
                        max_forward_planes::<false>(xp, np, dims, taps, op, &mut [], &mut scr);
                    }
                });
            },
        )
    })?;
    let values = Tensor::from_f32(out, &plan.out_shape);
    Ok((values, track.then_some(idx)))
}

/// The gradient of max pooling: `g` scattered to the saved argmax positions.
pub(crate) fn backward(
    op: &'static str,
    plan: &SepPlan,
    g: &Tensor,
    idx: &IdxBuf,
) -> Result<Tensor> {
    let gx = g.with_f32(op, |gs| {
        scatter_planes(gs, idx, plan.planes, plan.out_plane, plan.in_plane)
    })?;
    Ok(Tensor::from_f32(gx, &plan.in_shape))
}

/// `dst[plane][idx[o]] += src[plane][o]` for every plane (negative indices are skipped).
pub(crate) fn scatter_planes(
    src: &[f32],
    idx: &[i32],
    planes: usize,
    src_plane: usize,
    dst_plane: usize,
) -> Vec<f32> {
    let mut dst = bufpool::take_zeroed(planes * dst_plane);
    par_planes(
        planes,
        src_plane + dst_plane,
        &mut dst,
        dst_plane,
        &mut [] as &mut [i32],
        0,
        |r, d, _| {
            for (k, p) in r.enumerate() {
                let dp = &mut d[k * dst_plane..(k + 1) * dst_plane];
                let sp = p * src_plane..(p + 1) * src_plane;
                for (&v, &i) in src[sp.clone()].iter().zip(&idx[sp]) {
                    if let Some(slot) = usize::try_from(i).ok().and_then(|i| dp.get_mut(i)) {
                        *slot += v;
                    }
                }
            }
        },
    );
    dst
}

/// `dst[plane][o] = src[plane][idx[o]]` for every plane.
pub(crate) fn gather_planes(
    src: &[f32],
    idx: &[i64],
    planes: usize,
    src_plane: usize,
    dst_plane: usize,
) -> Vec<f32> {
    let mut dst = bufpool::take_uninit(planes * dst_plane);
    par_planes(
        planes,
        src_plane + dst_plane,
        &mut dst,
        dst_plane,
        &mut [] as &mut [i32],
        0,
        |r, d, _| {
            for (k, p) in r.enumerate() {
                let sp = &src[p * src_plane..(p + 1) * src_plane];
                let ip = &idx[p * dst_plane..(p + 1) * dst_plane];
                for (o, &i) in d[k * dst_plane..(k + 1) * dst_plane].iter_mut().zip(ip) {
                    *o = sp[i as usize];
                }
            }
        },
    );
    dst
}

/// Max unpooling: zeros of the plan's output with each input value of `x` written at its flat
/// plane index `idx` (checked in range by the op); the last value wins on repeats.
pub(crate) fn unpool(op: &'static str, plan: &SepPlan, x: &Tensor, idx: &[i64]) -> Result<Tensor> {
    let (in_plane, out_plane) = (plan.in_plane, plan.out_plane);
    let mut out = bufpool::take_zeroed(plan.planes * out_plane);
    x.with_f32(op, |xs| {
        par_planes(
            plan.planes,
            in_plane + out_plane,
            &mut out,
            out_plane,
            &mut [] as &mut [i32],
            0,
            |r, o, _| {
                for (k, p) in r.enumerate() {
                    let dst = &mut o[k * out_plane..(k + 1) * out_plane];
                    let pr = p * in_plane..(p + 1) * in_plane;
                    for (&v, &i) in xs[pr.clone()].iter().zip(&idx[pr]) {
                        dst[i as usize] = v;
                    }
                }
            },
        )
    })?;
    Ok(Tensor::from_f32(out, &plan.out_shape))
}

/// The gradient of max unpooling: the output gradient gathered at the indices.
pub(crate) fn unpool_backward(
    op: &'static str,
    plan: &SepPlan,
    g: &Tensor,
    idx: &[i64],
) -> Result<Tensor> {
    let gx = g.with_f32(op, |gs| {
        gather_planes(gs, idx, plan.planes, plan.out_plane, plan.in_plane)
    })?;
    Ok(Tensor::from_f32(gx, &plan.in_shape))
}
