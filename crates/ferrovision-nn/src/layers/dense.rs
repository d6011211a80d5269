//! `Dense`: a fully connected layer on the last axis.

use super::common::{activity_loss, built, built_params, weight_opts_builders, WeightOpts};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Activation, Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Dense`'s saved config (Keras keys; the weight options are `WeightOpts`' keys, flattened).
#[derive(Serialize, Deserialize)]
struct DenseConfig {
    #[serde(default)]
    name: String,
    units: usize,
    #[serde(flatten)]
    opts: WeightOpts,
}

/// `activation(x @ kernel + bias)` with `kernel: [in, units]` (Keras layout).
///
/// ```
/// use ferrovision_nn::{layers::Dense, Activation, NetworkExt, Sequential};
/// let model = Sequential::new(&[4])
///     .add(Dense::new(8).activation(Activation::Relu))
///     .add(Dense::new(2))
///     .build()?;
/// assert_eq!(model.count_params(), 4 * 8 + 8 + 8 * 2 + 2);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub struct Dense {
    name: String,
    units: usize,
    opts: WeightOpts,
    kernel: Option<Param>,
    bias: Option<Param>,
}

impl Dense {
    /// A dense layer with `units` outputs, no activation, Glorot-uniform kernel, zero bias.
    pub fn new(units: usize) -> Self {
        Dense {
            name: String::new(),
            units,
            opts: WeightOpts::default(),
            kernel: None,
            bias: None,
        }
    }

    weight_opts_builders!(kernel_initializer, kernel_regularizer, "kernel");

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: DenseConfig = from_config("layer", "Dense", cfg)?;
        let mut d = Dense::new(c.units);
        d.name = c.name;
        d.opts = c.opts;
        Ok(d)
    }
}

impl Layer for Dense {
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        if self.kernel.is_some() {
            return Ok(());
        }
        let shape = single_shape(self, input_shapes)?;
        let Some(Some(fan_in)) = shape.last().copied() else {
            return Err(Error::layer(
                &self.name,
                format!("needs a known last input dimension, got {shape:?}"),
            ));
        };
        self.kernel =
            Some(
                self.opts
                    .kernel_param("kernel", &[fan_in, self.units], fan_in, self.units)?,
            );
        self.bias = self.opts.bias_param(self.units, fan_in, self.units)?;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let mut s = single_shape(self, input_shapes)?.clone();
        match s.last_mut() {
            Some(last) => *last = Some(self.units),
            None => return Err(Error::layer(&self.name, "needs an input of rank >= 1")),
        }
        Ok(s)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        let kernel = built(self, &self.kernel)?;
        let bias = self.bias.as_ref().map(|b| b.value());
        let y = if self.opts.activation == Activation::Relu {
            x.linear_relu(&kernel, bias.as_ref())?
        } else {
            self.opts
                .activation
                .apply(&x.linear(&kernel, bias.as_ref())?)?
        };
        activity_loss(ctx, self.opts.activity_regularizer, &y)?;
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        built_params(&[&self.kernel, &self.bias])
    }

    fn config(&self) -> Value {
        to_config(&DenseConfig {
            name: self.name.clone(),
            units: self.units,
            opts: self.opts,
        })
    }
}
