//! TF.js weights: a weights manifest (`*-weights_manifest.json`, or the `weightsManifest` of a
//! `model.json`) and the binary shards it lists.
//!
//! Format reference: the TF.js converter's format doc
//! (<https://github.com/tensorflow/tfjs/blob/master/tfjs-converter/README.md>, "format of the
//! weights manifest") and `tensorflowjs/read_weights.py` / `quantization.py`. The manifest is a
//! JSON list of groups `{"paths": [shard, ...], "weights": [{"name", "shape", "dtype",
//! "quantization"?}, ...]}`. A group's shards, concatenated in order, hold its weights back to
//! back, each `product(shape)` elements of the stored type, little-endian:
//!
//! - `float32`, `int32`, `bool` (one byte) stored as is;
//! - quantised weights store `quantization.dtype`: `uint8` / `uint16` values `q` mean
//!   `q * scale + min` (computed in f64 as the reference does, then rounded to f32, or to the
//!   nearest integer for an `int32` weight), `float16` values are widened to f32.
//!
//! Output: the weights under their manifest names, in manifest order (groups, then weights);
//! float32 weights (quantised or not) become f32 tensors, int32 i32 and bool bool tensors.
//! `string` and `complex64` weights are refused. Shard paths are relative to the manifest and
//! must stay inside its folder (no `..`, no absolute path, no symlink out of it); a group whose
//! shards are shorter or longer than its weights is an error naming the shard.

use crate::raw::{self, RawType};
use crate::{Error, ImportedWeights, Result, SourceFormat};
use ferrovision_tensor::Tensor;
use half::f16;
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// Reads the weights described by the TF.js manifest (or `model.json`) at `path`.
pub fn read(path: &Path) -> Result<ImportedWeights> {
    let text = ferrovision_io::read_to_string(path)?;
    let fail = |msg: String| Error::format(path, msg);
    let json: Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not a JSON manifest: {e}")))?;
    let manifest = match &json {
        Value::Array(groups) => groups,
        Value::Object(o) => match o.get("weightsManifest") {
            Some(Value::Array(groups)) => groups,
            _ => {
                return Err(fail(
                    "a JSON object without a 'weightsManifest' list".into(),
                ))
            }
        },
        _ => {
            return Err(fail(
                "expected a list of weight groups or a model.json".into(),
            ))
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (gi, group) in manifest.iter().enumerate() {
        let entries = group_entries(group).map_err(|m| fail(format!("group {gi}: {m}")))?;
        let shards = shard_paths(group, dir).map_err(|m| fail(format!("group {gi}: {m}")))?;
        let need = entries
            .iter()
            .try_fold(0usize, |a, w| a.checked_add(w.bytes))
            .ok_or_else(|| fail(format!("group {gi}: the weights' byte count overflows")))?;
        let data = read_shards(&shards, need).map_err(|m| fail(format!("group {gi}: {m}")))?;
        let mut offset = 0;
        for w in entries {
            let bytes = &data[offset..offset + w.bytes];
            offset += w.bytes;
            if tensors.iter().any(|(n, _)| *n == w.name) {
                return Err(fail(format!("weight '{}' appears twice", w.name)));
            }
            let t = w
                .decode(bytes)
                .map_err(|m| fail(format!("weight '{}': {m}", w.name)))?;
            tensors.push((w.name, t));
        }
    }
    Ok(ImportedWeights {
        path: path.to_path_buf(),
        format: SourceFormat::Tfjs,
        tensors,
    })
}

/// What a weight's bytes are and what they become.
#[derive(Debug, Clone, Copy)]
enum Stored {
    /// Stored as its own type.
    Plain(RawType),
    /// `q * scale + min`, `q` of the given integer type; `int` for an int32 weight.
    Affine {
        q: RawType,
        scale: f64,
        min: f64,
        int: bool,
    },
    /// float16 widened to float32.
    Half,
}

struct Entry {
    name: String,
    shape: Vec<usize>,
    stored: Stored,
    bytes: usize,
}

impl Entry {
    fn decode(&self, bytes: &[u8]) -> std::result::Result<Tensor, String> {
        match self.stored {
            Stored::Plain(ty) => raw::tensor(ty, bytes, &self.shape),
            Stored::Half => {
                let v: Vec<f32> = bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect();
                Tensor::from_vec(v, &self.shape).map_err(|e| e.to_string())
            }
            Stored::Affine { q, scale, min, int } => {
                let qs: Vec<f64> = match q {
                    RawType::U8 => bytes.iter().map(|&b| b as f64).collect(),
                    _ => bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                        .collect(),
                };
                let t = if int {
                    // numpy's round: half to even.
                    let v = qs
                        .iter()
                        .map(|&x| (x * scale + min).round_ties_even() as i32);
                    Tensor::from_vec(v.collect::<Vec<i32>>(), &self.shape)
                } else {
                    let v = qs.iter().map(|&x| (x * scale + min) as f32);
                    Tensor::from_vec(v.collect::<Vec<f32>>(), &self.shape)
                };
                t.map_err(|e| e.to_string())
            }
        }
    }
}

fn group_entries(group: &Value) -> std::result::Result<Vec<Entry>, String> {
    let weights = group
        .get("weights")
        .and_then(Value::as_array)
        .ok_or("no 'weights' list")?;
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let name = w
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("weight #{i} has no 'name'"))?;
            entry(name, w).map_err(|m| format!("weight '{name}': {m}"))
        })
        .collect()
}

