//! Loss functions with PyTorch semantics: cross-entropy (class indices or dense/soft targets,
//! class weights, sample weights, `ignore_index`, label smoothing), NLL, binary cross-entropy
//! (on logits, stable; and on probabilities), MSE, L1 and Huber.
//!
//! Cross-entropy is one fused kernel per direction: the forward computes each position's
//! log-sum-exp and loss straight from the logits (probabilities are never stored), and the
//! backward recomputes `softmax − onehot` from the logits and the saved log-sum-exp. Logits are
//! `[N, C]` or `[N, C, d1, ...]` (class axis 1, e.g. per-pixel segmentation scores) or `[C]`;
//! the `[N, C, d...]` case runs on tiles of neighbouring positions so every loop is contiguous.

use super::axis::{
    dense, fast_exp, for_rows, for_tiles, max_of, split_tiles, sum1_f64, sum2_f64, AxisDims, Tile,
    MAX_BLOCK,
};
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::parallel::prelude::*;
use crate::shape::broadcast_shapes;
use crate::storage::pool;
use crate::{DType, Error, Result, Tensor};

/// How per-element losses are combined (like PyTorch's `reduction=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per element, shaped like the targets.
    None,
    /// The (weighted) mean: a 0-d tensor.
    #[default]
    Mean,
    /// The sum: a 0-d tensor.
    Sum,
}

/// Options of [`Tensor::cross_entropy`] and [`Tensor::nll_loss`].
///
/// Unlike PyTorch (whose `ignore_index` defaults to -100), no index is ignored unless
/// `ignore_index` is set.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropyOpts {
    /// Targets equal to this value contribute no loss and no gradient, and are left out of the
    /// mean's denominator.
    pub ignore_index: Option<i64>,
    /// Per-class rescaling weights, f32 `[C]` (PyTorch's `weight`). Treated as constants.
    pub class_weights: Option<Tensor>,
    /// Per-element weights, f32 with the targets' shape, multiplying each element's loss
    /// (ferrovision extension). They receive a gradient when they require one.
    pub sample_weights: Option<Tensor>,
    /// Label smoothing in `[0, 1]`, PyTorch's formula (including class weights).
    pub label_smoothing: f32,
    /// How element losses are combined.
    pub reduction: Reduction,
}

// ----------------------------------------------------------------------------------------------
// Small parallel helpers
// ----------------------------------------------------------------------------------------------

const PAR_MIN: usize = 1 << 15;
const GRAIN: usize = 1 << 14;

/// `out[i] = f(i)` for `i < n`, in parallel chunks when big.
fn par_fill(n: usize, f: impl Fn(usize) -> f32 + Sync) -> Vec<f32> {
    let mut out = pool::take_uninit(n);
    let body = |first: usize, o: &mut [f32]| {
        for (k, v) in o.iter_mut().enumerate() {
            *v = f(first + k);
        }
    };
    if n >= PAR_MIN && crate::parallel::num_threads() > 1 {
        out.par_chunks_mut(GRAIN)
            .enumerate()
            .for_each(|(j, o)| body(j * GRAIN, o));
    } else {
        body(0, &mut out);
    }
    out
}

/// `Σ f(i)` for `i < n` in f64, over fixed chunks (deterministic whatever the thread count).
fn par_sum(n: usize, f: impl Fn(usize) -> f32 + Sync + Send) -> f64 {
    let chunk = |j: usize| -> f64 {
        let lo = j * GRAIN;
        let hi = (lo + GRAIN).min(n);
        let mut acc = [0.0f32; 8];
        let mut i = lo;
        while i + 8 <= hi {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += f(i + l);
            }
            i += 8;
        }
        let mut t: f64 = acc.iter().map(|&v| v as f64).sum();
        while i < hi {
            t += f(i) as f64;
            i += 1;
        }
        t
    };
    let chunks = n.div_ceil(GRAIN);
    let parts: Vec<f64> = if n >= PAR_MIN && crate::parallel::num_threads() > 1 {
        (0..chunks).into_par_iter().map(chunk).collect()
    } else {
        (0..chunks).map(chunk).collect()
    };
    parts.iter().sum()
}

/// `out[start..]` chunks of `n` values filled by `f(start, chunk)`, in parallel when big.
fn chunked(n: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = pool::take_uninit(n);
    if n >= PAR_MIN && crate::parallel::num_threads() > 1 {
        out.par_chunks_mut(GRAIN)
            .enumerate()
            .for_each(|(j, o)| f(j * GRAIN, o));
    } else {
        for (j, o) in out.chunks_mut(GRAIN).enumerate() {
            f(j * GRAIN, o);
        }
    }
    out
}

/// `o[i] *= w[i]`.
#[inline]
fn mul_in_place(o: &mut [f32], w: &[f32]) {
    for (o, &w) in o.iter_mut().zip(w) {
        *o *= w;
    }
}

