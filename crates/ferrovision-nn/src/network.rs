//! [`Network`]: what every model (Sequential, Functional, custom) provides, and the helpers
//! built on it (weight names, parameter counts, layer lookup, get/set weights).

use crate::layer::{CallCtx, Layer, Shape};
use crate::summary::SummaryRow;
use crate::{Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// A model: a graph of layers mapping input tensors to output tensors.
///
/// Implement it for a custom model struct (see the `custom_model` test): `forward` runs the
/// layers; `layers` lists them so weights get stable names (`layer/weight`).
pub trait Network: Send + Sync {
    /// `"Sequential"`, `"Functional"` or a custom model's type name.
    fn class_name(&self) -> &'static str;

    /// Runs the model. One tensor per input, one per output.
    fn forward(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>>;

    /// The input shapes (batch axis first, `None` = any size).
    fn input_shapes(&self) -> Vec<Shape>;

    /// The output shapes.
    fn output_shapes(&self) -> Vec<Shape>;

    /// The top-level layers in order.
    fn layers(&self) -> Vec<&dyn Layer>;

    /// The top-level layers, mutable (for freezing).
    fn layers_mut(&mut self) -> Vec<&mut dyn Layer>;

    /// Output names (used to key per-output losses and logs: `<name>_loss`).
    fn output_names(&self) -> Vec<String> {
        (0..self.output_shapes().len())
            .map(|i| format!("output_{i}"))
            .collect()
    }

    /// The architecture as JSON, if the model can be rebuilt from it (custom models: `None`).
    fn config(&self) -> Option<Value> {
        None
    }

    /// Rows of `summary()`: one per layer (custom models: output shapes are unknown).
    fn summary_rows(&self) -> Vec<SummaryRow> {
        self.layers()
            .into_iter()
            .map(|l| SummaryRow {
                name: l.name().to_string(),
                class_name: l.class_name().to_string(),
                output_shape: vec![],
                params: l.weights().iter().map(Param::numel).sum(),
                connected_to: vec![],
            })
            .collect()
    }
}

/// Appends `prefix/name` weights of `layer` (recursing into nested models).
pub(crate) fn collect_named(layer: &dyn Layer, prefix: &str, out: &mut Vec<(String, Param)>) {
    let path = if prefix.is_empty() {
        layer.name().to_string()
    } else {
        format!("{prefix}/{}", layer.name())
    };
    let subs = layer.sublayers();
    if subs.is_empty() {
        for w in layer.weights() {
            let full = format!("{path}/{}", w.name());
            out.push((full, w));
        }
    } else {
        for s in subs {
            collect_named(s, &path, out);
        }
    }
}

/// Methods every [`Network`] gets.
pub trait NetworkExt: Network {
    /// Every weight with its stable name (`conv2d/kernel`, `block1/bn/moving_mean`), each once
    /// (a shared layer's weights appear once).
    fn named_weights(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        for l in self.layers() {
            collect_named(l, "", &mut out);
        }
        let mut seen: Vec<(String, Param)> = Vec::with_capacity(out.len());
        for (n, p) in out {
            if !seen.iter().any(|(_, q)| q.same(&p)) {
                seen.push((n, p));
            }
        }
        seen
    }

    /// The weights the optimizer updates.
    fn trainable_weights(&self) -> Vec<(String, Param)> {
        self.named_weights()
            .into_iter()
            .filter(|(_, p)| p.trainable())
            .collect()
    }

    /// Total number of scalars in all weights.
    fn count_params(&self) -> usize {
        self.named_weights().iter().map(|(_, p)| p.numel()).sum()
    }

    /// The top-level layer called `name`.
    fn get_layer(&self, name: &str) -> Option<&dyn Layer> {
        self.layers().into_iter().find(|l| l.name() == name)
    }

    /// Freezes or unfreezes the top-level layer called `name`.
    fn set_layer_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let layer = self
            .layers_mut()
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| Error::config(format!("no layer named '{name}'")))?;
        layer.set_trainable(trainable);
        Ok(())
    }

    /// Copies of all weight values, in `named_weights` order.
    fn get_weights(&self) -> Result<Vec<Tensor>> {
        self.named_weights()
            .iter()
            .map(|(_, p)| Ok(Tensor::from_vec(p.to_vec()?, &p.shape())?))
            .collect()
    }

    /// Overwrites all weights (same order and shapes as [`NetworkExt::get_weights`]).
    fn set_weights(&self, values: &[Tensor]) -> Result<()> {
        let named = self.named_weights();
        if values.len() != named.len() {
            return Err(Error::config(format!(
                "set_weights: got {} tensors, the model has {} weights",
                values.len(),
                named.len()
            )));
        }
        for ((name, p), v) in named.iter().zip(values) {
            if v.shape() != p.shape().as_slice() {
                return Err(Error::config(format!(
                    "set_weights: '{name}' has shape {:?}, got {:?}",
                    p.shape(),
                    v.shape()
                )));
            }
            p.assign(&v.to_vec::<f32>()?)?;
        }
        Ok(())
    }

    /// The Keras-style summary table: layer name and type, output shape, parameter counts
    /// (total, trainable, non-trainable).
    fn summary(&self) -> String {
        crate::summary::summarize(self)
    }

    /// Sum of the weight-regularization penalties (kernel/bias regularizers).
    fn regularization_loss(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (_, p) in self.named_weights() {
            if let (Some(r), true) = (p.regularizer(), p.trainable()) {
                let pen = r.penalty(&p.value())?;
                total = Some(match total {
                    Some(t) => t.add(&pen)?,
                    None => pen,
                });
            }
        }
        Ok(total)
    }
}

impl<N: Network + ?Sized> NetworkExt for N {}
