//! `Conv1D`, `Conv2D`, `Conv3D`: convolutions over channels-first inputs.

use super::common::{
    activity_loss, built, built_params, check_channels, check_positive, check_rank,
    check_tensor_rank, known_channels, ones, weight_opts_builders, Dims, LayerPadding, PaddingMode,
    WeightOpts,
};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Activation, Error, Param, Result};
use ferrovision_tensor::{ConvOpts, Padding, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn one() -> usize {
    1
}

/// The saved config (Keras keys; the weight options are `WeightOpts`' keys, flattened).
#[derive(Serialize, Deserialize)]
struct ConvConfig<const R: usize> {
    #[serde(default)]
    name: String,
    filters: usize,
    kernel_size: Dims<R>,
    #[serde(default = "ones")]
    strides: Dims<R>,
    #[serde(default)]
    padding: LayerPadding<R>,
    #[serde(default = "ones")]
    dilation_rate: Dims<R>,
    #[serde(default = "one")]
    groups: usize,
    #[serde(flatten)]
    opts: WeightOpts,
}

/// An `R`-d convolution (Keras `Conv1D/2D/3D`, channels-first): input `[N, C, *spatial]`,
/// kernel `[filters, C / groups, *kernel_size]` (the engine's layout), bias `[filters]`.
///
/// Use the aliases [`Conv1D`], [`Conv2D`], [`Conv3D`]. Keras defaults: strides 1, `valid`
/// padding, dilation 1, one group, no activation, bias on, Glorot-uniform kernel, zero bias.
/// ReLU on a 2-d convolution runs fused in the kernel.
///
/// ```
/// use ferrovision_nn::layers::{Conv2D, PaddingMode};
/// use ferrovision_nn::{Activation, Sequential};
/// let model = Sequential::new(&[1, 28, 28])
///     .add(Conv2D::new(6, 5).padding(PaddingMode::Same).activation(Activation::Relu))
///     .build()?;
/// assert_eq!(model.layer_output_shapes()[0], vec![None, Some(6), Some(28), Some(28)]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub struct Conv<const R: usize> {
    name: String,
    filters: usize,
    kernel_size: [usize; R],
    strides: [usize; R],
    padding: LayerPadding<R>,
    dilation_rate: [usize; R],
    groups: usize,
    opts: WeightOpts,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

/// 1-d convolution over `[N, C, L]`.
pub type Conv1D = Conv<1>;
/// 2-d convolution over `[N, C, H, W]`.
pub type Conv2D = Conv<2>;
/// 3-d convolution over `[N, C, D, H, W]`.
pub type Conv3D = Conv<3>;

fn conv_class(r: usize) -> &'static str {
    match r {
        1 => "Conv1D",
        2 => "Conv2D",
        _ => "Conv3D",
    }
}

impl<const R: usize> Conv<R> {
    /// `filters` output channels with a `kernel_size` window (one number or one per axis).
    pub fn new(filters: usize, kernel_size: impl Into<Dims<R>>) -> Self {
        Conv {
            name: String::new(),
            filters,
            kernel_size: kernel_size.into().0,
            strides: [1; R],
            padding: LayerPadding::default(),
            dilation_rate: [1; R],
            groups: 1,
            opts: WeightOpts::default(),
            in_channels: None,
            kernel: None,
            bias: None,
        }
    }

    /// Step between windows (one number or one per axis).
    pub fn strides(mut self, strides: impl Into<Dims<R>>) -> Self {
        self.strides = strides.into().0;
        self
    }

    /// `Valid`, `Same` or (Conv1D only) `Causal`.
    pub fn padding(mut self, padding: PaddingMode) -> Self {
        self.padding = LayerPadding::Mode(padding);
        self
    }

    /// PyTorch's `padding=`: `p` zeros on both sides of every spatial axis (one number, or one
    /// per axis), replacing the Keras mode. Saved as `"padding": [p, ...]`.
    pub fn padding_explicit(mut self, p: impl Into<Dims<R>>) -> Self {
        self.padding = LayerPadding::Explicit(p.into().0);
        self
    }

    /// Spacing between kernel taps (atrous convolution).
    pub fn dilation_rate(mut self, dilation: impl Into<Dims<R>>) -> Self {
        self.dilation_rate = dilation.into().0;
        self
    }

