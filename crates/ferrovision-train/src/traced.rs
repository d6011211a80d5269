//! Traced steps: one [`Plan`] per input signature (shapes and dtypes), traced on first use like
//! a Keras `tf.function` and replayed after that. Inference plans run [`Model::predict`]
//! (crate::Model::predict) and the forward pass of [`Model::evaluate`](crate::Model::evaluate);
//! training plans ([`trace_training`]) run the forward pass of the train step in `fit` and
//! `train_on_batch`, their outputs carrying the plan's backward pass into the loss the step
//! builds eagerly.
//!
//! A signature whose trace cannot become a plan (an op without a replay such as dropout, a
//! layer computing on the host) is remembered with the reason and runs eagerly from then on,
//! so a model always predicts and trains; [`TraceStats`] says what happened.
//! `Model::set_run_eagerly(true)` (Keras' `run_eagerly`) or `FERROVISION_RUN_EAGERLY=1` in the
//! environment turns tracing off. As with `tf.function`, what a layer decides on the host
//! (a branch on a random number drawn outside the engine's ops) is fixed by the trace: such
//! layers need `run_eagerly`.

use crate::Result;
use ferrovision_tensor::trace::{trace, trace_training, Plan};
use ferrovision_tensor::{DType, Tensor};
use std::collections::HashMap;

/// True when `FERROVISION_RUN_EAGERLY` is `1` or `true`: new models run inference eagerly
/// (like `tf.config.run_functions_eagerly(True)`), for debugging and A/B measurements.
pub fn eager_by_default() -> bool {
    matches!(
        std::env::var("FERROVISION_RUN_EAGERLY").as_deref(),
        Ok("1") | Ok("true")
    )
}

/// Counters of traced inference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Traces run (one per new input signature; a retrace is a trace after the first).
    pub traces: usize,
    /// Batches run by replaying a plan.
    pub replays: usize,
    /// Batches run eagerly because their signature could not be planned.
    pub eager_batches: usize,
    /// Why signatures could not be planned (one entry per refused signature).
    pub refused: Vec<String>,
    /// Batch norms folded, ReLUs fused, residual adds fused into convolutions and elementwise
    /// unary ops run chained after the op before them, summed over the plans built.
    pub folded_batch_norms: usize,
    pub fused_relus: usize,
    pub fused_residuals: usize,
    pub fused_elementwise: usize,
    /// Nominal FLOPs of one replay of each inference plan built, in trace order
    /// ([`PlanStats::flops`](ferrovision_tensor::trace::PlanStats::flops)).
    pub plan_flops: Vec<u64>,
    /// The same for each training plan (its forward pass).
    pub training_plan_flops: Vec<u64>,
    /// Training steps: traces, forward passes replayed from a training plan, and forward
    /// passes run eagerly (refused signatures, inputs that need gradients).
    pub training_traces: usize,
    pub training_replays: usize,
    pub training_eager_batches: usize,
}

type Signature = Vec<(Vec<usize>, DType)>;

enum Entry {
    Plan(Box<Plan>),
    Eager,
}

/// The plans of one model, by input signature.
#[derive(Default)]
pub(crate) struct Plans {
    entries: HashMap<Signature, Entry>,
    training: HashMap<Signature, Entry>,
    stats: TraceStats,
}

fn signature(inputs: &[Tensor]) -> Signature {
    inputs
        .iter()
        .map(|t| (t.shape().to_vec(), t.dtype()))
        .collect()
}

impl Plans {
    /// Forgets every plan (the network's layers may have changed).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.training.clear();
    }

    /// Forgets the training plans (the weights' trainable flags changed).
    pub(crate) fn clear_training(&mut self) {
        self.training.clear();
    }

    /// The outputs of `forward(inputs)`, a forward pass in training mode with gradients on:
    /// replayed from the signature's training plan (the outputs carry its backward pass),
    /// traced first when the signature is new, eager where it cannot be planned or an input
    /// needs a gradient.
    pub(crate) fn run_training(
        &mut self,
        inputs: &[Tensor],
        forward: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        // The inference plans' folded weights go stale with this step: free them (and the
        // kernels' transforms of them) for the step's own buffers.
        for entry in self.entries.values_mut() {
            if let Entry::Plan(plan) = entry {
                plan.release_stale_folds(true);
            }
        }
        if inputs.iter().any(Tensor::requires_grad) {
            self.stats.training_eager_batches += 1;
            return forward(inputs);
        }
        self.run_with(Kind::Training, inputs, forward)
    }

    pub(crate) fn stats(&self) -> &TraceStats {
        &self.stats
    }

    /// The outputs of `forward(inputs)`: replayed from the signature's plan, traced first when
    /// the signature is new, eager where it cannot be planned.
    pub(crate) fn run(
        &mut self,
        inputs: &[Tensor],
        forward: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        self.run_with(Kind::Inference, inputs, forward)
    }

    /// The one cache walk of both kinds of plan: replay, run eagerly, or trace and remember.
    fn run_with(
        &mut self,
        kind: Kind,
        inputs: &[Tensor],
        forward: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        let sig = signature(inputs);
        let (table, counts) = match kind {
            Kind::Inference => (&mut self.entries, self.stats.inference_counts()),
            Kind::Training => (&mut self.training, self.stats.training_counts()),
        };
        match table.get_mut(&sig) {
            Some(Entry::Plan(plan)) => {
                *counts.replays += 1;
                return Ok(plan.run(inputs)?);
            }
            Some(Entry::Eager) => {
                *counts.eager_batches += 1;
                return forward(inputs);
            }
            None => {}
        }
        let (outputs, plan) = match kind {
            Kind::Inference => trace(inputs, forward)?,
            Kind::Training => trace_training(inputs, forward)?,
        };
        *counts.traces += 1;
        let entry = match plan {
            Ok(plan) => {
                let stats = plan.stats();
                counts.plan_flops.push(stats.flops);
                // Training plans make no inference rewrites: these stay 0 for them.
                self.stats.folded_batch_norms += stats.folded_batch_norms;
                self.stats.fused_relus += stats.fused_relus;
                self.stats.fused_residuals += stats.fused_residuals;
                self.stats.fused_elementwise += stats.fused_elementwise;
                Entry::Plan(Box::new(plan))
            }
            Err(why) => {
                let prefix = match kind {
                    Kind::Inference => "",
                    Kind::Training => "training, ",
                };
                self.stats
                    .refused
                    .push(format!("{prefix}inputs {sig:?}: {why}"));
                Entry::Eager
            }
        };
        table.insert(sig, entry);
        Ok(outputs)
    }
}

/// Which plans a run uses.
#[derive(Clone, Copy)]
enum Kind {
    Inference,
    Training,
}

/// One kind's counters in [`TraceStats`].
struct Counts<'a> {
    traces: &'a mut usize,
    replays: &'a mut usize,
    eager_batches: &'a mut usize,
    plan_flops: &'a mut Vec<u64>,
}

impl TraceStats {
    fn inference_counts(&mut self) -> Counts<'_> {
        Counts {
            traces: &mut self.traces,
            replays: &mut self.replays,
            eager_batches: &mut self.eager_batches,
            plan_flops: &mut self.plan_flops,
        }
    }

    fn training_counts(&mut self) -> Counts<'_> {
        Counts {
            traces: &mut self.training_traces,
            replays: &mut self.training_replays,
            eager_batches: &mut self.training_eager_batches,
            plan_flops: &mut self.training_plan_flops,
        }
    }
}
