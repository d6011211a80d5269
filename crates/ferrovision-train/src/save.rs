//! Saving and loading: weights alone, or the whole model (architecture, weights, optimizer
//! state, epoch, random state) in one safetensors file.
//!
//! A model file holds the weights as `weights/<layer>/<weight>`, the primary optimizer's slots
//! as `optimizer/<layer>/<weight>/<slot>` (step count in the `optimizer_iterations` metadata),
//! the slots of each named optimizer (custom train steps) as
//! `optimizers/<name>/<layer>/<weight>/<slot>` (`optimizer_iterations/<name>`), and JSON in the
//! metadata: `architecture`, `compile` (optimizers, losses, metrics), `epoch`, `epoch_progress`
//! (only for a model saved while `fit` was suspended mid-epoch), `rng` (the
//! process-wide generator, so dropout continues the same stream and a resumed run is
//! bit-identical to an uninterrupted one), `weight_settings` (the frozen weights and the
//! learning-rate multipliers other than 1, so fine-tuning resumes exactly) and `user` (the
//! notes of [`Model::set_metadata`]).

use crate::step::PRIMARY_OPTIMIZER;
use crate::{Error, Model, Result};
use ferrovision_io::{load_safetensors, save_safetensors, SafetensorsFile};
use ferrovision_nn::initializers::with_weight_budget;
use ferrovision_nn::network::NetworkExt;
use ferrovision_nn::weights::{self, assign_weights, network_from_config};
use ferrovision_tensor::rng::{with_global, Rng};
use ferrovision_tensor::Tensor;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "ferrovision-model-1";

