//! `ZeroPadding1D/2D/3D` and `Cropping1D/2D/3D`: add or remove borders of spatial axes.

use super::common::{check_rank, check_tensor_rank, Dims};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::{PadMode, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `(before, after)` amounts for each of the `R` spatial axes: saved as `R` pairs, read from
/// one integer, `R` integers or `R` `[before, after]` pairs (Keras).
struct Pairs<const R: usize>([(usize, usize); R]);

impl<const R: usize> Serialize for Pairs<R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let v: Vec<[usize; 2]> = self.0.iter().map(|&(a, b)| [a, b]).collect();
        v.serialize(s)
    }
}

impl<'de, const R: usize> Deserialize<'de> for Pairs<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let err = || {
            serde::de::Error::custom(format!(
                "expected an integer, {R} integers or {R} [before, after] pairs, got {v}"
            ))
        };
        if let Some(p) = v.as_u64() {
            return Ok(Pairs([(p as usize, p as usize); R]));
        }
        let arr = v.as_array().filter(|a| a.len() == R).ok_or_else(err)?;
        let mut out = [(0, 0); R];
        for (o, e) in out.iter_mut().zip(arr) {
            *o = if let Some(p) = e.as_u64() {
                (p as usize, p as usize)
            } else {
                match e.as_array().map(|a| a.as_slice()) {
                    Some([a, b]) => (
                        a.as_u64().ok_or_else(err)? as usize,
                        b.as_u64().ok_or_else(err)? as usize,
                    ),
                    _ => return Err(err()),
                }
            };
        }
        Ok(Pairs(out))
    }
}

/// `ZeroPadding*`'s saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct PaddingConfig<const R: usize> {
    #[serde(default)]
    name: String,
    padding: Pairs<R>,
}

/// `Cropping*`'s saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct CroppingConfig<const R: usize> {
    #[serde(default)]
    name: String,
    cropping: Pairs<R>,
}

/// Zero borders around the `R` spatial axes of `[N, C, *spatial]` (Keras `ZeroPadding2D`,
/// channels-first; default 1 on every side).
pub struct ZeroPadding<const R: usize> {
    name: String,
    padding: [(usize, usize); R],
}

/// Pads `L` of `[N, C, L]`.
pub type ZeroPadding1D = ZeroPadding<1>;
/// Pads `H, W` of `[N, C, H, W]`.
pub type ZeroPadding2D = ZeroPadding<2>;
/// Pads `D, H, W` of `[N, C, D, H, W]`.
pub type ZeroPadding3D = ZeroPadding<3>;

fn zp_class(r: usize) -> &'static str {
    match r {
        1 => "ZeroPadding1D",
        2 => "ZeroPadding2D",
        _ => "ZeroPadding3D",
    }
}

impl<const R: usize> ZeroPadding<R> {
    /// The same padding on both sides of each axis (one amount or one per axis).
    pub fn new(padding: impl Into<Dims<R>>) -> Self {
        let p = padding.into().0;
        ZeroPadding {
            name: String::new(),
            padding: p.map(|v| (v, v)),
        }
    }

    /// `(before, after)` per axis: `[(top, bottom), (left, right)]` in 2-d.
    pub fn asymmetric(padding: [(usize, usize); R]) -> Self {
        ZeroPadding {
            name: String::new(),
            padding,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: PaddingConfig<R> = from_config("layer", zp_class(R), cfg)?;
        Ok(Self::asymmetric(c.padding.0).named(&c.name))
    }
}

impl<const R: usize> Layer for ZeroPadding<R> {
    fn class_name(&self) -> &'static str {
        zp_class(R)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let mut out = shape.clone();
        for (i, &(a, b)) in self.padding.iter().enumerate() {
            out[2 + i] = out[2 + i].map(|d| d + a + b);
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        Ok(x.pad(&self.padding, PadMode::Constant(0.0))?)
    }

    fn config(&self) -> Value {
        to_config(&PaddingConfig::<R> {
            name: self.name.clone(),
            padding: Pairs(self.padding),
        })
    }
}

/// Removes borders of the `R` spatial axes of `[N, C, *spatial]` (Keras `Cropping2D`,
/// channels-first).
pub struct Cropping<const R: usize> {
    name: String,
    cropping: [(usize, usize); R],
}

/// Crops `L` of `[N, C, L]`.
pub type Cropping1D = Cropping<1>;
/// Crops `H, W` of `[N, C, H, W]`.
pub type Cropping2D = Cropping<2>;
/// Crops `D, H, W` of `[N, C, D, H, W]`.
pub type Cropping3D = Cropping<3>;

fn crop_class(r: usize) -> &'static str {
    match r {
        1 => "Cropping1D",
        2 => "Cropping2D",
        _ => "Cropping3D",
    }
}

impl<const R: usize> Cropping<R> {
    /// The same amount removed from both sides of each axis (one amount or one per axis).
    pub fn new(cropping: impl Into<Dims<R>>) -> Self {
        let p = cropping.into().0;
        Cropping {
            name: String::new(),
            cropping: p.map(|v| (v, v)),
        }
    }

    /// `(before, after)` per axis: `[(top, bottom), (left, right)]` in 2-d.
    pub fn asymmetric(cropping: [(usize, usize); R]) -> Self {
        Cropping {
            name: String::new(),
            cropping,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: CroppingConfig<R> = from_config("layer", crop_class(R), cfg)?;
        Ok(Self::asymmetric(c.cropping.0).named(&c.name))
    }

    fn cropped(&self, axis: usize, len: usize) -> Result<usize> {
        let (a, b) = self.cropping[axis];
        if a + b >= len {
            return Err(Error::layer(
                &self.name,
                format!(
                    "cropping ({a}, {b}) removes all {len} elements of axis {}",
                    axis + 2
                ),
            ));
        }
        Ok(len - a - b)
    }
}

impl<const R: usize> Layer for Cropping<R> {
    fn class_name(&self) -> &'static str {
        crop_class(R)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let mut out = shape.clone();
        for i in 0..R {
            out[2 + i] = match shape[2 + i] {
                Some(d) => Some(self.cropped(i, d)?),
                None => None,
            };
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        let mut y = x.clone();
        for i in 0..R {
            let len = self.cropped(i, x.shape()[2 + i])?;
            y = y.narrow(2 + i as isize, self.cropping[i].0, len)?;
        }
        Ok(y)
    }

    fn config(&self) -> Value {
        to_config(&CroppingConfig::<R> {
            name: self.name.clone(),
            cropping: Pairs(self.cropping),
        })
    }
}
