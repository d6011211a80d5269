//! The linear separable engine: per-axis weighted passes (average pooling, adaptive average
//! pooling, resize) and their transposes for the gradient.

use super::*;
use crate::storage::pool as bufpool;

// ---------------------------------------------------------------------------------------------
// Linear separable engine (average pooling, adaptive average pooling, resize)
// ---------------------------------------------------------------------------------------------

/// `out[a, o, b] = Σ_(l, w) w · x[a, l, b]` over the taps of `o`.
pub(crate) fn lin_pass(x: &[f32], a: usize, b: usize, t: &Taps, out: &mut [f32]) {
    let (lin, lout) = (t.len_in, t.len_out);
    if b == 1 {
        for (xr, or) in x.chunks_exact(lin).zip(out.chunks_exact_mut(lout)).take(a) {
            lin_row(xr, t, or);
        }
        return;
    }
    for (xs, os) in x
        .chunks_exact(lin * b)
        .zip(out.chunks_exact_mut(lout * b))
        .take(a)
    {
        for (o, orow) in os.chunks_exact_mut(b).enumerate() {
            let (ids, ws) = t.taps(o);
            if ids.is_empty() {
                orow.fill(0.0);
                continue;
            }
            let w0 = ws[0];
            for (d, &s) in orow.iter_mut().zip(&xs[ids[0] * b..][..b]) {
                *d = w0 * s;
            }
            for (&l, &w) in ids[1..].iter().zip(&ws[1..]) {
                for (d, &s) in orow.iter_mut().zip(&xs[l * b..][..b]) {
                    *d += w * s;
                }
            }
        }
    }
}

/// Width pass of [`lin_pass`] on one contiguous row.
pub(crate) fn lin_row(x: &[f32], t: &Taps, out: &mut [f32]) {
    let (lo, hi) = match t.affine {
        Some(af) if af.d == 1 && af.hi > af.lo => {
            let n = af.hi - af.lo;
            let base = af.lo * af.s - af.pad;
            let xs = &x[base..base + (n - 1) * af.s + af.k];
            let os = &mut out[af.lo..af.hi];
            match (af.k, af.s) {
                (2, 2) => sum_row_affine::<2, 2>(xs, os, af.w),
                (3, 2) => sum_row_affine::<3, 2>(xs, os, af.w),
                (3, 1) => sum_row_affine::<3, 1>(xs, os, af.w),
                _ => {
                    for (i, o) in os.iter_mut().enumerate() {
                        let s: f32 = xs[i * af.s..i * af.s + af.k].iter().sum();
                        *o = s * af.w;
                    }
                }
            }
            (af.lo, af.hi)
        }
        _ => {
            match t.repeat {
                0 => {}
                2 => {
                    for (pair, &v) in out.chunks_exact_mut(2).zip(x) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                    return;
                }
                f => {
                    for (run, &v) in out.chunks_exact_mut(f).zip(x) {
                        run.fill(v);
                    }
                    return;
                }
            }
            match t.fixed {
                1 => return gather_row::<1>(x, t, out),
                2 => return gather_row::<2>(x, t, out),
                4 => return gather_row::<4>(x, t, out),
                _ => {}
            }
            (0, 0)
        }
    };
    for o in (0..lo).chain(hi..t.len_out) {
        let (ids, ws) = t.taps(o);
        let mut acc = 0.0f32;
        for (&l, &w) in ids.iter().zip(ws) {
            acc += w * x[l];
        }
        out[o] = acc;
    }
}

/// Width pass with exactly `K` taps per output (interpolation).
#[inline(always)]
pub(crate) fn gather_row<const K: usize>(x: &[f32], t: &Taps, out: &mut [f32]) {
    for (o, (ii, ww)) in out
        .iter_mut()
        .zip(t.idx.chunks_exact(K).zip(t.w.chunks_exact(K)))
    {
        let mut acc = ww[0] * x[ii[0]];
        for j in 1..K {
            acc += ww[j] * x[ii[j]];
        }
        *o = acc;
    }
}

/// Transpose of [`gather_row`].
#[inline(always)]
pub(crate) fn scatter_row<const K: usize>(g: &[f32], t: &Taps, gx: &mut [f32]) {
    for (&v, (ii, ww)) in g.iter().zip(t.idx.chunks_exact(K).zip(t.w.chunks_exact(K))) {
        for j in 0..K {
            gx[ii[j]] += ww[j] * v;
        }
    }
}

