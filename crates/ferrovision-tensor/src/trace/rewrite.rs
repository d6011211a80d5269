//! The plan optimisations: dead-step removal, batch-norm folding, ReLU epilogue fusion,
//! residual fusion, elementwise-chain fusion, and the release points of liveness.
//!
//! Folding (inference only): `bn(conv(x, W) + b)` with running statistics is
//! `conv(x, W·s) + (b − mean)·s + beta` with `s = gamma / sqrt(var + eps)` per output channel
//! (computed in f64). The folded weights are plan constants recomputed whenever a source weight's
//! storage version changes, so a plan traced before training stays right after it.

use super::exec::RESIDUAL_ARG;
use super::{refuse, Fold, Plan, Slot};
use crate::autograd::Op;
use crate::{Result, Tensor};
use std::sync::{Arc, Mutex, Weak};

/// A folded convolution weight and bias.
#[derive(Debug)]
pub(super) struct Folded {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
}

#[derive(Debug, PartialEq)]
struct FoldKey {
    sources: Vec<(u64, usize, Vec<usize>, u64)>,
    eps: u32,
}

/// Folds alive in some plan, by what they were computed from.
static SHARED_FOLDS: Mutex<Vec<(FoldKey, Weak<Folded>)>> = Mutex::new(Vec::new());

/// How many times each step's output is read (by later steps or as a plan output).
fn use_counts(plan: &Plan) -> Vec<usize> {
    let mut uses = vec![0usize; plan.steps.len()];
    let slots = plan
        .steps
        .iter()
        .flat_map(|s| s.args.iter().flatten())
        .chain(&plan.outputs);
    for s in slots {
        if let Slot::Value(j) = *s {
            uses[j] += 1;
        }
    }
    uses
}

/// Every slot the plan reads: the steps' operands, then the outputs.
fn slots_mut(plan: &mut Plan) -> impl Iterator<Item = &mut Slot> {
    plan.steps
        .iter_mut()
        .flat_map(|s| s.args.iter_mut().flatten())
        .chain(plan.outputs.iter_mut())
}

/// Points every read of step `from`'s output at `to` instead; step `from` is left reading
/// nothing (dead, removed by [`remove_dead`]).
fn alias(plan: &mut Plan, from: usize, to: Slot) {
    plan.steps[from].args.clear();
    for s in slots_mut(plan) {
        if *s == Slot::Value(from) {
            *s = to;
        }
    }
}

/// Drops the steps no output depends on; returns how many.
pub(super) fn remove_dead(plan: &mut Plan) -> usize {
    let n = plan.steps.len();
    let mut live = vec![false; n];
    for s in &plan.outputs {
        if let Slot::Value(j) = *s {
            live[j] = true;
        }
    }
    for i in (0..n).rev() {
        if live[i] {
            for a in plan.steps[i].args.iter().flatten() {
                if let Slot::Value(j) = *a {
                    live[j] = true;
                }
            }
        }
    }
    let mut new_index = vec![usize::MAX; n];
    let mut kept = 0;
    for (i, &l) in live.iter().enumerate() {
        if l {
            new_index[i] = kept;
            kept += 1;
        }
    }
    let mut i = 0;
    plan.steps.retain(|_| {
        i += 1;
        live[i - 1]
    });
    for s in slots_mut(plan) {
        if let Slot::Value(j) = s {
            *j = new_index[*j];
        }
    }
    n - kept
}

/// The tensors a batch-norm fold reads.
#[derive(Debug)]
pub(super) struct BnSources {
    weight: Tensor,
    bias: Option<Tensor>,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
    mean: Tensor,
    var: Tensor,
}

impl BnSources {
    fn all(&self) -> impl Iterator<Item = &Tensor> {
        [Some(&self.weight), self.bias.as_ref(), self.gamma.as_ref()]
            .into_iter()
            .chain([self.beta.as_ref(), Some(&self.mean), Some(&self.var)])
            .flatten()
    }

