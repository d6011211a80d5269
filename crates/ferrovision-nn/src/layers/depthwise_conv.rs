//! `DepthwiseConv2D`: one filter bank per input channel.

use super::common::{
    activity_loss, built, built_params, check_channels, check_positive, check_rank,
    check_tensor_rank, known_channels, ones, weight_opts_builders, DepthwiseOpts, Dims,
    LayerPadding, PaddingMode, WeightOpts,
};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Activation, Error, Param, Result};
use ferrovision_tensor::{ConvOpts, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `DepthwiseConv2D`'s saved config (Keras keys; the weight options under their depthwise names).
#[derive(Serialize, Deserialize)]
struct DepthwiseConfig {
    #[serde(default)]
    name: String,
    kernel_size: Dims<2>,
    #[serde(default = "ones")]
    strides: Dims<2>,
    #[serde(default)]
    padding: LayerPadding<2>,
    #[serde(default = "one")]
    depth_multiplier: usize,
    #[serde(default = "ones")]
    dilation_rate: Dims<2>,
    #[serde(flatten)]
    opts: DepthwiseOpts,
}

fn one() -> usize {
    1
}

/// Depthwise 2-d convolution (Keras `DepthwiseConv2D`, channels-first): each input channel `c`
/// is convolved with `depth_multiplier` filters of its own, giving output channels
/// `c * depth_multiplier + m`. Kernel `[C * depth_multiplier, 1, kh, kw]` (a grouped
/// convolution with `groups = C` in the engine's layout), bias `[C * depth_multiplier]`.
pub struct DepthwiseConv2D {
    name: String,
    kernel_size: [usize; 2],
    strides: [usize; 2],
    padding: LayerPadding<2>,
    depth_multiplier: usize,
    dilation_rate: [usize; 2],
    opts: WeightOpts,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

impl DepthwiseConv2D {
    /// A depthwise convolution with a `kernel_size` window, depth multiplier 1.
    pub fn new(kernel_size: impl Into<Dims<2>>) -> Self {
        DepthwiseConv2D {
            name: String::new(),
            kernel_size: kernel_size.into().0,
            strides: [1; 2],
            padding: LayerPadding::default(),
            depth_multiplier: 1,
            dilation_rate: [1; 2],
            opts: WeightOpts::default(),
            in_channels: None,
            kernel: None,
            bias: None,
        }
    }

    /// Step between windows.
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

    /// Output channels per input channel.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }

    /// Spacing between kernel taps.
    pub fn dilation_rate(mut self, dilation: impl Into<Dims<2>>) -> Self {
        self.dilation_rate = dilation.into().0;
        self
    }

    weight_opts_builders!(
        depthwise_initializer,
        depthwise_regularizer,
        "depthwise kernel"
    );

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: DepthwiseConfig = from_config("layer", "DepthwiseConv2D", cfg)?;
        let mut l = Self::new(c.kernel_size);
        l.name = c.name;
        l.strides = c.strides.0;
        l.padding = c.padding;
        l.depth_multiplier = c.depth_multiplier;
        l.dilation_rate = c.dilation_rate.0;
        l.opts = c.opts.into();
        l.validate()
            .map_err(|e| Error::config(format!("DepthwiseConv2D config: {e}")))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
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

impl Layer for DepthwiseConv2D {
    fn class_name(&self) -> &'static str {
        "DepthwiseConv2D"
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
        self.validate()?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        let cin = known_channels(self, shape)?;
        let rf: usize = self.kernel_size.iter().product();
        let cout = cin * self.depth_multiplier;
        // Keras' kernel is (kh, kw, C, multiplier): fan-in C * rf, fan-out multiplier * rf.
        let (fan_in, fan_out) = (cin * rf, self.depth_multiplier * rf);
        self.kernel = Some(self.opts.kernel_param(
            "kernel",
            &[cout, 1, self.kernel_size[0], self.kernel_size[1]],
            fan_in,
            fan_out,
        )?);
        self.bias = self.opts.bias_param(cout, fan_in, fan_out)?;
        self.in_channels = Some(cin);
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        let mut out = vec![shape[0], shape[1].map(|c| c * self.depth_multiplier)];
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
        let kernel = built(self, &self.kernel)?;
        let cin = self.in_channels.unwrap_or(x.shape()[1]);
        check_channels(self, x, cin)?;
        self.output_shape(&[crate::layer::shape_of(x)])?;
        let bias = self.bias.as_ref().map(|b| b.value());
        let opts = ConvOpts::new()
            .stride(&self.strides)
            .padding(self.padding.conv_padding())
            .dilation(&self.dilation_rate)
            .groups(cin);
        let y = if self.opts.activation == Activation::Relu {
            x.conv2d_relu(&kernel, bias.as_ref(), &opts)?
        } else {
            self.opts
                .activation
                .apply(&x.conv2d(&kernel, bias.as_ref(), &opts)?)?
        };
        activity_loss(ctx, self.opts.activity_regularizer, &y)?;
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        built_params(&[&self.kernel, &self.bias])
    }

    fn config(&self) -> Value {
        to_config(&DepthwiseConfig {
            name: self.name.clone(),
            kernel_size: Dims(self.kernel_size),
            strides: Dims(self.strides),
            padding: self.padding,
            depth_multiplier: self.depth_multiplier,
            dilation_rate: Dims(self.dilation_rate),
            opts: self.opts.into(),
        })
    }
}
