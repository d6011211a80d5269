//! Cross-entropy kernels: over class indices (cross-entropy and NLL, with class weights, sample
//! weights, `ignore_index` and label smoothing) and over dense (soft) targets.
//!
//! One fused kernel per direction: the forward computes each position's log-sum-exp and loss
//! straight from the logits (probabilities are never stored), and the backward recomputes
//! `softmax − onehot` from the logits and the saved log-sum-exp. Logits are seen as
//! `[outer, C, inner]` (class axis in the middle): `inner == 1` runs one contiguous row per
//! position, `inner > 1` (per-pixel scores) runs tiles of neighbouring positions so every loop is
//! contiguous (the tiling is in `ops/axis.rs`).

use super::{par_fill, par_sum, reduce_losses, GradScale, Stats, GRAIN};
use crate::ops::axis::{
    fast_exp, for_rows, for_tiles, max_of, split_tiles, sum1_f64, sum2_f64, AxisDims, Tile,
    MAX_BLOCK,
};
use crate::ops::loss::{class_dims, ClassTargets, Reduction, IGNORED};
use crate::storage::pool;
use crate::{Result, Tensor};

/// Per-position results of the forward kernels: the largest score `m`, `ls = ln Σ exp(x − m)`
/// (log-probabilities are `(x − m) − ls`, PyTorch's order) and the position's loss.
#[derive(Debug, Clone, Copy, Default)]
struct PosStat {
    m: f32,
    ls: f32,
    loss: f32,
}

/// Tiles over the per-position buffer `[outer, inner]`.
fn pos_tiles(st: &mut [PosStat], d: AxisDims, block: usize) -> Vec<Tile<'_, PosStat>> {
    let pd = AxisDims {
        outer: d.outer,
        c: 1,
        inner: d.inner,
    };
    split_tiles(st, pd, block)
}

/// All positions as one `[1, positions]` run (for the row kernels).
fn flat(positions: usize) -> AxisDims {
    AxisDims {
        outer: 1,
        c: 1,
        inner: positions,
    }
}

/// Positions per task of the row kernels.
fn rows_per_task(c: usize) -> usize {
    GRAIN.div_ceil(c.max(1)).max(1)
}

/// `(max, ln Σ exp(x − max))` of one row.
#[inline]
fn row_lse(row: &[f32]) -> (f32, f32) {
    let m = max_of(row);
    (m, (sum1_f64(row, |v| fast_exp(v - m)) as f32).ln())
}

/// `(max, ln Σ exp(x − max))` per position of a tile whose C rows `xrow(k)` are `n` long.
#[inline]
fn tile_lse<'a>(xrow: impl Fn(usize) -> &'a [f32], c: usize, m: &mut [f32], ls: &mut [f32]) {
    m.fill(f32::NEG_INFINITY);
    ls.fill(0.0);
    for k in 0..c {
        for (mi, &v) in m.iter_mut().zip(xrow(k)) {
            *mi = if v > *mi { v } else { *mi };
        }
    }
    for k in 0..c {
        for ((si, &mi), &v) in ls.iter_mut().zip(m.iter()).zip(xrow(k)) {
            *si += fast_exp(v - mi);
        }
    }
    for si in ls.iter_mut() {
        *si = si.ln();
    }
}

/// What `cross_entropy` / `nll_loss` keep for the gradient.
pub(crate) struct ClassStats {
    st: Vec<PosStat>,
    denom: f64,
    /// The mean loss (for the sample-weight gradient of `Mean`).
    total: f32,
}

/// What `cross_entropy_dense` keeps for the gradient.
pub(crate) struct DenseStats {
    st: Vec<PosStat>,
    denom: f64,
}

/// The mean's denominator: Σ over non-ignored positions of sample weight × class weight.
fn class_denom(ct: &ClassTargets) -> f64 {
    let p = ct.cls.len();
    par_sum(p, |i| ct.sample_weight(i) * ct.class_weight(ct.cls[i]))
}

