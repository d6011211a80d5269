//! Typed errors of the file layer: every error names the file it is about.

use std::path::PathBuf;

/// Result type of the file layer.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while reading or writing a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path that cannot be used (for example one without a file name).
    #[error("{}: {msg}", path.display())]
    InvalidPath { path: PathBuf, msg: String },
    /// A file whose content is not in the expected format (names the tensor, field or record).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// An error from the tensor engine while converting file contents to tensors.
    #[error(transparent)]
    Tensor(#[from] ferrovision_tensor::Error),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
