//! Single-precision GEMM: BLIS-style packed panels, cache blocking, hand-written AVX-512 and
//! AVX2+FMA micro-kernels, a portable scalar path, a fused epilogue (accumulate, bias, residual,
//! ReLU) and rayon threading.
//!
//! # Design
//!
//! `C[m×n] (+)= A[m×k]·B[k×n]` is computed as a loop nest over cache blocks:
//!
//! ```text
//! for jc in 0..n step NC            // B block columns
//!   for pc in 0..k step KC          // depth block: packed B block KC×NC stays in L2
//!     pack B[pc.., jc..] into NR-wide micro-panels (zero padded)
//!     for ic in 0..m step MC        // A block rows
//!       pack A[ic.., pc..] into MR-tall micro-panels
//!       for ir (MR rows)            // A micro-panel (MR×KC) stays in L1
//!         for jr (NR columns)       // B micro-panels stream from L2
//!           micro-kernel: MR×NR register tile, C updated once with the epilogue
//! ```
//!
//! A matrix used again and again (inference weights) can be packed once into the exact panel
//! layout the loop nest reads: A as [`PanelLayout`] ([`sgemm_packed`]), B as [`BPanelLayout`]
//! ([`sgemm_b_panels`]: the whole-batch Winograd filters and the dense small-map matrices,
//! the B of their GEMMs); then no call packs it.
//!
//! The packing routines read any strides, so transposed operands cost nothing extra. When B is
//! row-contiguous and `m` is small, B is read in place (no packing: every element of B is used
//! by few row panels, so copying it would cost more than it saves).
//!
//! Blocking (AVX-512, tuned on Zen 4: 32 KiB L1d, 1 MiB L2): KC = 384, MC = 192, NC = 512.
//! Row-major A is packed with in-register 16×16 transposes, column-major B likewise (AVX2:
//! 8×8 transposes).
//!
//! Micro-kernels: AVX-512 `MR×32` (MR ≤ 12, two zmm per row, 24 accumulators), AVX2 `6×16`,
//! scalar `4×16`. Each is instantiated for every row count ≤ MR, so edge tiles in `m` run a
//! shorter kernel instead of computing zeros; edge tiles in `n` use masked loads/stores. The
//! row tile height is balanced over `m` (e.g. m = 16 runs two 8-row tiles).
//!
//! Threading: the output is cut into a grid of rectangles (rows at MR granularity, columns at
//! NR granularity) chosen by a small cost model (compute + duplicated packing), and the cells
//! run on rayon's pool, each with its own thread-local packing buffers. When the output is a
//! single tile but `k` is large (weight gradients with k = batch·spatial), `k` is split over the
//! threads and the partial products are summed. Problems below ~1.5 MFLOP run on the caller's
//! thread.
//!
//! `A·Bᵀ` with both operands contiguous in k, a small output (≤ 4096 elements) and a long depth
//! (weight gradients of convolutions and linear layers) skips packing altogether: a
//! dot-product kernel keeps a 4×6 (AVX-512; AVX2 4×3, or similar) block of vector accumulators
//! over k, with k split over the threads (`dot.rs` walks the tiles, each ISA supplies one).
//!
//! The AVX-512 intrinsics need Rust ≥ 1.89.
//! # Files
//!
//! - `mod.rs`: the public API ([`sgemm`], [`sgemm_batched`]) and argument validation.
//! - `arch.rs`: per-ISA kernel table and blocking parameters.
//! - `plan.rs`: the threading cost model and the blocked loop nest.
//! - `pack.rs`: portable packing of A and B into micro-panels.
//! - `scalar.rs`, `avx2.rs`, `avx512.rs`: the micro-kernels, transposing packers and
//!   dot-product tiles.
//! - `dot.rs`: the dot-product path's tile walk.
//! - `peak.rs`: the FMA peak probe ([`measure_peak_gflops`]).

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

/// Calls the const-generic kernel `$f::<R, $nv>` for the run-time row count `$mr` (one
/// instantiation per row count, so edge tiles run a shorter kernel).
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch_rows {
    ($f:ident, $nv:literal, $mr:expr, [$($r:literal)*], $args:tt) => {
        match $mr {
            $($r => $f::<$r, $nv> $args,)*
            _ => unreachable!(),
        }
    };
    ($f:ident, $nv:literal, $flag:ident, $mr:expr, [$($r:literal)*], $args:tt) => {
        match $mr {
            $($r => $f::<$r, $nv, $flag> $args,)*
            _ => unreachable!(),
        }
    };
}