/// Per-element losses reduced like [`reduce_losses`], from a materialised vector.
fn reduce_vec(
    v: Vec<f32>,
    shape: &[usize],
    reduction: Reduction,
    denom: f64,
    zero_if_empty: bool,
) -> Tensor {
    if reduction == Reduction::None {
        return Tensor::from_f32(v, shape);
    }
    let s = super::axis::sum_f64(&v);
    pool::give_back(v);
    Tensor::scalar(match reduction {
        Reduction::Mean if denom == 0.0 && zero_if_empty => 0.0,
        Reduction::Mean => (s / denom) as f32,
        _ => s as f32,
    })
}

/// `σ(x)`, stable and branch-free.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = fast_exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// `(1 − y)·x + (1 + (pw − 1)·y)·softplus(−x)` into `o` (the unweighted BCE-with-logits loss).
#[inline]
fn bce_logits_unweighted(x: &[f32], y: &[f32], pw: Option<&[f32]>, o: &mut [f32]) {
    match pw {
        None => {
            for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                *o = (1.0 - y) * x + softplus_neg(x);
            }
        }
        Some(p) => {
            for (((o, &x), &y), &p) in o.iter_mut().zip(x).zip(y).zip(p) {
                *o = (1.0 - y) * x + (1.0 + (p - 1.0) * y) * softplus_neg(x);
            }
        }
    }
}

/// The output of a loss: per-element values (`None`) or their sum / mean as a 0-d tensor.
/// `denom` is the mean's denominator; `zero_if_empty` makes a zero denominator give 0
/// instead of NaN.
fn reduce_losses(
    n: usize,
    shape: &[usize],
    reduction: Reduction,
    denom: f64,
    zero_if_empty: bool,
    f: impl Fn(usize) -> f32 + Sync + Send,
) -> Tensor {
    match reduction {
        Reduction::None => Tensor::from_f32(par_fill(n, f), shape),
        Reduction::Sum => Tensor::scalar(par_sum(n, f) as f32),
        Reduction::Mean => {
            let s = par_sum(n, f);
            Tensor::scalar(if denom == 0.0 && zero_if_empty {
                0.0
            } else {
                (s / denom) as f32
            })
        }
    }
}

/// The gradient factor of each element: `g[i]` (`None`), `g` (`Sum`) or `g / denom` (`Mean`,
/// 0 when `denom` is 0).
enum GradScale {
    PerElem(Vec<f32>),
    Uniform(f32),
}

impl GradScale {
    fn new(g: &Tensor, reduction: Reduction, denom: f64) -> Result<GradScale> {
        Ok(match reduction {
            Reduction::None => GradScale::PerElem(g.to_vec_f32()?),
            Reduction::Sum => GradScale::Uniform(g.item()? as f32),
            Reduction::Mean => GradScale::Uniform(if denom == 0.0 {
                0.0
            } else {
                (g.item()? / denom) as f32
            }),
        })
    }

    /// `out[i] = f(i, scale_i)`.
    fn fill(&self, n: usize, f: impl Fn(usize, f32) -> f32 + Sync) -> Vec<f32> {
        match self {
            GradScale::PerElem(v) => par_fill(n, |i| f(i, v[i])),
            GradScale::Uniform(s) => {
                let s = *s;
                par_fill(n, |i| f(i, s))
            }
        }
    }

    /// `v[i] *= scale_i`.
    fn scale_in_place(&self, v: &mut [f32]) {
        match self {
            GradScale::PerElem(s) => mul_in_place(v, s),
            GradScale::Uniform(s) => {
                for x in v.iter_mut() {
                    *x *= *s;
                }
            }
        }
    }

    fn at(&self, i: usize) -> f32 {
        match self {
            GradScale::PerElem(v) => v[i],
            GradScale::Uniform(s) => *s,
        }
    }
}

trait ToVecF32 {
    fn to_vec_f32(&self) -> Result<Vec<f32>>;
}

impl ToVecF32 for Tensor {
    /// Contiguous f32 values (from the pool).
    fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.with_f32("loss", |s| {
            let mut v = pool::take_uninit(s.len());
            v.copy_from_slice(s);
            v
        })
    }
}

/// Reads an optional weight that must broadcast to `shape`, expanded to the full shape.
fn broadcast_weight(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    shape: &[usize],
) -> Result<Option<Vec<f32>>> {
    let Some(t) = t else { return Ok(None) };
    t.expect_f32(op)?;
    let b = broadcast_shapes(op, shape, t.shape())?;
    if b != shape {
        return Err(Error::ShapeMismatch {
            op,
            lhs: shape.to_vec(),
            rhs: t.shape().to_vec(),
            detail: format!("{name} must broadcast to the input's shape"),
        });
    }
    Ok(Some(t.detach().expand(shape)?.to_vec_f32()?))
}

