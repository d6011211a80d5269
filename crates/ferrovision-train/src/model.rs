//! [`Model`]: compile, fit, evaluate, predict, save and load a [`Network`].
//!
//! The loop (epochs, batches, callbacks, validation, logs) lives here; what one batch does is
//! the model's [`TrainStep`] (see `step.rs`), [`DefaultStep`] unless replaced.

use crate::callbacks::{Callback, Logs, ProgbarLogger, TrainParams};
use crate::step::{DefaultStep, StepCtx, StepLogs, TrainStep, PRIMARY_OPTIMIZER};
use crate::{Error, Result};
use ferrovision_nn::layer::CallCtx;
use ferrovision_nn::metrics::WeightedMean;
use ferrovision_nn::network::{Network, NetworkExt};
use ferrovision_nn::{Loss, Metric, Optimizer, Param};
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{no_grad, Tensor};

/// One batch of training or evaluation data.
#[derive(Debug, Clone)]
pub struct Batch {
    /// One tensor per model input, batch axis first.
    pub inputs: Vec<Tensor>,
    /// One tensor per model output (empty for `predict`).
    pub targets: Vec<Tensor>,
    /// Optional per-sample weights, shape `[N]`.
    pub sample_weight: Option<Tensor>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0)
    }

    /// True for a batch without samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Anything `fit`/`evaluate` can iterate over once per epoch: in-memory arrays
/// ([`ArrayData`]) or a dataset pipeline.
pub trait BatchSource {
    /// The batches of epoch `epoch` (sources that shuffle reshuffle per epoch, deterministically).
    fn batches(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>>;

    /// Batches per epoch, when known (for the progress bar).
    fn num_batches(&self) -> Option<usize> {
        None
    }

    /// The batches of epoch `epoch` after its first `skip` ones (continuing an epoch that a
    /// checkpoint stopped mid-way, see [`EpochProgress`]). By default the skipped batches are
    /// produced and dropped, so they cost their loading but no training.
    fn batches_from(
        &mut self,
        epoch: usize,
        skip: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        Ok(Box::new(self.batches(epoch)?.skip(skip)))
    }
}

/// In-memory arrays cut into batches, optionally shuffled with a seed (a new order each epoch,
/// the same orders in every run with the same seed).
#[derive(Debug, Clone)]
pub struct ArrayData {
    inputs: Vec<Tensor>,
    targets: Vec<Tensor>,
    sample_weight: Option<Tensor>,
    batch_size: usize,
    shuffle: Option<u64>,
    len: usize,
}

impl ArrayData {
    /// Batches of `batch_size` samples over `inputs` and `targets` (all with the same first
    /// dimension). Targets may be empty (prediction).
    pub fn new(inputs: Vec<Tensor>, targets: Vec<Tensor>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("batch_size must be at least 1"));
        }
        let first = inputs
            .first()
            .ok_or_else(|| Error::config("no input arrays given"))?;
        let len = *first
            .shape()
            .first()
            .ok_or_else(|| Error::config("input arrays need a batch axis"))?;
        for (what, list) in [("input", &inputs), ("target", &targets)] {
            for (i, t) in list.iter().enumerate() {
                if t.shape().first() != Some(&len) {
                    return Err(Error::config(format!(
                        "{what} array {i} has shape {:?}; every array needs {len} samples (the first input's)",
                        t.shape()
                    )));
                }
            }
        }
        Ok(ArrayData {
            inputs,
            targets,
            sample_weight: None,
            batch_size,
            shuffle: None,
            len,
        })
    }

    /// Per-sample weights `[N]`.
    pub fn with_sample_weight(mut self, w: Tensor) -> Result<Self> {
        if w.shape() != [self.len] {
            return Err(Error::config(format!(
                "sample_weight has shape {:?}, expected [{}]",
                w.shape(),
                self.len
            )));
        }
        self.sample_weight = Some(w);
        Ok(self)
    }

    /// Shuffles each epoch with this seed.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Splits off the last `fraction` of the samples (before any shuffling, like Keras'
    /// `validation_split`): returns (train, validation).
    pub fn split(self, fraction: f64) -> Result<(ArrayData, ArrayData)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::config(format!(
                "validation_split must be in [0, 1), got {fraction}"
            )));
        }
        let n_val = ((self.len as f64) * fraction).round() as usize;
        let n_train = self.len - n_val;
        if n_train == 0 || n_val == 0 {
            return Err(Error::config(format!(
                "validation_split {fraction} of {} samples leaves an empty part",
                self.len
            )));
        }
        let cut = |t: &Tensor, start: usize, len: usize| -> Result<Tensor> {
            Ok(t.narrow(0, start, len)?)
        };
        let part = |start: usize, len: usize| -> Result<ArrayData> {
            Ok(ArrayData {
                inputs: self
                    .inputs
                    .iter()
                    .map(|t| cut(t, start, len))
                    .collect::<Result<_>>()?,
                targets: self
                    .targets
                    .iter()
                    .map(|t| cut(t, start, len))
                    .collect::<Result<_>>()?,
                sample_weight: self
                    .sample_weight
                    .as_ref()
                    .map(|t| cut(t, start, len))
                    .transpose()?,
                batch_size: self.batch_size,
                shuffle: self.shuffle,
                len,
            })
        };
        Ok((part(0, n_train)?, part(n_train, n_val)?.unshuffled()))
    }

    fn unshuffled(mut self) -> Self {
        self.shuffle = None;
        self
    }
}

