//! Typed errors of the model API.

use std::path::PathBuf;

/// Result type of the model API.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while building, training, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An engine op failed (shapes, dtypes, arguments).
    #[error(transparent)]
    Tensor(#[from] ferrovision_tensor::Error),
    /// A data pipeline feeding training failed (for example a `ferrovision_data::Dataset`
    /// read by `ferrovision-train`); the pipeline's own typed error is the source.
    #[error(transparent)]
    Data(Box<dyn std::error::Error + Send + Sync>),
    /// A layer got inputs it cannot use, or was misconfigured.
    #[error("layer '{layer}': {msg}")]
    Layer { layer: String, msg: String },
    /// A model, optimizer, loss or metric was configured or used wrongly.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file has the wrong format or does not match the model (names the tensor and shapes).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
}

impl Error {
    /// A layer error.
    pub fn layer(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Layer {
            layer: layer.into(),
            msg: msg.into(),
        }
    }

    /// A configuration error.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data-pipeline error (keeps the pipeline's error as the source).
    pub fn data(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Data(Box::new(e))
    }

    /// A format error in `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// File-layer errors keep their kind: I/O errors stay [`Error::Io`], malformed or unusable
/// files are [`Error::Format`] naming the file.
impl From<ferrovision_io::Error> for Error {
    fn from(e: ferrovision_io::Error) -> Self {
        match e {
            ferrovision_io::Error::Io { path, source } => Error::Io { path, source },
            ferrovision_io::Error::InvalidPath { path, msg }
            | ferrovision_io::Error::Format { path, msg } => Error::Format { path, msg },
            ferrovision_io::Error::Tensor(t) => Error::Tensor(t),
        }
    }
}