fn same_shape(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    input.expect_f32(op)?;
    target.expect_f32(op)?;
    super::same_device(op, input, target)?;
    if input.shape() != target.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: input.shape().to_vec(),
            rhs: target.shape().to_vec(),
            detail: "input and target must have the same shape".into(),
        });
    }
    Ok(())
}

/// `ln(1 + e)` for `e` in `[0, 1]`, branch-free (vectorises), relative error ~1e-7 even for
/// tiny `e` (never forms `1 + e`): `ln(1 + f) = 2·atanh(f / (2 + f))` with `f = e`, or with
/// `f = (e − 1) / 2` and `+ ln 2` above `√2 − 1`.
#[inline(always)]
fn log1p_unit(e: f32) -> f32 {
    let big = e > std::f32::consts::SQRT_2 - 1.0;
    let f = if big { (e - 1.0) * 0.5 } else { e };
    let s = f / (2.0 + f);
    let z = s * s;
    let r = 2.0
        * s
        * (1.0
            + z * (1.0 / 3.0
                + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0 + z * (1.0 / 11.0))))));
    if big {
        r + std::f32::consts::LN_2
    } else {
        r
    }
}

/// `softplus(−x) = −log σ(x) = max(−x, 0) + ln(1 + exp(−|x|))`, stable.
#[inline(always)]
fn softplus_neg(x: f32) -> f32 {
    (-x).max(0.0) + log1p_unit(fast_exp(-x.abs()))
}

// ----------------------------------------------------------------------------------------------
// Class-index losses (cross-entropy, NLL)
// ----------------------------------------------------------------------------------------------

/// Marks an ignored position in the class vector.
const IGNORED: u32 = u32::MAX;

/// Validated targets and options of a class-index loss.
struct ClassTargets {
    d: AxisDims,
    tshape: Vec<usize>,
    /// Target class per position (`IGNORED` where ignored).
    cls: Vec<u32>,
    /// Sample weight per position.
    sw: Option<Vec<f32>>,
    /// Class weights.
    cw: Option<Vec<f32>>,
    /// Σ class weights (C without weights).
    wsum: f32,
    eps: f32,
}

impl ClassTargets {
    #[inline]
    fn class_weight(&self, t: u32) -> f32 {
        match (&self.cw, t) {
            (_, IGNORED) => 0.0,
            (Some(w), t) => w[t as usize],
            (None, _) => 1.0,
        }
    }

    #[inline]
    fn sample_weight(&self, p: usize) -> f32 {
        match (&self.sw, self.cls[p]) {
            (_, IGNORED) => 0.0,
            (Some(s), _) => s[p],
            (None, _) => 1.0,
        }
    }

    /// The mean's denominator: Σ over non-ignored positions of sample weight × class weight.
    fn denom(&self) -> f64 {
        let p = self.cls.len();
        par_sum(p, |i| {
            self.sample_weight(i) * self.class_weight(self.cls[i])
        })
    }
}

fn read_targets(op: &'static str, t: &Tensor) -> Result<Vec<i64>> {
    Ok(match t.dtype() {
        DType::I64 => t.to_vec::<i64>()?,
        DType::I32 => t.to_vec::<i32>()?.into_iter().map(i64::from).collect(),
        DType::U8 => t.to_vec::<u8>()?.into_iter().map(i64::from).collect(),
        dt => return Err(Error::dtype(op, dt, "I64 or I32 class indices")),
    })
}

/// `[outer = N, C, inner = d1·d2·…]` of logits and the targets shape they need.
fn class_dims(op: &'static str, logits: &Tensor) -> Result<(AxisDims, Vec<usize>)> {
    let sh = logits.shape();
    match sh.len() {
        0 => Err(Error::bad_shape(op, sh, "[C], [N, C] or [N, C, d1, ...]")),
        1 => Ok((
            AxisDims {
                outer: 1,
                c: sh[0],
                inner: 1,
            },
            vec![],
        )),
        _ => {
            let mut t = vec![sh[0]];
            t.extend_from_slice(&sh[2..]);
            Ok((AxisDims::new(sh, 1), t))
        }
    }
}

