//! # ferrovision-train
//!
//! Training for `ferrovision-nn` networks, Keras-style: [`Model`] wraps a
//! [`Network`](ferrovision_nn::Network) and gives it `compile`/`fit`/`evaluate`/`predict`,
//! callbacks (progress bar, early stopping, checkpoints, learning-rate schedules, CSV,
//! TensorBoard), and save/load of a whole training run (weights, optimizer state, epoch and
//! random state) so that a resumed run is bit-identical to an uninterrupted one.
//!
//! Data comes from any [`BatchSource`]: in-memory arrays ([`ArrayData`]) or a
//! `ferrovision_data::Dataset` pipeline.
//!
//! Errors are `ferrovision-nn`'s ([`Error`], [`Result`]): training fails for the same reasons
//! model code does, plus data-pipeline errors ([`Error::Data`]).

pub mod callbacks;
mod data_source;
mod model;
mod save;
pub mod step;
pub mod traced;
pub mod tta;

pub use callbacks::{Callback, Logs};
pub use ferrovision_nn as nn;
pub use ferrovision_nn::{Error, Result};
pub use model::*;
pub use step::{
    default_test_step, default_train_step, ComputedLoss, DefaultStep, StepCtx, StepLogs, TrainStep,
    PRIMARY_OPTIMIZER,
};

/// Everything needed to define and train a model: `use ferrovision_train::prelude::*;`
/// (`ferrovision_nn::prelude` plus the training loop and callbacks).
///
/// The README's example, on random data:
///
/// ```
/// use ferrovision_train::prelude::*;
/// use ferrovision_train::nn::tensor::rng::Rng;
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
/// # Ok::<(), ferrovision_train::Error>(())
/// ```
pub mod prelude {
    pub use crate::callbacks::*;
    pub use crate::{
        ArrayData, Batch, BatchSource, Compile, ComputedLoss, FitOptions, History, Model, StepCtx,
        StepLogs, TrainStep,
    };
    pub use ferrovision_nn::prelude::*;
}
