//! Everything the CLI takes from the model API in one place: building zoo models, the run
//! directory's callbacks, saving/loading and summaries.

use crate::error::{CliError, Result};
use ferrovision_data::Normalize;
use ferrovision_models::ModelOptions;
use ferrovision_train::callbacks::TensorBoard;
use ferrovision_train::{Callback, Model};
use std::path::Path;

/// File extension of saved models (a safetensors file holding weights, optimizer state and
/// the architecture as JSON metadata; see `Model::save`).
pub const MODEL_EXT: &str = "safetensors";

/// The untrained zoo model `name` for `input_shape` inputs and `classes` outputs.
pub fn build(name: &str, input_shape: &[usize], classes: usize) -> Result<Model> {
    let net = ferrovision_models::build(name, &ModelOptions::new(input_shape, classes))?;
    Ok(Model::from_boxed(net))
}

/// The per-sample input shape a model was built for (batch axis dropped; unknown sizes as 0).
pub fn input_shape(model: &Model) -> Vec<usize> {
    model
        .network()
        .input_shapes()
        .first()
        .map(|s| s.iter().skip(1).map(|d| d.unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// The TensorBoard callback of the run directory `out` (`tensorboard/{train,validation}`).
pub fn tensorboard(out: &Path) -> Box<dyn Callback> {
    Box::new(TensorBoard::new(out.join("tensorboard")))
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

/// The model-metadata key of the input normalisation (JSON `{"mean": [...], "std": [...]}`).
pub const INPUT_NORMALIZATION: &str = "input_normalization";

/// Records with the model how its inputs were normalised in training (the augmentation
/// config's `normalize`), so evaluation and prediction apply the same.
pub fn set_input_normalization(model: &mut Model, norm: Option<&Normalize>) {
    if let Some(n) = norm {
        model.set_metadata(INPUT_NORMALIZATION, serde_json::json!(n).to_string());
    }
}

/// The input normalisation a model was trained with, if any.
pub fn input_normalization(model: &Model) -> Result<Option<Normalize>> {
    match model.metadata(INPUT_NORMALIZATION) {
        None => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
            CliError::new(format!(
                "the model's stored input normalisation is invalid ({e}): {text}"
            ))
        }),
    }
}