fn prepare(
    op: &'static str,
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
) -> Result<ClassTargets> {
    logits.expect_f32(op)?;
    let (d, tshape) = class_dims(op, logits)?;
    if targets.shape() != tshape.as_slice() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: logits.shape().to_vec(),
            rhs: targets.shape().to_vec(),
            detail: format!("targets must have shape {tshape:?} for these logits"),
        });
    }
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(
            op,
            format!("label_smoothing must be in [0, 1], got {eps}"),
        ));
    }
    let c = d.c;
    let raw = read_targets(op, targets)?;
    let mut cls = Vec::with_capacity(raw.len());
    for (p, &t) in raw.iter().enumerate() {
        if Some(t) == opts.ignore_index {
            cls.push(IGNORED);
        } else if t < 0 || t as u64 >= c as u64 {
            return Err(Error::invalid(
                op,
                format!(
                    "target {t} (element {p} of the targets) is out of range for {c} classes \
                     (valid: 0..{c}{})",
                    opts.ignore_index
                        .map_or(String::new(), |i| format!(", or ignore_index {i}"))
                ),
            ));
        } else {
            cls.push(t as u32);
        }
    }
    let cw = match &opts.class_weights {
        None => None,
        Some(w) => {
            w.expect_f32(op)?;
            if w.shape() != [c] {
                return Err(Error::bad_shape(
                    op,
                    w.shape(),
                    format!("class_weights of shape [{c}]"),
                ));
            }
            Some(w.to_vec::<f32>()?)
        }
    };
    let sw = match &opts.sample_weights {
        None => None,
        Some(s) => {
            s.expect_f32(op)?;
            if s.shape() != tshape.as_slice() {
                return Err(Error::bad_shape(
                    op,
                    s.shape(),
                    format!("sample_weights with the targets' shape {tshape:?}"),
                ));
            }
            Some(s.to_vec_f32()?)
        }
    };
    let wsum = cw.as_ref().map_or(c as f32, |w| {
        w.iter().map(|&v| v as f64).sum::<f64>() as f32
    });
    Ok(ClassTargets {
        d,
        tshape,
        cls,
        sw,
        cw,
        wsum,
        eps,
    })
}

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
struct ClassSaved {
    ct: ClassTargets,
    st: Vec<PosStat>,
    denom: f64,
    /// The mean loss (for the sample-weight gradient of `Mean`).
    total: f32,
}