    /// Splits the channels into `groups` independent convolutions (both the input channels and
    /// `filters` must be multiples of it).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    weight_opts_builders!(kernel_initializer, kernel_regularizer, "kernel");

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: ConvConfig<R> = from_config("layer", conv_class(R), cfg)?;
        let mut l = Self::new(c.filters, c.kernel_size);
        l.name = c.name;
        l.strides = c.strides.0;
        l.padding = c.padding;
        l.dilation_rate = c.dilation_rate.0;
        l.groups = c.groups;
        l.opts = c.opts;
        l.validate()
            .map_err(|e| Error::config(format!("{} config: {e}", conv_class(R))))?;
        Ok(l)
    }

    /// Checks the hyper-parameters that do not depend on the input.
    fn validate(&self) -> Result<()> {
        if self.filters == 0 {
            return Err(Error::layer(&self.name, "filters must be positive, got 0"));
        }
        check_positive(self, "kernel_size", &self.kernel_size)?;
        check_positive(self, "strides", &self.strides)?;
        check_positive(self, "dilation_rate", &self.dilation_rate)?;
        if self.groups == 0 || !self.filters.is_multiple_of(self.groups) {
            return Err(Error::layer(
                &self.name,
                format!(
                    "groups must be positive and divide filters ({}), got {}",
                    self.filters, self.groups
                ),
            ));
        }
        if self.padding.is(PaddingMode::Causal) && R != 1 {
            return Err(Error::layer(
                &self.name,
                "'causal' padding is only supported by Conv1D",
            ));
        }
        Ok(())
    }

    fn check_input(&self, shape: &Shape) -> Result<()> {
        self.validate()?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        if let Some(c) = shape[1] {
            if c == 0 || !c.is_multiple_of(self.groups) {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "input channels ({c}) must be a positive multiple of groups ({})",
                        self.groups
                    ),
                ));
            }
        }
        Ok(())
    }

    fn engine_padding(&self) -> Padding {
        if self.padding.is(PaddingMode::Causal) {
            Padding::Explicit(
                self.kernel_size
                    .iter()
                    .zip(&self.dilation_rate)
                    .map(|(&k, &d)| (d * (k - 1), 0))
                    .collect(),
            )
        } else {
            self.padding.conv_padding()
        }
    }

    /// The kernel weight (after build).
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias weight (after build, when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }
}

impl<const R: usize> Layer for Conv<R> {
    fn class_name(&self) -> &'static str {
        conv_class(R)
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
        self.check_input(shape)?;
        let cin = known_channels(self, shape)?;
        let rf: usize = self.kernel_size.iter().product();
        let mut kshape = vec![self.filters, cin / self.groups];
        kshape.extend_from_slice(&self.kernel_size);
        let (fan_in, fan_out) = (cin / self.groups * rf, self.filters * rf);
        self.kernel = Some(self.opts.kernel_param("kernel", &kshape, fan_in, fan_out)?);
        self.bias = self.opts.bias_param(self.filters, fan_in, fan_out)?;
        self.in_channels = Some(cin);
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.check_input(shape)?;
        let mut out = vec![shape[0], Some(self.filters)];
        for i in 0..R {
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
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        let kernel = built(self, &self.kernel)?;
        if let Some(c) = self.in_channels {
            check_channels(self, x, c)?;
        }
        // Shapes are checked here (not only by the engine) so the error names the layer.
        self.output_shape(&[crate::layer::shape_of(x)])?;
        let bias = self.bias.as_ref().map(|b| b.value());
        let opts = ConvOpts::new()
            .stride(&self.strides)
            .padding(self.engine_padding())
            .dilation(&self.dilation_rate)
            .groups(self.groups);
        let y = match R {
            1 => self
                .opts
                .activation
                .apply(&x.conv1d(&kernel, bias.as_ref(), &opts)?)?,
            2 if self.opts.activation == Activation::Relu => {
                x.conv2d_relu(&kernel, bias.as_ref(), &opts)?
            }
            2 => self
                .opts
                .activation
                .apply(&x.conv2d(&kernel, bias.as_ref(), &opts)?)?,
            _ => self
                .opts
                .activation
                .apply(&x.conv3d(&kernel, bias.as_ref(), &opts)?)?,
        };
        activity_loss(ctx, self.opts.activity_regularizer, &y)?;
        Ok(y)
    }

    fn weights(&self) -> Vec<Param> {
        built_params(&[&self.kernel, &self.bias])
    }

    fn config(&self) -> Value {
        to_config(&ConvConfig::<R> {
            name: self.name.clone(),
            filters: self.filters,
            kernel_size: Dims(self.kernel_size),
            strides: Dims(self.strides),
            padding: self.padding,
            dilation_rate: Dims(self.dilation_rate),
            groups: self.groups,
            opts: self.opts,
        })
    }
}