    fn versions(&self) -> Vec<u64> {
        self.all().map(|t| t.storage().version()).collect()
    }

    /// What identifies a fold's result: each source's storage, place in it and version.
    fn key(&self, eps: f32) -> FoldKey {
        let sources = self
            .all()
            .map(|t| {
                let l = t.layout();
                (
                    t.storage().id(),
                    l.offset,
                    l.shape.clone(),
                    t.storage().version(),
                )
            })
            .collect();
        FoldKey {
            sources,
            eps: eps.to_bits(),
        }
    }

    /// The folded weight and bias, shared with any live plan that folded the same sources at the
    /// same versions (a model traced for two batch sizes keeps one folded copy).
    fn fold_shared(&self, eps: f32) -> Result<Arc<Folded>> {
        let key = self.key(eps);
        let mut shared = SHARED_FOLDS.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|(_, w)| w.strong_count() > 0);
        if let Some(f) = shared
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(f);
        }
        let (weight, bias) = self.fold(eps)?;
        let f = Arc::new(Folded { weight, bias });
        shared.push((key, Arc::downgrade(&f)));
        Ok(f)
    }

    /// The folded convolution weight and bias.
    fn fold(&self, eps: f32) -> Result<(Tensor, Tensor)> {
        let w = self.weight.to_vec::<f32>()?;
        let cout = self.weight.shape()[0];
        let per = w.len() / cout.max(1);
        let vec64 = |t: &Option<Tensor>, default: f64| -> Result<Vec<f64>> {
            Ok(match t {
                Some(t) => t.to_f64_vec()?,
                None => vec![default; cout],
            })
        };
        let (bias, gamma, beta) = (
            vec64(&self.bias, 0.0)?,
            vec64(&self.gamma, 1.0)?,
            vec64(&self.beta, 0.0)?,
        );
        let (mean, var) = (self.mean.to_f64_vec()?, self.var.to_f64_vec()?);
        if [bias.len(), gamma.len(), beta.len(), mean.len(), var.len()]
            .iter()
            .any(|&l| l != cout)
        {
            return Err(refuse(
                "internal error: batch-norm statistics do not match the conv's channels",
            ));
        }
        let mut wf = Vec::with_capacity(w.len());
        let mut bf = Vec::with_capacity(cout);
        for o in 0..cout {
            let s = gamma[o] / (var[o] + eps as f64).sqrt();
            wf.extend(
                w[o * per..(o + 1) * per]
                    .iter()
                    .map(|&v| (v as f64 * s) as f32),
            );
            bf.push(((bias[o] - mean[o]) * s + beta[o]) as f32);
        }
        Ok((
            Tensor::from_vec(wf, self.weight.shape())?,
            Tensor::from_vec(bf, &[cout])?,
        ))
    }
}