/// Cross-entropy (`normalize`) or NLL of the dense scores `x` over the prepared targets.
pub(super) fn class_loss(
    op: &'static str,
    x: &Tensor,
    ct: &ClassTargets,
    normalize: bool,
    reduction: Reduction,
) -> Result<(Tensor, Stats)> {
    let st = x.with_f32(op, |xs| class_forward(xs, ct, normalize))?;
    let denom = if reduction == Reduction::Mean {
        class_denom(ct)
    } else {
        1.0
    };
    let out = reduce_losses(st.len(), &ct.tshape, reduction, denom, true, |p| {
        if ct.cls[p] == IGNORED {
            0.0
        } else {
            ct.sample_weight(p) * st[p].loss
        }
    });
    let total = if reduction == Reduction::Mean {
        out.item()? as f32
    } else {
        0.0
    };
    Ok((out, Stats::Class(ClassStats { st, denom, total })))
}

/// `[d scores, d sample_weights]` of cross-entropy / NLL, each where `needs` asks.
#[allow(clippy::too_many_arguments)]
pub(super) fn class_grad(
    op: &'static str,
    x: &Tensor,
    ct: &ClassTargets,
    saved: ClassStats,
    g: &Tensor,
    reduction: Reduction,
    normalize: bool,
    needs: [bool; 2],
) -> Result<[Option<Tensor>; 2]> {
    let ClassStats { st, denom, total } = saved;
    let gs = GradScale::new(g, reduction, denom)?;
    let dx = if needs[0] {
        let sc = gs.fill(ct.cls.len(), |p, s| s * ct.sample_weight(p));
        let dx = x.with_f32(op, |xs| class_backward(xs, ct, &st, &sc, normalize))?;
        Some(Tensor::from_f32(dx, x.shape()))
    } else {
        None
    };
    let ds = if needs[1] {
        // ∂/∂s_p: l_p (None/Sum), (l_p − L·w_t)/D (Mean; the 1/D is in the scale).
        let mean = reduction == Reduction::Mean;
        let ds = gs.fill(ct.cls.len(), |p, s| {
            let t = ct.cls[p];
            if t == IGNORED {
                0.0
            } else if mean {
                s * (st[p].loss - total * ct.class_weight(t))
            } else {
                s * st[p].loss
            }
        });
        Some(Tensor::from_f32(ds, &ct.tshape))
    } else {
        None
    };
    Ok([dx, ds])
}

/// Cross-entropy of the dense logits `x` against the dense target probabilities `q`.
pub(super) fn dense_loss(
    x: &Tensor,
    q: &Tensor,
    eps: f32,
    reduction: Reduction,
) -> Result<(Tensor, Stats)> {
    const OP: &str = "cross_entropy_dense";
    let (d, tshape) = class_dims(OP, x)?;
    let st = x.with_f32(OP, |xs| q.with_f32(OP, |qs| dense_forward(xs, qs, d, eps)))??;
    let denom = d.positions() as f64;
    let out = reduce_losses(st.len(), &tshape, reduction, denom, true, |p| st[p].loss);
    Ok((out, Stats::Dense(DenseStats { st, denom })))
}

/// `[d logits, d targets]` of dense cross-entropy, each where `needs` asks.
pub(super) fn dense_grad(
    x: &Tensor,
    q: &Tensor,
    saved: DenseStats,
    g: &Tensor,
    eps: f32,
    reduction: Reduction,
    needs: [bool; 2],
) -> Result<[Option<Tensor>; 2]> {
    const OP: &str = "cross_entropy_dense";
    let (d, _) = class_dims(OP, x)?;
    let DenseStats { st, denom } = saved;
    let (want_dx, want_dq) = (needs[0], needs[1]);
    let sc = GradScale::new(g, reduction, denom)?;
    let (dx, dq) = x.with_f32(OP, |xs| {
        q.with_f32(OP, |qs| {
            dense_backward(xs, qs, d, eps, &st, &sc, want_dx, want_dq)
        })
    })??;
    Ok([
        dx.map(|v| Tensor::from_f32(v, x.shape())),
        dq.map(|v| Tensor::from_f32(v, x.shape())),
    ])
}

