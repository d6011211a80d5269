//! The 16-tile transposes of the Winograd transforms: between four 16-lane vectors (one value
//! per tile, lane = tile) and 64 floats with each tile's four values side by side
//! (`row[4·l + j] = v[j][l]`). The compiler turns the scalar twins into long insert/extract
//! chains (measured: about a quarter of the tiled output transform); with AVX-512 they are two
//! 4×4 transposes, of the floats inside each 128-bit block and of the blocks, 12 shuffles.
//! Both only move values, so every ISA gives the same bits.

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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

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

/// Whether the AVX-512 shuffles run (looked up once per transform call, not per step).
#[inline(always)]
pub(super) fn fast() -> bool {
    cfg!(target_arch = "x86_64") && super::super::isa() == super::super::Isa::Avx512
}

/// `row[4·l + j] = v[j][l]` (`fast`: the AVX-512 shuffles, which [`fast`] must have allowed).
#[inline(always)]
pub(super) fn interleave4(fast: bool, v: &[[f32; LANES]; 4], row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is true only when the CPU has AVX-512 F.
        unsafe { avx512::interleave4(v, row) };
        return;
    }
    let _ = fast;
    interleave4_scalar(v, row)
}

/// `v[j][l] = row[4·l + j]` (`fast`: the AVX-512 shuffles, which [`fast`] must have allowed).
#[inline(always)]
pub(super) fn deinterleave4(fast: bool, row: &[f32], v: &mut [[f32; LANES]; 4]) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is true only when the CPU has AVX-512 F.
        unsafe { avx512::deinterleave4(row, v) };
        return;
    }
    let _ = fast;
    deinterleave4_scalar(row, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_move_every_value_to_its_place() {
        let v: [[f32; LANES]; 4] =
            std::array::from_fn(|j| std::array::from_fn(|l| (100 * j + l) as f32));
        for path in [false, fast()] {
            let mut row = [f32::NAN; 4 * LANES + 3];
            interleave4(path, &v, &mut row);
            for l in 0..LANES {
                for j in 0..4 {
                    assert_eq!(
                        row[4 * l + j],
                        v[j][l],
                        "interleave fast={path} l={l} j={j}"
                    );
                }
            }
            assert!(
                row[4 * LANES..].iter().all(|x| x.is_nan()),
                "wrote past the row"
            );
            let mut back = [[0.0f32; LANES]; 4];
            deinterleave4(path, &row, &mut back);
            assert_eq!(back, v, "deinterleave fast={path}");
        }
    }
}
