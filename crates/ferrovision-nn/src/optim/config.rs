//! Typed reading of optimizer configs (ours and Keras' `keras.optimizers.serialize` output).

use crate::{Error, Result};
use serde_json::{Map, Value};

/// Keys every optimizer config may carry (read by `OptimizerBase::apply_config`).
const BASE_KEYS: &[&str] = &[
    "name",
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "exclude_from_weight_decay",
];

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

/// One optimizer's config object with the class name for messages.
pub(crate) struct Cfg<'a> {
    pub class: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Cfg<'a> {
    pub fn new(class: &'a str, map: &'a Map<String, Value>) -> Self {
        Cfg { class, map }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn err(&self, key: &str, want: &str, got: &Value) -> Error {
        Error::config(format!(
            "optimizer '{}': '{key}' must be {want}, got {got}",
            self.class
        ))
    }

    pub fn opt_num(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, "a number or null", v)),
        }
    }

    pub fn num(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_num(key)?.unwrap_or(default))
    }

    pub fn boolean(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(key, "true or false", v)),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(key, "a string", v)),
        }
    }

    /// Rejects keys this optimizer does not know (typos) and Keras features we lack when they
    /// are switched on.
    pub fn finish(&self, specific: &[&str]) -> Result<()> {
        for (k, v) in self.map {
            let k = k.as_str();
            if BASE_KEYS.contains(&k) || specific.contains(&k) {
                continue;
            }
            if KERAS_OFF_KEYS.contains(&k) {
                let off = match k {
                    "use_ema" => matches!(v, Value::Null | Value::Bool(false)),
                    // Only meaningful with use_ema.
                    "ema_momentum" | "decay" => true,
                    _ => v.is_null(),
                };
                if off {
                    continue;
                }
                return Err(Error::config(format!(
                    "optimizer '{}': Keras option '{k}' = {v} is not supported by ferrovision",
                    self.class
                )));
            }
            let mut known: Vec<&str> = BASE_KEYS.to_vec();
            known.extend_from_slice(specific);
            return Err(Error::config(format!(
                "optimizer '{}': unknown config key '{k}' (known: {})",
                self.class,
                known.join(", ")
            )));
        }
        Ok(())
    }
}
