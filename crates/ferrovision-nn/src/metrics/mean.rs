//! Weighted means: `Mean` of values, `MeanSquaredError`, `Psnr`, and `MeanMetricWrapper` (the
//! mean of a loss' per-sample values or of a closure's).

use super::{read_weights, same_shape_f64, Metric};
use crate::losses::{per_sample_loss_from_config, PerSampleLoss};
use crate::{Error, Result};
use ferrovision_tensor::{no_grad, Tensor};
use serde_json::{json, Value};
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
    let n = values.shape()[0];
    let per = v.len().checked_div(n).unwrap_or(0);
    Ok((0..n)
        .map(|i| {
            if per == 0 {
                0.0
            } else {
                v[i * per..(i + 1) * per].iter().sum::<f64>() / per as f64
            }
        })
        .collect())
}

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
        let v = per_sample(values)?;
        let w = read_weights(&self.name, sample_weight, v.len())?;
        self.state.add(&v, w.as_deref());
        Ok(())
    }

    /// Accumulates one value with a weight.
    pub fn update_value(&mut self, value: f64, weight: f64) {
        self.state.add(&[value], Some(&[weight]));
    }

    /// The config (`{"class_name": "Mean", "config": {"name"}}`).
    pub fn config(&self) -> Value {
        json!({"class_name": "Mean", "config": {"name": self.name}})
    }
}

impl Metric for Mean {
    fn config(&self) -> Value {
        // The inherent method (takes precedence over this trait method).

        Self::config(self)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
    fn update(&mut self, _y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        self.update_values(y_pred, sw)
    }
    fn result(&self) -> f64 {
        self.state.get()
    }
    fn reset(&mut self) {
        self.state = WeightedMean::default();
    }
    fn fresh(&self) -> Box<dyn Metric> {
        Box::new(Mean {
            name: self.name.clone(),
            state: WeightedMean::default(),
        })
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
        json!({"class_name": "MeanSquaredError", "config": {"name": self.name}})
    }
}

impl Metric for MeanSquaredError {
    fn config(&self) -> Value {
        // The inherent method (takes precedence over this trait method).

        Self::config(self)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let (t, p, n) = same_shape_f64(&self.name, y_true, y_pred)?;
        let per = p.len().checked_div(n).unwrap_or(0);
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let r = i * per..(i + 1) * per;
                let s: f64 = t[r.clone()]
                    .iter()
                    .zip(&p[r])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                if per == 0 {
                    0.0
                } else {
                    s / per as f64
                }
            })
            .collect();
        let w = read_weights(&self.name, sw, n)?;
        self.state.add(&v, w.as_deref());
        Ok(())
    }
    fn result(&self) -> f64 {
        self.state.get()
    }
    fn reset(&mut self) {
        self.state = WeightedMean::default();
    }
    fn fresh(&self) -> Box<dyn Metric> {
        Box::new(MeanSquaredError {
            name: self.name.clone(),
            state: WeightedMean::default(),
        })
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
        json!({"class_name": "PSNR", "config": {"name": self.name, "max_val": self.max_val}})
    }
}

impl Metric for Psnr {
    fn config(&self) -> Value {
        // The inherent method (takes precedence over this trait method).

        Self::config(self)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        if self.max_val.is_nan() || self.max_val <= 0.0 {
            return Err(Error::config(format!(
                "metric '{}': max_val must be positive, got {}",
                self.name, self.max_val
            )));
        }
        let (t, p, n) = same_shape_f64(&self.name, y_true, y_pred)?;
        let per = p.len().checked_div(n).unwrap_or(0);
        if per == 0 && n > 0 {
            return Err(Error::config(format!(
                "metric '{}': images of shape {:?} have no pixels",
                self.name,
                y_pred.shape()
            )));
        }
        let head = 20.0 * self.max_val.log10();
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let r = i * per..(i + 1) * per;
                let mse = t[r.clone()]
                    .iter()
                    .zip(&p[r])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    / per as f64;
                head - 10.0 * mse.log10()
            })
            .collect();
        let w = read_weights(&self.name, sw, n)?;
        self.state.add(&v, w.as_deref());
        Ok(())
    }
    fn result(&self) -> f64 {
        self.state.get()
    }
    fn reset(&mut self) {
        self.state = WeightedMean::default();
    }
    fn fresh(&self) -> Box<dyn Metric> {
        Box::new(Psnr {
            state: WeightedMean::default(),
            ..self.clone()
        })
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
            Source::Loss(l) => json!({"class_name": "MeanMetricWrapper", "config": {
                "name": self.name, "loss": l.config()}}),
            Source::Fn(_) => Value::Null,
        }
    }

    /// Rebuilds from [`MeanMetricWrapper::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let loss = per_sample_loss_from_config(&cfg["loss"])?;
        let mut m = Self::from_boxed_loss(loss);
        if let Some(n) = cfg["name"].as_str() {
            m.name = n.into();
        }
        Ok(m)
    }
}

impl Metric for MeanMetricWrapper {
    fn config(&self) -> Value {
        // The inherent method (takes precedence over this trait method).

        Self::config(self)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
    fn update(&mut self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<()> {
        let values = no_grad(|| match &self.source {
            Source::Loss(l) => l.per_sample(y_true, y_pred),
            Source::Fn(f) => f(y_true, y_pred),
        })?;
        let v = per_sample(&values)?;
        let w = read_weights(&self.name, sw, v.len())?;
        self.state.add(&v, w.as_deref());
        Ok(())
    }
    fn result(&self) -> f64 {
        self.state.get()
    }
    fn reset(&mut self) {
        self.state = WeightedMean::default();
    }
    fn fresh(&self) -> Box<dyn Metric> {
        Box::new(MeanMetricWrapper {
            state: WeightedMean::default(),
            ..self.clone()
        })
    }
}
