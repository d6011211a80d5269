//! Traced training steps: a network's forward pass in training mode, replayed with its backward
//! pass, the engine's `tf.function` for `fit`.
//!
//! [`trace_training`] captures the forward pass like [`super::trace`] (no batch-norm folding or
//! epilogue fusions: training needs every intermediate the gradient rules read) and keeps, per
//! step, where the inputs its gradient rule sees come from. [`Plan::run`] then replays it:
//!
//! - **Forward.** Each step whose inputs take part in autodiff (a trainable weight upstream)
//!   runs its op with the recorder in collecting mode (`autograd::collect_backward`): the op
//!   computes and saves exactly what it saves eagerly, and hands its gradient rule and saved
//!   values to the plan instead of building a graph node. Steps on the inputs alone run without
//!   recording. Batch norms in training mode update their running statistics as eagerly, and
//!   dropouts drawing from the process-wide generator draw their next masks from it.
//! - **One graph node.** The outputs that carry gradients are joined under one node whose inputs
//!   are the trainable weights the steps read (several outputs: one flat buffer, the outputs
//!   views of it), so a loss built on them eagerly (any loss, penalties, a custom step)
//!   backpropagates into the plan as into any op.
//! - **Backward.** The node's gradient runs the saved rules in reverse step order (a reverse
//!   topological order), summing the gradients of values read by several steps as eagerly
//!   (`a + b`), and returns the weights' gradients, which autodiff accumulates into their
//!   `grad()` as for any leaf. With at most two contributions per value (sums are commutative)
//!   this is bitwise what the eager engine computes; with more, the order of the sum may differ
//!   from the eager engine's (rounding only).
//!
//! Refused (the caller trains eagerly): ops without a replay (dropout from a caller's generator,
//! which the record does not name; masks made on the host; losses; user ops) and inputs that require gradients (adversarial training differentiates the
//! inputs: not covered).

use super::{capture_run, exec, refuse, Plan, Slot};
use crate::autograd::{
    accumulate, collect_backward, is_grad_enabled, record_closure, run_gradient, Backward, Op,
    RuleInputs,
};
use crate::{Error, Result, Tensor};
use std::sync::Arc;

/// Name of the graph node a training plan's outputs hang from.
const NODE: &str = "traced_training_step";

/// One step as its gradient rule sees it.
#[derive(Debug)]
struct BackStep {
    op: Op,
    inputs: Vec<Slot>,
    shapes: Vec<Vec<usize>>,
}

/// The backward half of a training plan.
#[derive(Debug)]
pub(super) struct Backprop {
    program: Arc<Vec<BackStep>>,
    /// Constants some step's rule may differentiate (weights), in constant order.
    grad_consts: Vec<usize>,
    /// Constants the replay changes in place (batch-norm running statistics).
    updated_consts: Vec<usize>,
}

/// Runs `f(inputs)` eagerly (a network's forward pass in training mode, with gradients on) and
/// traces it into a training [`Plan`] for inputs of the same shapes and dtypes.
///
/// Returns `f`'s eager outputs (their graph gives this call's gradients) and the plan, or why
/// none could be built (the caller keeps training eagerly). Each [`Plan::run`] of the plan
/// replays the forward pass and returns outputs whose backward pass is the plan's: build the
/// loss on them and call `backward` as usual; the weights' gradients match eager mode's
/// bitwise (see the module docs for the one exception). Before it is returned the plan is
/// replayed once on the trace's inputs and must reproduce the eager outputs bitwise; the
/// running statistics that replay changed are restored.
///
/// ```
/// use ferrovision_tensor::{trace, Tensor};
/// let w = Tensor::from_vec(vec![2.0f32, -1.0], &[1, 2]).unwrap().requires_grad_(true);
/// let f = |x: &[Tensor]| -> ferrovision_tensor::Result<Vec<Tensor>> {
///     Ok(vec![x[0].linear(&w, None)?.relu()?])
/// };
/// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1]).unwrap();
/// let (_, plan) = trace::trace_training(&[x.clone()], f).unwrap();
/// let mut plan = plan.unwrap();
/// let y = plan.run(&[x]).unwrap();
/// y[0].sum_all().unwrap().backward().unwrap();
/// assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![4.0, 0.0]);
/// ```
pub fn trace_training<E: From<Error>>(
    inputs: &[Tensor],
    f: impl FnOnce(&[Tensor]) -> std::result::Result<Vec<Tensor>, E>,
) -> std::result::Result<(Vec<Tensor>, Result<Plan>), E> {
    let (captured_run, draws) = crate::rng::record_global_draws(|| capture_run(inputs, f));
    let (outputs, captured, first_storage) = captured_run?;
    if let Some(i) = inputs.iter().position(Tensor::requires_grad) {
        return Ok((
            outputs,
            Err(refuse(format!(
                "input {i} requires a gradient: training plans differentiate weights only"
            ))),
        ));
    }
    let built = Plan::build(inputs, &outputs, captured, first_storage, true).and_then(|plan| {
        check_replay(&plan, inputs, &outputs, draws)?;
        Ok(plan)
    });
    Ok((outputs, built))
}

