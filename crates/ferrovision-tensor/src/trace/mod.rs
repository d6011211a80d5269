//! Traced static plans: the engine's `tf.function` for inference.
//!
//! [`trace`] runs a function once, eagerly, while this thread's ops are captured: every op that
//! builds its typed record ([`Op`], the record autodiff keeps) reports it with its operand
//! handles and its output. From the capture it builds a [`Plan`]:
//!
//! 1. **Values.** Each operand is a traced input, the output of an earlier captured op, or a
//!    constant: a tensor whose storage existed before the trace (weights, running statistics),
//!    read live at replay, so in-place weight updates are seen. A tensor made during the trace
//!    without a recorded op (host-side arithmetic, `detach` of an input, a fresh `Tensor::full`)
//!    may depend on the inputs in a way the plan cannot replay, so the plan is refused, as it is
//!    for ops [`exec`] cannot replay and for values changed in place during the trace.
//! 2. **Dead code.** Only steps the requested outputs depend on are kept.
//! 3. **Inference rewrites** ([`rewrite`]): a batch norm with running statistics right after a
//!    convolution is folded into the convolution's weights and bias (refolded when any source
//!    weight changes, tracked by storage versions), and a ReLU after a convolution or dense
//!    layer moves into its GEMM epilogue, one after an elementwise binary op (a residual add)
//!    into that op's pass, and a residual add of a convolution's output into the convolution
//!    (its epilogue adds the other operand). Chains of the remaining elementwise unary ops
//!    (other activations, scalar arithmetic) run in one pass after the op that makes their
//!    input, block by block in that op's fresh output buffer.
//! 4. **Liveness.** Each value is dropped right after its last use, so its buffer is back in the
//!    pool for the next step.
//!
//! [`Plan::run`] replays the steps on new inputs of the traced signature (shapes and dtypes),
//! with no graph recording and no per-op bookkeeping beyond the kernels themselves, checking
//! every step's output shape against the trace. Before a plan is returned it is replayed once on
//! the trace's inputs and compared with the eager outputs: equal within 1e-3 of the outputs'
//! magnitude (folding a batch norm changes the rounding: measured differences are ~1e-6
//! relative; without folds the replay runs the same kernels in the same order, so it is bitwise
//! equal).
//!
//! How an op joins: give it an arm in [`exec::run`] (and [`exec::supported`]); when its record
//! does not carry every operand, record it with `record_rule_operands` so the capture has them.

mod exec;
mod rewrite;
mod train;

pub use train::trace_training;

use crate::autograd::{no_grad, Op};
use crate::storage::Storage;
use crate::{DType, Error, Result, Tensor};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

const OP: &str = "trace";

/// One operand as captured: enough to tell where it comes from. The handle is kept only for
/// tensors whose storage existed before the trace (weights, the inputs): holding every
/// intermediate would keep a whole forward pass of activations alive during the trace.
struct Operand {
    id: u64,
    version: u64,
    handle: Option<Tensor>,
}

/// One captured op: its record, its operands (in the op's order) and its output.
struct Captured {
    op: Op,
    operands: Vec<Option<Operand>>,
    /// Ids of the inputs the op's gradient rule sees (a subset of the operands).
    input_ids: Vec<u64>,
    out_id: u64,
    out_shape: Vec<usize>,
    out_version: u64,
    /// The output itself when it is one of the traced function's outputs is checked at the end;
    /// others are checked when read ([`Operand::version`]).
    out_storage: std::sync::Weak<Storage>,
}

thread_local! {
    static TRACING: Cell<bool> = const { Cell::new(false) };
    /// The first storage id made during the running trace.
    static FIRST_STORAGE: Cell<u64> = const { Cell::new(u64::MAX) };
    static CAPTURED: RefCell<Vec<Captured>> = const { RefCell::new(Vec::new()) };
}

/// True while [`trace`] captures this thread's ops.
#[inline]
pub(crate) fn is_tracing() -> bool {
    TRACING.with(Cell::get)
}

