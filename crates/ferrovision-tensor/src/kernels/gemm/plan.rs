//! Running a validated GEMM: the threading cost model (grid of output rectangles, depth
//! split, dot-product path) and the blocked loop nest with thread-local packing buffers.

use super::arch::{Arch, DotFn, TileEp, DOT_KC, DOT_MAX_MN, DOT_MAX_SHORT, DOT_MIN_K};
use crate::parallel::SendPtr;
use std::cell::RefCell;

/// Below this many flops a GEMM runs on the calling thread.
pub(super) const PAR_MIN_FLOPS: f64 = 1.5e6;

/// A validated GEMM, as raw pointers (shared by the worker threads).
#[derive(Clone, Copy)]
pub(super) struct Job {
    pub(super) arch: Arch,
    pub(super) a: *const f32,
    pub(super) rsa: usize,
    pub(super) csa: usize,
    pub(super) b: *const f32,
    pub(super) rsb: usize,
    pub(super) csb: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) accumulate: bool,
    pub(super) bias_row: *const f32,
    pub(super) bias_col: *const f32,
    /// Residual added after the bias (null: none), element (i, j) at `res[i*ldr + j]`.
    pub(super) res: *const f32,
    pub(super) ldr: usize,
    pub(super) relu: bool,
    /// A already packed ([`super::PanelLayout`]; null: packed on the fly): its panels, the
    /// packing's row count and the row of this job's row 0 in it.
    pub(super) ap: *const f32,
    pub(super) ap_m: usize,
    pub(super) ap_row: usize,
    /// B already in NR-wide panels ([`super::sgemm_b_panels`]; 0: strided B, packed on the
    /// fly): the distance between panels. Element (p, j) is then at
    /// `b[(j / nr)·bpanel + p·nr + j % nr]` (`rsb = nr`, `csb = 1`).
    pub(super) bpanel: usize,
}

// SAFETY: the pointers refer to slices borrowed for the whole call; worker threads write
// disjoint parts of C (or private buffers) and only read A, B and the bias.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

/// Rows per register tile for `m` rows: as large as allowed, balanced over the tiles.
#[inline]
pub(super) fn tile_rows(m: usize, mr_max: usize) -> usize {
    let tiles = m.div_ceil(mr_max);
    m.div_ceil(tiles)
}

#[inline]
pub(super) fn ceil_div_f(a: usize, b: usize) -> f64 {
    a.div_ceil(b) as f64
}

impl Job {
    /// This job restricted to rows `i0..` and columns `j0..` of C.
    unsafe fn sub(&self, i0: usize, j0: usize) -> Job {
        debug_assert!(self.bpanel == 0 || j0.is_multiple_of(self.arch.nr));
        unsafe {
            Job {
                a: self.a.add(i0 * self.rsa),
                // Column offsets of sub-jobs are whole panels.
                b: if self.bpanel > 0 {
                    self.b.add(j0 / self.arch.nr * self.bpanel)
                } else {
                    self.b.add(j0 * self.csb)
                },
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
                res: if self.res.is_null() {
                    self.res
                } else {
                    self.res.add(i0 * self.ldr + j0)
                },
                ap_row: self.ap_row + i0,
                ..*self
            }
        }
    }

    pub(super) unsafe fn run(&self, threads: usize, m: usize, n: usize, k: usize) {
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
        let mr = self.panel_rows(m);
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
        use crate::parallel::prelude::*;
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
            use crate::parallel::prelude::*;
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
                    if !self.res.is_null() {
                        v += *self.res.add(i * self.ldr + j);
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
        use crate::parallel::prelude::*;
        (0..parts)
            .into_par_iter()
            .with_max_len(1)
            .for_each(move |t| {
                let p0 = t * chunk;
                let kb = chunk.min(k - p0);
                let mut sub = job;
                // The packed panels are cut at KC, not at this split: pack on the fly.
                sub.ap = std::ptr::null();
                unsafe {
                    sub.a = job.a.add(p0 * job.csa);
                    sub.b = job.b.add(p0 * job.rsb);
                }
                sub.bias_row = std::ptr::null();
                sub.bias_col = std::ptr::null();
                sub.res = std::ptr::null();
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
                    if !self.res.is_null() {
                        v += *self.res.add(i * self.ldr + j);
                    }
                    if self.relu {
                        v = v.max(0.0);
                    }
                    *dst = v;
                }
            }
        }
    }

