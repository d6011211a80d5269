//! The 16-tile transposes of the Winograd transforms: between four 16-lane vectors (one value
//! per tile, lane = tile) and 64 floats with each tile's four values side by side
//! (`row[4·l + j] = v[j][l]`). The compiler turns the scalar twins into long insert/extract
//! chains (measured: about a quarter of the tiled output transform); with AVX-512 they are two
//! 4×4 transposes, of the floats inside each 128-bit block and of the blocks, 12 shuffles; with
//! AVX2 the same in-block transposes and a swap of 128-bit halves, per 8 tiles. All only move
//! values, so every ISA gives the same bits.
//!
//! The filter transforms likewise move 16 filters' nine taps between their storage (each
//! filter's 3×3 taps side by side) and nine 16-lane vectors ([`gather_taps`],
//! [`scatter_taps`]): element by element that is 144 scalar loads or stores whose vector
//! reloads miss store forwarding (perf: most of `filter_rows`); with AVX-512, 16 masked row
//! loads or stores around one 16×16 transpose; with AVX2, one 8×8 transpose per 8 filters'
//! first eight taps.

/// Floats per vector (tiles per step).
const LANES: usize = 16;

/// `row[4·l + j] = v[j][l]` for `j < 4`, `l < 16` (scalar twin of the AVX-512 kernel).
#[inline(always)]
fn interleave4_scalar(v: &[[f32; LANES]; 4], row: &mut [f32]) {
    let row = &mut row[..4 * LANES];
    for l in 0..LANES {
        for j in 0..4 {
            row[4 * l + j] = v[j][l];
        }
    }
}

/// `v[j][l] = row[4·l + j]` for `j < 4`, `l < 16` (scalar twin of the AVX-512 kernel).
#[inline(always)]
fn deinterleave4_scalar(row: &[f32], v: &mut [[f32; LANES]; 4]) {
    let row = &row[..4 * LANES];
    for l in 0..LANES {
        for j in 0..4 {
            v[j][l] = row[4 * l + j];
        }
    }
}

/// Taps per 3×3 filter.
const TAPS: usize = 9;

/// `taps[t][l] = src[l·stride + t]` (`reverse`: `src[l·stride + 8 − t]`, the filter turned by
/// 180°) for `l < lanes`, zero for `lanes ≤ l < 16` (scalar twin).
#[inline(always)]
fn gather_taps_scalar(
    src: &[f32],
    stride: usize,
    lanes: usize,
    reverse: bool,
    taps: &mut [[f32; LANES]; TAPS],
) {
    for l in 0..LANES {
        if l >= lanes {
            for tap in taps.iter_mut() {
                tap[l] = 0.0;
            }
            continue;
        }
        let f = &src[l * stride..][..TAPS];
        for (t, tap) in taps.iter_mut().enumerate() {
            tap[l] = if reverse { f[TAPS - 1 - t] } else { f[t] };
        }
    }
}

