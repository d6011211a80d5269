//! Building optimizers from saved configs and from short names (the CLI's `--optimizer`).

use super::{Adadelta, Adagrad, Adam, AdamW, Nadam, Optimizer, RmsProp, Sgd};
use crate::{Error, Result};
use serde_json::Value;

/// Names [`optimizer_by_name`] accepts.
pub const OPTIMIZER_NAMES: &[&str] = &[
    "sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad", "nadam",
    "adamw",
];

fn boxed<O: Optimizer + 'static>(r: Result<O>) -> Result<Box<dyn Optimizer>> {
    r.map(|o| Box::new(o) as Box<dyn Optimizer>)
}

/// Rebuilds an optimizer from [`Optimizer::config`] output, from Keras'
/// `keras.optimizers.serialize(opt)` (`{"class_name": "Adam", "config": {...}}`, extra keys such
/// as `module` ignored), or from a bare name (`"adam"`, as [`optimizer_by_name`]).
pub fn optimizer_from_config(config: &Value) -> Result<Box<dyn Optimizer>> {
    if let Some(name) = config.as_str() {
        return optimizer_by_name(name, None);
    }
    let Some(obj) = config.as_object() else {
        return Err(Error::config(format!(
            "optimizer config must be an object {{\"class_name\", \"config\"}} or a name, got {config}"
        )));
    };
    let class = obj
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::config(format!(
                "optimizer config needs a string 'class_name': {config}"
            ))
        })?;
    let cfg = obj.get("config").unwrap_or(&Value::Null);
    match class.to_ascii_lowercase().as_str() {
        "sgd" => boxed(Sgd::from_config(cfg)),
        "adagrad" => boxed(Adagrad::from_config(cfg)),
        "adadelta" => boxed(Adadelta::from_config(cfg)),
        "rmsprop" => boxed(RmsProp::from_config(cfg)),
        "adam" => boxed(Adam::from_config(cfg)),
        "nadam" => boxed(Nadam::from_config(cfg)),
        "adamw" => boxed(AdamW::from_config(cfg)),
        _ => Err(Error::config(format!(
            "unknown optimizer class '{class}' (known: SGD, Adagrad, Adadelta, RMSprop, Adam, Nadam, AdamW)"
        ))),
    }
}

/// An optimizer by short name with Keras defaults, the learning rate replaced when `lr` is
/// given: `sgd`, `momentum` (SGD, momentum 0.9), `nesterov` (SGD, Nesterov momentum 0.9),
/// `adagrad`, `adadelta`, `rmsprop`, `adam`, `amsgrad` (Adam with AMSGrad), `nadam`, `adamw`.
/// Names are case-insensitive.
pub fn optimizer_by_name(name: &str, lr: Option<f64>) -> Result<Box<dyn Optimizer>> {
    if let Some(lr) = lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::config(format!(
                "learning rate must be a finite number > 0, got {lr}"
            )));
        }
    }
    fn with<O: Optimizer + 'static>(mut o: O, lr: Option<f64>) -> Box<dyn Optimizer> {
        if let Some(lr) = lr {
            o.set_learning_rate(lr);
        }
        Box::new(o)
    }
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "sgd" => with(Sgd::new(), lr),
        "momentum" => with(Sgd::new().momentum(0.9), lr),
        "nesterov" => with(Sgd::new().momentum(0.9).nesterov(true), lr),
        "adagrad" => with(Adagrad::new(), lr),
        "adadelta" => with(Adadelta::new(), lr),
        "rmsprop" => with(RmsProp::new(), lr),
        "adam" => with(Adam::new(), lr),
        "amsgrad" => with(Adam::new().amsgrad(true), lr),
        "nadam" => with(Nadam::new(), lr),
        "adamw" => with(AdamW::new(), lr),
        _ => {
            return Err(Error::config(format!(
                "unknown optimizer '{name}'; valid names: {}",
                OPTIMIZER_NAMES.join(", ")
            )))
        }
    })
}
