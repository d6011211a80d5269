//! The CPU separable window engine behind [`Backend::pool`](crate::backend::Backend::pool),
//! `pool_backward`, `max_unpool` and `max_unpool_backward`: pooling and resizing planned by
//! `ops/separable.rs` (see there for why every such op is separable).
//!
//! Each op runs as one 1-D pass per non-trivial axis over each `(n, c)` plane: first the depth
//! and height passes, whose taps are whole contiguous rows (vectorised elementwise loops), then
//! the width pass, which shrinks the data first for the cheap strided part. The 2x2-stride-2,
//! 3x3-stride-2 and 3x3-stride-1 width passes have specialised loops, and 2-d max pools with
//! 2x2 or 3x3 windows of stride 2 run one-pass kernels instead (`kernels/pool2x2.rs`,
//! `kernels/pool3x3.rs`); small planes are run through the passes in groups, and whole-plane
//! windows (global pooling) are plain reductions.
//!
//! This module holds the shared pieces (the parallel plane driver, grouping, block cover);
//! [`linear`] runs linear maps (average pooling, resize) and [`max`] max pooling with argmax
//! tracking, and unpooling. Planes are processed in parallel with rayon above a size threshold.

use crate::autograd::Op;
pub(crate) use crate::ops::separable::{whole_plane, Affine, IdxBuf, SepPlan, Taps};
pub(crate) use crate::parallel::par_planes;
use crate::{Error, Result, Tensor};

/// Lanes of the vectorised max loops: the running maxima live in registers and are stored once
/// per block (a select-and-store per tap would become a masked store).
pub(crate) const LANES: usize = 16;

/// Runs `body` with a block start `$start` and a const block width `$N` over blocks covering
/// `0..$n`: blocks of width `$w1` (or `$w2`, `$w3` for shorter ranges), the last block shifted
/// back to end at `$n` (overlapping its neighbour, so bodies must only write values they
/// recompute), and single elements below `$w3`. This keeps short rows (LeNet's 10 or 14
/// columns) vectorised.
macro_rules! cover_blocks {
    ($n:expr, $w1:literal, $w2:literal, $w3:literal, |$start:ident, $N:ident| $body:block) => {{
        let n: usize = $n;
        if n >= $w1 {
            const $N: usize = $w1;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else if n >= $w2 {
            const $N: usize = $w2;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else if n >= $w3 {
            const $N: usize = $w3;
            let mut s = 0;
            while s < n {
                let $start = s.min(n - $N);
                $body
                s += $N;
            }
        } else {
            const $N: usize = 1;
            for $start in 0..n {
                $body
            }
        }
    }};
}

pub(crate) mod linear;
pub(crate) mod max;

// ---------------------------------------------------------------------------------------------
// Parallel driver
// ---------------------------------------------------------------------------------------------

/// Per-thread ping-pong buffers of the intermediate passes.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) f: [Vec<f32>; 2],
    pub(crate) i: [Vec<i32>; 2],
}

/// Elements per group of planes run through the passes together: small planes (LeNet's 5x5,
/// ResNet's 7x7) would otherwise pay the per-pass overhead per plane.
pub(crate) const GROUP_ELEMS: usize = 1 << 14;

pub(crate) fn group_size(plane: usize) -> usize {
    (GROUP_ELEMS / plane.max(1)).max(1)
}

/// Calls `f(first plane, planes, index of the first plane within r)` over groups of at most `g`
/// planes of `r`.
pub(crate) fn for_groups(
    r: std::ops::Range<usize>,
    g: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut p = r.start;
    while p < r.end {
        let np = g.min(r.end - p);
        f(p, np, p - r.start);
        p += np;
    }
}

/// Sum of a plane in 16 lanes (vectorised, and more accurate than one running sum).
pub(crate) fn plane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut total: f32 = acc.iter().sum();
    for &v in it.remainder() {
        total += v;
    }
    total
}

// ----- entry points of the backend methods -----

/// Whether `op` is a max pooling (else a linear map), or the family error.
fn is_max(op: &Op) -> Result<bool> {
    match op {
        Op::MaxPool { .. } | Op::AdaptiveMaxPool { .. } => Ok(true),
        Op::AvgPool { .. } | Op::AdaptiveAvgPool { .. } | Op::Resize { .. } => Ok(false),
        _ => Err(super::not_in_family(op, "pooling/resizing")),
    }
}

/// The planned pooling or resize of `x`, and the argmax of a max pooling where `track`.
pub(super) fn forward(
    op: &Op,
    plan: &SepPlan,
    x: &Tensor,
    track: bool,
) -> Result<(Tensor, Option<IdxBuf>)> {
    if is_max(op)? {
        max::forward(op.name(), plan, x, track)
    } else {
        Ok((linear::forward(op.name(), plan, x)?, None))
    }
}

/// The input gradient of a planned pooling or resize (`argmax` of a max pooling).
pub(super) fn backward(
    op: &Op,
    plan: &SepPlan,
    g: &Tensor,
    argmax: Option<&IdxBuf>,
) -> Result<Tensor> {
    if is_max(op)? {
        let idx =
            argmax.ok_or_else(|| Error::invalid(op.name(), "internal error: no saved argmax"))?;
        max::backward(op.name(), plan, g, idx)
    } else {
        linear::backward(op.name(), plan, g)
    }
}
