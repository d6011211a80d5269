//! Built-in layers (one per file) and the registry that rebuilds layers from saved configs.

mod dense;

pub use dense::Dense;

use crate::{Error, Layer, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Builds a layer from its config (what [`Layer::config`] returned).
pub type LayerFactory = fn(&Value) -> Result<Box<dyn Layer>>;

fn registry() -> &'static Mutex<HashMap<String, LayerFactory>> {
    static REG: OnceLock<Mutex<HashMap<String, LayerFactory>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers a custom layer class so saved models using it can be loaded.
pub fn register_layer(class_name: &str, factory: LayerFactory) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(class_name.to_string(), factory);
}

fn boxed<L: Layer + 'static>(r: Result<L>) -> Result<Box<dyn Layer>> {
    r.map(|l| Box::new(l) as Box<dyn Layer>)
}

/// Rebuilds an (unbuilt) layer from its class name and config.
pub fn layer_from_config(class_name: &str, config: &Value) -> Result<Box<dyn Layer>> {
    match class_name {
        "Dense" => boxed(Dense::from_config(config)),
        "Sequential" => boxed(crate::Sequential::from_config(config)),
        "Functional" => boxed(crate::Functional::from_config(config)),
        other => {
            let factory = registry()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(other)
                .copied();
            match factory {
                Some(f) => f(config),
                None => Err(Error::config(format!(
                    "unknown layer class '{other}' (register custom layers with layers::register_layer)"
                ))),
            }
        }
    }
}
