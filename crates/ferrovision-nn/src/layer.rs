//! The [`Layer`] trait every layer (and every model usable as a layer) implements.

use crate::{Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// A symbolic shape with the batch axis first; `None` is an unknown size (Keras `None`).
///
/// ferrovision is channels-first like the engine: an image input is `[None, Some(3), None, None]`
/// (batch, channels, height, width).
pub type Shape = Vec<Option<usize>>;

/// Formats a shape the way Keras prints it: `(None, 6, 28, 28)`.
pub fn shape_str(shape: &[Option<usize>]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("None".to_string(), |v| v.to_string()))
        .collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

/// The concrete shape of a tensor as a [`Shape`].
pub fn shape_of(t: &Tensor) -> Shape {
    t.shape().iter().map(|&d| Some(d)).collect()
}

/// Per-call state: the training flag and the extra losses layers add (activity
/// regularization, custom penalties), which the training loop adds to the objective.
#[derive(Debug, Default)]
pub struct CallCtx {
    /// Training mode (dropout active, batch norm uses batch statistics and updates its moving
    /// averages) or inference mode.
    pub training: bool,
    losses: Vec<Tensor>,
}

impl CallCtx {
    /// A context in training (`true`) or inference (`false`) mode.
    pub fn new(training: bool) -> Self {
        CallCtx {
            training,
            losses: Vec::new(),
        }
    }

    /// Adds a scalar penalty to the training objective.
    pub fn add_loss(&mut self, loss: Tensor) {
        self.losses.push(loss);
    }

    /// The penalties added so far.
    pub fn losses(&self) -> &[Tensor] {
        &self.losses
    }

    /// Takes the penalties out of the context.
    pub fn take_losses(&mut self) -> Vec<Tensor> {
        std::mem::take(&mut self.losses)
    }
}

/// A layer: built once from its input shapes, then called on tensors.
///
/// To write a custom layer, implement `class_name`, `name`/`set_name` (usually through a
/// `name: String` field), `build` (create weights with [`Param::new`]), `output_shape`, `call`
/// and `weights`. `config` and registration with [`crate::layers::register_layer`] are only
/// needed to save the architecture.
pub trait Layer: Send + Sync {
    /// The layer type as shown by `summary()` and stored in configs (`"Conv2D"`).
    fn class_name(&self) -> &'static str;

    /// The layer's name, unique within its model (empty until the model names it).
    fn name(&self) -> &str;

    /// Renames the layer (models give unnamed layers names like `conv2d_1`).
    fn set_name(&mut self, name: String);

    /// Creates the weights for these input shapes (batch axis included). Called once, before
    /// the first `call`, by the model that owns the layer; calling it again is a no-op.
    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        let _ = input_shapes;
        Ok(())
    }

    /// The output shape for these input shapes, without running the layer (single-output
    /// layers; a multi-output layer returns [`only_output`] of [`Layer::output_shapes_for`]).
    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape>;

    /// Runs a single-output layer. Most layers take exactly one input. A multi-output layer
    /// implements [`Layer::call_outputs`] and returns [`only_output`] of it here.
    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor>;

    /// One shape per output. Single-output layers keep the default (`[output_shape]`);
    /// multi-output layers override it together with [`Layer::call_outputs`].
    fn output_shapes_for(&self, input_shapes: &[Shape]) -> Result<Vec<Shape>> {
        Ok(vec![self.output_shape(input_shapes)?])
    }

    /// Runs the layer, one tensor per output (the general form that models and the functional
    /// graph use). The default wraps [`Layer::call`].
    fn call_outputs(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        Ok(vec![self.call(inputs, ctx)?])
    }

    /// All weights, trainable or not, in a stable order, the children's included. The default
    /// gathers the children's weights (a block that only holds child layers needs no
    /// `weights`); a layer with weights of its own returns them (and its children's).
    fn weights(&self) -> Vec<Param> {
        self.children()
            .into_iter()
            .flat_map(|(_, c)| c.weights())
            .collect()
    }

    /// The child layers with their names (the path segment in weight names): the layers of a
    /// nested model, the fields of a block. Write it with [`crate::layer_children!`].
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        Vec::new()
    }

    /// The child layers, mutable (for freezing); same order and names as [`Layer::children`].
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Layer)> {
        Vec::new()
    }

    /// Freezes (`false`) or unfreezes the layer: its own weights directly, its children
    /// through their `set_trainable` (so a child keeps its rules, e.g. batch-norm statistics
    /// stay non-trainable).
    fn set_trainable(&mut self, trainable: bool) {
        let kids: Vec<Param> = self
            .children()
            .into_iter()
            .flat_map(|(_, c)| c.weights())
            .collect();
        for w in self.weights() {
            if !kids.iter().any(|k| k.same(&w)) {
                w.set_trainable(trainable);
            }
        }
        for (_, c) in self.children_mut() {
            c.set_trainable(trainable);
        }
    }

    /// The constructor arguments as JSON, enough for [`crate::layers::layer_from_config`] to
    /// rebuild an identical (unbuilt) layer.
    fn config(&self) -> Value {
        Value::Null
    }
}

/// The single input of a one-input layer, or a clear error.
pub fn single_input<'a>(layer: &dyn Layer, inputs: &'a [Tensor]) -> Result<&'a Tensor> {
    match inputs {
        [x] => Ok(x),
        _ => Err(Error::layer(
            layer.name(),
            format!("expects 1 input, got {}", inputs.len()),
        )),
    }
}

/// The single input shape of a one-input layer, or a clear error.
pub fn single_shape<'a>(layer: &dyn Layer, shapes: &'a [Shape]) -> Result<&'a Shape> {
    match shapes {
        [s] => Ok(s),
        _ => Err(Error::layer(
            layer.name(),
            format!("expects 1 input, got {}", shapes.len()),
        )),
    }
}

/// The one output of a layer that may have several (what a multi-output layer's
/// [`Layer::call`]/[`Layer::output_shape`] return), or an error naming the layer and count.
pub fn only_output<T>(layer: &dyn Layer, mut outs: Vec<T>) -> Result<T> {
    if outs.len() != 1 {
        return Err(Error::layer(
            layer.name(),
            format!(
                "has {} outputs; use call_outputs/output_shapes_for (or Graph::call_multi) for multi-output layers",
                outs.len()
            ),
        ));
    }
    Ok(outs.remove(0))
}

/// Builds layers that feed each other in this order, starting from `input`; returns the last
/// output shape (a block's `build` for a chain of children).
pub fn build_chain(layers: &mut [&mut dyn Layer], input: Shape) -> Result<Shape> {
    let mut shape = input;
    for l in layers.iter_mut() {
        let ins = [shape];
        l.build(&ins)?;
        shape = l.output_shape(&ins)?;
    }
    Ok(shape)
}
