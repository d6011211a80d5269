//! Typed errors of the importers: every error names the file, and the tensor or field in it.

use std::path::PathBuf;

/// Result type of the importers.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while importing weights.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that is not in the format its reader expects, or that the reader refuses (a pickle
    /// that would run code, a truncated shard...): names the file and what is wrong where.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// A file whose format could not be recognised.
    #[error("{}: {msg}", path.display())]
    UnknownFormat { path: PathBuf, msg: String },
    /// Imported tensors that do not fit the network: a missing, extra or mis-shaped tensor,
    /// named with both shapes.
    #[error("{}: {msg}", path.display())]
    Mapping { path: PathBuf, msg: String },
    /// An error from the file layer (I/O, safetensors).
    #[error(transparent)]
    Io(#[from] ferrovision_io::Error),
    /// An error from the model API (layout adapters, assigning weights).
    #[error(transparent)]
    Nn(#[from] ferrovision_nn::Error),
    /// An error from the tensor engine.
    #[error(transparent)]
    Tensor(#[from] ferrovision_tensor::Error),
}

impl Error {
    /// A format error in `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A mapping error for the weights read from `path`.
    pub fn mapping(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Mapping {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
