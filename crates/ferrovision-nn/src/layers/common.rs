//! Helpers shared by the built-in layers: per-axis size tuples, padding modes (Keras names or
//! PyTorch's explicit amounts) and the weight options with their serde forms (every built-in config is a serde-derived struct read through
//! `registry::from_config`), shape checks and activity regularization.

use crate::layer::{CallCtx, Layer, Shape};
use crate::{Activation, Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::{Padding, Tensor};
use serde_json::Value;

/// A size per spatial axis (kernel size, strides, pool size, ...): built from one number for
/// every axis (`3`) or one per axis (`[3, 5]`), like Keras' `int or tuple` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims<const R: usize>(pub [usize; R]);

impl<const R: usize> From<usize> for Dims<R> {
    fn from(v: usize) -> Self {
        Dims([v; R])
    }
}

impl<const R: usize> From<[usize; R]> for Dims<R> {
    fn from(v: [usize; R]) -> Self {
        Dims(v)
    }
}

/// Saved as a list of `R` sizes.
impl<const R: usize> serde::Serialize for Dims<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

/// Read from one size for every axis (`3`) or a list of `R` sizes (`[3, 5]`).
impl<'de, const R: usize> serde::Deserialize<'de> for Dims<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bad =
            || serde::de::Error::custom(format!("expected an integer or a list of {R} integers"));
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().map(|v| Dims([v as usize; R])).ok_or_else(bad),
            Value::Array(a) if a.len() == R => {
                let mut out = [0usize; R];
                for (o, x) in out.iter_mut().zip(&a) {
                    *o = x.as_u64().ok_or_else(bad)? as usize;
                }
                Ok(Dims(out))
            }
            _ => Err(bad()),
        }
    }
}

/// `1` on every axis (the serde default of strides and dilation rates).
pub(crate) fn ones<const R: usize>() -> Dims<R> {
    Dims([1; R])
}

/// Padding of convolutions and pooling (Keras `padding=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingMode {
    /// No padding: only windows that fit inside the input.
    #[default]
    Valid,
    /// TensorFlow `SAME`: output size `ceil(in / stride)`, padding split evenly with any odd
    /// element at the end.
    Same,
    /// Left padding only, so output `t` never sees inputs after `t` (`Conv1D` only).
    Causal,
}

impl PaddingMode {
    /// The Keras name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaddingMode::Valid => "valid",
            PaddingMode::Same => "same",
            PaddingMode::Causal => "causal",
        }
    }

    /// Parses a Keras name (`"valid"`, `"same"`, `"causal"`, any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(PaddingMode::Valid),
            "same" => Ok(PaddingMode::Same),
            "causal" => Ok(PaddingMode::Causal),
            other => Err(Error::config(format!(
                "unknown padding '{other}'; expected 'valid', 'same' or 'causal'"
            ))),
        }
    }
}

/// The padding of a windowed layer with `R` spatial axes: a Keras mode, or PyTorch's explicit
/// `padding=` (the same amount before and after, per axis). Saved under the Keras key
/// `padding` as the mode's name (`"same"`) or a list of amounts (`[1, 1]`); a single number
/// reads as that amount on every axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerPadding<const R: usize> {
    /// A Keras padding mode.
    Mode(PaddingMode),
    /// `p[i]` zeros (or `-inf` for max pooling) on both sides of spatial axis `i`.
    Explicit([usize; R]),
}

impl<const R: usize> Default for LayerPadding<R> {
    fn default() -> Self {
        LayerPadding::Mode(PaddingMode::Valid)
    }
}

impl<const R: usize> LayerPadding<R> {
    /// Whether this is the given Keras mode.
    pub fn is(self, mode: PaddingMode) -> bool {
        self == LayerPadding::Mode(mode)
    }

