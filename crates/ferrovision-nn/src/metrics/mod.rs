//! Streaming metrics (Keras `metrics`): update per batch, read the result, reset per epoch.

use crate::Result;
use ferrovision_tensor::Tensor;

/// A metric accumulated over batches. Usable in custom loops as well as by `fit`.
pub trait Metric: Send {
    /// Name used in logs (`"accuracy"`, `"top_5_accuracy"`); validation logs prefix `val_`.
    fn name(&self) -> String;

    /// Accumulates one batch (`sample_weight` of shape `[N]` weights the samples).
    fn update(
        &mut self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<()>;

    /// The value over everything seen since the last reset.
    fn result(&self) -> f64;

    /// Forgets everything seen.
    fn reset(&mut self);

    /// A fresh metric of the same kind and configuration (validation uses its own copy).
    fn fresh(&self) -> Box<dyn Metric>;

    /// Kind and configuration as JSON (saved with the model); `Null` when it cannot be
    /// restored (closures).
    fn config(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
