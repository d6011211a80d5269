//! CPU softmax and log-softmax kernels behind
//! [`Backend::softmax`](super::super::Backend::softmax) and `softmax_backward`, numerically
//! stable (max subtraction).
//!
//! The tensor is viewed as `[outer, C, inner]` with the softmax axis in the middle. Two kernels:
//! - `inner == 1` (last axis, classifier logits): one contiguous row per position;
//! - `inner > 1` (e.g. axis 1 of NCHW, per-pixel class scores): tiles of up to a few hundred
//!   neighbouring positions are processed together so every loop runs over contiguous memory
//!   and vectorises, while the `C × tile` block stays in cache.
//!
//! The `[outer, C, inner]` tiling and the lane reductions are in `ops/axis.rs`, shared with the
//! losses and normalisation. The op file (`ops/softmax.rs`) validates, resolves the axis and
//! records.

use crate::autograd::Op;
use crate::ops::axis::{
    fast_exp, for_rows, for_tiles, max_of, split_tiles, sum1_f64, sum2_f64, sum_f64, AxisDims,
    MAX_BLOCK,
};
use crate::storage::pool;
use crate::{Result, Tensor};

/// Whether `op` is `LogSoftmax` (else `Softmax`), or the family error.
fn is_log(op: &Op) -> Result<bool> {
    match op {
        Op::Softmax { .. } => Ok(false),
        Op::LogSoftmax { .. } => Ok(true),
        _ => Err(super::not_in_family(op, "softmax")),
    }
}

/// The softmax (or log-softmax) of `x` seen as `[outer, C, inner]` along the middle axis: a
/// new contiguous tensor of `x`'s shape.
pub(super) fn forward(op: &Op, dims: (usize, usize, usize), x: &Tensor) -> Result<Tensor> {
    let log = is_log(op)?;
    let (outer, c, inner) = dims;
    let d = AxisDims { outer, c, inner };
    let name = op.name();
    let mut out = pool::take_uninit(x.numel());
    x.with_f32(name, |xs| {
        if d.inner == 1 {
            forward_rows(xs, &mut out, d.c, log);
        } else {
            forward_tiles(xs, &mut out, d, log);
        }
    })?;
    Ok(Tensor::from_f32(out, x.shape()))
}

/// The input gradient of a softmax (or log-softmax) from its output `y` and output gradient
/// `g`, both seen as `[outer, C, inner]`.
pub(super) fn backward(
    op: &Op,
    dims: (usize, usize, usize),
    y: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    let log = is_log(op)?;
    let (outer, c, inner) = dims;
    let d = AxisDims { outer, c, inner };
    let name = op.name();
    let mut dx = pool::take_uninit(y.numel());
    y.with_f32(name, |ys| {
        g.with_f32(name, |gs| {
            if d.inner == 1 {
                backward_rows(ys, gs, &mut dx, d.c, log);
            } else {
                backward_tiles(ys, gs, &mut dx, d, log);
            }
        })
    })??;
    Ok(Tensor::from_f32(dx, y.shape()))
}

/// Forward over contiguous rows of length `c`.
fn forward_rows(x: &[f32], y: &mut [f32], c: usize, log: bool) {
    for_rows(y, c, |r0, ys| {
        for (j, yr) in ys.chunks_mut(c).enumerate() {
            let xr = &x[(r0 + j) * c..][..c];
            let m = max_of(xr);
            if log {
                // (x − max) − ln Σ, in PyTorch's order (exact for the largest score).
                let ls = (sum1_f64(xr, |v| fast_exp(v - m)) as f32).ln();
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - m) - ls;
                }
            } else {
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = fast_exp(v - m);
                }
                let inv = 1.0 / sum_f64(yr) as f32;
                for o in yr.iter_mut() {
                    *o *= inv;
                }
            }
        }
    });
}

