//! The portable scalar micro-kernel (`4×16` register tile), the reference for the SIMD paths.

use super::arch::TileEp;

pub(super) const SCALAR_MR: usize = 4;
pub(super) const SCALAR_NR: usize = 16;

#[inline(always)]
pub(super) unsafe fn store_tile_scalar(
    acc: &[f32],
    acc_ld: usize,
    mr: usize,
    nr: usize,
    c: *mut f32,
    ldc: usize,
    ep: &TileEp,
) {
    for i in 0..mr {
        for j in 0..nr {
            unsafe {
                let dst = c.add(i * ldc + j);
                let mut v = acc[i * acc_ld + j];
                if ep.load_c {
                    v += *dst;
                }
                if !ep.bias_row.is_null() {
                    v += *ep.bias_row.add(i);
                }
                if !ep.bias_col.is_null() {
                    v += *ep.bias_col.add(j);
                }
                if !ep.res.is_null() {
                    v += *ep.res.add(i * ep.ldr + j);
                }
                if ep.relu {
                    v = v.max(0.0);
                }
                *dst = v;
            }
        }
    }
}

#[inline(always)]
pub(super) unsafe fn kernel_scalar_r<const R: usize>(
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
    let mut acc = [[0.0f32; SCALAR_NR]; R];
    for p in 0..k {
        unsafe {
            let bv = &*(b.add(p * ldb) as *const [f32; SCALAR_NR]);
            for i in 0..R {
                let av = *a.add(p * a_step + i);
                for j in 0..SCALAR_NR {
                    acc[i][j] += av * bv[j];
                }
            }
        }
    }
    let flat: &[f32] = acc.as_flattened();
    unsafe { store_tile_scalar(flat, SCALAR_NR, R, nr, c, ldc, ep) };
}

pub(super) unsafe fn kernel_scalar(
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
        match mr {
            1 => kernel_scalar_r::<1>(k, a, a_step, b, ldb, c, ldc, nr, ep),
            2 => kernel_scalar_r::<2>(k, a, a_step, b, ldb, c, ldc, nr, ep),
            3 => kernel_scalar_r::<3>(k, a, a_step, b, ldb, c, ldc, nr, ep),
            _ => kernel_scalar_r::<4>(k, a, a_step, b, ldb, c, ldc, nr, ep),
        }
    }
}
