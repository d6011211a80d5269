//! Streaming metrics (Keras `metrics`): update per batch, read the result, reset per epoch.
//!
//! Values are accumulated in f64. Where Keras weights by `sample_weight` (every metric here),
//! each sample's value counts with its weight `[N]`; the class axis of `[N, C, ...]`
//! predictions is 1 (channels-first).
//!
//! ```
//! use ferrovision_nn::metrics::{accuracy_for_loss, metric_by_name, metric_from_config, Precision};
//! use ferrovision_nn::Metric;
//! use ferrovision_nn::tensor::Tensor;
//! let mut acc = accuracy_for_loss("sparse_categorical_crossentropy");
//! assert_eq!(acc.name(), "accuracy");
//! let scores = Tensor::from_vec(vec![2.0f32, 1.0, 0.0, 3.0], &[2, 2])?;
//! let labels = Tensor::from_vec(vec![0i64, 0], &[2])?;
//! acc.update(&labels, &scores, None)?;
//! assert_eq!(acc.result(), 0.5);
//! let p = Precision::new().threshold(0.3);
//! assert_eq!(metric_from_config(&p.config())?.name(), "precision");
//! assert_eq!(metric_by_name("mae")?.name(), "mean_absolute_error");
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

mod accuracy;
mod config;
mod confusion;
mod mean;

pub use accuracy::{Accuracy, AccuracyKind, TopKCategoricalAccuracy};
pub use confusion::{Precision, Recall};
pub use mean::{Mean, MeanMetricWrapper, MeanSquaredError, Psnr, WeightedMean};

use crate::losses::per_sample_loss_by_name;
use crate::registry::{Boxed, Registry};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;
use std::sync::OnceLock;

/// A metric accumulated over batches. Usable in custom loops as well as by `fit`.
pub trait Metric: Send {
    /// Name used in logs (`"accuracy"`, `"top_5_accuracy"`); validation logs prefix `val_`.
    fn name(&self) -> String;

