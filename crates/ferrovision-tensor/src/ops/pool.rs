//! Pooling over 1, 2 or 3 spatial dims (NCL, NCHW, NCDHW, or unbatched CL/CHW/CDHW): max and
//! average pooling with stride, padding, dilation and ceil mode, max pooling with indices and
//! unpooling, adaptive pooling and global pooling. Semantics follow PyTorch.
//!
//! # How it is computed
//!
//! Every op here (and every resize of [`super::resize`]) is *separable*: the window of an output
//! element is a product of one window per axis. Average pooling divides by a product of per-axis
//! counts (PyTorch's divisor is `(hend-hstart)*(wend-wstart)` with each factor clipped per axis),
//! so it is a product of per-axis linear maps; max over a box is the max over each axis in turn.
//! Each op is therefore run as one 1-D pass per non-trivial axis over each `(n, c)` plane: first
//! the depth and height passes, whose taps are whole contiguous rows (vectorised elementwise
//! loops), then the width pass, which shrinks the data first for the cheap strided part. A pass
//! is described by [`Taps`]: for each output position, the input positions it reads (and their
//! weights for linear maps). The 2x2-stride-2, 3x3-stride-2 and 3x3-stride-1 width passes have
//! specialised loops; small planes are run through the passes in groups, and whole-plane
//! windows (global pooling) are plain reductions.
//!
//! Max pooling tracks, per output, the flat index of the chosen element within its plane. Ties
//! go to the smallest flat index (the first in PyTorch's row-major scan, whatever the pass
//! order); a NaN in a window wins. The forward pass saves these indices as `i32` (in buffers
//! recycled between steps) only when a gradient or the indices are asked for, and the backward
//! pass scatters the output gradient through them. The max loops are branch-free selects over
//! register blocks of 16 (8 with indices) outputs, because on real data the comparisons are
//! unpredictable.
//!
//! Planes are processed in parallel with rayon above a size threshold.

use crate::autograd::{is_grad_enabled, record};
use crate::parallel::par_planes;
use crate::storage::pool as bufpool;
use crate::{DType, Error, Result, Tensor};

/// Lanes of the vectorised max loops: the running maxima live in registers and are stored once
/// per block (a select-and-store per tap would become a masked store).
const LANES: usize = 16;

