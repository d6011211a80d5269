//! `Flatten`: `[N, ...]` to `[N, prod(...)]`.

use super::common::NameConfig;
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde_json::Value;

/// Flattens every axis but the batch axis, in row-major order (channels-first images flatten
/// as `C, H, W`, like PyTorch's `flatten(1)`). A `[N]` input becomes `[N, 1]`.
#[derive(Default)]
pub struct Flatten {
    name: String,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Flatten::default()
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: NameConfig = from_config("layer", "Flatten", cfg)?;
        Ok(Flatten::new().named(&c.name))
    }
}

impl Layer for Flatten {
    fn class_name(&self) -> &'static str {
        "Flatten"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        if shape.is_empty() {
            return Err(Error::layer(&self.name, "needs an input with a batch axis"));
        }
        let rest: Option<usize> = shape[1..].iter().try_fold(1usize, |a, d| d.map(|d| a * d));
        Ok(vec![shape[0], rest])
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        if x.rank() == 0 {
            return Err(Error::layer(&self.name, "needs an input with a batch axis"));
        }
        let rest: usize = x.shape()[1..].iter().product();
        Ok(x.reshape(&[x.shape()[0], rest])?)
    }

    fn config(&self) -> Value {
        to_config(&NameConfig {
            name: self.name.clone(),
        })
    }
}
