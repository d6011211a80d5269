//! `UpSampling2D`: repeats (nearest) or interpolates (bilinear) rows and columns.

use super::common::{check_positive, check_rank, check_tensor_rank, Dims};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How [`UpSampling2D`] fills the new pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Each pixel repeated `size` times (Keras default).
    #[default]
    Nearest,
    /// Bilinear interpolation with half-pixel centres (TensorFlow `resize(..., "bilinear")`,
    /// PyTorch `align_corners=False`).
    Bilinear,
}

impl Interpolation {
    /// The Keras name.
    pub fn as_str(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
        }
    }

    /// Parses a Keras name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(Interpolation::Nearest),
            "bilinear" => Ok(Interpolation::Bilinear),
            other => Err(Error::config(format!(
                "unknown interpolation '{other}'; expected 'nearest' or 'bilinear'"
            ))),
        }
    }
}

/// Upsamples `[N, C, H, W]` by integer factors `size = (fh, fw)` (Keras `UpSampling2D`,
/// default `(2, 2)`, nearest).
pub struct UpSampling2D {
    name: String,
    size: [usize; 2],
    interpolation: Interpolation,
}

/// Saved as its Keras name.
impl Serialize for Interpolation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read from a Keras name.
impl<'de> Deserialize<'de> for Interpolation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Interpolation::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// `UpSampling2D`'s saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct UpSamplingConfig {
    #[serde(default)]
    name: String,
    #[serde(default = "two")]
    size: Dims<2>,
    #[serde(default)]
    interpolation: Interpolation,
}

fn two() -> Dims<2> {
    Dims([2, 2])
}

impl UpSampling2D {
    /// Upsampling by `size` (one factor or one per axis), nearest neighbour.
    pub fn new(size: impl Into<Dims<2>>) -> Self {
        UpSampling2D {
            name: String::new(),
            size: size.into().0,
            interpolation: Interpolation::Nearest,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Nearest or bilinear.
    pub fn interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: UpSamplingConfig = from_config("layer", "UpSampling2D", cfg)?;
        let mut l = Self::new(c.size).named(&c.name);
        l.interpolation = c.interpolation;
        check_positive(&l, "size", &l.size)
            .map_err(|e| Error::config(format!("UpSampling2D config: {e}")))?;
        Ok(l)
    }
}

impl Layer for UpSampling2D {
    fn class_name(&self) -> &'static str {
        "UpSampling2D"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        check_positive(self, "size", &self.size)?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        Ok(vec![
            shape[0],
            shape[1],
            shape[2].map(|h| h * self.size[0]),
            shape[3].map(|w| w * self.size[1]),
        ])
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, 4, "[N, C, H, W]")?;
        check_positive(self, "size", &self.size)?;
        let out = [x.shape()[2] * self.size[0], x.shape()[3] * self.size[1]];
        Ok(match self.interpolation {
            Interpolation::Nearest => x.upsample_nearest2d(&out)?,
            Interpolation::Bilinear => x.upsample_bilinear2d(&out, false)?,
        })
    }

    fn config(&self) -> Value {
        to_config(&UpSamplingConfig {
            name: self.name.clone(),
            size: Dims(self.size),
            interpolation: self.interpolation,
        })
    }
}