mod arch;
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod avx2;
// The AVX-512 intrinsics are stable since Rust 1.89 (the workspace's declared MSRV is older).
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod dot;
mod pack;
mod peak;
mod plan;
mod scalar;
#[cfg(test)]
mod tests;

pub use peak::measure_peak_gflops;

use super::Isa;
use arch::arch_for;
use plan::{Job, PAR_MIN_FLOPS};

/// What is added and applied to each output element after the product.
#[derive(Debug, Clone, Copy, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// One value per output row (length m).
    PerRow(&'a [f32]),
    /// One value per output column (length n).
    PerCol(&'a [f32]),
}

/// Activation fused into the GEMM epilogue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    None,
    Relu,
}

/// Epilogue of a GEMM: `C = act(A·B (+ C if accumulate) + bias + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub act: Activation,
    /// A matrix added after the bias, before the activation (a residual connection fused into
    /// the layer before it).
    pub residual: Option<Residual<'a>>,
}

/// An `m×n` matrix added in the epilogue: element (i, j) at `values[i*ld + j]`.
#[derive(Debug, Clone, Copy)]
pub struct Residual<'a> {
    pub values: &'a [f32],
    pub ld: usize,
}

/// `C[m×n] (+)= A[m×k] · B[k×n]` then bias and activation.
///
/// `A` element (i, p) is at `a[i*rsa + p*csa]`, `B` element (p, j) at `b[p*rsb + j*csb]`
/// (any strides, so transposes are free), `C` element (i, j) at `c[i*ldc + j]`.
/// With `accumulate` the product is added to C's current values, otherwise C is overwritten.
///
/// # Panics
/// If a slice is too short for the given sizes and strides, if `ldc < n` with `m > 1`, or if a
/// bias slice is shorter than `m` (per row) or `n` (per column). These are programming errors.
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    sgemm_isa(
        super::isa(),
        crate::parallel::num_threads(),
        m,
        n,
        k,
        a,
        rsa,
        csa,
        b,
        rsb,
        csb,
        c,
        ldc,
        accumulate,
        epilogue,
    );
}

/// The micro-panel layout in which the GEMM reads an `m×k` matrix A: depth blocks of KC
/// steps, each holding every row's panels (`mr` rows × the block's steps, contiguous). A matrix
/// used again and again (inference weights) is packed once ([`PanelLayout::pack`]) and handed
/// to [`sgemm_packed`], which then skips the A packing of every call and cache block.
///
/// ```
/// use ferrovision_tensor::kernels::gemm::{sgemm_packed, Epilogue, PanelLayout};
/// let (m, n, k) = (3, 2, 4);
/// let a: Vec<f32> = (0..m * k).map(|v| v as f32).collect();
/// let b = vec![1.0f32; k * n];
/// let layout = PanelLayout::new(m, k);
/// let panels = layout.pack(&a, k, 1);
/// let mut c = vec![0.0f32; m * n];
/// sgemm_packed(&layout, &panels, n, &a, k, 1, &b, n, 1, &mut c, n, false, Epilogue::default());
/// assert_eq!(c, vec![6.0, 6.0, 22.0, 22.0, 38.0, 38.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelLayout {
    m: usize,
    k: usize,
    mr: usize,
    kc: usize,
}

impl PanelLayout {
    /// The layout the current ISA's kernels read for an `m×k` A.
    pub fn new(m: usize, k: usize) -> Self {
        Self::for_isa(super::isa(), m, k)
    }

    pub(crate) fn for_isa(isa: Isa, m: usize, k: usize) -> Self {
        let arch = arch_for(isa);
        Self {
            m,
            k,
            mr: plan::tile_rows(m.max(1), arch.mr),
            kc: arch.kc,
        }
    }

    /// Floats of the packed matrix (`m·k`: panels are not padded).
    pub fn len(&self) -> usize {
        self.m * self.k
    }

    /// Whether the matrix is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A (element (i, p) at `a[i*rsa + p*csa]`) in this layout.
    ///
    /// # Panics
    /// If `a` is too short for the strides (a programming error).
    pub fn pack(&self, a: &[f32], rsa: usize, csa: usize) -> Vec<f32> {
        let (m, k) = (self.m, self.k);
        let mut out = vec![0.0f32; self.len()];
        if out.is_empty() {
            return out;
        }
        assert!(
            span(a.len(), rsa, csa, m, k).is_some_and(|s| s <= a.len()),
            "PanelLayout::pack: A slice too short for m={m} k={k} rsa={rsa} csa={csa}"
        );
        // The panels are the same whichever ISA packs them; the current one is fastest.
        let pack_a = arch_for(super::isa()).pack_a;
        let mut pc = 0;
        while pc < k {
            let kb = self.kc.min(k - pc);
            // SAFETY: A's extent was checked above; block `pc` fills out[pc·m..(pc+kb)·m].
            unsafe {
                pack_a(
                    m,
                    kb,
                    a.as_ptr().add(pc * csa),
                    rsa,
                    csa,
                    self.mr,
                    out.as_mut_ptr().add(pc * m),
                )
            };
            pc += kb;
        }
        out
    }
}

