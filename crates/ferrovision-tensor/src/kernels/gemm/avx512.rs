//! AVX-512 micro-kernels (`MR×32`, MR ≤ 12), in-register transposing packers and the
//! unpacked dot-product kernel for `A·Bᵀ` with a long depth.

use super::arch::TileEp;
use crate::kernels::simd::transpose16;
use std::arch::x86_64::*;

pub(super) const AVX512_MR: usize = 12;

/// AVX-512 tile of R rows × 16·NV columns.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn k512<const R: usize, const NV: usize, const A_ROWS: bool>(
    k: usize,
    a: *const f32,
    a_step: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    ep: &TileEp,
) {
    unsafe {
        // The C tile is read at the end: start fetching it now.
        {
            for i in 0..R {
                _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + 16 * NV - 1) as *const i8);
            }
            // Likewise the residual tile.
            if !ep.res.is_null() {
                for i in 0..R {
                    let r = ep.res.wrapping_add(i * ep.ldr);
                    _mm_prefetch::<_MM_HINT_T0>(r as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(16 * NV - 1) as *const i8);
                }
            }
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        // A_ROWS: A read in place row by row, rows `a_step` apart and depth steps adjacent.
        let (row_stride, a_step) = if A_ROWS { (a_step, 1) } else { (1, a_step) };
        let mut ap = a;
        let mut bp = b;
        let step = |ap: *const f32, bp: *const f32, acc: &mut [[__m512; NV]; R]| {
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm512_loadu_ps(bp.add(16 * v));
            }
            for i in 0..R {
                let av = _mm512_set1_ps(*ap.add(if A_ROWS { i * row_stride } else { i }));
                for v in 0..NV {
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
        };
        for _ in 0..k {
            step(ap, bp, &mut acc);
            ap = ap.add(a_step);
            bp = bp.add(ldb);
        }
        // Epilogue, as whole-tile passes so the tile stays in registers.
        let mut masks = [0u16; NV];
        for v in 0..NV {
            masks[v] = lane_mask(nr.saturating_sub(16 * v));
        }
        if ep.load_c {
            for i in 0..R {
                for v in 0..NV {
                    let cv = _mm512_maskz_loadu_ps(masks[v], c.add(i * ldc + 16 * v));
                    acc[i][v] = _mm512_add_ps(acc[i][v], cv);
                }
            }
        }
        if !ep.bias_col.is_null() {
            for v in 0..NV {
                let bc = _mm512_maskz_loadu_ps(masks[v], ep.bias_col.add(16 * v));
                for i in 0..R {
                    acc[i][v] = _mm512_add_ps(acc[i][v], bc);
                }
            }
        }
        if !ep.bias_row.is_null() {
            for i in 0..R {
                let br = _mm512_set1_ps(*ep.bias_row.add(i));
                for v in 0..NV {
                    acc[i][v] = _mm512_add_ps(acc[i][v], br);
                }
            }
        }
        if !ep.res.is_null() {
            for i in 0..R {
                for v in 0..NV {
                    let rv = _mm512_maskz_loadu_ps(masks[v], ep.res.add(i * ep.ldr + 16 * v));
                    acc[i][v] = _mm512_add_ps(acc[i][v], rv);
                }
            }
        }
        if ep.relu {
            let zero = _mm512_setzero_ps();
            for i in 0..R {
                for v in 0..NV {
                    acc[i][v] = _mm512_max_ps(acc[i][v], zero);
                }
            }
        }
        for i in 0..R {
            for v in 0..NV {
                _mm512_mask_storeu_ps(c.add(i * ldc + 16 * v), masks[v], acc[i][v]);
            }
        }
    }
}