impl BatchSource for ArrayData {
    fn batches(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        let order: Option<Tensor> = self.shuffle.map(|seed| {
            let mut rng = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            Tensor::randperm(self.len, &mut rng)
        });
        let bs = self.batch_size;
        let n = self.len;
        let this = &*self;
        Ok(Box::new((0..n.div_ceil(bs)).map(move |b| {
            let start = b * bs;
            let len = bs.min(n - start);
            let pick = |t: &Tensor| -> Result<Tensor> {
                Ok(match &order {
                    Some(o) => t.index_select(0, &o.narrow(0, start, len)?)?,
                    None => t.narrow(0, start, len)?.contiguous()?,
                })
            };
            Ok(Batch {
                inputs: this.inputs.iter().map(pick).collect::<Result<_>>()?,
                targets: this.targets.iter().map(pick).collect::<Result<_>>()?,
                sample_weight: this.sample_weight.as_ref().map(pick).transpose()?,
            })
        })))
    }

    fn num_batches(&self) -> Option<usize> {
        Some(self.len.div_ceil(self.batch_size))
    }
}

/// What to train with: optimizers, one loss per output (with weights) and metrics per output.
///
/// The optimizer given to [`Compile::new`] is the primary one (named
/// [`PRIMARY_OPTIMIZER`], used by the default train step); custom [`TrainStep`]s may add
/// more with [`Compile::optimizer_named`] (a GAN's generator and discriminator).
pub struct Compile {
    optimizers: Vec<(String, Box<dyn Optimizer>)>,
    losses: Vec<Box<dyn Loss>>,
    loss_weights: Vec<f32>,
    metrics: Vec<(usize, Box<dyn Metric>)>,
}

impl Compile {
    /// One optimizer and the loss of the (first) output.
    pub fn new(optimizer: impl Optimizer + 'static, loss: impl Loss + 'static) -> Self {
        Self::boxed(Box::new(optimizer), vec![Box::new(loss)])
    }

    /// From boxed parts (one loss per output; none when a custom [`TrainStep`] computes the
    /// loss itself).
    pub fn boxed(optimizer: Box<dyn Optimizer>, losses: Vec<Box<dyn Loss>>) -> Self {
        let n = losses.len();
        Compile {
            optimizers: vec![(PRIMARY_OPTIMIZER.to_string(), optimizer)],
            losses,
            loss_weights: vec![1.0; n],
            metrics: Vec::new(),
        }
    }

    /// Only an optimizer: for a custom [`TrainStep`] that computes its own loss.
    pub fn custom(optimizer: impl Optimizer + 'static) -> Self {
        Self::boxed(Box::new(optimizer), Vec::new())
    }

    /// Adds an optimizer that custom train steps reach by `name`
    /// ([`StepCtx::apply_gradients`](crate::StepCtx::apply_gradients)); its state is saved and
    /// restored with the model's.
    pub fn optimizer_named(mut self, name: &str, optimizer: impl Optimizer + 'static) -> Self {
        self.optimizers
            .push((name.to_string(), Box::new(optimizer)));
        self
    }

    /// Boxed form of [`Compile::optimizer_named`].
    pub fn optimizer_named_boxed(mut self, name: &str, optimizer: Box<dyn Optimizer>) -> Self {
        self.optimizers.push((name.to_string(), optimizer));
        self
    }

    /// Adds the loss of the next output (multi-output models, in output order).
    pub fn loss(mut self, loss: impl Loss + 'static) -> Self {
        self.losses.push(Box::new(loss));
        self.loss_weights.push(1.0);
        self
    }

    /// Weights of the per-output losses in the total.
    pub fn loss_weights(mut self, weights: &[f32]) -> Self {
        self.loss_weights = weights.to_vec();
        self
    }

    /// Tracks a metric on the first output.
    pub fn metric(self, metric: impl Metric + 'static) -> Self {
        self.metric_for(0, metric)
    }

    /// Tracks a metric on output `output`.
    pub fn metric_for(mut self, output: usize, metric: impl Metric + 'static) -> Self {
        self.metrics.push((output, Box::new(metric)));
        self
    }

    /// Tracks a boxed metric on output `output`.
    pub fn metric_boxed(mut self, output: usize, metric: Box<dyn Metric>) -> Self {
        self.metrics.push((output, metric));
        self
    }
}