impl Model {
    /// Saves all weights to a safetensors file (names `layer/weight`), atomically.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        weights::save_weights(self.network(), path.as_ref())
    }

    /// Loads weights saved by [`Model::save_weights`] (or a model file's weights). Every weight
    /// must be present with the same shape; the error names the tensor and both shapes.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        weights::load_weights(self.network(), path.as_ref())
    }

    /// Saves the whole model in one file, atomically: architecture, weights, optimizer state,
    /// losses and metrics, completed epochs and the random state. Custom networks (no config)
    /// are saved too but must be rebuilt in code and restored with [`Model::load_checkpoint`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let net = self.network();
        let mut tensors: Vec<(String, Tensor)> = net
            .named_weights()
            .into_iter()
            .map(|(n, p)| (format!("weights/{n}"), p.value()))
            .collect();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        if let Some(cfg) = net.config() {
            let arch = json!({"class_name": net.class_name(), "config": cfg});
            meta.insert("architecture".to_string(), arch.to_string());
        }
        if let Some(c) = self.compile_config() {
            meta.insert("compile".to_string(), c.to_string());
        }
        for (name, opt) in self.optimizers() {
            let (slot_prefix, iter_key) = optimizer_keys(name);
            meta.insert(iter_key, opt.iterations().to_string());
            for (n, t) in opt.state() {
                tensors.push((format!("{slot_prefix}{n}"), t));
            }
        }
        meta.insert("epoch".to_string(), self.epoch().to_string());
        meta.insert(
            "weight_settings".to_string(),
            weight_settings(&net.named_weights()).to_string(),
        );
        if !self.metadata_all().is_empty() {
            meta.insert("user".to_string(), json!(self.metadata_all()).to_string());
        }
        let state = with_global(|r| r.state());
        meta.insert("rng".to_string(), json!(state).to_string());
        if let Some(p) = self.epoch_progress() {
            meta.insert("epoch_progress".to_string(), json!(p).to_string());
        }
        Ok(save_safetensors(path.as_ref(), &tensors, meta)?)
    }

    /// Loads a model saved by [`Model::save`]: rebuilds the network from its architecture,
    /// restores weights, the compiled optimizer/losses/metrics with their state, the epoch
    /// count and the random state, so `fit` continues exactly where it stopped.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let file = load_safetensors(path)?;
        check_format(path, &file)?;
        let arch = file.metadata.get("architecture").ok_or_else(|| {
            Error::format(
                path,
                "no architecture stored (a custom model or a weights file): build the model in code and use Model::load_checkpoint or load_weights",
            )
        })?;
        let arch: Value = serde_json::from_str(arch)
            .map_err(|e| Error::format(path, format!("bad architecture JSON: {e}")))?;
        // The architecture may ask for anything; it gets no more weights than the file holds.
        let stored: usize = file
            .tensors
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum();
        let net = with_weight_budget(stored, || network_from_config(&arch))
            .map_err(|e| Error::format(path, e.to_string()))?;
        let mut model = Model::from_boxed(net);
        if let Some(c) = file.metadata.get("compile") {
            let c: Value = serde_json::from_str(c)
                .map_err(|e| Error::format(path, format!("bad compile JSON: {e}")))?;
            let compile = crate::model::compile_from_config(&c)
                .map_err(|e| Error::format(path, e.to_string()))?;
            model.compile(compile)?;
        }
        model.restore(path, &file)?;
        Ok(model)
    }

    /// Restores weights, optimizer state, epoch and random state from a file written by
    /// [`Model::save`] into this (already built and compiled) model — the way to resume a
    /// custom model.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = load_safetensors(path)?;
        check_format(path, &file)?;
        self.restore(path, &file)
    }

    fn restore(&mut self, path: &Path, file: &SafetensorsFile) -> Result<()> {
        let weights = self.network().named_weights();
        let only = SafetensorsFile {
            tensors: file
                .tensors
                .iter()
                .filter(|(n, _)| n.starts_with("weights/"))
                .cloned()
                .collect(),
            metadata: HashMap::new(),
        };
        assign_weights(path, &only, "weights/", &weights)?;
        if let Some(s) = file.metadata.get("weight_settings") {
            apply_weight_settings(path, s, &weights)?;
        }
        if let Some(s) = file.metadata.get("user") {
            let notes: std::collections::BTreeMap<String, String> = serde_json::from_str(s)
                .map_err(|e| Error::format(path, format!("bad user metadata: {e}")))?;
            *self.metadata_mut() = notes;
        }
        let names: Vec<String> = self
            .optimizers()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for name in &names {
            let (slot_prefix, iter_key) = optimizer_keys(name);
            let slots = slots_under(file, &slot_prefix);
            let iterations: u64 = match file.metadata.get(&iter_key) {
                Some(s) => s
                    .parse()
                    .map_err(|_| Error::format(path, format!("bad {iter_key} '{s}'")))?,
                None => 0,
            };
            let opt = self.optimizer_named_mut(name).expect("listed above");
            opt.load_state(iterations, &slots).map_err(|e| {
                let which = if name == PRIMARY_OPTIMIZER {
                    String::new()
                } else {
                    format!(" '{name}'")
                };
                Error::format(path, format!("optimizer{which} state: {e}"))
            })?;
        }
        // State of an optimizer this model does not have would be silently lost.
        if let Some((n, _)) = file.tensors.iter().find(|(n, _)| {
            (n.starts_with("optimizer/") || n.starts_with("optimizers/"))
                && !names
                    .iter()
                    .any(|name| n.starts_with(&optimizer_keys(name).0))
        }) {
            return Err(Error::format(
                path,
                if names.is_empty() {
                    "the file holds optimizer state but the model is not compiled".to_string()
                } else {
                    format!("tensor '{n}' is the state of an optimizer this model does not have")
                },
            ));
        }
        let epoch: usize = match file.metadata.get("epoch") {
            Some(s) => s
                .parse()
                .map_err(|_| Error::format(path, format!("bad epoch '{s}'")))?,
            None => 0,
        };
        self.set_epoch(epoch);
        let progress = match file.metadata.get("epoch_progress") {
            Some(s) => {
                let p: crate::EpochProgress = serde_json::from_str(s)
                    .map_err(|e| Error::format(path, format!("bad epoch progress: {e}")))?;
                if p.epoch != epoch {
                    return Err(Error::format(
                        path,
                        format!(
                            "the epoch progress is for epoch {}, the model has {epoch} epochs",
                            p.epoch
                        ),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        self.set_epoch_progress(progress);
        if let Some(s) = file.metadata.get("rng") {
            let state: [u64; 4] = serde_json::from_str(s)
                .map_err(|e| Error::format(path, format!("bad rng state: {e}")))?;
            with_global(|r| *r = Rng::from_state(state));
        }
        Ok(())
    }
}

/// The weights' training settings: names of the frozen (non-trainable) weights and the
/// learning-rate multipliers other than 1.
fn weight_settings(weights: &[(String, ferrovision_nn::Param)]) -> Value {
    let frozen: Vec<&str> = weights
        .iter()
        .filter(|(_, p)| !p.trainable())
        .map(|(n, _)| n.as_str())
        .collect();
    let mult: serde_json::Map<String, Value> = weights
        .iter()
        .filter(|(_, p)| p.lr_multiplier() != 1.0)
        .map(|(n, p)| (n.clone(), json!(p.lr_multiplier())))
        .collect();
    json!({"frozen": frozen, "lr_multipliers": mult})
}

/// Restores [`weight_settings`]: every weight listed as frozen is frozen, every other one
/// trainable; multipliers as stored (1 when absent).
fn apply_weight_settings(
    path: &Path,
    text: &str,
    weights: &[(String, ferrovision_nn::Param)],
) -> Result<()> {
    let bad = |m: String| Error::format(path, format!("weight_settings: {m}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let frozen: Vec<String> =
        serde_json::from_value(v["frozen"].clone()).map_err(|e| bad(format!("'frozen': {e}")))?;
    let mult: HashMap<String, f64> = serde_json::from_value(v["lr_multipliers"].clone())
        .map_err(|e| bad(format!("'lr_multipliers': {e}")))?;
    for name in frozen.iter().chain(mult.keys()) {
        if !weights.iter().any(|(n, _)| n == name) {
            return Err(bad(format!(
                "names '{name}', which the model does not have"
            )));
        }
    }
    for (name, p) in weights {
        p.set_trainable(!frozen.contains(name));
        p.set_lr_multiplier(mult.get(name).copied().unwrap_or(1.0))
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// Where an optimizer's state lives in a model file: (slot tensor prefix, iterations key). The
/// primary optimizer keeps the original single-optimizer names.
fn optimizer_keys(name: &str) -> (String, String) {
    if name == PRIMARY_OPTIMIZER {
        ("optimizer/".into(), "optimizer_iterations".into())
    } else {
        (
            format!("optimizers/{name}/"),
            format!("optimizer_iterations/{name}"),
        )
    }
}

/// The tensors named `<prefix><rest>`, as `(rest, tensor)`.
fn slots_under(file: &SafetensorsFile, prefix: &str) -> Vec<(String, Tensor)> {
    file.tensors
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.clone())))
        .collect()
}

fn check_format(path: &Path, file: &SafetensorsFile) -> Result<()> {
    match file.metadata.get("format").map(String::as_str) {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(Error::format(
            path,
            format!("format '{other}' is not a ferrovision model file ({FORMAT}); use load_weights for weights files"),
        )),
        None => Err(Error::format(
            path,
            "no ferrovision format tag: not a model saved by Model::save",
        )),
    }
}
