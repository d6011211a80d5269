//! Softmax and log-softmax along any axis, numerically stable (max subtraction), with fused
//! backward kernels.
//!
//! The tensor is viewed as `[outer, C, inner]` with the softmax axis in the middle. Two kernels:
//! - `inner == 1` (last axis, classifier logits): one contiguous row per position;
//! - `inner > 1` (e.g. axis 1 of NCHW, per-pixel class scores): tiles of up to a few hundred
//!   neighbouring positions are processed together so every loop runs over contiguous memory
//!   and vectorises, while the `C × tile` block stays in cache.
//!
//! The `[outer, C, inner]` tiling and the lane reductions are in [`super::axis`], shared with
//! the losses and normalisation.

use super::axis::{
    fast_exp, for_rows, for_tiles, max_of, split_tiles, sum1_f64, sum2_f64, sum_f64, AxisDims,
    MAX_BLOCK,
};
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::shape::normalize_axis;
use crate::storage::pool;
use crate::{Result, Tensor};

// ----------------------------------------------------------------------------------------------
// Softmax kernels
// ----------------------------------------------------------------------------------------------

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

fn softmax_impl(x: &Tensor, axis: isize, log: bool) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    x.expect_f32(op)?;
    let shape = x.shape().to_vec();
    // A 0-d tensor is a single position of one class (like PyTorch).
    let ax = if shape.is_empty() {
        normalize_axis(op, axis, 1)?;
        0
    } else {
        normalize_axis(op, axis, shape.len())?
    };
    let d = if shape.is_empty() {
        AxisDims {
            outer: 1,
            c: 1,
            inner: 1,
        }
    } else {
        AxisDims::new(&shape, ax)
    };
    let mut out = pool::take_uninit(x.numel());
    x.with_f32(op, |xs| {
        if d.inner == 1 {
            forward_rows(xs, &mut out, d.c, log);
        } else {
            forward_tiles(xs, &mut out, d, log);
        }
    })?;
    let out = Tensor::from_f32(out, &shape);
    let y = out.detach();
    let rec = if log {
        Op::LogSoftmax { axis: ax }
    } else {
        Op::Softmax { axis: ax }
    };
    Ok(record_rule(out, rec, &[x], grad, Saved::tensors(vec![y])))
}

impl Tensor {
    /// Softmax along `axis` (negative counts from the end): `exp(x - max) / Σ exp(x - max)`.
    /// Rows that are all `-inf` give NaN (like PyTorch). Fast paths: the last axis, and axis 1
    /// of NCHW (per-pixel over channels).
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 1.0], &[2, 2]).unwrap();
    /// assert_eq!(x.softmax(-1).unwrap().to_vec::<f32>().unwrap(), vec![0.5; 4]);
    /// ```
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        softmax_impl(self, axis, false)
    }

    /// Log-softmax along `axis`: `x - max - ln Σ exp(x - max)` (never takes the log of a
    /// softmax, so it is exact for very negative scores).
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        softmax_impl(self, axis, true)
    }
}

/// The gradient rule of `softmax` / `log_softmax` from the saved output `y`:
/// `dx = y·(g − Σ g·y)` and `dx = g − softmax·Σ g` per position.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (log, axis) = match *op {
        Op::Softmax { axis } => (false, axis),
        Op::LogSoftmax { axis } => (true, axis),
        _ => return Err(ctx.unexpected()),
    };
    let y = ctx.saved(0)?;
    let op = op.name();
    // A 0-d tensor is a single position of one class.
    let d = if y.rank() == 0 {
        AxisDims {
            outer: 1,
            c: 1,
            inner: 1,
        }
    } else {
        AxisDims::new(y.shape(), axis)
    };
    let mut dx = pool::take_uninit(y.numel());
    y.with_f32(op, |ys| {
        g.with_f32(op, |gs| {
            if d.inner == 1 {
                backward_rows(ys, gs, &mut dx, d.c, log);
            } else {
                backward_tiles(ys, gs, &mut dx, d, log);
            }
        })
    })??;
    Ok(vec![Some(Tensor::from_f32(dx, y.shape()))])
}
