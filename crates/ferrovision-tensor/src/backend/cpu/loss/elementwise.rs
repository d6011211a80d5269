//! Elementwise losses: binary cross-entropy on logits (stable, never forms `sigmoid` then
//! `log`) and on probabilities, and the pointwise regression losses `f(x − y)` (MSE, L1,
//! Huber). Each element's loss and gradient depend on that element alone, so the kernels are
//! parallel fills over chunks and the reductions are the shared deterministic sums.

use super::{chunked, mul_in_place, reduce_losses, reduce_vec, GradScale, Stats, ToVecF32};
use crate::autograd::Op;
use crate::ops::axis::fast_exp;
use crate::ops::loss::Reduction;
use crate::{Error, Result, Tensor};

/// The read inputs of binary cross-entropy that its backward reuses: logits (or
/// probabilities), targets and the weights expanded to the input's shape.
pub(crate) struct BinaryStats {
    x: Vec<f32>,
    y: Vec<f32>,
    w: Option<Vec<f32>>,
    pw: Option<Vec<f32>>,
}

/// Reads an optional expanded weight.
fn read_weight(t: Option<&Tensor>) -> Result<Option<Vec<f32>>> {
    t.map(|t| t.to_vec_f32()).transpose()
}

/// Binary cross-entropy on logits:
/// `l = w·[(1−y)·x + (1 + (pw−1)·y)·softplus(−x)]` per element, then reduced.
pub(super) fn bce_logits_loss(
    input: &Tensor,
    targets: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<(Tensor, Stats)> {
    let shape = input.shape().to_vec();
    let w = read_weight(weight)?;
    let pw = read_weight(pos_weight)?;
    let x = input.to_vec_f32()?;
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
    Ok((out, Stats::Binary(BinaryStats { x, y, w, pw })))
}

/// `[dx, dy, dweight, dpos_weight]` of binary cross-entropy on logits, each where `needs` asks;
/// the weight gradients have the input's shape (the op sums them to the weights' shapes).
pub(super) fn bce_logits_grad(
    in_shape: &[usize],
    saved: BinaryStats,
    g: &Tensor,
    reduction: Reduction,
    needs: [bool; 4],
) -> Result<[Option<Tensor>; 4]> {
    let BinaryStats { x, y, w, pw } = saved;
    let flags = (needs[0], needs[1]);
    let shape = in_shape.to_vec();
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
    let dw = needs[2].then(|| {
        grad(false, &|i0, o| {
            bce_logits_unweighted(&x[i0..], &y[i0..], pwc(i0), o)
        })
    });
    let dpw = needs[3].then(|| {
        grad(true, &|i0, o| {
            for ((o, &x), &y) in o.iter_mut().zip(&x[i0..]).zip(&y[i0..]) {
                *o = y * softplus_neg(x);
            }
        })
    });
    Ok([dx, dy, dw, dpw])
}

/// Binary cross-entropy on probabilities:
/// `l = −w·[y·max(log p, −100) + (1−y)·max(log(1−p), −100)]` per element, then reduced. Errors
/// unless every `p` is in `[0, 1]`.
pub(super) fn bce_loss(
    input: &Tensor,
    targets: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<(Tensor, Stats)> {
    const OP: &str = "binary_cross_entropy";
    let shape = input.shape().to_vec();
    let w = read_weight(weight)?;
    let p = input.to_vec_f32()?;
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
    let stats = BinaryStats {
        x: p,
        y,
        w,
        pw: None,
    };
    Ok((out, Stats::Binary(stats)))
}

/// `[dx, dy, dweight]` of binary cross-entropy on probabilities, each where `needs` asks (the
/// weight gradient has the input's shape).
pub(super) fn bce_grad(
    in_shape: &[usize],
    saved: BinaryStats,
    g: &Tensor,
    reduction: Reduction,
    needs: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let BinaryStats { x: p, y, w, .. } = saved;
    let flags = (needs[0], needs[1]);
    let shape = in_shape.to_vec();
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
    let dw = needs[2].then(|| {
        t(sc.fill(n, |i, s| {
            let (lp, lq) = logs(p[i]);
            -s * (y[i] * lp + (1.0 - y[i]) * lq)
        }))
    });
    Ok([dx, dy, dw])
}

/// A pointwise loss (`op` is `MseLoss`, `L1Loss` or `HuberLoss`) of the dense `a` and `b`:
/// `f(a − b)` per element, then reduced.
pub(super) fn pointwise_loss(op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match *op {
        Op::MseLoss { reduction } => pointwise_forward(op, a, b, reduction, |d| d * d),
        Op::L1Loss { reduction } => pointwise_forward(op, a, b, reduction, |d| d.abs()),
        Op::HuberLoss { delta, reduction } => pointwise_forward(op, a, b, reduction, move |d| {
            let a = d.abs();
            if a < delta {
                0.5 * d * d
            } else {
                delta * (a - 0.5 * delta)
            }
        }),
        _ => Err(super::not_in_family(op, "pointwise loss")),
    }
}

/// The input gradient `g·df(a − b)` of a pointwise loss, with `df` the derivative of each loss
/// (`2d`, `sign(d)`, `d` clamped to `±delta`); the target's is its negation.
pub(super) fn pointwise_grad(op: &Op, a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Tensor> {
    match *op {
        Op::MseLoss { reduction } => pointwise_backward(op, a, b, g, reduction, |d| 2.0 * d),
        Op::L1Loss { reduction } => pointwise_backward(op, a, b, g, reduction, |d| {
            if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Op::HuberLoss { delta, reduction } => {
            pointwise_backward(op, a, b, g, reduction, move |d| {
                if d < -delta {
                    -delta
                } else if d > delta {
                    delta
                } else {
                    d
                }
            })
        }
        _ => Err(super::not_in_family(op, "pointwise loss")),
    }
}

/// `f(x − y)` per element of the dense `a` and `b`, reduced.
fn pointwise_forward(
    rec: &Op,
    a: &Tensor,
    b: &Tensor,
    reduction: Reduction,
    f: impl Fn(f32) -> f32 + Sync + Send + Copy,
) -> Result<Tensor> {
    let op = rec.name();
    let shape = a.shape().to_vec();
    let n = a.numel();
    let denom = n as f64;
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| {
            reduce_losses(n, &shape, reduction, denom, false, |i| f(xs[i] - ys[i]))
        })
    })?
}

/// `g·df(x − y)` per element of the dense `a` and `b`.
fn pointwise_backward(
    op: &Op,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
    reduction: Reduction,
    df: impl Fn(f32) -> f32 + Sync + Copy,
) -> Result<Tensor> {
    let op = op.name();
    let n = a.numel();
    let sc = GradScale::new(g, reduction, n as f64)?;
    let dx = a.with_f32(op, |xs| {
        b.with_f32(op, |ys| sc.fill(n, |i, s| s * df(xs[i] - ys[i])))
    })??;
    Ok(Tensor::from_f32(dx, a.shape()))
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
