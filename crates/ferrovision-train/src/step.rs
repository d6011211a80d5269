//! The open train step: [`TrainStep`] decides what one batch does to the model, so any model
//! and loss keeps `fit`, callbacks, checkpoints and bit-exact resume.
//!
//! [`Model::fit`](crate::Model::fit) and `evaluate` run the loop (epochs, batches, callbacks,
//! validation, logs); for every batch they call the model's step, which by default is
//! [`DefaultStep`]: forward, [`TrainStep::compute_loss`] (the compiled per-output losses,
//! weighted, plus layer penalties and weight regularization), backward, one update of the
//! primary optimizer, compiled metrics. This is Keras' `train_step` / `test_step` /
//! `compute_loss` split (and burn's `TrainStep`): override only what differs.
//!
//! - An extra loss term (a penalty, distillation against a teacher's outputs, detection
//!   targets): override [`TrainStep::compute_loss`] and keep the default step.
//! - Several optimizers (a GAN's generator and discriminator) or several backward passes:
//!   override [`TrainStep::train_step`] and use [`StepCtx::apply_gradients`] with the
//!   optimizer's name ([`Compile::optimizer_named`](crate::Compile::optimizer_named) adds
//!   named optimizers; every optimizer's state is saved by `Model::save` and restored by
//!   `load`/`load_checkpoint`).
//! - Gradient reversal (DANN) or any other custom gradient: build it in the network or the step
//!   with `ferrovision_tensor::custom_op`; the step only sees tensors.
//!
//! A step returns [`StepLogs`]: named per-batch values that the loop averages over the epoch
//! (weighted by batch size), followed by the compiled metrics. Keep a step's own fields
//! constant (configuration): anything that changes during training belongs in the network's
//! weights or an optimizer, which checkpoints save; [`StepCtx::epoch`] and
//! [`StepCtx::iterations`] give the position in training for schedules.

use crate::{Batch, Error, Result};
use ferrovision_nn::layer::CallCtx;
use ferrovision_nn::network::{regularization_of, Network};
use ferrovision_nn::{Loss, Metric, Optimizer, Param};
use ferrovision_tensor::{no_grad, Tensor};

/// Name of the optimizer given to [`Compile::new`](crate::Compile::new) (the one the default
/// step uses and that `Model::optimizer` returns).
pub const PRIMARY_OPTIMIZER: &str = "optimizer";

/// The per-batch values a step reports (`loss`, `d_loss`, ...), in order. The loop averages
/// each over the epoch, weighting batches by their size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLogs(Vec<(String, f64)>);

impl StepLogs {
    /// No values.
    pub fn new() -> Self {
        StepLogs(Vec::new())
    }

    /// Adds (or replaces) a value.
    pub fn insert(&mut self, key: impl Into<String>, value: f64) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Builder form of [`StepLogs::insert`].
    pub fn with(mut self, key: impl Into<String>, value: f64) -> Self {
        self.insert(key, value);
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// All values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// The objective of one batch: the scalar to differentiate and the per-output loss values
/// (before their loss weights) that the logs show as `<output>_loss`.
#[derive(Debug, Clone)]
pub struct ComputedLoss {
    /// The total loss, a scalar tensor connected to the weights.
    pub total: Tensor,
    /// Unweighted loss of each output, in output order (may be empty for custom objectives).
    pub per_output: Vec<f64>,
}

/// What a step may use: the network, the compiled losses and metrics, the named optimizers and
/// the weights. Built by the training loop for every batch.
pub struct StepCtx<'a> {
    pub(crate) net: &'a dyn Network,
    pub(crate) optimizers: &'a mut [(String, Box<dyn Optimizer>)],
    pub(crate) losses: &'a [Box<dyn Loss>],
    pub(crate) loss_weights: &'a [f32],
    pub(crate) metrics: &'a mut [(usize, Box<dyn Metric>)],
    pub(crate) all_weights: &'a [(String, Param)],
    pub(crate) trainable: &'a [(String, Param)],
    pub(crate) training: bool,
    pub(crate) epoch: usize,
    /// The model's traced plans (unless the model runs eagerly).
    pub(crate) plans: Option<&'a std::sync::Mutex<crate::traced::Plans>>,
}

impl<'a> StepCtx<'a> {
    /// The network being trained.
    pub fn network(&self) -> &'a dyn Network {
        self.net
    }

    /// True in `fit` (training mode), false in `evaluate` and validation.
    pub fn training(&self) -> bool {
        self.training
    }

    /// The epoch being run (from 0).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Steps taken by the primary optimizer so far (checkpointed, so schedules built on it
    /// resume exactly); 0 when there is none.
    pub fn iterations(&self) -> u64 {
        self.optimizers
            .first()
            .map(|(_, o)| o.iterations())
            .unwrap_or(0)
    }

