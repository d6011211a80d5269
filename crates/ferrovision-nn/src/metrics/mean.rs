//! Weighted means: `Mean` of values, `MeanSquaredError`, `Psnr`, and `MeanMetricWrapper` (the
//! mean of a loss' per-sample values or of a closure's).

use super::config::{named, serialized, NameConfig, PsnrConfig, WrapperConfig};
use super::{read_weights, row_means, same_shape_f64, Metric};
use crate::losses::{per_sample_loss_from_config, PerSampleLoss};
use crate::registry::from_config;
use crate::{Error, Result};
use ferrovision_tensor::{no_grad, Tensor};
use serde_json::Value;
use std::sync::Arc;

/// Running `Σ w·v / Σ w` in f64 (Keras' `Mean` state: `total` and `count`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeightedMean {
    /// Σ w·v.
    pub total: f64,
    /// Σ w (the number of samples without weights).
    pub count: f64,
}

impl WeightedMean {
    /// Adds per-sample values with optional per-sample weights.
    pub fn add(&mut self, values: &[f64], weights: Option<&[f64]>) {
        match weights {
            Some(w) => {
                for (v, w) in values.iter().zip(w) {
                    self.total += v * w;
                    self.count += w;
                }
            }
            None => {
                self.total += values.iter().sum::<f64>();
                self.count += values.len() as f64;
            }
        }
    }

    /// Adds one value with its weight.
    pub fn add_one(&mut self, value: f64, weight: f64) {
        self.total += value * weight;
        self.count += weight;
    }

    /// [`WeightedMean::add`] with a metric's `sample_weight` (`[N]`, checked against the
    /// number of values; errors name `metric`).
    pub(crate) fn add_weighted(
        &mut self,
        metric: &str,
        values: &[f64],
        sample_weight: Option<&Tensor>,
    ) -> Result<()> {
        let w = read_weights(metric, sample_weight, values.len())?;
        self.add(values, w.as_deref());
        Ok(())
    }

    /// `total / count`, 0 before anything was added (Keras' `divide_no_nan`).
    pub fn get(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

/// Per-sample means of `[N, ...]` values as f64 (a scalar is one sample).
fn per_sample(values: &Tensor) -> Result<Vec<f64>> {
    let v = values.to_f64_vec()?;
    if values.rank() == 0 {
        return Ok(v);
    }
    Ok(row_means(v.len(), values.shape()[0], |j| v[j]))
}

/// Each sample's mean squared difference between `[N, ...]` targets and predictions.
fn per_sample_mse(t: &[f64], p: &[f64], n: usize) -> Vec<f64> {
    row_means(p.len(), n, |j| (t[j] - p[j]) * (t[j] - p[j]))
}

/// The [`Metric`] methods shared by the metrics that keep a `name: String` and a
/// `state: WeightedMean` and have an inherent `config` (`result`, `reset`, and `fresh` as a
/// copy with an empty state unless `no_fresh` is given).
macro_rules! mean_metric_methods {
    (no_fresh) => {
        fn config(&self) -> Value {
            // The inherent method (takes precedence over this trait method).
            Self::config(self)
        }
        fn name(&self) -> String {
            self.name.clone()
        }
        fn result(&self) -> f64 {
            self.state.get()
        }
        fn reset(&mut self) {
            self.state = WeightedMean::default();
        }
        fn state(&self) -> Option<Vec<f64>> {
            Some(vec![self.state.total, self.state.count])
        }
        fn set_state(&mut self, state: &[f64]) -> Result<()> {
            match state {
                [total, count] => {
                    self.state = WeightedMean {
                        total: *total,
                        count: *count,
                    };
                    Ok(())
                }
                _ => Err(super::state_len_error(&self.name, 2, state.len())),
            }
        }
    };
    () => {
        mean_metric_methods!(no_fresh);
        fn fresh(&self) -> Box<dyn Metric> {
            Box::new(Self {
                state: WeightedMean::default(),
                ..self.clone()
            })
        }
    };
}
pub(super) use mean_metric_methods;

/// Keras `Mean`: the weighted mean of the values you pass. Values `[N, ...]` are first averaged
/// per sample; a scalar counts as one sample.
///
/// Through [`Metric::update`] the values are `y_pred` (`y_true` is ignored), so it can be
/// compiled into a model to average an output; in custom loops use [`Mean::update_values`].
#[derive(Debug, Clone)]
pub struct Mean {
    name: String,
    state: WeightedMean,
}

impl Default for Mean {
    fn default() -> Self {
        Mean {
            name: "mean".into(),
            state: WeightedMean::default(),
        }
    }
}

impl Mean {
    /// A mean named `mean`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the metric.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Accumulates values `[N, ...]` (or a scalar) with optional weights `[N]`.
    pub fn update_values(&mut self, values: &Tensor, sample_weight: Option<&Tensor>) -> Result<()> {
        self.state
            .add_weighted(&self.name, &per_sample(values)?, sample_weight)
    }

    /// Accumulates one value with a weight.
    pub fn update_value(&mut self, value: f64, weight: f64) {
        self.state.add_one(value, weight);
    }

    /// The config (`{"class_name": "Mean", "config": {"name"}}`).
    pub fn config(&self) -> Value {
        serialized(
            "Mean",
            &NameConfig {
                name: named(&self.name),
            },
        )
    }
}

impl Metric for Mean {
    mean_metric_methods!();

    fn update(&mut self, _y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        self.update_values(y_pred, sw)
    }
}

/// Keras `metrics.MeanSquaredError`: the weighted mean over samples of each sample's mean
/// squared error.
#[derive(Debug, Clone)]
pub struct MeanSquaredError {
    name: String,
    state: WeightedMean,
}

impl Default for MeanSquaredError {
    fn default() -> Self {
        MeanSquaredError {
            name: "mean_squared_error".into(),
            state: WeightedMean::default(),
        }
    }
}

impl MeanSquaredError {
    /// The metric, named `mean_squared_error`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the metric.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The config.
    pub fn config(&self) -> Value {
        serialized(
            "MeanSquaredError",
            &NameConfig {
                name: named(&self.name),
            },
        )
    }
}

impl Metric for MeanSquaredError {
    mean_metric_methods!();

    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let (t, p, n) = same_shape_f64(&self.name, y_true, y_pred)?;
        self.state
            .add_weighted(&self.name, &per_sample_mse(&t, &p, n), sw)
    }
}

/// Peak signal-to-noise ratio in dB, `20·log10(max_val) − 10·log10(mse)` per image (mse over
/// all of an image's values, like `tf.image.psnr`), averaged over images (weighted by
/// `sample_weight`). Identical images give `+inf`, as in TensorFlow.
#[derive(Debug, Clone)]
pub struct Psnr {
    name: String,
    max_val: f64,
    state: WeightedMean,
}

impl Psnr {
    /// PSNR for images whose values span `[0, max_val]` (1.0 for floats, 255.0 for bytes).
    pub fn new(max_val: f64) -> Self {
        Psnr {
            name: "psnr".into(),
            max_val,
            state: WeightedMean::default(),
        }
    }

