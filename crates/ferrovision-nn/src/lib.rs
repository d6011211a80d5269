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