    /// Every weight of the network, `(scoped name, weight)` in the network's order (empty in
    /// evaluation).
    pub fn weights(&self) -> &'a [(String, Param)] {
        self.all_weights
    }

    /// The trainable weights (what the default step updates; empty in evaluation).
    pub fn trainable_weights(&self) -> &'a [(String, Param)] {
        self.trainable
    }

    /// The trainable weights whose scoped name starts with `prefix` (a sub-network's, e.g.
    /// `"generator/"`).
    pub fn trainable_weights_under(&self, prefix: &str) -> Vec<(String, Param)> {
        self.trainable
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Runs the network in the step's mode and returns its outputs and the penalties its
    /// layers added (activity regularizers).
    ///
    /// Unless the model runs eagerly (`Model::set_run_eagerly`), the forward pass replays the
    /// model's traced plan for the inputs' signature: in evaluation an inference plan, in
    /// training (with gradients on) a training plan whose outputs carry its backward pass, so
    /// a loss built on them backpropagates as eagerly. The penalties are plan outputs too.
    pub fn forward(&self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let eager = |x: &[Tensor]| -> Result<(Vec<Tensor>, Vec<Tensor>)> {
            let mut call = CallCtx::new(self.training);
            let outs = self.net.forward(x, &mut call)?;
            Ok((outs, call.take_losses()))
        };
        let Some(plans) = self.plans else {
            return eager(inputs);
        };
        let n = self.net.output_shapes().len();
        let joined = |x: &[Tensor]| -> Result<Vec<Tensor>> {
            let (mut outs, penalties) = eager(x)?;
            outs.extend(penalties);
            Ok(outs)
        };
        let mut plans = plans.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = if self.training && ferrovision_tensor::is_grad_enabled() {
            plans.run_training(inputs, joined)?
        } else if self.training {
            return eager(inputs);
        } else {
            plans.run(inputs, joined)?
        };
        let penalties = all.split_off(n.min(all.len()));
        Ok((all, penalties))
    }

    /// The compiled objective (what [`TrainStep::compute_loss`] does by default): the sum of
    /// each output's compiled loss times its loss weight, plus `penalties`, plus the weight
    /// regularization of the network when training.
    pub fn compiled_loss(
        &self,
        batch: &Batch,
        outputs: &[Tensor],
        penalties: Vec<Tensor>,
    ) -> Result<ComputedLoss> {
        if batch.targets.len() != self.losses.len() {
            return Err(Error::config(format!(
                "the batch has {} target(s), the model has {} output(s)",
                batch.targets.len(),
                self.losses.len()
            )));
        }
        let mut total: Option<Tensor> = None;
        let mut per_output = Vec::with_capacity(outputs.len());
        for (i, ((loss, out), y)) in self
            .losses
            .iter()
            .zip(outputs)
            .zip(&batch.targets)
            .enumerate()
        {
            let l = loss.call(y, out, batch.sample_weight.as_ref())?;
            per_output.push(l.item()?);
            let l = l.mul_scalar(self.loss_weights[i])?;
            total = Some(match total {
                Some(t) => t.add(&l)?,
                None => l,
            });
        }
        let mut total = total.ok_or_else(|| {
            Error::config(
                "compile has no losses: give one per output, or a TrainStep that computes the loss",
            )
        })?;
        for p in penalties {
            total = total.add(&p)?;
        }
        if self.training {
            if let Some(r) = regularization_of(self.all_weights)? {
                total = total.add(&r)?;
            }
        }
        Ok(ComputedLoss { total, per_output })
    }

    /// The optimizer called `name` ([`PRIMARY_OPTIMIZER`] for the one of `Compile::new`).
    pub fn optimizer(&mut self, name: &str) -> Result<&mut dyn Optimizer> {
        match self.optimizers.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(self.optimizers[i].1.as_mut()),
            None => {
                let known: Vec<&str> = self.optimizers.iter().map(|(n, _)| n.as_str()).collect();
                Err(Error::config(format!(
                    "no optimizer named '{name}' (compiled: {})",
                    known.join(", ")
                )))
            }
        }
    }

    /// Updates `params` from their gradients with the optimizer called `name`, then clears
    /// their gradients.
    pub fn apply_gradients(&mut self, name: &str, params: &[(String, Param)]) -> Result<()> {
        self.optimizer(name)?.step(params)?;
        for (_, p) in params {
            p.zero_grad();
        }
        Ok(())
    }

    /// Clears the gradients of every weight (after a backward pass whose gradients are not
    /// all applied, such as a GAN's discriminator loss reaching the generator).
    pub fn zero_grad(&self) {
        for (_, p) in self.all_weights {
            p.zero_grad();
        }
    }

    /// Updates the compiled metrics with the batch's targets and the (detached) outputs.
    /// Compiled metrics are unweighted, as in Keras (only the loss sees sample weights).
    pub fn update_metrics(&mut self, batch: &Batch, outputs: &[Tensor]) -> Result<()> {
        no_grad(|| -> Result<()> {
            for (o, m) in self.metrics.iter_mut() {
                let (y, out) = match (batch.targets.get(*o), outputs.get(*o)) {
                    (Some(y), Some(out)) => (y, out),
                    _ => {
                        return Err(Error::config(format!(
                        "metric '{}' is on output {o}, the step has {} output(s) and {} target(s)",
                        m.name(),
                        outputs.len(),
                        batch.targets.len()
                    )))
                    }
                };
                m.update(y, &out.detach(), None)?;
            }
            Ok(())
        })
    }

    /// The default step's logs: `loss`, then `<output>_loss` per output when there are several.
    pub fn loss_logs(&self, loss: f64, per_output: &[f64]) -> StepLogs {
        let mut logs = StepLogs::new().with("loss", loss);
        if per_output.len() > 1 {
            for (name, v) in self.net.output_names().iter().zip(per_output) {
                logs.insert(format!("{name}_loss"), *v);
            }
        }
        logs
    }
}