    /// Output length along spatial axis `axis` (`None` stays unknown); errors name the layer
    /// when the (padded) input is smaller than the window.
    pub fn out_len(
        self,
        layer: &dyn Layer,
        axis: usize,
        len: Option<usize>,
        k: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<Option<usize>> {
        let p = match self {
            LayerPadding::Mode(m) => return window_out_len(layer, len, k, stride, dilation, m),
            LayerPadding::Explicit(p) => p[axis],
        };
        let Some(len) = len else { return Ok(None) };
        let kd = dilation * (k - 1) + 1;
        if len + 2 * p < kd {
            return Err(Error::layer(
                layer.name(),
                format!(
                    "input size {len} padded by {p} on both sides is smaller than the (dilated) window {kd}"
                ),
            ));
        }
        Ok(Some((len + 2 * p - kd) / stride + 1))
    }

    /// The engine's convolution padding for `Valid`, `Same` and explicit amounts (`Causal` is
    /// the caller's: it depends on the kernel).
    pub fn conv_padding(self) -> Padding {
        match self {
            LayerPadding::Mode(PaddingMode::Same) => Padding::Same,
            LayerPadding::Mode(_) => Padding::Valid,
            LayerPadding::Explicit(p) => Padding::Explicit(p.iter().map(|&p| (p, p)).collect()),
        }
    }
}

/// Saved as the mode's Keras name or the list of explicit amounts.
impl<const R: usize> serde::Serialize for LayerPadding<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            LayerPadding::Mode(m) => m.serialize(s),
            LayerPadding::Explicit(p) => Dims(*p).serialize(s),
        }
    }
}

/// Read from a Keras name (any case), one amount for every axis or a list of `R` amounts.
impl<'de, const R: usize> serde::Deserialize<'de> for LayerPadding<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(name) => PaddingMode::parse(&name)
                .map(LayerPadding::Mode)
                .map_err(D::Error::custom),
            v => Dims::<R>::deserialize(v)
                .map(|p| LayerPadding::Explicit(p.0))
                .map_err(|e| {
                    D::Error::custom(format!(
                        "padding: expected 'valid', 'same', 'causal' or explicit amounts ({e})"
                    ))
                }),
        }
    }
}

/// The saved config of layers whose only setting is their name (Keras keys).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct NameConfig {
    #[serde(default)]
    pub name: String,
}

/// Saved as its Keras name.
impl serde::Serialize for PaddingMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read from a Keras name (any case).
impl<'de> serde::Deserialize<'de> for PaddingMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        PaddingMode::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The value of a weight created by `build`, or an error naming the layer.
pub(crate) fn built(layer: &dyn Layer, p: &Option<Param>) -> Result<Tensor> {
    p.as_ref()
        .map(|p| p.value())
        .ok_or_else(|| Error::layer(layer.name(), "called before build"))
}

/// Checks the rank of a symbolic input shape (batch axis included).
pub(crate) fn check_rank(layer: &dyn Layer, shape: &Shape, rank: usize, what: &str) -> Result<()> {
    if shape.len() != rank {
        return Err(Error::layer(
            layer.name(),
            format!(
                "expects a rank-{rank} input {what}, got shape {}",
                crate::layer::shape_str(shape)
            ),
        ));
    }
    Ok(())
}

