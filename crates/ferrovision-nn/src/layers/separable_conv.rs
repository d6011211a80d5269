//! `SeparableConv2D`: a depthwise convolution followed by a 1x1 pointwise convolution.

use super::common::{
    activity_loss, built, built_params, check_channels, check_positive, check_rank,
    check_tensor_rank, known_channels, ones, weight_opts_builders, DepthwiseOpts, Dims,
    LayerPadding, PaddingMode, WeightOpts,
};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Activation, Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::{ConvOpts, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `SeparableConv2D`'s saved config (Keras keys; the weight options under their depthwise names).
#[derive(Serialize, Deserialize)]
struct SeparableConfig {
    #[serde(default)]
    name: String,
    filters: usize,
    kernel_size: Dims<2>,
    #[serde(default = "ones")]
    strides: Dims<2>,
    #[serde(default)]
    padding: LayerPadding<2>,
    #[serde(default = "one")]
    depth_multiplier: usize,
    #[serde(default = "ones")]
    dilation_rate: Dims<2>,
    #[serde(default = "glorot_uniform")]
    pointwise_initializer: Initializer,
    #[serde(default)]
    pointwise_regularizer: Option<Regularizer>,
    #[serde(flatten)]
    opts: DepthwiseOpts,
}

fn one() -> usize {
    1
}

fn glorot_uniform() -> Initializer {
    Initializer::GlorotUniform
}

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
    padding: LayerPadding<2>,
    depth_multiplier: usize,
    dilation_rate: [usize; 2],
    opts: WeightOpts,
    pointwise_initializer: Initializer,
    pointwise_regularizer: Option<Regularizer>,
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
            padding: LayerPadding::default(),
            depth_multiplier: 1,
            dilation_rate: [1; 2],
            opts: WeightOpts::default(),
            pointwise_initializer: Initializer::GlorotUniform,
            pointwise_regularizer: None,
            in_channels: None,
            depthwise: None,
            pointwise: None,
            bias: None,
        }
    }

    /// Step between windows of the depthwise step.
    pub fn strides(mut self, strides: impl Into<Dims<2>>) -> Self {
        self.strides = strides.into().0;
        self
    }

    /// `Valid` or `Same`.
    pub fn padding(mut self, padding: PaddingMode) -> Self {
        self.padding = LayerPadding::Mode(padding);
        self
    }

    /// PyTorch's `padding=`: `p` zeros on both sides of each spatial axis (one number or one
    /// per axis), replacing the Keras mode. Saved as `"padding": [ph, pw]`.
    pub fn padding_explicit(mut self, p: impl Into<Dims<2>>) -> Self {
        self.padding = LayerPadding::Explicit(p.into().0);
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

    /// Initializer of the pointwise kernel.
    pub fn pointwise_initializer(mut self, init: Initializer) -> Self {
        self.pointwise_initializer = init;
        self
    }

    /// Penalises the pointwise kernel.
    pub fn pointwise_regularizer(mut self, r: Regularizer) -> Self {
        self.pointwise_regularizer = Some(r);
        self
    }

    weight_opts_builders!(
        depthwise_initializer,
        depthwise_regularizer,
        "depthwise kernel"
    );

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: SeparableConfig = from_config("layer", "SeparableConv2D", cfg)?;
        let mut l = Self::new(c.filters, c.kernel_size);
        l.name = c.name;
        l.strides = c.strides.0;
        l.padding = c.padding;
        l.depth_multiplier = c.depth_multiplier;
        l.dilation_rate = c.dilation_rate.0;
        l.opts = c.opts.into();
        l.pointwise_initializer = c.pointwise_initializer;
        l.pointwise_regularizer = c.pointwise_regularizer;
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
        if self.padding.is(PaddingMode::Causal) {
            return Err(Error::layer(
                &self.name,
                "padding must be 'valid', 'same' or explicit amounts",
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
        self.depthwise = Some(self.opts.kernel_param(
            "depthwise_kernel",
            &[mid, 1, self.kernel_size[0], self.kernel_size[1]],
            cin * rf,
            self.depth_multiplier * rf,
        )?);
        let pk = self.pointwise_initializer.init_global(
            &[self.filters, mid, 1, 1],
            mid,
            self.filters,
        )?;
        self.pointwise = Some(
            Param::new("pointwise_kernel", pk, true).with_regularizer(self.pointwise_regularizer),
        );
        self.bias = self.opts.bias_param(self.filters, mid, self.filters)?;
        self.in_channels = Some(cin);
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        let mut out = vec![shape[0], Some(self.filters)];
        for i in 0..2 {
            out.push(self.padding.out_len(
                self,
                i,
                shape[2 + i],
                self.kernel_size[i],
                self.strides[i],
                self.dilation_rate[i],
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
            .padding(self.padding.conv_padding())
            .dilation(&self.dilation_rate)
            .groups(cin);
        let mid = x.conv2d(&dk, None, &opts)?;
        let bias = self.bias.as_ref().map(|b| b.value());
        let y = if self.opts.activation == Activation::Relu {
            mid.conv2d_relu(&pk, bias.as_ref(), &ConvOpts::new())?
        } else {
            self.opts
                .activation
                .apply(&mid.conv2d(&pk, bias.as_ref(), &ConvOpts::new())?)?
        };
        activity_loss(ctx, self.opts.activity_regularizer, &y)?;
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        built_params(&[&self.depthwise, &self.pointwise, &self.bias])
    }

    fn config(&self) -> Value {
        to_config(&SeparableConfig {
            name: self.name.clone(),
            filters: self.filters,
            kernel_size: Dims(self.kernel_size),
            strides: Dims(self.strides),
            padding: self.padding,
            depth_multiplier: self.depth_multiplier,
            dilation_rate: Dims(self.dilation_rate),
            pointwise_initializer: self.pointwise_initializer,
            pointwise_regularizer: self.pointwise_regularizer,
            opts: self.opts.into(),
        })
    }
}
