//! The engine's one way to run a loop on several threads.
//!
//! Every parallel loop of the workspace (kernels, ops, vision's RoI Align and COCO evaluation)
//! goes through this module. With the default cargo feature `threads` the loops run on rayon's
//! global pool; without it [`prelude`] provides the same method names (`par_chunks_mut`,
//! `par_iter`, `into_par_iter`, `reduce(identity, op)`, ...) over plain sequential iterators
//! and [`num_threads`] is 1, so a build without threads (e.g. for WASM) needs no change in the
//! calling code.
//!
//! # Determinism
//!
//! Results never depend on the thread count: the helpers below split work into chunks whose
//! results are written to disjoint outputs, and code that combines partial results picks the
//! sequential path when [`num_threads`] is 1. A build without `threads` therefore computes
//! exactly what a one-thread pool computes, and the ops' tests check that one thread and many
//! give the same values.
//!
//! # Helpers
//!
//! - [`par_chunk`]: the chunk length worth a task, or `None` when one thread is better.
//! - [`par_rows`]: whole rows of an output split into tasks.
//! - [`par_planes`]: consecutive planes of an output and an auxiliary buffer split into tasks.
//! - [`on_pool`]: runs a whole sequence of ops on a pool thread.
//! - [`SendPtr`]: a buffer's base pointer handed to tasks that write disjoint parts of it.

#[cfg(not(feature = "threads"))]
mod seq;

/// Parallel-iterator methods: rayon's with the `threads` feature, sequential twins without.
pub mod prelude {
    #[cfg(feature = "threads")]
    pub use rayon::prelude::*;

    #[cfg(not(feature = "threads"))]
    pub use super::seq::{
        IntoParallelIterator, IntoParallelRefIterator, ParallelSlice, ParallelSliceMut,
    };
}

use prelude::*;

/// A buffer's base pointer shared with tasks that each write their own disjoint part of it
/// (where the parts are not contiguous slices `par_chunks_mut` could hand out). The tasks'
/// `unsafe` blocks carry the disjointness argument.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only ever dereferenced by tasks writing disjoint regions (see the type's docs).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Number of threads parallel loops may use (rayon's pool size; 1 without `threads`).
pub fn num_threads() -> usize {
    #[cfg(feature = "threads")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "threads"))]
    {
        1
    }
}

/// Sets the number of threads. Works once, before the first parallel loop runs; later calls
/// return an error message. The default is the number of cores (or `RAYON_NUM_THREADS`).
/// Without the `threads` feature only `n = 1` is accepted.
pub fn set_num_threads(n: usize) -> Result<(), String> {
    #[cfg(feature = "threads")]
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| format!("set_num_threads({n}): {e}"))
    }
    #[cfg(not(feature = "threads"))]
    {
        if n == 1 {
            Ok(())
        } else {
            Err(format!(
                "set_num_threads({n}): built without the `threads` feature (one thread only)"
            ))
        }
    }
}

/// Runs `f` on a thread of the pool and returns its result (inline when already on one, or
/// without the `threads` feature). A sequence of many parallel ops (a replayed plan) started
/// from outside the pool otherwise hands every op to the pool and waits for it, two thread
/// wake-ups per op; from inside, the running worker takes its share of each op at once.
/// The caller's gradient mode carries over (`no_grad` is per thread); other thread-local
/// state (an active trace capture) does not. `f` runs with that state set afresh and restored
/// after: a pool thread that picks up `f` while it waits inside another job's op goes back to
/// that job's modes.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    {
        let grad = crate::autograd::is_grad_enabled();
        rayon::scope(|_| crate::autograd::isolated(grad, f))
    }
    #[cfg(not(feature = "threads"))]
    {
        f()
    }
}

/// Splits `len` items into chunks worth parallelising: `None` when one thread is better (one
/// thread available, or fewer than two tasks of `min_per_task` items).
pub fn par_chunk(len: usize, min_per_task: usize) -> Option<usize> {
    let threads = num_threads();
    if threads <= 1 || len < 2 * min_per_task {
        return None;
    }
    Some(len.div_ceil(threads).max(min_per_task))
}

/// [`par_rows`] runs on one thread below this many output elements...
const ROWS_PAR_MIN: usize = 1 << 16;
/// ...and gives each task about this many.
const ROWS_PAR_TASK: usize = 1 << 15;

/// Splits `out` (rows of `row_len`) into tasks of whole rows and runs `f(first_row, rows)` on
/// each, in parallel when the output is big.
pub fn par_rows<T: Send>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rows = out.len() / row_len;
    let per = if out.len() >= ROWS_PAR_MIN {
        par_chunk(rows, ROWS_PAR_TASK.div_ceil(row_len))
    } else {
        None
    };
    match per {
        Some(per) => out
            .par_chunks_mut(per * row_len)
            .enumerate()
            .for_each(|(i, c)| f(i * per, c)),
        None => f(0, out),
    }
}