struct Compiled {
    /// The primary optimizer first, then the named ones, in `Compile` order.
    optimizers: Vec<(String, Box<dyn Optimizer>)>,
    losses: Vec<Box<dyn Loss>>,
    loss_weights: Vec<f32>,
    metrics: Vec<(usize, Box<dyn Metric>)>,
}

/// Options of [`Model::fit`] (Keras defaults: batch 32, shuffle, verbose 1).
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Shuffle the training arrays each epoch.
    pub shuffle: bool,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// Fraction of the arrays (taken from the end) held out for validation.
    pub validation_split: f64,
    /// Validation arrays (inputs, targets).
    pub validation_data: Option<(Vec<Tensor>, Vec<Tensor>)>,
    /// Weight per class index (sparse or one-hot targets of the first output).
    pub class_weight: Option<Vec<f32>>,
    /// Weight per training sample `[N]`.
    pub sample_weight: Option<Tensor>,
    /// Epoch to start from (resuming); defaults to the model's completed epochs.
    pub initial_epoch: Option<usize>,
    /// 0 quiet, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            validation_split: 0.0,
            validation_data: None,
            class_weight: None,
            sample_weight: None,
            initial_epoch: None,
            verbose: 1,
        }
    }
}

/// Per-epoch logs of a `fit` run (Keras `History`).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Epoch indices (from 0).
    pub epochs: Vec<usize>,
    /// The logs of each epoch.
    pub logs: Vec<Logs>,
}

impl History {
    /// The series of one key (`"loss"`, `"val_accuracy"`), one value per epoch that has it.
    pub fn get(&self, key: &str) -> Vec<f64> {
        self.logs.iter().filter_map(|l| l.get(key)).collect()
    }

    /// The last epoch's logs.
    pub fn last(&self) -> Option<&Logs> {
        self.logs.last()
    }
}

/// A network plus what trains it. Keras' `Model` API: `compile`, `fit`, `evaluate`,
/// `predict`, `summary`, `save`/`load`. What one batch does is its [`TrainStep`]
/// ([`Model::set_train_step`]; [`DefaultStep`] unless replaced).
pub struct Model {
    net: Box<dyn Network>,
    compiled: Option<Compiled>,
    step: Box<dyn TrainStep>,
    weights: Option<WeightCache>,
    epoch: usize,
    /// Free-form key/value notes saved with the model (e.g. the input normalisation a
    /// front end applies), see [`Model::set_metadata`].
    metadata: std::collections::BTreeMap<String, String>,
    /// Set by a callback (EarlyStopping, TerminateOnNaN) to end `fit` after the current batch.
    pub stop_training: bool,
    /// Set by a callback to suspend `fit` after the current batch, keeping the epoch's
    /// progress ([`Model::epoch_progress`]) so that saving now and `fit` later (even after
    /// loading) finish the epoch exactly as if it had not been interrupted.
    pub suspend_training: bool,
    /// Where a suspended epoch stopped (saved with the model).
    progress: Option<EpochProgress>,
    /// Traced inference plans by input signature (see [`Model::set_run_eagerly`]).
    plans: std::sync::Mutex<crate::traced::Plans>,
    run_eagerly: bool,
}

/// Where a suspended epoch stopped: what `fit` needs to continue it exactly (the weights,
/// optimizer state and random state are the model's own). Saved with the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    /// The epoch in progress (0-based: the number of completed epochs).
    pub epoch: usize,
    /// Training steps done in it.
    pub steps: usize,
    /// The running means of the step logs: name, weighted total, total weight.
    pub means: Vec<(String, f64, f64)>,
    /// The state of each compiled metric, in compile order ([`Metric::state`]).
    pub metrics: Vec<Vec<f64>>,
}

/// The mean of a log value over batches; NaN before any batch (an empty epoch or source).
fn mean_or_nan(m: &WeightedMean) -> f64 {
    if m.count > 0.0 {
        m.total / m.count
    } else {
        f64::NAN
    }
}

/// Running means of the values steps log, weighted by batch size, in first-logged order
/// (seeded with the step's `log_names`, so an epoch without batches still has them, as NaN).
struct StepMeans(Vec<(String, WeightedMean)>);

impl StepMeans {
    fn new(names: Vec<String>) -> Self {
        StepMeans(
            names
                .into_iter()
                .map(|n| (n, WeightedMean::default()))
                .collect(),
        )
    }

    fn state(&self) -> Vec<(String, f64, f64)> {
        self.0
            .iter()
            .map(|(k, m)| (k.clone(), m.total, m.count))
            .collect()
    }

    fn from_state(state: &[(String, f64, f64)]) -> Self {
        StepMeans(
            state
                .iter()
                .map(|(k, total, count)| {
                    (
                        k.clone(),
                        WeightedMean {
                            total: *total,
                            count: *count,
                        },
                    )
                })
                .collect(),
        )
    }

