//! Loss functions with PyTorch semantics: cross-entropy (class indices or dense/soft targets,
//! class weights, sample weights, `ignore_index`, label smoothing), NLL, binary cross-entropy
//! (on logits, stable; and on probabilities), MSE, L1 and Huber.
//!
//! Cross-entropy is one fused kernel per direction: the forward computes each position's
//! log-sum-exp and loss straight from the logits (probabilities are never stored), and the
//! backward recomputes `softmax − onehot` from the logits and the saved log-sum-exp. Logits are
//! `[N, C]` or `[N, C, d1, ...]` (class axis 1, e.g. per-pixel segmentation scores) or `[C]`;
//! the `[N, C, d...]` case runs on tiles of neighbouring positions so every loop is contiguous.
//!
//! The op methods validate, prepare the targets ([`ClassTargets`]) and expanded weights, run
//! [`Backend::loss`](crate::backend::Backend::loss) and record; the gradient rules run
//! `Backend::loss_backward` and sum weight gradients to the weights' shapes (the kernels are
//! in `backend/cpu/loss/`).

use super::axis::{dense, AxisDims};
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend::{self, LossStats};
use crate::shape::broadcast_shapes;
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

/// The inputs of a loss as a [`Backend`](crate::backend::Backend) sees them (made by the op
/// methods; tensors are dense).
pub enum LossArgs<'a> {
    /// `cross_entropy` / `nll_loss`: the scores and the validated class targets.
    Class {
        /// Logits (or log-probabilities), class axis 1 (or 0 for `[C]`).
        scores: &'a Tensor,
        /// The validated targets, weights and label smoothing.
        targets: &'a ClassTargets,
    },
    /// The other losses: an input and a target of the same shape, and binary cross-entropy's
    /// weights expanded to that shape.
    Pair {
        /// Logits, probabilities or predictions.
        input: &'a Tensor,
        /// Target values (or probabilities for `cross_entropy_dense`).
        target: &'a Tensor,
        /// Per-element weights (binary cross-entropy).
        weight: Option<&'a Tensor>,
        /// Per-element positive-class weights (binary cross-entropy on logits).
        pos_weight: Option<&'a Tensor>,
    },
}

/// Checks an optional weight that must broadcast to `shape`: the weight expanded to the full
/// shape as a dense constant.
fn broadcast_weight(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    shape: &[usize],
) -> Result<Option<Tensor>> {
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
    Ok(Some(dense(&t.detach().expand(shape)?)?))
}

/// Checks that input and target are f32 on one device with the same shape.
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

// ----------------------------------------------------------------------------------------------
// Class-index losses (cross-entropy, NLL)
// ----------------------------------------------------------------------------------------------

/// Marks an ignored position in the class vector.
pub(crate) const IGNORED: u32 = u32::MAX;

/// Validated targets and options of a class-index loss (made by the op method, run by a
/// [`Backend`](crate::backend::Backend)).
pub struct ClassTargets {
    /// The logits as `[outer = N, C, inner = d1·d2·…]`.
    pub(crate) d: AxisDims,
    /// The targets' shape.
    pub(crate) tshape: Vec<usize>,
    /// Target class per position (`IGNORED` where ignored).
    pub(crate) cls: Vec<u32>,
    /// Sample weight per position.
    pub(crate) sw: Option<Vec<f32>>,
    /// Class weights.
    pub(crate) cw: Option<Vec<f32>>,
    /// Σ class weights (C without weights).
    pub(crate) wsum: f32,
    /// Label smoothing.
    pub(crate) eps: f32,
}

impl ClassTargets {
    /// The class weight of target `t` (0 where ignored).
    #[inline]
    pub(crate) fn class_weight(&self, t: u32) -> f32 {
        match (&self.cw, t) {
            (_, IGNORED) => 0.0,
            (Some(w), t) => w[t as usize],
            (None, _) => 1.0,
        }
    }

    /// The sample weight of position `p` (0 where ignored).
    #[inline]
    pub(crate) fn sample_weight(&self, p: usize) -> f32 {
        match (&self.sw, self.cls[p]) {
            (_, IGNORED) => 0.0,
            (Some(s), _) => s[p],
            (None, _) => 1.0,
        }
    }
}

/// The class indices as i64.
fn read_targets(op: &'static str, t: &Tensor) -> Result<Vec<i64>> {
    Ok(match t.dtype() {
        DType::I64 => t.to_vec::<i64>()?,
        DType::I32 => t.to_vec::<i32>()?.into_iter().map(i64::from).collect(),
        DType::U8 => t.to_vec::<u8>()?.into_iter().map(i64::from).collect(),
        dt => return Err(Error::dtype(op, dt, "I64 or I32 class indices")),
    })
}

