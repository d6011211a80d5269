//! `Conv1DTranspose`, `Conv2DTranspose`, `Conv3DTranspose`: transposed ("deconvolution")
//! layers with Keras/TensorFlow output sizes.

use super::common::{
    activity_loss, built, built_params, check_channels, check_positive, check_rank,
    check_tensor_rank, known_channels, ones, weight_opts_builders, Dims, PaddingMode, WeightOpts,
};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Param, Result};
use ferrovision_tensor::{ConvTransposeOpts, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    padding: PaddingMode,
    #[serde(default = "ones")]
    dilation_rate: Dims<R>,
    #[serde(default)]
    output_padding: Option<Dims<R>>,
    #[serde(flatten)]
    opts: WeightOpts,
}

/// An `R`-d transposed convolution (Keras `Conv2DTranspose`, channels-first): input
/// `[N, C, *spatial]`, kernel `[C, filters, *kernel_size]` (the engine's transposed-conv
/// layout), bias `[filters]`.
///
/// Output size per axis, as in Keras (`k` is the dilated kernel size): `valid`:
/// `(in - 1) * stride + k + output_padding` with `output_padding` defaulting to
/// `max(k, stride) - k`; `same`: `in * stride`, or `(in - 1) * stride + k % 2 + output_padding`
/// when `output_padding` is given. The result is the full transposed convolution cropped the
/// way TensorFlow's `conv_transpose` crops it (padding before = half the excess, rounded down).
pub struct ConvTranspose<const R: usize> {
    name: String,
    filters: usize,
    kernel_size: [usize; R],
    strides: [usize; R],
    padding: PaddingMode,
    output_padding: Option<[usize; R]>,
    dilation_rate: [usize; R],
    opts: WeightOpts,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

/// 1-d transposed convolution over `[N, C, L]`.
pub type Conv1DTranspose = ConvTranspose<1>;
/// 2-d transposed convolution over `[N, C, H, W]`.
pub type Conv2DTranspose = ConvTranspose<2>;
/// 3-d transposed convolution over `[N, C, D, H, W]`.
pub type Conv3DTranspose = ConvTranspose<3>;

fn class(r: usize) -> &'static str {
    match r {
        1 => "Conv1DTranspose",
        2 => "Conv2DTranspose",
        _ => "Conv3DTranspose",
    }
}

impl<const R: usize> ConvTranspose<R> {
    /// `filters` output channels with a `kernel_size` window.
    pub fn new(filters: usize, kernel_size: impl Into<Dims<R>>) -> Self {
        ConvTranspose {
            name: String::new(),
            filters,
            kernel_size: kernel_size.into().0,
            strides: [1; R],
            padding: PaddingMode::Valid,
            output_padding: None,
            dilation_rate: [1; R],
            opts: WeightOpts::default(),
            in_channels: None,
            kernel: None,
            bias: None,
        }
    }

    /// Upsampling factor per axis.
    pub fn strides(mut self, strides: impl Into<Dims<R>>) -> Self {
        self.strides = strides.into().0;
        self
    }

