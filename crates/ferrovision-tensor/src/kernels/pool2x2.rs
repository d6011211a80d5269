//! Max pooling over 2×2 windows with stride 2 and no padding (LeNet's, VGG's and U-Net's pooling
//! layer): one pass that reads two input rows per output row, where the separable engine runs a
//! width pass, then a height pass through a scratch plane.
//!
//! Each window is scanned in row-major order, `(y, x)`, `(y, x+1)`, `(y+1, x)`, `(y+1, x+1)`, and
//! a candidate replaces the running maximum when it is larger or NaN: PyTorch's rule (the first
//! maximum wins a tie, the last NaN wins), and bit for bit what the separable engine computes,
//! values and indices (tested against it). The loops read the two rows with stride-2 loads that
//! the compiler turns into shuffles, compiled per ISA by [`crate::multiversion!`]; the indexed
//! scan (training), which the compiler leaves scalar, has an AVX2 twin that splits 16 columns of
//! each row into even and odd ones with two shuffles and scans 8 windows with compares and
//! blends.

/// Geometry of one call: `planes` input planes of `h × w`, outputs `oh × ow` with
/// `2·oh ≤ h` and `2·ow ≤ w` (a floor-mode pool; odd trailing rows/columns are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2x2 {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// One candidate step of the window scan: `(v, i)` replaces `(m, mi)` when larger or NaN.
#[inline(always)]
pub(crate) fn step(m: &mut f32, mi: &mut i32, v: f32, i: i32) {
    let take = (v > *m) | v.is_nan();
    *m = if take { v } else { *m };
    *mi = if take { i } else { *mi };
}

/// Running NaN-propagating max without indices: `v` replaces `m` when larger or NaN (also the
/// separable engine's max).
#[inline(always)]
pub(crate) fn max_nan(m: f32, v: f32) -> f32 {
    if (v > m) | v.is_nan() {
        v
    } else {
        m
    }
}

#[inline(always)]
fn forward_body(x: &[f32], g: Pool2x2, out: &mut [f32], mut idx: Option<&mut [i32]>) {
    let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    for p in 0..g.planes {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        for oy in 0..g.oh {
            let top = 2 * oy * g.w;
            let r0 = &xp[top..top + 2 * g.ow];
            let r1 = &xp[top + g.w..top + g.w + 2 * g.ow];
            let o = p * out_plane + oy * g.ow;
            let orow = &mut out[o..o + g.ow];
            let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            match idx.as_deref_mut() {
                Some(idx) => {
                    let (base, below) = (top as i32, g.w as i32);
                    let irow = &mut idx[o..o + g.ow];
                    for (k, (((a, b), m), mi)) in
                        pairs.zip(orow.iter_mut()).zip(irow.iter_mut()).enumerate()
                    {
                        let i = base + 2 * k as i32;
                        let (mut v, mut vi) = (a[0], i);
                        step(&mut v, &mut vi, a[1], i + 1);
                        step(&mut v, &mut vi, b[0], i + below);
                        step(&mut v, &mut vi, b[1], i + below + 1);
                        *m = v;
                        *mi = vi;
                    }
                }
                None => {
                    for ((a, b), m) in pairs.zip(orow.iter_mut()) {
                        *m = max_nan(max_nan(max_nan(a[0], a[1]), b[0]), b[1]);
                    }
                }
            }
        }
    }
}

crate::multiversion! {
    /// [`max_pool_2x2`] compiled per ISA (the plain loops; with indices they stay scalar).
    fn scan(x: &[f32], g: Pool2x2, out: &mut [f32], idx: Option<&mut [i32]>) {
        forward_body(x, g, out, idx)
    }
}

