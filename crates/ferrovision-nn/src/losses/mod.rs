//! Losses (Keras `losses`): each reduces to the batch mean, weighting samples when asked.
//!
//! Built-in losses follow Keras 3 (`reduction="sum_over_batch_size"`): per-element losses are
//! multiplied by the sample weights (`[N]`, broadcast over every non-batch axis) and summed,
//! then divided by the number of loss values. The class axis is 1 (channels-first), so
//! per-pixel `[N, C, H, W]` scores work with the cross-entropies. Each built-in also gives
//! per-sample values ([`PerSampleLoss`]), which [`crate::metrics::MeanMetricWrapper`] averages.
//!
//! ```
//! use ferrovision_nn::losses::{loss_by_name, loss_from_config, SparseCategoricalCrossentropy};
//! use ferrovision_nn::Loss;
//! use ferrovision_nn::tensor::Tensor;
//! let loss = SparseCategoricalCrossentropy::new().from_logits(true);
//! let logits = Tensor::zeros(&[2, 4]);
//! let labels = Tensor::from_vec(vec![1i64, 3], &[2])?;
//! assert!((loss.call(&labels, &logits, None)?.item()? - 4f64.ln()).abs() < 1e-6);
//! let again = loss_from_config(&loss.config())?;
//! assert_eq!(again.config(), loss.config());
//! assert_eq!(loss_by_name("mse")?.name(), "mean_squared_error");
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

mod closure;
mod config;
mod crossentropy;
mod kld;
mod regression;
pub(crate) mod util;

pub use closure::FnLoss;
pub use crossentropy::{
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
};
pub use kld::KLDivergence;
pub use regression::{Huber, MeanAbsoluteError, MeanSquaredError};

use crate::registry::{Boxed, Registry};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;
use std::sync::OnceLock;

/// A training objective comparing targets with predictions.
pub trait Loss: Send + Sync {
    /// Short name used in logs (`"sparse_categorical_crossentropy"`).
    fn name(&self) -> String;

    /// The scalar loss. With `sample_weight` (shape `[N]`), each sample's loss is weighted and
    /// the result is `sum(w * l) / N` (Keras' `sum_over_batch_size`).
    fn call(
        &self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor>;

    /// Name and hyper-parameters as JSON (saved with the model); `Null` for closures.
    fn config(&self) -> Value {
        Value::Null
    }
}

/// A loss that also gives one value per sample (what Keras' loss *functions* return, averaged
/// over any non-batch axes): used by metrics that track a loss.
pub trait PerSampleLoss: Loss {
    /// Unweighted per-sample values `[N]` (no gradient needed; class weights are not applied).
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor>;
}

/// Rebuilds a built-in loss (with per-sample values) from its config.
pub fn per_sample_loss_from_config(value: &Value) -> Result<Box<dyn PerSampleLoss>> {
    if value.is_null() {
        return Err(Error::config(
            "loss config is null: closure losses (FnLoss) cannot be restored from a config; \
             build the loss in code and compile with it again",
        ));
    }
    let class = value["class_name"].as_str().ok_or_else(|| {
        Error::config(format!(
            "loss config needs a 'class_name' string (e.g. \"MeanSquaredError\"), got {value}"
        ))
    })?;
    config::builtin_per_sample(class, &value["config"])
}

/// The built-in loss classes (what [`loss_registry`] starts with).
const BUILTIN_LOSSES: &[&str] = &[
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "KLDivergence",
];

impl<L: Loss + 'static> Boxed<dyn Loss> for L {
    fn boxed(self) -> Box<dyn Loss> {
        Box::new(self)
    }
}

/// The process-wide loss registry (class name -> constructor from the inner `config`), the
/// built-in losses registered on first use.
pub fn loss_registry() -> &'static Registry<dyn Loss> {
    static REG: OnceLock<Registry<dyn Loss>> = OnceLock::new();
    REG.get_or_init(|| {
        let r = Registry::new("loss", "losses::register_loss");
        for &class in BUILTIN_LOSSES {
            r.register(class, move |cfg: &Value| {
                let l: Box<dyn Loss> = config::builtin_per_sample(class, cfg)?;
                Ok(l)
            });
        }
        r
    })
}

/// Registers a custom loss class so compiled models using it can be saved and loaded; its
/// [`Loss::config`] must return `{"class_name": class_name, "config": ...}` and `factory`
/// gets the inner `config`.
pub fn register_loss(
    class_name: &str,
    factory: impl Fn(&Value) -> Result<Box<dyn Loss>> + Send + Sync + 'static,
) {
    loss_registry().register(class_name, factory);
}

/// Rebuilds a loss from what [`Loss::config`] returned (`{"class_name", "config"}`) through
/// [`loss_registry`]. A `Null` config (closure losses) is an error: closures cannot be restored.
pub fn loss_from_config(config: &Value) -> Result<Box<dyn Loss>> {
    if config.is_null() {
        return Err(Error::config(
            "loss config is null: closure losses (FnLoss) cannot be restored from a config; \
             build the loss in code and compile with it again",
        ));
    }
    let class = config["class_name"].as_str().ok_or_else(|| {
        Error::config(format!(
            "loss config needs a 'class_name' string (e.g. \"MeanSquaredError\"), got {config}"
        ))
    })?;
    loss_registry().build(class, &config["config"])
}

/// The built-in per-sample loss for a Keras name or alias (`"mse"`, `"mae"`, `"huber"`,
/// `"binary_crossentropy"`/`"bce"`, `"categorical_crossentropy"`/`"cce"`,
/// `"sparse_categorical_crossentropy"`/`"scce"`, `"kl_divergence"`/`"kld"`, or a class name
/// such as `"MeanSquaredError"`), with Keras' defaults (probabilities, not logits).
pub fn per_sample_loss_by_name(name: &str) -> Result<Box<dyn PerSampleLoss>> {
    Ok(match name {
        "mse" | "MSE" | "mean_squared_error" | "MeanSquaredError" => {
            Box::new(MeanSquaredError::new())
        }
        "mae" | "MAE" | "mean_absolute_error" | "MeanAbsoluteError" => {
            Box::new(MeanAbsoluteError::new())
        }
        "huber" | "huber_loss" | "Huber" => Box::new(Huber::default()),
        "binary_crossentropy" | "bce" | "BinaryCrossentropy" => Box::new(BinaryCrossentropy::new()),
        "categorical_crossentropy" | "cce" | "CategoricalCrossentropy" => {
            Box::new(CategoricalCrossentropy::new())
        }
        "sparse_categorical_crossentropy" | "scce" | "SparseCategoricalCrossentropy" => {
            Box::new(SparseCategoricalCrossentropy::new())
        }
        "kl_divergence" | "kld" | "KLD" | "kullback_leibler_divergence" | "KLDivergence" => {
            Box::new(KLDivergence::new())
        }
        other => {
            return Err(Error::config(format!(
                "unknown loss '{other}' (known: mse, mae, huber, binary_crossentropy, \
                 categorical_crossentropy, sparse_categorical_crossentropy, kl_divergence)"
            )))
        }
    })
}

/// A built-in loss by Keras name or alias (see [`per_sample_loss_by_name`] for the list), with
/// Keras' defaults.
pub fn loss_by_name(name: &str) -> Result<Box<dyn Loss>> {
    Ok(per_sample_loss_by_name(name)?)
}
