//! ferrovision's model API on top of the engine (`ferrovision-tensor`): layers, Sequential and
//! functional networks, losses, metrics, optimizers, initializers, regularizers, a network's
//! weights in files, and the MNIST IDX reader.
//!
//! Layout is channels-first (`[N, C, H, W]`), like the engine. Weights are [`Param`]s
//! (shared handles); a model is a [`Network`] (Sequential, [`Functional`] or your own struct).
//! Training it (`Model`: `compile`/`fit`, callbacks, checkpoints, custom train steps) is the
//! job of `ferrovision-train`, which builds on this crate; this crate needs no data pipeline
//! and no image decoders.

pub mod activations;
pub mod children;
pub mod datasets;
mod error;
pub mod functional;
pub mod initializers;
pub mod layer;
pub mod layers;
pub mod layout;
pub mod losses;
pub mod metrics;
pub mod network;
pub mod optim;
mod param;
pub mod registry;
pub mod regularizers;
pub mod selector;
mod sequential;
pub mod summary;
pub mod weights;

pub use activations::Activation;
pub use error::{Error, Result};
pub use ferrovision_tensor as tensor;
pub use functional::{Functional, Graph, LayerId, NodeId};
pub use initializers::Initializer;
pub use layer::{CallCtx, Layer, Shape};
pub use losses::Loss;
pub use metrics::Metric;
pub use network::{Network, NetworkExt};
pub use optim::Optimizer;
pub use param::Param;
pub use regularizers::Regularizer;
pub use selector::LayerSelector;
pub use sequential::{Sequential, SequentialBuilder};
pub use weights::network_from_config;

/// Everything needed to define a network: `use ferrovision_nn::prelude::*;` (training adds
/// `ferrovision_train::prelude`, which includes this one).
///
/// ```
/// use ferrovision_nn::prelude::*;
/// use ferrovision_nn::tensor::rng::Rng;
/// let mut rng = Rng::new(0);
/// let x = Tensor::rand(&[4, 1, 28, 28], &mut rng);
/// let net = Sequential::new(&[1, 28, 28])
///     .add(Conv2D::new(6, 5).padding(PaddingMode::Same).activation(Activation::Relu))
///     .add(MaxPooling2D::new(2))
///     .add(Flatten::new())
///     .add(Dense::new(10))
///     .build()?;
/// let y = net.forward(&[x], &mut CallCtx::new(false))?;
/// assert_eq!(y[0].shape(), &[4, 10]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub mod prelude {
    pub use crate::layers::*;
    pub use crate::losses::{
        BinaryCrossentropy, CategoricalCrossentropy, FnLoss, Huber, KLDivergence,
        MeanAbsoluteError, SparseCategoricalCrossentropy,
    };
    pub use crate::metrics::{Accuracy, Precision, Psnr, Recall, TopKCategoricalAccuracy};
    pub use crate::optim::*;
    pub use crate::{
        Activation, CallCtx, Error, Functional, Graph, Initializer, Layer, LayerSelector, Loss,
        Metric, Network, NetworkExt, Optimizer, Param, Regularizer, Result, Sequential, Shape,
    };
    pub use ferrovision_tensor::{no_grad, Tensor};
}