/// What `binary_cross_entropy_with_logits` keeps for the gradient: logits, targets, the
/// broadcast weights, which inputs want a gradient (input, target, weight, pos_weight) and the
/// weights' own shapes.
struct BceSaved {
    x: Vec<f32>,
    y: Vec<f32>,
    w: Option<Vec<f32>>,
    pw: Option<Vec<f32>>,
    flags: (bool, bool, bool, bool),
    shapes: (Option<Vec<usize>>, Option<Vec<usize>>),
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

/// Cross-entropy (`normalize`) or NLL over class indices, with autodiff for the scores and the
/// sample weights.
fn class_loss(
    op: &'static str,
    scores: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOpts,
    normalize: bool,
) -> Result<Tensor> {
    let ct = prepare(op, scores, targets, opts)?;
    let x = dense(scores)?;
    let st = x.with_f32(op, |xs| class_forward(xs, &ct, normalize))?;
    let reduction = opts.reduction;
    let denom = if reduction == Reduction::Mean {
        ct.denom()
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
    let mut inputs = vec![scores];
    if let Some(s) = &opts.sample_weights {
        inputs.push(s);
    }
    let rec = if normalize {
        Op::CrossEntropy {
            ignore_index: opts.ignore_index,
            label_smoothing: opts.label_smoothing,
            reduction,
        }
    } else {
        Op::NllLoss {
            ignore_index: opts.ignore_index,
            label_smoothing: opts.label_smoothing,
            reduction,
        }
    };
    Ok(record_rule(
        out,
        rec,
        &inputs,
        class_grad,
        Saved::with_state(
            vec![x],
            ClassSaved {
                ct,
                st,
                denom,
                total,
            },
        ),
    ))
}

// ----------------------------------------------------------------------------------------------
// Dense-target cross-entropy
// ----------------------------------------------------------------------------------------------

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

impl Tensor {
    /// Cross-entropy between logits and class-index targets, like
    /// `torch.nn.functional.cross_entropy`.
    ///
    /// - `self`: logits `[N, C]`, `[N, C, d1, ...]` (class axis 1) or `[C]`.
    /// - `targets`: I64 or I32 (or U8) class indices of shape `[N]`, `[N, d1, ...]` or `[]`.
    ///   A target outside `0..C` that is not `ignore_index` is an error naming it and `C`.
    /// - Element loss: `l = (1−ε)·w_t·(−log p_t) + (ε/C)·Σ_c w_c·(−log p_c)`, times the
    ///   element's sample weight; 0 at ignored elements (`w` = class weights or 1, `ε` = label
    ///   smoothing; PyTorch's formula).
    /// - `Mean` divides the sum by `Σ sample_weight · w_t` over non-ignored elements (with no
    ///   weights: their count; with class weights only: PyTorch's weighted mean). When that
    ///   total is 0, e.g. every target is ignored, the mean is **0** (PyTorch gives NaN), so an
    ///   all-ignored batch does not poison training.
    ///
    /// Gradients flow to the logits and to the sample weights; class weights are constants
    /// (like PyTorch).
    ///
    /// ```
    /// use ferrovision_tensor::{ops::loss::CrossEntropyOpts, Tensor};
    /// let logits = Tensor::zeros(&[2, 4]);
    /// let targets = Tensor::from_vec(vec![1i64, 3], &[2]).unwrap();
    /// let l = logits.cross_entropy(&targets, &CrossEntropyOpts::default()).unwrap();
    /// assert!((l.item().unwrap() - 4f64.ln()).abs() < 1e-6);
    /// ```
    pub fn cross_entropy(&self, targets: &Tensor, opts: &CrossEntropyOpts) -> Result<Tensor> {
        class_loss("cross_entropy", self, targets, opts, true)
    }

    /// Negative log-likelihood of class-index targets given log-probabilities (like
    /// `torch.nn.functional.nll_loss`), same shapes and options as [`Tensor::cross_entropy`]:
    /// `l = −(1−ε)·w_t·x_t − (ε/C)·Σ_c w_c·x_c` (PyTorch's `nll_loss` has no label smoothing; with
    /// `ε = 0` it matches it exactly).
    pub fn nll_loss(&self, targets: &Tensor, opts: &CrossEntropyOpts) -> Result<Tensor> {
        class_loss("nll_loss", self, targets, opts, false)
    }

    /// Cross-entropy with dense (soft or one-hot) targets, like
    /// `torch.nn.functional.cross_entropy` given class probabilities: `target_probs` has the
    /// logits' shape (class axis 1, or 0 for `[C]`), smoothed as `(1−ε)·q + ε/C`, and
    /// `l = −Σ_c q'_c·log p_c` per position. `Mean` averages over positions (0 when there are
    /// none). Differentiable in both the logits and the targets.
    pub fn cross_entropy_dense(
        &self,
        target_probs: &Tensor,
        label_smoothing: f32,
        reduction: Reduction,
    ) -> Result<Tensor> {
        const OP: &str = "cross_entropy_dense";
        same_shape(OP, self, target_probs)?;
        let (d, tshape) = class_dims(OP, self)?;
        let eps = label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                OP,
                format!("label_smoothing must be in [0, 1], got {eps}"),
            ));
        }
        let x = dense(self)?;
        let q = dense(target_probs)?;
        let st = x.with_f32(OP, |xs| q.with_f32(OP, |qs| dense_forward(xs, qs, d, eps)))??;
        let denom = d.positions() as f64;
        let out = reduce_losses(st.len(), &tshape, reduction, denom, true, |p| st[p].loss);
        Ok(record_rule(
            out,
            Op::CrossEntropyDense {
                label_smoothing,
                reduction,
            },
            &[self, target_probs],
            dense_grad,
            Saved::with_state(vec![x, q], (d, st, denom)),
        ))
    }

    /// Binary cross-entropy on logits, like `torch.nn.functional.binary_cross_entropy_with_logits`
    /// (stable: never forms `sigmoid` then `log`):
    /// `l = w·[(1−y)·x + (1 + (pw−1)·y)·softplus(−x)]`, i.e.
    /// `−w·[pw·y·log σ(x) + (1−y)·log(1−σ(x))]`.
    ///
    /// `targets` (f32) has the input's shape; `weight` and `pos_weight` broadcast to it (a `[C]`
    /// `pos_weight` applies along the last dimension, like PyTorch). `Mean` averages over all
    /// elements. Gradients flow to the input, the targets, `weight` and `pos_weight`.
    pub fn binary_cross_entropy_with_logits(
        &self,
        targets: &Tensor,
        weight: Option<&Tensor>,
        pos_weight: Option<&Tensor>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        const OP: &str = "binary_cross_entropy_with_logits";
        same_shape(OP, self, targets)?;
        let shape = self.shape().to_vec();
        let w = broadcast_weight(OP, "weight", weight, &shape)?;
        let pw = broadcast_weight(OP, "pos_weight", pos_weight, &shape)?;
        let x = self.to_vec_f32()?;
        let y = targets.to_vec_f32()?;
        let n = x.len();
        let denom = n as f64;
        let losses = chunked(n, |i0, o| {
            bce_logits_unweighted(&x[i0..], &y[i0..], pw.as_ref().map(|p| &p[i0..]), o);
            if let Some(w) = &w {
                mul_in_place(o, &w[i0..]);
            }
        });
        let out = reduce_vec(losses, &shape, reduction, denom, false);
        let mut inputs = vec![self, targets];
        inputs.extend(weight);
        inputs.extend(pos_weight);
        let flags = (
            self.requires_grad(),
            targets.requires_grad(),
            weight.is_some_and(|t| t.requires_grad()),
            pos_weight.is_some_and(|t| t.requires_grad()),
        );
        let shapes = (
            weight.map(|t| t.shape().to_vec()),
            pos_weight.map(|t| t.shape().to_vec()),
        );
        Ok(record_rule(
            out,
            Op::BinaryCrossEntropyWithLogits { reduction },
            &inputs,
            bce_logits_grad,
            Saved::with_state(
                vec![],
                BceSaved {
                    x,
                    y,
                    w,
                    pw,
                    flags,
                    shapes,
                },
            ),
        ))
    }

    /// Binary cross-entropy on probabilities, like `torch.nn.functional.binary_cross_entropy`:
    /// `l = −w·[y·max(log p, −100) + (1−y)·max(log(1−p), −100)]`. Errors unless every `p` is in
    /// `[0, 1]`. `weight` broadcasts to the input. The input gradient is PyTorch's
    /// `w·(p − y) / max(p·(1−p), 1e-12)`. Gradients flow to the input, the targets and `weight`.
    pub fn binary_cross_entropy(
        &self,
        targets: &Tensor,
        weight: Option<&Tensor>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        const OP: &str = "binary_cross_entropy";
        same_shape(OP, self, targets)?;
        let shape = self.shape().to_vec();
        let w = broadcast_weight(OP, "weight", weight, &shape)?;
        let p = self.to_vec_f32()?;
        let y = targets.to_vec_f32()?;
        if let Some(bad) = p.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(Error::invalid(
                OP,
                format!("all elements of the input should be between 0 and 1, found {bad}"),
            ));
        }
        let n = p.len();
        let logs = |v: f32| (v.ln().max(-100.0), (-v).ln_1p().max(-100.0));
        let wt = |i: usize| w.as_ref().map_or(1.0, |w| w[i]);
        let denom = n as f64;
        let out = reduce_losses(n, &shape, reduction, denom, false, |i| {
            let (lp, lq) = logs(p[i]);
            -wt(i) * (y[i] * lp + (1.0 - y[i]) * lq)
        });
        let mut inputs = vec![self, targets];
        inputs.extend(weight);
        let flags = (
            self.requires_grad(),
            targets.requires_grad(),
            weight.is_some_and(|t| t.requires_grad()),
        );
        let wshape = weight.map(|t| t.shape().to_vec());
        Ok(record_rule(
            out,
            Op::BinaryCrossEntropy { reduction },
            &inputs,
            bce_grad,
            Saved::with_state(vec![], (p, y, w, flags, wshape)),
        ))
    }

    /// Mean squared error `(x − y)²` (like `torch.nn.functional.mse_loss`); `target` has the
    /// input's shape. Differentiable in both.
    pub fn mse_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        pointwise_loss(Op::MseLoss { reduction }, self, target, reduction, |d| {
            d * d
        })
    }

    /// Mean absolute error `|x − y|` (like `torch.nn.functional.l1_loss`); the gradient at
    /// `x == y` is 0. Differentiable in both.
    pub fn l1_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        pointwise_loss(Op::L1Loss { reduction }, self, target, reduction, |d| {
            d.abs()
        })
    }

    /// Huber loss (like `torch.nn.functional.huber_loss`): `0.5·d²` where `|d| < delta`, else
    /// `delta·(|d| − 0.5·delta)`, with `d = x − y`. `delta` must be positive.
    pub fn huber_loss(&self, target: &Tensor, delta: f32, reduction: Reduction) -> Result<Tensor> {
        if delta.is_nan() || delta <= 0.0 {
            return Err(Error::invalid(
                "huber_loss",
                format!("delta must be positive, got {delta}"),
            ));
        }
        pointwise_loss(
            Op::HuberLoss { delta, reduction },
            self,
            target,
            reduction,
            move |d| {
                let a = d.abs();
                if a < delta {
                    0.5 * d * d
                } else {
                    delta * (a - 0.5 * delta)
                }
            },
        )
    }
}