/// `[outer = N, C, inner = d1·d2·…]` of logits and the targets shape they need.
pub(crate) fn class_dims(op: &'static str, logits: &Tensor) -> Result<(AxisDims, Vec<usize>)> {
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

/// Validates class-index targets and options against the logits.
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
            Some(s.to_vec::<f32>()?)
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

/// What `cross_entropy` / `nll_loss` keep for the gradient (with the dense scores).
struct ClassSaved {
    ct: ClassTargets,
    stats: LossStats,
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
    // The device first: preparing reads the targets and weights on the host.
    let b = backend::for_device(scores.device(), op)?;
    let ct = prepare(op, scores, targets, opts)?;
    let x = dense(scores)?;
    let reduction = opts.reduction;
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
    let args = LossArgs::Class {
        scores: &x,
        targets: &ct,
    };
    let (out, stats) = b.loss(&rec, &args)?;
    let mut inputs = vec![scores];
    if let Some(s) = &opts.sample_weights {
        inputs.push(s);
    }
    Ok(record_rule(
        out,
        rec,
        &inputs,
        class_grad,
        Saved::with_state(vec![x], ClassSaved { ct, stats }),
    ))
}

/// What binary cross-entropy (on logits or probabilities) keeps for the gradient: which inputs
/// want one (input, target, weight, pos_weight), the weights' own shapes and the backend's
/// statistics.
struct BceSaved {
    flags: (bool, bool, bool, bool),
    shapes: (Option<Vec<usize>>, Option<Vec<usize>>),
    stats: LossStats,
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
        class_dims(OP, self)?;
        let eps = label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                OP,
                format!("label_smoothing must be in [0, 1], got {eps}"),
            ));
        }
        let x = dense(self)?;
        let q = dense(target_probs)?;
        let rec = Op::CrossEntropyDense {
            label_smoothing,
            reduction,
        };
        let args = LossArgs::Pair {
            input: &x,
            target: &q,
            weight: None,
            pos_weight: None,
        };
        let (out, stats) = backend::for_device(x.device(), OP)?.loss(&rec, &args)?;
        Ok(record_rule(
            out,
            rec,
            &[self, target_probs],
            dense_grad,
            Saved::with_state(vec![x, q], stats),
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
        let x = dense(self)?;
        let y = dense(targets)?;
        let rec = Op::BinaryCrossEntropyWithLogits { reduction };
        let args = LossArgs::Pair {
            input: &x,
            target: &y,
            weight: w.as_ref(),
            pos_weight: pw.as_ref(),
        };
        let (out, stats) = backend::for_device(x.device(), OP)?.loss(&rec, &args)?;
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
            rec,
            &inputs,
            bce_logits_grad,
            Saved::with_state(
                vec![x, y],
                BceSaved {
                    flags,
                    shapes,
                    stats,
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
        let p = dense(self)?;
        let y = dense(targets)?;
        let rec = Op::BinaryCrossEntropy { reduction };
        let args = LossArgs::Pair {
            input: &p,
            target: &y,
            weight: w.as_ref(),
            pos_weight: None,
        };
        let (out, stats) = backend::for_device(p.device(), OP)?.loss(&rec, &args)?;
        let mut inputs = vec![self, targets];
        inputs.extend(weight);
        let flags = (
            self.requires_grad(),
            targets.requires_grad(),
            weight.is_some_and(|t| t.requires_grad()),
        );
        let wshape = weight.map(|t| t.shape().to_vec());
        let flags = (flags.0, flags.1, flags.2, false);
        let saved = BceSaved {
            flags,
            shapes: (wshape, None),
            stats,
        };
        Ok(record_rule(
            out,
            rec,
            &inputs,
            bce_grad,
            Saved::with_state(vec![p, y], saved),
        ))
    }

    /// Mean squared error `(x − y)²` (like `torch.nn.functional.mse_loss`); `target` has the
    /// input's shape. Differentiable in both.
    pub fn mse_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        pointwise_loss(Op::MseLoss { reduction }, self, target)
    }

    /// Mean absolute error `|x − y|` (like `torch.nn.functional.l1_loss`); the gradient at
    /// `x == y` is 0. Differentiable in both.
    pub fn l1_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        pointwise_loss(Op::L1Loss { reduction }, self, target)
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
        pointwise_loss(Op::HuberLoss { delta, reduction }, self, target)
    }
}

