//! One open registry mechanism for everything a saved model names by class: layers, losses,
//! metrics and optimizers.
//!
//! A [`Registry`] maps a class name (`"Conv2D"`, `"Adam"`, `"MyLoss"`) to a constructor that
//! rebuilds an object from its JSON config. Each kind has one process-wide registry (see
//! [`crate::layers::layer_registry`], [`crate::losses::loss_registry`],
//! [`crate::metrics::metric_registry`], [`crate::optim::optimizer_registry`]) with the built-ins
//! registered the first time it is used; user types register at run time and then round-trip
//! through save/load like built-ins.
//!
//! Configs are plain serde types: derive `Serialize`/`Deserialize` on a config struct with the
//! Keras key names, return [`to_config`] of it from `config()`, and register the type with
//! [`Registry::register_config`], which deserialises the stored JSON into the struct (errors name
//! the class and serde's field message) before calling your constructor.
//!
//! ```
//! use ferrovision_nn::layers::{layer_registry, Flatten};
//! use ferrovision_nn::Layer;
//! use serde::{Deserialize, Serialize};
//! #[derive(Serialize, Deserialize)]
//! struct MyFlattenConfig { name: String }
//! layer_registry().register_config("MyFlatten", |c: MyFlattenConfig| Ok(Flatten::new().named(&c.name)));
//! let l = layer_registry().build("MyFlatten", &serde_json::json!({"name": "f"}))?;
//! assert_eq!(l.name(), "f");
//! let err = layer_registry().build("NoSuchLayer", &serde_json::json!({})).err().unwrap();
//! assert!(err.to_string().contains("unknown layer class 'NoSuchLayer'"));
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Rebuilds one object from its config.
pub type Factory<T> = Arc<dyn Fn(&Value) -> Result<Box<T>> + Send + Sync>;

/// Class name -> constructor-from-config, for one kind of object (`T` is e.g. `dyn Layer`).
pub struct Registry<T: ?Sized> {
    kind: &'static str,
    hint: &'static str,
    case_insensitive: bool,
    map: RwLock<BTreeMap<String, Factory<T>>>,
}

impl<T: ?Sized + 'static> Registry<T> {
    /// An empty registry for objects of `kind` (`"layer"`); `hint` names the function users
    /// call to register (shown in the unknown-class error).
    pub fn new(kind: &'static str, hint: &'static str) -> Self {
        Registry {
            kind,
            hint,
            case_insensitive: false,
            map: RwLock::new(BTreeMap::new()),
        }
    }

    /// Also finds a class by a case-insensitive match when no exact one exists (Keras accepts
    /// `"adam"` for `"Adam"`; layers, losses and metrics are case-sensitive).
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        self
    }

    /// Registers (or replaces) the constructor for `class`.
    pub fn register(
        &self,
        class: &str,
        factory: impl Fn(&Value) -> Result<Box<T>> + Send + Sync + 'static,
    ) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(class.to_string(), Arc::new(factory));
    }

    /// Registers `class` with a serde config type: the stored JSON is deserialised into `C`
    /// (an error names the class and the field), then `build` makes the object.
    pub fn register_config<C, O>(
        &self,
        class: &str,
        build: impl Fn(C) -> Result<O> + Send + Sync + 'static,
    ) where
        C: DeserializeOwned,
        O: Boxed<T>,
    {
        let kind = self.kind;
        let owned = class.to_string();
        self.register(class, move |v: &Value| {
            let c = from_config::<C>(kind, &owned, v)?;
            build(c).map(Boxed::boxed)
        });
    }

    /// True when `class` has a constructor.
    pub fn contains(&self, class: &str) -> bool {
        self.lookup(class).is_some()
    }

    /// The registered class names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The exact name, then (when enabled) a case-insensitive match.
    fn lookup(&self, class: &str) -> Option<Factory<T>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(class).cloned().or_else(|| {
            if !self.case_insensitive {
                return None;
            }
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(class))
                .map(|(_, f)| f.clone())
        })
    }

    /// Rebuilds an object of `class` from `config`; an unregistered class is an error that
    /// names it, lists the known classes and says how to register one.
    pub fn build(&self, class: &str, config: &Value) -> Result<Box<T>> {
        match self.lookup(class) {
            Some(f) => f(config),
            None => Err(Error::config(format!(
                "unknown {} class '{class}' (known: {}; register custom ones with {})",
                self.kind,
                self.names().join(", "),
                self.hint
            ))),
        }
    }
}

/// Boxes a concrete type as the registry's trait object (`Dense` -> `Box<dyn Layer>`);
/// implemented for every layer, loss, metric and optimizer type.
pub trait Boxed<T: ?Sized> {
    /// `Box::new(self)` as `Box<T>`.
    fn boxed(self) -> Box<T>;
}

/// Deserialises a `kind`/`class` config into its serde type; the error names the kind, the
/// class and the offending field (`layer 'Dropout' config: field 'rate': invalid type ...`).
pub fn from_config<C: DeserializeOwned>(kind: &str, class: &str, v: &Value) -> Result<C> {
    if !v.is_object() {
        return Err(Error::config(format!(
            "{kind} '{class}' config must be a JSON object, got {v}"
        )));
    }
    C::deserialize(v).map_err(|e| {
        // serde quotes names with backticks; our messages use single quotes.
        let msg = e.to_string().replace('`', "'");
        match culprit::<C>(v) {
            Some(f) if !msg.contains(&format!("'{f}'")) => {
                Error::config(format!("{kind} '{class}' config: field '{f}': {msg}"))
            }
            _ => Error::config(format!("{kind} '{class}' config: {msg}")),
        }
    })
}

/// The top-level key whose value a failed deserialisation rejects: the first key whose
/// removal makes the config parse or turns the error into "missing field" for that key
/// (serde's type errors do not name the field). Only runs on errors.
pub(crate) fn culprit<C: DeserializeOwned>(v: &Value) -> Option<String> {
    culprit_by(v, |w| C::deserialize(w).map(drop))
}

/// [`culprit`] for any parse of the object `v` (a config read through a wrapper, such as a
/// learning-rate schedule's `config` inside its `class_name` envelope).
pub(crate) fn culprit_by(
    v: &Value,
    parse: impl Fn(&Value) -> std::result::Result<(), serde_json::Error>,
) -> Option<String> {
    let obj = v.as_object()?;
    for key in obj.keys() {
        let mut without = obj.clone();
        without.remove(key);
        match parse(&Value::Object(without)) {
            Ok(_) => return Some(key.clone()),
            Err(e) if e.to_string().contains(&format!("missing field `{key}`")) => {
                return Some(key.clone())
            }
            Err(_) => {}
        }
    }
    None
}

/// A serde config as JSON (what `config()` methods return).
pub fn to_config<C: Serialize>(c: &C) -> Value {
    // Serialising a derived struct of plain fields into a `Value` cannot fail.
    serde_json::to_value(c).unwrap_or(Value::Null)
}