/// `out[i] = w · Σ_{j<K} x[i*S + j]` (the caller sized `x` to cover every window).
#[inline(always)]
pub(crate) fn sum_row_affine<const K: usize, const S: usize>(x: &[f32], out: &mut [f32], w: f32) {
    let n = out.len();
    assert!(x.len() >= (n - 1) * S + K);
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = x[i * S];
        for j in 1..K {
            acc += x[i * S + j];
        }
        *o = acc * w;
    }
}

/// Transpose of [`lin_pass`]: `gx[a, l, b] += Σ w · g[a, o, b]` (`gx` must start zeroed).
pub(crate) fn lin_pass_t(g: &[f32], a: usize, b: usize, t: &Taps, gx: &mut [f32]) {
    let (lin, lout) = (t.len_in, t.len_out);
    if b == 1 {
        for (gr, xr) in g.chunks_exact(lout).zip(gx.chunks_exact_mut(lin)).take(a) {
            lin_row_t(gr, t, xr);
        }
        return;
    }
    for (gs, xs) in g
        .chunks_exact(lout * b)
        .zip(gx.chunks_exact_mut(lin * b))
        .take(a)
    {
        for (o, grow) in gs.chunks_exact(b).enumerate() {
            let (ids, ws) = t.taps(o);
            for (&l, &w) in ids.iter().zip(ws) {
                for (d, &s) in xs[l * b..][..b].iter_mut().zip(grow) {
                    *d += w * s;
                }
            }
        }
    }
}

/// Width pass of [`lin_pass_t`] on one row.
pub(crate) fn lin_row_t(g: &[f32], t: &Taps, gx: &mut [f32]) {
    let (lo, hi) = match t.affine {
        Some(af) if af.d == 1 && af.hi > af.lo => {
            let n = af.hi - af.lo;
            let base = af.lo * af.s - af.pad;
            let xs = &mut gx[base..base + (n - 1) * af.s + af.k];
            let gs = &g[af.lo..af.hi];
            match (af.k, af.s) {
                (2, 2) => {
                    // Disjoint windows: a plain broadcast, no accumulation.
                    for (pair, &v) in xs.chunks_exact_mut(2).zip(gs) {
                        let v = v * af.w;
                        pair[0] += v;
                        pair[1] += v;
                    }
                }
                _ => {
                    for (i, &v) in gs.iter().enumerate() {
                        let v = v * af.w;
                        for d in &mut xs[i * af.s..i * af.s + af.k] {
                            *d += v;
                        }
                    }
                }
            }
            (af.lo, af.hi)
        }
        _ => {
            if t.repeat > 0 {
                for (d, run) in gx.iter_mut().zip(g.chunks_exact(t.repeat)) {
                    *d += run.iter().sum::<f32>();
                }
                return;
            }
            match t.fixed {
                1 => return scatter_row::<1>(g, t, gx),
                2 => return scatter_row::<2>(g, t, gx),
                4 => return scatter_row::<4>(g, t, gx),
                _ => {}
            }
            (0, 0)
        }
    };
    for o in (0..lo).chain(hi..t.len_out) {
        let (ids, ws) = t.taps(o);
        let v = g[o];
        for (&l, &w) in ids.iter().zip(ws) {
            gx[l] += w * v;
        }
    }
}

/// The non-identity axes of `taps`, in pass order (D, H, then W).
pub(crate) fn active(taps: &[Option<Taps>; 3]) -> ([usize; 3], usize) {
    let mut ax = [0; 3];
    let mut n = 0;
    for (a, t) in taps.iter().enumerate() {
        if t.is_some() {
            ax[n] = a;
            n += 1;
        }
    }
    (ax, n)
}

/// Applies the separable linear map to `np` consecutive planes of dims `dims`.
pub(crate) fn lin_forward_planes(
    x: &[f32],
    np: usize,
    dims: [usize; 3],
    taps: &[Option<Taps>; 3],
    out: &mut [f32],
    scr: &mut Scratch,
) {
    let (axes, n) = active(taps);
    if n == 0 {
        out.copy_from_slice(x);
        return;
    }
    let mut cur = dims;
    for (pi, &ax) in axes[..n].iter().enumerate() {
        let t = taps[ax].as_ref().expect("active axis");
        let a: usize = np * cur[..ax].iter().product::<usize>();
        let b: usize = cur[ax + 1..].iter().product();
        let mut next = cur;
        next[ax] = t.len_out;
        let last = pi + 1 == n;
        let mut dstv = (!last).then(|| {
            let mut v = std::mem::take(&mut scr.f[pi % 2]);
            v.resize(np * next.iter().product::<usize>(), 0.0);
            v
        });
        {
            let src: &[f32] = if pi == 0 { x } else { &scr.f[(pi - 1) % 2] };
            let dst: &mut [f32] = match &mut dstv {
                Some(v) => v,
                None => out,
            };
            lin_pass(src, a, b, t, dst);
        }
        if let Some(v) = dstv {
            scr.f[pi % 2] = v;
        }
        cur = next;
    }
}