/// [`sgemm`] with A also given packed: `panels` is [`PanelLayout::pack`] of the same `a` with
/// `layout` (made for `m = layout`'s rows and `k` its depth). Where the GEMM takes a path that
/// does not read panels (or the ISA changed since), it reads `a`.
///
/// # Panics
/// As [`sgemm`]; also if `panels` is shorter than `layout.len()`.
pub fn sgemm_packed(
    layout: &PanelLayout,
    panels: &[f32],
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    sgemm_core(
        super::isa(),
        crate::parallel::num_threads(),
        layout.m,
        n,
        layout.k,
        a,
        rsa,
        csa,
        Some((layout, panels)),
        BOperand::Strided(b),
        rsb,
        csb,
        c,
        ldc,
        accumulate,
        epilogue,
    );
}

/// The panel layout in which the GEMM reads a `k×n` matrix B without packing it: the columns
/// in NR-wide panels (NR the current ISA's register tile width, [`BPanelLayout::width`]), each
/// panel a row-major `k×NR` slab, the slabs one after the other, the last one zero padded.
/// A B used again and again (weights in inference) is packed once this way, and
/// [`sgemm_b_panels`] then reads it where it is instead of packing it on every call and cache
/// block.
///
/// ```
/// use ferrovision_tensor::kernels::gemm::{sgemm_b_panels, BPanelLayout, Epilogue};
/// let (m, n, k) = (2, 3, 2);
/// let a = vec![1.0f32, 2.0, 3.0, 4.0];
/// let b: Vec<f32> = (0..k * n).map(|v| v as f32).collect();
/// let layout = BPanelLayout::new(k, n);
/// let panels = layout.pack(&b, n, 1);
/// let mut c = vec![0.0f32; m * n];
/// sgemm_b_panels(&layout, &panels, m, &a, k, 1, &mut c, n, false, Epilogue::default());
/// assert_eq!(c, vec![6.0, 9.0, 12.0, 12.0, 19.0, 26.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BPanelLayout {
    k: usize,
    n: usize,
    nr: usize,
    /// The instruction set whose kernels read these panels (the GEMM runs on it).
    isa: Isa,
}

impl BPanelLayout {
    /// The layout the current ISA's kernels read for a `k×n` B.
    pub fn new(k: usize, n: usize) -> Self {
        Self::for_isa(super::isa(), k, n)
    }

    pub(crate) fn for_isa(isa: Isa, k: usize, n: usize) -> Self {
        let isa = arch::hw_isa(isa);
        Self {
            k,
            n,
            nr: arch_for(isa).nr,
            isa,
        }
    }

    /// Rows of B (the product's depth).
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The instruction set whose kernels read these panels.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Columns per panel (a multiple of 16 on every ISA).
    pub fn width(&self) -> usize {
        self.nr
    }

    /// Floats of one panel (`k·width`).
    pub fn panel_len(&self) -> usize {
        self.k * self.nr
    }

    /// Floats of the whole layout (`k·n` rounded up to whole panels).
    pub fn len(&self) -> usize {
        self.n.div_ceil(self.nr) * self.panel_len()
    }

    /// Whether the matrix is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where element (p, j) lives.
    #[inline]
    pub fn index(&self, p: usize, j: usize) -> usize {
        j / self.nr * self.panel_len() + p * self.nr + j % self.nr
    }

    /// B (element (p, j) at `b[p*rsb + j*csb]`) in this layout.
    ///
    /// # Panics
    /// If `b` is too short for the strides (a programming error).
    pub fn pack(&self, b: &[f32], rsb: usize, csb: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        if self.k == 0 || self.n == 0 {
            return out;
        }
        assert!(
            span(b.len(), rsb, csb, self.k, self.n).is_some_and(|s| s <= b.len()),
            "BPanelLayout::pack: B slice too short for k={} n={} rsb={rsb} csb={csb}",
            self.k,
            self.n
        );
        for p in 0..self.k {
            for j in 0..self.n {
                out[self.index(p, j)] = b[p * rsb + j * csb];
            }
        }
        out
    }
}

