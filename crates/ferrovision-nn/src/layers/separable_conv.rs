//! `SeparableConv2D`: a depthwise convolution followed by a 1x1 pointwise convolution.

use super::common::{
    activity_loss, built, check_channels, check_positive, check_rank, check_tensor_rank, dims_json,
    known_channels, reg_json, window_out_len, Cfg, Dims, PaddingMode,
};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::{Activation, Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::{ConvOpts, Padding, Tensor};
use serde_json::{json, Value};

/// Depthwise-separable 2-d convolution (Keras `SeparableConv2D`, channels-first). The
/// depthwise step (kernel `depthwise_kernel: [C * depth_multiplier, 1, kh, kw]`) carries the
/// strides, padding and dilation; the pointwise step (`pointwise_kernel:
/// [filters, C * depth_multiplier, 1, 1]`) mixes channels; then the bias `[filters]` and the
/// activation.
pub struct SeparableConv2D {
    name: String,
    filters: usize,
    kernel_size: [usize; 2],
    strides: [usize; 2],
    padding: PaddingMode,
    depth_multiplier: usize,
    dilation_rate: [usize; 2],
    activation: Activation,
    use_bias: bool,
    depthwise_initializer: Initializer,
    pointwise_initializer: Initializer,
    bias_initializer: Initializer,
    depthwise_regularizer: Option<Regularizer>,
    pointwise_regularizer: Option<Regularizer>,
    bias_regularizer: Option<Regularizer>,
    activity_regularizer: Option<Regularizer>,
    in_channels: Option<usize>,
    depthwise: Option<Param>,
    pointwise: Option<Param>,
    bias: Option<Param>,
}

impl SeparableConv2D {
    /// `filters` output channels with a `kernel_size` depthwise window.
    pub fn new(filters: usize, kernel_size: impl Into<Dims<2>>) -> Self {
        SeparableConv2D {
            name: String::new(),
            filters,
            kernel_size: kernel_size.into().0,
            strides: [1; 2],
            padding: PaddingMode::Valid,
            depth_multiplier: 1,
            dilation_rate: [1; 2],
            activation: Activation::Linear,
            use_bias: true,
            depthwise_initializer: Initializer::GlorotUniform,
            pointwise_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            depthwise_regularizer: None,
            pointwise_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            in_channels: None,
            depthwise: None,
            pointwise: None,
            bias: None,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Step between windows of the depthwise step.
    pub fn strides(mut self, strides: impl Into<Dims<2>>) -> Self {
        self.strides = strides.into().0;
        self
    }

    /// `Valid` or `Same`.
    pub fn padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }

    /// Depthwise output channels per input channel.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }

    /// Spacing between depthwise kernel taps.
    pub fn dilation_rate(mut self, dilation: impl Into<Dims<2>>) -> Self {
        self.dilation_rate = dilation.into().0;
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

    /// Initializer of the depthwise kernel.
    pub fn depthwise_initializer(mut self, init: Initializer) -> Self {
        self.depthwise_initializer = init;
        self
    }

    /// Initializer of the pointwise kernel.
    pub fn pointwise_initializer(mut self, init: Initializer) -> Self {
        self.pointwise_initializer = init;
        self
    }

    /// Initializer of the bias.
    pub fn bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_initializer = init;
        self
    }

    /// Penalises the depthwise kernel.
    pub fn depthwise_regularizer(mut self, r: Regularizer) -> Self {
        self.depthwise_regularizer = Some(r);
        self
    }

    /// Penalises the pointwise kernel.
    pub fn pointwise_regularizer(mut self, r: Regularizer) -> Self {
        self.pointwise_regularizer = Some(r);
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
        let c = Cfg::new("SeparableConv2D", cfg)?;
        let mut l = Self::new(c.usize("filters")?, c.dims::<2>("kernel_size")?);
        l.name = c.name();
        l.strides = c.dims_or("strides", [1; 2])?;
        l.padding = c.padding()?;
        l.depth_multiplier = c.usize_or("depth_multiplier", 1)?;
        l.dilation_rate = c.dims_or("dilation_rate", [1; 2])?;
        l.activation = c.activation()?;
        l.use_bias = c.bool_or("use_bias", true)?;
        l.depthwise_initializer =
            c.initializer("depthwise_initializer", Initializer::GlorotUniform)?;
        l.pointwise_initializer =
            c.initializer("pointwise_initializer", Initializer::GlorotUniform)?;
        l.bias_initializer = c.initializer("bias_initializer", Initializer::Zeros)?;
        l.depthwise_regularizer = c.regularizer("depthwise_regularizer")?;
        l.pointwise_regularizer = c.regularizer("pointwise_regularizer")?;
        l.bias_regularizer = c.regularizer("bias_regularizer")?;
        l.activity_regularizer = c.regularizer("activity_regularizer")?;
        l.validate()
            .map_err(|e| Error::config(format!("SeparableConv2D config: {e}")))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        check_positive(self, "filters", &[self.filters])?;
        check_positive(self, "kernel_size", &self.kernel_size)?;
        check_positive(self, "strides", &self.strides)?;
        check_positive(self, "dilation_rate", &self.dilation_rate)?;
        check_positive(self, "depth_multiplier", &[self.depth_multiplier])?;
        if self.padding == PaddingMode::Causal {
            return Err(Error::layer(
                &self.name,
                "padding must be 'valid' or 'same'",
            ));
        }
        Ok(())
    }
}

impl Layer for SeparableConv2D {
    fn class_name(&self) -> &'static str {
        "SeparableConv2D"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        if self.depthwise.is_some() {
            return Ok(());
        }
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        let cin = known_channels(self, shape)?;
        let rf: usize = self.kernel_size.iter().product();
        let mid = cin * self.depth_multiplier;
        let dk = self.depthwise_initializer.init_global(
            &[mid, 1, self.kernel_size[0], self.kernel_size[1]],
            cin * rf,
            self.depth_multiplier * rf,
        )?;
        let pk = self.pointwise_initializer.init_global(
            &[self.filters, mid, 1, 1],
            mid,
            self.filters,
        )?;
        self.depthwise = Some(
            Param::new("depthwise_kernel", dk, true).with_regularizer(self.depthwise_regularizer),
        );
        self.pointwise = Some(
            Param::new("pointwise_kernel", pk, true).with_regularizer(self.pointwise_regularizer),
        );
        if self.use_bias {
            let b = self
                .bias_initializer
                .init_global(&[self.filters], mid, self.filters)?;
            self.bias = Some(Param::new("bias", b, true).with_regularizer(self.bias_regularizer));
        }
        self.in_channels = Some(cin);
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        let mut out = vec![shape[0], Some(self.filters)];
        for i in 0..2 {
            out.push(window_out_len(
                self,
                shape[2 + i],
                self.kernel_size[i],
                self.strides[i],
                self.dilation_rate[i],
                self.padding,
            )?);
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, 4, "[N, C, H, W]")?;
        let dk = built(self, &self.depthwise)?;
        let pk = built(self, &self.pointwise)?;
        let cin = self.in_channels.unwrap_or(x.shape()[1]);
        check_channels(self, x, cin)?;
        self.output_shape(&[crate::layer::shape_of(x)])?;
        let opts = ConvOpts::new()
            .stride(&self.strides)
            .padding(match self.padding {
                PaddingMode::Same => Padding::Same,
                _ => Padding::Valid,
            })
            .dilation(&self.dilation_rate)
            .groups(cin);
        let mid = x.conv2d(&dk, None, &opts)?;
        let bias = self.bias.as_ref().map(|b| b.value());
        let y = if self.activation == Activation::Relu {
            mid.conv2d_relu(&pk, bias.as_ref(), &ConvOpts::new())?
        } else {
            self.activation
                .apply(&mid.conv2d(&pk, bias.as_ref(), &ConvOpts::new())?)?
        };
        activity_loss(ctx, self.activity_regularizer, &y)?;
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        self.depthwise
            .iter()
            .chain(self.pointwise.iter())
            .chain(self.bias.iter())
            .cloned()
            .collect()
    }

    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "filters": self.filters,
            "kernel_size": dims_json(self.kernel_size),
            "strides": dims_json(self.strides),
            "padding": self.padding.as_str(),
            "depth_multiplier": self.depth_multiplier,
            "dilation_rate": dims_json(self.dilation_rate),
            "activation": self.activation.to_json(),
            "use_bias": self.use_bias,
            "depthwise_initializer": self.depthwise_initializer.to_json(),
            "pointwise_initializer": self.pointwise_initializer.to_json(),
            "bias_initializer": self.bias_initializer.to_json(),
            "depthwise_regularizer": reg_json(self.depthwise_regularizer),
            "pointwise_regularizer": reg_json(self.pointwise_regularizer),
            "bias_regularizer": reg_json(self.bias_regularizer),
            "activity_regularizer": reg_json(self.activity_regularizer),
        })
    }
}
