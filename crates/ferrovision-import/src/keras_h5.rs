//! Keras HDF5 weights: Keras 2 model / weights files (`.h5`, `.hdf5`), the legacy `.h5` saves of
//! Keras 3, and Keras 3 `.weights.h5`, read with the pure-Rust `hdf5-pure` crate.
//!
//! Format references: the HDF5 file format specification
//! (<https://docs.hdfgroup.org/hdf5/latest/_f_m_t3.html>, handled by `hdf5-pure`), Keras 2's
//! `keras/saving/hdf5_format.py` (`save_weights_to_hdf5_group` / `load_weights_from_hdf5_group`)
//! and Keras 3's `keras/src/saving/saving_lib.py` (`H5IOStore`) and
//! `keras/src/legacy/saving/legacy_h5_format.py`.
//!
//! Two layouts, told apart by what the file holds:
//!
//! - **`layer_names` layout** (Keras 2 full models and weights files, Keras 3 legacy `.h5`):
//!   the weights group is `model_weights/` in a full-model file and the root in a weights-only
//!   file; its `layer_names` attribute lists the layers in model order, each layer group's
//!   `weight_names` attribute lists its weights in load order, and weight `w` of layer `l` is
//!   the dataset `l/w` (Keras 2 writes `conv2d_1/conv2d_1_1/kernel:0`, Keras 3
//!   `conv/conv/kernel`). Output name: `<layer>/<weight>`, where `<weight>` is the weight name
//!   without the `:0` suffix and without a first path component equal to the layer name or to
//!   the layer name plus a `_<digits>` TF name-scope suffix, e.g. `conv2d_1/kernel`,
//!   `head/inner_dense/kernel` (a nested model). Order: `layer_names`, then `weight_names`.
//! - **`layers/` layout** (Keras 3 `.weights.h5`): variables are datasets
//!   `layers/<layer path>/vars/<i>` (nested layers under `layers/<outer>/layers/<inner>/…`).
//!   Output name: the dataset's path in the file, e.g. `layers/conv2d/vars/0`. Order: a
//!   depth-first walk from the root, children in name order (numeric names by value, so
//!   `vars/10` follows `vars/9`), which is the order h5py lists them in.
//!
//! Floating-point datasets become f32 tensors (f64 is rounded), integer ones i64/i32/u8 tensors.
//! A corrupt file is an error naming the file and the dataset or attribute; dataset sizes are
//! checked against what the file can hold before they are read.

use crate::{Error, ImportedWeights, Result, SourceFormat};
use ferrovision_tensor::Tensor;
use hdf5_pure::{AttrValue, DType, Dataset, File, Group};
use std::path::Path;

/// Largest expansion deflate can reach (1032:1), bounding what a compressed dataset may
/// decode to relative to the file size.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Deepest group nesting walked in a `.weights.h5` (Keras nests a few levels per sub-model).
const MAX_DEPTH: usize = 64;

/// Reads the weights of the Keras HDF5 file at `path` (see the module doc for names and order).
pub fn read(path: &Path) -> Result<ImportedWeights> {
    let bytes = ferrovision_io::read(path)?;
    let file_len = bytes.len() as u64;
    let h5 = |what: &str, e: hdf5_pure::Error| Error::format(path, format!("{what}: {e}"));
    let file = File::from_bytes(bytes).map_err(|e| h5("not a readable HDF5 file", e))?;
    let root = file.root();
    let ctx = Ctx { path, file_len };
    let root_attrs = root.attrs().map_err(|e| h5("root attributes", e))?;
    let tensors = if root_attrs.contains_key("layer_names") {
        ctx.read_layer_names(&root, "")?
    } else if let Ok(g) = file.group("model_weights") {
        ctx.read_layer_names(&g, "model_weights/")?
    } else if file.group("layers").is_ok() {
        let mut out = Vec::new();
        // Each group has an object header of at least 16 bytes, so a walk visiting more
        // groups than that is going round a link cycle of a damaged file.
        let mut budget = (file_len / 16) as usize;
        ctx.walk(&root, "", 0, &mut budget, &mut out)?;
        out
    } else {
        return Err(Error::format(
            path,
            "HDF5 file without Keras weights: no 'layer_names' attribute, 'model_weights' group \
             or 'layers' group",
        ));
    };
    Ok(ImportedWeights {
        path: path.to_path_buf(),
        format: SourceFormat::KerasH5,
        tensors,
    })
}

