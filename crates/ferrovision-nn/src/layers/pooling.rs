//! `MaxPooling1D/2D/3D` and `AveragePooling1D/2D/3D`.

use super::common::{
    check_positive, check_rank, check_tensor_rank, same_pads, Dims, LayerPadding, PaddingMode,
};
use crate::layer::{shape_of, single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::{no_grad, PadMode, PoolOpts, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The saved config of the poolings (Keras keys; `strides` defaults to `pool_size`).
#[derive(Serialize, Deserialize)]
struct PoolingConfig<const R: usize> {
    #[serde(default)]
    name: String,
    pool_size: Dims<R>,
    #[serde(default)]
    strides: Option<Dims<R>>,
    #[serde(default)]
    padding: LayerPadding<R>,
    /// PyTorch's `ceil_mode` (not a Keras key; absent in older saves and Keras configs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ceil_mode: bool,
}

/// Max (`MAX = true`) or average pooling over `R` spatial axes of `[N, C, *spatial]` (Keras
/// `MaxPooling2D` / `AveragePooling2D`, channels-first). Strides default to the pool size.
/// With `same` padding, max pooling ignores the padding and average pooling divides by the
/// number of real elements in each window (TensorFlow semantics). With explicit padding
/// ([`Pooling::padding_explicit`], PyTorch's `padding=`, at most half the window) the engine
/// pads implicitly without copying the input: max pooling ignores the padding and average
/// pooling counts the padded zeros in the divisor (PyTorch's default `count_include_pad`).
/// [`Pooling::ceil_mode`] rounds the output size up as PyTorch's `ceil_mode=True` (GoogLeNet's
/// pools): a last, partial window is kept when it starts inside the input or the left padding.
///
/// Use the aliases [`MaxPooling1D`], [`MaxPooling2D`], [`MaxPooling3D`],
/// [`AveragePooling1D`], [`AveragePooling2D`], [`AveragePooling3D`].
pub struct Pooling<const R: usize, const MAX: bool> {
    name: String,
    pool_size: [usize; R],
    strides: Option<[usize; R]>,
    padding: LayerPadding<R>,
    ceil_mode: bool,
}

/// 1-d max pooling over `[N, C, L]`.
pub type MaxPooling1D = Pooling<1, true>;
/// 2-d max pooling over `[N, C, H, W]`.
pub type MaxPooling2D = Pooling<2, true>;
/// 3-d max pooling over `[N, C, D, H, W]`.
pub type MaxPooling3D = Pooling<3, true>;
/// 1-d average pooling over `[N, C, L]`.
pub type AveragePooling1D = Pooling<1, false>;
/// 2-d average pooling over `[N, C, H, W]`.
pub type AveragePooling2D = Pooling<2, false>;
/// 3-d average pooling over `[N, C, D, H, W]`.
pub type AveragePooling3D = Pooling<3, false>;

fn class(r: usize, max: bool) -> &'static str {
    match (r, max) {
        (1, true) => "MaxPooling1D",
        (2, true) => "MaxPooling2D",
        (_, true) => "MaxPooling3D",
        (1, false) => "AveragePooling1D",
        (2, false) => "AveragePooling2D",
        (_, false) => "AveragePooling3D",
    }
}

impl<const R: usize, const MAX: bool> Pooling<R, MAX> {
    /// Pooling with a `pool_size` window, strides = pool size, `valid` padding.
    pub fn new(pool_size: impl Into<Dims<R>>) -> Self {
        Pooling {
            name: String::new(),
            pool_size: pool_size.into().0,
            strides: None,
            padding: LayerPadding::default(),
            ceil_mode: false,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Step between windows (default: the pool size).
    pub fn strides(mut self, strides: impl Into<Dims<R>>) -> Self {
        self.strides = Some(strides.into().0);
        self
    }

    /// `Valid` or `Same`.
    pub fn padding(mut self, padding: PaddingMode) -> Self {
        self.padding = LayerPadding::Mode(padding);
        self
    }

    /// PyTorch's `padding=`: `p` on both sides of every spatial axis (one number or one per
    /// axis), at most half the pool size, replacing the Keras mode. Saved as
    /// `"padding": [p, ...]`.
    pub fn padding_explicit(mut self, p: impl Into<Dims<R>>) -> Self {
        self.padding = LayerPadding::Explicit(p.into().0);
        self
    }

    /// PyTorch's `ceil_mode`: the output size rounds up, keeping a last partial window that
    /// starts inside the input or the left padding (with `valid` or explicit padding; `same`
    /// already covers every input element). Saved as `"ceil_mode": true`.
    pub fn ceil_mode(mut self, yes: bool) -> Self {
        self.ceil_mode = yes;
        self
    }

    fn stride(&self) -> [usize; R] {
        self.strides.unwrap_or(self.pool_size)
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: PoolingConfig<R> = from_config("layer", class(R, MAX), cfg)?;
        let mut l = Self::new(c.pool_size);
        l.name = c.name;
        l.strides = c.strides.map(|d| d.0);
        l.padding = c.padding;
        l.ceil_mode = c.ceil_mode;
        l.validate()
            .map_err(|e| Error::config(format!("{} config: {e}", class(R, MAX))))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        check_positive(self, "pool_size", &self.pool_size)?;
        check_positive(self, "strides", &self.stride())?;
        match self.padding {
            LayerPadding::Mode(PaddingMode::Causal) => Err(Error::layer(
                &self.name,
                "padding must be 'valid', 'same' or explicit amounts",
            )),
            LayerPadding::Mode(PaddingMode::Same) if self.ceil_mode => Err(Error::layer(
                &self.name,
                "ceil_mode needs 'valid' or explicit padding ('same' already keeps every input)",
            )),
            // PyTorch's rule (and the engine's): a window never lies entirely in the padding.
            LayerPadding::Explicit(p)
                if p.iter().zip(&self.pool_size).any(|(&p, &k)| 2 * p > k) =>
            {
                Err(Error::layer(
                    &self.name,
                    format!(
                        "explicit padding {p:?} must be at most half the pool size {:?}",
                        self.pool_size
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Output length along spatial axis `axis` in ceil mode (PyTorch's `pooling_output_shape`,
    /// which the engine applies too): `ceil((len + 2p - k) / s) + 1`, minus the last window when
    /// it would start beyond the input and the left padding.
    fn ceil_out_len(&self, len: Option<usize>, axis: usize) -> Result<Option<usize>> {
        let Some(len) = len else { return Ok(None) };
        let p = match self.padding {
            LayerPadding::Explicit(p) => p[axis],
            LayerPadding::Mode(_) => 0,
        };
        let (k, s) = (self.pool_size[axis], self.stride()[axis]);
        let (len_i, p_i, k_i, s_i) = (len as i64, p as i64, k as i64, s as i64);
        let mut out = (len_i + 2 * p_i - k_i + s_i - 1).div_euclid(s_i) + 1;
        if (out - 1) * s_i >= len_i + p_i {
            out -= 1;
        }
        if out < 1 {
            return Err(Error::layer(
                &self.name,
                format!(
                    "input size {len} padded by {p} on both sides is too small for the pool size {k} (ceil mode)"
                ),
            ));
        }
        Ok(Some(out as usize))
    }

    fn pool(&self, x: &Tensor, opts: &PoolOpts) -> Result<Tensor> {
        Ok(match (R, MAX) {
            (1, true) => x.max_pool1d(opts)?,
            (2, true) => x.max_pool2d(opts)?,
            (_, true) => x.max_pool3d(opts)?,
            (1, false) => x.avg_pool1d(opts)?,
            (2, false) => x.avg_pool2d(opts)?,
            (_, false) => x.avg_pool3d(opts)?,
        })
    }
}

impl<const R: usize, const MAX: bool> Layer for Pooling<R, MAX> {
    fn class_name(&self) -> &'static str {
        class(R, MAX)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.validate()?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let stride = self.stride();
        let mut out = vec![shape[0], shape[1]];
        for i in 0..R {
            if self.ceil_mode {
                out.push(self.ceil_out_len(shape[2 + i], i)?);
                continue;
            }
            out.push(self.padding.out_len(
                self,
                i,
                shape[2 + i],
                self.pool_size[i],
                stride[i],
                1,
            )?);
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        self.output_shape(&[shape_of(x)])?;
        let stride = self.stride();
        let opts = PoolOpts::new(&self.pool_size)
            .stride(&stride)
            .ceil_mode(self.ceil_mode);
        match self.padding {
            LayerPadding::Mode(PaddingMode::Valid) => return self.pool(x, &opts),
            LayerPadding::Explicit(p) => return self.pool(x, &opts.padding(&p)),
            LayerPadding::Mode(_) => {}
        }
        let pads: Vec<(usize, usize)> = (0..R)
            .map(|i| same_pads(x.shape()[2 + i], self.pool_size[i], stride[i], 1))
            .collect();
        // Symmetric padding within half the window: the engine pads implicitly (-inf for max,
        // excluded from the divisor for average).
        if pads
            .iter()
            .zip(&self.pool_size)
            .all(|(&(b, a), &k)| b == a && 2 * b <= k)
        {
            let p: Vec<usize> = pads.iter().map(|p| p.0).collect();
            return self.pool(x, &opts.padding(&p).count_include_pad(false));
        }
        // TensorFlow puts the odd padding element at the end, which the engine's symmetric
        // padding cannot express: pad explicitly, then pool without padding.
        if MAX {
            let xp = x.pad(&pads, PadMode::Constant(f32::NEG_INFINITY))?;
            self.pool(&xp, &opts)
        } else {
            // Mean over the real elements = mean over the zero-padded window divided by the
            // fraction of real elements in it (a constant, computed without gradient).
            let xp = x.pad(&pads, PadMode::Constant(0.0))?;
            let sums = self.pool(&xp, &opts)?;
            let mut ones_shape = vec![1, 1];
            ones_shape.extend_from_slice(&x.shape()[2..]);
            let frac = no_grad(|| -> Result<Tensor> {
                let ones = Tensor::ones(&ones_shape).pad(&pads, PadMode::Constant(0.0))?;
                self.pool(&ones, &opts)
            })?;
            Ok(sums.div(&frac)?)
        }
    }

    fn config(&self) -> Value {
        to_config(&PoolingConfig::<R> {
            name: self.name.clone(),
            pool_size: Dims(self.pool_size),
            strides: Some(Dims(self.stride())),
            padding: self.padding,
            ceil_mode: self.ceil_mode,
        })
    }
}
