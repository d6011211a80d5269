//! Optimizer configs (ours and Keras' `keras.optimizers.serialize` output) as serde-derived
//! structs: [`BaseConfig`] holds the keys every optimizer shares, each update rule derives its
//! own keys (its hyper-parameters, internal per-step state skipped).
//!
//! Reading overlays the given keys on the optimizer's current (Keras default) config and then
//! deserialises the merged objects, so absent keys (and `null` for keys that cannot be off)
//! keep their defaults. Keys neither struct knows are rejected by name, and Keras features we
//! lack are accepted only at their "off" values. The field helpers below word type errors as
//! "'key' must be ...", naming the key.

use super::base::{OptimizerBase, Rule};
use super::schedules::schedule;
use super::LearningRateSchedule;
use crate::registry::{culprit, to_config};
use crate::{Error, Result};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Keys every optimizer config may carry ([`BaseConfig`]'s fields).
const BASE_KEYS: &[&str] = &[
    "name",
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "exclude_from_weight_decay",
];

/// Shared keys where `null` means "off" rather than "default" (AdamW's weight decay defaults on).
const NULLABLE_KEYS: &[&str] = &["weight_decay", "clipnorm", "clipvalue", "global_clipnorm"];

/// Keras options we do not implement: accepted only at their "off" values.
const KERAS_OFF_KEYS: &[&str] = &[
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    // Keras 3 ignores the legacy `decay` argument too (with a warning).
    "decay",
];

/// The keys every optimizer shares (Keras `BaseOptimizer` arguments), in the order we write them.
#[derive(Serialize, Deserialize)]
pub(crate) struct BaseConfig {
    #[serde(deserialize_with = "string")]
    pub name: String,
    #[serde(deserialize_with = "schedule")]
    pub learning_rate: LearningRateSchedule,
    #[serde(deserialize_with = "opt_num")]
    pub weight_decay: Option<f64>,
    #[serde(deserialize_with = "opt_num")]
    pub clipnorm: Option<f64>,
    #[serde(deserialize_with = "opt_num")]
    pub global_clipnorm: Option<f64>,
    #[serde(deserialize_with = "opt_num")]
    pub clipvalue: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "strings"
    )]
    pub exclude_from_weight_decay: Vec<String>,
}

/// A JSON value of the wanted shape, else "must be {want}, got {value}".
pub(crate) fn typed<'de, D: Deserializer<'de>, T>(
    d: D,
    want: &str,
    f: impl FnOnce(&Value) -> Option<T>,
) -> std::result::Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    f(&v).ok_or_else(|| D::Error::custom(format!("must be {want}, got {v}")))
}

/// A number field.
pub(crate) fn num<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    typed(d, "a number or null", Value::as_f64)
}

/// A boolean field.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    typed(d, "true or false", Value::as_bool)
}

/// A number or `null` (off).
fn opt_num<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    typed(d, "a number or null", |v| match v {
        Value::Null => Some(None),
        v => v.as_f64().map(Some),
    })
}

fn string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    typed(d, "a string", |v| v.as_str().map(str::to_string))
}

fn strings<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    typed(d, "a list of strings", |v| {
        v.as_array()?
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// A serialised config struct as its JSON object.
fn object<C: Serialize>(c: &C) -> Map<String, Value> {
    match to_config(c) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Deserialises a merged config object; the error names the optimizer and the key.
fn parse<C: DeserializeOwned>(class: &str, m: Map<String, Value>) -> Result<C> {
    let v = Value::Object(m);
    C::deserialize(&v).map_err(|e| {
        let msg = e.to_string();
        match culprit::<C>(&v) {
            Some(key) => Error::config(format!("optimizer '{class}': '{key}' {msg}")),
            None => Error::config(format!("optimizer '{class}': {msg}")),
        }
    })
}

/// The inner `config` object of an optimizer: the shared keys, then the rule's.
pub(crate) fn write<R: Rule>(base: &OptimizerBase, rule: &R) -> Map<String, Value> {
    let mut m = object(&base.to_config());
    m.extend(object(rule));
    m
}

/// Applies the inner `config` object (`null` = all defaults) to a freshly made optimizer.
pub(crate) fn read<R: Rule>(base: &mut OptimizerBase, rule: &mut R, config: &Value) -> Result<()> {
    let class = R::CLASS;
    let empty = Map::new();
    let given = match config {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(Error::config(format!(
                "optimizer '{class}': config must be an object, got {other}"
            )))
        }
    };
    let mut b = object(&base.to_config());
    let mut r = object(rule);
    for (k, v) in given {
        let k = k.as_str();
        let keep_default = v.is_null() && !NULLABLE_KEYS.contains(&k);
        if BASE_KEYS.contains(&k) {
            if !keep_default {
                b.insert(k.into(), v.clone());
            }
        } else if r.contains_key(k) {
            if !keep_default {
                r.insert(k.into(), v.clone());
            }
        } else if KERAS_OFF_KEYS.contains(&k) {
            let off = match k {
                "use_ema" => matches!(v, Value::Null | Value::Bool(false)),
                // Only meaningful with use_ema.
                "ema_momentum" | "decay" => true,
                _ => v.is_null(),
            };
            if !off {
                return Err(Error::config(format!(
                    "optimizer '{class}': Keras option '{k}' = {v} is not supported by ferrovision"
                )));
            }
        } else {
            let mut known: Vec<&str> = BASE_KEYS.to_vec();
            known.extend(r.keys().map(String::as_str));
            return Err(Error::config(format!(
                "optimizer '{class}': unknown config key '{k}' (known: {})",
                known.join(", ")
            )));
        }
    }
    base.apply_config(parse(class, b)?);
    *rule = parse(class, r)?;
    Ok(())
}

/// Default of a skipped per-step product (Nadam's `u_product`), as the constructor sets it.
pub(crate) fn one() -> f64 {
    1.0
}

/// Default of a skipped per-step divisor (Nadam's `v_div`), as the constructor sets it.
pub(crate) fn one_f32() -> f32 {
    1.0
}