/// Per-position stats with `loss = (1−ε)·w_t·(−log p_t) + (ε/C)·Σ_c w_c·(−log p_c)` (0 at
/// ignored positions), `−log p_c = (m − x_c) + ls`. With `normalize` off (NLL) the scores
/// already are log-probabilities: `m = ls = 0`.
fn class_forward(xs: &[f32], ct: &ClassTargets, normalize: bool) -> Vec<PosStat> {
    let d = ct.d;
    let c = d.c;
    let eps = ct.eps;
    let ec = if c == 0 { 0.0 } else { eps / c as f32 };
    let mut st = vec![PosStat::default(); d.positions()];
    if c == 0 {
        return st;
    }
    if d.inner == 1 {
        let tiles = pos_tiles(&mut st, flat(d.positions()), rows_per_task(c));
        for_tiles(tiles, xs.len(), |mut t| {
            for (k, s) in t.rows[0].iter_mut().enumerate() {
                let p = t.i0 + k;
                let row = &xs[p * c..][..c];
                let (m, ls) = if normalize { row_lse(row) } else { (0.0, 0.0) };
                let cl = ct.cls[p];
                let loss = if cl == IGNORED {
                    0.0
                } else {
                    let mut l = (1.0 - eps) * ct.class_weight(cl) * ((m - row[cl as usize]) + ls);
                    if eps > 0.0 {
                        let smooth = match &ct.cw {
                            Some(w) => sum2_f64(row, w, |x, w| w * ((m - x) + ls)),
                            None => sum1_f64(row, |x| (m - x) + ls),
                        };
                        l += ec * smooth as f32;
                    }
                    l
                };
                *s = PosStat { m, ls, loss };
            }
        });
        return st;
    }
    let tiles = pos_tiles(&mut st, d, d.block());
    for_tiles(tiles, xs.len(), |mut t| {
        let n = t.len;
        let p0 = t.o * d.inner + t.i0;
        let xrow = |k: usize| &xs[d.at(t.o, k, t.i0)..][..n];
        let mut m = [0.0f32; MAX_BLOCK];
        let mut ls = [0.0f32; MAX_BLOCK];
        let (m, ls) = (&mut m[..n], &mut ls[..n]);
        if normalize {
            tile_lse(xrow, c, m, ls);
        }
        // Smoothing term Σ_c w_c·((m − x_c) + ls), accumulated row by row.
        let mut sm = [0.0f32; MAX_BLOCK];
        let sm = &mut sm[..n];
        if eps > 0.0 {
            for k in 0..c {
                let wk = ct.cw.as_ref().map_or(1.0, |w| w[k]);
                for (((a, &mi), &li), &v) in sm.iter_mut().zip(m.iter()).zip(ls.iter()).zip(xrow(k))
                {
                    *a += wk * ((mi - v) + li);
                }
            }
        }
        for (i, s) in t.rows[0].iter_mut().enumerate() {
            let cl = ct.cls[p0 + i];
            let loss = if cl == IGNORED {
                0.0
            } else {
                let xt = xs[d.at(t.o, cl as usize, t.i0 + i)];
                (1.0 - eps) * ct.class_weight(cl) * ((m[i] - xt) + ls[i]) + ec * sm[i]
            };
            *s = PosStat {
                m: m[i],
                ls: ls[i],
                loss,
            };
        }
    });
    st
}