/// Folds every inference batch norm whose input is a convolution used by nothing else.
pub(super) fn fold_batch_norms(plan: &mut Plan) -> Result<usize> {
    let mut count = 0;
    for j in 0..plan.steps.len() {
        let uses = use_counts(plan);
        let Op::BatchNorm {
            training: false,
            eps,
            ..
        } = plan.steps[j].op
        else {
            continue;
        };
        let bn = &plan.steps[j].args;
        let Some(Some(Slot::Value(c))) = bn.first().copied() else {
            continue;
        };
        if uses[c] != 1 || !matches!(plan.steps[c].op, Op::Conv { relu: false, .. }) {
            continue;
        }
        let konst = |s: Option<Slot>| -> Option<Option<Tensor>> {
            match s {
                None => Some(None),
                Some(Slot::Const(k)) => Some(Some(plan.consts[k].clone())),
                Some(_) => None,
            }
        };
        let conv = &plan.steps[c].args;
        let get = |v: &[Option<Slot>], i: usize| v.get(i).copied().flatten();
        let (Some(Some(weight)), Some(bias)) = (konst(get(conv, 1)), konst(get(conv, 2))) else {
            continue;
        };
        let (Some(gamma), Some(beta), Some(Some(mean)), Some(Some(var))) = (
            konst(get(bn, 1)),
            konst(get(bn, 2)),
            konst(get(bn, 3)),
            konst(get(bn, 4)),
        ) else {
            continue;
        };
        let sources = BnSources {
            weight,
            bias,
            gamma,
            beta,
            mean,
            var,
        };
        let folded = sources.fold_shared(eps)?;
        crate::backend::cpu::filter_cache::forget(&sources.weight);
        plan.consts.push(folded.weight.clone());
        plan.consts.push(folded.bias.clone());
        let (kw, kb) = (plan.consts.len() - 2, plan.consts.len() - 1);
        let args = &mut plan.steps[c].args;
        args.resize(3, None);
        args[1] = Some(Slot::Const(kw));
        args[2] = Some(Slot::Const(kb));
        alias(plan, j, Slot::Value(c));
        plan.folds.push(Fold {
            conv_weight: kw,
            conv_bias: kb,
            versions: sources.versions(),
            sources,
            eps,
            folded: Some(folded),
        });
        count += 1;
    }
    Ok(count)
}

/// Recomputes the folds whose source weights changed since they were computed.
pub(super) fn refresh_folds(plan: &mut Plan) -> Result<()> {
    for f in &mut plan.folds {
        let now = f.sources.versions();
        if now != f.versions || f.folded.is_none() {
            let folded = f.sources.fold_shared(f.eps)?;
            plan.consts[f.conv_weight] = folded.weight.clone();
            plan.consts[f.conv_bias] = folded.bias.clone();
            f.folded = Some(folded);
            f.versions = now;
        }
    }
    Ok(())
}

/// Drops the stale folds' tensors (see [`Plan::release_stale_folds`]): the plan's constants
/// point at the unfolded weight until [`refresh_folds`] runs.
pub(super) fn release_stale_folds(plan: &mut Plan, about_to_train: bool) -> usize {
    let mut released = 0;
    for f in &mut plan.folds {
        let trained = about_to_train && f.sources.all().any(Tensor::requires_grad);
        if f.folded.is_some() && (trained || f.sources.versions() != f.versions) {
            f.folded = None;
            plan.consts[f.conv_weight] = f.sources.weight.clone();
            plan.consts[f.conv_bias] = f.sources.weight.clone();
            released += 1;
        }
    }
    released
}

/// Moves each ReLU into the epilogue of the convolution or dense layer before it, or into the
/// pass of the elementwise binary op before it (when nothing else reads that output).
pub(super) fn fuse_relus(plan: &mut Plan) -> usize {
    let mut fused = 0;
    for j in 0..plan.steps.len() {
        if plan.steps[j].op != Op::Relu {
            continue;
        }
        let Some(Some(Slot::Value(c))) = plan.steps[j].args.first().copied() else {
            continue;
        };
        if use_counts(plan)[c] != 1 {
            continue;
        }
        let step = &mut plan.steps[c];
        match &mut step.op {
            Op::Conv { relu, .. } | Op::Linear { relu } if !*relu => *relu = true,
            op if super::exec::is_binary(op) && !step.relu_after => step.relu_after = true,
            _ => continue,
        }
        alias(plan, j, Slot::Value(c));
        fused += 1;
    }
    fused
}