/// Checks the rank of a concrete input tensor.
pub(crate) fn check_tensor_rank(
    layer: &dyn Layer,
    x: &Tensor,
    rank: usize,
    what: &str,
) -> Result<()> {
    if x.rank() != rank {
        return Err(Error::layer(
            layer.name(),
            format!(
                "expects a rank-{rank} input {what}, got shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// The channel count (axis 1) of an input shape, which weights need.
pub(crate) fn known_channels(layer: &dyn Layer, shape: &Shape) -> Result<usize> {
    match shape.get(1).copied().flatten() {
        Some(c) if c > 0 => Ok(c),
        _ => Err(Error::layer(
            layer.name(),
            format!(
                "needs a known, non-zero channel dimension (axis 1), got input shape {}",
                crate::layer::shape_str(shape)
            ),
        )),
    }
}

/// Checks that every entry of a size tuple is positive.
pub(crate) fn check_positive(layer: &dyn Layer, what: &str, v: &[usize]) -> Result<()> {
    if v.contains(&0) {
        return Err(Error::layer(
            layer.name(),
            format!("{what} must be positive, got {v:?}"),
        ));
    }
    Ok(())
}

/// Output length of a sliding window along one axis (`None` stays unknown). Errors when a
/// `valid` window does not fit.
pub(crate) fn window_out_len(
    layer: &dyn Layer,
    len: Option<usize>,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: PaddingMode,
) -> Result<Option<usize>> {
    let Some(len) = len else { return Ok(None) };
    let kd = dilation * (k - 1) + 1;
    match padding {
        PaddingMode::Same => Ok(Some(len.div_ceil(stride))),
        PaddingMode::Causal => Ok(Some((len - 1) / stride + 1)),
        PaddingMode::Valid => {
            if len < kd {
                Err(Error::layer(
                    layer.name(),
                    format!(
                        "input size {len} is smaller than the (dilated) window {kd} with 'valid' padding"
                    ),
                ))
            } else {
                Ok(Some((len - kd) / stride + 1))
            }
        }
    }
}

/// TensorFlow `SAME` padding `(before, after)` of one axis.
pub(crate) fn same_pads(len: usize, k: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let kd = dilation * (k - 1) + 1;
    let out = len.div_ceil(stride);
    let total = ((out - 1) * stride + kd).saturating_sub(len);
    (total / 2, total - total / 2)
}

/// Adds an activity penalty on `y` (Keras divides it by the batch size) in training mode.
pub(crate) fn activity_loss(ctx: &mut CallCtx, r: Option<Regularizer>, y: &Tensor) -> Result<()> {
    if let (Some(r), true) = (r, ctx.training) {
        let n = y.shape().first().copied().unwrap_or(1).max(1) as f32;
        ctx.add_loss(r.penalty(y)?.div_scalar(n)?);
    }
    Ok(())
}

/// Checks that a symbolic shape and a concrete tensor agree on the known dims (used by layers
/// whose weights fix the channel count).
pub(crate) fn check_channels(layer: &dyn Layer, x: &Tensor, channels: usize) -> Result<()> {
    if x.shape().get(1) != Some(&channels) {
        return Err(Error::layer(
            layer.name(),
            format!(
                "was built for {channels} input channels (axis 1), got input of shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// The options every weighted layer (Dense, the convolutions) shares: activation, bias switch,
/// kernel and bias initializers and regularizers, activity regularizer, with Keras defaults.
/// Layers hold one and forward their builder methods with [`weight_opts_builders`]. Its serde
/// form has the `kernel_*` keys (Dense and the convolutions flatten it into their configs).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct WeightOpts {
    pub activation: Activation,
    pub use_bias: bool,
    pub kernel_initializer: Initializer,
    pub bias_initializer: Initializer,
    pub kernel_regularizer: Option<Regularizer>,
    pub bias_regularizer: Option<Regularizer>,
    pub activity_regularizer: Option<Regularizer>,
}

impl Default for WeightOpts {
    fn default() -> Self {
        WeightOpts {
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
        }
    }
}

/// [`WeightOpts`] under Keras' key names of `DepthwiseConv2D`/`SeparableConv2D`
/// (`depthwise_initializer`, `depthwise_regularizer`), for their serde configs.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct DepthwiseOpts {
    activation: Activation,
    use_bias: bool,
    depthwise_initializer: Initializer,
    bias_initializer: Initializer,
    depthwise_regularizer: Option<Regularizer>,
    bias_regularizer: Option<Regularizer>,
    activity_regularizer: Option<Regularizer>,
}

impl Default for DepthwiseOpts {
    fn default() -> Self {
        WeightOpts::default().into()
    }
}

impl From<WeightOpts> for DepthwiseOpts {
    fn from(o: WeightOpts) -> Self {
        DepthwiseOpts {
            activation: o.activation,
            use_bias: o.use_bias,
            depthwise_initializer: o.kernel_initializer,
            bias_initializer: o.bias_initializer,
            depthwise_regularizer: o.kernel_regularizer,
            bias_regularizer: o.bias_regularizer,
            activity_regularizer: o.activity_regularizer,
        }
    }
}

impl From<DepthwiseOpts> for WeightOpts {
    fn from(o: DepthwiseOpts) -> Self {
        WeightOpts {
            activation: o.activation,
            use_bias: o.use_bias,
            kernel_initializer: o.depthwise_initializer,
            bias_initializer: o.bias_initializer,
            kernel_regularizer: o.depthwise_regularizer,
            bias_regularizer: o.bias_regularizer,
            activity_regularizer: o.activity_regularizer,
        }
    }
}

impl WeightOpts {
    /// A trainable kernel drawn from the kernel initializer, carrying the kernel regularizer.
    pub fn kernel_param(
        &self,
        name: &str,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Param> {
        let k = self
            .kernel_initializer
            .init_global(shape, fan_in, fan_out)?;
        Ok(Param::new(name, k, true).with_regularizer(self.kernel_regularizer))
    }

    /// The trainable bias (`None` without `use_bias`). Draw it after the kernel(s): the order
    /// of draws from the global generator is part of reproducible initialization.
    pub fn bias_param(&self, units: usize, fan_in: usize, fan_out: usize) -> Result<Option<Param>> {
        if !self.use_bias {
            return Ok(None);
        }
        let b = self
            .bias_initializer
            .init_global(&[units], fan_in, fan_out)?;
        Ok(Some(
            Param::new("bias", b, true).with_regularizer(self.bias_regularizer),
        ))
    }
}

/// The built weights among `params`, in order (what `Layer::weights` returns).
pub(crate) fn built_params(params: &[&Option<Param>]) -> Vec<Param> {
    params.iter().filter_map(|p| (*p).clone()).collect()
}

/// The builder methods of [`WeightOpts`] (plus `named`) for a layer with `name: String` and
/// `opts: WeightOpts` fields. `$kinit`/`$kreg` name the kernel's methods (`kernel_initializer`
/// or `depthwise_initializer`, ...) and `$kdoc` what the kernel is called in their docs.
macro_rules! weight_opts_builders {
    ($kinit:ident, $kreg:ident, $kdoc:literal) => {
        /// Sets the layer name.
        pub fn named(mut self, name: &str) -> Self {
            self.name = name.to_string();
            self
        }

        /// Sets the activation.
        pub fn activation(mut self, activation: $crate::Activation) -> Self {
            self.opts.activation = activation;
            self
        }

        /// Adds or removes the bias.
        pub fn use_bias(mut self, use_bias: bool) -> Self {
            self.opts.use_bias = use_bias;
            self
        }

        #[doc = concat!("Initializer of the ", $kdoc, ".")]
        pub fn $kinit(mut self, init: $crate::Initializer) -> Self {
            self.opts.kernel_initializer = init;
            self
        }

        /// Initializer of the bias.
        pub fn bias_initializer(mut self, init: $crate::Initializer) -> Self {
            self.opts.bias_initializer = init;
            self
        }

        #[doc = concat!("Penalises the ", $kdoc, ".")]
        pub fn $kreg(mut self, r: $crate::Regularizer) -> Self {
            self.opts.kernel_regularizer = Some(r);
            self
        }

        /// Penalises the bias.
        pub fn bias_regularizer(mut self, r: $crate::Regularizer) -> Self {
            self.opts.bias_regularizer = Some(r);
            self
        }

        /// Penalises the layer's output (divided by the batch size, like Keras).
        pub fn activity_regularizer(mut self, r: $crate::Regularizer) -> Self {
            self.opts.activity_regularizer = Some(r);
            self
        }
    };
}
pub(crate) use weight_opts_builders;
