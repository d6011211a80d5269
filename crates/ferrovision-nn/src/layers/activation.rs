//! `Activation` layer: applies an [`Activation`] function.

use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Activation, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `Activation` layer's saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct ActivationConfig {
    #[serde(default)]
    name: String,
    activation: Activation,
}

/// Applies an activation function (Keras `Activation` layer; its class name is
/// `"Activation"`). Softmax and log-softmax act on axis 1 (channels / features).
pub struct ActivationLayer {
    name: String,
    activation: Activation,
}

impl ActivationLayer {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer {
            name: String::new(),
            activation,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The activation applied.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: ActivationConfig = from_config("layer", "Activation", cfg)?;
        Ok(ActivationLayer::new(c.activation).named(&c.name))
    }
}

impl Layer for ActivationLayer {
    fn class_name(&self) -> &'static str {
        "Activation"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        Ok(single_shape(self, input_shapes)?.clone())
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        self.activation.apply(single_input(self, inputs)?)
    }

    fn config(&self) -> Value {
        to_config(&ActivationConfig {
            name: self.name.clone(),
            activation: self.activation,
        })
    }
}