/// Gradient of the scores: `sc_p · [α_p·softmax_c − (1−ε)·w_t·δ_ct − (ε/C)·w_c]` with
/// `α = (1−ε)·w_t + ε·W/C` for cross-entropy (`normalize`), and without the softmax term for
/// NLL. `sc` is the per-position factor (reduction × sample weight, 0 where ignored).
fn class_backward(
    xs: &[f32],
    ct: &ClassTargets,
    st: &[PosStat],
    sc: &[f32],
    normalize: bool,
) -> Vec<f32> {
    let d = ct.d;
    let c = d.c;
    let eps = ct.eps;
    let ec = if c == 0 { 0.0 } else { eps / c as f32 };
    let mut dx = pool::take_uninit(xs.len());
    // (α, β, γ) per position: dx_c = α·p_c − β·δ_ct − γ·w_c.
    let coef = |p: usize| -> (f32, f32, f32) {
        let t = ct.cls[p];
        let s = sc[p];
        if t == IGNORED || s == 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let wt = ct.class_weight(t);
        let alpha = if normalize {
            s * ((1.0 - eps) * wt + ec * ct.wsum)
        } else {
            0.0
        };
        (alpha, s * (1.0 - eps) * wt, s * ec)
    };
    if d.inner == 1 {
        for_rows(&mut dx, c, |r0, rows| {
            for (j, o) in rows.chunks_mut(c).enumerate() {
                let p = r0 + j;
                let (alpha, beta, gamma) = coef(p);
                let row = &xs[p * c..][..c];
                let PosStat { m, ls, .. } = st[p];
                if alpha != 0.0 {
                    for (o, &x) in o.iter_mut().zip(row) {
                        *o = alpha * fast_exp((x - m) - ls);
                    }
                } else {
                    o.fill(0.0);
                }
                if gamma != 0.0 {
                    match &ct.cw {
                        Some(w) => {
                            for (o, &wv) in o.iter_mut().zip(w) {
                                *o -= gamma * wv;
                            }
                        }
                        None => {
                            for o in o.iter_mut() {
                                *o -= gamma;
                            }
                        }
                    }
                }
                let t = ct.cls[p];
                if t != IGNORED {
                    o[t as usize] -= beta;
                }
            }
        });
        return dx;
    }
    let tiles = split_tiles(&mut dx, d, d.block());
    for_tiles(tiles, xs.len(), |mut t| {
        let n = t.len;
        let p0 = t.o * d.inner + t.i0;
        let mut al = [0.0f32; MAX_BLOCK];
        let mut be = [0.0f32; MAX_BLOCK];
        let mut ga = [0.0f32; MAX_BLOCK];
        let mut m = [0.0f32; MAX_BLOCK];
        let mut ls = [0.0f32; MAX_BLOCK];
        for i in 0..n {
            (al[i], be[i], ga[i]) = coef(p0 + i);
            (m[i], ls[i]) = (st[p0 + i].m, st[p0 + i].ls);
        }
        let (al, ga, m, ls) = (&al[..n], &ga[..n], &m[..n], &ls[..n]);
        for (k, o) in t.rows.iter_mut().enumerate() {
            let x = &xs[d.at(t.o, k, t.i0)..][..n];
            let wk = ct.cw.as_ref().map_or(1.0, |w| w[k]);
            if normalize {
                for ((((o, &xv), &a), (&mi, &li)), &g) in
                    o.iter_mut().zip(x).zip(al).zip(m.iter().zip(ls)).zip(ga)
                {
                    *o = a * fast_exp((xv - mi) - li) - g * wk;
                }
            } else {
                for (o, &g) in o.iter_mut().zip(ga) {
                    *o = -g * wk;
                }
            }
        }
        for (i, &b) in be[..n].iter().enumerate() {
            let cl = ct.cls[p0 + i];
            if cl != IGNORED {
                t.rows[cl as usize][i] -= b;
            }
        }
    });
    dx
}

/// Per-position stats with `loss = Σ_c q'_c·((m − x_c) + ls)`, `q' = (1−ε)·q + ε/C`.
fn dense_forward(xs: &[f32], qs: &[f32], d: AxisDims, eps: f32) -> Vec<PosStat> {
    let c = d.c;
    let ec = if c == 0 { 0.0 } else { eps / c as f32 };
    let mut st = vec![PosStat::default(); d.positions()];
    if c == 0 {
        return st;
    }
    if d.inner == 1 {
        let tiles = pos_tiles(&mut st, flat(d.positions()), rows_per_task(c));
        for_tiles(tiles, xs.len(), |mut t| {
            for (k, s) in t.rows[0].iter_mut().enumerate() {
                let p = t.i0 + k;
                let row = &xs[p * c..][..c];
                let q = &qs[p * c..][..c];
                let (m, ls) = row_lse(row);
                let loss = sum2_f64(q, row, |q, x| ((1.0 - eps) * q + ec) * ((m - x) + ls)) as f32;
                *s = PosStat { m, ls, loss };
            }
        });
        return st;
    }
    let tiles = pos_tiles(&mut st, d, d.block());
    for_tiles(tiles, xs.len(), |mut t| {
        let n = t.len;
        let xrow = |k: usize| &xs[d.at(t.o, k, t.i0)..][..n];
        let qrow = |k: usize| &qs[d.at(t.o, k, t.i0)..][..n];
        let mut m = [0.0f32; MAX_BLOCK];
        let mut ls = [0.0f32; MAX_BLOCK];
        let mut acc = [0.0f32; MAX_BLOCK];
        let (m, ls, acc) = (&mut m[..n], &mut ls[..n], &mut acc[..n]);
        tile_lse(xrow, c, m, ls);
        for k in 0..c {
            for (((a, &v), &q), (&mi, &li)) in acc
                .iter_mut()
                .zip(xrow(k))
                .zip(qrow(k))
                .zip(m.iter().zip(ls.iter()))
            {
                *a += ((1.0 - eps) * q + ec) * ((mi - v) + li);
            }
        }
        for (i, s) in t.rows[0].iter_mut().enumerate() {
            *s = PosStat {
                m: m[i],
                ls: ls[i],
                loss: acc[i],
            };
        }
    });
    st
}

