//! AVX2 + FMA micro-kernel (`6×16`), packers with in-register 8×8 transposes and the
//! unpacked dot-product tiles for `A·Bᵀ` with a long depth.

use super::arch::TileEp;
use std::arch::x86_64::*;

static MASK_SRC: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// AVX2 tile of R rows × 8·NV columns (`A_ROWS` as in [`kernel_avx2`]).
#[target_feature(enable = "avx2,fma")]
unsafe fn k256<const R: usize, const NV: usize, const A_ROWS: bool>(
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
        let mut acc = [[_mm256_setzero_ps(); NV]; R];
        let (row_stride, a_step) = if A_ROWS { (a_step, 1) } else { (1, a_step) };
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm256_loadu_ps(bp.add(8 * v));
            }
            for i in 0..R {
                let av = _mm256_broadcast_ss(&*ap.add(if A_ROWS { i * row_stride } else { i }));
                for v in 0..NV {
                    acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
            ap = ap.add(a_step);
            bp = bp.add(ldb);
        }
        let mut masks = [_mm256_setzero_si256(); NV];
        for v in 0..NV {
            let cols = nr.saturating_sub(8 * v).min(8);
            masks[v] = _mm256_loadu_si256(MASK_SRC.as_ptr().add(8 - cols) as *const __m256i);
        }
        let zero = _mm256_setzero_ps();
        for i in 0..R {
            let crow = c.add(i * ldc);
            let br = if ep.bias_row.is_null() {
                zero
            } else {
                _mm256_set1_ps(*ep.bias_row.add(i))
            };
            for v in 0..NV {
                let mk = masks[v];
                let mut x = acc[i][v];
                if ep.load_c {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(crow.add(8 * v), mk));
                }
                if !ep.bias_col.is_null() {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(ep.bias_col.add(8 * v), mk));
                }
                x = _mm256_add_ps(x, br);
                if !ep.res.is_null() {
                    let rrow = ep.res.add(i * ep.ldr);
                    x = _mm256_add_ps(x, _mm256_maskload_ps(rrow.add(8 * v), mk));
                }
                if ep.relu {
                    x = _mm256_max_ps(x, zero);
                }
                _mm256_maskstore_ps(crow.add(8 * v), mk, x);
            }
        }
    }
}

/// The tile kernel. `A_ROWS: false`: over a packed A panel (or a transposed A read in place),
/// `a_step` floats between depth steps; `A_ROWS: true`: over a row-major A read in place, row
/// `i` at `a + i·a_step` (GEMMs with few columns, where packing A costs more than it saves).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_avx2<const A_ROWS: bool>(
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
        if nr > 8 {
            dispatch_rows!(k256, 2, A_ROWS, mr, [1 2 3 4 5 6], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        } else {
            dispatch_rows!(k256, 1, A_ROWS, mr, [1 2 3 4 5 6], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        }
    }
}

/// Lane mask of the first `n` (≤ 8) lanes, for masked loads and stores.
#[inline(always)]
unsafe fn lane_mask(n: usize) -> __m256i {
    unsafe { _mm256_loadu_si256(MASK_SRC.as_ptr().add(8 - n.min(8)) as *const __m256i) }
}

