//! # ferrovision-tensor
//!
//! ferrovision's compute engine: n-dimensional tensors, eager ops with reverse-mode autodiff,
//! and hand-tuned CPU kernels (packed GEMM with AVX-512/AVX2 micro-kernels, runtime dispatch).
//!
//! ```
//! use ferrovision_tensor::Tensor;
//! let w = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3]).unwrap().requires_grad_(true);
//! let x = Tensor::from_vec(vec![0.5f32, 0.5, 0.5], &[3]).unwrap();
//! let loss = w.mul(&x).unwrap().sum_all().unwrap();
//! loss.backward().unwrap();
//! assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![0.5, 0.5, 0.5]);
//! ```
//!
//! Design notes are in `docs/engine.md`.

pub mod autograd;
pub mod backend;
mod device;
mod dtype;
mod error;
pub mod gradcheck;
pub mod kernels;
pub mod ops;
pub mod parallel;
pub mod rng;
pub mod shape;
pub mod storage;
mod tensor;
pub mod trace;

pub use autograd::{custom_op, grad, is_grad_enabled, no_grad, NoGradGuard};
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use ops::conv::{ConvOpts, ConvTransposeOpts, Padding};
pub use ops::loss::{CrossEntropyOpts, Reduction};
pub use ops::manip::PadMode;
pub use ops::pool::PoolOpts;
pub use ops::reduce::NormOrd;
pub use ops::resize::ResizeMode;
pub use ops::roi::RoiAlignOpts;
pub use tensor::{BufferElement, Tensor};