/// [`sgemm`] with B given in its panel layout: `panels` holds B as [`BPanelLayout`] `layout`
/// (whose `k` and `n` are the product's), and no call packs it. The product runs on the
/// instruction set the layout was made for (the current one when it was made).
///
/// # Panics
/// As [`sgemm`]; also if `panels` is shorter than `layout.len()`.
pub fn sgemm_b_panels(
    layout: &BPanelLayout,
    panels: &[f32],
    m: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    sgemm_b_panels_on(
        crate::parallel::num_threads(),
        layout,
        panels,
        m,
        a,
        rsa,
        csa,
        c,
        ldc,
        accumulate,
        epilogue,
    );
}

/// [`sgemm_b_panels`] with an explicit thread budget.
pub(crate) fn sgemm_b_panels_on(
    threads: usize,
    layout: &BPanelLayout,
    panels: &[f32],
    m: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    assert!(
        panels.len() >= layout.len(),
        "sgemm: B panels shorter than their layout ({} < {})",
        panels.len(),
        layout.len()
    );
    let (rsb, csb) = (layout.nr, 1);
    sgemm_core(
        layout.isa,
        threads,
        m,
        layout.n,
        layout.k,
        a,
        rsa,
        csa,
        None,
        BOperand::Panels(panels, layout.panel_len()),
        rsb,
        csb,
        c,
        ldc,
        accumulate,
        epilogue,
    );
}

/// `batch` independent GEMMs of the same shape: problem `t` uses `a[t*stride_a..]`,
/// `b[t*stride_b..]` and `c[t*stride_c..]` with the strides of [`sgemm`] inside each. The bias
/// (if any) is shared by all problems. Small problems run in parallel over the batch (one
/// thread each), large ones one after the other with the threads inside each.
///
/// # Panics
/// As [`sgemm`] for every problem; also if the C matrices overlap (`stride_c` smaller than one
/// C matrix) when `batch > 1`.
pub fn sgemm_batched(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    stride_a: usize,
    rsa: usize,
    csa: usize,
    b: &[f32],
    stride_b: usize,
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    stride_c: usize,
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    use crate::parallel::prelude::*;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    assert!(
        batch == 1 || epilogue.residual.is_none(),
        "sgemm_batched: a residual cannot be shared by several problems"
    );
    let c_span = (m - 1) * ldc + n;
    assert!(
        batch == 1 || stride_c >= c_span,
        "sgemm_batched: C matrices overlap (stride_c {stride_c} < {c_span})"
    );
    let a_at = |t: usize| &a[(t * stride_a).min(a.len())..];
    let b_at = |t: usize| &b[(t * stride_b).min(b.len())..];
    let threads = crate::parallel::num_threads();
    let isa = super::isa();
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    if threads <= 1 || batch == 1 || flops >= 8.0 * PAR_MIN_FLOPS {
        for t in 0..batch {
            let c_t = &mut c[t * stride_c..];
            sgemm_isa(
                isa,
                threads,
                m,
                n,
                k,
                a_at(t),
                rsa,
                csa,
                b_at(t),
                rsb,
                csb,
                c_t,
                ldc,
                accumulate,
                epilogue,
            );
        }
        return;
    }
    let need = (batch - 1) * stride_c + c_span;
    assert!(c.len() >= need, "sgemm_batched: C slice too short");
    c[..need]
        .par_chunks_mut(stride_c.max(1))
        .enumerate()
        .for_each(|(t, c_t)| {
            sgemm_isa(
                isa,
                1,
                m,
                n,
                k,
                a_at(t),
                rsa,
                csa,
                b_at(t),
                rsb,
                csb,
                c_t,
                ldc,
                accumulate,
                epilogue,
            );
        });
}

#[inline]
fn span(len: usize, rs: usize, cs: usize, rows: usize, cols: usize) -> Option<usize> {
    // Largest index + 1 touched by a rows×cols matrix with the given strides.
    let r = (rows - 1).checked_mul(rs)?;
    let c = (cols - 1).checked_mul(cs)?;
    let last = r.checked_add(c)?;
    let _ = len;
    last.checked_add(1)
}

/// [`sgemm`] with an explicit ISA (clamped to what the CPU supports) and thread budget.
pub(crate) fn sgemm_isa(
    isa: Isa,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    sgemm_core(
        isa,
        threads,
        m,
        n,
        k,
        a,
        rsa,
        csa,
        None,
        BOperand::Strided(b),
        rsb,
        csb,
        c,
        ldc,
        accumulate,
        epilogue,
    );
}

