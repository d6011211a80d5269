//! The separable window engine behind pooling ([`super::pool`]) and resizing
//! ([`super::resize`]).
//!
//! Every pooling and resize op is *separable*: the window of an output element is a product of
//! one window per axis. Average pooling divides by a product of per-axis counts (PyTorch's
//! divisor is `(hend-hstart)*(wend-wstart)` with each factor clipped per axis), so it is a
//! product of per-axis linear maps; max over a box is the max over each axis in turn. Each op is
//! therefore run as one 1-D pass per non-trivial axis over each `(n, c)` plane: first the depth
//! and height passes, whose taps are whole contiguous rows (vectorised elementwise loops), then
//! the width pass, which shrinks the data first for the cheap strided part. A pass is described
//! by [`Taps`]: for each output position, the input positions it reads (and their weights for
//! linear maps). The 2x2-stride-2, 3x3-stride-2 and 3x3-stride-1 width passes have specialised
//! loops; small planes are run through the passes in groups, and whole-plane windows (global
//! pooling) are plain reductions.
//!
//! This module holds the shared pieces (taps, shapes, the parallel plane driver, grouping);
//! [`linear`] runs linear maps (average pooling, resize) and [`max`] max pooling with argmax
//! tracking. Planes are processed in parallel with rayon above a size threshold.

pub(crate) use crate::parallel::par_planes;
use crate::{Error, Result, Tensor};

/// Lanes of the vectorised max loops: the running maxima live in registers and are stored once
/// per block (a select-and-store per tap would become a masked store).
pub(crate) const LANES: usize = 16;

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

pub(crate) mod linear;
pub(crate) mod max;

// ---------------------------------------------------------------------------------------------
// Taps: the per-axis description of a separable pass
// ---------------------------------------------------------------------------------------------

/// Window `o*s - pad + j*d, j < k` shared by the outputs `lo..hi` (all in range, weight `w`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine {
    pub(crate) k: usize,
    pub(crate) s: usize,
    pub(crate) d: usize,
    pub(crate) pad: usize,
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    pub(crate) w: f32,
}

/// One axis of a separable op: for each output position `o`, the input positions it reads
/// (ascending for pooling) and their weights (used by linear maps; max ignores them).
#[derive(Debug, Clone)]
pub(crate) struct Taps {
    pub(crate) len_in: usize,
    pub(crate) len_out: usize,
    pub(crate) off: Vec<usize>,
    pub(crate) idx: Vec<usize>,
    pub(crate) w: Vec<f32>,
    /// Every output reads this many taps (0 when counts differ): fixed-size inner loops.
    pub(crate) fixed: usize,
    /// `f > 0` when output `o` copies input `o / f` (integer-factor nearest upsampling).
    pub(crate) repeat: usize,
    pub(crate) affine: Option<Affine>,
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
    pub(crate) fn whole(&self) -> bool {
        self.len_out == 1 && self.idx.len() == self.len_in
    }

    #[inline(always)]
    pub(crate) fn taps(&self, o: usize) -> (&[usize], &[f32]) {
        let r = self.off[o]..self.off[o + 1];
        (&self.idx[r.clone()], &self.w[r])
    }

    /// Window of a max (`avg = None`) or average (`avg = Some(count_include_pad)`) pooling
    /// axis; `None` when the axis is the identity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pool(
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
    pub(crate) fn adaptive(len: usize, out: usize) -> Option<Taps> {
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
pub(crate) fn out_dims(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> [usize; 3] {
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
    pub(crate) lead: Vec<usize>,
    pub(crate) planes: usize,
    pub(crate) dims: [usize; 3],
    pub(crate) sp: usize,
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

    pub(crate) fn shape_with(&self, dims: &[usize; 3]) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend_from_slice(&dims[3 - self.sp..]);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Parallel driver
// ---------------------------------------------------------------------------------------------

/// Per-thread ping-pong buffers of the intermediate passes.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) f: [Vec<f32>; 2],
    pub(crate) i: [Vec<i32>; 2],
}

/// Elements per group of planes run through the passes together: small planes (LeNet's 5x5,
/// ResNet's 7x7) would otherwise pay the per-pass overhead per plane.
pub(crate) const GROUP_ELEMS: usize = 1 << 14;

pub(crate) fn group_size(plane: usize) -> usize {
    (GROUP_ELEMS / plane.max(1)).max(1)
}

/// Calls `f(first plane, planes, index of the first plane within r)` over groups of at most `g`
/// planes of `r`.
pub(crate) fn for_groups(
    r: std::ops::Range<usize>,
    g: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut p = r.start;
    while p < r.end {
        let np = g.min(r.end - p);
        f(p, np, p - r.start);
        p += np;
    }
}

/// `Some(weight)` when the op reduces each whole plane to one value with one weight per
/// element (global pooling): those run as plain plane reductions.
pub(crate) fn whole_plane(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> Option<f32> {
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
pub(crate) fn plane_sum(x: &[f32]) -> f32 {
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