/// A loss `f(x − y)` per element; its derivative is in [`pointwise_grad`].
fn pointwise_loss(
    rec: Op,
    input: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    f: impl Fn(f32) -> f32 + Sync + Send + Copy + 'static,
) -> Result<Tensor> {
    let op = rec.name();
    same_shape(op, input, target)?;
    let shape = input.shape().to_vec();
    let a = dense(input)?;
    let b = dense(target)?;
    let n = a.numel();
    let denom = n as f64;
    let out = a.with_f32(op, |xs| {
        b.with_f32(op, |ys| {
            reduce_losses(n, &shape, reduction, denom, false, |i| f(xs[i] - ys[i]))
        })
    })??;
    Ok(record_rule(
        out,
        rec,
        &[input, target],
        pointwise_grad,
        Saved::tensors(vec![a, b]),
    ))
}

/// The gradient rule of the pointwise losses: `df(x − y)` for `x` and its negation for `y`,
/// with `df` the derivative of each loss (`2d`, `sign(d)`, `d` clamped to `±delta`).
fn pointwise_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    match *op {
        Op::MseLoss { reduction } => pointwise_backward(op, ctx, g, reduction, |d| 2.0 * d),
        Op::L1Loss { reduction } => pointwise_backward(op, ctx, g, reduction, |d| {
            if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Op::HuberLoss { delta, reduction } => pointwise_backward(op, ctx, g, reduction, move |d| {
            if d < -delta {
                -delta
            } else if d > delta {
                delta
            } else {
                d
            }
        }),
        _ => Err(ctx.unexpected()),
    }
}

/// `(g·df(x − y), −g·df(x − y))` from the saved input and target.
fn pointwise_backward(
    op: &Op,
    ctx: &GradCtx<'_>,
    g: &Tensor,
    reduction: Reduction,
    df: impl Fn(f32) -> f32 + Sync + Copy,
) -> Result<Vec<Option<Tensor>>> {
    let op = op.name();
    let (a, b) = (ctx.saved(0)?, ctx.saved(1)?);
    let n = a.numel();
    let sc = GradScale::new(g, reduction, n as f64)?;
    let dx = a.with_f32(op, |xs| {
        b.with_f32(op, |ys| sc.fill(n, |i, s| s * df(xs[i] - ys[i])))
    })??;
    let dx = Tensor::from_f32(dx, a.shape());
    let dy = if ctx.needs(1) { Some(dx.neg()?) } else { None };
    Ok(vec![ctx.needs(0).then_some(dx), dy])
}

/// The gradient rule of `cross_entropy` / `nll_loss` from the saved scores, targets and
/// per-position statistics (and, for sample weights, their loss terms).
fn class_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (reduction, normalize) = match *op {
        Op::CrossEntropy { reduction, .. } => (reduction, true),
        Op::NllLoss { reduction, .. } => (reduction, false),
        _ => return Err(ctx.unexpected()),
    };
    let op = op.name();
    let saved = ctx.take_state::<ClassSaved>()?;
    let ClassSaved {
        ct,
        st,
        denom,
        total,
    } = *saved;
    let x = ctx.saved(0)?;
    let (need_dx, has_sw, sw_grad) = (ctx.needs(0), ctx.num_inputs() == 2, ctx.needs(1));
    let gs = GradScale::new(g, reduction, denom)?;
    let dx = if need_dx {
        let sc = gs.fill(ct.cls.len(), |p, s| s * ct.sample_weight(p));
        let dx = x.with_f32(op, |xs| class_backward(xs, &ct, &st, &sc, normalize))?;
        Some(Tensor::from_f32(dx, x.shape()))
    } else {
        None
    };
    let mut grads = vec![dx];
    if has_sw {
        grads.push(if sw_grad {
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
        });
    }
    Ok(grads)
}