/// Sets whether this thread captures ops; returns the previous setting (pool jobs run with
/// capture off: `autograd::isolated`).
#[cfg_attr(not(feature = "threads"), allow(dead_code))]
pub(crate) fn set_tracing(on: bool) -> bool {
    TRACING.with(|t| t.replace(on))
}

/// Called by the op recorder for every op while tracing.
pub(crate) fn capture(op: Op, operands: &[Option<&Tensor>], inputs: &[&Tensor], out: &Tensor) {
    let first = FIRST_STORAGE.with(Cell::get);
    let c = Captured {
        op,
        operands: operands
            .iter()
            .map(|t| {
                t.map(|t| Operand {
                    id: t.id(),
                    version: t.storage().version(),
                    handle: (t.storage().id() < first).then(|| t.clone()),
                })
            })
            .collect(),
        input_ids: inputs.iter().map(|t| t.id()).collect(),
        out_id: out.id(),
        out_shape: out.shape().to_vec(),
        out_version: out.storage().version(),
        out_storage: std::sync::Arc::downgrade(out.storage()),
    };
    CAPTURED.with(|v| v.borrow_mut().push(c));
}

/// Ends a capture on every exit path (an error or a panic in the traced function included).
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        TRACING.with(|t| t.set(false));
        CAPTURED.with(|v| v.borrow_mut().clear());
    }
}

/// Where a step reads an operand from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input(usize),
    Const(usize),
    /// The output of step `i`.
    Value(usize),
}

/// One op of a plan.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    args: Vec<Option<Slot>>,
    out_shape: Vec<usize>,
    /// The inputs its gradient rule sees, where they come from (training plans).
    inputs: Vec<Slot>,
    /// A ReLU fused into a binary op's pass (convolutions and dense layers carry it in `op`).
    relu_after: bool,
    /// Elementwise unary ops run on the output in one pass after `op`
    /// ([`rewrite::fuse_chains`]).
    chain: Vec<Op>,
    /// Values whose last use is this step (dropped after it runs).
    release: Vec<usize>,
}

/// Weights computed from other weights at plan time (a batch norm folded into a convolution),
/// recomputed when a source changes.
#[derive(Debug)]
struct Fold {
    /// The convolution step whose weight and bias constants this fold writes.
    conv_weight: usize,
    conv_bias: usize,
    /// Sources: the conv weight, its bias (if any), then the norm's weight, bias, mean, var.
    sources: rewrite::BnSources,
    eps: f32,
    versions: Vec<u64>,
    /// Keeps the folded tensors shared with other plans alive; `None` once released as stale
    /// ([`Plan::release_stale_folds`]) until the next run refolds.
    folded: Option<std::sync::Arc<rewrite::Folded>>,
}

/// What tracing and optimising did, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Ops the trace captured.
    pub captured: usize,
    /// Steps the plan runs.
    pub steps: usize,
    /// Captured ops dropped because no output depends on them.
    pub dead: usize,
    /// Batch norms folded into the convolution before them.
    pub folded_batch_norms: usize,
    /// ReLUs moved into the pass of the op before them (a convolution's or dense layer's GEMM
    /// epilogue, an elementwise binary op such as a residual add).
    pub fused_relus: usize,
    /// Residual adds fused into the convolution before them (its GEMM epilogue adds the other
    /// operand).
    pub fused_residuals: usize,
    /// Elementwise unary ops (activations, scalar arithmetic) run in one pass after the op
    /// before them, block by block in that op's output buffer, instead of as steps of their own.
    pub fused_elementwise: usize,
    /// Constants (weights, statistics) the plan reads.
    pub constants: usize,
    /// Nominal floating-point operations of one replay: 2 per multiply-add of its convolutions
    /// and matrix products (direct-convolution count, whatever algorithm runs; the other ops
    /// are not counted). What a fraction-of-peak figure divides by.
    pub flops: u64,
}