/// The tile kernel. `A_ROWS: false`: over a packed A panel (or a transposed A read in place):
/// `a_step` floats between depth steps, the `mr` values of a step contiguous. `A_ROWS: true`:
/// over A read in place row by row, row `i` at `a + i·a_step` and its depth steps adjacent (a
/// row-major A, the forward pass's weights, with few columns to share a packing).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel_avx512<const A_ROWS: bool>(
    k: usize,
    a: *const f32,
    a_step: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    ep: &TileEp,
) {
    unsafe {
        if nr > 32 {
            dispatch_rows!(k512, 4, A_ROWS, mr, [1 2 3 4 5 6], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        } else if nr > 16 {
            dispatch_rows!(k512, 2, A_ROWS, mr, [1 2 3 4 5 6 7 8 9 10 11 12], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        } else {
            dispatch_rows!(k512, 1, A_ROWS, mr, [1 2 3 4 5 6 7 8 9 10 11 12], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        }
    }
}

#[inline(always)]
fn lane_mask(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(super) unsafe fn pack_a_avx512(
    mb: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    mr: usize,
    out: *mut f32,
) {
    if mr > 16 || (csa != 1 && rsa != 1) {
        return unsafe { super::pack::pack_a_impl(mb, kb, a, rsa, csa, mr, out) };
    }
    let mut i0 = 0;
    while i0 < mb {
        let h = mr.min(mb - i0);
        let hm = lane_mask(h);
        unsafe {
            let dst = out.add(i0 * kb);
            let src = a.add(i0 * rsa);
            if rsa == 1 {
                for p in 0..kb {
                    let v = _mm512_maskz_loadu_ps(hm, src.add(p * csa));
                    _mm512_mask_storeu_ps(dst.add(p * h), hm, v);
                }
            } else {
                // Row-major: 16×16 transposes of h rows × 16 depth steps.
                macro_rules! rows {
                    ($($h:literal)*) => {
                        match h {
                            $($h => pack_a_rows::<$h>(kb, src, rsa, dst),)*
                            _ => unreachable!(),
                        }
                    };
                }
                rows!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
            }
        }
        i0 += h;
    }
}

/// One micro-panel of H rows from row-major A (`a[i*rsa + p]`): out[p*H + i].
#[inline(always)]
unsafe fn pack_a_rows<const H: usize>(kb: usize, src: *const f32, rsa: usize, dst: *mut f32) {
    unsafe {
        let hm = lane_mask(H);
        let mut p0 = 0;
        while p0 + 16 <= kb {
            let mut r = [_mm512_setzero_ps(); 16];
            for i in 0..H {
                r[i] = _mm512_loadu_ps(src.add(i * rsa + p0));
            }
            transpose16(&mut r);
            for q in 0..16 {
                _mm512_mask_storeu_ps(dst.add((p0 + q) * H), hm, r[q]);
            }
            p0 += 16;
        }
        if p0 < kb {
            let pl = kb - p0;
            let pm = lane_mask(pl);
            let mut r = [_mm512_setzero_ps(); 16];
            for i in 0..H {
                r[i] = _mm512_maskz_loadu_ps(pm, src.add(i * rsa + p0));
            }
            transpose16(&mut r);
            for q in 0..pl {
                _mm512_mask_storeu_ps(dst.add((p0 + q) * H), hm, r[q]);
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(super) unsafe fn pack_b_avx512(
    kb: usize,
    nb: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    const NR: usize = 32;
    if csb != 1 && rsb != 1 {
        return unsafe { super::pack::pack_b_impl::<NR>(kb, nb, b, rsb, csb, out) };
    }
    if csb == 1 {
        // Row-major B: walk each source row once (sequential reads), scattering its
        // 32-wide pieces to the panels.
        let full = nb / NR;
        let rem = nb % NR;
        let m0 = lane_mask(rem);
        let m1 = lane_mask(rem.saturating_sub(16));
        unsafe {
            // Groups of 4 rows: their source (4 × nb floats) stays in L1 while each
            // panel receives 4 consecutive rows.
            let mut p0 = 0;
            while p0 < kb {
                let pe = (p0 + 4).min(kb);
                for t in 0..full {
                    for p in p0..pe {
                        let s = b.add(p * rsb + t * NR);
                        let d = out.add(t * NR * kb + p * NR);
                        _mm512_storeu_ps(d, _mm512_loadu_ps(s));
                        _mm512_storeu_ps(d.add(16), _mm512_loadu_ps(s.add(16)));
                    }
                }
                if rem != 0 {
                    for p in p0..pe {
                        let s = b.add(p * rsb + full * NR);
                        let d = out.add(full * NR * kb + p * NR);
                        _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m0, s));
                        _mm512_storeu_ps(d.add(16), _mm512_maskz_loadu_ps(m1, s.add(16)));
                    }
                }
                p0 = pe;
            }
        }
        return;
    }
    let mut j0 = 0;
    while j0 < nb {
        let w = NR.min(nb - j0);
        unsafe {
            let dst = out.add(j0 * kb);
            let src = b.add(j0 * csb);
            if csb == 1 {
                let m0 = lane_mask(w);
                let m1 = lane_mask(w.saturating_sub(16));
                for p in 0..kb {
                    let s = src.add(p * rsb);
                    let d = dst.add(p * NR);
                    _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m0, s));
                    _mm512_storeu_ps(d.add(16), _mm512_maskz_loadu_ps(m1, s.add(16)));
                }
            } else {
                // Column-major B: 16×16 transposes of 16 columns × 16 depth steps, one
                // half-panel (16 source columns) at a time.
                for half in 0..2 {
                    let cols = w.saturating_sub(16 * half).min(16);
                    let sh = src.add(16 * half * csb);
                    let dh = dst.add(16 * half);
                    let mut p0 = 0;
                    if cols == 16 {
                        while p0 + 16 <= kb {
                            let mut r = [_mm512_setzero_ps(); 16];
                            for j in 0..16 {
                                r[j] = _mm512_loadu_ps(sh.add(j * csb + p0));
                            }
                            transpose16(&mut r);
                            for q in 0..16 {
                                _mm512_storeu_ps(dh.add((p0 + q) * NR), r[q]);
                            }
                            p0 += 16;
                        }
                    }
                    while p0 < kb {
                        let pl = (kb - p0).min(16);
                        let pm = lane_mask(pl);
                        let mut r = [_mm512_setzero_ps(); 16];
                        for j in 0..cols {
                            r[j] = _mm512_maskz_loadu_ps(pm, sh.add(j * csb + p0));
                        }
                        transpose16(&mut r);
                        for q in 0..pl {
                            _mm512_storeu_ps(dh.add((p0 + q) * NR), r[q]);
                        }
                        p0 += 16;
                    }
                }
            }
        }
        j0 += NR;
    }
}

/// Lane `i` of the result is the sum of the 16 lanes of `v[i]`.
#[inline(always)]
unsafe fn hsum16(v: &[__m512; 16]) -> __m512 {
    unsafe {
        let pd = _mm512_castps_pd;
        let ps = _mm512_castpd_ps;
        // Per 128-bit lane: pairs of vectors, two partial sums each.
        let mut s = [_mm512_setzero_ps(); 8];
        for p in 0..8 {
            let (a, b) = (v[2 * p], v[2 * p + 1]);
            s[p] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        }
        // Per 128-bit lane: four vectors, one partial sum each.
        let mut t = [_mm512_setzero_ps(); 4];
        for q in 0..4 {
            let (x, y) = (pd(s[2 * q]), pd(s[2 * q + 1]));
            t[q] = _mm512_add_ps(ps(_mm512_unpacklo_pd(x, y)), ps(_mm512_unpackhi_pd(x, y)));
        }
        // Across the 128-bit lanes.
        let w01 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(t[0], t[1]),
            _mm512_shuffle_f32x4::<0xEE>(t[0], t[1]),
        );
        let w23 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(t[2], t[3]),
            _mm512_shuffle_f32x4::<0xEE>(t[2], t[3]),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(w01, w23),
            _mm512_shuffle_f32x4::<0xDD>(w01, w23),
        )
    }
}

/// Dot-product tile of R rows × C columns over `kb` depth steps; results are added to
/// `out` for the first `vr` rows and `vc` columns (pointers past those are duplicates).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn dot_tile<const R: usize, const C: usize>(
    kb: usize,
    ar: &[*const f32; R],
    bc: &[*const f32; C],
    out: *mut f32,
    ldo: usize,
    vr: usize,
    vc: usize,
) {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut p = 0;
        while p + 16 <= kb {
            let mut bv = [_mm512_setzero_ps(); C];
            for j in 0..C {
                bv[j] = _mm512_loadu_ps(bc[j].add(p));
            }
            for i in 0..R {
                let av = _mm512_loadu_ps(ar[i].add(p));
                for j in 0..C {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
            p += 16;
        }
        if p < kb {
            let mk = lane_mask(kb - p);
            let mut bv = [_mm512_setzero_ps(); C];
            for j in 0..C {
                bv[j] = _mm512_maskz_loadu_ps(mk, bc[j].add(p));
            }
            for i in 0..R {
                let av = _mm512_maskz_loadu_ps(mk, ar[i].add(p));
                for j in 0..C {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
        }
        // Horizontal sums, 16 accumulators at a time.
        let mut flat = [_mm512_setzero_ps(); 32];
        for i in 0..R {
            for j in 0..C {
                flat[i * C + j] = acc[i][j];
            }
        }
        let mut sums = [0.0f32; 32];
        for g in 0..(R * C).div_ceil(16) {
            let mut v = [_mm512_setzero_ps(); 16];
            v.copy_from_slice(&flat[16 * g..16 * g + 16]);
            _mm512_storeu_ps(sums.as_mut_ptr().add(16 * g), hsum16(&v));
        }
        for i in 0..vr {
            for j in 0..vc {
                *out.add(i * ldo + j) += sums[i * C + j];
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(super) unsafe fn dot_avx512(
    m: usize,
    n: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    b: *const f32,
    csb: usize,
    out: *mut f32,
    ldo: usize,
) {
    // Pick the tile shape with the least padded work.
    const SHAPES: [(usize, usize); 6] = [(4, 6), (6, 4), (3, 8), (8, 3), (2, 12), (12, 2)];
    use super::dot::tiles;
    unsafe {
        match SHAPES[super::dot::shape(m, n, &SHAPES)] {
            (4, 6) => tiles::<4, 6>(dot_tile::<4, 6>, m, n, kb, a, rsa, b, csb, out, ldo),
            (6, 4) => tiles::<6, 4>(dot_tile::<6, 4>, m, n, kb, a, rsa, b, csb, out, ldo),
            (3, 8) => tiles::<3, 8>(dot_tile::<3, 8>, m, n, kb, a, rsa, b, csb, out, ldo),
            (8, 3) => tiles::<8, 3>(dot_tile::<8, 3>, m, n, kb, a, rsa, b, csb, out, ldo),
            (2, 12) => tiles::<2, 12>(dot_tile::<2, 12>, m, n, kb, a, rsa, b, csb, out, ldo),
            _ => tiles::<12, 2>(dot_tile::<12, 2>, m, n, kb, a, rsa, b, csb, out, ldo),
        }
    }
}
