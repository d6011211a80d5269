//! Typed errors of the vision crate. Every error names the op, or the file and the entry, that
//! caused it.

/// Result type of the vision crate.
pub type Result<T> = std::result::Result<T, VisionError>;

/// What went wrong in a vision call.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// An argument an op cannot use (NaN box, negative size, mismatched lengths, ...).
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// A malformed input file: which file, which entry, what was expected.
    #[error("{file}: {entry}: {msg}")]
    Format {
        file: String,
        entry: String,
        msg: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Decoding or encoding an image failed.
    #[error("{path}: image: {msg}")]
    Image { path: String, msg: String },
    /// A malformed run-length encoded mask or polygon (see [`crate::rle`]).
    #[error("rle: {0}")]
    Rle(#[from] crate::rle::RleError),
    /// A malformed annotation file, reported by the parser of `ferrovision-data` (file, line
    /// and entry are in its message).
    #[error(transparent)]
    Data(#[from] ferrovision_data::Error),
    /// An engine error from a tensor op (RoI pooling / align).
    #[error(transparent)]
    Tensor(#[from] ferrovision_tensor::Error),
}

impl VisionError {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        VisionError::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn format(
        file: impl Into<String>,
        entry: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        VisionError::Format {
            file: file.into(),
            entry: entry.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        VisionError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| VisionError::io(path, e))
}

/// File-layer errors (atomic writes) keep their kind: I/O errors stay [`VisionError::Io`].
impl From<ferrovision_io::Error> for VisionError {
    fn from(e: ferrovision_io::Error) -> Self {
        match e {
            ferrovision_io::Error::Io { path, source } => VisionError::io(&path, source),
            ferrovision_io::Error::InvalidPath { path, msg }
            | ferrovision_io::Error::Format { path, msg } => {
                VisionError::format(path.display().to_string(), "file", msg)
            }
            ferrovision_io::Error::Tensor(t) => VisionError::Tensor(t),
        }
    }
}