    /// `Valid` or `Same`.
    pub fn padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }

    /// Extra output size per axis (must be smaller than the stride).
    pub fn output_padding(mut self, output_padding: impl Into<Dims<R>>) -> Self {
        self.output_padding = Some(output_padding.into().0);
        self
    }

    /// Spacing between kernel taps.
    pub fn dilation_rate(mut self, dilation: impl Into<Dims<R>>) -> Self {
        self.dilation_rate = dilation.into().0;
        self
    }

    weight_opts_builders!(kernel_initializer, kernel_regularizer, "kernel");

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: ConvConfig<R> = from_config("layer", class(R), cfg)?;
        let mut l = Self::new(c.filters, c.kernel_size);
        l.name = c.name;
        l.strides = c.strides.0;
        l.padding = c.padding;
        l.dilation_rate = c.dilation_rate.0;
        l.output_padding = c.output_padding.map(|d| d.0);
        l.opts = c.opts;
        l.validate()
            .map_err(|e| Error::config(format!("{} config: {e}", class(R))))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        if self.filters == 0 {
            return Err(Error::layer(&self.name, "filters must be positive, got 0"));
        }
        check_positive(self, "kernel_size", &self.kernel_size)?;
        check_positive(self, "strides", &self.strides)?;
        check_positive(self, "dilation_rate", &self.dilation_rate)?;
        if self.padding == PaddingMode::Causal {
            return Err(Error::layer(
                &self.name,
                "padding must be 'valid' or 'same' for a transposed convolution",
            ));
        }
        if let Some(op) = self.output_padding {
            if op.iter().zip(&self.strides).any(|(o, s)| o >= s) {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "output_padding {op:?} must be smaller than the strides {:?}",
                        self.strides
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keras' output length of axis `i`.
    fn out_len(&self, i: usize, len: usize) -> Result<usize> {
        let (k, s) = (self.kernel_size[i], self.strides[i]);
        let kd = self.dilation_rate[i] * (k - 1) + 1;
        let op = self.output_padding.map(|o| o[i]);
        if len == 0 {
            return Err(Error::layer(
                &self.name,
                format!("input size on axis {} must be non-zero", i + 2),
            ));
        }
        let out = match (self.padding, op) {
            (PaddingMode::Same, None) => len * s,
            (PaddingMode::Same, Some(op)) => (len - 1) * s + kd % 2 + op,
            (_, op) => (len - 1) * s + kd + op.unwrap_or(kd.max(s) - kd),
        };
        if out == 0 {
            // 'same' with an even kernel, output_padding 0 and a length-1 input.
            return Err(Error::layer(
                &self.name,
                format!("input size {len} gives an empty output on axis {}", i + 2),
            ));
        }
        Ok(out)
    }

    /// The kernel weight (after build).
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }
}

impl<const R: usize> Layer for ConvTranspose<R> {
    fn class_name(&self) -> &'static str {
        class(R)
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
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let cin = known_channels(self, shape)?;
        let rf: usize = self.kernel_size.iter().product();
        let mut kshape = vec![cin, self.filters];
        kshape.extend_from_slice(&self.kernel_size);
        // Keras' kernel is (k..., filters, in): its fan-in is filters * rf.
        let (fan_in, fan_out) = (self.filters * rf, cin * rf);
        self.kernel = Some(self.opts.kernel_param("kernel", &kshape, fan_in, fan_out)?);
        self.bias = self.opts.bias_param(self.filters, fan_in, fan_out)?;
        self.in_channels = Some(cin);
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let mut out = vec![shape[0], Some(self.filters)];
        for i in 0..R {
            out.push(match shape[2 + i] {
                Some(len) => Some(self.out_len(i, len)?),
                None => None,
            });
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
        // Full transposed convolution (length L per axis), extended at the end or cropped to
        // Keras' length T the way TensorFlow places it.
        let mut extend = [0usize; R];
        let mut crops = [(0usize, 0usize); R];
        for i in 0..R {
            let len = x.shape()[2 + i];
            let kd = self.dilation_rate[i] * (self.kernel_size[i] - 1) + 1;
            let full = (len - 1) * self.strides[i] + kd;
            let target = self.out_len(i, len)?;
            let before = if self.padding == PaddingMode::Same {
                full.saturating_sub(target) / 2
            } else {
                0
            };
            extend[i] = (before + target).saturating_sub(full);
            crops[i] = (before, target);
        }
        let bias = self.bias.as_ref().map(|b| b.value());
        let opts = ConvTransposeOpts::new()
            .stride(&self.strides)
            .dilation(&self.dilation_rate)
            .output_padding(&extend);
        let mut y = match R {
            1 => x.conv_transpose1d(&kernel, bias.as_ref(), &opts)?,
            2 => x.conv_transpose2d(&kernel, bias.as_ref(), &opts)?,
            _ => x.conv_transpose3d(&kernel, bias.as_ref(), &opts)?,
        };
        for (i, &(start, len)) in crops.iter().enumerate() {
            if start != 0 || len != y.shape()[2 + i] {
                y = y.narrow(2 + i as isize, start, len)?;
            }
        }
        let y = self.opts.activation.apply(&y)?;
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
            output_padding: self.output_padding.map(Dims),
            opts: self.opts,
        })
    }
}