/// How B is given to [`sgemm_core`].
#[derive(Clone, Copy)]
enum BOperand<'a> {
    /// Element (p, j) at `b[p*rsb + j*csb]`.
    Strided(&'a [f32]),
    /// In [`BPanelLayout`] (length checked by the caller), with this panel length.
    Panels(&'a [f32], usize),
}

/// Validates the operands and runs the GEMM: the one entry every public form reaches, with A
/// optionally already packed ([`PanelLayout::pack`] of the same `a`) and B strided or in panels.
fn sgemm_core(
    isa: Isa,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    packed: Option<(&PanelLayout, &[f32])>,
    b_operand: BOperand<'_>,
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Up-front bounds checks: after these every index the kernels touch is in bounds.
    let c_need = span(c.len(), ldc, 1, m, n);
    assert!(
        c_need.is_some_and(|s| s <= c.len()),
        "sgemm: C slice too short for m={m} n={n} ldc={ldc}"
    );
    assert!(m == 1 || ldc >= n, "sgemm: ldc ({ldc}) < n ({n})");
    let (bias_row, bias_col) = match epilogue.bias {
        Bias::None => (std::ptr::null(), std::ptr::null()),
        Bias::PerRow(v) => {
            assert!(v.len() >= m, "sgemm: row bias shorter than m");
            (v.as_ptr(), std::ptr::null())
        }
        Bias::PerCol(v) => {
            assert!(v.len() >= n, "sgemm: column bias shorter than n");
            (std::ptr::null(), v.as_ptr())
        }
    };
    let (res, ldr) = match epilogue.residual {
        None => (std::ptr::null(), 0),
        Some(r) => {
            assert!(
                (m == 1 || r.ld >= n)
                    && span(r.values.len(), r.ld, 1, m, n).is_some_and(|s| s <= r.values.len()),
                "sgemm: residual slice too short for m={m} n={n} ld={}",
                r.ld
            );
            (r.values.as_ptr(), r.ld)
        }
    };
    let relu = epilogue.act == Activation::Relu;
    if k == 0 {
        // SAFETY: C bounds checked above; bias lengths checked above.
        unsafe {
            epilogue_only(
                m,
                n,
                c.as_mut_ptr(),
                ldc,
                accumulate,
                bias_row,
                bias_col,
                res,
                ldr,
                relu,
            );
        }
        return;
    }
    assert!(
        span(a.len(), rsa, csa, m, k).is_some_and(|s| s <= a.len()),
        "sgemm: A slice too short for m={m} k={k} rsa={rsa} csa={csa}"
    );
    let (b, bpanel) = match b_operand {
        BOperand::Strided(b) => {
            assert!(
                span(b.len(), rsb, csb, k, n).is_some_and(|s| s <= b.len()),
                "sgemm: B slice too short for k={k} n={n} rsb={rsb} csb={csb}"
            );
            (b, 0)
        }
        BOperand::Panels(b, panel_len) => (b, panel_len),
    };
    let arch = arch_for(isa);
    let mut job = Job {
        arch,
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        rsb,
        csb,
        c: c.as_mut_ptr(),
        ldc,
        accumulate,
        bias_row,
        bias_col,
        res,
        ldr,
        relu,
        ap: std::ptr::null(),
        ap_m: 0,
        ap_row: 0,
        bpanel,
    };
    if let Some((layout, panels)) = packed {
        // Panels made for another ISA's blocking are not used (A is packed as usual).
        if *layout == PanelLayout::for_isa(isa, m, k) {
            assert!(
                panels.len() >= layout.len(),
                "sgemm: packed panels shorter than m·k"
            );
            job.ap = panels.as_ptr();
            job.ap_m = m;
        }
    }
    // SAFETY: all pointers and extents were validated above; `run` only touches
    // A[0..m, 0..k], B[0..k, 0..n], C[0..m, 0..n], bias[0..m or n] and the m·k panels.
    unsafe { job.run(threads, m, n, k) }
}

/// Applies `C = act((accumulate ? C : 0) + bias + residual)` (the k = 0 case).
unsafe fn epilogue_only(
    m: usize,
    n: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias_row: *const f32,
    bias_col: *const f32,
    res: *const f32,
    ldr: usize,
    relu: bool,
) {
    for i in 0..m {
        for j in 0..n {
            unsafe {
                let dst = c.add(i * ldc + j);
                let mut v = if accumulate { *dst } else { 0.0 };
                if !bias_row.is_null() {
                    v += *bias_row.add(i);
                }
                if !bias_col.is_null() {
                    v += *bias_col.add(j);
                }
                if !res.is_null() {
                    v += *res.add(i * ldr + j);
                }
                if relu {
                    v = v.max(0.0);
                }
                *dst = v;
            }
        }
    }
}