/// What one batch does to a model in `fit` (`train_step`) and in `evaluate` / validation
/// (`test_step`). Every method has a default: today's Keras behaviour ([`DefaultStep`]).
/// Install a step with [`Model::set_train_step`](crate::Model::set_train_step).
pub trait TrainStep: Send {
    /// The objective of one batch given the network's outputs and layer penalties. Default:
    /// [`StepCtx::compiled_loss`].
    fn compute_loss(
        &mut self,
        ctx: &StepCtx<'_>,
        batch: &Batch,
        outputs: &[Tensor],
        penalties: Vec<Tensor>,
    ) -> Result<ComputedLoss> {
        ctx.compiled_loss(batch, outputs, penalties)
    }

    /// One training step. Default: forward, [`TrainStep::compute_loss`], backward, the primary
    /// optimizer on the trainable weights, compiled metrics; logs `loss` (and per-output
    /// losses).
    fn train_step(&mut self, ctx: &mut StepCtx<'_>, batch: &Batch) -> Result<StepLogs> {
        default_train_step(self, ctx, batch)
    }

    /// One evaluation step, run without gradients. Default: forward in inference mode,
    /// [`TrainStep::compute_loss`], compiled metrics.
    fn test_step(&mut self, ctx: &mut StepCtx<'_>, batch: &Batch) -> Result<StepLogs> {
        default_test_step(self, ctx, batch)
    }

    /// The keys the step logs, in order, so that an epoch without batches still reports them
    /// (as NaN) and `Model::metric_names` lists them. Default: `loss` and the per-output
    /// losses of a multi-output model.
    fn log_names(&self, net: &dyn Network) -> Vec<String> {
        let mut names = vec!["loss".to_string()];
        let outs = net.output_names();
        if outs.len() > 1 {
            names.extend(outs.iter().map(|o| format!("{o}_loss")));
        }
        names
    }
}

/// Keras' default train step (see [`TrainStep::train_step`]); custom steps may call it too.
pub fn default_train_step<S: TrainStep + ?Sized>(
    step: &mut S,
    ctx: &mut StepCtx<'_>,
    batch: &Batch,
) -> Result<StepLogs> {
    let (outs, penalties) = ctx.forward(&batch.inputs)?;
    let loss = step.compute_loss(ctx, batch, &outs, penalties)?;
    let value = loss.total.item()?;
    loss.total.backward()?;
    let params = ctx.trainable_weights();
    ctx.apply_gradients(PRIMARY_OPTIMIZER, params)?;
    ctx.update_metrics(batch, &outs)?;
    Ok(ctx.loss_logs(value, &loss.per_output))
}

/// Keras' default test step (see [`TrainStep::test_step`]).
pub fn default_test_step<S: TrainStep + ?Sized>(
    step: &mut S,
    ctx: &mut StepCtx<'_>,
    batch: &Batch,
) -> Result<StepLogs> {
    let (outs, penalties) = ctx.forward(&batch.inputs)?;
    let loss = step.compute_loss(ctx, batch, &outs, penalties)?;
    ctx.update_metrics(batch, &outs)?;
    Ok(ctx.loss_logs(loss.total.item()?, &loss.per_output))
}

/// The built-in step: every [`TrainStep`] default, i.e. Keras' `fit` behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultStep;

impl TrainStep for DefaultStep {}
