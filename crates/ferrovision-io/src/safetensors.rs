//! safetensors reading and writing with clear errors: named f32 tensors plus string metadata in
//! one file (f16/bf16 files are converted to f32 on reading).

use crate::fsutil::write_atomic;
use crate::{Error, Result};
use ::safetensors::tensor::{Dtype, TensorView};
use ferrovision_tensor::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Writes named f32 tensors (plus string metadata) as one safetensors file, atomically.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let data = t.to_vec::<f32>()?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        bufs.push((name.clone(), t.shape().to_vec(), bytes));
    }
    let views = bufs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::format(path, format!("tensor '{n}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = ::safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::format(path, e.to_string()))?;
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