/// Replays `plan` on the trace's inputs and requires the eager outputs bitwise, restoring the
/// constants the replay updated. The replay's draws from the process-wide generator come from
/// the states logged before the eager pass's draws (`draws`), so it draws the same dropout
/// masks and leaves the shared generator where the eager pass left it.
fn check_replay(
    plan: &Plan,
    inputs: &[Tensor],
    eager: &[Tensor],
    draws: Vec<[u64; 4]>,
) -> Result<()> {
    let Some(backprop) = &plan.backprop else {
        return Ok(());
    };
    let updated: Vec<(Tensor, Vec<f32>)> = backprop
        .updated_consts
        .iter()
        .map(|&k| Ok((plan.consts[k].clone(), plan.consts[k].to_vec::<f32>()?)))
        .collect::<Result<_>>()?;
    let checked = crate::parallel::on_pool(|| {
        crate::rng::replay_global_draws(draws, || backprop.replay(plan, inputs, false))
    })
    .and_then(|r| super::compare_outputs(&r.outputs, eager, 0.0));
    for (t, v) in &updated {
        t.assign_from_slice_(v)?;
    }
    checked
}

/// Where gradients flow in one replay: per step, whether its rule runs; per constant, whether
/// it is a weight being trained.
struct Needs {
    steps: Vec<bool>,
    consts: Vec<bool>,
}

impl Needs {
    fn slot(&self, s: Slot) -> bool {
        match s {
            Slot::Input(_) => false,
            Slot::Const(k) => self.consts[k],
            Slot::Value(j) => self.steps[j],
        }
    }
}

/// What a forward replay gives: the outputs, each step's recorded gradient (when kept) and
/// where gradients flow.
struct Replayed {
    outputs: Vec<Tensor>,
    saved: Vec<Option<Backward>>,
    needs: Needs,
}

/// The inputs of one step's rule during the plan's backward pass.
struct StepInputs<'a> {
    step: &'a BackStep,
    needs: &'a Needs,
}

impl RuleInputs for StepInputs<'_> {
    fn needs(&self, i: usize) -> bool {
        self.step.inputs.get(i).is_some_and(|&s| self.needs.slot(s))
    }
    fn shape(&self, i: usize) -> &[usize] {
        self.step.shapes.get(i).map_or(&[], Vec::as_slice)
    }
    fn len(&self) -> usize {
        self.step.inputs.len()
    }
}