/// Applies the transpose of the separable linear map to `np` planes of output gradient `g`,
/// accumulating into `gx` (input dims `dims`, zeroed by the caller).
pub(crate) fn lin_backward_planes(
    g: &[f32],
    np: usize,
    dims: [usize; 3],
    taps: &[Option<Taps>; 3],
    gx: &mut [f32],
    scr: &mut Scratch,
) {
    let (axes, n) = active(taps);
    if n == 0 {
        for (d, &s) in gx.iter_mut().zip(g) {
            *d += s;
        }
        return;
    }
    // Dims before each pass of the forward order.
    let mut before = [dims; 3];
    let mut cur = dims;
    for (pi, &ax) in axes[..n].iter().enumerate() {
        before[pi] = cur;
        cur[ax] = taps[ax].as_ref().expect("active axis").len_out;
    }
    for (step, pi) in (0..n).rev().enumerate() {
        let ax = axes[pi];
        let t = taps[ax].as_ref().expect("active axis");
        let inp = before[pi];
        let a: usize = np * inp[..ax].iter().product::<usize>();
        let b: usize = inp[ax + 1..].iter().product();
        let last = pi == 0;
        let mut dstv = (!last).then(|| {
            let mut v = std::mem::take(&mut scr.f[step % 2]);
            v.clear();
            v.resize(np * inp.iter().product::<usize>(), 0.0);
            v
        });
        {
            let src: &[f32] = if step == 0 { g } else { &scr.f[(step - 1) % 2] };
            let dst: &mut [f32] = match &mut dstv {
                Some(v) => v,
                None => gx,
            };
            lin_pass_t(src, a, b, t, dst);
        }
        if let Some(v) = dstv {
            scr.f[step % 2] = v;
        }
    }
}

/// Runs the planned separable linear map over the planes of `x`.
pub(crate) fn forward(op: &'static str, plan: &SepPlan, x: &Tensor) -> Result<Tensor> {
    let (dims, taps) = (plan.dims, &plan.taps);
    let (in_plane, out_plane) = (plan.in_plane, plan.out_plane);
    let whole = whole_plane(dims, taps);
    let grp = group_size(in_plane.max(out_plane));
    let mut out = bufpool::take_uninit(plan.planes * out_plane);
    x.with_f32(op, |xs| {
        par_planes(
            plan.planes,
            in_plane + out_plane,
            &mut out,
            out_plane,
            &mut [] as &mut [i32],
            0,
            |r, o, _| {
                if let Some(scale) = whole {
                    for (d, p) in o.iter_mut().zip(r) {
                        *d = plane_sum(&xs[p * in_plane..(p + 1) * in_plane]) * scale;
                    }
                    return;
                }
                let mut scr = Scratch::default();
                for_groups(r, grp, |p, np, k| {
                    lin_forward_planes(
                        &xs[p * in_plane..(p + np) * in_plane],
                        np,
                        dims,
                        taps,
                        &mut o[k * out_plane..(k + np) * out_plane],
                        &mut scr,
                    );
                });
            },
        )
    })?;
    Ok(Tensor::from_f32(out, &plan.out_shape))
}

/// The transposed per-axis passes of the planned linear map over the output gradient `g`.
pub(crate) fn backward(op: &'static str, plan: &SepPlan, g: &Tensor) -> Result<Tensor> {
    let (planes, dims, taps) = (plan.planes, plan.dims, &plan.taps);
    let (in_plane, out_plane) = (plan.in_plane, plan.out_plane);
    let whole = whole_plane(dims, taps);
    let grp = group_size(in_plane.max(out_plane));
    let mut gx = bufpool::take_zeroed(planes * in_plane);
    g.with_f32(op, |gs| {
        par_planes(
            planes,
            in_plane + out_plane,
            &mut gx,
            in_plane,
            &mut [] as &mut [i32],
            0,
            |r, d, _| {
                if let Some(scale) = whole {
                    for (dp, p) in d.chunks_exact_mut(in_plane).zip(r) {
                        dp.fill(gs[p] * scale);
                    }
                    return;
                }
                let mut scr = Scratch::default();
                for_groups(r, grp, |p, np, k| {
                    lin_backward_planes(
                        &gs[p * out_plane..(p + np) * out_plane],
                        np,
                        dims,
                        taps,
                        &mut d[k * in_plane..(k + np) * in_plane],
                        &mut scr,
                    );
                });
            },
        )
    })?;
    Ok(Tensor::from_f32(gx, &plan.in_shape))
}