/// A traced, optimised inference step, replayed by [`Plan::run`] (see the module docs).
#[derive(Debug)]
pub struct Plan {
    signature: Vec<(Vec<usize>, DType)>,
    consts: Vec<Tensor>,
    steps: Vec<Step>,
    outputs: Vec<Slot>,
    folds: Vec<Fold>,
    /// The backward pass of a training plan ([`trace_training`]); `None` for inference.
    backprop: Option<train::Backprop>,
    stats: PlanStats,
}

/// Runs `f(inputs)` eagerly and traces it into a [`Plan`] for inputs of the same shapes and
/// dtypes.
///
/// Returns the outputs and the plan, or why no plan could be built (an op that cannot be
/// replayed, a value made outside recorded ops, ...; the caller then keeps running `f`
/// eagerly). With a plan, the outputs are its replay of the traced inputs, so the first call
/// gives what every later replay gives; without one, `f`'s eager outputs. An error of `f` (of
/// any error type a tensor error converts into) is returned as is. Traces do not nest.
///
/// ```
/// use ferrovision_tensor::{trace, Tensor};
/// let w = Tensor::from_vec(vec![2.0f32, -1.0], &[1, 2]).unwrap();
/// let f = |x: &[Tensor]| -> ferrovision_tensor::Result<Vec<Tensor>> {
///     Ok(vec![x[0].linear(&w, None)?.relu()?])
/// };
/// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1]).unwrap();
/// let (first, plan) = trace::trace(&[x], f).unwrap();
/// let mut plan = plan.unwrap();
/// assert_eq!(plan.stats().fused_relus, 1);
/// let y = plan.run(&[Tensor::from_vec(vec![-1.0f32, 0.5], &[2, 1]).unwrap()]).unwrap();
/// assert_eq!(y[0].to_vec::<f32>().unwrap(), vec![0.0, 1.0, 1.0, 0.0]);
/// assert_eq!(first[0].to_vec::<f32>().unwrap(), vec![2.0, 0.0, 6.0, 0.0]);
/// ```
pub fn trace<E: From<Error>>(
    inputs: &[Tensor],
    f: impl FnOnce(&[Tensor]) -> std::result::Result<Vec<Tensor>, E>,
) -> std::result::Result<(Vec<Tensor>, Result<Plan>), E> {
    let (outputs, captured, first_storage) = capture_run(inputs, f)?;
    let built =
        Plan::build(inputs, &outputs, captured, first_storage, false).and_then(|mut plan| {
            let replayed = plan.check_against(inputs, &outputs, 1e-3)?;
            Ok((plan, replayed))
        });
    Ok(match built {
        Ok((plan, replayed)) => (replayed, Ok(plan)),
        Err(why) => (outputs, Err(why)),
    })
}

/// Runs `f(inputs)` while this thread's ops are captured; returns its outputs, the capture
/// and the first storage id made during it. A new workload starts: the buffer pool's idle
/// buffers are freed first ([`pool::clear`](crate::storage::pool::clear)).
fn capture_run<E: From<Error>>(
    inputs: &[Tensor],
    f: impl FnOnce(&[Tensor]) -> std::result::Result<Vec<Tensor>, E>,
) -> std::result::Result<(Vec<Tensor>, Vec<Captured>, u64), E> {
    if is_tracing() {
        return Err(Error::invalid(OP, "a trace is already running on this thread").into());
    }
    crate::storage::pool::clear();
    let first_storage = Storage::next_id();
    let guard = CaptureGuard;
    CAPTURED.with(|v| v.borrow_mut().clear());
    FIRST_STORAGE.with(|f| f.set(first_storage));
    TRACING.with(|t| t.set(true));
    let outputs = f(inputs)?;
    TRACING.with(|t| t.set(false));
    let captured = CAPTURED.with(|v| std::mem::take(&mut *v.borrow_mut()));
    drop(guard);
    Ok((outputs, captured, first_storage))
}

fn refuse(msg: impl Into<String>) -> Error {
    Error::invalid(OP, msg)
}

/// The refusal for `what`, a tensor the trace saw made without a recorded op.
fn made_outside_ops(what: &str) -> Error {
    refuse(format!(
        "{what} was made during the trace without a recorded op (host-side computation or a \
         detached value), so it cannot be replayed"
    ))
}

