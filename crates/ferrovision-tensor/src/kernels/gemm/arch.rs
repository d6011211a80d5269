//! Per-instruction-set GEMM configuration: the micro-kernel, packing routines and cache
//! blocking of each ISA, and the signatures they share.

use super::pack::{pack_a_generic, pack_b_generic};
use super::scalar::{kernel_scalar, SCALAR_MR, SCALAR_NR};
use crate::kernels::Isa;

/// Epilogue of one register tile, as raw pointers already offset to the tile.
#[derive(Clone, Copy)]
pub(super) struct TileEp {
    /// Add the current C values (accumulate, or a later depth block).
    pub(super) load_c: bool,
    pub(super) relu: bool,
    /// Bias of the tile's row 0 (null: none).
    pub(super) bias_row: *const f32,
    /// Bias of the tile's column 0 (null: none).
    pub(super) bias_col: *const f32,
    /// Residual matrix at the tile's (0, 0), added after the bias (null: none), and its row
    /// stride.
    pub(super) res: *const f32,
    pub(super) ldr: usize,
}

/// `C[mr×nr] = ep(A_panel · B_panel)`: `a` holds `k` steps of `mr` contiguous values, `a_step`
/// floats apart (`mr` for a packed micro-panel; the column stride of an A read in place),
/// `b` holds `k` rows of NR values at stride `ldb` (zero padded past `nr`).
pub(super) type KernelFn = unsafe fn(
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
);

/// Packs `kb` rows × `nb` columns of B into NR-wide micro-panels.
pub(super) type PackBFn =
    unsafe fn(kb: usize, nb: usize, b: *const f32, rsb: usize, csb: usize, out: *mut f32);
/// Packs `mb` rows × `kb` columns of A into `mr`-tall micro-panels.
pub(super) type PackAFn = unsafe fn(
    mb: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    mr: usize,
    out: *mut f32,
);

/// One instruction set's kernel and blocking parameters.
#[derive(Clone, Copy)]
pub(super) struct Arch {
    /// Largest register tile height.
    pub(super) mr: usize,
    /// Register tile width (packed B panel width).
    pub(super) nr: usize,
    pub(super) kc: usize,
    pub(super) mc: usize,
    pub(super) nc: usize,
    pub(super) kernel: KernelFn,
    /// The kernel over an A read in place row by row (`a_step` the row stride, depth steps
    /// adjacent), where the ISA has one.
    pub(super) kernel_rows: Option<KernelFn>,
    pub(super) pack_a: PackAFn,
    pub(super) pack_b: PackBFn,
    /// Wider register tile for short tiles over unpacked B (0: none): the kernel accepts
    /// `nr` up to `wide_nr` when `mr <= wide_mr`.
    pub(super) wide_nr: usize,
    pub(super) wide_mr: usize,
    /// Unpacked dot-product kernel for `A·Bᵀ`-like layouts (A rows and B columns contiguous
    /// in k) with a small output and a long depth.
    pub(super) dot: Option<DotFn>,
}

/// `out[i*ldo + j] += Σ_p A(i,p)·B(p,j)` for the whole `m×n` output over `kb` depth steps,
/// with `A(i,p) = a[i*rsa + p]` and `B(p,j) = b[j*csb + p]`.
pub(super) type DotFn = unsafe fn(
    m: usize,
    n: usize,
    kb: usize,
    a: *const f32,
    rsa: usize,
    b: *const f32,
    csb: usize,
    out: *mut f32,
    ldo: usize,
);

/// The dot-product path is used up to this many output elements...
pub(super) const DOT_MAX_MN: usize = 4096;
/// ...and from this depth on.
pub(super) const DOT_MIN_K: usize = 256;
/// ...or when one side of the output is at most this short (the other operand is then
/// streamed once instead of being packed for few uses).
pub(super) const DOT_MAX_SHORT: usize = 8;
/// Depth chunk of the dot-product path (A and B rows of this length stay in L2).
pub(super) const DOT_KC: usize = 4096;

/// `wanted` clamped to what this CPU supports (explicit levels in tests and the peak probe).
pub(super) fn hw_isa(wanted: Isa) -> Isa {
    wanted.min(crate::kernels::hardware_isa())
}

pub(super) fn arch_for(isa: Isa) -> Arch {
    match hw_isa(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Arch {
            mr: super::avx512::AVX512_MR,
            nr: 32,
            kc: 384,
            mc: 192,
            nc: 512,
            kernel: super::avx512::kernel_avx512::<false>,
            kernel_rows: Some(super::avx512::kernel_avx512::<true>),
            pack_a: super::avx512::pack_a_avx512,
            pack_b: super::avx512::pack_b_avx512,
            wide_nr: 64,
            wide_mr: 6,
            dot: Some(super::avx512::dot_avx512),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Arch {
            mr: 6,
            nr: 16,
            kc: 384,
            mc: 192,
            nc: 512,
            kernel: super::avx2::kernel_avx2::<false>,
            kernel_rows: Some(super::avx2::kernel_avx2::<true>),
            pack_a: super::avx2::pack_a_avx2,
            pack_b: super::avx2::pack_b_avx2,
            wide_nr: 0,
            wide_mr: 0,
            dot: Some(super::avx2::dot_avx2),
        },
        _ => Arch {
            mr: SCALAR_MR,
            nr: SCALAR_NR,
            kc: 256,
            mc: 128,
            nc: 512,
            kernel: kernel_scalar,
            kernel_rows: None,
            pack_a: pack_a_generic,
            pack_b: pack_b_generic::<SCALAR_NR>,
            wide_nr: 0,
            wide_mr: 0,
            dot: None,
        },
    }
}
