//! `Dropout` and `SpatialDropout1D/2D/3D`: random zeroing in training mode.

use super::common::{check_rank, check_tensor_rank};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The saved config of `Dropout` and `SpatialDropout*` (Keras keys).
#[derive(Serialize, Deserialize)]
struct RateConfig {
    #[serde(default)]
    name: String,
    rate: f32,
}

fn check_rate(name: &str, rate: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::layer(
            name,
            format!("rate must be in [0, 1], got {rate}"),
        ));
    }
    Ok(())
}

/// Inverted dropout (Keras `Dropout`): in training mode each element is zeroed with
/// probability `rate` and the others scaled by `1 / (1 - rate)`; the identity in inference
/// mode. Masks come from the process-wide generator, so
/// [`ferrovision_tensor::rng::manual_seed`] makes runs reproducible.
pub struct Dropout {
    name: String,
    rate: f32,
}

impl Dropout {
    /// Dropout with probability `rate` (in `[0, 1]`; checked when the layer is built).
    pub fn new(rate: f32) -> Self {
        Dropout {
            name: String::new(),
            rate,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: RateConfig = from_config("layer", "Dropout", cfg)?;
        check_rate(&c.name, c.rate).map_err(|e| Error::config(format!("Dropout config: {e}")))?;
        Ok(Dropout::new(c.rate).named(&c.name))
    }
}

impl Layer for Dropout {
    fn class_name(&self) -> &'static str {
        "Dropout"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn build(&mut self, _input_shapes: &[Shape]) -> Result<()> {
        check_rate(&self.name, self.rate)
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        Ok(single_shape(self, input_shapes)?.clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_rate(&self.name, self.rate)?;
        Ok(x.dropout_global(self.rate, ctx.training)?)
    }

    fn config(&self) -> Value {
        to_config(&RateConfig {
            name: self.name.clone(),
            rate: self.rate,
        })
    }
}

/// Channel dropout (Keras `SpatialDropout2D`): in training mode whole channels of each sample
/// of `[N, C, *spatial]` are zeroed with probability `rate`, the others scaled by
/// `1 / (1 - rate)`; the identity in inference mode. Process-wide generator, like
/// [`Dropout`].
pub struct SpatialDropout<const R: usize> {
    name: String,
    rate: f32,
}

/// Drops channels of `[N, C, L]`.
pub type SpatialDropout1D = SpatialDropout<1>;
/// Drops channels of `[N, C, H, W]`.
pub type SpatialDropout2D = SpatialDropout<2>;
/// Drops channels of `[N, C, D, H, W]`.
pub type SpatialDropout3D = SpatialDropout<3>;

fn sd_class(r: usize) -> &'static str {
    match r {
        1 => "SpatialDropout1D",
        2 => "SpatialDropout2D",
        _ => "SpatialDropout3D",
    }
}

impl<const R: usize> SpatialDropout<R> {
    /// Channel dropout with probability `rate`.
    pub fn new(rate: f32) -> Self {
        SpatialDropout {
            name: String::new(),
            rate,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: RateConfig = from_config("layer", sd_class(R), cfg)?;
        check_rate(&c.name, c.rate)
            .map_err(|e| Error::config(format!("{} config: {e}", sd_class(R))))?;
        Ok(Self::new(c.rate).named(&c.name))
    }
}

impl<const R: usize> Layer for SpatialDropout<R> {
    fn class_name(&self) -> &'static str {
        sd_class(R)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        check_rate(&self.name, self.rate)?;
        check_rank(
            self,
            single_shape(self, input_shapes)?,
            R + 2,
            "[N, C, *spatial]",
        )
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        Ok(shape.clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        check_rate(&self.name, self.rate)?;
        Ok(x.spatial_dropout_global(self.rate, ctx.training)?)
    }

    fn config(&self) -> Value {
        to_config(&RateConfig {
            name: self.name.clone(),
            rate: self.rate,
        })
    }
}