    /// Accumulates one batch (`sample_weight` of shape `[N]` weights the samples).
    fn update(
        &mut self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<()>;

    /// The value over everything seen since the last reset.
    fn result(&self) -> f64;

    /// Forgets everything seen.
    fn reset(&mut self);

    /// A fresh metric of the same kind and configuration (validation uses its own copy).
    fn fresh(&self) -> Box<dyn Metric>;

    /// Kind and configuration as JSON (saved with the model); `Null` when it cannot be
    /// restored (closures).
    fn config(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The accumulated state (e.g. weighted sum and count), so that an epoch interrupted
    /// mid-way can be checkpointed and continued with the same result; None (the default)
    /// when the metric cannot save it, which makes `fit` refuse to suspend mid-epoch.
    fn state(&self) -> Option<Vec<f64>> {
        None
    }

    /// Restores what [`Metric::state`] returned.
    fn set_state(&mut self, _state: &[f64]) -> Result<()> {
        Err(Error::config(format!(
            "metric '{}' cannot restore a saved state",
            self.name()
        )))
    }
}

/// The error of a state of the wrong length.
pub(crate) fn state_len_error(metric: &str, want: usize, got: usize) -> Error {
    Error::config(format!(
        "metric '{metric}': a saved state has {got} values, expected {want}"
    ))
}

/// Per-sample weights `[N]` (or `[N, 1]`) as f64, checked against the batch size.
pub(crate) fn read_weights(
    metric: &str,
    sw: Option<&Tensor>,
    n: usize,
) -> Result<Option<Vec<f64>>> {
    let Some(w) = sw else { return Ok(None) };
    if w.shape() != [n] && w.shape() != [n, 1] {
        return Err(Error::config(format!(
            "metric '{metric}': sample_weight has shape {:?}, expected [{n}] (one weight per sample)",
            w.shape()
        )));
    }
    Ok(Some(w.to_f64_vec()?))
}

/// Targets and predictions of the same shape as f64 (Keras aligns `[N]` with `[N, 1]`), with
/// the batch size.
pub(crate) fn same_shape_f64(
    metric: &str,
    y_true: &Tensor,
    y_pred: &Tensor,
) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (ts, ps) = (y_true.shape(), y_pred.shape());
    let aligned = ts == ps
        || ts.len() + 1 == ps.len() && ps.last() == Some(&1) && ps[..ps.len() - 1] == *ts
        || ps.len() + 1 == ts.len() && ts.last() == Some(&1) && ts[..ts.len() - 1] == *ps;
    if !aligned || ps.is_empty() {
        return Err(Error::config(format!(
            "metric '{metric}': y_true has shape {ts:?} and y_pred has shape {ps:?}; they must \
             have the same shape [N, ...]"
        )));
    }
    Ok((y_true.to_f64_vec()?, y_pred.to_f64_vec()?, ps[0]))
}

/// The mean of each of `n` equal rows of `len` elements, element `j` being `f(j)` (rows of
/// zero elements give 0). How every metric turns `[N, ...]` values into per-sample values.
pub(crate) fn row_means(len: usize, n: usize, f: impl Fn(usize) -> f64) -> Vec<f64> {
    let per = len.checked_div(n).unwrap_or(0);
    (0..n)
        .map(|i| {
            if per == 0 {
                0.0
            } else {
                (i * per..(i + 1) * per).map(&f).sum::<f64>() / per as f64
            }
        })
        .collect()
}

/// The accuracy Keras picks for `metrics=["accuracy"]` given the loss, named `"accuracy"`:
/// binary for `binary_crossentropy`, sparse for `sparse_categorical_crossentropy`, categorical
/// for `categorical_crossentropy` and `kl_divergence` (aliases and class names accepted), and
/// for any other loss the automatic choice from the shapes at the first update (Keras 3's
/// rule; see [`AccuracyKind::Auto`]).
pub fn accuracy_for_loss(loss_name: &str) -> Box<dyn Metric> {
    let kind = match loss_name {
        "binary_crossentropy" | "bce" | "BinaryCrossentropy" => {
            AccuracyKind::Binary { threshold: 0.5 }
        }
        "sparse_categorical_crossentropy" | "scce" | "SparseCategoricalCrossentropy" => {
            AccuracyKind::Sparse
        }
        "categorical_crossentropy"
        | "cce"
        | "CategoricalCrossentropy"
        | "kl_divergence"
        | "kld"
        | "KLDivergence" => AccuracyKind::Categorical,
        _ => AccuracyKind::Auto,
    };
    Box::new(Accuracy::new(kind).named("accuracy"))
}

/// A metric by Keras name: `"accuracy"`/`"acc"` (automatic kind), `"binary_accuracy"`,
/// `"categorical_accuracy"`, `"sparse_categorical_accuracy"`, `"top_k_categorical_accuracy"`
/// and `"sparse_top_k_categorical_accuracy"` (k = 5), `"precision"`, `"recall"`, `"mean"`,
/// `"mse"`/`"mean_squared_error"`, `"psnr"` (max_val 1.0), or any loss name (`"mae"`,
/// `"binary_crossentropy"`, ...), which tracks the mean of that loss' per-sample values.
pub fn metric_by_name(name: &str) -> Result<Box<dyn Metric>> {
    Ok(match name {
        "accuracy" | "acc" => Box::new(Accuracy::auto().named(name)),
        "binary_accuracy" => Box::new(Accuracy::binary()),
        "categorical_accuracy" => Box::new(Accuracy::categorical()),
        "sparse_categorical_accuracy" => Box::new(Accuracy::sparse()),
        "top_k_categorical_accuracy" => Box::new(TopKCategoricalAccuracy::new(5)),
        "sparse_top_k_categorical_accuracy" => Box::new(TopKCategoricalAccuracy::sparse(5)),
        "precision" => Box::new(Precision::new()),
        "recall" => Box::new(Recall::new()),
        "mean" => Box::new(Mean::new()),
        "mse" | "mean_squared_error" => Box::new(MeanSquaredError::new()),
        "psnr" => Box::new(Psnr::new(1.0)),
        other => match per_sample_loss_by_name(other) {
            Ok(loss) => Box::new(MeanMetricWrapper::from_boxed_loss(loss)),
            Err(_) => {
                return Err(Error::config(format!(
                    "unknown metric '{other}' (known: accuracy, binary_accuracy, \
                     categorical_accuracy, sparse_categorical_accuracy, \
                     top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, precision, \
                     recall, mean, mse, psnr, or a loss name such as mae)"
                )))
            }
        },
    })
}

/// Rebuilds a metric from the `config()` of a built-in metric type
/// (`{"class_name", "config"}`).
pub fn metric_from_config(value: &Value) -> Result<Box<dyn Metric>> {
    if value.is_null() {
        return Err(Error::config(
            "metric config is null: closure metrics cannot be restored from a config",
        ));
    }
    let class = value["class_name"].as_str().ok_or_else(|| {
        Error::config(format!(
            "metric config needs a 'class_name' string, got {value}"
        ))
    })?;
    metric_registry().build(class, &value["config"])
}

/// The built-in metric classes (what [`metric_registry`] starts with).
const BUILTIN_METRICS: &[&str] = &[
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "AutoAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "Precision",
    "Recall",
    "Mean",
    "MeanSquaredError",
    "PSNR",
    "MeanMetricWrapper",
];

impl<M: Metric + 'static> Boxed<dyn Metric> for M {
    fn boxed(self) -> Box<dyn Metric> {
        Box::new(self)
    }
}

/// The process-wide metric registry (class name -> constructor from the inner `config`), the
/// built-in metrics registered on first use.
pub fn metric_registry() -> &'static Registry<dyn Metric> {
    static REG: OnceLock<Registry<dyn Metric>> = OnceLock::new();
    REG.get_or_init(|| {
        let r = Registry::new("metric", "metrics::register_metric");
        for &class in BUILTIN_METRICS {
            r.register(class, move |cfg: &Value| config::builtin_metric(class, cfg));
        }
        r
    })
}

/// Registers a custom metric class so compiled models using it can be saved and loaded.
pub fn register_metric(
    class_name: &str,
    factory: impl Fn(&Value) -> Result<Box<dyn Metric>> + Send + Sync + 'static,
) {
    metric_registry().register(class_name, factory);
}
