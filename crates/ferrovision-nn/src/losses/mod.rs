//! Losses (Keras `losses`): each reduces to the batch mean, weighting samples when asked.

use crate::Result;
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// A training objective comparing targets with predictions.
pub trait Loss: Send + Sync {
    /// Short name used in logs (`"sparse_categorical_crossentropy"`).
    fn name(&self) -> String;

    /// The scalar loss. With `sample_weight` (shape `[N]`), each sample's loss is weighted and
    /// the result is `sum(w * l) / N` (Keras' `sum_over_batch_size`).
    fn call(
        &self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor>;

    /// Name and hyper-parameters as JSON (saved with the model); `Null` for closures.
    fn config(&self) -> Value {
        Value::Null
    }
}