/// Fuses each residual add into the convolution that makes one of its operands (when nothing
/// else reads the convolution's output and no broadcasting is involved):
/// `act(conv(x, W) + b + r)` in one pass, the GEMM epilogue adding `r` while the output tile is
/// in registers, instead of writing the convolution's output and reading it back. The fused
/// step takes the add's place (its residual may be computed after the convolution), and a ReLU
/// fused into the add ([`fuse_relus`], which runs first) moves into the convolution. The sum is
/// the same (`(conv + b) + r`, addition commutes), so results are unchanged.
pub(super) fn fuse_residuals(plan: &mut Plan) -> usize {
    let mut fused = 0;
    for j in 0..plan.steps.len() {
        if plan.steps[j].op != Op::Add || plan.steps[j].args.len() != 2 {
            continue;
        }
        let uses = use_counts(plan);
        let out_shape = plan.steps[j].out_shape.clone();
        let shape_of = |plan: &Plan, s: Slot| -> Option<Vec<usize>> {
            match s {
                Slot::Value(k) => Some(plan.steps[k].out_shape.clone()),
                Slot::Input(i) => plan.signature.get(i).map(|(shape, _)| shape.clone()),
                Slot::Const(k) => plan.consts.get(k).map(|t| t.shape().to_vec()),
            }
        };
        let (Some(a), Some(b)) = (plan.steps[j].args[0], plan.steps[j].args[1]) else {
            continue;
        };
        for (conv, residual) in [(a, b), (b, a)] {
            let Slot::Value(c) = conv else { continue };
            let is_conv = matches!(plan.steps[c].op, Op::Conv { relu: false, .. });
            if !is_conv
                || uses[c] != 1
                || plan.steps[c].args.len() > RESIDUAL_ARG
                || plan.steps[c].out_shape != out_shape
                || shape_of(plan, residual).as_deref() != Some(out_shape.as_slice())
            {
                continue;
            }
            let relu = plan.steps[j].relu_after;
            let mut step_args = std::mem::take(&mut plan.steps[c].args);
            step_args.resize(RESIDUAL_ARG, None);
            step_args.push(Some(residual));
            let mut op = plan.steps[c].op.clone();
            if let Op::Conv { relu: r, .. } = &mut op {
                *r = relu;
            }
            let step = &mut plan.steps[j];
            step.op = op;
            step.args = step_args;
            step.relu_after = false;
            // Step `c` now reads nothing and nobody reads it: removed as dead.
            fused += 1;
            break;
        }
    }
    fused
}

/// Runs each elementwise unary op (an activation other than a fused ReLU, scalar arithmetic)
/// in the pass of the step that makes its input, when nothing else reads that input:
/// `relu6(conv(x))` becomes the convolution, then one blocked pass of ReLU6 in the
/// convolution's fresh output buffer; a chain `f(g(h(x)))` one pass of all three
/// (`Backend::unary_chain`). Each op still runs its own kernel on every value, in the same
/// order: bitwise the unfused result.
pub(super) fn fuse_chains(plan: &mut Plan) -> usize {
    let mut fused = 0;
    for j in 0..plan.steps.len() {
        if !super::exec::is_unary_elementwise(&plan.steps[j].op) || plan.steps[j].relu_after {
            continue;
        }
        let Some(Some(Slot::Value(c))) = plan.steps[j].args.first().copied() else {
            continue;
        };
        if use_counts(plan)[c] != 1 {
            continue;
        }
        let op = plan.steps[j].op.clone();
        let tail = std::mem::take(&mut plan.steps[j].chain);
        plan.steps[c].chain.push(op);
        plan.steps[c].chain.extend(tail);
        alias(plan, j, Slot::Value(c));
        fused += 1;
    }
    fused
}

/// Sets each step's release list: the values read for the last time there.
pub(super) fn plan_releases(plan: &mut Plan) {
    let n = plan.steps.len();
    let mut last = (0..n).collect::<Vec<usize>>();
    for (i, s) in plan.steps.iter().enumerate() {
        for a in s.args.iter().flatten() {
            if let Slot::Value(j) = *a {
                last[j] = last[j].max(i);
            }
        }
    }
    let mut keep = vec![false; n];
    for s in &plan.outputs {
        if let Slot::Value(j) = *s {
            keep[j] = true;
        }
    }
    for s in &mut plan.steps {
        s.release.clear();
    }
    for j in 0..n {
        if !keep[j] {
            plan.steps[last[j]].release.push(j);
        }
    }
}