/// Runs `body` with a block start `$start` and a const block width `$N` over blocks covering
/// `0..$n`: blocks of width `$w1` (or `$w2`, `$w3` for shorter ranges), the last block shifted
/// back to end at `$n` (overlapping its neighbour, so bodies must only write values they
/// recompute), and single elements below `$w3`. This keeps short rows (LeNet's 10 or 14
/// columns) vectorised.
macro_rules! cover_blocks {
    ($n:expr, $w1:literal, $w2:literal, $w3:literal, |$start:ident, $N:ident| $body:block) => {{
        let n: usize = $n;
        if n >= $w1 {
            const $N: usize = $w1;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else if n >= $w2 {
            const $N: usize = $w2;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else if n >= $w3 {
            const $N: usize = $w3;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else {
            const $N: usize = 1;
            for $start in 0..n {
                $body
            }
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// Window options of max and average pooling, like the arguments of `torch.nn.MaxPool2d` /
/// `AvgPool2d`.
///
/// Each list holds one value (used for every spatial dim) or one value per spatial dim.
///
/// ```
/// use ferrovision_tensor::{ops::pool::PoolOpts, Tensor};
/// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
/// let y = x.max_pool2d(&PoolOpts::new(&[2])).unwrap();
/// assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
/// let y = x.avg_pool2d(&PoolOpts::new(&[3]).stride(&[2]).padding(&[1]).count_include_pad(false)).unwrap();
/// assert_eq!(y.shape(), &[1, 1, 2, 2]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOpts {
    /// Window size.
    pub kernel: Vec<usize>,
    /// Step between windows; empty means the kernel size.
    pub stride: Vec<usize>,
    /// Implicit padding on both sides of each dim; empty means 0. Must be at most half the
    /// kernel size (PyTorch's rule). Max pooling pads with -inf, average pooling with zeros.
    pub padding: Vec<usize>,
    /// Spacing between window elements (max pooling only; average pooling needs 1); empty
    /// means 1.
    pub dilation: Vec<usize>,
    /// Use ceiling instead of floor to compute the output size. As in PyTorch, a last window
    /// is only kept if it starts inside the input or the left padding.
    pub ceil_mode: bool,
    /// Average pooling: count padded zeros in the divisor (PyTorch default `true`). Windows
    /// that hang past the right padding in ceil mode never count the part beyond it.
    pub count_include_pad: bool,
}

impl PoolOpts {
    /// Options with the given kernel size (one value for every dim, or one per dim), stride
    /// equal to the kernel, no padding, dilation 1, floor mode, `count_include_pad = true`.
    pub fn new(kernel: &[usize]) -> Self {
        PoolOpts {
            kernel: kernel.to_vec(),
            stride: Vec::new(),
            padding: Vec::new(),
            dilation: Vec::new(),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }

    /// Sets the symmetric padding.
    pub fn padding(mut self, padding: &[usize]) -> Self {
        self.padding = padding.to_vec();
        self
    }

    /// Sets the dilation (max pooling only).
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = dilation.to_vec();
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets whether average pooling counts padding in its divisor.
    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }
}

/// Expands an option list to the three internal axes (D, H, W); leading unused axes get `unused`.
fn per_axis(
    op: &'static str,
    what: &str,
    v: &[usize],
    sp: usize,
    default: usize,
    unused: usize,
) -> Result<[usize; 3]> {
    let mut out = [unused; 3];
    let vals: Vec<usize> = match v.len() {
        0 => vec![default; sp],
        1 => vec![v[0]; sp],
        n if n == sp => v.to_vec(),
        n => {
            return Err(Error::invalid(
                op,
                format!("{what} has {n} values {v:?}; expected 1 or {sp}"),
            ))
        }
    };
    out[3 - sp..].copy_from_slice(&vals);
    Ok(out)
}

/// Output length of one pooled axis (PyTorch's `pooling_output_shape`), validating the window.
#[allow(clippy::too_many_arguments)]
fn pool_out_len(
    op: &'static str,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    ceil: bool,
) -> Result<usize> {
    if len == 0 {
        return Err(Error::invalid(op, "spatial sizes must be non-zero"));
    }
    if k == 0 || s == 0 || d == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel {k}, stride {s} and dilation {d} must all be positive"),
        ));
    }
    if p > k / 2 {
        return Err(Error::invalid(
            op,
            format!("padding {p} must be at most half the kernel size {k}"),
        ));
    }
    let too_large = || {
        Error::invalid(
            op,
            format!("kernel {k}, dilation {d} or stride {s} is too large"),
        )
    };
    let eff = d
        .checked_mul(k - 1)
        .and_then(|e| i64::try_from(e).ok())
        .and_then(|e| e.checked_add(1))
        .ok_or_else(too_large)?;
    let (len_i, s_i, p_i) = match (i64::try_from(len), i64::try_from(s), i64::try_from(p)) {
        (Ok(l), Ok(s), Ok(p)) if l.checked_add(2 * p).is_some() && s.checked_add(p).is_some() => {
            (l, s, p)
        }
        _ => return Err(too_large()),
    };
    let num = len_i + 2 * p_i - eff + if ceil { s_i - 1 } else { 0 };
    let mut out = num.div_euclid(s_i) + 1;
    if ceil && (out - 1) * s_i >= len_i + p_i {
        out -= 1;
    }
    if out < 1 {
        return Err(Error::invalid(
            op,
            format!(
                "input size {len} is too small for kernel {k} (dilation {d}, padding {p}, stride {s}): output size would be {out}"
            ),
        ));
    }
    Ok(out as usize)
}

// ---------------------------------------------------------------------------------------------
// Taps: the per-axis description of a separable pass
// ---------------------------------------------------------------------------------------------

/// Window `o*s - pad + j*d, j < k` shared by the outputs `lo..hi` (all in range, weight `w`).
#[derive(Debug, Clone, Copy)]
struct Affine {
    k: usize,
    s: usize,
    d: usize,
    pad: usize,
    lo: usize,
    hi: usize,
    w: f32,
}

/// One axis of a separable op: for each output position `o`, the input positions it reads
/// (ascending for pooling) and their weights (used by linear maps; max ignores them).
#[derive(Debug, Clone)]
pub(crate) struct Taps {
    len_in: usize,
    len_out: usize,
    off: Vec<usize>,
    idx: Vec<usize>,
    w: Vec<f32>,
    /// Every output reads this many taps (0 when counts differ): fixed-size inner loops.
    fixed: usize,
    /// `f > 0` when output `o` copies input `o / f` (integer-factor nearest upsampling).
    repeat: usize,
    affine: Option<Affine>,
}

impl Taps {
    /// Builds taps by calling `f(o, &mut taps)` for every output position; `f` pushes
    /// `(input position, weight)` pairs.
    pub(crate) fn build(
        len_in: usize,
        len_out: usize,
        mut f: impl FnMut(usize, &mut Vec<(usize, f32)>),
    ) -> Taps {
        let mut off = Vec::with_capacity(len_out + 1);
        let mut idx = Vec::new();
        let mut w = Vec::new();
        let mut buf = Vec::new();
        off.push(0);
        for o in 0..len_out {
            buf.clear();
            f(o, &mut buf);
            for &(i, wt) in &buf {
                debug_assert!(i < len_in);
                idx.push(i);
                w.push(wt);
            }
            off.push(idx.len());
        }
        let fixed = match off.get(1) {
            Some(&k) if (0..len_out).all(|o| off[o + 1] - off[o] == k) => k,
            _ => 0,
        };
        let f = len_out / len_in.max(1);
        let repeat = if fixed == 1
            && f > 1
            && len_out == f * len_in
            && idx.iter().enumerate().all(|(o, &i)| i == o / f)
            && w.iter().all(|&v| v == 1.0)
        {
            f
        } else {
            0
        };
        Taps {
            len_in,
            len_out,
            off,
            idx,
            w,
            fixed,
            repeat,
            affine: None,
        }
    }

    /// True when the single output reads the whole axis (a global reduction).
    fn whole(&self) -> bool {
        self.len_out == 1 && self.idx.len() == self.len_in
    }

    #[inline(always)]
    fn taps(&self, o: usize) -> (&[usize], &[f32]) {
        let r = self.off[o]..self.off[o + 1];
        (&self.idx[r.clone()], &self.w[r])
    }

    /// Window of a max (`avg = None`) or average (`avg = Some(count_include_pad)`) pooling
    /// axis; `None` when the axis is the identity.
    #[allow(clippy::too_many_arguments)]
    fn pool(
        len: usize,
        out: usize,
        k: usize,
        s: usize,
        p: usize,
        d: usize,
        avg: Option<bool>,
    ) -> Option<Taps> {
        if k == 1 && s == 1 && p == 0 && out == len {
            return None;
        }
        let (li, pi) = (len as i64, p as i64);
        let mut t = Taps::build(len, out, |o, v| {
            let st = (o * s) as i64 - pi;
            match avg {
                None => {
                    for j in 0..k {
                        let q = st + (j * d) as i64;
                        if q >= 0 && q < li {
                            v.push((q as usize, 1.0));
                        }
                    }
                }
                Some(include_pad) => {
                    let end = (st + k as i64).min(li + pi);
                    let pool_size = end - st;
                    let (lo, hi) = (st.max(0), end.min(li));
                    let count = hi - lo;
                    if count > 0 {
                        let div = if include_pad { pool_size } else { count };
                        let w = 1.0 / div as f32;
                        for q in lo..hi {
                            v.push((q as usize, w));
                        }
                    }
                }
            }
        });
        // The run of outputs whose window is whole (same weight): fast path of the width pass.
        let full = |o: usize| -> bool {
            let st = (o * s) as i64 - pi;
            st >= 0 && st + (((k - 1) * d) as i64) < li
        };
        let lo = (0..out).find(|&o| full(o));
        if let Some(lo) = lo {
            let hi = (lo..out).find(|&o| !full(o)).unwrap_or(out);
            let w = t.w[t.off[lo]];
            t.affine = Some(Affine {
                k,
                s,
                d,
                pad: p,
                lo,
                hi,
                w,
            });
        }
        Some(t)
    }

    /// PyTorch adaptive bins `floor(o*len/out) .. ceil((o+1)*len/out)`, weight `1/count`;
    /// `None` when the axis is the identity.
    fn adaptive(len: usize, out: usize) -> Option<Taps> {
        if len == out {
            return None;
        }
        Some(Taps::build(len, out, |o, v| {
            let start = o * len / out;
            let end = ((o + 1) * len).div_ceil(out);
            let w = 1.0 / (end - start) as f32;
            for q in start..end {
                v.push((q, w));
            }
        }))
    }
}

/// Output dims of a separable op.
fn out_dims(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> [usize; 3] {
    let mut o = dims;
    for a in 0..3 {
        if let Some(t) = &taps[a] {
            o[a] = t.len_out;
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/// Leading (batch/channel) dims of a pooled or resized tensor and its spatial dims, padded to
/// three internal axes (D, H, W) with leading ones.
pub(crate) struct Spatial {
    lead: Vec<usize>,
    planes: usize,
    pub(crate) dims: [usize; 3],
    sp: usize,
}

impl Spatial {
    /// Accepts `(N, C, *spatial)` or unbatched `(C, *spatial)` with `sp` spatial dims.
    pub(crate) fn of(x: &Tensor, op: &'static str, sp: usize) -> Result<Spatial> {
        x.expect_f32(op)?;
        let r = x.rank();
        if r != sp + 2 && r != sp + 1 {
            let names = ["L", "H, W", "D, H, W"][sp - 1];
            return Err(Error::bad_shape(
                op,
                x.shape(),
                format!("rank {} (N, C, {names}) or {} (C, {names})", sp + 2, sp + 1),
            ));
        }
        let lead = x.shape()[..r - sp].to_vec();
        let mut dims = [1; 3];
        dims[3 - sp..].copy_from_slice(&x.shape()[r - sp..]);
        if dims.iter().product::<usize>() > i32::MAX as usize {
            return Err(Error::bad_shape(
                op,
                x.shape(),
                "fewer than 2^31 elements per plane",
            ));
        }
        Ok(Spatial {
            planes: lead.iter().product(),
            lead,
            dims,
            sp,
        })
    }

    fn shape_with(&self, dims: &[usize; 3]) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend_from_slice(&dims[3 - self.sp..]);
        s
    }
}

/// Per-thread ping-pong buffers of the intermediate passes.
#[derive(Default)]
struct Scratch {
    f: [Vec<f32>; 2],
    i: [Vec<i32>; 2],
}

// ---------------------------------------------------------------------------------------------
// Linear separable engine (average pooling, adaptive average pooling, resize)
// ---------------------------------------------------------------------------------------------

/// `out[a, o, b] = Σ_(l, w) w · x[a, l, b]` over the taps of `o`.
fn lin_pass(x: &[f32], a: usize, b: usize, t: &Taps, out: &mut [f32]) {
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
fn lin_row(x: &[f32], t: &Taps, out: &mut [f32]) {
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
fn gather_row<const K: usize>(x: &[f32], t: &Taps, out: &mut [f32]) {
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
fn scatter_row<const K: usize>(g: &[f32], t: &Taps, gx: &mut [f32]) {
    for (&v, (ii, ww)) in g.iter().zip(t.idx.chunks_exact(K).zip(t.w.chunks_exact(K))) {
        for j in 0..K {
            gx[ii[j]] += ww[j] * v;
        }
    }
}

/// `out[i] = w · Σ_{j<K} x[i*S + j]` (the caller sized `x` to cover every window).
#[inline(always)]
fn sum_row_affine<const K: usize, const S: usize>(x: &[f32], out: &mut [f32], w: f32) {
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
fn lin_pass_t(g: &[f32], a: usize, b: usize, t: &Taps, gx: &mut [f32]) {
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
fn lin_row_t(g: &[f32], t: &Taps, gx: &mut [f32]) {
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
fn active(taps: &[Option<Taps>; 3]) -> ([usize; 3], usize) {
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
fn lin_forward_planes(
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
fn lin_backward_planes(
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

/// Elements per group of planes run through the passes together: small planes (LeNet's 5x5,
/// ResNet's 7x7) would otherwise pay the per-pass overhead per plane.
const GROUP_ELEMS: usize = 1 << 14;

fn group_size(plane: usize) -> usize {
    (GROUP_ELEMS / plane.max(1)).max(1)
}

/// Calls `f(first plane, planes, index of the first plane within r)` over groups of at most `g`
/// planes of `r`.
fn for_groups(r: std::ops::Range<usize>, g: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut p = r.start;
    while p < r.end {
        let np = g.min(r.end - p);
        f(p, np, p - r.start);
        p += np;
    }
}

/// `Some(weight)` when the op reduces each whole plane to one value with one weight per
/// element (global pooling): those run as plain plane reductions.
fn whole_plane(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> Option<f32> {
    let mut scale = 1.0f32;
    for a in 0..3 {
        match &taps[a] {
            Some(t) if t.whole() => {
                let w0 = t.w[0];
                if t.w.iter().any(|&w| w != w0) {
                    return None;
                }
                scale *= w0;
            }
            None if dims[a] == 1 => {}
            _ => return None,
        }
    }
    Some(scale)
}

/// Sum of a plane in 16 lanes (vectorised, and more accurate than one running sum).
fn plane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut total: f32 = acc.iter().sum();
    for &v in it.remainder() {
        total += v;
    }
    total
}

/// Runs a separable linear map over the last `sp` dims of `x` (validated by [`Spatial::of`])
/// and records its gradient (the transposed map).
pub(crate) fn separable_linear(
    x: &Tensor,
    op: &'static str,
    sp: usize,
    taps: [Option<Taps>; 3],
) -> Result<Tensor> {
    let s = Spatial::of(x, op, sp)?;
    let dims = s.dims;
    let odims = out_dims(dims, &taps);
    let (in_plane, out_plane) = (
        dims.iter().product::<usize>(),
        odims.iter().product::<usize>(),
    );
    let whole = whole_plane(dims, &taps);
    let grp = group_size(in_plane.max(out_plane));
    let mut out = bufpool::take_uninit(s.planes * out_plane);
    x.with_f32(op, |xs| {
        par_planes(
            s.planes,
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
                        &taps,
                        &mut o[k * out_plane..(k + np) * out_plane],
                        &mut scr,
                    );
                });
            },
        )
    })?;
    let out = Tensor::from_f32(out, &s.shape_with(&odims));
    let in_shape = x.shape().to_vec();
    let planes = s.planes;
    Ok(record(out, op, &[x], move |g| {
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
                            &taps,
                            &mut d[k * in_plane..(k + np) * in_plane],
                            &mut scr,
                        );
                    });
                },
            )
        })?;
        Ok(vec![Some(Tensor::from_f32(gx, &in_shape))])
    }))
}

// ---------------------------------------------------------------------------------------------
// Max separable engine
// ---------------------------------------------------------------------------------------------

/// Where the flat plane index of an input element comes from: its own position (first pass)
/// or the index carried from an earlier pass.
trait IdxSrc: Copy {
    /// Indices grow with positions, so a later tap never wins a tie (taps are ascending).
    const ORDERED: bool;
    /// Index of element `p` (relative to this source).
    fn at(self, p: usize) -> i32;
    /// The source shifted to start at `p` and covering `len` elements.
    fn sub(self, p: usize, len: usize) -> Self;
}

/// Indices equal to positions (plus an offset).
#[derive(Clone, Copy)]
struct Implicit(usize);

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
fn better(v: f32, i: i32, m: f32, mi: i32) -> bool {
    (v > m) | ((v == m) & (i < mi)) | v.is_nan()
}

/// [`better`] for a candidate from source `I`; ordered sources skip the tie test.
#[inline(always)]
fn better_from<I: IdxSrc>(v: f32, i: i32, m: f32, mi: i32) -> bool {
    if I::ORDERED {
        (v > m) | v.is_nan()
    } else {
        better(v, i, m, mi)
    }
}

/// Running NaN-propagating max without indices.
#[inline(always)]
fn max_nan(m: f32, v: f32) -> f32 {
    if (v > m) | v.is_nan() {
        v
    } else {
        m
    }
}

/// Max over the taps of each output; `TRACK` also writes the winning flat index.
fn max_pass<const TRACK: bool, I: IdxSrc>(
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
fn max_cols<const TRACK: bool, I: IdxSrc, const N: usize>(
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
fn max_row<const TRACK: bool, I: IdxSrc>(
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
fn max_row_affine<const TRACK: bool, I: IdxSrc, const K: usize, const S: usize>(
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
fn max_strided<const TRACK: bool, I: IdxSrc, const K: usize, const S: usize, const N: usize>(
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
fn max_forward_planes<const TRACK: bool>(
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
fn plane_argmax(x: &[f32]) -> (f32, i32) {
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

/// Output of [`separable_max`]: values (with gradient) and, when asked, the `I64` flat indices.
struct MaxOut {
    values: Tensor,
    indices: Option<Tensor>,
}

/// Max over separable windows of the last `sp` dims of `x`, recording the gradient (scatter
/// through the saved argmax indices). `want_idx` returns the indices too.
fn separable_max(
    x: &Tensor,
    op: &'static str,
    sp: usize,
    taps: [Option<Taps>; 3],
    want_idx: bool,
) -> Result<MaxOut> {
    let s = Spatial::of(x, op, sp)?;
    let dims = s.dims;
    let odims = out_dims(dims, &taps);
    let (in_plane, out_plane) = (
        dims.iter().product::<usize>(),
        odims.iter().product::<usize>(),
    );
    let needs_grad = is_grad_enabled() && x.requires_grad();
    let track = want_idx || needs_grad;
    let whole = whole_plane(dims, &taps).is_some();
    let grp = group_size(in_plane.max(out_plane));
    let mut out = bufpool::take_uninit(s.planes * out_plane);
    let mut idx = IdxBuf::take(if track { s.planes * out_plane } else { 0 });
    let idx_plane = if track { out_plane } else { 0 };
    x.with_f32(op, |xs| {
        par_planes(
            s.planes,
            in_plane + out_plane,
            &mut out,
            out_plane,
            &mut idx,
            idx_plane,
            |r, o, ii| {
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
                        max_forward_planes::<true>(xp, np, dims, &taps, op, ip, &mut scr);
                    } else {
                        max_forward_planes::<false>(xp, np, dims, &taps, op, &mut [], &mut scr);
                    }
                });
            },
        )
    })?;
    let out_shape = s.shape_with(&odims);
    let values = Tensor::from_f32(out, &out_shape);
    let indices = if want_idx {
        let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        Some(Tensor::from_vec(v, &out_shape)?)
    } else {
        None
    };
    if !needs_grad {
        return Ok(MaxOut { values, indices });
    }
    let in_shape = x.shape().to_vec();
    let planes = s.planes;
    let values = record(values, op, &[x], move |g| {
        let gx = g.with_f32(op, |gs| {
            scatter_planes(gs, &idx, planes, out_plane, in_plane)
        })?;
        Ok(vec![Some(Tensor::from_f32(gx, &in_shape))])
    });
    Ok(MaxOut { values, indices })
}

/// Saved argmax indices, recycled through the storage pool when dropped.
type IdxBuf = crate::storage::pool::PooledVec<i32>;

/// `dst[plane][idx[o]] += src[plane][o]` for every plane (negative indices are skipped).
fn scatter_planes(
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
fn gather_planes(
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

// ---------------------------------------------------------------------------------------------
// Public ops
// ---------------------------------------------------------------------------------------------

/// Per-axis taps of a max or average pooling with `opts` over `dims`.
fn pool_taps(
    op: &'static str,
    sp: usize,
    dims: [usize; 3],
    opts: &PoolOpts,
    avg: Option<bool>,
) -> Result<[Option<Taps>; 3]> {
    if opts.kernel.is_empty() {
        return Err(Error::invalid(op, "kernel size is empty"));
    }
    let k = per_axis(op, "kernel", &opts.kernel, sp, 1, 1)?;
    let s = if opts.stride.is_empty() {
        k
    } else {
        per_axis(op, "stride", &opts.stride, sp, 1, 1)?
    };
    let p = per_axis(op, "padding", &opts.padding, sp, 0, 0)?;
    let d = per_axis(op, "dilation", &opts.dilation, sp, 1, 1)?;
    if avg.is_some() && d.iter().any(|&v| v != 1) {
        return Err(Error::invalid(
            op,
            format!("average pooling has no dilation (got {:?})", opts.dilation),
        ));
    }
    let mut taps: [Option<Taps>; 3] = [None, None, None];
    for a in 3 - sp..3 {
        let out = pool_out_len(op, dims[a], k[a], s[a], p[a], d[a], opts.ceil_mode)?;
        taps[a] = Taps::pool(dims[a], out, k[a], s[a], p[a], d[a], avg);
    }
    Ok(taps)
}

/// Per-axis adaptive taps for `output_size` (one value per spatial dim).
fn adaptive_taps(
    op: &'static str,
    sp: usize,
    dims: [usize; 3],
    output_size: &[usize],
) -> Result<[Option<Taps>; 3]> {
    if output_size.len() != sp {
        return Err(Error::invalid(
            op,
            format!("output_size {output_size:?} must have {sp} value(s), one per spatial dim"),
        ));
    }
    if output_size.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("output_size {output_size:?} must be positive"),
        ));
    }
    let mut taps: [Option<Taps>; 3] = [None, None, None];
    for (i, a) in (3 - sp..3).enumerate() {
        if dims[a] == 0 {
            return Err(Error::invalid(
                op,
                format!("spatial input dims {:?} must be non-empty", &dims[3 - sp..]),
            ));
        }
        taps[a] = Taps::adaptive(dims[a], output_size[i]);
    }
    Ok(taps)
}

impl Tensor {
    fn max_pool_nd(
        &self,
        op: &'static str,
        sp: usize,
        opts: &PoolOpts,
        want_idx: bool,
    ) -> Result<MaxOut> {
        let s = Spatial::of(self, op, sp)?;
        let taps = pool_taps(op, sp, s.dims, opts, None)?;
        separable_max(self, op, sp, taps, want_idx)
    }

    fn avg_pool_nd(&self, op: &'static str, sp: usize, opts: &PoolOpts) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        let taps = pool_taps(op, sp, s.dims, opts, Some(opts.count_include_pad))?;
        separable_linear(self, op, sp, taps)
    }

    fn with_indices(&self, m: MaxOut) -> Result<(Tensor, Tensor)> {
        let i = m.indices.expect("indices were requested");
        Ok((m.values, i))
    }

    /// 1-D max pooling of `(N, C, L)` (or `(C, L)`) like `torch.nn.functional.max_pool1d`.
    pub fn max_pool1d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool1d", 1, opts, false)?.values)
    }

    /// 2-D max pooling of `(N, C, H, W)` (or `(C, H, W)`) like `torch.nn.functional.max_pool2d`:
    /// padding counts as -inf, ties pick the first element in row-major order.
    pub fn max_pool2d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool2d", 2, opts, false)?.values)
    }

    /// 3-D max pooling of `(N, C, D, H, W)` (or `(C, D, H, W)`).
    pub fn max_pool3d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool3d", 3, opts, false)?.values)
    }

    /// [`Tensor::max_pool1d`] and the `I64` index of each maximum within its length-`L` row.
    pub fn max_pool1d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool1d_with_indices", 1, opts, true)?;
        self.with_indices(m)
    }

    /// [`Tensor::max_pool2d`] and the `I64` flat index (`h * W + w`) of each maximum within its
    /// `(n, c)` plane, like PyTorch's `return_indices=True`; feed them to
    /// [`Tensor::max_unpool2d`].
    pub fn max_pool2d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool2d_with_indices", 2, opts, true)?;
        self.with_indices(m)
    }

    /// [`Tensor::max_pool3d`] and the `I64` flat index (`(d * H + h) * W + w`) of each maximum.
    pub fn max_pool3d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool3d_with_indices", 3, opts, true)?;
        self.with_indices(m)
    }

    /// 1-D average pooling of `(N, C, L)` (or `(C, L)`) like
    /// `torch.nn.functional.avg_pool1d`.
    pub fn avg_pool1d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool1d", 1, opts)
    }

    /// 2-D average pooling of `(N, C, H, W)` (or `(C, H, W)`) like
    /// `torch.nn.functional.avg_pool2d` (without `divisor_override`).
    pub fn avg_pool2d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool2d", 2, opts)
    }

    /// 3-D average pooling of `(N, C, D, H, W)` (or `(C, D, H, W)`).
    pub fn avg_pool3d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool3d", 3, opts)
    }

    /// Adaptive average pooling to length `output_size[0]`: output `i` averages input
    /// `floor(i*L/out) .. ceil((i+1)*L/out)`.
    pub fn adaptive_avg_pool1d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool1d", 1, output_size)
    }

    /// Adaptive average pooling to `output_size = [H_out, W_out]` (PyTorch bins
    /// `floor(i*in/out) .. ceil((i+1)*in/out)` per dim).
    pub fn adaptive_avg_pool2d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool2d", 2, output_size)
    }

    /// Adaptive average pooling to `output_size = [D_out, H_out, W_out]`.
    pub fn adaptive_avg_pool3d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool3d", 3, output_size)
    }

    /// Adaptive max pooling to length `output_size[0]` (same bins as the average version).
    pub fn adaptive_max_pool1d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool1d", 1, output_size, false)?
            .values)
    }

    /// Adaptive max pooling to `output_size = [H_out, W_out]`.
    pub fn adaptive_max_pool2d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool2d", 2, output_size, false)?
            .values)
    }

    /// Adaptive max pooling to `output_size = [D_out, H_out, W_out]`.
    pub fn adaptive_max_pool3d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool3d", 3, output_size, false)?
            .values)
    }

    /// [`Tensor::adaptive_max_pool2d`] and the `I64` flat index of each maximum in its plane.
    pub fn adaptive_max_pool2d_with_indices(
        &self,
        output_size: &[usize],
    ) -> Result<(Tensor, Tensor)> {
        let m = self.adaptive_max_nd("adaptive_max_pool2d_with_indices", 2, output_size, true)?;
        self.with_indices(m)
    }

    fn adaptive_avg_nd(
        &self,
        op: &'static str,
        sp: usize,
        output_size: &[usize],
    ) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        super::view::check_numel(op, &[&s.lead[..], output_size].concat())?;
        let taps = adaptive_taps(op, sp, s.dims, output_size)?;
        separable_linear(self, op, sp, taps)
    }

    fn adaptive_max_nd(
        &self,
        op: &'static str,
        sp: usize,
        output_size: &[usize],
        want_idx: bool,
    ) -> Result<MaxOut> {
        let s = Spatial::of(self, op, sp)?;
        super::view::check_numel(op, &[&s.lead[..], output_size].concat())?;
        let taps = adaptive_taps(op, sp, s.dims, output_size)?;
        separable_max(self, op, sp, taps, want_idx)
    }

    /// Mean over the spatial dims of `(N, C, H, W)`, giving `(N, C)` (`(C, H, W)` gives `(C)`).
    /// For a `(N, C, 1, 1)` result use `adaptive_avg_pool2d(&[1, 1])`.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        let op = "global_avg_pool2d";
        let s = Spatial::of(self, op, 2)?;
        let y = self.adaptive_avg_nd(op, 2, &[1, 1])?;
        y.reshape(&s.lead)
    }

    /// Max over the spatial dims of `(N, C, H, W)`, giving `(N, C)`; the gradient goes to the
    /// first maximum. For a `(N, C, 1, 1)` result use `adaptive_max_pool2d(&[1, 1])`.
    pub fn global_max_pool2d(&self) -> Result<Tensor> {
        let op = "global_max_pool2d";
        let s = Spatial::of(self, op, 2)?;
        let y = self.adaptive_max_nd(op, 2, &[1, 1], false)?.values;
        y.reshape(&s.lead)
    }

    fn max_unpool_nd(
        &self,
        op: &'static str,
        sp: usize,
        indices: &Tensor,
        output_size: &[usize],
    ) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        if indices.shape() != self.shape() {
            return Err(Error::shape_mismatch(op, self.shape(), indices.shape()));
        }
        if !matches!(indices.dtype(), DType::I64 | DType::I32) {
            return Err(Error::dtype(op, indices.dtype(), "I64 or I32 indices"));
        }
        indices.check_cpu(op)?;
        // Accept the spatial size alone or a full shape (like `F.max_unpool2d`'s output_size).
        let spatial: &[usize] = if output_size.len() == sp {
            output_size
        } else if output_size.len() == self.rank() && output_size[..self.rank() - sp] == s.lead[..]
        {
            &output_size[self.rank() - sp..]
        } else {
            return Err(Error::invalid(
                op,
                format!(
                    "output_size {output_size:?} must list the {sp} spatial size(s) (input shape {:?})",
                    self.shape()
                ),
            ));
        };
        let mut odims = [1; 3];
        odims[3 - sp..].copy_from_slice(spatial);
        let in_plane: usize = s.dims.iter().product();
        let out_plane = super::view::check_numel(op, &odims)?;
        super::view::check_numel(op, &[out_plane, s.lead.iter().product()])?;
        let idx: Vec<i64> = match indices.dtype() {
            DType::I64 => indices.to_vec::<i64>()?,
            _ => indices
                .to_vec::<i32>()?
                .into_iter()
                .map(i64::from)
                .collect(),
        };
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= out_plane) {
            return Err(Error::IndexOutOfRange {
                op,
                index: bad,
                size: out_plane,
            });
        }
        let mut out = bufpool::take_zeroed(s.planes * out_plane);
        self.with_f32(op, |xs| {
            par_planes(
                s.planes,
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
        let out = Tensor::from_f32(out, &s.shape_with(&odims));
        let in_shape = self.shape().to_vec();
        let planes = s.planes;
        Ok(record(out, op, &[self], move |g| {
            let gx = g.with_f32(op, |gs| {
                gather_planes(gs, &idx, planes, out_plane, in_plane)
            })?;
            Ok(vec![Some(Tensor::from_f32(gx, &in_shape))])
        }))
    }

    /// Inverse of max pooling, like `torch.nn.functional.max_unpool1d`: zeros of length
    /// `output_size[0]` with each input value written at its index.
    pub fn max_unpool1d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool1d", 1, indices, output_size)
    }

    /// Inverse of max pooling, like `torch.nn.functional.max_unpool2d`: a `(N, C, H, W)` tensor
    /// of zeros (`output_size = [H, W]`, or the full shape) with each input value written at its
    /// flat plane index from [`Tensor::max_pool2d_with_indices`]. With repeated indices (from
    /// overlapping windows) the last value is kept (PyTorch leaves this unspecified); the
    /// gradient of every input is the output gradient at its index, as in PyTorch.
    pub fn max_unpool2d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool2d", 2, indices, output_size)
    }

    /// Inverse of 3-D max pooling (`output_size = [D, H, W]`).
    pub fn max_unpool3d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool3d", 3, indices, output_size)
    }
}
