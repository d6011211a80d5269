//! Typed errors of the engine. Every fallible op names itself and the shapes involved.

use crate::{DType, Device};

/// Result type of the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong in an engine call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree (or broadcast) did not.
    #[error("{op}: shapes {lhs:?} and {rhs:?} are incompatible{}", detail_suffix(.detail))]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        detail: String,
    },
    /// A tensor had the wrong shape or rank for the op.
    #[error("{op}: got shape {got:?}, expected {expected}")]
    BadShape {
        op: &'static str,
        got: Vec<usize>,
        expected: String,
    },
    /// A tensor had a dtype the op does not accept.
    #[error("{op}: got dtype {got:?}, expected {expected}")]
    DTypeMismatch {
        op: &'static str,
        got: DType,
        expected: String,
    },
    /// Tensors live on different devices, or the device has no kernel for the op.
    #[error("{op}: device mismatch or unsupported device ({lhs:?} vs {rhs:?})")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    /// An axis index outside `-rank..rank`.
    #[error("{op}: axis {axis} is out of range for rank {rank}")]
    AxisOutOfRange {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// An index (gather, index_select, narrow, ...) outside the valid range.
    #[error("{op}: index {index} is out of range for size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// An argument value that the op cannot use.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    /// A gradient was asked for through an op that has none.
    #[error("backward: op '{op}' has no gradient (its input requires grad); detach the input or use a differentiable op")]
    NoGradient { op: &'static str },
    /// `backward` was asked on something that cannot start it.
    #[error("backward: {0}")]
    Backward(String),
    /// The data given to build a tensor does not match its shape.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({expected} values)")]
    DataLength {
        op: &'static str,
        len: usize,
        shape: Vec<usize>,
        expected: usize,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl Error {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    pub(crate) fn shape_mismatch(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: String::new(),
        }
    }

    pub(crate) fn bad_shape(op: &'static str, got: &[usize], expected: impl Into<String>) -> Self {
        Error::BadShape {
            op,
            got: got.to_vec(),
            expected: expected.into(),
        }
    }

    pub(crate) fn dtype(op: &'static str, got: DType, expected: impl Into<String>) -> Self {
        Error::DTypeMismatch {
            op,
            got,
            expected: expected.into(),
        }
    }
}
