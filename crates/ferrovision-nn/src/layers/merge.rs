//! Merge layers: `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum` (elementwise
//! over several inputs, NumPy broadcasting) and `Concatenate`.

use super::common::NameConfig;
use crate::layer::{shape_str, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Concatenate`'s saved config (Keras keys; `axis` defaults to 1, the channels).
#[derive(Serialize, Deserialize)]
struct ConcatenateConfig {
    #[serde(default)]
    name: String,
    #[serde(default = "channel_axis")]
    axis: isize,
}

fn channel_axis() -> isize {
    1
}

/// The broadcast of two symbolic shapes (right-aligned, like NumPy). An unknown size paired
/// with anything but 1 stays unknown (Keras).
fn broadcast(layer: &dyn Layer, a: &Shape, b: &Shape) -> Result<Shape> {
    let r = a.len().max(b.len());
    let mut out = vec![None; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = (i + a.len()).checked_sub(r).map_or(Some(1), |j| a[j]);
        let db = (i + b.len()).checked_sub(r).map_or(Some(1), |j| b[j]);
        *o = match (da, db) {
            (Some(1), d) | (d, Some(1)) => d,
            (Some(x), Some(y)) if x == y => Some(x),
            (Some(_), Some(_)) => {
                return Err(Error::layer(
                    layer.name(),
                    format!(
                        "inputs of shapes {} and {} cannot be broadcast together",
                        shape_str(a),
                        shape_str(b)
                    ),
                ))
            }
            _ => None,
        };
    }
    Ok(out)
}

fn check_count(layer: &dyn Layer, n: usize, exact: Option<usize>) -> Result<()> {
    match exact {
        Some(k) if n != k => Err(Error::layer(
            layer.name(),
            format!("expects exactly {k} inputs, got {n}"),
        )),
        None if n == 0 => Err(Error::layer(
            layer.name(),
            "expects at least 1 input, got 0",
        )),
        _ => Ok(()),
    }
}

macro_rules! merge_layer {
    ($(#[$doc:meta])* $ty:ident, $class:literal, $exact:expr, |$a:ident, $b:ident| $op:expr, $finish:expr) => {
        $(#[$doc])*
        #[derive(Default)]
        pub struct $ty {
            name: String,
        }

        impl $ty {
            /// A new merge layer.
            pub fn new() -> Self {
                Self::default()
            }

            /// Sets the layer name.
            pub fn named(mut self, name: &str) -> Self {
                self.name = name.to_string();
                self
            }

            /// Rebuilds from [`Layer::config`].
            pub fn from_config(cfg: &Value) -> Result<Self> {
                let c: NameConfig = from_config("layer", $class, cfg)?;
                Ok(Self::new().named(&c.name))
            }
        }

        impl Layer for $ty {
            fn class_name(&self) -> &'static str {
                $class
            }

            fn name(&self) -> &str {
                &self.name
            }

            fn set_name(&mut self, name: String) {
                self.name = name;
            }

            fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
                check_count(self, input_shapes.len(), $exact)?;
                let mut out = input_shapes[0].clone();
                for s in &input_shapes[1..] {
                    out = broadcast(self, &out, s)?;
                }
                Ok(out)
            }

            fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
                check_count(self, inputs.len(), $exact)?;
                let shapes: Vec<Shape> = inputs.iter().map(crate::layer::shape_of).collect();
                self.output_shape(&shapes)?;
                let mut acc = inputs[0].clone();
                for $b in &inputs[1..] {
                    let $a = &acc;
                    acc = $op?;
                }
                let finish: fn(Tensor, usize) -> ferrovision_tensor::Result<Tensor> = $finish;
                Ok(finish(acc, inputs.len())?)
            }

            fn config(&self) -> Value {
                to_config(&NameConfig {
                    name: self.name.clone(),
                })
            }
        }
    };
}

merge_layer!(
    /// Elementwise sum of the inputs (Keras `Add`).
    Add, "Add", None, |a, b| a.add(b), |t, _| Ok(t)
);
merge_layer!(
    /// `inputs[0] - inputs[1]` (Keras `Subtract`; exactly two inputs).
    Subtract, "Subtract", Some(2), |a, b| a.sub(b), |t, _| Ok(t)
);
merge_layer!(
    /// Elementwise product of the inputs (Keras `Multiply`).
    Multiply, "Multiply", None, |a, b| a.mul(b), |t, _| Ok(t)
);
merge_layer!(
    /// Elementwise mean of the inputs (Keras `Average`).
    Average, "Average", None, |a, b| a.add(b), |t, n| if n == 1 { Ok(t) } else { t.div_scalar(n as f32) }
);
merge_layer!(
    /// Elementwise maximum of the inputs (Keras `Maximum`).
    Maximum, "Maximum", None, |a, b| a.maximum(b), |t, _| Ok(t)
);
merge_layer!(
    /// Elementwise minimum of the inputs (Keras `Minimum`).
    Minimum, "Minimum", None, |a, b| a.minimum(b), |t, _| Ok(t)
);

/// Joins the inputs along `axis` (default 1: the channel axis of channels-first data and the
/// feature axis of `[N, F]`; Keras' default `-1` is the channel axis of channels-last data).
/// Every other axis must match.
pub struct Concatenate {
    name: String,
    axis: isize,
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate::new(1)
    }
}

impl Concatenate {
    /// Concatenation along `axis` (negative counts from the end; not the batch axis).
    pub fn new(axis: isize) -> Self {
        Concatenate {
            name: String::new(),
            axis,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: ConcatenateConfig = from_config("layer", "Concatenate", cfg)?;
        Ok(Concatenate::new(c.axis).named(&c.name))
    }

    fn axis_index(&self, rank: usize) -> Result<usize> {
        let r = rank as isize;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if a < 1 || a >= r {
            return Err(Error::layer(
                &self.name,
                format!(
                    "axis {} is not a non-batch axis of rank-{rank} inputs",
                    self.axis
                ),
            ));
        }
        Ok(a as usize)
    }
}

impl Layer for Concatenate {
    fn class_name(&self) -> &'static str {
        "Concatenate"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        check_count(self, input_shapes.len(), None)?;
        let first = &input_shapes[0];
        let ax = self.axis_index(first.len())?;
        let mut out = first.clone();
        for s in &input_shapes[1..] {
            let mismatch = s.len() != first.len()
                || s.iter()
                    .zip(&out)
                    .enumerate()
                    .any(|(i, (a, b))| i != ax && matches!((a, b), (Some(x), Some(y)) if x != y));
            if mismatch {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "inputs must match on every axis but {ax}: got {} and {}",
                        shape_str(first),
                        shape_str(s)
                    ),
                ));
            }
            for (i, (o, d)) in out.iter_mut().zip(s).enumerate() {
                *o = if i == ax {
                    match (*o, *d) {
                        (Some(x), Some(y)) => Some(x + y),
                        _ => None,
                    }
                } else {
                    o.or(*d)
                };
            }
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let shapes: Vec<Shape> = inputs.iter().map(crate::layer::shape_of).collect();
        self.output_shape(&shapes)?;
        let ax = self.axis_index(inputs[0].rank())?;
        let refs: Vec<&Tensor> = inputs.iter().collect();
        Ok(Tensor::cat(&refs, ax as isize)?)
    }

    fn config(&self) -> Value {
        to_config(&ConcatenateConfig {
            name: self.name.clone(),
            axis: self.axis,
        })
    }
}
