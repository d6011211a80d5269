//! # ferrovision
//!
//! Computer-vision deep learning in Rust: tensors with autodiff and fast CPU kernels, Keras-style
//! layers, models and training; data pipelines, detection and deployment as the workspace grows.
//!
//! ```
//! use ferrovision::prelude::*;
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap().requires_grad_(true);
//! let y = x.mul(&x).unwrap().sum_all().unwrap();
//! y.backward().unwrap();
//! assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
//! ```

/// The tensor engine (`ferrovision-tensor`).
pub use ferrovision_tensor as tensor;

/// Layers, models, losses, metrics, optimizers, callbacks and training (`ferrovision-nn`);
/// `use ferrovision::nn::prelude::*` for model code.
pub use ferrovision_nn as nn;

/// The names most programs need.
pub mod prelude {
    pub use ferrovision_tensor::rng::{manual_seed, Rng};
    pub use ferrovision_tensor::{custom_op, no_grad, DType, Device, Error, Result, Tensor};
}