struct Ctx<'a> {
    path: &'a Path,
    file_len: u64,
}

impl Ctx<'_> {
    fn err(&self, msg: String) -> Error {
        Error::format(self.path, msg)
    }

    /// The `layer_names` layout under `g` (at `prefix` in the file, for messages).
    fn read_layer_names(&self, g: &Group, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let attrs = g
            .attrs()
            .map_err(|e| self.err(format!("attributes of '{prefix}': {e}")))?;
        let layers = self.strings(attrs.get("layer_names"), &format!("{prefix}@layer_names"))?;
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for layer in &layers {
            let lg = g
                .group(layer)
                .map_err(|e| self.err(format!("layer group '{prefix}{layer}': {e}")))?;
            let la = lg
                .attrs()
                .map_err(|e| self.err(format!("attributes of '{prefix}{layer}': {e}")))?;
            let weights = self.strings(
                la.get("weight_names"),
                &format!("{prefix}{layer}@weight_names"),
            )?;
            for w in &weights {
                let where_ = format!("{prefix}{layer}/{w}");
                let ds = lg
                    .dataset(w)
                    .map_err(|e| self.err(format!("dataset '{where_}': {e}")))?;
                let name = keras2_name(layer, w);
                if out.iter().any(|(n, _)| *n == name) {
                    return Err(self.err(format!(
                        "two weights map to the name '{name}' (the second is '{where_}')"
                    )));
                }
                out.push((name, self.tensor(&ds, &where_)?));
            }
        }
        Ok(out)
    }

    /// The `layers/` layout: every dataset under `g`, depth-first, children in name order.
    /// `depth` and `budget` (groups left to visit) stop link cycles of damaged files.
    fn walk(
        &self,
        g: &Group,
        prefix: &str,
        depth: usize,
        budget: &mut usize,
        out: &mut Vec<(String, Tensor)>,
    ) -> Result<()> {
        if depth > MAX_DEPTH || *budget == 0 {
            return Err(self.err(format!(
                "group '{prefix}': groups nested deeper or more often than the file can hold \
                 (a link cycle?)"
            )));
        }
        *budget -= 1;
        let mut datasets = g
            .datasets()
            .map_err(|e| self.err(format!("group '{prefix}': {e}")))?;
        let mut groups = g
            .groups()
            .map_err(|e| self.err(format!("group '{prefix}': {e}")))?;
        datasets.sort_by(|a, b| name_order(a, b));
        groups.sort_by(|a, b| name_order(a, b));
        // Merge both lists in name order (h5py lists a group's links together).
        let mut children: Vec<(String, bool)> = datasets.into_iter().map(|d| (d, true)).collect();
        children.extend(groups.into_iter().map(|g| (g, false)));
        children.sort_by(|a, b| name_order(&a.0, &b.0));
        for (name, is_dataset) in children {
            let full = format!("{prefix}{name}");
            if is_dataset {
                let ds = g
                    .dataset(&name)
                    .map_err(|e| self.err(format!("dataset '{full}': {e}")))?;
                out.push((full.clone(), self.tensor(&ds, &full)?));
            } else {
                let sub = g
                    .group(&name)
                    .map_err(|e| self.err(format!("group '{full}': {e}")))?;
                self.walk(&sub, &format!("{full}/"), depth + 1, budget, out)?;
            }
        }
        Ok(())
    }

    /// A string-list attribute (`layer_names`, `weight_names`): fixed or variable length, ASCII
    /// or UTF-8; an empty numeric array (what h5py writes for an empty list) is an empty list.
    fn strings(&self, v: Option<&AttrValue>, what: &str) -> Result<Vec<String>> {
        match v {
            None => Err(self.err(format!("missing attribute '{what}'"))),
            Some(AttrValue::StringArray(v))
            | Some(AttrValue::AsciiStringArray(v))
            | Some(AttrValue::VarLenAsciiStringArray(v))
            | Some(AttrValue::VarLenStringArray(v))
            | Some(AttrValue::VarLenAsciiCharArray(v)) => Ok(v.clone()),
            // A one-element list may come back as a scalar string.
            Some(AttrValue::String(s))
            | Some(AttrValue::AsciiString(s))
            | Some(AttrValue::VarLenString(s))
            | Some(AttrValue::VarLenAsciiString(s)) => Ok(vec![s.clone()]),
            Some(AttrValue::StringSized { value, .. })
            | Some(AttrValue::AsciiStringSized { value, .. }) => Ok(vec![value.clone()]),
            Some(AttrValue::StringArraySized { values, .. })
            | Some(AttrValue::AsciiStringArraySized { values, .. }) => Ok(values.clone()),
            Some(AttrValue::F64Array(v)) if v.is_empty() => Ok(Vec::new()),
            Some(AttrValue::F32Array(v)) if v.is_empty() => Ok(Vec::new()),
            Some(other) => Err(self.err(format!(
                "attribute '{what}' is not a list of strings: {}",
                short(other)
            ))),
        }
    }

    /// The tensor of dataset `ds` (at `name` in the file, for messages).
    fn tensor(&self, ds: &Dataset, name: &str) -> Result<Tensor> {
        let e = |msg: String| self.err(format!("dataset '{name}': {msg}"));
        let dims = ds.shape().map_err(|x| e(x.to_string()))?;
        let dtype = ds.dtype().map_err(|x| e(x.to_string()))?;
        let mut shape = Vec::with_capacity(dims.len());
        let mut n: u64 = 1;
        for &d in &dims {
            n = n
                .checked_mul(d)
                .ok_or_else(|| e(format!("the element count of shape {dims:?} overflows")))?;
            shape.push(usize::try_from(d).map_err(|_| e(format!("shape {dims:?} too large")))?);
        }
        let elem = ds.element_size().map_err(|x| e(x.to_string()))?;
        let bytes = n.checked_mul(elem.max(1));
        let limit = self.file_len.saturating_mul(MAX_DEFLATE_RATIO);
        if bytes.is_none_or(|b| b > limit) {
            return Err(e(format!(
                "shape {dims:?} of {elem}-byte elements is larger than a {}-byte file can hold",
                self.file_len
            )));
        }
        let rd = |x: hdf5_pure::Error| e(x.to_string());
        let t = match dtype {
            DType::F32 => Tensor::from_vec(ds.read_f32().map_err(rd)?, &shape),
            DType::F64 => Tensor::from_vec(
                ds.read_f64()
                    .map_err(rd)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                &shape,
            ),
            DType::I64 | DType::U32 | DType::U64 => {
                Tensor::from_vec(ds.read_i64().map_err(rd)?, &shape)
            }
            DType::I8 | DType::I16 | DType::I32 | DType::U16 => {
                Tensor::from_vec(ds.read_i32().map_err(rd)?, &shape)
            }
            DType::U8 => Tensor::from_vec(ds.read_u8().map_err(rd)?, &shape),
            other => return Err(e(format!("unsupported element type {other}"))),
        };
        t.map_err(|x| e(x.to_string()))
    }
}

