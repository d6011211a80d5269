//! CPU loss kernels behind [`Backend::loss`](super::super::Backend::loss) and `loss_backward`,
//! one file per kind: class-index and dense-target cross-entropy / NLL in `class.rs` (fused
//! log-sum-exp kernels over `[outer, C, inner]`), binary cross-entropy and the pointwise
//! regression losses in `elementwise.rs`. This file dispatches on the typed [`Op`] and holds the
//! shared pieces: deterministic parallel fills and sums, the reductions and the per-element
//! gradient scale.
//!
//! Every reduction sums in f64 over fixed chunks, so a loss does not depend on the thread count.
//! The op file (`ops/loss.rs`) validates, prepares class targets, records and keeps the
//! gradient rules' bookkeeping (which inputs get a gradient, summing weight gradients to their
//! shapes).

mod class;
mod elementwise;

use super::not_in_family;
use crate::autograd::Op;
use crate::ops::loss::{LossArgs, Reduction};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Result, Tensor};

/// What a loss's forward computed that its backward reuses (per-position statistics of the
/// cross-entropies, the read inputs of binary cross-entropy), opaque outside the CPU backend.
pub struct LossStats(pub(crate) Stats);

/// The per-family contents of [`LossStats`].
pub(crate) enum Stats {
    /// Cross-entropy / NLL over class indices.
    Class(class::ClassStats),
    /// Cross-entropy with dense targets.
    Dense(class::DenseStats),
    /// Binary cross-entropy (on logits or probabilities).
    Binary(elementwise::BinaryStats),
    /// The pointwise losses keep nothing beyond their saved inputs.
    Pointwise,
}

/// A loss of `args` (`op` is one of the loss records): its output and the statistics its
/// backward reuses.
pub(super) fn forward(op: &Op, args: &LossArgs<'_>) -> Result<(Tensor, LossStats)> {
    let (out, stats) = match (op, args) {
        (Op::CrossEntropy { reduction, .. }, LossArgs::Class { scores, targets }) => {
            class::class_loss(op.name(), scores, targets, true, *reduction)?
        }
        (Op::NllLoss { reduction, .. }, LossArgs::Class { scores, targets }) => {
            class::class_loss(op.name(), scores, targets, false, *reduction)?
        }
        (
            Op::CrossEntropyDense {
                label_smoothing,
                reduction,
            },
            LossArgs::Pair { input, target, .. },
        ) => class::dense_loss(input, target, *label_smoothing, *reduction)?,
        (
            Op::BinaryCrossEntropyWithLogits { reduction },
            LossArgs::Pair {
                input,
                target,
                weight,
                pos_weight,
            },
        ) => elementwise::bce_logits_loss(input, target, *weight, *pos_weight, *reduction)?,
        (
            Op::BinaryCrossEntropy { reduction },
            LossArgs::Pair {
                input,
                target,
                weight,
                ..
            },
        ) => elementwise::bce_loss(input, target, *weight, *reduction)?,
        (
            Op::MseLoss { .. } | Op::L1Loss { .. } | Op::HuberLoss { .. },
            LossArgs::Pair { input, target, .. },
        ) => (
            elementwise::pointwise_loss(op, input, target)?,
            Stats::Pointwise,
        ),
        _ => return Err(not_in_family(op, "loss")),
    };
    Ok((out, LossStats(stats)))
}

/// The gradients of a loss for the output gradient `g`, each only where `needs` asks (see
/// [`Backend::loss_backward`](super::super::Backend::loss_backward) for their order).
pub(super) fn backward(
    op: &Op,
    args: &LossArgs<'_>,
    stats: LossStats,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let need = |i: usize| needs.get(i).copied().unwrap_or(false);
    match (op, args, stats.0) {
        (
            Op::CrossEntropy { reduction, .. } | Op::NllLoss { reduction, .. },
            LossArgs::Class { scores, targets },
            Stats::Class(st),
        ) => {
            let normalize = matches!(op, Op::CrossEntropy { .. });
            let [dx, ds] = class::class_grad(
                op.name(),
                scores,
                targets,
                st,
                g,
                *reduction,
                normalize,
                [need(0), need(1)],
            )?;
            Ok(vec![dx, ds])
        }
        (
            Op::CrossEntropyDense {
                label_smoothing,
                reduction,
            },
            LossArgs::Pair { input, target, .. },
            Stats::Dense(st),
        ) => {
            let [dx, dq] = class::dense_grad(
                input,
                target,
                st,
                g,
                *label_smoothing,
                *reduction,
                [need(0), need(1)],
            )?;
            Ok(vec![dx, dq])
        }
        (
            Op::BinaryCrossEntropyWithLogits { reduction },
            LossArgs::Pair { input, .. },
            Stats::Binary(st),
        ) => Ok(elementwise::bce_logits_grad(
            input.shape(),
            st,
            g,
            *reduction,
            [need(0), need(1), need(2), need(3)],
        )?
        .to_vec()),
        (Op::BinaryCrossEntropy { reduction }, LossArgs::Pair { input, .. }, Stats::Binary(st)) => {
            Ok(elementwise::bce_grad(
                input.shape(),
                st,
                g,
                *reduction,
                [need(0), need(1), need(2)],
            )?
            .to_vec())
        }
        (
            Op::MseLoss { .. } | Op::L1Loss { .. } | Op::HuberLoss { .. },
            LossArgs::Pair { input, target, .. },
            Stats::Pointwise,
        ) => Ok(vec![Some(elementwise::pointwise_grad(
            op, input, target, g,
        )?)]),
        _ => Err(not_in_family(op, "loss")),
    }
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
    let s = crate::ops::axis::sum_f64(&v);
    pool::give_back(v);
    Tensor::scalar(match reduction {
        Reduction::Mean if denom == 0.0 && zero_if_empty => 0.0,
        Reduction::Mean => (s / denom) as f32,
        _ => s as f32,
    })
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
