//! Single-precision GEMM: BLIS-style packed panels, cache blocking, hand-written AVX-512 and
//! AVX2+FMA micro-kernels, a portable scalar path, a fused epilogue (accumulate, bias, ReLU) and
//! rayon threading.
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
//! The packing routines read any strides, so transposed operands cost nothing extra. When B is
//! row-contiguous and `m` is small, B is read in place (no packing: every element of B is used
//! by few row panels, so copying it would cost more than it saves).
//!
//! Blocking (AVX-512, tuned on Zen 4: 32 KiB L1d, 1 MiB L2): KC = 384, MC = 192, NC = 512.
//! Row-major A is packed with in-register 16×16 transposes, column-major B likewise.
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
//! (weight gradients of convolutions and linear layers) skips packing altogether: an AVX-512
//! dot-product kernel keeps a 4×6 (or similar) block of vector accumulators over k, with k split
//! over the threads.
//!
//! The AVX-512 intrinsics need Rust ≥ 1.89.
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use super::Isa;
use std::cell::RefCell;

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

/// Epilogue of a GEMM: `C = act(A·B (+ C if accumulate) + bias)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub act: Activation,
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
        rayon::current_num_threads(),
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
    use rayon::prelude::*;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    let c_span = (m - 1) * ldc + n;
    assert!(
        batch == 1 || stride_c >= c_span,
        "sgemm_batched: C matrices overlap (stride_c {stride_c} < {c_span})"
    );
    let a_at = |t: usize| &a[(t * stride_a).min(a.len())..];
    let b_at = |t: usize| &b[(t * stride_b).min(b.len())..];
    let threads = rayon::current_num_threads();
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

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

/// Below this many flops a GEMM runs on the calling thread.
const PAR_MIN_FLOPS: f64 = 1.5e6;

/// Epilogue of one register tile, as raw pointers already offset to the tile.
#[derive(Clone, Copy)]
struct TileEp {
    /// Add the current C values (accumulate, or a later depth block).
    load_c: bool,
    relu: bool,
    /// Bias of the tile's row 0 (null: none).
    bias_row: *const f32,
    /// Bias of the tile's column 0 (null: none).
    bias_col: *const f32,
}

/// `C[mr×nr] = ep(A_panel · B_panel)`: `a` is a packed micro-panel (`k` steps of `mr` values),
/// `b` holds `k` rows of NR values at stride `ldb` (zero padded past `nr`).
type KernelFn = unsafe fn(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    ep: &TileEp,
);

/// Packs `kb` rows × `nb` columns of B into NR-wide micro-panels.
type PackBFn =
    unsafe fn(kb: usize, nb: usize, b: *const f32, rsb: usize, csb: usize, out: *mut f32);
/// Packs `mb` rows × `kb` columns of A into `mr`-tall micro-panels.
type PackAFn = unsafe fn(
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
struct Arch {
    /// Largest register tile height.
    mr: usize,
    /// Register tile width (packed B panel width).
    nr: usize,
    kc: usize,
    mc: usize,
    nc: usize,
    kernel: KernelFn,
    pack_a: PackAFn,
    pack_b: PackBFn,
    /// Wider register tile for short tiles over unpacked B (0: none): the kernel accepts
    /// `nr` up to `wide_nr` when `mr <= wide_mr`.
    wide_nr: usize,
    wide_mr: usize,
    /// Unpacked dot-product kernel for `A·Bᵀ`-like layouts (A rows and B columns contiguous
    /// in k) with a small output and a long depth.
    dot: Option<DotFn>,
}

/// `out[i*ldo + j] += Σ_p A(i,p)·B(p,j)` for the whole `m×n` output over `kb` depth steps,
/// with `A(i,p) = a[i*rsa + p]` and `B(p,j) = b[j*csb + p]`.
type DotFn = unsafe fn(
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
const DOT_MAX_MN: usize = 4096;
/// ...and from this depth on.
const DOT_MIN_K: usize = 256;
/// ...or when one side of the output is at most this short (the other operand is then
/// streamed once instead of being packed for few uses).
const DOT_MAX_SHORT: usize = 8;
/// Depth chunk of the dot-product path (A and B rows of this length stay in L2).
const DOT_KC: usize = 4096;

fn hw_isa(wanted: Isa) -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if wanted >= Isa::Avx512
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx512vl")
            && has!("fma")
        {
            return Isa::Avx512;
        }
        if wanted >= Isa::Avx2 && has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    let _ = wanted;
    Isa::Scalar
}

fn arch_for(isa: Isa) -> Arch {
    match hw_isa(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Arch {
            mr: x86::AVX512_MR,
            nr: 32,
            kc: 384,
            mc: 192,
            nc: 512,
            kernel: x86::kernel_avx512,
            pack_a: x86::pack_a_avx512,
            pack_b: x86::pack_b_avx512,
            wide_nr: 64,
            wide_mr: 6,
            dot: Some(x86::dot_avx512),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Arch {
            mr: 6,
            nr: 16,
            kc: 384,
            mc: 192,
            nc: 512,
            kernel: x86::kernel_avx2,
            pack_a: x86::pack_a_avx2,
            pack_b: x86::pack_b_avx2,
            wide_nr: 0,
            wide_mr: 0,
            dot: None,
        },
        _ => Arch {
            mr: SCALAR_MR,
            nr: SCALAR_NR,
            kc: 256,
            mc: 128,
            nc: 512,
            kernel: kernel_scalar,
            pack_a: pack_a_generic,
            pack_b: pack_b_generic::<SCALAR_NR>,
            wide_nr: 0,
            wide_mr: 0,
            dot: None,
        },
    }
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
                relu,
            );
        }
        return;
    }
    assert!(
        span(a.len(), rsa, csa, m, k).is_some_and(|s| s <= a.len()),
        "sgemm: A slice too short for m={m} k={k} rsa={rsa} csa={csa}"
    );
    assert!(
        span(b.len(), rsb, csb, k, n).is_some_and(|s| s <= b.len()),
        "sgemm: B slice too short for k={k} n={n} rsb={rsb} csb={csb}"
    );
    let arch = arch_for(isa);
    let job = Job {
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
        relu,
    };
    // SAFETY: all pointers and extents were validated above; `run` only touches
    // A[0..m, 0..k], B[0..k, 0..n], C[0..m, 0..n] and bias[0..m or n].
    unsafe { job.run(threads, m, n, k) }
}