/// A loss `f(x − y)` per element (`rec` is `MseLoss`, `L1Loss` or `HuberLoss`).
fn pointwise_loss(rec: Op, input: &Tensor, target: &Tensor) -> Result<Tensor> {
    let op = rec.name();
    same_shape(op, input, target)?;
    let a = dense(input)?;
    let b = dense(target)?;
    let args = LossArgs::Pair {
        input: &a,
        target: &b,
        weight: None,
        pos_weight: None,
    };
    let (out, stats) = backend::for_device(a.device(), op)?.loss(&rec, &args)?;
    Ok(record_rule(
        out,
        rec,
        &[input, target],
        pointwise_grad,
        Saved::with_state(vec![a, b], stats),
    ))
}

/// The saved pair of a [`LossArgs::Pair`] loss.
fn saved_pair<'a>(ctx: &'a GradCtx<'_>) -> Result<LossArgs<'a>> {
    Ok(LossArgs::Pair {
        input: ctx.saved(0)?,
        target: ctx.saved(1)?,
        weight: None,
        pos_weight: None,
    })
}

/// The gradient rule of the pointwise losses: `g·df(x − y)` for `x` and its negation for `y`.
fn pointwise_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if !matches!(
        op,
        Op::MseLoss { .. } | Op::L1Loss { .. } | Op::HuberLoss { .. }
    ) {
        return Err(ctx.unexpected());
    }
    let stats = *ctx.take_state::<LossStats>()?;
    let args = saved_pair(ctx)?;
    let b = backend::for_device(g.device(), op.name())?;
    let mut grads = b.loss_backward(op, &args, stats, g, &[true])?;
    let dx = grads
        .pop()
        .flatten()
        .ok_or_else(|| ctx.internal("no input gradient"))?;
    let dy = if ctx.needs(1) { Some(dx.neg()?) } else { None };
    Ok(vec![ctx.needs(0).then_some(dx), dy])
}

/// The gradient rule of `cross_entropy` / `nll_loss` from the saved scores, targets and
/// per-position statistics (and, for sample weights, their loss terms).
fn class_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if !matches!(op, Op::CrossEntropy { .. } | Op::NllLoss { .. }) {
        return Err(ctx.unexpected());
    }
    let ClassSaved { ct, stats } = *ctx.take_state::<ClassSaved>()?;
    let x = ctx.saved(0)?;
    let (need_dx, has_sw, sw_grad) = (ctx.needs(0), ctx.num_inputs() == 2, ctx.needs(1));
    let args = LossArgs::Class {
        scores: x,
        targets: &ct,
    };
    let b = backend::for_device(x.device(), op.name())?;
    let mut grads = b.loss_backward(op, &args, stats, g, &[need_dx, has_sw && sw_grad])?;
    if !has_sw {
        grads.truncate(1);
    }
    Ok(grads)
}

/// The gradient rule of `cross_entropy_dense` from the saved logits, targets and statistics.
fn dense_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if !matches!(op, Op::CrossEntropyDense { .. }) {
        return Err(ctx.unexpected());
    }
    let stats = *ctx.take_state::<LossStats>()?;
    let args = saved_pair(ctx)?;
    let needs = [ctx.needs(0), ctx.needs(1)];
    backend::for_device(g.device(), op.name())?.loss_backward(op, &args, stats, g, &needs)
}

/// The gradient rule of `binary_cross_entropy_with_logits` and `binary_cross_entropy`: the
/// backend's gradients, the weights' summed to their own shapes; one entry per recorded input.
fn binary_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let saved = *ctx.take_state::<BceSaved>()?;
    let BceSaved {
        flags,
        shapes,
        stats,
    } = saved;
    let needs = [
        flags.0,
        flags.1,
        flags.2 && shapes.0.is_some(),
        flags.3 && shapes.1.is_some(),
    ];
    let args = saved_pair(ctx)?;
    let b = backend::for_device(g.device(), op.name())?;
    let mut grads = b.loss_backward(op, &args, stats, g, &needs)?;
    grads.resize(4, None);
    let mut v = grads[..2].to_vec();
    // Only the weights that were given are recorded inputs.
    for (shape, d) in [&shapes.0, &shapes.1].into_iter().zip(&grads[2..]) {
        if let Some(shape) = shape {
            v.push(d.as_ref().map(|d| d.sum_to_shape(shape)).transpose()?);
        }
    }
    Ok(v)
}

/// The gradient rule of `binary_cross_entropy_with_logits` from the saved logits, targets and
/// weights.
fn bce_logits_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::BinaryCrossEntropyWithLogits { .. } = *op else {
        return Err(ctx.unexpected());
    };
    binary_grad(op, ctx, g)
}

/// The gradient rule of `binary_cross_entropy` from the saved probabilities, targets and
/// weight.
fn bce_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::BinaryCrossEntropy { .. } = *op else {
        return Err(ctx.unexpected());
    };
    binary_grad(op, ctx, g)
}
