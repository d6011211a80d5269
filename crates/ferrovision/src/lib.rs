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

/// The file layer (`ferrovision-io`): atomic writes, TFRecord record framing, safetensors.
pub use ferrovision_io as io;

/// Layers, networks, losses, metrics and optimizers (`ferrovision-nn`);
/// `use ferrovision::nn::prelude::*` for model code.
pub use ferrovision_nn as nn;

/// The training loop (`ferrovision-train`): `Model` (compile/fit/evaluate/predict), custom
/// train steps, callbacks, TensorBoard, checkpoints; `use ferrovision::train::prelude::*` for
/// training code (it includes the `nn` prelude).
pub use ferrovision_train as train;

/// The model zoo (`ferrovision-models`): named architectures (ResNets, VGG, GoogLeNet,
/// Inception v3, MobileNets, EfficientNet-Lite0, mini-Xception, ...) built with the public model
/// API, and the name -> builder registry.
pub use ferrovision_models as models;

/// Pretrained weights (`ferrovision-import`): PyTorch, Keras HDF5, TF.js, ONNX and safetensors
/// readers, name mapping onto networks, zoo models with weights, the local model cache.
pub use ferrovision_import as import;

/// The names most programs need.
pub mod prelude {
    pub use ferrovision_tensor::rng::{manual_seed, Rng};
    pub use ferrovision_tensor::{custom_op, no_grad, DType, Device, Error, Result, Tensor};
}
