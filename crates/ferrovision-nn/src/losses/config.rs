//! The saved configs of the built-in losses: serde-derived structs with Keras' keys (what
//! `keras.losses.serialize` writes), and the constructor-from-config each built-in class is
//! registered with.
//!
//! f32 hyper-parameters are written in their shortest decimal form (`0.1`, not
//! `0.10000000149011612`), as Keras writes them.

use super::util::f32_json;
use super::{
    BinaryCrossentropy, CategoricalCrossentropy, Huber, KLDivergence, MeanAbsoluteError,
    MeanSquaredError, PerSampleLoss, SparseCategoricalCrossentropy,
};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Map, Value};

/// The only reduction implemented (Keras' default).
pub(crate) const REDUCTION: &str = "sum_over_batch_size";

fn shortest<S: Serializer>(v: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    f32_json(*v).serialize(s)
}

fn shortest_list<S: Serializer>(
    v: &Option<Vec<f32>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    v.as_ref()
        .map(|w| w.iter().map(|&x| f32_json(x)).collect::<Vec<_>>())
        .serialize(s)
}

/// `MeanSquaredError`, `MeanAbsoluteError`, `KLDivergence`.
#[derive(Serialize, Deserialize)]
pub(crate) struct BaseConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub reduction: Option<String>,
}

/// `Huber`.
#[derive(Serialize, Deserialize)]
pub(crate) struct HuberConfig {
    #[serde(flatten)]
    pub base: BaseConfig,
    #[serde(default = "one", serialize_with = "shortest")]
    pub delta: f32,
}

/// `BinaryCrossentropy`.
#[derive(Serialize, Deserialize)]
pub(crate) struct BinaryConfig {
    #[serde(flatten)]
    pub base: BaseConfig,
    #[serde(default)]
    pub from_logits: bool,
    #[serde(default, serialize_with = "shortest")]
    pub label_smoothing: f32,
}

/// `CategoricalCrossentropy`.
#[derive(Serialize, Deserialize)]
pub(crate) struct CategoricalConfig {
    #[serde(flatten)]
    pub base: BaseConfig,
    #[serde(default)]
    pub from_logits: bool,
    #[serde(default, serialize_with = "shortest")]
    pub label_smoothing: f32,
    #[serde(default, serialize_with = "shortest_list")]
    pub class_weights: Option<Vec<f32>>,
}

/// `SparseCategoricalCrossentropy`.
#[derive(Serialize, Deserialize)]
pub(crate) struct SparseConfig {
    #[serde(flatten)]
    pub base: BaseConfig,
    #[serde(default)]
    pub from_logits: bool,
    #[serde(default)]
    pub ignore_class: Option<i64>,
    #[serde(default, serialize_with = "shortest_list")]
    pub class_weights: Option<Vec<f32>>,
    #[serde(default, serialize_with = "shortest")]
    pub label_smoothing: f32,
}

fn one() -> f32 {
    1.0
}

impl BaseConfig {
    /// A config as written by a loss called `name`.
    pub fn new(name: &str) -> Self {
        BaseConfig {
            name: Some(name.to_string()),
            reduction: Some(REDUCTION.to_string()),
        }
    }

    /// The name, or the class's default; checks the reduction.
    fn name_or(&self, class: &str, default: &str) -> Result<String> {
        let r = self.reduction.as_deref().unwrap_or(REDUCTION);
        if r != REDUCTION {
            return Err(Error::config(format!(
                "loss '{class}': only reduction \"{REDUCTION}\" is supported, got \"{r}\""
            )));
        }
        Ok(self.name.clone().unwrap_or_else(|| default.to_string()))
    }
}

/// `{"class_name": class, "config": cfg}`, what `Loss::config` returns.
pub(crate) fn serialized<C: Serialize>(class: &str, cfg: &C) -> Value {
    json!({"class_name": class, "config": to_config(cfg)})
}

fn check_smoothing(class: &str, ls: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&ls) {
        return Err(Error::config(format!(
            "loss '{class}': label_smoothing must be in [0, 1], got {ls}"
        )));
    }
    Ok(())
}

/// A built-in per-sample loss from its class name and inner config (`null` = all defaults).
pub(crate) fn builtin_per_sample(class: &str, cfg: &Value) -> Result<Box<dyn PerSampleLoss>> {
    let empty = Value::Object(Map::new());
    let cfg = if cfg.is_null() { &empty } else { cfg };
    Ok(match class {
        "MeanSquaredError" => {
            let c: BaseConfig = from_config("loss", class, cfg)?;
            Box::new(MeanSquaredError::new().named(&c.name_or(class, "mean_squared_error")?))
        }
        "MeanAbsoluteError" => {
            let c: BaseConfig = from_config("loss", class, cfg)?;
            Box::new(MeanAbsoluteError::new().named(&c.name_or(class, "mean_absolute_error")?))
        }
        "KLDivergence" => {
            let c: BaseConfig = from_config("loss", class, cfg)?;
            Box::new(KLDivergence::new().named(&c.name_or(class, "kl_divergence")?))
        }
        "Huber" => {
            let c: HuberConfig = from_config("loss", class, cfg)?;
            if c.delta.is_nan() || c.delta <= 0.0 {
                return Err(Error::config(format!(
                    "loss 'Huber': delta must be positive, got {}",
                    c.delta
                )));
            }
            Box::new(Huber::new(c.delta).named(&c.base.name_or(class, "huber_loss")?))
        }
        "BinaryCrossentropy" => {
            let c: BinaryConfig = from_config("loss", class, cfg)?;
            check_smoothing(class, c.label_smoothing)?;
            Box::new(
                BinaryCrossentropy::new()
                    .from_logits(c.from_logits)
                    .label_smoothing(c.label_smoothing)
                    .named(&c.base.name_or(class, "binary_crossentropy")?),
            )
        }
        "CategoricalCrossentropy" => {
            let c: CategoricalConfig = from_config("loss", class, cfg)?;
            check_smoothing(class, c.label_smoothing)?;
            let mut l = CategoricalCrossentropy::new()
                .from_logits(c.from_logits)
                .label_smoothing(c.label_smoothing)
                .named(&c.base.name_or(class, "categorical_crossentropy")?);
            if let Some(w) = c.class_weights {
                l = l.class_weights(w);
            }
            Box::new(l)
        }
        "SparseCategoricalCrossentropy" => {
            let c: SparseConfig = from_config("loss", class, cfg)?;
            check_smoothing(class, c.label_smoothing)?;
            let mut l = SparseCategoricalCrossentropy::new()
                .from_logits(c.from_logits)
                .ignore_class(c.ignore_class)
                .label_smoothing(c.label_smoothing)
                .named(&c.base.name_or(class, "sparse_categorical_crossentropy")?);
            if let Some(w) = c.class_weights {
                l = l.class_weights(w);
            }
            Box::new(l)
        }
        other => {
            return Err(Error::config(format!(
                "unknown loss class '{other}' (known: {})",
                super::BUILTIN_LOSSES.join(", ")
            )))
        }
    })
}
