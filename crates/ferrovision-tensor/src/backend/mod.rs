//! The backend seam: op methods validate their arguments, then run the computation through the
//! [`Backend`] of the tensors' device (the structure of candle's `BackendStorage`). The op kind
//! travels as the typed [`Op`] record, so a backend sees exactly what the graph records.
//!
//! Today the elementwise unary ops (`Tensor::relu`, `exp`, `mul_scalar`, ...) and the
//! broadcasting binary ops (`add` ... `minimum`) dispatch through it; the other families
//! (reductions, matmul, convolution, pooling, normalisation, softmax/losses, resizing, copies)
//! still call the CPU kernels from their op files and reject non-CPU tensors. Each family moves
//! behind a trait method the same way; a CUDA backend is then one more `impl Backend`.

pub(crate) mod cpu;

pub use cpu::CpuBackend;

use crate::autograd::Op;
use crate::{Device, Error, Result, Tensor};

/// A device's implementation of the op families that dispatch through the seam.
pub trait Backend: Send + Sync {
    /// The device whose tensors this backend computes on.
    fn device(&self) -> Device;

    /// An elementwise unary op of an f32 tensor (`op` is one of `Neg`, `AddScalar` ...
    /// `Clamp`): a new contiguous tensor of the same shape. Errors name the op.
    fn unary(&self, op: &Op, x: &Tensor) -> Result<Tensor>;

    /// A broadcasting binary op of two f32 tensors (`Add`, `Sub`, `Mul`, `Div`, `Pow`,
    /// `Maximum`, `Minimum`): a new contiguous tensor of the broadcast shape.
    fn binary(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor>;
}

/// The backend of `device`, or [`Error::DeviceMismatch`] naming `op` where none is built (every
/// device but the CPU today).
pub fn for_device(device: Device, op: &'static str) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => Ok(&CpuBackend),
        other => Err(Error::DeviceMismatch {
            op,
            lhs: other,
            rhs: Device::Cpu,
        }),
    }
}
