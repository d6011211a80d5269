//! The saved configs of the built-in metrics: serde-derived structs with Keras' keys, and the
//! constructor-from-config each built-in class is registered with.

use super::{
    Accuracy, Mean, MeanMetricWrapper, MeanSquaredError, Metric, Precision, Psnr, Recall,
    TopKCategoricalAccuracy,
};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

/// A number, or (Keras allows a list of thresholds) a list of exactly one number; `null` = unset.
fn one_or_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(a) if a.len() == 1 && a[0].is_number() => Ok(a[0].as_f64()),
        v => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a number, got {v}"))),
    }
}

/// Metrics configured by their name only.
#[derive(Serialize, Deserialize)]
pub(crate) struct NameConfig {
    #[serde(default)]
    pub name: Option<String>,
}

/// `BinaryAccuracy`.
#[derive(Serialize, Deserialize)]
pub(crate) struct BinaryAccuracyConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "one_or_list")]
    pub threshold: Option<f64>,
}

/// `TopKCategoricalAccuracy`, `SparseTopKCategoricalAccuracy`.
#[derive(Serialize, Deserialize)]
pub(crate) struct TopKConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub k: Option<usize>,
}

/// `Precision`, `Recall`.
#[derive(Serialize, Deserialize)]
pub(crate) struct ConfusionConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "one_or_list")]
    pub thresholds: Option<f64>,
    #[serde(default)]
    pub class_id: Option<usize>,
}

/// `PSNR`.
#[derive(Serialize, Deserialize)]
pub(crate) struct PsnrConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "one_or_list")]
    pub max_val: Option<f64>,
}

/// `MeanMetricWrapper`: the wrapped loss' own `{"class_name", "config"}`.
#[derive(Serialize, Deserialize)]
pub(crate) struct WrapperConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub loss: Value,
}

/// `{"class_name": class, "config": cfg}`, what `Metric::config` returns.
pub(crate) fn serialized<C: Serialize>(class: &str, cfg: &C) -> Value {
    json!({"class_name": class, "config": to_config(cfg)})
}

/// `Some(name)` for a config.
pub(crate) fn named(name: &str) -> Option<String> {
    Some(name.to_string())
}

/// A built-in metric from its class name and inner config (`null` = all defaults).
pub(crate) fn builtin_metric(class: &str, cfg: &Value) -> Result<Box<dyn Metric>> {
    let empty = Value::Object(Map::new());
    let cfg = if cfg.is_null() { &empty } else { cfg };
    let name = |n: &Option<String>, default: &str| n.clone().unwrap_or_else(|| default.into());
    Ok(match class {
        "BinaryAccuracy" => {
            let c: BinaryAccuracyConfig = from_config("metric", class, cfg)?;
            Box::new(
                Accuracy::binary_threshold(c.threshold.unwrap_or(0.5))
                    .named(&name(&c.name, "binary_accuracy")),
            )
        }
        "CategoricalAccuracy"
        | "SparseCategoricalAccuracy"
        | "AutoAccuracy"
        | "Mean"
        | "MeanSquaredError" => {
            let c: NameConfig = from_config("metric", class, cfg)?;
            match class {
                "CategoricalAccuracy" => {
                    Box::new(Accuracy::categorical().named(&name(&c.name, "categorical_accuracy")))
                }
                "SparseCategoricalAccuracy" => Box::new(
                    Accuracy::sparse().named(&name(&c.name, "sparse_categorical_accuracy")),
                ),
                "AutoAccuracy" => Box::new(Accuracy::auto().named(&name(&c.name, "accuracy"))),
                "Mean" => Box::new(Mean::new().named(&name(&c.name, "mean"))),
                _ => Box::new(MeanSquaredError::new().named(&name(&c.name, "mean_squared_error"))),
            }
        }
        "TopKCategoricalAccuracy" | "SparseTopKCategoricalAccuracy" => {
            let c: TopKConfig = from_config("metric", class, cfg)?;
            let k = c.k.unwrap_or(5);
            let m = if class == "TopKCategoricalAccuracy" {
                TopKCategoricalAccuracy::new(k)
            } else {
                TopKCategoricalAccuracy::sparse(k)
            };
            let default = m.name();
            Box::new(m.named(&name(&c.name, &default)))
        }
        "Precision" | "Recall" => {
            let c: ConfusionConfig = from_config("metric", class, cfg)?;
            let t = c.thresholds.unwrap_or(0.5);
            if class == "Precision" {
                Box::new(
                    Precision::new()
                        .threshold(t)
                        .class_id(c.class_id)
                        .named(&name(&c.name, "precision")),
                )
            } else {
                Box::new(
                    Recall::new()
                        .threshold(t)
                        .class_id(c.class_id)
                        .named(&name(&c.name, "recall")),
                )
            }
        }
        "PSNR" => {
            let c: PsnrConfig = from_config("metric", class, cfg)?;
            let max_val = c.max_val.unwrap_or(1.0);
            if max_val.is_nan() || max_val <= 0.0 {
                return Err(Error::config(format!(
                    "metric 'PSNR': max_val must be positive, got {max_val}"
                )));
            }
            Box::new(Psnr::new(max_val).named(&name(&c.name, "psnr")))
        }
        "MeanMetricWrapper" => Box::new(MeanMetricWrapper::from_config(cfg)?),
        other => {
            return Err(Error::config(format!(
                "unknown metric class '{other}' (known: {})",
                super::BUILTIN_METRICS.join(", ")
            )))
        }
    })
}
