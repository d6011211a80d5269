//! WIRING POINT: everything the CLI needs from ferrovision-nn pieces that other branches are
//! still writing (Conv2D/MaxPooling2D/Flatten layers, optimizers by name, the sparse
//! categorical cross-entropy loss and accuracy metric, ModelCheckpoint/CSVLogger/TensorBoard
//! callbacks, Model::save/load and summary). Until those land on main, each function here
//! returns a clear "not available in this build" error.

use crate::cli::ModelKind;
use crate::error::{CliError, Result};
use ferrovision_nn::{Callback, Model};
use std::path::Path;

/// File extension of saved models.
pub const MODEL_EXT: &str = "fvm";

/// Log key of the accuracy metric.
pub const ACCURACY: &str = "accuracy";

fn missing(what: &str) -> CliError {
    CliError::new(format!(
        "{what} is not available in this build yet (ferrovision-nn is being completed)"
    ))
}

/// The untrained network of `kind` for 1x28x28 inputs, 10 logits out.
pub fn build(kind: ModelKind) -> Result<Model> {
    Err(missing(&format!("the {} architecture", kind.name())))
}

/// Compiles with the named optimizer, sparse categorical cross-entropy on logits and accuracy.
pub fn compile(model: &mut Model, optimizer: &str, lr: Option<f64>) -> Result<()> {
    let _ = (model, lr);
    Err(missing(&format!("optimizer '{optimizer}'")))
}

/// Checkpoint, CSV and TensorBoard callbacks writing into the run directory `out`.
pub fn callbacks(out: &Path, resume: bool) -> Result<Vec<Box<dyn Callback>>> {
    let _ = (out, resume);
    Err(missing("callbacks"))
}

/// Saves the whole model (architecture, weights, optimizer state, epoch).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    let _ = (model, path);
    Err(missing("saving models"))
}

/// Loads a model saved by [`save`].
pub fn load(path: &Path) -> Result<Model> {
    let _ = path;
    Err(missing("loading models"))
}

/// Keras-style summary text.
pub fn summary(model: &Model) -> Result<String> {
    let _ = model;
    Err(missing("summary"))
}