/// Gradients of dense cross-entropy: `dx_c = sc·(Q·p_c − q'_c)` with `Q = Σ q'`, and
/// `dq_c = sc·(1−ε)·(−log p_c)`.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    xs: &[f32],
    qs: &[f32],
    d: AxisDims,
    eps: f32,
    st: &[PosStat],
    sc: &GradScale,
    want_dx: bool,
    want_dq: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let c = d.c;
    let ec = if c == 0 { 0.0 } else { eps / c as f32 };
    let pos = |idx: usize| -> usize {
        let o = idx / (c * d.inner);
        o * d.inner + idx % d.inner
    };
    let dq = want_dq.then(|| {
        par_fill(xs.len(), |i| {
            let p = pos(i);
            sc.at(p) * (1.0 - eps) * ((st[p].m - xs[i]) + st[p].ls)
        })
    });
    let dx = want_dx.then(|| {
        let mut dx = pool::take_uninit(xs.len());
        if c == 0 {
            return dx;
        }
        if d.inner == 1 {
            for_rows(&mut dx, c, |r0, rows| {
                for (j, o) in rows.chunks_mut(c).enumerate() {
                    let p = r0 + j;
                    let row = &xs[p * c..][..c];
                    let q = &qs[p * c..][..c];
                    let s = sc.at(p);
                    let qsum = sum1_f64(q, |q| (1.0 - eps) * q + ec) as f32;
                    let PosStat { m, ls, .. } = st[p];
                    for ((o, &x), &qv) in o.iter_mut().zip(row).zip(q) {
                        *o = s * (qsum * fast_exp((x - m) - ls) - ((1.0 - eps) * qv + ec));
                    }
                }
            });
            return dx;
        }
        let tiles = split_tiles(&mut dx, d, d.block());
        for_tiles(tiles, xs.len(), |mut t| {
            let n = t.len;
            let p0 = t.o * d.inner + t.i0;
            let qrow = |k: usize| &qs[d.at(t.o, k, t.i0)..][..n];
            let mut qsum = [0.0f32; MAX_BLOCK];
            let mut s = [0.0f32; MAX_BLOCK];
            let (qsum, s) = (&mut qsum[..n], &mut s[..n]);
            for k in 0..c {
                for (a, &q) in qsum.iter_mut().zip(qrow(k)) {
                    *a += (1.0 - eps) * q + ec;
                }
            }
            for (i, v) in s.iter_mut().enumerate() {
                *v = sc.at(p0 + i);
            }
            let mut m = [0.0f32; MAX_BLOCK];
            let mut ls = [0.0f32; MAX_BLOCK];
            for (i, p) in st[p0..p0 + n].iter().enumerate() {
                (m[i], ls[i]) = (p.m, p.ls);
            }
            let (m, ls) = (&m[..n], &ls[..n]);
            for (k, o) in t.rows.iter_mut().enumerate() {
                let x = &xs[d.at(t.o, k, t.i0)..][..n];
                for (((o, &xv), &q), ((&si, &qs), (&mi, &li))) in o
                    .iter_mut()
                    .zip(x)
                    .zip(qrow(k))
                    .zip(s.iter().zip(qsum.iter()).zip(m.iter().zip(ls)))
                {
                    let qv = (1.0 - eps) * q + ec;
                    *o = si * (qs * fast_exp((xv - mi) - li) - qv);
                }
            }
        });
        dx
    });
    (dx, dq)
}