/// Applies `C = act((accumulate ? C : 0) + bias)` (the k = 0 case).
unsafe fn epilogue_only(
    m: usize,
    n: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias_row: *const f32,
    bias_col: *const f32,
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
                if relu {
                    v = v.max(0.0);
                }
                *dst = v;
            }
        }
    }
}

/// A validated GEMM, as raw pointers (shared by the worker threads).
#[derive(Clone, Copy)]
struct Job {
    arch: Arch,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    bias_row: *const f32,
    bias_col: *const f32,
    relu: bool,
}

// SAFETY: the pointers refer to slices borrowed for the whole call; worker threads write
// disjoint parts of C (or private buffers) and only read A, B and the bias.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

/// Rows per register tile for `m` rows: as large as allowed, balanced over the tiles.
#[inline]
fn tile_rows(m: usize, mr_max: usize) -> usize {
    let tiles = m.div_ceil(mr_max);
    m.div_ceil(tiles)
}

#[inline]
fn ceil_div_f(a: usize, b: usize) -> f64 {
    a.div_ceil(b) as f64
}

impl Job {
    /// This job restricted to rows `i0..` and columns `j0..` of C.
    unsafe fn sub(&self, i0: usize, j0: usize) -> Job {
        unsafe {
            Job {
                a: self.a.add(i0 * self.rsa),
                b: self.b.add(j0 * self.csb),
                c: self.c.add(i0 * self.ldc + j0),
                bias_row: if self.bias_row.is_null() {
                    self.bias_row
                } else {
                    self.bias_row.add(i0)
                },
                bias_col: if self.bias_col.is_null() {
                    self.bias_col
                } else {
                    self.bias_col.add(j0)
                },
                ..*self
            }
        }
    }

    unsafe fn run(&self, threads: usize, m: usize, n: usize, k: usize) {
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        if let Some(dot) = self.arch.dot {
            if self.csa == 1
                && self.rsb == 1
                && (m * n <= DOT_MAX_MN || n <= DOT_MAX_SHORT)
                && k >= DOT_MIN_K
            {
                unsafe { self.run_dot(dot, threads, m, n, k) };
                return;
            }
        }
        if threads <= 1 || flops < PAR_MIN_FLOPS {
            unsafe { self.run_serial(m, n, k) };
            return;
        }
        let ar = &self.arch;
        let mr = tile_rows(m, ar.mr);
        let mt = m.div_ceil(mr);
        let nt = n.div_ceil(ar.nr);
        if mt * nt < threads {
            if k >= 256 * threads {
                unsafe { self.run_ksplit(threads, m, n, k) };
            } else {
                unsafe { self.run_serial(m, n, k) };
            }
            return;
        }
        // Choose a tm×tn grid of tasks (at least `threads`) minimising
        // rounds × (compute + packing) of the largest task.
        let max_tasks = (threads * 4).min(mt * nt);
        let mut best = (f64::INFINITY, 1, 1);
        for tm in 1..=mt.min(max_tasks) {
            for tn in 1..=nt.min(max_tasks / tm) {
                let tasks = tm * tn;
                if tasks < threads {
                    continue;
                }
                let rows = mt.div_ceil(tm) * mr;
                let cols = nt.div_ceil(tn) * ar.nr;
                let rounds = ceil_div_f(tasks, threads);
                let compute = rows as f64 * cols as f64;
                // Packing A once per NC block of columns, B once; a packed element costs
                // about as much as 8 multiply-adds.
                let pack = 8.0 * (rows as f64 * ceil_div_f(cols, ar.nc) + cols as f64);
                // A small bonus for more tasks than threads (load balance under noise).
                let cost = rounds * (compute + pack) * (1.0 + 0.02 * rounds);
                if cost < best.0 {
                    best = (cost, tm, tn);
                }
            }
        }
        let (_, tm, tn) = best;
        let rows_per = mt.div_ceil(tm) * mr;
        let cols_per = nt.div_ceil(tn) * ar.nr;
        let tm = m.div_ceil(rows_per);
        let tn = n.div_ceil(cols_per);
        let job = *self;
        use rayon::prelude::*;
        (0..tm * tn)
            .into_par_iter()
            .with_max_len(1)
            .for_each(move |t| {
                let (ti, tj) = (t / tn, t % tn);
                let i0 = ti * rows_per;
                let j0 = tj * cols_per;
                let mb = rows_per.min(m - i0);
                let nb = cols_per.min(n - j0);
                // SAFETY: disjoint C rectangles inside the validated extents.
                unsafe { job.sub(i0, j0).run_serial(mb, nb, k) };
            });
    }