/// Below this many elements touched, [`par_planes`] runs on one thread.
const PLANES_PAR_MIN_WORK: usize = 1 << 15;

/// Runs `body(planes, out_chunk, aux_chunk)` over consecutive chunks of planes, in parallel when
/// the work is big enough. `out` holds `out_plane` values per plane, `aux` `aux_plane`.
pub fn par_planes<T: Send>(
    planes: usize,
    work_per_plane: usize,
    out: &mut [f32],
    out_plane: usize,
    aux: &mut [T],
    aux_plane: usize,
    body: impl Fn(std::ops::Range<usize>, &mut [f32], &mut [T]) + Sync,
) {
    let threads = num_threads();
    if threads <= 1 || planes < 2 || planes * work_per_plane < PLANES_PAR_MIN_WORK {
        body(0..planes, out, aux);
        return;
    }
    // A few chunks per thread balance uneven scheduling without much overhead.
    let per = planes.div_ceil(threads * 2).max(1);
    let mut jobs = Vec::with_capacity(planes.div_ceil(per));
    let (mut o, mut a) = (out, aux);
    let mut p = 0;
    while p < planes {
        let n = per.min(planes - p);
        let (o1, o2) = o.split_at_mut(n * out_plane);
        let (a1, a2) = a.split_at_mut(n * aux_plane);
        jobs.push((p..p + n, o1, a1));
        o = o2;
        a = a2;
        p += n;
    }
    jobs.into_par_iter().for_each(|(r, o, a)| body(r, o, a));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_planes_cover_the_output_once() {
        let mut out = vec![0u32; 3 * ROWS_PAR_MIN];
        par_rows(&mut out, 7, |r0, rows| {
            for (i, v) in rows.iter_mut().enumerate() {
                *v = (r0 * 7 + i) as u32 + 1;
            }
        });
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32 + 1));
        let (planes, plane) = (37, 1000);
        let mut o = vec![0f32; planes * plane];
        let mut aux = vec![0u8; planes];
        par_planes(planes, plane, &mut o, plane, &mut aux, 1, |r, o, a| {
            for (k, p) in r.enumerate() {
                o[k * plane..(k + 1) * plane].fill(p as f32);
                a[k] += 1;
            }
        });
        assert!(aux.iter().all(|&a| a == 1));
        assert!(o
            .chunks(plane)
            .enumerate()
            .all(|(p, c)| c.iter().all(|&v| v == p as f32)));
    }

    #[test]
    fn on_pool_runs_on_a_pool_thread_and_nests() {
        let (outer, inner) = on_pool(|| {
            let outer = rayon_thread();
            (outer, on_pool(rayon_thread))
        });
        if cfg!(feature = "threads") {
            assert!(outer.is_some() && inner == outer, "{outer:?} {inner:?}");
        } else {
            assert_eq!((outer, inner), (None, None));
        }
        let mut v = vec![0u32; 1 << 17];
        on_pool(|| par_rows(&mut v, 3, |r0, rows| rows.fill(r0 as u32 + 1)));
        assert!(v.iter().all(|&x| x > 0));
    }

    /// `no_grad` is per thread: a pool thread runs `f` in the caller's mode, and the mode of
    /// the pool thread is what it was afterwards.
    #[test]
    fn on_pool_carries_the_callers_gradient_mode() {
        use crate::autograd::{is_grad_enabled, no_grad};
        assert!(on_pool(is_grad_enabled));
        assert!(!no_grad(|| on_pool(is_grad_enabled)));
        let nested = on_pool(|| (is_grad_enabled(), no_grad(|| on_pool(is_grad_enabled))));
        assert_eq!(nested, (true, false));
        assert!(on_pool(is_grad_enabled));
    }

    /// A job a pool thread picks up while waiting inside another job (simulated here: the job
    /// runs on a thread inside `no_grad` and a trace capture) sees its own caller's modes, and
    /// the thread's modes are back afterwards.
    #[test]
    fn a_job_runs_with_its_own_modes_and_restores_the_threads() {
        use crate::autograd::{is_grad_enabled, isolated, no_grad};
        let before = crate::trace::set_tracing(true);
        let (inner, after) = no_grad(|| {
            let inner = isolated(true, || (is_grad_enabled(), crate::trace::is_tracing()));
            (inner, (is_grad_enabled(), crate::trace::is_tracing()))
        });
        crate::trace::set_tracing(before);
        assert_eq!(inner, (true, false));
        assert_eq!(after, (false, true));
    }

    fn rayon_thread() -> Option<usize> {
        #[cfg(feature = "threads")]
        {
            rayon::current_thread_index()
        }
        #[cfg(not(feature = "threads"))]
        {
            None
        }
    }

    #[test]
    fn chunking_needs_two_tasks() {
        assert_eq!(par_chunk(10, 6), None);
        if num_threads() > 1 {
            assert!(par_chunk(1 << 20, 16).is_some_and(|c| c >= 16));
        }
    }
}
