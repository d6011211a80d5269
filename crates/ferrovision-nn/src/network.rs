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
                output_shapes: vec![],
                params: l.weights().iter().map(Param::numel).sum(),
                connected_to: vec![],
            })
            .collect()
    }
}

/// Appends the weights of `layer`, named `segment` under `prefix`, as `prefix/segment/weight`:
/// its own weights first, then its children's (recursively, each named by its child name).
pub(crate) fn collect_named(
    segment: &str,
    layer: &dyn Layer,
    prefix: &str,
    out: &mut Vec<(String, Param)>,
) {
    let path = join_path(prefix, segment);
    let mut kids = Vec::new();
    for (name, child) in layer.children() {
        collect_named(&name, child, &path, &mut kids);
    }
    for w in layer.weights() {
        if !kids.iter().any(|(_, k): &(String, Param)| k.same(&w)) {
            out.push((format!("{path}/{}", w.name()), w));
        }
    }
    out.extend(kids);
}

/// `prefix/segment` (just `segment` at the top).
fn join_path(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}/{segment}")
    }
}

/// The descendant of `layer` at `path` (child names, which may themselves hold `/`).
fn child_at<'a>(layer: &'a dyn Layer, path: &str) -> Option<&'a dyn Layer> {
    layer.children().into_iter().find_map(|(name, c)| {
        if path == name {
            Some(c)
        } else {
            child_at(c, path.strip_prefix(name.as_str())?.strip_prefix('/')?)
        }
    })
}

/// Freezes or unfreezes every layer under `path` whose path is `prefix` or starts with
/// `prefix/`; counts them.
fn set_trainable_under(
    path: &str,
    layer: &mut dyn Layer,
    prefix: &str,
    trainable: bool,
    count: &mut usize,
) {
    if path == prefix || path.starts_with(&format!("{prefix}/")) {
        layer.set_trainable(trainable);
        *count += 1;
        return;
    }
    for (name, child) in layer.children_mut() {
        set_trainable_under(&join_path(path, &name), child, prefix, trainable, count);
    }
}

/// The configs of a model's layers (`[{"class_name", "config"}, ...]`).
pub(crate) fn layer_configs(layers: &[Box<dyn Layer>]) -> Vec<Value> {
    layers
        .iter()
        .map(|l| serde_json::json!({"class_name": l.class_name(), "config": l.config()}))
        .collect()
}

/// Rebuilds the layers of a model's config (`"layers"` of [`layer_configs`] output); `model`
/// starts every error (`"Sequential config"`).
pub(crate) fn layers_from_configs(model: &str, cfg: &Value) -> Result<Vec<Box<dyn Layer>>> {
    let list = cfg["layers"]
        .as_array()
        .ok_or_else(|| Error::config(format!("{model}: needs a 'layers' list")))?;
    list.iter()
        .map(|l| {
            let class = l["class_name"].as_str().ok_or_else(|| {
                Error::config(format!("{model}: layer config without class_name: {l}"))
            })?;
            crate::layers::layer_from_config(class, &l["config"])
        })
        .collect()
}

/// The [`Layer`] methods shared by models that keep a `name: String` and their layers in
/// `layers: Vec<Box<dyn Layer>>` (Sequential, Functional): weights come from
/// [`NetworkExt::named_weights`] (each shared weight once), freezing reaches every layer.
macro_rules! model_layer_methods {
    () => {
        fn name(&self) -> &str {
            &self.name
        }

        fn set_name(&mut self, name: String) {
            self.name = name;
        }

        fn weights(&self) -> Vec<Param> {
            self.named_weights().into_iter().map(|(_, p)| p).collect()
        }

        fn children(&self) -> Vec<(String, &dyn Layer)> {
            self.layers
                .iter()
                .map(|l| (l.name().to_string(), l.as_ref()))
                .collect()
        }

        fn children_mut(&mut self) -> Vec<(String, &mut dyn Layer)> {
            self.layers
                .iter_mut()
                .map(|l| (l.name().to_string(), l.as_mut() as &mut dyn Layer))
                .collect()
        }

        fn set_trainable(&mut self, trainable: bool) {
            for l in &mut self.layers {
                l.set_trainable(trainable);
            }
        }
    };
}
pub(crate) use model_layer_methods;

/// The [`Network`] methods shared by the same models: the layer lists and the architecture
/// (the [`Layer::config`]).
macro_rules! model_network_methods {
    () => {
        fn layers(&self) -> Vec<&dyn Layer> {
            self.layers.iter().map(|l| l.as_ref()).collect()
        }

        fn layers_mut(&mut self) -> Vec<&mut dyn Layer> {
            self.layers
                .iter_mut()
                .map(|l| l.as_mut() as &mut dyn Layer)
                .collect()
        }

        fn config(&self) -> Option<Value> {
            Some(Layer::config(self))
        }
    };
}
pub(crate) use model_network_methods;

/// Sum of the penalties of the trainable, regularized weights among `weights`, added in
/// order (`None` when there are none).
pub fn regularization_of(weights: &[(String, Param)]) -> Result<Option<Tensor>> {
    let mut total: Option<Tensor> = None;
    for (_, p) in weights {
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

/// Methods every [`Network`] gets.
pub trait NetworkExt: Network {
    /// Every weight with its stable name (`conv2d/kernel`, `block1/bn/moving_mean`), each once
    /// (a shared layer's weights appear once).
    fn named_weights(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        for l in self.layers() {
            collect_named(l.name(), l, "", &mut out);
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

    /// The layer called `name` at the top level, or at a path of child names below it
    /// (`"layer1/blocks/0/conv1"`, as in weight names).
    fn get_layer(&self, name: &str) -> Option<&dyn Layer> {
        self.layers().into_iter().find_map(|l| {
            if l.name() == name {
                Some(l)
            } else {
                let rest = name.strip_prefix(l.name())?.strip_prefix('/')?;
                child_at(l, rest)
            }
        })
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

    /// Freezes (`false`) or unfreezes every layer whose path (`block`, `block/conv1`, the
    /// weight names without the weight) is `prefix` or lies under it, children included;
    /// returns how many layers matched (an error when none did).
    fn set_trainable_by_prefix(&mut self, prefix: &str, trainable: bool) -> Result<usize> {
        let prefix = prefix.trim_end_matches('/');
        let mut count = 0;
        for l in self.layers_mut() {
            let name = l.name().to_string();
            set_trainable_under(&name, l, prefix, trainable, &mut count);
        }
        if count == 0 {
            return Err(Error::config(format!(
                "no layer path starts with '{prefix}'"
            )));
        }
        Ok(count)
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
        let title = self
            .config()
            .and_then(|c| c["name"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.class_name().to_string());
        crate::summary::summarize(&title, &self.summary_rows(), &self.named_weights())
    }

    /// Sum of the weight-regularization penalties (kernel/bias regularizers).
    fn regularization_loss(&self) -> Result<Option<Tensor>> {
        regularization_of(&self.named_weights())
    }
}

impl<N: Network + ?Sized> NetworkExt for N {}