/// The gradient rule of `cross_entropy_dense` from the saved logits, targets and statistics.
fn dense_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::CrossEntropyDense {
        label_smoothing: eps,
        reduction,
    } = *op
    else {
        return Err(ctx.unexpected());
    };
    const OP: &str = "cross_entropy_dense";
    let saved = ctx.take_state::<(AxisDims, Vec<PosStat>, f64)>()?;
    let (d, st, denom) = *saved;
    let (x, q) = (ctx.saved(0)?, ctx.saved(1)?);
    let (want_dx, want_dq) = (ctx.needs(0), ctx.needs(1));
    let sc = GradScale::new(g, reduction, denom)?;
    let (dx, dq) = x.with_f32(OP, |xs| {
        q.with_f32(OP, |qs| {
            dense_backward(xs, qs, d, eps, &st, &sc, want_dx, want_dq)
        })
    })??;
    Ok(vec![
        dx.map(|v| Tensor::from_f32(v, x.shape())),
        dq.map(|v| Tensor::from_f32(v, x.shape())),
    ])
}

/// The gradient rule of `binary_cross_entropy_with_logits` from the saved logits, targets and
/// weights.
fn bce_logits_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::BinaryCrossEntropyWithLogits { reduction } = *op else {
        return Err(ctx.unexpected());
    };
    let saved = ctx.take_state::<BceSaved>()?;
    let BceSaved {
        x,
        y,
        w,
        pw,
        flags,
        shapes,
    } = *saved;
    let shape = ctx.input_shape(0).to_vec();
    let n = x.len();
    let denom = n as f64;
    let sc = GradScale::new(g, reduction, denom)?;
    // One gradient: `body(start, out)` fills a chunk, then weight and scale apply.
    let grad = |weighted: bool, body: &(dyn Fn(usize, &mut [f32]) + Sync)| {
        let mut v = chunked(n, |i0, o| {
            body(i0, o);
            if let (true, Some(w)) = (weighted, &w) {
                mul_in_place(o, &w[i0..]);
            }
        });
        sc.scale_in_place(&mut v);
        Tensor::from_f32(v, &shape)
    };
    let pwc = |i0: usize| pw.as_ref().map(|p| &p[i0..]);
    let dx = flags.0.then(|| {
        grad(true, &|i0, o| {
            // (1 − y) − (1 + (pw − 1)·y)·σ(−x)
            let (x, y) = (&x[i0..], &y[i0..]);
            match pwc(i0) {
                None => {
                    for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                        *o = (1.0 - y) - sigmoid(-x);
                    }
                }
                Some(p) => {
                    for (((o, &x), &y), &p) in o.iter_mut().zip(x).zip(y).zip(p) {
                        *o = (1.0 - y) - (1.0 + (p - 1.0) * y) * sigmoid(-x);
                    }
                }
            }
        })
    });
    let dy = flags.1.then(|| {
        grad(true, &|i0, o| {
            // −x + (pw − 1)·softplus(−x)
            let x = &x[i0..];
            match pwc(i0) {
                None => {
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = -x;
                    }
                }
                Some(p) => {
                    for ((o, &x), &p) in o.iter_mut().zip(x).zip(p) {
                        *o = -x + (p - 1.0) * softplus_neg(x);
                    }
                }
            }
        })
    });
    let dw = match (&shapes.0, flags.2) {
        (Some(ws), true) => Some(
            grad(false, &|i0, o| {
                bce_logits_unweighted(&x[i0..], &y[i0..], pwc(i0), o)
            })
            .sum_to_shape(ws)?,
        ),
        _ => None,
    };
    let dpw = match (&shapes.1, flags.3) {
        (Some(ps), true) => Some(
            grad(true, &|i0, o| {
                for ((o, &x), &y) in o.iter_mut().zip(&x[i0..]).zip(&y[i0..]) {
                    *o = y * softplus_neg(x);
                }
            })
            .sum_to_shape(ps)?,
        ),
        _ => None,
    };
    let mut v = vec![dx, dy];
    if shapes.0.is_some() {
        v.push(dw);
    }
    if shapes.1.is_some() {
        v.push(dpw);
    }
    Ok(v)
}