    fn add(&mut self, logs: &StepLogs, n: f64) {
        for (k, v) in logs.iter() {
            match self.0.iter_mut().find(|(name, _)| name == k) {
                Some((_, m)) => m.add_one(v, n),
                None => {
                    let mut m = WeightedMean::default();
                    m.add_one(v, n);
                    self.0.push((k.to_string(), m));
                }
            }
        }
    }
}

/// The network's weights, kept between training steps: listing them walks every layer, formats
/// every name and drops repeated shared weights (quadratic in the weight count), and the list
/// only changes when layers do, which needs `&mut` access to the network: `network_mut` and
/// `compile` drop the cache. Trainability is re-read every step, since
/// [`Param::set_trainable`] needs no `&mut Model`.
struct WeightCache {
    /// `named_weights()`, in order.
    all: Vec<(String, Param)>,
    /// The trainable flag of each of `all` when `trainable` was made.
    flags: Vec<bool>,
    /// The weights of `all` the optimizer updates.
    trainable: Vec<(String, Param)>,
}

impl WeightCache {
    fn new(all: Vec<(String, Param)>) -> Self {
        WeightCache {
            all,
            flags: Vec::new(),
            trainable: Vec::new(),
        }
    }

    /// Rebuilds the trainable list when a flag changed since it was made (the first call always
    /// builds it unless there are no weights, when it stays empty); true when it did.
    fn refresh(&mut self) -> bool {
        let flags: Vec<bool> = self.all.iter().map(|(_, p)| p.trainable()).collect();
        let changed = flags != self.flags;
        if changed {
            self.trainable = self
                .all
                .iter()
                .zip(&flags)
                .filter(|(_, &t)| t)
                .map(|(w, _)| w.clone())
                .collect();
            self.flags = flags;
        }
        changed
    }
}

impl Model {
    /// Wraps a network (Sequential, Functional or custom).
    pub fn new(net: impl Network + 'static) -> Self {
        Self::from_boxed(Box::new(net))
    }

    /// Wraps a boxed network.
    pub fn from_boxed(net: Box<dyn Network>) -> Self {
        Model {
            net,
            compiled: None,
            step: Box::new(DefaultStep),
            weights: None,
            epoch: 0,
            metadata: Default::default(),
            stop_training: false,
            suspend_training: false,
            progress: None,
            plans: Default::default(),
            run_eagerly: crate::traced::eager_by_default(),
        }
    }

    /// Runs the model eagerly, op by op (`true`), or through traced plans (`false`, the
    /// default unless the environment sets `FERROVISION_RUN_EAGERLY=1`), like Keras'
    /// `run_eagerly`. Traced plans ([`ferrovision_tensor::trace`]) are built once per input
    /// signature: for inference ([`Model::predict`], `evaluate`) with batch norms folded into
    /// the convolutions before them and ReLUs fused into GEMM epilogues (outputs agree with
    /// eager mode within rounding, bitwise where nothing was folded); for training steps
    /// (`fit`, `train_on_batch`: the forward pass of [`StepCtx::forward`](crate::StepCtx::forward)
    /// with its backward pass), bitwise equal to eager training.
    pub fn set_run_eagerly(&mut self, eager: bool) {
        self.run_eagerly = eager;
    }

    /// True when inference runs eagerly (see [`Model::set_run_eagerly`]).
    pub fn run_eagerly(&self) -> bool {
        self.run_eagerly
    }

    /// What traced inference did so far: traces (one per input signature), replays, batches
    /// run eagerly and why their signatures could not be planned.
    pub fn trace_stats(&self) -> crate::traced::TraceStats {
        self.lock_plans().stats().clone()
    }

