//! Building optimizers from saved configs and from short names (the CLI's `--optimizer`).

use super::{Adadelta, Adagrad, Adam, AdamW, Nadam, Optimizer, RmsProp, Sgd};
use crate::registry::{Boxed, Registry};
use crate::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// Names [`optimizer_by_name`] accepts.
pub const OPTIMIZER_NAMES: &[&str] = &[
    "sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad", "nadam",
    "adamw",
];

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
    optimizer_registry().build(class, obj.get("config").unwrap_or(&Value::Null))
}

impl<O: Optimizer + 'static> Boxed<dyn Optimizer> for O {
    fn boxed(self) -> Box<dyn Optimizer> {
        Box::new(self)
    }
}

/// The process-wide optimizer registry (class name, matched case-insensitively -> constructor
/// from the inner `config`), the built-in optimizers registered on first use.
pub fn optimizer_registry() -> &'static Registry<dyn Optimizer> {
    static REG: OnceLock<Registry<dyn Optimizer>> = OnceLock::new();
    REG.get_or_init(|| {
        let r = Registry::new("optimizer", "optim::register_optimizer").case_insensitive();
        fn reg<O: Optimizer + 'static>(
            r: &Registry<dyn Optimizer>,
            class: &str,
            f: fn(&Value) -> Result<O>,
        ) {
            r.register(class, move |v: &Value| f(v).map(Boxed::boxed));
        }
        reg(&r, "SGD", Sgd::from_config);
        reg(&r, "Adagrad", Adagrad::from_config);
        reg(&r, "Adadelta", Adadelta::from_config);
        reg(&r, "RMSprop", RmsProp::from_config);
        reg(&r, "Adam", Adam::from_config);
        reg(&r, "Nadam", Nadam::from_config);
        reg(&r, "AdamW", AdamW::from_config);
        r
    })
}

/// Registers a custom optimizer class so saved models compiled with it can be loaded.
pub fn register_optimizer(
    class_name: &str,
    factory: impl Fn(&Value) -> Result<Box<dyn Optimizer>> + Send + Sync + 'static,
) {
    optimizer_registry().register(class_name, factory);
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
