//! ferrovision's Keras-grade model API on top of the engine (`ferrovision-tensor`): layers,
//! Sequential and functional models, losses, metrics, optimizers, callbacks, `compile`/`fit`,
//! and saving/loading.
//!
//! Layout is channels-first (`[N, C, H, W]`), like the engine. Weights are [`Param`]s
//! (shared handles); a model is a [`Network`] (Sequential, [`Functional`] or your own struct)
//! wrapped by [`Model`], which trains it.

pub mod activations;
pub mod callbacks;
pub mod datasets;
mod error;
pub mod functional;
pub mod initializers;
pub mod io;
pub mod layer;
pub mod layers;
pub mod losses;
pub mod metrics;
mod model;
pub mod network;
pub mod optim;
mod param;
pub mod regularizers;
mod save;
mod sequential;
pub mod summary;

pub use activations::Activation;
pub use callbacks::{Callback, Logs};
pub use error::{Error, Result};
pub use ferrovision_tensor as tensor;
pub use functional::{Functional, Graph, LayerId, NodeId};
pub use initializers::Initializer;
pub use layer::{CallCtx, Layer, Shape};
pub use losses::Loss;
pub use metrics::Metric;
pub use model::*;
pub use network::{Network, NetworkExt};
pub use optim::Optimizer;
pub use param::Param;
pub use regularizers::Regularizer;
pub use save::network_from_config;
pub use sequential::{Sequential, SequentialBuilder};

/// Everything needed to define and train a model: `use ferrovision_nn::prelude::*;`.
pub mod prelude {
    pub use crate::callbacks::*;
    pub use crate::layers::*;
    pub use crate::losses::{
        BinaryCrossentropy, CategoricalCrossentropy, FnLoss, Huber, KLDivergence,
        MeanAbsoluteError, SparseCategoricalCrossentropy,
    };
    pub use crate::metrics::{Accuracy, Precision, Psnr, Recall, TopKCategoricalAccuracy};
    pub use crate::optim::*;
    pub use crate::{
        Activation, ArrayData, Batch, BatchSource, CallCtx, Compile, Error, FitOptions, Functional,
        Graph, History, Initializer, Layer, Loss, Metric, Model, Network, NetworkExt, Optimizer,
        Param, Regularizer, Result, Sequential, Shape,
    };
    pub use ferrovision_tensor::{no_grad, Tensor};
}
