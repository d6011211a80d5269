//! Typed errors of the data crate. Every error names the file (and record, line or field) that
//! caused it, so a bad sample in a large dataset can be found.

use std::path::{Path, PathBuf};

/// Result type of the data crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while reading, decoding or transforming data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record file whose framing or checksum is wrong.
    #[error("{path}: {msg} at byte offset {offset}")]
    Record {
        path: PathBuf,
        offset: u64,
        msg: String,
    },
    /// A GZIP/ZLIB record file whose compressed stream is truncated or corrupt. `offset` is the
    /// uncompressed byte offset of the record being read when decoding failed.
    #[error("{path}: {compression} stream: {msg} (reading the record at uncompressed byte offset {offset})")]
    Compressed {
        path: PathBuf,
        compression: crate::tfrecord::Compression,
        offset: u64,
        msg: String,
    },
    /// A protobuf message that cannot be parsed.
    #[error("protobuf: {0}")]
    Proto(String),
    /// An image that cannot be decoded or encoded.
    #[error("{path}: image: {msg}")]
    Image { path: PathBuf, msg: String },
    /// A text/annotation file (XML, JSON, CSV, txt) with a malformed or missing field.
    #[error("{path}{}: {msg}", line_suffix(.line))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        msg: String,
    },
    /// An annotation that names a file that does not exist.
    #[error("{path}: refers to missing file {missing}")]
    MissingFile { path: PathBuf, missing: PathBuf },
    /// An argument that a transformation or source cannot use.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// An external tool (for example ffmpeg for video) is missing or failed.
    #[error("{tool}: {msg}")]
    Tool { tool: &'static str, msg: String },
    /// An error from the tensor engine.
    #[error(transparent)]
    Tensor(#[from] ferrovision_tensor::Error),
    /// A user function in `map`/`filter` failed.
    #[error("{0}")]
    User(String),
}

fn line_suffix(line: &Option<usize>) -> String {
    match line {
        Some(l) => format!(":{l}"),
        None => String::new(),
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A parse error in `path` at an optional 1-based line.
    pub fn parse(path: impl AsRef<Path>, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Parse {
            path: path.as_ref().to_path_buf(),
            line,
            msg: msg.into(),
        }
    }

    /// An image decode/encode error on `path`.
    pub fn image(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Image {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}

/// File-layer errors keep their kind: I/O errors stay [`Error::Io`], an unusable path is an
/// invalid argument, a malformed file a parse error naming the file.
/// A malformed protobuf message (`tf.train.Example`).
impl From<ferrovision_io::protobuf::WireError> for Error {
    fn from(e: ferrovision_io::protobuf::WireError) -> Self {
        Error::Proto(e.to_string())
    }
}

impl From<ferrovision_io::Error> for Error {
    fn from(e: ferrovision_io::Error) -> Self {
        match e {
            ferrovision_io::Error::Io { path, source } => Error::Io { path, source },
            ferrovision_io::Error::InvalidPath { path, msg } => Error::InvalidArgument {
                op: "file",
                msg: format!("{}: {msg}", path.display()),
            },
            ferrovision_io::Error::Format { path, msg } => Error::Parse {
                path,
                line: None,
                msg,
            },
            ferrovision_io::Error::Tensor(t) => Error::Tensor(t),
        }
    }
}