fn entry(name: &str, w: &Value) -> std::result::Result<Entry, String> {
    let dims = w
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no 'shape' list")?
        .iter()
        .map(|d| {
            d.as_i64()
                .ok_or_else(|| format!("shape entry {d} is not an integer"))
        })
        .collect::<std::result::Result<Vec<i64>, String>>()?;
    let (shape, n) = raw::numel(&dims)?;
    let dtype = w.get("dtype").and_then(Value::as_str).ok_or("no 'dtype'")?;
    let plain = match dtype {
        "float32" => RawType::F32,
        "int32" => RawType::I32,
        "bool" => RawType::Bool,
        other => return Err(format!("dtype '{other}' is not supported")),
    };
    let stored = match w.get("quantization") {
        None | Some(Value::Null) => Stored::Plain(plain),
        Some(q) => {
            let qd = q
                .get("dtype")
                .and_then(Value::as_str)
                .ok_or("quantization without a 'dtype'")?;
            let num = |k: &str| {
                q.get(k)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("{qd} quantization without a numeric '{k}'"))
            };
            match (qd, plain) {
                ("uint8" | "uint16", RawType::F32 | RawType::I32) => Stored::Affine {
                    q: if qd == "uint8" {
                        RawType::U8
                    } else {
                        RawType::U16
                    },
                    scale: num("scale")?,
                    min: num("min")?,
                    int: plain == RawType::I32,
                },
                ("float16", RawType::F32) => Stored::Half,
                _ => return Err(format!("{qd} quantization of a {dtype} weight")),
            }
        }
    };
    let elem = match stored {
        Stored::Plain(t) => t,
        Stored::Affine { q, .. } => q,
        Stored::Half => RawType::F16,
    };
    let bytes = raw::byte_len(elem, n)?;
    Ok(Entry {
        name: name.to_string(),
        shape,
        stored,
        bytes,
    })
}

/// The group's shard files, checked to stay inside the manifest's folder `dir`.
fn shard_paths(group: &Value, dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let paths = group
        .get("paths")
        .and_then(Value::as_array)
        .ok_or("no 'paths' list")?;
    let real_dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    paths
        .iter()
        .map(|p| {
            let s = p
                .as_str()
                .ok_or_else(|| format!("shard path {p} is not a string"))?;
            let rel = Path::new(s);
            let plain = rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if s.is_empty() || !plain {
                return Err(format!(
                    "shard path '{s}' is not a relative path inside the manifest's folder"
                ));
            }
            let file = dir.join(rel);
            let real = file
                .canonicalize()
                .map_err(|e| format!("shard '{}': {e}", file.display()))?;
            if !real.starts_with(&real_dir) {
                return Err(format!(
                    "shard '{}' resolves outside the manifest's folder",
                    file.display()
                ));
            }
            Ok(file)
        })
        .collect()
}

/// The concatenated shards, which must hold exactly `need` bytes: the sizes are checked
/// before anything is read, and a short or long shard is named.
fn read_shards(shards: &[PathBuf], need: usize) -> std::result::Result<Vec<u8>, String> {
    let mut total: u64 = 0;
    for (i, s) in shards.iter().enumerate() {
        let len = std::fs::metadata(s)
            .map_err(|e| format!("shard '{}': {e}", s.display()))?
            .len();
        total = total.saturating_add(len);
        if total > need as u64 {
            return Err(format!(
                "shard '{}' is too long: the group's weights end {} bytes before its end{}",
                s.display(),
                total - need as u64,
                if i + 1 < shards.len() {
                    " (and more shards follow)"
                } else {
                    ""
                }
            ));
        }
    }
    if total < need as u64 {
        let last = shards
            .last()
            .map_or("(no shards)".to_string(), |s| format!("'{}'", s.display()));
        return Err(format!(
            "shards end {} bytes short of the group's weights ({need} bytes needed, {total} \
             present; last shard {last})",
            need as u64 - total
        ));
    }
    let mut data = Vec::with_capacity(need);
    for s in shards {
        let b = std::fs::read(s).map_err(|e| format!("shard '{}': {e}", s.display()))?;
        data.extend_from_slice(&b);
    }
    if data.len() != need {
        return Err(format!(
            "shards changed size while being read ({} bytes)",
            data.len()
        ));
    }
    Ok(data)
}
