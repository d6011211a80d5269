//! Weight importers: the files people have pretrained weights in, read in pure Rust (no Python,
//! nothing executed), one module per source format:
//!
//! | format | module | how it is recognised |
//! |---|---|---|
//! | PyTorch `torch.save` zip (1.6+) and legacy pickle (< 1.6) | [`torch`] | zip magic `PK`, or a pickle starting with the legacy magic number |
//! | Keras HDF5 (`.h5`/`.hdf5` model files of Keras 2, `.weights.h5` of Keras 3) | [`keras_h5`] | HDF5 signature |
//! | TF.js weights manifest (`*-weights_manifest.json` / `model.json`) + binary shards | [`tfjs`] | a JSON manifest |
//! | ONNX model initializers | [`onnx`] | `.onnx` protobuf |
//! | safetensors | `ferrovision_io` | safetensors header |
//!
//! Every reader returns an [`ImportedWeights`]: the tensors under the *source's* names and in
//! the *source's* layout. Mapping them onto a network (names by rule or table, layouts through
//! `ferrovision_nn::layout`) is a separate step, so a reader knows nothing about models.

pub mod error;
pub mod hub;
pub mod keras_h5;
pub mod onnx;
pub mod pretrained;
mod raw;
pub mod remap;
pub mod tfjs;
pub mod torch;

pub use error::{Error, Result};

use ferrovision_tensor::Tensor;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The file formats weights are imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// `torch.save` zip archive (PyTorch 1.6 and later).
    TorchZip,
    /// `torch.save` legacy pickle stream (before PyTorch 1.6).
    TorchLegacy,
    /// Keras HDF5 weights (Keras 2 model files, Keras 3 `.weights.h5`).
    KerasH5,
    /// TF.js weights manifest with binary shards.
    Tfjs,
    /// ONNX model (its initializers).
    Onnx,
    /// safetensors.
    Safetensors,
}

/// Tensors read from a weight file, under the source's names and in the source's layout,
/// in the order the file lists them.
#[derive(Debug, Clone)]
pub struct ImportedWeights {
    /// The file they came from (errors name it).
    pub path: PathBuf,
    /// Its format.
    pub format: SourceFormat,
    /// `(name, tensor)` pairs.
    pub tensors: Vec<(String, Tensor)>,
}

impl ImportedWeights {
    /// The tensor named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Recognises a weight file's format from its first bytes (and, for JSON and ONNX, its name).
pub fn sniff(path: &Path) -> Result<SourceFormat> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| ferrovision_io::Error::io(path, e))?;
    let head = &head[..n];
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if head.starts_with(b"PK\x03\x04") {
        return Ok(SourceFormat::TorchZip);
    }
    if head.starts_with(&[0x80]) && head.len() > 1 && head[1] <= 5 {
        return Ok(SourceFormat::TorchLegacy);
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Ok(SourceFormat::KerasH5);
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(SourceFormat::Safetensors);
    }
    if name.ends_with(".json") {
        return Ok(SourceFormat::Tfjs);
    }
    if name.ends_with(".onnx") {
        return Ok(SourceFormat::Onnx);
    }
    Err(Error::UnknownFormat {
        path: path.to_path_buf(),
        msg: "not a weight file this version reads (PyTorch .pt/.pth, Keras .h5, TF.js \
              manifest .json, ONNX .onnx or safetensors)"
            .into(),
    })
}

/// Reads a weight file in any supported format ([`sniff`] decides which).
pub fn read_weights(path: &Path) -> Result<ImportedWeights> {
    match sniff(path)? {
        SourceFormat::TorchZip | SourceFormat::TorchLegacy => torch::read(path),
        SourceFormat::Safetensors => {
            let file = ferrovision_io::load_safetensors(path)?;
            Ok(ImportedWeights {
                path: path.to_path_buf(),
                format: SourceFormat::Safetensors,
                tensors: file.tensors,
            })
        }
        SourceFormat::KerasH5 => keras_h5::read(path),
        SourceFormat::Tfjs => tfjs::read(path),
        SourceFormat::Onnx => onnx::read(path),
    }
}
