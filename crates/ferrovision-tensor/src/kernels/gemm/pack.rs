//! Portable packing of A and B into micro-panels (the x86 paths instantiate these under
//! their target features).

/// Packs `mb×kb` of A into micro-panels of `mr` rows (the last one may be shorter; each panel
/// is `kb` steps of its row count, contiguous, panel `t` starting at `t*mr*kb`).
#[inline(always)]
pub(super) unsafe fn pack_a_impl(
    mb: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    mr: usize,
    out: *mut f32,
) {
    let mut i0 = 0;
    while i0 < mb {
        let h = mr.min(mb - i0);
        unsafe {
            let dst = out.add(i0 * kb);
            let src = a.add(i0 * rsa);
            if rsa == 1 {
                // Column-major A: each depth step is a contiguous run of h values.
                for p in 0..kb {
                    std::ptr::copy_nonoverlapping(src.add(p * csa), dst.add(p * h), h);
                }
            } else if csa == 1 {
                // Row-major A: transpose blocks of 8 depth steps.
                let mut p = 0;
                while p + 8 <= kb {
                    for i in 0..h {
                        let s = src.add(i * rsa + p);
                        let d = dst.add(p * h + i);
                        for q in 0..8 {
                            *d.add(q * h) = *s.add(q);
                        }
                    }
                    p += 8;
                }
                while p < kb {
                    for i in 0..h {
                        *dst.add(p * h + i) = *src.add(i * rsa + p);
                    }
                    p += 1;
                }
            } else {
                for p in 0..kb {
                    for i in 0..h {
                        *dst.add(p * h + i) = *src.add(i * rsa + p * csa);
                    }
                }
            }
        }
        i0 += h;
    }
}

/// Packs `kb×nb` of B into NR-wide micro-panels (`kb` rows of NR values each, zero padded).
#[inline(always)]
pub(super) unsafe fn pack_b_impl<const NR: usize>(
    kb: usize,
    nb: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    let mut j0 = 0;
    while j0 < nb {
        let w = NR.min(nb - j0);
        unsafe {
            let dst = out.add(j0 * kb);
            let src = b.add(j0 * csb);
            if csb == 1 && w == NR {
                for p in 0..kb {
                    let s = &*(src.add(p * rsb) as *const [f32; NR]);
                    *(dst.add(p * NR) as *mut [f32; NR]) = *s;
                }
            } else if rsb == 1 {
                // Column-major B: walk each column contiguously, in blocks of depth that
                // keep the destination rows in L1.
                let mut p0 = 0;
                while p0 < kb {
                    let pe = (p0 + 64).min(kb);
                    for j in 0..w {
                        let s = src.add(j * csb);
                        for p in p0..pe {
                            *dst.add(p * NR + j) = *s.add(p);
                        }
                    }
                    for j in w..NR {
                        for p in p0..pe {
                            *dst.add(p * NR + j) = 0.0;
                        }
                    }
                    p0 = pe;
                }
            } else {
                for p in 0..kb {
                    let d = dst.add(p * NR);
                    for j in 0..w {
                        *d.add(j) = *src.add(p * rsb + j * csb);
                    }
                    for j in w..NR {
                        *d.add(j) = 0.0;
                    }
                }
            }
        }
        j0 += NR;
    }
}

pub(super) unsafe fn pack_a_generic(
    mb: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    mr: usize,
    out: *mut f32,
) {
    unsafe { pack_a_impl(mb, kb, a, rsa, csa, mr, out) }
}

pub(super) unsafe fn pack_b_generic<const NR: usize>(
    kb: usize,
    nb: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    unsafe { pack_b_impl::<NR>(kb, nb, b, rsb, csb, out) }
}