/// `rows` (≤ 8) source rows of `pl` (≤ 8) floats, `stride` apart from `src`, transposed: lane
/// `i` of vector `q` is row `i`'s value `q`; lanes and vectors past them are zeros.
#[inline(always)]
unsafe fn transposed_block(src: *const f32, stride: usize, rows: usize, pl: usize) -> [__m256; 8] {
    unsafe {
        let pm = lane_mask(pl);
        let mut r = [_mm256_setzero_ps(); 8];
        for (i, row) in r.iter_mut().enumerate().take(rows) {
            *row = if pl == 8 {
                _mm256_loadu_ps(src.add(i * stride))
            } else {
                _mm256_maskload_ps(src.add(i * stride), pm)
            };
        }
        crate::kernels::simd::transpose8(&mut r);
        r
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_a_avx2(
    mb: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    mr: usize,
    out: *mut f32,
) {
    if csa != 1 || rsa == 1 || mr > 8 {
        return unsafe { super::pack::pack_a_impl(mb, kb, a, rsa, csa, mr, out) };
    }
    // Row-major A: 8×8 transposes of h rows × 8 depth steps.
    let mut i0 = 0;
    while i0 < mb {
        let h = mr.min(mb - i0);
        unsafe {
            let hm = lane_mask(h);
            let dst = out.add(i0 * kb);
            let src = a.add(i0 * rsa);
            let mut p0 = 0;
            while p0 < kb {
                let pl = (kb - p0).min(8);
                let r = transposed_block(src.add(p0), rsa, h, pl);
                for q in 0..pl {
                    _mm256_maskstore_ps(dst.add((p0 + q) * h), hm, r[q]);
                }
                p0 += 8;
            }
        }
        i0 += h;
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_b_avx2(
    kb: usize,
    nb: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    const NR: usize = 16;
    if rsb != 1 || csb == 1 {
        return unsafe { super::pack::pack_b_impl::<NR>(kb, nb, b, rsb, csb, out) };
    }
    // Column-major B: 8×8 transposes of 8 columns × 8 depth steps, one half-panel at a time
    // (columns past `nb` are zeros).
    let mut j0 = 0;
    while j0 < nb {
        let w = NR.min(nb - j0);
        for half in 0..2 {
            let cols = w.saturating_sub(8 * half).min(8);
            unsafe {
                let sh = b.add((j0 + 8 * half) * csb);
                let dh = out.add(j0 * kb + 8 * half);
                let mut p0 = 0;
                while p0 < kb {
                    let pl = (kb - p0).min(8);
                    let r = transposed_block(sh.add(p0), csb, cols, pl);
                    for q in 0..pl {
                        _mm256_storeu_ps(dh.add((p0 + q) * NR), r[q]);
                    }
                    p0 += 8;
                }
            }
        }
        j0 += NR;
    }
}

/// The sum of the 8 lanes of `v`.
#[inline(always)]
unsafe fn hsum8(v: __m256) -> f32 {
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

/// Dot-product tile of R rows × C columns over `kb` depth steps; results are added to
/// `out` for the first `vr` rows and `vc` columns (pointers past those are duplicates).
#[target_feature(enable = "avx2,fma")]
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
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut p = 0;
        while p + 8 <= kb {
            let mut bv = [_mm256_setzero_ps(); C];
            for j in 0..C {
                bv[j] = _mm256_loadu_ps(bc[j].add(p));
            }
            for i in 0..R {
                let av = _mm256_loadu_ps(ar[i].add(p));
                for j in 0..C {
                    acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
            p += 8;
        }
        if p < kb {
            let mk = lane_mask(kb - p);
            let mut bv = [_mm256_setzero_ps(); C];
            for j in 0..C {
                bv[j] = _mm256_maskload_ps(bc[j].add(p), mk);
            }
            for i in 0..R {
                let av = _mm256_maskload_ps(ar[i].add(p), mk);
                for j in 0..C {
                    acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
        }
        for i in 0..vr {
            for j in 0..vc {
                *out.add(i * ldo + j) += hsum8(acc[i][j]);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_avx2(
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
    // Tiles whose accumulators and B vectors fit the 16 registers, least padded work first.
    const SHAPES: [(usize, usize); 4] = [(4, 3), (3, 4), (6, 2), (2, 6)];
    use super::dot::tiles;
    unsafe {
        match SHAPES[super::dot::shape(m, n, &SHAPES)] {
            (4, 3) => tiles::<4, 3>(dot_tile::<4, 3>, m, n, kb, a, rsa, b, csb, out, ldo),
            (3, 4) => tiles::<3, 4>(dot_tile::<3, 4>, m, n, kb, a, rsa, b, csb, out, ldo),
            (6, 2) => tiles::<6, 2>(dot_tile::<6, 2>, m, n, kb, a, rsa, b, csb, out, ldo),
            _ => tiles::<2, 6>(dot_tile::<2, 6>, m, n, kb, a, rsa, b, csb, out, ldo),
        }
    }
}