impl Plan {
    fn build(
        inputs: &[Tensor],
        outputs: &[Tensor],
        captured: Vec<Captured>,
        first_storage: u64,
        training: bool,
    ) -> Result<Plan> {
        let mut slots: HashMap<u64, Slot> = HashMap::new();
        for (i, t) in inputs.iter().enumerate() {
            slots.entry(t.id()).or_insert(Slot::Input(i));
        }
        let mut consts: Vec<Tensor> = Vec::new();
        // A tensor not made by a captured op: a constant if it existed before the trace.
        let constant = |t: &Tensor, consts: &mut Vec<Tensor>, what: &str| -> Result<Slot> {
            if t.storage().id() >= first_storage {
                return Err(made_outside_ops(what));
            }
            if inputs.iter().any(|x| x.same_storage(t)) {
                return Err(refuse(format!(
                    "{what} reads a traced input outside the recorded ops (a detached or \
                     re-wrapped input)"
                )));
            }
            consts.push(t.clone());
            Ok(Slot::Const(consts.len() - 1))
        };
        let captured_count = captured.len();
        let mut steps: Vec<Step> = Vec::with_capacity(captured.len());
        // The storage version each step's output had when it was made.
        let mut made_at: Vec<u64> = Vec::with_capacity(captured.len());
        let mut outs_storage = Vec::with_capacity(captured.len());
        for c in captured {
            let mut args = Vec::with_capacity(c.operands.len());
            for o in &c.operands {
                let Some(o) = o else {
                    args.push(None);
                    continue;
                };
                let what = || format!("an operand of '{}'", c.op.name());
                let slot = match slots.get(&o.id) {
                    Some(&s) => s,
                    None => match &o.handle {
                        Some(t) => {
                            let s = constant(t, &mut consts, &what())?;
                            slots.insert(o.id, s);
                            s
                        }
                        None => return Err(made_outside_ops(&what())),
                    },
                };
                if let Slot::Value(j) = slot {
                    if made_at[j] != o.version {
                        return Err(refuse(format!(
                            "the output of '{}' was changed in place before '{}' read it",
                            steps[j].op.name(),
                            c.op.name()
                        )));
                    }
                }
                args.push(Some(slot));
            }
            // An op that handed back an operand unchanged adds nothing.
            if slots.contains_key(&c.out_id) {
                continue;
            }
            let inputs = c
                .input_ids
                .iter()
                .map(|id| {
                    slots.get(id).copied().ok_or_else(|| {
                        refuse(format!(
                            "internal error: an input of '{}' is not among its operands",
                            c.op.name()
                        ))
                    })
                })
                .collect::<Result<Vec<Slot>>>()?;
            slots.insert(c.out_id, Slot::Value(steps.len()));
            made_at.push(c.out_version);
            outs_storage.push(c.out_storage);
            steps.push(Step {
                op: c.op,
                args,
                out_shape: c.out_shape,
                inputs,
                relu_after: false,
                chain: Vec::new(),
                release: Vec::new(),
            });
        }
        let mut outs = Vec::with_capacity(outputs.len());
        for (i, t) in outputs.iter().enumerate() {
            outs.push(match slots.get(&t.id()) {
                Some(&Slot::Value(j)) => {
                    let now = outs_storage[j].upgrade().map(|s| s.version());
                    if now != Some(made_at[j]) {
                        return Err(refuse(format!(
                            "output {i} (made by '{}') was changed in place during the trace",
                            steps[j].op.name()
                        )));
                    }
                    Slot::Value(j)
                }
                Some(&s) => s,
                None => constant(t, &mut consts, &format!("output {i}"))?,
            });
        }
        let mut plan = Plan {
            signature: inputs
                .iter()
                .map(|t| (t.shape().to_vec(), t.dtype()))
                .collect(),
            consts,
            steps,
            outputs: outs,
            folds: Vec::new(),
            backprop: None,
            stats: PlanStats {
                captured: captured_count,
                ..PlanStats::default()
            },
        };
        // A training step keeps every op: an unused one may still update state (a batch
        // norm's running statistics), as it did eagerly.
        if !training {
            plan.stats.dead = rewrite::remove_dead(&mut plan);
        }
        for s in &plan.steps {
            if !exec::supported(&s.op, training) {
                return Err(refuse(format!(
                    "op '{}' cannot be replayed in a traced {} plan",
                    s.op.name(),
                    if training { "training" } else { "inference" }
                )));
            }
        }
        if training {
            plan.backprop = Some(train::Backprop::new(&plan));
        } else {
            plan.stats.folded_batch_norms = rewrite::fold_batch_norms(&mut plan)?;
            plan.stats.fused_relus = rewrite::fuse_relus(&mut plan);
            plan.stats.fused_residuals = rewrite::fuse_residuals(&mut plan);
            plan.stats.fused_elementwise = rewrite::fuse_chains(&mut plan);
            rewrite::remove_dead(&mut plan);
        }
        rewrite::plan_releases(&mut plan);
        plan.stats.steps = plan.steps.len();
        plan.stats.constants = plan.consts.len();
        plan.stats.flops = plan.steps.iter().map(|s| plan.step_flops(s)).sum();
        Ok(plan)
    }