    /// Renames the metric.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The config.
    pub fn config(&self) -> Value {
        serialized(
            "PSNR",
            &PsnrConfig {
                name: named(&self.name),
                max_val: Some(self.max_val),
            },
        )
    }
}

impl Metric for Psnr {
    mean_metric_methods!();

    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        if self.max_val.is_nan() || self.max_val <= 0.0 {
            return Err(Error::config(format!(
                "metric '{}': max_val must be positive, got {}",
                self.name, self.max_val
            )));
        }
        let (t, p, n) = same_shape_f64(&self.name, y_true, y_pred)?;
        if n > 0 && p.len() / n == 0 {
            return Err(Error::config(format!(
                "metric '{}': images of shape {:?} have no pixels",
                self.name,
                y_pred.shape()
            )));
        }
        let head = 20.0 * self.max_val.log10();
        let v: Vec<f64> = per_sample_mse(&t, &p, n)
            .into_iter()
            .map(|mse| head - 10.0 * mse.log10())
            .collect();
        self.state.add_weighted(&self.name, &v, sw)
    }
}

type ValuesFn = dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync;

#[derive(Clone)]
enum Source {
    Loss(Arc<dyn PerSampleLoss>),
    Fn(Arc<ValuesFn>),
}

/// Keras `MeanMetricWrapper`: the weighted mean over samples of per-sample values computed by
/// a loss ([`PerSampleLoss::per_sample`]; e.g. tracking MAE while training on MSE) or by a
/// closure returning `[N, ...]` values (averaged per sample first).
#[derive(Clone)]
pub struct MeanMetricWrapper {
    name: String,
    source: Source,
    state: WeightedMean,
}

impl std::fmt::Debug for MeanMetricWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeanMetricWrapper")
            .field("name", &self.name)
            .field("state", &self.state)
            .finish()
    }
}

impl MeanMetricWrapper {
    /// The mean of a loss' per-sample values, named like the loss.
    pub fn from_loss(loss: impl PerSampleLoss + 'static) -> Self {
        Self::from_boxed_loss(Box::new(loss))
    }

    /// [`MeanMetricWrapper::from_loss`] for a boxed loss.
    pub fn from_boxed_loss(loss: Box<dyn PerSampleLoss>) -> Self {
        MeanMetricWrapper {
            name: loss.name(),
            source: Source::Loss(Arc::from(loss)),
            state: WeightedMean::default(),
        }
    }

    /// The mean of `f(y_true, y_pred)` (values `[N, ...]`; a scalar counts as one sample).
    pub fn from_fn(
        name: &str,
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        MeanMetricWrapper {
            name: name.into(),
            source: Source::Fn(Arc::new(f)),
            state: WeightedMean::default(),
        }
    }

    /// Renames the metric.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The config, with the wrapped loss' config; `Null` for closures.
    pub fn config(&self) -> Value {
        match &self.source {
            Source::Loss(l) => serialized(
                "MeanMetricWrapper",
                &WrapperConfig {
                    name: named(&self.name),
                    loss: l.config(),
                },
            ),
            Source::Fn(_) => Value::Null,
        }
    }

    /// Rebuilds from [`MeanMetricWrapper::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: WrapperConfig = from_config("metric", "MeanMetricWrapper", cfg)?;
        let mut m = Self::from_boxed_loss(per_sample_loss_from_config(&c.loss)?);
        if let Some(n) = c.name {
            m.name = n;
        }
        Ok(m)
    }
}

impl Metric for MeanMetricWrapper {
    mean_metric_methods!();

    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let values = no_grad(|| match &self.source {
            Source::Loss(l) => l.per_sample(y_true, y_pred),
            Source::Fn(f) => f(y_true, y_pred),
        })?;
        self.state
            .add_weighted(&self.name, &per_sample(&values)?, sw)
    }
}