    fn lock_plans(&self) -> std::sync::MutexGuard<'_, crate::traced::Plans> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model's outputs for `inputs` in inference mode: replayed from a traced plan unless
    /// [`Model::run_eagerly`].
    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if self.run_eagerly {
            return Ok(self.forward(inputs, false)?.0);
        }
        self.lock_plans()
            .run(inputs, |x| Ok(self.forward(x, false)?.0))
    }

    /// Attaches a note saved with the model and restored by [`Model::load`] (e.g. how inputs
    /// must be preprocessed, so evaluation and prediction apply what training applied).
    pub fn set_metadata(&mut self, key: &str, value: impl Into<String>) {
        self.metadata.insert(key.to_string(), value.into());
    }

    /// A note set with [`Model::set_metadata`] (or loaded with the model).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// All notes, by key.
    pub fn metadata_all(&self) -> &std::collections::BTreeMap<String, String> {
        &self.metadata
    }

    pub(crate) fn metadata_mut(&mut self) -> &mut std::collections::BTreeMap<String, String> {
        &mut self.metadata
    }

    /// Replaces what one batch does in `fit` and `evaluate` (see [`TrainStep`]); the default
    /// is [`DefaultStep`].
    pub fn set_train_step(&mut self, step: impl TrainStep + 'static) {
        self.step = Box::new(step);
    }

    /// Builder form of [`Model::set_train_step`].
    pub fn with_train_step(mut self, step: impl TrainStep + 'static) -> Self {
        self.set_train_step(step);
        self
    }

    /// The network.
    pub fn network(&self) -> &dyn Network {
        self.net.as_ref()
    }

    /// The network, mutable (freezing layers).
    pub fn network_mut(&mut self) -> &mut dyn Network {
        // Layers may change: list the weights again at the next step, trace again.
        self.weights = None;
        self.lock_plans().clear();
        self.net.as_mut()
    }

    /// The Keras-style summary table of the network.
    pub fn summary(&self) -> String {
        self.net.summary()
    }

    /// Epochs completed (restored by `load`, the default `initial_epoch` of `fit`).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Sets the optimizer, losses and metrics.
    pub fn compile(&mut self, c: Compile) -> Result<()> {
        let n_out = self.net.output_shapes().len();
        // No losses at all: a custom TrainStep computes the objective (the default step then
        // fails with a message saying so).
        if c.losses.len() != n_out && !c.losses.is_empty() {
            return Err(Error::config(format!(
                "compile: the model has {n_out} output(s) but {} loss(es) were given",
                c.losses.len()
            )));
        }
        if c.loss_weights.len() != c.losses.len() {
            return Err(Error::config(format!(
                "compile: {} loss weight(s) for {n_out} output(s)",
                c.loss_weights.len()
            )));
        }
        for (i, (name, _)) in c.optimizers.iter().enumerate() {
            if c.optimizers[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::config(format!(
                    "compile: two optimizers are named '{name}'"
                )));
            }
        }
        if let Some((o, m)) = c.metrics.iter().find(|(o, _)| *o >= n_out) {
            return Err(Error::config(format!(
                "compile: metric '{}' is on output {o}, the model has {n_out}",
                m.name()
            )));
        }
        self.weights = None;
        self.compiled = Some(Compiled {
            optimizers: c.optimizers,
            losses: c.losses,
            loss_weights: c.loss_weights,
            metrics: c.metrics,
        });
        Ok(())
    }

    fn compiled(&mut self) -> Result<&mut Compiled> {
        self.compiled
            .as_mut()
            .ok_or_else(|| Error::config("the model is not compiled: call compile() first"))
    }

    /// The primary optimizer (after `compile`).
    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        self.optimizer_named(PRIMARY_OPTIMIZER)
    }

    /// The primary optimizer, mutable (learning-rate callbacks).
    pub fn optimizer_mut(&mut self) -> Option<&mut (dyn Optimizer + 'static)> {
        self.optimizer_named_mut(PRIMARY_OPTIMIZER)
    }

    /// The optimizer called `name` (after `compile`).
    pub fn optimizer_named(&self, name: &str) -> Option<&dyn Optimizer> {
        let c = self.compiled.as_ref()?;
        c.optimizers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.as_ref())
    }

    /// The optimizer called `name`, mutable.
    pub fn optimizer_named_mut(&mut self, name: &str) -> Option<&mut (dyn Optimizer + 'static)> {
        let c = self.compiled.as_mut()?;
        c.optimizers
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.as_mut())
    }

    /// All optimizers with their names, the primary one first.
    pub fn optimizers(&self) -> Vec<(&str, &dyn Optimizer)> {
        self.compiled
            .iter()
            .flat_map(|c| c.optimizers.iter().map(|(n, o)| (n.as_str(), o.as_ref())))
            .collect()
    }

    /// Names of the logged values in order: the step's values (`loss`, per-output losses),
    /// then metrics.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names = self.step.log_names(self.net.as_ref());
        if let Some(c) = &self.compiled {
            let outs = self.net.output_names();
            for (o, m) in &c.metrics {
                names.push(metric_log_name(&outs, outs.len(), *o, m.as_ref()));
            }
        }
        names
    }

    /// Runs the network (training or inference mode) and returns outputs plus the penalties
    /// layers added (activity regularizers).
    pub fn forward(&self, inputs: &[Tensor], training: bool) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let mut ctx = CallCtx::new(training);
        let outs = self.net.forward(inputs, &mut ctx)?;
        Ok((outs, ctx.take_losses()))
    }

    /// One optimization step on one batch (Keras `train_on_batch`); returns the loss (NaN
    /// when the train step logs no `loss`).
    pub fn train_on_batch(&mut self, batch: &Batch) -> Result<f64> {
        Ok(self.train_step(batch)?.get("loss").unwrap_or(f64::NAN))
    }

    /// Runs the model's [`TrainStep`] once on `batch` in training mode and returns what it
    /// logged (compiled metrics are updated, not reported: see [`Model::metric_names`]).
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepLogs> {
        let epoch = self.epoch;
        let net = &self.net;
        let weights = self
            .weights
            .get_or_insert_with(|| WeightCache::new(net.named_weights()));
        if weights.refresh() {
            // A weight was frozen or unfrozen through its handle: training plans hold the
            // weights' previous handles (a trainable flag change makes a new one).
            self.plans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear_training();
        }
        let c = self
            .compiled
            .as_mut()
            .ok_or_else(|| Error::config("the model is not compiled: call compile() first"))?;
        let mut ctx = StepCtx {
            net: self.net.as_ref(),
            optimizers: &mut c.optimizers,
            losses: &c.losses,
            loss_weights: &c.loss_weights,
            metrics: &mut c.metrics,
            all_weights: &weights.all,
            trainable: &weights.trainable,
            training: true,
            epoch,
            plans: (!self.run_eagerly).then_some(&self.plans),
        };
        let step = &mut self.step;
        ferrovision_tensor::parallel::on_pool(|| step.train_step(&mut ctx, batch))
    }

    /// Where a suspended epoch stopped, if `fit` was suspended mid-epoch (or a model saved
    /// then was loaded); the next `fit` continues that epoch.
    pub fn epoch_progress(&self) -> Option<&EpochProgress> {
        self.progress.as_ref()
    }

    pub(crate) fn set_epoch_progress(&mut self, p: Option<EpochProgress>) {
        self.progress = p;
    }

    /// Every compiled metric's state; an error naming a metric that cannot save it.
    fn metric_states(&self) -> Result<Vec<Vec<f64>>> {
        let Some(c) = &self.compiled else {
            return Ok(Vec::new());
        };
        c.metrics
            .iter()
            .map(|(_, m)| {
                m.state().ok_or_else(|| {
                    Error::config(format!(
                        "metric '{}' cannot save its running state, so the epoch cannot be \
                         suspended mid-way",
                        m.name()
                    ))
                })
            })
            .collect()
    }

    fn set_metric_states(&mut self, states: &[Vec<f64>]) -> Result<()> {
        let Some(c) = &mut self.compiled else {
            return Ok(());
        };
        if states.len() != c.metrics.len() {
            return Err(Error::config(format!(
                "the saved epoch progress has {} metric states, the model compiles {} metrics",
                states.len(),
                c.metrics.len()
            )));
        }
        for ((_, m), s) in c.metrics.iter_mut().zip(states) {
            m.set_state(s)?;
        }
        Ok(())
    }

    fn reset_metrics(&mut self) {
        if let Some(c) = &mut self.compiled {
            for (_, m) in c.metrics.iter_mut() {
                m.reset();
            }
        }
    }

    /// The epoch's logs so far: the step's running means, then the compiled metrics.
    fn collect_logs(&self, means: &StepMeans, prefix: &str) -> Logs {
        let mut logs = Logs::new();
        for (k, m) in &means.0 {
            logs.insert(format!("{prefix}{k}"), mean_or_nan(m));
        }
        if let Some(c) = &self.compiled {
            let outs = self.net.output_names();
            for (o, m) in &c.metrics {
                let name = metric_log_name(&outs, outs.len(), *o, m.as_ref());
                logs.insert(format!("{prefix}{name}"), m.result());
            }
        }
        logs
    }

    /// Trains on in-memory arrays (single input and output).
    pub fn fit(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        opts: FitOptions,
        callbacks: Vec<Box<dyn Callback>>,
    ) -> Result<History> {
        self.fit_arrays(vec![x.clone()], vec![y.clone()], opts, callbacks)
    }

    /// Trains on in-memory arrays (one per input / output).
    pub fn fit_arrays(
        &mut self,
        x: Vec<Tensor>,
        y: Vec<Tensor>,
        opts: FitOptions,
        callbacks: Vec<Box<dyn Callback>>,
    ) -> Result<History> {
        let mut data = ArrayData::new(x, y.clone(), opts.batch_size)?;
        let mut weights = opts.sample_weight.clone();
        if let Some(cw) = &opts.class_weight {
            let first = y
                .first()
                .ok_or_else(|| Error::config("class_weight needs targets"))?;
            let w = class_sample_weights(first, cw)?;
            weights = Some(match weights {
                Some(sw) => sw.mul(&w)?,
                None => w,
            });
        }
        if let Some(w) = weights {
            data = data.with_sample_weight(w)?;
        }
        if opts.shuffle {
            data = data.shuffled(opts.seed);
        }
        let (mut train, mut val) = if opts.validation_split > 0.0 {
            let (t, v) = data.split(opts.validation_split)?;
            (t, Some(v))
        } else {
            (data, None)
        };
        if let Some((vx, vy)) = &opts.validation_data {
            val = Some(ArrayData::new(vx.clone(), vy.clone(), opts.batch_size)?);
        }
        self.fit_source(
            &mut train,
            val.as_mut().map(|v| v as &mut dyn BatchSource),
            &opts,
            callbacks,
        )
    }

    /// Trains on any [`BatchSource`] (arrays, a dataset pipeline), validating on `val` after
    /// each epoch. Uses `epochs`, `initial_epoch` and `verbose` from `opts`.
    pub fn fit_source(
        &mut self,
        train: &mut dyn BatchSource,
        mut val: Option<&mut dyn BatchSource>,
        opts: &FitOptions,
        mut callbacks: Vec<Box<dyn Callback>>,
    ) -> Result<History> {
        self.compiled()?;
        let initial_epoch = opts.initial_epoch.unwrap_or(self.epoch);
        let params = TrainParams {
            epochs: opts.epochs,
            initial_epoch,
            steps: train.num_batches(),
            verbose: opts.verbose,
        };
        callbacks.insert(0, Box::new(ProgbarLogger::new(opts.verbose)));
        self.stop_training = false;
        self.suspend_training = false;
        if let Some(p) = &self.progress {
            if p.epoch != initial_epoch {
                return Err(Error::config(format!(
                    "the model holds the progress of epoch {} (suspended after {} steps) but fit \
                     starts at epoch {initial_epoch}",
                    p.epoch + 1,
                    p.steps
                )));
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_train_begin(self, &params)?;
        }
        let mut history = History::default();
        let mut last_logs = Logs::new();
        for epoch in initial_epoch..opts.epochs {
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(self, epoch)?;
            }
            self.reset_metrics();
            let mut means = StepMeans::new(self.step.log_names(self.net.as_ref()));
            // A suspended epoch continues where it stopped, with its running means and metrics.
            let skip = match self.progress.take() {
                Some(p) => {
                    means = StepMeans::from_state(&p.means);
                    self.set_metric_states(&p.metrics)?;
                    p.steps
                }
                None => 0,
            };
            // Streamed: a pipeline's batches are produced while the model trains.
            for (b, batch) in train.batches_from(epoch, skip)?.enumerate() {
                let b = b + skip;
                let batch = batch?;
                for cb in callbacks.iter_mut() {
                    cb.on_batch_begin(self, b)?;
                }
                let n = batch.len() as f64;
                let step_logs = self.train_step(&batch)?;
                means.add(&step_logs, n);
                let logs = self.collect_logs(&means, "");
                for cb in callbacks.iter_mut() {
                    cb.on_batch_end(self, b, &logs)?;
                }
                if self.suspend_training {
                    self.suspend_training = false;
                    self.progress = Some(EpochProgress {
                        epoch,
                        steps: b + 1,
                        means: means.state(),
                        metrics: self.metric_states()?,
                    });
                    for cb in callbacks.iter_mut() {
                        cb.on_train_end(self, &last_logs)?;
                    }
                    return Ok(history);
                }
                if self.stop_training {
                    break;
                }
            }
            let mut logs = self.collect_logs(&means, "");
            if let Some(v) = val.as_deref_mut() {
                let vlogs = self.evaluate_source(v)?;
                for (k, x) in vlogs.iter() {
                    logs.insert(format!("val_{k}"), x);
                }
            }
            if let Some(opt) = self.optimizer() {
                logs.insert("lr", opt.learning_rate());
            }
            self.epoch = epoch + 1;
            for cb in callbacks.iter_mut() {
                cb.on_epoch_end(self, epoch, &logs)?;
            }
            history.epochs.push(epoch);
            history.logs.push(logs.clone());
            last_logs = logs;
            if self.stop_training {
                break;
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_train_end(self, &last_logs)?;
        }
        Ok(history)
    }

    /// Loss and metrics on arrays, in inference mode (Keras `evaluate`).
    pub fn evaluate(&mut self, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Logs> {
        let mut data = ArrayData::new(vec![x.clone()], vec![y.clone()], batch_size)?;
        self.evaluate_source(&mut data)
    }

    /// Loss and metrics over a source, in inference mode (the model's
    /// [`TrainStep::test_step`]). Metrics are computed on fresh copies so training metrics are
    /// not disturbed.
    pub fn evaluate_source(&mut self, data: &mut dyn BatchSource) -> Result<Logs> {
        let epoch = self.epoch;
        let c = self
            .compiled
            .as_mut()
            .ok_or_else(|| Error::config("the model is not compiled: call compile() first"))?;
        let mut metrics: Vec<(usize, Box<dyn Metric>)> =
            c.metrics.iter().map(|(o, m)| (*o, m.fresh())).collect();
        let mut means = StepMeans::new(self.step.log_names(self.net.as_ref()));
        no_grad(|| -> Result<()> {
            for batch in data.batches(0)? {
                let batch = batch?;
                let mut ctx = StepCtx {
                    net: self.net.as_ref(),
                    optimizers: &mut c.optimizers,
                    losses: &c.losses,
                    loss_weights: &c.loss_weights,
                    metrics: &mut metrics,
                    all_weights: &[],
                    trainable: &[],
                    training: false,
                    epoch,
                    plans: (!self.run_eagerly).then_some(&self.plans),
                };
                let step_logs = self.step.test_step(&mut ctx, &batch)?;
                means.add(&step_logs, batch.len() as f64);
            }
            Ok(())
        })?;
        let outs = self.net.output_names();
        let mut logs = Logs::new();
        for (k, m) in &means.0 {
            logs.insert(k.clone(), mean_or_nan(m));
        }
        for (o, m) in &metrics {
            logs.insert(
                metric_log_name(&outs, outs.len(), *o, m.as_ref()),
                m.result(),
            );
        }
        Ok(logs)
    }

    /// Outputs for the inputs, in inference mode, computed in batches (Keras `predict`).
    pub fn predict(&self, x: &Tensor, batch_size: usize) -> Result<Tensor> {
        let mut outs = self.predict_arrays(vec![x.clone()], batch_size)?;
        Ok(outs.remove(0))
    }

    /// Outputs (one tensor per model output) for several inputs.
    pub fn predict_arrays(&self, x: Vec<Tensor>, batch_size: usize) -> Result<Vec<Tensor>> {
        let mut data = ArrayData::new(x, vec![], batch_size)?;
        let n_out = self.net.output_shapes().len();
        let mut chunks: Vec<Vec<Tensor>> = vec![Vec::new(); n_out];
        no_grad(|| -> Result<()> {
            for batch in data.batches(0)? {
                let outs = self.infer(&batch?.inputs)?;
                for (c, o) in chunks.iter_mut().zip(outs) {
                    c.push(o);
                }
            }
            Ok(())
        })?;
        chunks
            .into_iter()
            .map(|c| {
                let refs: Vec<&Tensor> = c.iter().collect();
                Ok(Tensor::cat(&refs, 0)?)
            })
            .collect()
    }
}

fn metric_log_name(outs: &[String], n_out: usize, output: usize, m: &dyn Metric) -> String {
    if n_out > 1 {
        format!("{}_{}", outs[output], m.name())
    } else {
        m.name()
    }
}

/// Sample weights from class weights: sparse integer targets `[N]` or one-hot `[N, C]`.
fn class_sample_weights(y: &Tensor, class_weight: &[f32]) -> Result<Tensor> {
    let classes: Vec<usize> = if y.rank() == 1 {
        y.to_f64_vec()?.iter().map(|&v| v as usize).collect()
    } else {
        y.argmax(-1, false)?
            .to_f64_vec()?
            .iter()
            .map(|&v| v as usize)
            .collect()
    };
    let w = classes
        .iter()
        .map(|&c| {
            class_weight.get(c).copied().ok_or_else(|| {
                Error::config(format!(
                    "class_weight has {} entries but a target is class {c}",
                    class_weight.len()
                ))
            })
        })
        .collect::<Result<Vec<f32>>>()?;
    Ok(Tensor::from_vec(w, &[classes.len()])?)
}

impl Model {
    pub(crate) fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    /// The compile state as JSON: optimizer configs (the primary one as `optimizer`, named
    /// ones in `named_optimizers`), loss configs and weights, metric configs.
    pub(crate) fn compile_config(&self) -> Option<serde_json::Value> {
        let c = self.compiled.as_ref()?;
        let (_, primary) = c.optimizers.first()?;
        let named: Vec<serde_json::Value> = c.optimizers[1..]
            .iter()
            .map(|(n, o)| serde_json::json!({"name": n, "config": o.config()}))
            .collect();
        Some(serde_json::json!({
            "optimizer": primary.config(),
            "named_optimizers": named,
            "losses": c.losses.iter().map(|l| l.config()).collect::<Vec<_>>(),
            "loss_weights": c.loss_weights,
            "metrics": c.metrics.iter().map(|(o, m)| serde_json::json!({"output": o, "config": m.config()})).collect::<Vec<_>>(),
        }))
    }
}

/// Rebuilds a [`Compile`] from [`Model::compile_config`] output.
pub(crate) fn compile_from_config(cfg: &serde_json::Value) -> Result<Compile> {
    let optimizer = ferrovision_nn::optim::optimizer_from_config(&cfg["optimizer"])?;
    let losses = cfg["losses"]
        .as_array()
        .ok_or_else(|| Error::config("compile config needs a 'losses' list"))?
        .iter()
        .map(ferrovision_nn::losses::loss_from_config)
        .collect::<Result<Vec<_>>>()?;
    let mut c = Compile::boxed(optimizer, losses);
    for o in cfg["named_optimizers"].as_array().into_iter().flatten() {
        let name = o["name"].as_str().ok_or_else(|| {
            Error::config("a named optimizer in the compile config has no 'name'")
        })?;
        let opt = ferrovision_nn::optim::optimizer_from_config(&o["config"])?;
        c = c.optimizer_named_boxed(name, opt);
    }
    if let Some(w) = cfg["loss_weights"].as_array() {
        let w: Vec<f32> = w.iter().map(|v| v.as_f64().unwrap_or(1.0) as f32).collect();
        c = c.loss_weights(&w);
    }
    for m in cfg["metrics"].as_array().into_iter().flatten() {
        let output = m["output"].as_u64().unwrap_or(0) as usize;
        c = c.metric_boxed(
            output,
            ferrovision_nn::metrics::metric_from_config(&m["config"])?,
        );
    }
    Ok(c)
}