/// The gradient rule of `binary_cross_entropy` from the saved probabilities, targets and
/// weight.
fn bce_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::BinaryCrossEntropy { reduction } = *op else {
        return Err(ctx.unexpected());
    };
    #[allow(clippy::type_complexity)]
    let saved = ctx.take_state::<(
        Vec<f32>,
        Vec<f32>,
        Option<Vec<f32>>,
        (bool, bool, bool),
        Option<Vec<usize>>,
    )>()?;
    let (p, y, w, flags, wshape) = *saved;
    let shape = ctx.input_shape(0).to_vec();
    let n = p.len();
    let denom = n as f64;
    let sc = GradScale::new(g, reduction, denom)?;
    let logs = |v: f32| (v.ln().max(-100.0), (-v).ln_1p().max(-100.0));
    let wt = |i: usize| w.as_ref().map_or(1.0, |w| w[i]);
    let t = |v: Vec<f32>| Tensor::from_f32(v, &shape);
    let dx = flags.0.then(|| {
        t(sc.fill(n, |i, s| {
            s * wt(i) * (p[i] - y[i]) / ((1.0 - p[i]) * p[i]).max(1e-12)
        }))
    });
    let dy = flags.1.then(|| {
        t(sc.fill(n, |i, s| {
            let (lp, lq) = logs(p[i]);
            s * wt(i) * (lq - lp)
        }))
    });
    let mut v = vec![dx, dy];
    if let Some(ws) = &wshape {
        v.push(if flags.2 {
            Some(
                t(sc.fill(n, |i, s| {
                    let (lp, lq) = logs(p[i]);
                    -s * (y[i] * lp + (1.0 - y[i]) * lq)
                }))
                .sum_to_shape(ws)?,
            )
        } else {
            None
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log1p_unit_accuracy() {
        let mut worst = 0.0f64;
        let mut e = 0.0f32;
        while e <= 1.0 {
            let r = (e as f64).ln_1p();
            let got = log1p_unit(e) as f64;
            if r > 0.0 {
                worst = worst.max(((got - r) / r).abs());
            }
            e += 1.0 / 4099.0;
        }
        for e in [1e-30f32, 1e-12, 3e-8, 1e-4] {
            let r = (e as f64).ln_1p();
            worst = worst.max(((log1p_unit(e) as f64 - r) / r).abs());
        }
        assert!(worst < 3e-7, "{worst}");
        assert_eq!(log1p_unit(0.0), 0.0);
        assert!((softplus_neg(-100.0) - 100.0).abs() < 1e-5);
        assert!((softplus_neg(0.0) - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
