//! Max pooling over 3×3 windows with stride 2 (the stem pooling of ResNet, GoogLeNet and
//! Inception: padding 0 or 1, floor or ceil mode) in one pass over three input rows per output
//! row, where the separable engine runs a width pass and then a height pass that carries the
//! width pass's indices through a scratch plane (2-4x the time of the same pool without indices).
//!
//! The window of output `(oy, ox)` starts at `(2·oy − pad_h, 2·ox − pad_w)` and is clipped to
//! the plane (padding is never a candidate). It is scanned in row-major order, and a candidate
//! replaces the running maximum when it is larger or NaN: PyTorch's rule (the first maximum wins
//! a tie, the last NaN wins) and bit for bit what the separable engine computes, values and
//! indices (tested against a plain scan here and against the engine's reference in the op
//! tests). Outputs whose window lies inside the plane run 8 at a time on AVX2: each window row
//! is split into even and odd columns with the 2×2 kernel's shuffles ([`super::pool2x2`]); the
//! third column of each window is the odd half of the same row read one column later. Border
//! outputs and other ISAs run the scalar scan.

use super::pool2x2::{max_nan, step};

/// Geometry of one call: `planes` input planes of `h × w`, outputs `oh × ow`, and the padding
/// before the first row and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool3x3 {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

/// The input range `start..end` that output `o` reads along an axis of length `len` with
/// padding `pad`: `2·o − pad .. 2·o − pad + 3`, clipped to `0..len`.
#[inline(always)]
pub fn window(o: usize, len: usize, pad: usize) -> (usize, usize) {
    let start = (2 * o).saturating_sub(pad);
    let end = (2 * o + 3).saturating_sub(pad).min(len);
    (start, end)
}

