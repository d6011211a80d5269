//! `Dense`: a fully connected layer on the last axis.

use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::{Activation, Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::Tensor;
use serde_json::{json, Value};

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
    activation: Activation,
    use_bias: bool,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
    kernel_regularizer: Option<Regularizer>,
    bias_regularizer: Option<Regularizer>,
    activity_regularizer: Option<Regularizer>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

impl Dense {
    /// A dense layer with `units` outputs, no activation, Glorot-uniform kernel, zero bias.
    pub fn new(units: usize) -> Self {
        Dense {
            name: String::new(),
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel: None,
            bias: None,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Sets the activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Adds or removes the bias.
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }

    /// Sets the kernel initializer.
    pub fn kernel_initializer(mut self, init: Initializer) -> Self {
        self.kernel_initializer = init;
        self
    }

    /// Sets the bias initializer.
    pub fn bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_initializer = init;
        self
    }

    /// Penalises the kernel.
    pub fn kernel_regularizer(mut self, r: Regularizer) -> Self {
        self.kernel_regularizer = Some(r);
        self
    }

    /// Penalises the bias.
    pub fn bias_regularizer(mut self, r: Regularizer) -> Self {
        self.bias_regularizer = Some(r);
        self
    }

    /// Penalises the layer's output.
    pub fn activity_regularizer(mut self, r: Regularizer) -> Self {
        self.activity_regularizer = Some(r);
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let units = cfg["units"]
            .as_u64()
            .ok_or_else(|| Error::config(format!("Dense config needs 'units': {cfg}")))?;
        let mut d = Dense::new(units as usize);
        d.name = cfg["name"].as_str().unwrap_or("").to_string();
        d.activation = Activation::from_json(&cfg["activation"])?;
        d.use_bias = cfg["use_bias"].as_bool().unwrap_or(true);
        if !cfg["kernel_initializer"].is_null() {
            d.kernel_initializer = Initializer::from_json(&cfg["kernel_initializer"])?;
        }
        if !cfg["bias_initializer"].is_null() {
            d.bias_initializer = Initializer::from_json(&cfg["bias_initializer"])?;
        }
        d.kernel_regularizer = Regularizer::from_json(&cfg["kernel_regularizer"])?;
        d.bias_regularizer = Regularizer::from_json(&cfg["bias_regularizer"])?;
        d.activity_regularizer = Regularizer::from_json(&cfg["activity_regularizer"])?;
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
        let k = self
            .kernel_initializer
            .init_global(&[fan_in, self.units], fan_in, self.units)?;
        self.kernel = Some(Param::new("kernel", k, true).with_regularizer(self.kernel_regularizer));
        if self.use_bias {
            let b = self
                .bias_initializer
                .init_global(&[self.units], fan_in, self.units)?;
            self.bias = Some(Param::new("bias", b, true).with_regularizer(self.bias_regularizer));
        }
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
        let kernel = self
            .kernel
            .as_ref()
            .ok_or_else(|| Error::layer(&self.name, "called before build"))?
            .value();
        let bias = self.bias.as_ref().map(|b| b.value());
        let y = if self.activation == Activation::Relu {
            x.linear_relu(&kernel, bias.as_ref())?
        } else {
            self.activation.apply(&x.linear(&kernel, bias.as_ref())?)?
        };
        if let (Some(r), true) = (self.activity_regularizer, ctx.training) {
            // Keras divides activity penalties by the batch size.
            let n = y.shape().first().copied().unwrap_or(1).max(1) as f32;
            ctx.add_loss(r.penalty(&y)?.div_scalar(n)?);
        }
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        self.kernel
            .iter()
            .chain(self.bias.iter())
            .cloned()
            .collect()
    }

    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "units": self.units,
            "activation": self.activation.to_json(),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer.to_json(),
            "bias_initializer": self.bias_initializer.to_json(),
            "kernel_regularizer": self.kernel_regularizer.map(|r| r.to_json()),
            "bias_regularizer": self.bias_regularizer.map(|r| r.to_json()),
            "activity_regularizer": self.activity_regularizer.map(|r| r.to_json()),
        })
    }
}