    /// The unpacked dot-product path: depth split over the threads into private partial
    /// sums, then one pass adds them into C with the epilogue.
    unsafe fn run_dot(&self, dot: DotFn, threads: usize, m: usize, n: usize, k: usize) {
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let threads = if flops >= PAR_MIN_FLOPS { threads } else { 1 };
        // Tall outputs with a modest depth split over rows, the rest over the depth.
        let row_split = threads > 1 && m >= 48 * threads && k < 2048;
        let kparts = if row_split {
            1
        } else {
            threads.min(k / 256).max(1)
        };
        let chunk = k.div_ceil(kparts).next_multiple_of(16);
        let kparts = k.div_ceil(chunk);
        let mn = m * n;
        let mut partial = vec![0.0f32; kparts * mn];
        let pbase = SendPtr(partial.as_mut_ptr());
        let job = *self;
        let rows_per = if row_split {
            m.div_ceil(threads * 4).next_multiple_of(12)
        } else {
            m
        };
        let rparts = m.div_ceil(rows_per);
        let work = move |t: usize| {
            let (kt, rt) = (t % kparts, t / kparts);
            let i0 = rt * rows_per;
            let rows = rows_per.min(m - i0);
            // SAFETY: each task owns its rows of its depth part's buffer; extents validated
            // by the caller.
            unsafe {
                job.sub(i0, 0).dot_part(
                    dot,
                    kt * chunk,
                    ((kt + 1) * chunk).min(k),
                    rows,
                    n,
                    pbase.get().add(kt * mn + i0 * n),
                )
            };
        };
        if kparts * rparts == 1 {
            work(0);
        } else {
            use rayon::prelude::*;
            (0..kparts * rparts)
                .into_par_iter()
                .with_max_len(1)
                .for_each(work);
        }
        let parts = kparts;
        for i in 0..m {
            for j in 0..n {
                let mut v = 0.0;
                for t in 0..parts {
                    v += partial[t * mn + i * n + j];
                }
                unsafe {
                    let dst = self.c.add(i * self.ldc + j);
                    if self.accumulate {
                        v += *dst;
                    }
                    if !self.bias_row.is_null() {
                        v += *self.bias_row.add(i);
                    }
                    if !self.bias_col.is_null() {
                        v += *self.bias_col.add(j);
                    }
                    if self.relu {
                        v = v.max(0.0);
                    }
                    *dst = v;
                }
            }
        }
    }

    unsafe fn dot_part(&self, dot: DotFn, p0: usize, pe: usize, m: usize, n: usize, out: *mut f32) {
        let mut p = p0;
        while p < pe {
            let kb = DOT_KC.min(pe - p);
            unsafe {
                dot(
                    m,
                    n,
                    kb,
                    self.a.add(p),
                    self.rsa,
                    self.b.add(p),
                    self.csb,
                    out,
                    n,
                )
            };
            p += kb;
        }
    }

    /// Splits the depth over the threads; partial products go to private buffers and are
    /// summed into C with the epilogue at the end.
    unsafe fn run_ksplit(&self, threads: usize, m: usize, n: usize, k: usize) {
        let parts = threads.min(k / 128).max(1);
        let chunk = k.div_ceil(parts).next_multiple_of(16);
        let parts = k.div_ceil(chunk);
        let mut partial = vec![0.0f32; (parts - 1) * m * n];
        let job = *self;
        let pbase = SendPtr(partial.as_mut_ptr());
        use rayon::prelude::*;
        (0..parts)
            .into_par_iter()
            .with_max_len(1)
            .for_each(move |t| {
                let p0 = t * chunk;
                let kb = chunk.min(k - p0);
                let mut sub = job;
                unsafe {
                    sub.a = job.a.add(p0 * job.csa);
                    sub.b = job.b.add(p0 * job.rsb);
                }
                sub.bias_row = std::ptr::null();
                sub.bias_col = std::ptr::null();
                sub.relu = false;
                if t > 0 {
                    sub.c = unsafe { pbase.get().add((t - 1) * m * n) };
                    sub.ldc = n;
                    sub.accumulate = false;
                }
                unsafe { sub.run_serial(m, n, kb) };
            });
        for i in 0..m {
            for j in 0..n {
                unsafe {
                    let dst = self.c.add(i * self.ldc + j);
                    let mut v = *dst;
                    for t in 1..parts {
                        v += partial[(t - 1) * m * n + i * n + j];
                    }
                    if !self.bias_row.is_null() {
                        v += *self.bias_row.add(i);
                    }
                    if !self.bias_col.is_null() {
                        v += *self.bias_col.add(j);
                    }
                    if self.relu {
                        v = v.max(0.0);
                    }
                    *dst = v;
                }
            }
        }
    }

