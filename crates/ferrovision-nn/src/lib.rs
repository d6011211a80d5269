//! ferrovision's Keras-grade model API on top of the engine (`ferrovision-tensor`): layers,
//! Sequential and functional models, losses, metrics, optimizers, callbacks, `compile`/`fit`,
//! and saving/loading.
//!
//! Layout is channels-first (`[N, C, H, W]`), like the engine. Weights are [`Param`]s
//! (shared handles); a model is a [`Network`] (Sequential, [`Functional`] or your own struct)
//! wrapped by [`Model`], which trains it.

pub mod activations;
pub mod callbacks;
pub mod children;
pub mod datasets;
mod error;
pub mod functional;
pub mod initializers;
pub mod io;
pub mod layer;
pub mod layers;
pub mod layout;
pub mod losses;
pub mod metrics;
mod model;
pub mod network;
pub mod optim;
mod param;
pub mod registry;
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
///
/// The README's example, on random data:
///
/// ```
/// use ferrovision_nn::prelude::*;
/// use ferrovision_nn::tensor::rng::Rng;
/// let mut rng = Rng::new(0);
/// let x = Tensor::rand(&[64, 1, 28, 28], &mut rng);
/// let y = Tensor::randint(&[64], 0, 10, &mut rng)?;
/// let net = Sequential::new(&[1, 28, 28])
///     .add(Conv2D::new(6, 5).padding(PaddingMode::Same).activation(Activation::Relu))
///     .add(MaxPooling2D::new(2))
///     .add(Flatten::new())
///     .add(Dense::new(10))
///     .build()?;
/// let mut model = Model::new(net);
/// model.compile(
///     Compile::new(Adam::new(), SparseCategoricalCrossentropy::new().from_logits(true))
///         .metric(Accuracy::sparse()),
/// )?;
/// let opts = FitOptions { epochs: 2, validation_split: 0.25, verbose: 0, ..Default::default() };
/// let history = model.fit(&x, &y, opts, vec![Box::new(EarlyStopping::new("val_loss").patience(2))])?;
/// assert_eq!(history.get("val_loss").len(), 2);
/// let path = std::env::temp_dir().join(format!("prelude-doc-{}.safetensors", std::process::id()));
/// model.save(&path)?;
/// assert_eq!(Model::load(&path)?.epoch(), 2);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
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
