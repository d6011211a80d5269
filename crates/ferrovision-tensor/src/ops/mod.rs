//! Ops on tensors, each with its forward kernel and its backward rule. One file per family.
//!
//! Float ops compute in f32 on the CPU; they check dtype/device/shape first and return a typed
//! [`crate::Error`] naming the op.

pub(crate) mod axis;
pub mod binary;
pub(crate) mod broadcast;
pub mod compare;
pub mod conv;
pub mod convert;
pub mod creation;
pub mod dropout;
pub mod inplace;
pub mod loss;
pub mod manip;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod roi;
pub(crate) mod separable;
pub mod softmax;
pub mod unary;
pub mod view;

use crate::{Error, Result, Tensor};

/// Errors unless `a` and `b` are on the same device.
pub(crate) fn same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device() != b.device() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: a.device(),
            rhs: b.device(),
        });
    }
    Ok(())
}

pub(crate) use crate::parallel::par_chunk;
