//! A network's weights and architecture in files: rebuild a network from its saved config,
//! save its weights to a safetensors file and load them back by name.
//!
//! Weights are stored under their scoped names (`layer/weight`), optionally behind a prefix
//! (model files store them as `weights/<layer>/<weight>`, next to optimizer state that
//! `ferrovision-train` adds). Loading checks that every weight is present with its shape and
//! that the file holds no extra tensor under the prefix, so a mismatched file fails with the
//! tensor's name and both shapes instead of loading silently.

use crate::network::{Network, NetworkExt};
use crate::{Error, Param, Result};
use ferrovision_io::{load_safetensors, save_safetensors, SafetensorsFile};
use ferrovision_tensor::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Format tag of a weights-only file.
pub const WEIGHTS_FORMAT: &str = "ferrovision-weights-1";

/// Rebuilds a network from a saved architecture (`Sequential` or `Functional`).
pub fn network_from_config(arch: &Value) -> Result<Box<dyn Network>> {
    let class = arch["class_name"].as_str().unwrap_or("");
    let cfg = &arch["config"];
    match class {
        "Sequential" => Ok(Box::new(crate::Sequential::from_config(cfg)?)),
        "Functional" => Ok(Box::new(crate::Functional::from_config(cfg)?)),
        other => Err(Error::config(format!(
            "cannot rebuild a '{other}' network from its config (custom models: build the model in code and use Model::load_checkpoint)"
        ))),
    }
}

/// Copies `file`'s tensors named `<prefix><weight name>` into the weights, checking that the
/// names and shapes match exactly and that no other tensor under `prefix` is left over.
pub fn assign_weights(
    path: &Path,
    file: &SafetensorsFile,
    prefix: &str,
    weights: &[(String, Param)],
) -> Result<()> {
    for (name, p) in weights {
        let key = format!("{prefix}{name}");
        let t = file.get(&key).ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "missing tensor '{key}' (the model's weight '{name}', shape {:?})",
                    p.shape()
                ),
            )
        })?;
        if t.shape() != p.shape().as_slice() {
            return Err(Error::format(
                path,
                format!(
                    "tensor '{key}' has shape {:?} in the file, the model's weight has shape {:?}",
                    t.shape(),
                    p.shape()
                ),
            ));
        }
    }
    let known: Vec<String> = weights
        .iter()
        .map(|(n, _)| format!("{prefix}{n}"))
        .collect();
    if let Some((extra, _)) = file
        .tensors
        .iter()
        .find(|(n, _)| n.starts_with(prefix) && !known.contains(n))
    {
        return Err(Error::format(
            path,
            format!("tensor '{extra}' in the file matches no weight of the model"),
        ));
    }
    for (name, p) in weights {
        let t = file.get(&format!("{prefix}{name}")).expect("checked above");
        p.assign(&t.to_vec::<f32>()?)?;
    }
    Ok(())
}

/// Saves all of `net`'s weights to a safetensors file (names `layer/weight`), atomically.
pub fn save_weights(net: &dyn Network, path: &Path) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = net
        .named_weights()
        .into_iter()
        .map(|(n, p)| (n, p.value()))
        .collect();
    let meta = HashMap::from([("format".to_string(), WEIGHTS_FORMAT.to_string())]);
    Ok(save_safetensors(path, &tensors, meta)?)
}

/// Loads weights saved by [`save_weights`] (or the `weights/` part of a model file) into
/// `net`. Every weight must be present with the same shape; the error names the tensor and
/// both shapes.
pub fn load_weights(net: &dyn Network, path: &Path) -> Result<()> {
    let file = load_safetensors(path)?;
    let prefix = if file.tensors.iter().any(|(n, _)| n.starts_with("weights/")) {
        "weights/"
    } else {
        ""
    };
    let weights = net.named_weights();
    if prefix.is_empty() {
        assign_weights(path, &file, "", &weights)
    } else {
        let only = SafetensorsFile {
            tensors: file
                .tensors
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .cloned()
                .collect(),
            metadata: HashMap::new(),
        };
        assign_weights(path, &only, prefix, &weights)
    }
}

/// What [`load_weights_by_name`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Weights copied from the file (name and shape matched).
    pub loaded: Vec<String>,
    /// The model's weights the file has no tensor for (left as they were).
    pub missing: Vec<String>,
    /// Weights whose tensor has another shape in the file: (name, file shape, model shape).
    pub shape_mismatch: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors of the file that match no weight of the model.
    pub unused: Vec<String>,
}

impl LoadReport {
    /// One line: `loaded 12 weights; skipped 2 (missing in the file: a, b); ...`.
    pub fn summary(&self) -> String {
        let list = |v: &[String]| {
            let mut s: Vec<&str> = v.iter().take(6).map(String::as_str).collect();
            if v.len() > 6 {
                s.push("...");
            }
            s.join(", ")
        };
        let mut parts = vec![format!("loaded {} weight(s)", self.loaded.len())];
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} not in the file ({})",
                self.missing.len(),
                list(&self.missing)
            ));
        }
        if !self.shape_mismatch.is_empty() {
            let s: Vec<String> = self
                .shape_mismatch
                .iter()
                .take(6)
                .map(|(n, f, m)| format!("{n}: file {f:?}, model {m:?}"))
                .collect();
            parts.push(format!(
                "{} skipped for their shape ({})",
                self.shape_mismatch.len(),
                s.join("; ")
            ));
        }
        if !self.unused.is_empty() {
            parts.push(format!(
                "{} tensor(s) of the file unused ({})",
                self.unused.len(),
                list(&self.unused)
            ));
        }
        parts.join("; ")
    }
}

/// Warm start: copies every tensor of a weights file or model file (`weights/` part) whose
/// name and shape match one of `net`'s weights, leaves the others as they are, and reports what
/// was loaded and skipped (missing in the file, shape differs, unused tensors). An error when
/// nothing matched. With `strict`, behaves as [`load_weights`] (every weight present with its
/// shape, nothing extra) and reports all weights loaded.
pub fn load_weights_by_name(net: &dyn Network, path: &Path, strict: bool) -> Result<LoadReport> {
    let weights = net.named_weights();
    if strict {
        load_weights(net, path)?;
        return Ok(LoadReport {
            loaded: weights.into_iter().map(|(n, _)| n).collect(),
            ..LoadReport::default()
        });
    }
    let file = load_safetensors(path)?;
    let prefix = if file.tensors.iter().any(|(n, _)| n.starts_with("weights/")) {
        "weights/"
    } else {
        ""
    };
    let mut report = LoadReport::default();
    let mut plan = Vec::new();
    for (name, p) in &weights {
        match file.get(&format!("{prefix}{name}")) {
            None => report.missing.push(name.clone()),
            Some(t) if t.shape() != p.shape().as_slice() => {
                report
                    .shape_mismatch
                    .push((name.clone(), t.shape().to_vec(), p.shape()))
            }
            Some(t) => plan.push((name, p, t)),
        }
    }
    report.unused = file
        .tensors
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(prefix))
        .filter(|n| !weights.iter().any(|(w, _)| w == n))
        .map(str::to_string)
        .collect();
    if plan.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "no tensor matches a weight of the model by name and shape ({})",
                report.summary()
            ),
        ));
    }
    for (name, p, t) in plan {
        p.assign(&t.to_vec::<f32>()?)?;
        report.loaded.push(name.clone());
    }
    Ok(report)
}
