//! Everything the CLI takes from ferrovision-nn's model API in one place: the built-in
//! architectures, compiling, the run directory's callbacks, saving/loading and summaries.

use crate::cli::ModelKind;
use crate::error::{CliError, Result};
use ferrovision_nn::layers::{Conv2D, Dense, Flatten, MaxPooling2D, PaddingMode};
use ferrovision_nn::losses::SparseCategoricalCrossentropy;
use ferrovision_nn::metrics::Accuracy;
use ferrovision_nn::optim::optimizer_by_name;
use ferrovision_nn::{Activation, Loss, Sequential};
use ferrovision_train::callbacks::{CSVLogger, ModelCheckpoint, TensorBoard};
use ferrovision_train::{Callback, Compile, Model};
use std::path::Path;

/// File extension of saved models (a safetensors file holding weights, optimizer state and
/// the architecture as JSON metadata; see `Model::save`).
pub const MODEL_EXT: &str = "safetensors";

/// Log key of the accuracy metric.
pub const ACCURACY: &str = "accuracy";

/// The untrained network of `kind` for 1x28x28 inputs, 10 logits out.
pub fn build(kind: ModelKind) -> Result<Model> {
    let net = match kind {
        // LeNet-5 as the book builds it in Keras, channels-first: ReLU and max pooling instead
        // of the 1998 paper's scaled tanh and subsampling.
        ModelKind::Lenet5 => Sequential::new(&[1, 28, 28])
            .named("lenet5")
            .add(
                Conv2D::new(6, 5)
                    .padding(PaddingMode::Same)
                    .activation(Activation::Relu),
            )
            .add(MaxPooling2D::new(2))
            .add(Conv2D::new(16, 5).activation(Activation::Relu))
            .add(MaxPooling2D::new(2))
            .add(Flatten::new())
            .add(Dense::new(120).activation(Activation::Relu))
            .add(Dense::new(84).activation(Activation::Relu))
            .add(Dense::new(10))
            .build()?,
        ModelKind::Mlp => Sequential::new(&[1, 28, 28])
            .named("mlp")
            .add(Flatten::new())
            .add(Dense::new(128).activation(Activation::Relu))
            .add(Dense::new(10))
            .build()?,
    };
    Ok(Model::new(net))
}

/// Compiles with the named optimizer, sparse categorical cross-entropy on logits and accuracy.
pub fn compile(model: &mut Model, optimizer: &str, lr: Option<f64>) -> Result<()> {
    let opt = optimizer_by_name(optimizer, lr).map_err(|e| CliError::new(format!("{e}")))?;
    let loss: Box<dyn Loss> = Box::new(SparseCategoricalCrossentropy::new().from_logits(true));
    model.compile(Compile::boxed(opt, vec![loss]).metric(Accuracy::sparse().named(ACCURACY)))?;
    Ok(())
}

/// Checkpoint, CSV and TensorBoard callbacks writing into the run directory `out`:
/// `checkpoints/epoch-NNN.safetensors` (the whole model after every epoch), `log.csv`
/// (appended to when resuming) and `tensorboard/{train,validation}`.
pub fn callbacks(out: &Path, resume: bool) -> Result<Vec<Box<dyn Callback>>> {
    let template = out
        .join("checkpoints")
        .join(format!("epoch-{{epoch:03d}}.{MODEL_EXT}"));
    Ok(vec![
        Box::new(ModelCheckpoint::new(
            template.to_string_lossy().into_owned(),
        )),
        Box::new(CSVLogger::new(out.join("log.csv")).append(resume)),
        Box::new(TensorBoard::new(out.join("tensorboard"))),
    ])
}

/// Saves the whole model (architecture, weights, optimizer state, epoch) in one file.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    Ok(model.save(path)?)
}

/// Loads a model saved by [`save`], compiled as it was (ready to evaluate or train on).
pub fn load(path: &Path) -> Result<Model> {
    if !path.is_file() {
        return Err(CliError::new(format!(
            "{}: no such model file",
            path.display()
        )));
    }
    let model = Model::load(path)?;
    if model.optimizer().is_none() {
        return Err(CliError::new(format!(
            "{}: the model was saved without its training setup (not compiled)",
            path.display()
        )));
    }
    Ok(model)
}

/// Keras-style summary text.
pub fn summary(model: &Model) -> Result<String> {
    Ok(model.summary())
}