    /// The shape of a value the plan reads.
    fn shape_of(&self, slot: Slot) -> &[usize] {
        match slot {
            Slot::Input(i) => &self.signature[i].0,
            Slot::Const(k) => self.consts[k].shape(),
            Slot::Value(j) => &self.steps[j].out_shape,
        }
    }

    /// Nominal FLOPs of one step ([`PlanStats::flops`]).
    fn step_flops(&self, step: &Step) -> u64 {
        let arg = |i: usize| {
            step.args
                .get(i)
                .copied()
                .flatten()
                .map(|s| self.shape_of(s))
        };
        let outputs: usize = step.out_shape.iter().product();
        // Multiply-adds per output: a convolution's weight holds cout · (cin/groups · kernel);
        // a product's shared dimension is the right operand's second-to-last (or only) dim.
        let per_output = match &step.op {
            Op::Conv { .. } => arg(1).map_or(0, |w| {
                let cout = w.first().copied().unwrap_or(1).max(1);
                w.iter().product::<usize>() / cout
            }),
            Op::Linear { .. } => arg(1).and_then(|w| w.first().copied()).unwrap_or(0),
            Op::MatMul => arg(1).map_or(0, |b| match b.len() {
                0 => 0,
                1 => b[0],
                n => b[n - 2],
            }),
            _ => 0,
        };
        2 * (outputs as u64) * (per_output as u64)
    }

    /// What the trace captured and what the optimisations did.
    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    /// The input shapes and dtypes the plan was traced for.
    pub fn signature(&self) -> &[(Vec<usize>, DType)] {
        &self.signature
    }

    /// True when `inputs` have the traced shapes and dtypes.
    pub fn accepts(&self, inputs: &[Tensor]) -> bool {
        inputs.len() == self.signature.len()
            && inputs
                .iter()
                .zip(&self.signature)
                .all(|(t, (shape, dtype))| t.shape() == shape.as_slice() && t.dtype() == *dtype)
    }

    /// True for a training plan ([`trace_training`]).
    pub fn is_training(&self) -> bool {
        self.backprop.is_some()
    }

    /// Drops the folded weights whose sources changed since they were folded (a training step
    /// updated them) and, with `about_to_train`, those of trainable weights (a source requires
    /// a gradient: the coming training step makes them stale); returns how many. The next
    /// [`Plan::run`] folds them again, as it would anyway; until then neither they nor the
    /// kernels' transforms of them hold memory (ResNet-50's: ~300 MB, idle while it trains).
    pub fn release_stale_folds(&mut self, about_to_train: bool) -> usize {
        rewrite::release_stale_folds(self, about_to_train)
    }

