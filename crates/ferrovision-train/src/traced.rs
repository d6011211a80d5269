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
    /// Batch norms folded, ReLUs fused and residual adds fused into convolutions, summed over
    /// the plans built.
    pub folded_batch_norms: usize,
    pub fused_relus: usize,
    pub fused_residuals: usize,
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
        if inputs.iter().any(Tensor::requires_grad) {
            self.stats.training_eager_batches += 1;
            return forward(inputs);
        }
        let sig = signature(inputs);
        match self.training.get_mut(&sig) {
            Some(Entry::Plan(plan)) => {
                self.stats.training_replays += 1;
                return Ok(plan.run(inputs)?);
            }
            Some(Entry::Eager) => {
                self.stats.training_eager_batches += 1;
                return forward(inputs);
            }
            None => {}
        }
        let (outputs, plan) = trace_training(inputs, forward)?;
        self.stats.training_traces += 1;
        let entry = match plan {
            Ok(plan) => {
                self.stats.training_plan_flops.push(plan.stats().flops);
                Entry::Plan(Box::new(plan))
            }
            Err(why) => {
                self.stats
                    .refused
                    .push(format!("training, inputs {sig:?}: {why}"));
                Entry::Eager
            }
        };
        self.training.insert(sig, entry);
        Ok(outputs)
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
        let sig = signature(inputs);
        match self.entries.get_mut(&sig) {
            Some(Entry::Plan(plan)) => {
                self.stats.replays += 1;
                return Ok(plan.run(inputs)?);
            }
            Some(Entry::Eager) => {
                self.stats.eager_batches += 1;
                return forward(inputs);
            }
            None => {}
        }
        let (outputs, plan) = trace(inputs, forward)?;
        self.stats.traces += 1;
        let entry = match plan {
            Ok(plan) => {
                self.stats.folded_batch_norms += plan.stats().folded_batch_norms;
                self.stats.fused_relus += plan.stats().fused_relus;
                self.stats.fused_residuals += plan.stats().fused_residuals;
                self.stats.plan_flops.push(plan.stats().flops);
                Entry::Plan(Box::new(plan))
            }
            Err(why) => {
                self.stats.refused.push(format!("inputs {sig:?}: {why}"));
                Entry::Eager
            }
        };
        self.entries.insert(sig, entry);
        Ok(outputs)
    }
}
