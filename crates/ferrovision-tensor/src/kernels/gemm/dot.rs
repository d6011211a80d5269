//! The tile walk of the unpacked dot-product path (`A·Bᵀ`, A rows and B columns contiguous in
//! the depth), shared by the ISAs' dot kernels: each ISA supplies its `R×C` tile.

/// `out[i·ldo + j] += Σ_p a[(i0+i)·rsa + p] · b[(j0+j)·csb + p]` for one tile over `kb` steps,
/// row and column pointers past the output's edge duplicated (`vr`, `vc` valid).
pub(super) type TileFn<const R: usize, const C: usize> = unsafe fn(
    kb: usize,
    ar: &[*const f32; R],
    bc: &[*const f32; C],
    out: *mut f32,
    ldo: usize,
    vr: usize,
    vc: usize,
);

/// Index of the tile shape `(R, C)` with the least padded work for an `m×n` output.
pub(super) fn shape(m: usize, n: usize, shapes: &[(usize, usize)]) -> usize {
    let cost = |&(r, c): &(usize, usize)| m.div_ceil(r) * n.div_ceil(c) * (2 * r * c + r + c);
    (0..shapes.len())
        .min_by_key(|&s| cost(&shapes[s]))
        .unwrap_or(0)
}

/// Runs `tile` over the whole `m×n` output.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tiles<const R: usize, const C: usize>(
    tile: TileFn<R, C>,
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
    // The smaller operand is swept repeatedly (it stays in cache); the larger one once.
    let col_ptrs = |j0: usize| {
        let vc = C.min(n - j0);
        let mut bc = [b; C];
        for (j, p) in bc.iter_mut().enumerate() {
            *p = b.wrapping_add((j0 + j.min(vc - 1)) * csb);
        }
        (bc, vc)
    };
    let row_ptrs = |i0: usize| {
        let vr = R.min(m - i0);
        let mut ar = [a; R];
        for (i, p) in ar.iter_mut().enumerate() {
            *p = a.wrapping_add((i0 + i.min(vr - 1)) * rsa);
        }
        (ar, vr)
    };
    let run = |i0: usize, j0: usize| {
        let ((ar, vr), (bc, vc)) = (row_ptrs(i0), col_ptrs(j0));
        unsafe { tile(kb, &ar, &bc, out.add(i0 * ldo + j0), ldo, vr, vc) };
    };
    if m > n {
        for i0 in (0..m).step_by(R) {
            for j0 in (0..n).step_by(C) {
                run(i0, j0);
            }
        }
    } else {
        for j0 in (0..n).step_by(C) {
            for i0 in (0..m).step_by(R) {
                run(i0, j0);
            }
        }
    }
}