/// Max over every 2×2 stride-2 window of `g.planes` planes of `x` into `out`
/// (`g.planes · oh · ow` values); with `idx`, also each maximum's flat index in its input
/// plane (`y · w + x`). With indices (training) on AVX2 hardware, 8 windows at a time
/// ([`avx2::forward_indexed`]); the same steps, so the same values and indices.
///
/// # Panics
/// If `x`, `out` or `idx` is shorter than the geometry needs (a programming error).
pub fn max_pool_2x2(x: &[f32], g: Pool2x2, out: &mut [f32], idx: Option<&mut [i32]>) {
    assert!(x.len() >= g.planes * g.h * g.w && 2 * g.oh <= g.h && 2 * g.ow <= g.w);
    assert!(out.len() >= g.planes * g.oh * g.ow);
    match idx {
        #[cfg(target_arch = "x86_64")]
        Some(idx) if crate::kernels::simd::dispatch_level() >= crate::kernels::Isa::Avx2 => {
            assert!(idx.len() >= g.planes * g.oh * g.ow);
            // SAFETY: the CPU has AVX2 (the dispatch level says so); the lengths are checked.
            unsafe { avx2::forward_indexed(x, g, out, idx) }
        }
        idx => scan(x, g, out, idx),
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::Pool2x2;
    use std::arch::x86_64::*;

    /// The even and the odd ones of the 16 floats at `p`, each in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn split_pairs(p: *const f32) -> (__m256, __m256) {
        let (lo, hi) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
        // Per 128-bit half: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; 64-bit lanes (0, 2, 1, 3)
        // put them in order.
        let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
        let order = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        (order(even), order(odd))
    }

    /// [`super::step`] on 8 lanes: `(v, vi)` replaces `(m, mi)` where larger or NaN.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn step(m: &mut __m256, mi: &mut __m256i, v: __m256, vi: __m256i) {
        let take = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(v, *m),
            _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
        );
        *m = _mm256_blendv_ps(*m, v, take);
        *mi = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(*mi),
            _mm256_castsi256_ps(vi),
            take,
        ));
    }

    /// The indexed window scan, 8 windows (16 input columns of two rows) at a time, the last
    /// `ow mod 8` windows one by one. The caller checked the lengths: reads stay inside each
    /// row pair because `2·ow ≤ w` and `2·oh ≤ h`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn forward_indexed(x: &[f32], g: Pool2x2, out: &mut [f32], idx: &mut [i32]) {
        let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
        let vector_ow = g.ow / 8 * 8;
        let pairs = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        let (one, below) = (_mm256_set1_epi32(1), _mm256_set1_epi32(g.w as i32));
        for p in 0..g.planes {
            let xp = &x[p * in_plane..(p + 1) * in_plane];
            for oy in 0..g.oh {
                let top = 2 * oy * g.w;
                let o = p * out_plane + oy * g.ow;
                for k in (0..vector_ow).step_by(8) {
                    let i0 = top + 2 * k;
                    // SAFETY: columns 2k..2k+16 ≤ 2·ow ≤ w of rows 2·oy and 2·oy + 1 < h.
                    let ((a0, a1), (b0, b1)) = unsafe {
                        (
                            split_pairs(xp.as_ptr().add(i0)),
                            split_pairs(xp.as_ptr().add(i0 + g.w)),
                        )
                    };
                    let i = _mm256_add_epi32(_mm256_set1_epi32(i0 as i32), pairs);
                    let ib = _mm256_add_epi32(i, below);
                    let (mut m, mut mi) = (a0, i);
                    step(&mut m, &mut mi, a1, _mm256_add_epi32(i, one));
                    step(&mut m, &mut mi, b0, ib);
                    step(&mut m, &mut mi, b1, _mm256_add_epi32(ib, one));
                    // SAFETY: outputs o + k .. o + k + 8 ≤ o + ow, inside the checked lengths.
                    unsafe {
                        _mm256_storeu_ps(out.as_mut_ptr().add(o + k), m);
                        _mm256_storeu_si256(idx.as_mut_ptr().add(o + k).cast(), mi);
                    }
                }
                for k in vector_ow..g.ow {
                    let i = top + 2 * k;
                    let (mut m, mut mi) = (xp[i], i as i32);
                    super::step(&mut m, &mut mi, xp[i + 1], i as i32 + 1);
                    super::step(&mut m, &mut mi, xp[i + g.w], (i + g.w) as i32);
                    super::step(&mut m, &mut mi, xp[i + g.w + 1], (i + g.w) as i32 + 1);
                    out[o + k] = m;
                    idx[o + k] = mi;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{set_isa_override, test_values, Isa, ISA_TEST_LOCK};

    /// The window scan written out plainly: the reference the kernel must equal bit for bit.
    fn reference(x: &[f32], g: Pool2x2) -> (Vec<f32>, Vec<i32>) {
        let mut out = Vec::new();
        let mut idx = Vec::new();
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (mut m, mut mi) = (f32::NAN, -1);
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let i = (2 * oy + dy) * g.w + 2 * ox + dx;
                        let v = x[p * g.h * g.w + i];
                        if mi < 0 || v > m || v.is_nan() {
                            m = v;
                            mi = i as i32;
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
        for (planes, h, w) in [
            (3, 28, 28),
            (2, 7, 9),
            (5, 2, 2),
            (1, 24, 66),
            (4, 13, 34),
            (2, 6, 64),
            (2, 5, 35),
        ] {
            let g = Pool2x2 {
                planes,
                h,
                w,
                oh: h / 2,
                ow: w / 2,
            };
            // Quantised values make ties common; a few NaNs test the NaN rule.
            let mut x: Vec<f32> = test_values(planes * h * w, (h * w) as u64)
                .iter()
                .map(|v| (v * 4.0).round())
                .collect();
            for i in (0..x.len()).step_by(29) {
                x[i] = f32::NAN;
            }
            let (want, want_idx) = reference(&x, g);
            for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
                set_isa_override(Some(isa));
                let n = planes * g.oh * g.ow;
                let (mut out, mut idx) = (vec![0.0; n], vec![0; n]);
                max_pool_2x2(&x, g, &mut out, Some(&mut idx));
                let mut plain = vec![0.0; n];
                max_pool_2x2(&x, g, &mut plain, None);
                set_isa_override(None);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&want), "{isa:?} {planes}x{h}x{w} values");
                assert_eq!(
                    bits(&plain),
                    bits(&want),
                    "{isa:?} {planes}x{h}x{w} untracked"
                );
                assert_eq!(idx, want_idx, "{isa:?} {planes}x{h}x{w} indices");
            }
        }
    }
}