    /// Register tile height for `m` rows: the packed panels' (those of all `ap_m` rows) where A
    /// is packed.
    #[inline]
    fn panel_rows(&self, m: usize) -> usize {
        tile_rows(if self.ap.is_null() { m } else { self.ap_m }, self.arch.mr)
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
        let mr = self.panel_rows(m);
        let nr = ar.nr;
        let mc = (ar.mc / mr).max(1) * mr;
        let kc = ar.kc;
        let nc = ar.nc;
        // B given in panels is read where it is. Otherwise read B in place when it is
        // row-contiguous and few row panels use each of its elements.
        let b_panels = self.bpanel > 0;
        let direct_b = !b_panels && self.csb == 1 && m <= 2 * ar.mr;
        let prepacked = !self.ap.is_null();
        // Likewise A in place when each depth step's rows are contiguous (a transposed
        // operand: the input gradient's `Wᵀ`) and few column panels use each element: packing
        // it was 23 % of a 4608×64×512 product.
        let direct_a = !prepacked && self.rsa == 1 && n <= 2 * nr;
        // A row-major one (the forward pass's weights) too, with the ISA's row kernel (AVX-512:
        // 512×64×4608 1.19-1.25x, 64×16×576 1.4x, never slower on the shapes measured).
        let rows_kernel = ar
            .kernel_rows
            .filter(|_| !prepacked && !direct_a && self.csa == 1 && n <= 2 * nr);
        let direct_a = direct_a || rows_kernel.is_some();
        let kernel = rows_kernel.unwrap_or(ar.kernel);
        let kc_eff = kc.min(k);
        let mc_eff = mc.min(m.div_ceil(mr) * mr);
        let nc_eff = nc.min(n.div_ceil(nr) * nr);
        let ap = if prepacked || direct_a {
            std::ptr::null_mut()
        } else {
            abuf.get(mc_eff * kc_eff)
        };
        let bp = if b_panels {
            std::ptr::null_mut()
        } else {
            bbuf.get(kc_eff * if direct_b { nr } else { nc_eff })
        };
        let mut jc = 0;
        while jc < n {
            let nb = nc.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kb = kc.min(k - pc);
                let first = pc == 0;
                let last = pc + kb == k;
                // (Unused where B is in panels.)
                let bsrc = self.b.wrapping_add(pc * self.rsb + jc * self.csb);
                if b_panels {
                    // Read in place below.
                } else if direct_b {
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
                    // Panel `ir` of this block starts at `ap + ir·a_panel`, its depth steps
                    // `a_step` apart (`None`: packed, one panel's height).
                    let (ap, a_panel, a_step): (*const f32, usize, Option<usize>) = if prepacked {
                        // Depth block `pc` holds all `ap_m` rows' panels, `kb` steps each.
                        let ap = unsafe { self.ap.add(pc * self.ap_m + (self.ap_row + ic) * kb) };
                        (ap, kb, None)
                    } else if rows_kernel.is_some() {
                        let ap = self.a.wrapping_add(ic * self.rsa + pc * self.csa);
                        (ap, self.rsa, Some(self.rsa))
                    } else if direct_a {
                        let ap = self.a.wrapping_add(ic * self.rsa + pc * self.csa);
                        (ap, 1, Some(self.csa))
                    } else {
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
                        (ap, kb, None)
                    };
                    let mut ep = TileEp {
                        load_c: self.accumulate || !first,
                        relu: last && self.relu,
                        bias_row: std::ptr::null(),
                        bias_col: std::ptr::null(),
                        res: std::ptr::null(),
                        ldr: self.ldr,
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
                                    (kernel)(
                                        kb,
                                        ap.add(ir * a_panel),
                                        a_step.unwrap_or(h),
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
                            let apan = unsafe { ap.add(ir * a_panel) };
                            let a_step = a_step.unwrap_or(h);
                            let mut jr = 0;
                            while jr < nb {
                                let w = nr.min(nb - jr);
                                let bpan = if b_panels {
                                    // Panel (jc + jr) / nr, depth block pc.
                                    unsafe { self.b.add((jc + jr) / nr * self.bpanel + pc * nr) }
                                } else {
                                    unsafe { bp.add(jr * kb) as *const f32 }
                                };
                                unsafe {
                                    self.tile_ep(&mut ep, last, ic + ir, jc + jr);
                                    (kernel)(
                                        kb,
                                        apan,
                                        a_step,
                                        bpan,
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
                if !self.res.is_null() {
                    ep.res = self.res.add(i * self.ldr + j);
                }
            }
        }
    }
}

/// A growable f32 buffer whose usable part starts on a 64-byte boundary.
#[derive(Default)]
pub(super) struct AlignedBuf {
    pub(super) v: Vec<f32>,
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