/// The output name of weight `weight` of layer `layer` in the `layer_names` layout.
fn keras2_name(layer: &str, weight: &str) -> String {
    let w = weight.strip_suffix(":0").unwrap_or(weight);
    if let Some((first, rest)) = w.split_once('/') {
        let scoped = first
            .strip_prefix(layer)
            .and_then(|s| s.strip_prefix('_'))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if first == layer || scoped {
            return format!("{layer}/{rest}");
        }
    }
    format!("{layer}/{w}")
}

/// Name order of group members: numeric names by value first, then the rest by bytes.
fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u128>().ok())
            .flatten()
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A short description of an attribute value for messages.
fn short(v: &AttrValue) -> String {
    let s = format!("{v:?}");
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras2_names_drop_the_scope_and_the_suffix() {
        assert_eq!(
            keras2_name("conv2d_1", "conv2d_1_1/kernel:0"),
            "conv2d_1/kernel"
        );
        assert_eq!(keras2_name("conv", "conv/kernel"), "conv/kernel");
        assert_eq!(
            keras2_name("head", "head/inner/kernel"),
            "head/inner/kernel"
        );
        assert_eq!(
            keras2_name("seq_1", "dense_1/kernel:0"),
            "seq_1/dense_1/kernel"
        );
        assert_eq!(keras2_name("bn", "bn_x/gamma:0"), "bn/bn_x/gamma");
        assert_eq!(keras2_name("w", "w"), "w/w");
    }

    #[test]
    fn numeric_names_sort_by_value() {
        let mut v = vec!["10", "vars", "2", "1", "layers", "b"];
        v.sort_by(|a, b| name_order(a, b));
        assert_eq!(v, ["1", "2", "10", "b", "layers", "vars"]);
    }
}