/// The outputs `lo..hi` along an axis whose whole window lies inside it.
fn interior(len: usize, out: usize, pad: usize) -> (usize, usize) {
    let lo = pad.div_ceil(2).min(out);
    // 2·o − pad + 2 ≤ len − 1  ⇔  o ≤ (len + pad − 3) / 2.
    let hi = if len + pad >= 3 {
        ((len + pad - 3) / 2 + 1).min(out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

impl Pool3x3 {
    /// True when every output's window holds at least one input element (PyTorch's pooling
    /// guarantees it for padding ≤ 1) and the outputs fit the plane.
    pub fn is_valid(&self) -> bool {
        let axis = |len: usize, out: usize, pad: usize| {
            pad <= 2 && out > 0 && {
                let (s, e) = window(out - 1, len, pad);
                s < e
            }
        };
        axis(self.h, self.oh, self.pad_h) && axis(self.w, self.ow, self.pad_w)
    }
}

/// The maximum over the clipped window of output `(oy, ox)` of plane `xp` and its flat index.
#[inline(always)]
fn window_max(xp: &[f32], g: Pool3x3, oy: usize, ox: usize) -> (f32, i32) {
    let (r0, r1) = window(oy, g.h, g.pad_h);
    let (c0, c1) = window(ox, g.w, g.pad_w);
    let first = r0 * g.w + c0;
    let (mut m, mut mi) = (xp[first], first as i32);
    for r in r0..r1 {
        for c in c0..c1 {
            let i = r * g.w + c;
            step(&mut m, &mut mi, xp[i], i as i32);
        }
    }
    (m, mi)
}

#[inline(always)]
fn forward_body(x: &[f32], g: Pool3x3, out: &mut [f32], mut idx: Option<&mut [i32]>) {
    let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    for p in 0..g.planes {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        for oy in 0..g.oh {
            let o = p * out_plane + oy * g.ow;
            match idx.as_deref_mut() {
                Some(idx) => {
                    for ox in 0..g.ow {
                        (out[o + ox], idx[o + ox]) = window_max(xp, g, oy, ox);
                    }
                }
                None => {
                    let (r0, r1) = window(oy, g.h, g.pad_h);
                    for ox in 0..g.ow {
                        let (c0, c1) = window(ox, g.w, g.pad_w);
                        let mut m = xp[r0 * g.w + c0];
                        for r in r0..r1 {
                            for &v in &xp[r * g.w + c0..r * g.w + c1] {
                                m = max_nan(m, v);
                            }
                        }
                        out[o + ox] = m;
                    }
                }
            }
        }
    }
}

crate::multiversion! {
    /// [`max_pool_3x3s2`] compiled per ISA (the plain window scan).
    fn scan(x: &[f32], g: Pool3x3, out: &mut [f32], idx: Option<&mut [i32]>) {
        forward_body(x, g, out, idx)
    }
}

/// Max over every 3×3 stride-2 window of `g.planes` planes of `x` into `out`
/// (`g.planes · oh · ow` values); with `idx`, also each maximum's flat index in its input
/// plane (`y · w + x`). On AVX2 hardware the interior runs 8 windows at a time
/// ([`avx2::forward`]); the same steps, so the same values and indices.
///
/// # Panics
/// If the geometry is not [valid](Pool3x3::is_valid) or `x`, `out` or `idx` is shorter than it
/// needs (a programming error).
pub fn max_pool_3x3s2(x: &[f32], g: Pool3x3, out: &mut [f32], idx: Option<&mut [i32]>) {
    assert!(g.is_valid(), "3x3 pool geometry {g:?}");
    assert!(x.len() >= g.planes * g.h * g.w && out.len() >= g.planes * g.oh * g.ow);
    if let Some(idx) = idx.as_deref() {
        assert!(idx.len() >= g.planes * g.oh * g.ow);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::dispatch_level() >= crate::kernels::Isa::Avx2 {
        // SAFETY: the CPU has AVX2 (the dispatch level says so); the lengths are checked.
        unsafe {
            match idx {
                Some(idx) => avx2::forward::<true>(x, g, out, idx),
                None => avx2::forward::<false>(x, g, out, &mut []),
            }
        }
        return;
    }
    scan(x, g, out, idx)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::pool2x2::avx2::{split_pairs, step};
    use super::{interior, window, window_max, Pool3x3};
    use std::arch::x86_64::*;

    /// The scan with the interior 8 outputs at a time; `TRACK` also writes the indices. The
    /// caller checked the geometry and the lengths.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn forward<const TRACK: bool>(
        x: &[f32],
        g: Pool3x3,
        out: &mut [f32],
        idx: &mut [i32],
    ) {
        let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
        let (ylo, yhi) = interior(g.h, g.oh, g.pad_h);
        let (xlo, xhi) = interior(g.w, g.ow, g.pad_w);
        let pairs = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        let (one, two) = (_mm256_set1_epi32(1), _mm256_set1_epi32(2));
        for p in 0..g.planes {
            let xp = &x[p * in_plane..(p + 1) * in_plane];
            for oy in 0..g.oh {
                let o = p * out_plane + oy * g.ow;
                let vector = (ylo..yhi).contains(&oy) && xhi - xlo >= 8;
                let scalar = |out: &mut [f32], idx: &mut [i32], ox: usize| {
                    let (m, mi) = window_max(xp, g, oy, ox);
                    out[o + ox] = m;
                    if TRACK {
                        idx[o + ox] = mi;
                    }
                };
                if !vector {
                    for ox in 0..g.ow {
                        scalar(out, idx, ox);
                    }
                    continue;
                }
                for ox in (0..xlo).chain(xhi..g.ow) {
                    scalar(out, idx, ox);
                }
                let top = window(oy, g.h, g.pad_h).0 * g.w;
                let mut s = xlo;
                while s < xhi {
                    // The last block shifts back to end at `xhi` (recomputing a few outputs).
                    let ox0 = s.min(xhi - 8);
                    let c0 = 2 * ox0 - g.pad_w;
                    let (mut m, mut mi) = (_mm256_setzero_ps(), _mm256_setzero_si256());
                    for dy in 0..3 {
                        let q = top + dy * g.w + c0;
                        // SAFETY: the 8 windows cover columns c0..=c0 + 16 < w of rows
                        // top / w + dy < h (interior outputs); the loads read c0..c0 + 16.
                        let ((a0, a1), (_, a2)) = unsafe {
                            (
                                split_pairs(xp.as_ptr().add(q)),
                                split_pairs(xp.as_ptr().add(q + 1)),
                            )
                        };
                        let i = _mm256_add_epi32(_mm256_set1_epi32(q as i32), pairs);
                        if dy == 0 {
                            (m, mi) = (a0, i);
                        } else {
                            step(&mut m, &mut mi, a0, i);
                        }
                        step(&mut m, &mut mi, a1, _mm256_add_epi32(i, one));
                        step(&mut m, &mut mi, a2, _mm256_add_epi32(i, two));
                    }
                    // SAFETY: outputs o + ox0 .. o + ox0 + 8 ≤ o + ow, inside the checked
                    // lengths.
                    unsafe {
                        _mm256_storeu_ps(out.as_mut_ptr().add(o + ox0), m);
                        if TRACK {
                            _mm256_storeu_si256(idx.as_mut_ptr().add(o + ox0).cast(), mi);
                        }
                    }
                    s += 8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{set_isa_override, test_values, Isa, ISA_TEST_LOCK};

    /// The window scan written out plainly, with the window taken from PyTorch's definition
    /// (`2·o − pad + j`, `j < 3`, inside the plane): the reference the kernel must equal.
    fn reference(x: &[f32], g: Pool3x3) -> (Vec<f32>, Vec<i32>) {
        let inside = |q: i64, len: usize| (0..len as i64).contains(&q);
        let mut out = Vec::new();
        let mut idx = Vec::new();
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (mut m, mut mi) = (f32::NAN, -1);
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let r = (2 * oy + dy) as i64 - g.pad_h as i64;
                            let c = (2 * ox + dx) as i64 - g.pad_w as i64;
                            if !inside(r, g.h) || !inside(c, g.w) {
                                continue;
                            }
                            let i = (r * g.w as i64 + c) as usize;
                            let v = x[p * g.h * g.w + i];
                            if mi < 0 || v > m || v.is_nan() {
                                m = v;
                                mi = i as i32;
                            }
                        }
                    }
                    out.push(m);
                    idx.push(mi);
                }
            }
        }
        (out, idx)
    }

    #[test]
    fn every_isa_equals_the_plain_scan_with_ties_and_nans() {
        let _lock = ISA_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut cases = 0;
        for (planes, h, w) in [
            (3, 32, 32),
            (2, 7, 9),
            (2, 3, 3),
            (1, 24, 66),
            (4, 13, 35),
            (2, 112, 112),
            (2, 19, 40),
            (1, 1, 41),
        ] {
            for pad in [0, 1] {
                for ceil in [false, true] {
                    // PyTorch's output size; ceil mode drops a last window starting in padding.
                    let out_len = |len: usize| {
                        let span = (len + 2 * pad).saturating_sub(3);
                        let mut o = if ceil { span.div_ceil(2) } else { span / 2 } + 1;
                        if ceil && 2 * (o - 1) >= len + pad {
                            o -= 1;
                        }
                        o
                    };
                    if h + 2 * pad < 3 || w + 2 * pad < 3 {
                        continue;
                    }
                    let g = Pool3x3 {
                        planes,
                        h,
                        w,
                        oh: out_len(h),
                        ow: out_len(w),
                        pad_h: pad,
                        pad_w: pad,
                    };
                    assert!(g.is_valid(), "{g:?}");
                    cases += 1;
                    // Quantised values make ties common; a few NaNs test the NaN rule.
                    let mut x: Vec<f32> = test_values(planes * h * w, (h * w + pad) as u64)
                        .iter()
                        .map(|v| (v * 4.0).round())
                        .collect();
                    for i in (0..x.len()).step_by(31) {
                        x[i] = f32::NAN;
                    }
                    let (want, want_idx) = reference(&x, g);
                    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
                        set_isa_override(Some(isa));
                        let n = planes * g.oh * g.ow;
                        let (mut out, mut idx) = (vec![0.0; n], vec![0; n]);
                        max_pool_3x3s2(&x, g, &mut out, Some(&mut idx));
                        let mut plain = vec![0.0; n];
                        max_pool_3x3s2(&x, g, &mut plain, None);
                        set_isa_override(None);
                        assert_eq!(bits(&out), bits(&want), "{isa:?} {g:?} values");
                        assert_eq!(bits(&plain), bits(&want), "{isa:?} {g:?} untracked");
                        assert_eq!(idx, want_idx, "{isa:?} {g:?} indices");
                    }
                }
            }
        }
        assert!(cases >= 28, "{cases} geometries");
    }
}
