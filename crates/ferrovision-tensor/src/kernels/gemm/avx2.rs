//! AVX2 + FMA micro-kernel (`6×16`) and packers.

use super::arch::TileEp;
use std::arch::x86_64::*;

static MASK_SRC: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// AVX2 tile of R rows × 8·NV columns.
#[target_feature(enable = "avx2,fma")]
unsafe fn k256<const R: usize, const NV: usize>(
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
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm256_loadu_ps(bp.add(8 * v));
            }
            for i in 0..R {
                let av = _mm256_broadcast_ss(&*ap.add(i));
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

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_avx2(
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
            dispatch_rows!(k256, 2, mr, [1 2 3 4 5 6], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        } else {
            dispatch_rows!(k256, 1, mr, [1 2 3 4 5 6], (k, a, a_step, b, ldb, c, ldc, nr, ep))
        }
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
    unsafe { super::pack::pack_a_impl(mb, kb, a, rsa, csa, mr, out) }
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
    unsafe { super::pack::pack_b_impl::<16>(kb, nb, b, rsb, csb, out) }
}