impl Backprop {
    pub(super) fn new(plan: &Plan) -> Backprop {
        let mut grad_consts = Vec::new();
        let mut updated_consts = Vec::new();
        let mut program = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            for &s in &step.inputs {
                if let Slot::Const(k) = s {
                    grad_consts.push(k);
                }
            }
            if let Op::BatchNorm { training: true, .. } = step.op {
                for a in step.args.iter().skip(3).flatten() {
                    if let Slot::Const(k) = *a {
                        updated_consts.push(k);
                    }
                }
            }
            program.push(BackStep {
                op: step.op.clone(),
                inputs: step.inputs.clone(),
                shapes: step
                    .inputs
                    .iter()
                    .map(|&s| plan.shape_of(s).to_vec())
                    .collect(),
            });
        }
        grad_consts.sort_unstable();
        grad_consts.dedup();
        updated_consts.sort_unstable();
        updated_consts.dedup();
        Backprop {
            program: Arc::new(program),
            grad_consts,
            updated_consts,
        }
    }

    /// Replays the forward pass, saving what the gradient rules need, and hangs the outputs
    /// that carry gradients from one graph node running the backward pass.
    pub(super) fn run(&self, plan: &Plan, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let replayed = self.replay(plan, inputs, true)?;
        self.attach(plan, replayed)
    }

    /// The forward replay: outputs, and (when `keep` is set) each step's recorded gradient
    /// with where gradients flow. Without `keep` (the trace's check) every record is dropped
    /// as soon as its op has run, so the check holds one step's saved values, not a pass's.
    fn replay(&self, plan: &Plan, inputs: &[Tensor], keep: bool) -> Result<Replayed> {
        if let Some(i) = inputs.iter().position(Tensor::requires_grad) {
            return Err(refuse(format!(
                "input {i} requires a gradient: training plans differentiate weights only"
            )));
        }
        let grad_on = is_grad_enabled();
        let mut needs = Needs {
            steps: vec![false; plan.steps.len()],
            consts: plan
                .consts
                .iter()
                .map(|t| grad_on && t.requires_grad())
                .collect(),
        };
        let mut saved: Vec<Option<Backward>> = (0..plan.steps.len()).map(|_| None).collect();
        let outputs = plan.replay_with(inputs, |j, step, args| {
            let run = || exec::run(&step.op, args, &step.out_shape, false);
            needs.steps[j] = step.inputs.iter().any(|&s| needs.slot(s));
            if !needs.steps[j] {
                // Nothing to record (no input needs a gradient), in the caller's gradient mode
                // like eagerly: kernels pick their paths by it.
                return run();
            }
            let (y, recorded) = collect_backward(run, |y| y.as_ref().ok().map(Tensor::id));
            let y = y?;
            if recorded.is_none() {
                return Err(refuse(format!(
                    "internal error: replaying '{}' recorded no gradient",
                    step.op.name()
                )));
            }
            if keep {
                saved[j] = recorded;
            }
            Ok(y)
        })?;
        Ok(Replayed {
            outputs,
            saved,
            needs,
        })
    }

    /// Hangs the outputs that carry gradients from one graph node whose gradient runs the
    /// saved rules.
    fn attach(&self, plan: &Plan, replayed: Replayed) -> Result<Vec<Tensor>> {
        let Replayed {
            outputs,
            saved,
            needs,
        } = replayed;
        let params: Vec<usize> = self
            .grad_consts
            .iter()
            .copied()
            .filter(|&k| needs.consts[k])
            .collect();
        let carried: Vec<usize> = (0..outputs.len())
            .filter(|&i| needs.slot(plan.outputs[i]))
            .collect();
        if params.is_empty() || carried.is_empty() {
            return Ok(outputs);
        }
        let shapes: Vec<Vec<usize>> = carried
            .iter()
            .map(|&i| outputs[i].shape().to_vec())
            .collect();
        let joined = if carried.len() == 1 {
            outputs[carried[0]].clone()
        } else {
            let flat = carried
                .iter()
                .map(|&i| outputs[i].reshape(&[outputs[i].numel()]))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = flat.iter().collect();
            crate::autograd::no_grad(|| Tensor::cat(&refs, 0))?
        };
        let grad = Gradient {
            program: self.program.clone(),
            saved,
            needs,
            seeds: carried.iter().map(|&i| plan.outputs[i]).collect(),
            shapes,
            params: params.clone(),
        };
        let weights: Vec<&Tensor> = params.iter().map(|&k| &plan.consts[k]).collect();
        let joined = record_closure(joined, Op::Custom { name: NODE }, &weights, move |g| {
            grad.backward(g)
        });
        let mut outputs = outputs;
        if carried.len() == 1 {
            outputs[carried[0]] = joined;
        } else {
            let mut offset = 0;
            for &i in &carried {
                let n = outputs[i].numel();
                let shape = outputs[i].shape().to_vec();
                outputs[i] = joined.slice(0, offset, offset + n, 1)?.reshape(&shape)?;
                offset += n;
            }
        }
        Ok(outputs)
    }
}

/// What one replay's backward pass needs, owned by its graph node.
struct Gradient {
    program: Arc<Vec<BackStep>>,
    saved: Vec<Option<Backward>>,
    needs: Needs,
    /// Where each joined output comes from, and its shape.
    seeds: Vec<Slot>,
    shapes: Vec<Vec<usize>>,
    /// The constants the node's inputs are, in order.
    params: Vec<usize>,
}

impl Gradient {
    fn backward(mut self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let n = self.program.len();
        let mut grads: Vec<Option<Tensor>> = vec![None; n];
        let mut const_grads: Vec<Option<Tensor>> = vec![None; self.needs.consts.len()];
        let mut offset = 0;
        for (&slot, shape) in self.seeds.iter().zip(&self.shapes) {
            let g = if self.seeds.len() == 1 {
                g.clone()
            } else {
                let len: usize = shape.iter().product();
                let part = g.slice(0, offset, offset + len, 1)?.reshape(shape)?;
                offset += len;
                part
            };
            match slot {
                Slot::Value(j) => accumulate(&mut grads[j], g)?,
                Slot::Const(k) => accumulate(&mut const_grads[k], g)?,
                Slot::Input(_) => {}
            }
        }
        for j in (0..n).rev() {
            let Some(backward) = self.saved[j].take() else {
                continue;
            };
            let Some(g) = grads[j].take() else {
                continue;
            };
            let step = &self.program[j];
            let view = StepInputs {
                step,
                needs: &self.needs,
            };
            let input_grads = run_gradient(&step.op, &view, backward, &g)?;
            drop(g);
            for (&slot, gi) in step.inputs.iter().zip(input_grads) {
                let Some(gi) = gi else { continue };
                match slot {
                    Slot::Value(k) if self.needs.steps[k] => accumulate(&mut grads[k], gi)?,
                    Slot::Const(k) if self.needs.consts[k] => accumulate(&mut const_grads[k], gi)?,
                    _ => {}
                }
            }
        }
        Ok(self.params.iter().map(|&k| const_grads[k].take()).collect())
    }
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