/// `dst[l·9 + t] = taps[t][l]` for `l < lanes` (scalar twin).
#[inline(always)]
fn scatter_taps_scalar(taps: &[[f32; LANES]; TAPS], lanes: usize, dst: &mut [f32]) {
    let dst = &mut dst[..lanes * TAPS];
    for l in 0..lanes {
        for (t, tap) in taps.iter().enumerate() {
            dst[l * TAPS + t] = tap[l];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, TAPS};
    use crate::kernels::simd::transpose16;
    use std::arch::x86_64::*;

    /// The nine taps of one filter in the low lanes of a vector.
    const TAP_MASK: __mmask16 = (1 << TAPS) - 1;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn gather_taps(
        src: &[f32],
        stride: usize,
        lanes: usize,
        reverse: bool,
        taps: &mut [[f32; LANES]; TAPS],
    ) {
        assert!(lanes <= LANES && (lanes == 0 || (lanes - 1) * stride + TAPS <= src.len()));
        // SAFETY: every row read is inside `src` (checked above); masked loads touch only the
        // nine taps.
        unsafe {
            let mut r = [_mm512_setzero_ps(); LANES];
            for (l, row) in r.iter_mut().enumerate().take(lanes) {
                *row = _mm512_maskz_loadu_ps(TAP_MASK, src.as_ptr().add(l * stride));
            }
            transpose16(&mut r);
            for (t, tap) in taps.iter_mut().enumerate() {
                let v = if reverse { r[TAPS - 1 - t] } else { r[t] };
                _mm512_storeu_ps(tap.as_mut_ptr(), v);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn scatter_taps(taps: &[[f32; LANES]; TAPS], lanes: usize, dst: &mut [f32]) {
        let dst = &mut dst[..lanes * TAPS];
        // SAFETY: unaligned loads inside the arrays; masked stores of nine floats at l·9 for
        // l < lanes, inside `dst` (sliced above).
        unsafe {
            let mut r = [_mm512_setzero_ps(); LANES];
            for (tap, row) in taps.iter().zip(r.iter_mut()) {
                *row = _mm512_loadu_ps(tap.as_ptr());
            }
            transpose16(&mut r);
            for (l, row) in r.iter().enumerate().take(lanes) {
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(l * TAPS), TAP_MASK, *row);
            }
        }
    }

    /// 4×4 transposes of the floats inside each 128-bit block of `x[0..4]` (an involution).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn in_blocks(x: [__m512; 4]) -> [__m512; 4] {
        let t0 = _mm512_unpacklo_ps(x[0], x[1]);
        let t1 = _mm512_unpackhi_ps(x[0], x[1]);
        let t2 = _mm512_unpacklo_ps(x[2], x[3]);
        let t3 = _mm512_unpackhi_ps(x[2], x[3]);
        let (t0, t1, t2, t3) = (
            _mm512_castps_pd(t0),
            _mm512_castps_pd(t1),
            _mm512_castps_pd(t2),
            _mm512_castps_pd(t3),
        );
        [
            _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)),
        ]
    }

    /// The 4×4 transpose of the 128-bit blocks of `x[0..4]` (an involution).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn of_blocks(x: [__m512; 4]) -> [__m512; 4] {
        let s0 = _mm512_shuffle_f32x4::<0x44>(x[0], x[1]);
        let s1 = _mm512_shuffle_f32x4::<0x44>(x[2], x[3]);
        let s2 = _mm512_shuffle_f32x4::<0xEE>(x[0], x[1]);
        let s3 = _mm512_shuffle_f32x4::<0xEE>(x[2], x[3]);
        [
            _mm512_shuffle_f32x4::<0x88>(s0, s1),
            _mm512_shuffle_f32x4::<0xDD>(s0, s1),
            _mm512_shuffle_f32x4::<0x88>(s2, s3),
            _mm512_shuffle_f32x4::<0xDD>(s2, s3),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn interleave4(v: &[[f32; LANES]; 4], row: &mut [f32]) {
        let row = &mut row[..4 * LANES];
        // SAFETY: unaligned 16-float loads and stores inside the arrays and `row`.
        unsafe {
            let x = [
                _mm512_loadu_ps(v[0].as_ptr()),
                _mm512_loadu_ps(v[1].as_ptr()),
                _mm512_loadu_ps(v[2].as_ptr()),
                _mm512_loadu_ps(v[3].as_ptr()),
            ];
            let d = of_blocks(in_blocks(x));
            for (i, d) in d.into_iter().enumerate() {
                _mm512_storeu_ps(row.as_mut_ptr().add(LANES * i), d);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn deinterleave4(row: &[f32], v: &mut [[f32; LANES]; 4]) {
        let row = &row[..4 * LANES];
        // SAFETY: unaligned 16-float loads and stores inside `row` and the arrays.
        unsafe {
            let x = [
                _mm512_loadu_ps(row.as_ptr()),
                _mm512_loadu_ps(row.as_ptr().add(LANES)),
                _mm512_loadu_ps(row.as_ptr().add(2 * LANES)),
                _mm512_loadu_ps(row.as_ptr().add(3 * LANES)),
            ];
            let o = in_blocks(of_blocks(x));
            for (vj, o) in v.iter_mut().zip(o) {
                _mm512_storeu_ps(vj.as_mut_ptr(), o);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{LANES, TAPS};
    use crate::kernels::simd::transpose8;
    use std::arch::x86_64::*;

    /// 4×4 transposes of the floats inside each 128-bit half of `x[0..4]` (an involution).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn in_halves(x: [__m256; 4]) -> [__m256; 4] {
        let t0 = _mm256_castps_pd(_mm256_unpacklo_ps(x[0], x[1]));
        let t1 = _mm256_castps_pd(_mm256_unpackhi_ps(x[0], x[1]));
        let t2 = _mm256_castps_pd(_mm256_unpacklo_ps(x[2], x[3]));
        let t3 = _mm256_castps_pd(_mm256_unpackhi_ps(x[2], x[3]));
        [
            _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
            _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)),
        ]
    }

    /// [`super::gather_taps`] per 8 lanes: taps 0-7 by one 8×8 transpose of the filters' first
    /// eight taps, tap 8 element by element.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn gather_taps(
        src: &[f32],
        stride: usize,
        lanes: usize,
        reverse: bool,
        taps: &mut [[f32; LANES]; TAPS],
    ) {
        assert!(lanes <= LANES && (lanes == 0 || (lanes - 1) * stride + TAPS <= src.len()));
        for h in 0..2 {
            let here = lanes.saturating_sub(8 * h).min(8);
            let mut r = [_mm256_setzero_ps(); 8];
            // SAFETY: every row read is 8 of the 9 taps of a filter inside `src` (checked above).
            unsafe {
                for (l, row) in r.iter_mut().enumerate().take(here) {
                    *row = _mm256_loadu_ps(src.as_ptr().add((8 * h + l) * stride));
                }
                transpose8(&mut r);
            }
            let last: [f32; 8] = std::array::from_fn(|l| {
                if l < here {
                    src[(8 * h + l) * stride + TAPS - 1]
                } else {
                    0.0
                }
            });
            for (t, tap) in taps.iter_mut().enumerate() {
                let k = if reverse { TAPS - 1 - t } else { t };
                let dst = &mut tap[8 * h..8 * h + 8];
                if k == TAPS - 1 {
                    dst.copy_from_slice(&last);
                } else {
                    // SAFETY: an unaligned 8-float store inside `dst`.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), r[k]) };
                }
            }
        }
    }

    /// [`super::scatter_taps`] per 8 lanes (the inverse of [`gather_taps`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn scatter_taps(taps: &[[f32; LANES]; TAPS], lanes: usize, dst: &mut [f32]) {
        let dst = &mut dst[..lanes * TAPS];
        for h in 0..2 {
            let here = lanes.saturating_sub(8 * h).min(8);
            let mut r: [__m256; 8] =
                // SAFETY: unaligned 8-float loads inside the arrays.
                std::array::from_fn(|t| unsafe { _mm256_loadu_ps(taps[t][8 * h..].as_ptr()) });
            // SAFETY: register shuffles only.
            unsafe { transpose8(&mut r) };
            for (l, row) in r.iter().enumerate().take(here) {
                let at = (8 * h + l) * TAPS;
                // SAFETY: 8 floats at `at` inside `dst` (its filter's first eight taps).
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(at), *row) };
                dst[at + TAPS - 1] = taps[TAPS - 1][8 * h + l];
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn interleave4(v: &[[f32; LANES]; 4], row: &mut [f32]) {
        let row = &mut row[..4 * LANES];
        // SAFETY: unaligned 8-float loads and stores inside the arrays and `row`.
        unsafe {
            for h in 0..2 {
                let x = std::array::from_fn(|j| _mm256_loadu_ps(v[j].as_ptr().add(8 * h)));
                let y = in_halves(x);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(y[0], y[1]),
                    _mm256_permute2f128_ps::<0x20>(y[2], y[3]),
                    _mm256_permute2f128_ps::<0x31>(y[0], y[1]),
                    _mm256_permute2f128_ps::<0x31>(y[2], y[3]),
                ];
                for (c, o) in out.into_iter().enumerate() {
                    _mm256_storeu_ps(row.as_mut_ptr().add(32 * h + 8 * c), o);
                }
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn deinterleave4(row: &[f32], v: &mut [[f32; LANES]; 4]) {
        let row = &row[..4 * LANES];
        // SAFETY: unaligned 8-float loads and stores inside `row` and the arrays.
        unsafe {
            for h in 0..2 {
                let c: [__m256; 4] =
                    std::array::from_fn(|c| _mm256_loadu_ps(row.as_ptr().add(32 * h + 8 * c)));
                let y = [
                    _mm256_permute2f128_ps::<0x20>(c[0], c[2]),
                    _mm256_permute2f128_ps::<0x31>(c[0], c[2]),
                    _mm256_permute2f128_ps::<0x20>(c[1], c[3]),
                    _mm256_permute2f128_ps::<0x31>(c[1], c[3]),
                ];
                for (vj, x) in v.iter_mut().zip(in_halves(y)) {
                    _mm256_storeu_ps(vj.as_mut_ptr().add(8 * h), x);
                }
            }
        }
    }
}

/// Which shuffles run: looked up once per transform call ([`fast`]), not per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shuffles {
    Scalar,
    Avx2,
    Avx512,
}

/// The shuffles this CPU runs (per the ISA level in force).
#[inline(always)]
pub(super) fn fast() -> Shuffles {
    use super::super::{isa, Isa};
    match isa() {
        _ if !cfg!(target_arch = "x86_64") => Shuffles::Scalar,
        Isa::Avx512 => Shuffles::Avx512,
        Isa::Avx2 => Shuffles::Avx2,
        _ => Shuffles::Scalar,
    }
}

/// `taps[t][l] = src[l·stride + t]` for the 16 filters `l` (each 9 taps side by side, `stride`
/// apart; `reverse`: `src[l·stride + 8 − t]`, turned by 180°), zero for `lanes ≤ l`. `fast`:
/// the shuffles [`fast`] allowed (AVX-512 has a vector path).
///
/// # Panics
/// If `src` is shorter than `(lanes − 1)·stride + 9` (a programming error).
#[inline(always)]
pub(super) fn gather_taps(
    fast: Shuffles,
    src: &[f32],
    stride: usize,
    lanes: usize,
    reverse: bool,
    taps: &mut [[f32; LANES]; TAPS],
) {
    // SAFETY: `Avx512` / `Avx2` only when the CPU has those features.
    #[cfg(target_arch = "x86_64")]
    match fast {
        Shuffles::Avx512 => {
            return unsafe { avx512::gather_taps(src, stride, lanes, reverse, taps) }
        }
        Shuffles::Avx2 => return unsafe { avx2::gather_taps(src, stride, lanes, reverse, taps) },
        Shuffles::Scalar => {}
    }
    let _ = fast;
    gather_taps_scalar(src, stride, lanes, reverse, taps)
}

/// Asks for the 16 filters `ahead` floats past those [`gather_taps`] reads from `src` (rows
/// `stride` apart): they come from memory while this step's are transformed. Hints only, never
/// a fault (addresses past the weights are fine).
#[inline(always)]
pub(super) fn prefetch_taps(src: &[f32], stride: usize, lanes: usize, ahead: usize) {
    #[cfg(target_arch = "x86_64")]
    for l in 0..lanes {
        let p = src.as_ptr().wrapping_add(l * stride + ahead);
        // SAFETY: a prefetch hint never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, stride, lanes, ahead);
}

/// `dst[l·9 + t] = taps[t][l]` for `l < lanes`: 16 filters' taps back side by side (`fast` as
/// [`gather_taps`]).
#[inline(always)]
pub(super) fn scatter_taps(
    fast: Shuffles,
    taps: &[[f32; LANES]; TAPS],
    lanes: usize,
    dst: &mut [f32],
) {
    // SAFETY: `Avx512` / `Avx2` only when the CPU has those features.
    #[cfg(target_arch = "x86_64")]
    match fast {
        Shuffles::Avx512 => return unsafe { avx512::scatter_taps(taps, lanes, dst) },
        Shuffles::Avx2 => return unsafe { avx2::scatter_taps(taps, lanes, dst) },
        Shuffles::Scalar => {}
    }
    let _ = fast;
    scatter_taps_scalar(taps, lanes, dst)
}

/// `row[4·l + j] = v[j][l]` (`fast`: the shuffles [`fast`] allowed).
#[inline(always)]
pub(super) fn interleave4(fast: Shuffles, v: &[[f32; LANES]; 4], row: &mut [f32]) {
    // SAFETY: `Avx512` / `Avx2` only when the CPU has those features.
    #[cfg(target_arch = "x86_64")]
    match fast {
        Shuffles::Avx512 => return unsafe { avx512::interleave4(v, row) },
        Shuffles::Avx2 => return unsafe { avx2::interleave4(v, row) },
        Shuffles::Scalar => {}
    }
    let _ = fast;
    interleave4_scalar(v, row)
}

/// `v[j][l] = row[4·l + j]` (`fast`: the shuffles [`fast`] allowed).
#[inline(always)]
pub(super) fn deinterleave4(fast: Shuffles, row: &[f32], v: &mut [[f32; LANES]; 4]) {
    // SAFETY: `Avx512` / `Avx2` only when the CPU has those features.
    #[cfg(target_arch = "x86_64")]
    match fast {
        Shuffles::Avx512 => return unsafe { avx512::deinterleave4(row, v) },
        Shuffles::Avx2 => return unsafe { avx2::deinterleave4(row, v) },
        Shuffles::Scalar => {}
    }
    let _ = fast;
    deinterleave4_scalar(row, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar twins and every SIMD path this CPU runs.
    fn paths() -> Vec<Shuffles> {
        let mut v = vec![Shuffles::Scalar];
        let hw = crate::kernels::hardware_isa();
        if cfg!(target_arch = "x86_64") && hw >= crate::kernels::Isa::Avx2 {
            v.push(Shuffles::Avx2);
        }
        if cfg!(target_arch = "x86_64") && hw >= crate::kernels::Isa::Avx512 {
            v.push(Shuffles::Avx512);
        }
        v
    }

    #[test]
    fn both_paths_move_every_value_to_its_place() {
        let v: [[f32; LANES]; 4] =
            std::array::from_fn(|j| std::array::from_fn(|l| (100 * j + l) as f32));
        for path in paths() {
            let mut row = [f32::NAN; 4 * LANES + 3];
            interleave4(path, &v, &mut row);
            for l in 0..LANES {
                for j in 0..4 {
                    assert_eq!(row[4 * l + j], v[j][l], "interleave {path:?} l={l} j={j}");
                }
            }
            assert!(
                row[4 * LANES..].iter().all(|x| x.is_nan()),
                "wrote past the row"
            );
            let mut back = [[0.0f32; LANES]; 4];
            deinterleave4(path, &row, &mut back);
            assert_eq!(back, v, "deinterleave {path:?}");
        }
    }

    #[test]
    fn taps_move_between_filters_and_lanes() {
        // 16 filters 13 floats apart; every lane count, both orientations.
        let stride = 13;
        let src: Vec<f32> = (0..15 * stride + TAPS).map(|i| i as f32).collect();
        for path in paths() {
            for lanes in [0, 1, 7, 15, 16] {
                for reverse in [false, true] {
                    let mut taps = [[f32::NAN; LANES]; TAPS];
                    gather_taps(path, &src, stride, lanes, reverse, &mut taps);
                    for (t, tap) in taps.iter().enumerate() {
                        for (l, &v) in tap.iter().enumerate() {
                            let want = if l >= lanes {
                                0.0
                            } else if reverse {
                                src[l * stride + TAPS - 1 - t]
                            } else {
                                src[l * stride + t]
                            };
                            assert_eq!(v, want, "gather {path:?} lanes={lanes} t={t} l={l}");
                        }
                    }
                    let mut dst = vec![f32::NAN; LANES * TAPS + 5];
                    scatter_taps(path, &taps, lanes, &mut dst);
                    for (i, &v) in dst.iter().enumerate() {
                        let (l, t) = (i / TAPS, i % TAPS);
                        if l < lanes {
                            assert_eq!(v, taps[t][l], "scatter {path:?} lanes={lanes} i={i}");
                        } else {
                            assert!(v.is_nan(), "scatter {path:?} wrote past lane {lanes}");
                        }
                    }
                }
            }
        }
    }
}