/// Forward over `[outer, C, inner]` with `inner > 1`, tile by tile.
fn forward_tiles(x: &[f32], y: &mut [f32], d: AxisDims, log: bool) {
    let block = d.block();
    let tiles = split_tiles(y, d, block);
    for_tiles(tiles, x.len(), |mut t| {
        let n = t.len;
        let mut m = [f32::NEG_INFINITY; MAX_BLOCK];
        let mut s = [0.0f32; MAX_BLOCK];
        let (m, s) = (&mut m[..n], &mut s[..n]);
        let xrow = |k: usize| &x[d.at(t.o, k, t.i0)..][..n];
        for k in 0..d.c {
            for (mi, &v) in m.iter_mut().zip(xrow(k)) {
                *mi = if v > *mi { v } else { *mi };
            }
        }
        if log {
            for k in 0..d.c {
                for ((si, &mi), &v) in s.iter_mut().zip(m.iter()).zip(xrow(k)) {
                    *si += fast_exp(v - mi);
                }
            }
            for si in s.iter_mut() {
                *si = si.ln();
            }
            for (k, yr) in t.rows.iter_mut().enumerate() {
                for (((o, &v), &mi), &ls) in yr.iter_mut().zip(xrow(k)).zip(m.iter()).zip(s.iter())
                {
                    *o = (v - mi) - ls;
                }
            }
        } else {
            for (k, yr) in t.rows.iter_mut().enumerate() {
                for (((o, &v), &mi), si) in
                    yr.iter_mut().zip(xrow(k)).zip(m.iter()).zip(s.iter_mut())
                {
                    let e = fast_exp(v - mi);
                    *o = e;
                    *si += e;
                }
            }
            for si in s.iter_mut() {
                *si = 1.0 / *si;
            }
            for yr in t.rows.iter_mut() {
                for (o, &inv) in yr.iter_mut().zip(s.iter()) {
                    *o *= inv;
                }
            }
        }
    });
}

/// Backward over rows: softmax `dx = y (dy - Σ dy y)`, log-softmax `dx = dy - exp(y) Σ dy`.
fn backward_rows(y: &[f32], dy: &[f32], dx: &mut [f32], c: usize, log: bool) {
    for_rows(dx, c, |r0, dxs| {
        for (j, dr) in dxs.chunks_mut(c).enumerate() {
            let yr = &y[(r0 + j) * c..][..c];
            let gr = &dy[(r0 + j) * c..][..c];
            if log {
                let s = sum_f64(gr) as f32;
                for ((o, &yv), &g) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = g - fast_exp(yv) * s;
                }
            } else {
                let s = sum2_f64(gr, yr, |g, yv| g * yv) as f32;
                for ((o, &yv), &g) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = yv * (g - s);
                }
            }
        }
    });
}

/// Backward over `[outer, C, inner]` tiles.
fn backward_tiles(y: &[f32], dy: &[f32], dx: &mut [f32], d: AxisDims, log: bool) {
    let block = d.block();
    let tiles = split_tiles(dx, d, block);
    for_tiles(tiles, y.len(), |mut t| {
        let n = t.len;
        let mut s = [0.0f32; MAX_BLOCK];
        let s = &mut s[..n];
        let yrow = |k: usize| &y[d.at(t.o, k, t.i0)..][..n];
        let grow = |k: usize| &dy[d.at(t.o, k, t.i0)..][..n];
        for k in 0..d.c {
            if log {
                for (si, &g) in s.iter_mut().zip(grow(k)) {
                    *si += g;
                }
            } else {
                for ((si, &g), &yv) in s.iter_mut().zip(grow(k)).zip(yrow(k)) {
                    *si += g * yv;
                }
            }
        }
        for (k, dr) in t.rows.iter_mut().enumerate() {
            let (yr, gr) = (yrow(k), grow(k));
            if log {
                for (((o, &yv), &g), &si) in dr.iter_mut().zip(yr).zip(gr).zip(s.iter()) {
                    *o = g - fast_exp(yv) * si;
                }
            } else {
                for (((o, &yv), &g), &si) in dr.iter_mut().zip(yr).zip(gr).zip(s.iter()) {
                    *o = yv * (g - si);
                }
            }
        }
    });
}