    /// Replays the plan on `inputs` (the traced signature). An inference plan records no
    /// gradients; a training plan's outputs carry its backward pass (see [`trace_training`]).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if !self.accepts(inputs) {
            let got: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
            return Err(refuse(format!(
                "inputs of shapes {got:?} do not match the traced signature {:?}",
                self.signature
            )));
        }
        if let Some(backprop) = &self.backprop {
            let plan = &*self;
            return crate::parallel::on_pool(|| backprop.run(plan, inputs));
        }
        rewrite::refresh_folds(self)?;
        let plan = &*self;
        crate::parallel::on_pool(|| no_grad(|| plan.replay(inputs)))
    }

    fn replay(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.replay_with(inputs, |_, step, args| {
            let y = exec::run(&step.op, args, &step.out_shape, step.relu_after)?;
            if step.chain.is_empty() {
                Ok(y)
            } else {
                y.unary_chain(&step.chain)
            }
        })
    }

    /// Runs every step through `run_step(index, step, operands)`, checking its output shape and
    /// releasing values after their last use; returns the outputs.
    fn replay_with(
        &self,
        inputs: &[Tensor],
        mut run_step: impl FnMut(usize, &Step, &[Option<Tensor>]) -> Result<Tensor>,
    ) -> Result<Vec<Tensor>> {
        let mut values: Vec<Option<Tensor>> = vec![None; self.steps.len()];
        let fetch = |s: Slot, values: &[Option<Tensor>]| -> Result<Tensor> {
            match s {
                Slot::Input(i) => Ok(inputs[i].clone()),
                Slot::Const(k) => Ok(self.consts[k].clone()),
                Slot::Value(j) => values[j]
                    .clone()
                    .ok_or_else(|| refuse("internal error: a value was released too early")),
            }
        };
        for (i, step) in self.steps.iter().enumerate() {
            let args = step
                .args
                .iter()
                .map(|a| a.map(|s| fetch(s, &values)).transpose())
                .collect::<Result<Vec<_>>>()?;
            let y = run_step(i, step, &args)?;
            if y.shape() != step.out_shape.as_slice() {
                return Err(refuse(format!(
                    "step {i} ('{}') gave shape {:?}, the trace saw {:?}",
                    step.op.name(),
                    y.shape(),
                    step.out_shape
                )));
            }
            drop(args);
            values[i] = Some(y);
            for &r in &step.release {
                values[r] = None;
            }
        }
        self.outputs.iter().map(|&s| fetch(s, &values)).collect()
    }

    /// Replays on the trace's own inputs and compares with the eager outputs (differences up
    /// to `tolerance` times their magnitude; 0: bitwise); returns the replayed ones.
    fn check_against(
        &mut self,
        inputs: &[Tensor],
        eager: &[Tensor],
        tolerance: f64,
    ) -> Result<Vec<Tensor>> {
        let replayed = self.run(inputs)?;
        compare_outputs(&replayed, eager, tolerance)?;
        Ok(replayed)
    }
}

/// Requires `replayed` to match `eager` within `tolerance` times their magnitude (0: bitwise).
fn compare_outputs(replayed: &[Tensor], eager: &[Tensor], tolerance: f64) -> Result<()> {
    {
        for (i, (a, b)) in replayed.iter().zip(eager).enumerate() {
            if a.shape() != b.shape() || a.dtype() != b.dtype() {
                return Err(refuse(format!(
                    "replayed output {i} has shape {:?}, the eager run {:?}",
                    a.shape(),
                    b.shape()
                )));
            }
            let (av, bv) = (a.to_f64_vec()?, b.to_f64_vec()?);
            let scale = bv.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let worst = av
                .iter()
                .zip(&bv)
                .map(|(x, y)| {
                    if x == y || (x.is_nan() && y.is_nan()) {
                        0.0
                    } else {
                        (x - y).abs()
                    }
                })
                .fold(
                    0.0f64,
                    |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
                );
            if worst > tolerance * scale {
                return Err(refuse(format!(
                    "replayed output {i} differs from the eager run by {worst:e} (scale {scale:e})"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