    /// The blocked algorithm on the calling thread.
    unsafe fn run_serial(&self, m: usize, n: usize, k: usize) {
        PACK_BUFS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => {
                let bufs = &mut *bufs;
                unsafe { self.blocked(m, n, k, &mut bufs.0, &mut bufs.1) }
            }
            Err(_) => {
                let (mut ba, mut bb) = (AlignedBuf::default(), AlignedBuf::default());
                unsafe { self.blocked(m, n, k, &mut ba, &mut bb) }
            }
        });
    }

    unsafe fn blocked(
        &self,
        m: usize,
        n: usize,
        k: usize,
        abuf: &mut AlignedBuf,
        bbuf: &mut AlignedBuf,
    ) {
        let ar = self.arch;
        let mr = tile_rows(m, ar.mr);
        let nr = ar.nr;
        let mc = (ar.mc / mr).max(1) * mr;
        let kc = ar.kc;
        let nc = ar.nc;
        // Read B in place when it is row-contiguous and few row panels use each of its
        // elements.
        let direct_b = self.csb == 1 && m <= 2 * ar.mr;
        let kc_eff = kc.min(k);
        let mc_eff = mc.min(m.div_ceil(mr) * mr);
        let nc_eff = nc.min(n.div_ceil(nr) * nr);
        let ap = abuf.get(mc_eff * kc_eff);
        let bp = bbuf.get(kc_eff * if direct_b { nr } else { nc_eff });
        let mut jc = 0;
        while jc < n {
            let nb = nc.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kb = kc.min(k - pc);
                let first = pc == 0;
                let last = pc + kb == k;
                let bsrc = unsafe { self.b.add(pc * self.rsb + jc * self.csb) };
                if direct_b {
                    // Only a partial last panel needs a (padded) copy.
                    let rem = nb % nr;
                    if rem != 0 {
                        unsafe { (ar.pack_b)(kb, rem, bsrc.add(nb - rem), self.rsb, self.csb, bp) };
                    }
                } else {
                    unsafe { (ar.pack_b)(kb, nb, bsrc, self.rsb, self.csb, bp) };
                }
                let mut ic = 0;
                while ic < m {
                    let mb = mc.min(m - ic);
                    unsafe {
                        (ar.pack_a)(
                            mb,
                            kb,
                            self.a.add(ic * self.rsa + pc * self.csa),
                            self.rsa,
                            self.csa,
                            mr,
                            ap,
                        )
                    };
                    let mut ep = TileEp {
                        load_c: self.accumulate || !first,
                        relu: last && self.relu,
                        bias_row: std::ptr::null(),
                        bias_col: std::ptr::null(),
                    };
                    if direct_b {
                        // jr outer: the B panel (kb×NR) stays in L1 for all row panels.
                        let mut jr = 0;
                        while jr < nb {
                            // Short tiles take wider panels (more work per kernel call).
                            let step =
                                if ar.wide_nr > 0 && mr <= ar.wide_mr && nb - jr >= ar.wide_nr {
                                    ar.wide_nr
                                } else {
                                    nr
                                };
                            let w = step.min(nb - jr);
                            let (bpan, ldb) = if w == step {
                                (unsafe { bsrc.add(jr) }, self.rsb)
                            } else {
                                (bp as *const f32, nr)
                            };
                            let mut ir = 0;
                            while ir < mb {
                                let h = mr.min(mb - ir);
                                unsafe {
                                    self.tile_ep(&mut ep, last, ic + ir, jc + jr);
                                    (ar.kernel)(
                                        kb,
                                        ap.add(ir * kb),
                                        bpan,
                                        ldb,
                                        self.c.add((ic + ir) * self.ldc + jc + jr),
                                        self.ldc,
                                        h,
                                        w,
                                        &ep,
                                    );
                                }
                                ir += mr;
                            }
                            jr += step;
                        }
                    } else {
                        // ir outer: the A micro-panel (MR×kb) stays in L1, B panels stream
                        // from L2.
                        let mut ir = 0;
                        while ir < mb {
                            let h = mr.min(mb - ir);
                            let apan = unsafe { ap.add(ir * kb) };
                            let mut jr = 0;
                            while jr < nb {
                                let w = nr.min(nb - jr);
                                unsafe {
                                    self.tile_ep(&mut ep, last, ic + ir, jc + jr);
                                    (ar.kernel)(
                                        kb,
                                        apan,
                                        bp.add(jr * kb),
                                        nr,
                                        self.c.add((ic + ir) * self.ldc + jc + jr),
                                        self.ldc,
                                        h,
                                        w,
                                        &ep,
                                    );
                                }
                                jr += nr;
                            }
                            ir += mr;
                        }
                    }
                    ic += mb;
                }
                pc += kb;
            }
            jc += nb;
        }
    }

    #[inline(always)]
    unsafe fn tile_ep(&self, ep: &mut TileEp, last: bool, i: usize, j: usize) {
        if last {
            unsafe {
                if !self.bias_row.is_null() {
                    ep.bias_row = self.bias_row.add(i);
                }
                if !self.bias_col.is_null() {
                    ep.bias_col = self.bias_col.add(j);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to worker threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// A growable f32 buffer whose usable part starts on a 64-byte boundary.
#[derive(Default)]
struct AlignedBuf {
    v: Vec<f32>,
}

impl AlignedBuf {
    fn get(&mut self, len: usize) -> *mut f32 {
        if self.v.len() < len + 16 {
            self.v = vec![0.0; len + 16];
        }
        let p = self.v.as_mut_ptr();
        let off = p.align_offset(64);
        // SAFETY: off < 16 for a 4-aligned pointer, and the buffer has 16 spare elements.
        unsafe { p.add(if off < 16 { off } else { 0 }) }
    }
}

thread_local! {
    static PACK_BUFS: RefCell<(AlignedBuf, AlignedBuf)> =
        RefCell::new((AlignedBuf::default(), AlignedBuf::default()));
}

// ---------------------------------------------------------------------------------------------
// Packing (portable; the x86 paths instantiate these under their target features)
// ---------------------------------------------------------------------------------------------

/// Packs `mb×kb` of A into micro-panels of `mr` rows (the last one may be shorter; each panel
/// is `kb` steps of its row count, contiguous, panel `t` starting at `t*mr*kb`).
#[inline(always)]
unsafe fn pack_a_impl(
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
unsafe fn pack_b_impl<const NR: usize>(
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

unsafe fn pack_a_generic(
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

unsafe fn pack_b_generic<const NR: usize>(
    kb: usize,
    nb: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    out: *mut f32,
) {
    unsafe { pack_b_impl::<NR>(kb, nb, b, rsb, csb, out) }
}

// ---------------------------------------------------------------------------------------------
// Scalar micro-kernel
// ---------------------------------------------------------------------------------------------

const SCALAR_MR: usize = 4;
const SCALAR_NR: usize = 16;

#[inline(always)]
unsafe fn store_tile_scalar(
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
                if ep.relu {
                    v = v.max(0.0);
                }
                *dst = v;
            }
        }
    }
}

#[inline(always)]
unsafe fn kernel_scalar_r<const R: usize>(
    k: usize,
    a: *const f32,
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
                let av = *a.add(p * R + i);
                for j in 0..SCALAR_NR {
                    acc[i][j] += av * bv[j];
                }
            }
        }
    }
    let flat: &[f32] = acc.as_flattened();
    unsafe { store_tile_scalar(flat, SCALAR_NR, R, nr, c, ldc, ep) };
}

unsafe fn kernel_scalar(
    k: usize,
    a: *const f32,
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
            1 => kernel_scalar_r::<1>(k, a, b, ldb, c, ldc, nr, ep),
            2 => kernel_scalar_r::<2>(k, a, b, ldb, c, ldc, nr, ep),
            3 => kernel_scalar_r::<3>(k, a, b, ldb, c, ldc, nr, ep),
            _ => kernel_scalar_r::<4>(k, a, b, ldb, c, ldc, nr, ep),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// x86-64 micro-kernels
// ---------------------------------------------------------------------------------------------

// The AVX-512 intrinsics are stable since Rust 1.89 (the workspace's declared MSRV is older).
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod x86 {
    use super::TileEp;
    use std::arch::x86_64::*;

    pub(super) const AVX512_MR: usize = 12;

    /// AVX-512 tile of R rows × 16·NV columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
    unsafe fn k512<const R: usize, const NV: usize>(
        k: usize,
        a: *const f32,
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
            }
            let mut acc = [[_mm512_setzero_ps(); NV]; R];
            let mut ap = a;
            let mut bp = b;
            let step = |ap: *const f32, bp: *const f32, acc: &mut [[__m512; NV]; R]| {
                let mut bv = [_mm512_setzero_ps(); NV];
                for v in 0..NV {
                    bv[v] = _mm512_loadu_ps(bp.add(16 * v));
                }
                for i in 0..R {
                    let av = _mm512_set1_ps(*ap.add(i));
                    for v in 0..NV {
                        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                    }
                }
            };
            for _ in 0..k {
                step(ap, bp, &mut acc);
                ap = ap.add(R);
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

    macro_rules! dispatch_rows {
        ($f:ident, $nv:literal, $mr:expr, [$($r:literal)*], $args:tt) => {
            match $mr {
                $($r => $f::<$r, $nv> $args,)*
                _ => unreachable!(),
            }
        };
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
    pub(super) unsafe fn kernel_avx512(
        k: usize,
        a: *const f32,
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
                dispatch_rows!(k512, 4, mr, [1 2 3 4 5 6], (k, a, b, ldb, c, ldc, nr, ep))
            } else if nr > 16 {
                dispatch_rows!(k512, 2, mr, [1 2 3 4 5 6 7 8 9 10 11 12], (k, a, b, ldb, c, ldc, nr, ep))
            } else {
                dispatch_rows!(k512, 1, mr, [1 2 3 4 5 6 7 8 9 10 11 12], (k, a, b, ldb, c, ldc, nr, ep))
            }
        }
    }

    /// Transposes a 16×16 block held as 16 row vectors.
    #[inline(always)]
    unsafe fn transpose16(r: &mut [__m512; 16]) {
        unsafe {
            let mut t = [_mm512_setzero_ps(); 16];
            for g in 0..8 {
                t[2 * g] = _mm512_unpacklo_ps(r[2 * g], r[2 * g + 1]);
                t[2 * g + 1] = _mm512_unpackhi_ps(r[2 * g], r[2 * g + 1]);
            }
            // u[4g + e]: in 128-bit lane L, rows 4g..4g+4 of column 4L + e.
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
                let pd = _mm512_castps_pd;
                u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
                u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
                u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
                u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
            }
            for e in 0..4 {
                let v = _mm512_shuffle_f32x4::<0x88>(u[e], u[4 + e]);
                let w = _mm512_shuffle_f32x4::<0xDD>(u[e], u[4 + e]);
                let x = _mm512_shuffle_f32x4::<0x88>(u[8 + e], u[12 + e]);
                let y = _mm512_shuffle_f32x4::<0xDD>(u[8 + e], u[12 + e]);
                r[e] = _mm512_shuffle_f32x4::<0x88>(v, x);
                r[8 + e] = _mm512_shuffle_f32x4::<0xDD>(v, x);
                r[4 + e] = _mm512_shuffle_f32x4::<0x88>(w, y);
                r[12 + e] = _mm512_shuffle_f32x4::<0xDD>(w, y);
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
            return unsafe { super::pack_a_impl(mb, kb, a, rsa, csa, mr, out) };
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
            return unsafe { super::pack_b_impl::<NR>(kb, nb, b, rsb, csb, out) };
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

    #[inline(always)]
    unsafe fn dot_tiles<const R: usize, const C: usize>(
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
            for j in 0..C {
                bc[j] = unsafe { b.add((j0 + j.min(vc - 1)) * csb) };
            }
            (bc, vc)
        };
        let row_ptrs = |i0: usize| {
            let vr = R.min(m - i0);
            let mut ar = [a; R];
            for i in 0..R {
                ar[i] = unsafe { a.add((i0 + i.min(vr - 1)) * rsa) };
            }
            (ar, vr)
        };
        if m > n {
            for i0 in (0..m).step_by(R) {
                let (ar, vr) = row_ptrs(i0);
                for j0 in (0..n).step_by(C) {
                    let (bc, vc) = col_ptrs(j0);
                    unsafe { dot_tile::<R, C>(kb, &ar, &bc, out.add(i0 * ldo + j0), ldo, vr, vc) };
                }
            }
        } else {
            for j0 in (0..n).step_by(C) {
                let (bc, vc) = col_ptrs(j0);
                for i0 in (0..m).step_by(R) {
                    let (ar, vr) = row_ptrs(i0);
                    unsafe { dot_tile::<R, C>(kb, &ar, &bc, out.add(i0 * ldo + j0), ldo, vr, vc) };
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
        let mut best = (usize::MAX, 0);
        for (s, &(r, c)) in SHAPES.iter().enumerate() {
            let cost = m.div_ceil(r) * n.div_ceil(c) * (2 * r * c + r + c);
            if cost < best.0 {
                best = (cost, s);
            }
        }
        unsafe {
            match best.1 {
                0 => dot_tiles::<4, 6>(m, n, kb, a, rsa, b, csb, out, ldo),
                1 => dot_tiles::<6, 4>(m, n, kb, a, rsa, b, csb, out, ldo),
                2 => dot_tiles::<3, 8>(m, n, kb, a, rsa, b, csb, out, ldo),
                3 => dot_tiles::<8, 3>(m, n, kb, a, rsa, b, csb, out, ldo),
                4 => dot_tiles::<2, 12>(m, n, kb, a, rsa, b, csb, out, ldo),
                _ => dot_tiles::<12, 2>(m, n, kb, a, rsa, b, csb, out, ldo),
            }
        }
    }

    // ---- AVX2 + FMA ----

    static MASK_SRC: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    /// AVX2 tile of R rows × 8·NV columns.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn k256<const R: usize, const NV: usize>(
        k: usize,
        a: *const f32,
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
                ap = ap.add(R);
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
                dispatch_rows!(k256, 2, mr, [1 2 3 4 5 6], (k, a, b, ldb, c, ldc, nr, ep))
            } else {
                dispatch_rows!(k256, 1, mr, [1 2 3 4 5 6], (k, a, b, ldb, c, ldc, nr, ep))
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
        unsafe { super::pack_a_impl(mb, kb, a, rsa, csa, mr, out) }
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
        unsafe { super::pack_b_impl::<16>(kb, nb, b, rsb, csb, out) }
    }

    // ---- FMA throughput probes for measure_peak_gflops ----

    const CHAINS: usize = 24;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_probe_512(iters: u64) -> f32 {
        let x = _mm512_set1_ps(0.999_999);
        let y = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_probe_256(iters: u64) -> f32 {
        let x = _mm256_set1_ps(0.999_999);
        let y = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for _ in 0..2 {
                for a in acc.iter_mut() {
                    *a = _mm256_fmadd_ps(*a, x, y);
                }
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }

    /// Flops of one probe iteration.
    pub(super) const PROBE512_FLOPS: f64 = (CHAINS * 16 * 2) as f64;
    pub(super) const PROBE256_FLOPS: f64 = (2 * 12 * 8 * 2) as f64;
}

// ---------------------------------------------------------------------------------------------
// Peak measurement
// ---------------------------------------------------------------------------------------------

/// Measures the machine's FP32 multiply-add peak in GFLOP/s with `threads` threads running
/// independent FMA chains in registers (widest vectors this CPU has). Takes about 0.2 s.
pub fn measure_peak_gflops(threads: usize) -> f64 {
    use std::time::{Duration, Instant};
    let threads = threads.max(1);
    let isa = hw_isa(Isa::Avx512);
    // One probe call: returns flops done.
    let probe = move |iters: u64| -> f64 {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: feature checked by hw_isa.
                std::hint::black_box(unsafe { x86::fma_probe_512(iters) });
                iters as f64 * x86::PROBE512_FLOPS
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: feature checked by hw_isa.
                std::hint::black_box(unsafe { x86::fma_probe_256(iters) });
                iters as f64 * x86::PROBE256_FLOPS
            }
            _ => {
                let mut acc = [1.0f32; 64];
                for _ in 0..iters {
                    for a in acc.iter_mut() {
                        *a = *a * 0.999_999 + 1e-7;
                    }
                    acc = std::hint::black_box(acc);
                }
                std::hint::black_box(acc);
                iters as f64 * 128.0
            }
        }
    };
    // Calibrate a chunk of about 2 ms.
    let mut chunk = 1000u64;
    loop {
        let t = Instant::now();
        probe(chunk);
        let e = t.elapsed();
        if e >= Duration::from_millis(2) || chunk > (1 << 40) {
            break;
        }
        chunk *= 2;
    }
    let run_for = Duration::from_millis(60);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let barrier = std::sync::Barrier::new(threads);
        let rates: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let t = Instant::now();
                        let mut flops = 0.0;
                        while t.elapsed() < run_for {
                            flops += probe(chunk);
                        }
                        flops / t.elapsed().as_secs_f64()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).collect()
        });
        let total: f64 = rates.iter().sum::<f64>() / 1e9;
        best = best.max(total);
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1).
    fn fill(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        if hw_isa(Isa::Avx2) >= Isa::Avx2 {
            v.push(Isa::Avx2);
        }
        if hw_isa(Isa::Avx512) >= Isa::Avx512 {
            v.push(Isa::Avx512);
        }
        v
    }

    #[allow(clippy::type_complexity)]
    fn check(
        isa: Isa,
        threads: usize,
        m: usize,
        n: usize,
        k: usize,
        trans_a: bool,
        trans_b: bool,
        accumulate: bool,
        bias_kind: u8,
        relu: bool,
    ) {
        let seed = (m * 131 + n * 31 + k * 7) as u64 + bias_kind as u64;
        // A stored row-major (m×k, ld k+1) or column-major (k×m, ld m+2).
        let (a, rsa, csa) = if trans_a {
            (fill((m + 2) * k.max(1), seed), 1, m + 2)
        } else {
            (fill(m * (k + 1), seed + 1), k + 1, 1)
        };
        let (b, rsb, csb) = if trans_b {
            (fill((k + 3) * n, seed + 2), 1, k + 3)
        } else {
            (fill(k.max(1) * (n + 1), seed + 3), n + 1, 1)
        };
        let ldc = n + 5;
        let c0 = fill(m * ldc, seed + 4);
        let bias_row = fill(m, seed + 5);
        let bias_col = fill(n, seed + 6);
        let bias = match bias_kind {
            0 => Bias::None,
            1 => Bias::PerRow(&bias_row),
            _ => Bias::PerCol(&bias_col),
        };
        let act = if relu {
            Activation::Relu
        } else {
            Activation::None
        };
        let mut c = c0.clone();
        sgemm_isa(
            isa,
            threads,
            m,
            n,
            k,
            &a,
            rsa,
            csa,
            &b,
            rsb,
            csb,
            &mut c,
            ldc,
            accumulate,
            Epilogue { bias, act },
        );
        let tol = 1e-5 * (k.max(1) as f64).sqrt() * 4.0;
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                let mut mag = 0.0f64;
                for p in 0..k {
                    let x = a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
                    s += x;
                    mag += x.abs();
                }
                if accumulate {
                    s += c0[i * ldc + j] as f64;
                }
                match bias_kind {
                    0 => {}
                    1 => s += bias_row[i] as f64,
                    _ => s += bias_col[j] as f64,
                }
                if relu {
                    s = s.max(0.0);
                }
                let got = c[i * ldc + j] as f64;
                let scale = 1.0 + mag;
                assert!(
                    (got - s).abs() <= tol * scale,
                    "{isa:?} t={threads} m={m} n={n} k={k} ta={trans_a} tb={trans_b} \
                     acc={accumulate} bias={bias_kind} relu={relu}: C[{i},{j}] = {got}, want {s}"
                );
            }
            // Padding between rows untouched.
            for j in n..ldc {
                assert_eq!(
                    c[i * ldc + j],
                    c0[i * ldc + j],
                    "padding written at ({i},{j})"
                );
            }
        }
    }

    #[test]
    fn all_isas_odd_sizes() {
        let sizes = [1usize, 7, 15, 17, 33, 100];
        for isa in isas() {
            let mut case = 0usize;
            for &m in &sizes {
                for &n in &sizes {
                    for &k in &sizes {
                        case += 1;
                        let ta = matches!(case % 2, 0);
                        let tb = matches!(case % 3, 0);
                        let acc = case % 5 < 2;
                        let bias = (case % 3) as u8;
                        let relu = case % 4 == 1;
                        check(isa, 1, m, n, k, ta, tb, acc, bias, relu);
                    }
                }
            }
        }
    }

    #[test]
    fn all_isas_all_layouts_and_epilogues() {
        for isa in isas() {
            for ta in [false, true] {
                for tb in [false, true] {
                    for acc in [false, true] {
                        for bias in 0..3u8 {
                            for relu in [false, true] {
                                check(isa, 1, 17, 33, 15, ta, tb, acc, bias, relu);
                                check(isa, 2, 33, 100, 7, ta, tb, acc, bias, relu);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_dims_one_at_a_time() {
        for isa in isas() {
            // One or two dimensions at 1000, across KC/MC/NC block edges; threaded too.
            check(isa, 2, 1000, 17, 33, false, false, false, 1, true);
            check(isa, 2, 15, 1000, 100, true, false, true, 2, false);
            check(isa, 2, 7, 33, 1000, false, true, true, 0, true);
            check(isa, 2, 1, 1, 1000, true, true, false, 2, false);
            check(isa, 2, 100, 1000, 7, false, false, true, 1, false);
            check(isa, 2, 100, 17, 1000, true, false, false, 2, true);
            check(isa, 2, 17, 100, 1000, false, true, true, 1, false);
            check(isa, 1, 1000, 100, 15, true, true, false, 0, true);
        }
    }

    #[test]
    fn threaded_grid_and_ksplit() {
        for isa in isas() {
            // Grid over m and n.
            check(isa, 2, 200, 300, 64, false, false, false, 2, true);
            check(isa, 3, 97, 130, 100, true, true, true, 1, false);
            // Single output tile, long depth: split over k.
            check(isa, 2, 6, 25, 4000, false, true, false, 1, true);
            check(isa, 2, 6, 25, 4000, true, false, true, 2, false);
            check(isa, 4, 3, 5, 3000, false, false, true, 0, false);
            // Dot-product path split over rows (tall output, short n).
            check(isa, 2, 300, 5, 700, false, true, true, 1, true);
            check(isa, 2, 1000, 3, 300, false, true, false, 2, false);
        }
    }

    #[test]
    fn k_zero_applies_epilogue() {
        for isa in isas() {
            for acc in [false, true] {
                for bias in 0..3u8 {
                    check(isa, 1, 5, 9, 0, false, false, acc, bias, true);
                }
            }
        }
    }

    #[test]
    fn empty_is_noop() {
        let mut c = vec![3.0f32; 4];
        sgemm(
            0,
            2,
            3,
            &[],
            3,
            1,
            &[1.0; 6],
            2,
            1,
            &mut c,
            2,
            false,
            Epilogue::default(),
        );
        sgemm(
            2,
            0,
            3,
            &[1.0; 6],
            3,
            1,
            &[],
            0,
            1,
            &mut c,
            2,
            false,
            Epilogue::default(),
        );
        assert_eq!(c, vec![3.0; 4]);
    }

    #[test]
    fn public_entry_and_batched() {
        let (m, n, k, batch) = (9, 20, 13, 5);
        let a = fill(batch * m * k, 1);
        let b = fill(batch * k * n, 2);
        let bias = fill(m, 3);
        let ep = Epilogue {
            bias: Bias::PerRow(&bias),
            act: Activation::Relu,
        };
        let mut c = vec![0.0f32; batch * m * n];
        sgemm_batched(
            batch,
            m,
            n,
            k,
            &a,
            m * k,
            k,
            1,
            &b,
            k * n,
            n,
            1,
            &mut c,
            m * n,
            n,
            false,
            ep,
        );
        for t in 0..batch {
            let mut want = vec![0.0f32; m * n];
            sgemm(
                m,
                n,
                k,
                &a[t * m * k..],
                k,
                1,
                &b[t * k * n..],
                n,
                1,
                &mut want,
                n,
                false,
                ep,
            );
            assert_eq!(&c[t * m * n..(t + 1) * m * n], &want[..]);
        }
    }

    #[test]
    #[should_panic]
    fn short_slice_panics() {
        let mut c = vec![0.0f32; 4];
        sgemm(
            2,
            2,
            2,
            &[1.0; 3],
            2,
            1,
            &[1.0; 4],
            2,
            1,
            &mut c,
            2,
            false,
            Epilogue::default(),
        );
    }

    #[test]
    fn peak_probe_is_positive() {
        assert!(measure_peak_gflops(1) > 0.0);
    }
}
