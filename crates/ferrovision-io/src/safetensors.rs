//! safetensors reading and writing with clear errors: named f32 tensors plus string metadata in
//! one file (f16/bf16 files are converted to f32 on reading).

use crate::fsutil::write_atomic;
use crate::{Error, Result};
use ::safetensors::tensor::Dtype;
use ferrovision_tensor::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes named f32 tensors (plus string metadata) as one safetensors file, atomically.
///
/// The bytes depend only on the tensors and the metadata: tensors are stored in name order and
/// the header's keys are sorted (the `safetensors` crate's writer orders metadata as its hash
/// map iterates, so the same model saved twice gave different files).
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut order: Vec<&(String, Tensor)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::format(
            path,
            format!("tensor '{}' appears twice", w[0].0),
        ));
    }
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let sorted: BTreeMap<String, String> = metadata.into_iter().collect();
        header.insert("__metadata__".into(), serde_json::json!(sorted));
    }
    let mut data: Vec<u8> = Vec::new();
    let mut entries = Vec::with_capacity(order.len());
    for (name, t) in order {
        let start = data.len();
        for v in t.to_vec::<f32>()? {
            data.extend_from_slice(&v.to_le_bytes());
        }
        entries.push((
            name.clone(),
            serde_json::json!({
                "dtype": "F32",
                "shape": t.shape(),
                "data_offsets": [start, data.len()],
            }),
        ));
    }
    // serde_json's map keeps keys sorted, so the header text is canonical.
    header.extend(entries);
    let mut text =
        serde_json::to_string(&header).map_err(|e| Error::format(path, format!("header: {e}")))?;
    // The data starts 8-byte aligned, as the reference writer pads it.
    while (8 + text.len()) % 8 != 0 {
        text.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + text.len() + data.len());
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&data);
    write_atomic(path, &bytes)
}

/// Named tensors and metadata read from a safetensors file.
pub struct SafetensorsFile {
    /// Tensors in file order.
    pub tensors: Vec<(String, Tensor)>,
    /// The `__metadata__` strings.
    pub metadata: HashMap<String, String>,
}

impl SafetensorsFile {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Reads a safetensors file of f32 (or f16/bf16, converted) tensors.
pub fn load_safetensors(path: &Path) -> Result<SafetensorsFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = ::safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = ::safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::format(
                    path,
                    format!("tensor '{name}' has dtype {other:?}; expected F32, F16 or BF16"),
                ))
            }
        };
        let t = Tensor::from_vec(values, view.shape())
            .map_err(|e| Error::format(path, format!("tensor '{name}': {e}")))?;
        tensors.push((name, t));
    }
    // Keep a stable order (the file sorts by dtype then name).
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(SafetensorsFile { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_files_are_byte_reproducible_and_read_back_by_the_reference_reader() {
        let dir = std::env::temp_dir().join(format!("fv-st-{}", std::process::id()));
        let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s).unwrap();
        let tensors = vec![
            (
                "b/kernel".to_string(),
                t(vec![1.0, -2.5, 3.0, 4.0, 5.0, 6.0], &[2, 3]),
            ),
            ("a/bias".to_string(), t(vec![0.5], &[1])),
        ];
        let meta = |keys: &[&str]| -> HashMap<String, String> {
            keys.iter()
                .map(|k| (k.to_string(), format!("v-{k}")))
                .collect()
        };
        let (p1, p2) = (dir.join("one.safetensors"), dir.join("two.safetensors"));
        save_safetensors(
            &p1,
            &tensors,
            meta(&["epoch", "architecture", "rng", "compile"]),
        )
        .unwrap();
        let mut reversed = tensors.clone();
        reversed.reverse();
        save_safetensors(
            &p2,
            &reversed,
            meta(&["compile", "rng", "architecture", "epoch"]),
        )
        .unwrap();
        let bytes = std::fs::read(&p1).unwrap();
        assert_eq!(bytes, std::fs::read(&p2).unwrap());
        // The reference implementation parses it and finds the same tensors.
        let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor("b/kernel").unwrap();
        assert_eq!((view.dtype(), view.shape()), (Dtype::F32, &[2usize, 3][..]));
        let back = load_safetensors(&p1).unwrap();
        assert_eq!(back.metadata["rng"], "v-rng");
        assert_eq!(back.tensors[1].1.to_vec::<f32>().unwrap()[1], -2.5);
        let dup = vec![tensors[0].clone(), tensors[0].clone()];
        let e = save_safetensors(&p1, &dup, HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
