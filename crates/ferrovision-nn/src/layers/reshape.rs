//! `Reshape`: a new per-sample shape (one entry may be `-1`).

use crate::layer::{shape_str, single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Reshape`'s saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct ReshapeConfig {
    #[serde(default)]
    name: String,
    target_shape: Vec<isize>,
}

/// Reshapes each sample to `target_shape` (batch axis excluded, like Keras); at most one entry
/// may be `-1`, inferred from the element count.
pub struct Reshape {
    name: String,
    target_shape: Vec<isize>,
}

impl Reshape {
    /// Reshape to `target_shape` (e.g. `&[16, -1]`).
    pub fn new(target_shape: &[isize]) -> Self {
        Reshape {
            name: String::new(),
            target_shape: target_shape.to_vec(),
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: ReshapeConfig = from_config("layer", "Reshape", cfg)?;
        let l = Reshape::new(&c.target_shape).named(&c.name);
        l.validate()
            .map_err(|e| Error::config(format!("Reshape config: {e}")))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        let infer = self.target_shape.iter().filter(|&&d| d == -1).count();
        if infer > 1 || self.target_shape.iter().any(|&d| d < -1) {
            return Err(Error::layer(
                &self.name,
                format!(
                    "target_shape {:?} may hold at most one -1 and no other negative size",
                    self.target_shape
                ),
            ));
        }
        Ok(())
    }

    /// The per-sample output shape for a per-sample input element count (`None` = unknown).
    fn resolve(&self, count: Option<usize>) -> Result<Vec<Option<usize>>> {
        self.validate()?;
        let known: usize = self
            .target_shape
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let has_infer = self.target_shape.contains(&-1);
        let inferred = match count {
            None => None,
            Some(n) => {
                let ok = if has_infer {
                    known > 0 && n.is_multiple_of(known)
                } else {
                    known == n
                };
                if !ok {
                    return Err(Error::layer(
                        &self.name,
                        format!(
                            "cannot reshape {n} elements per sample to {:?}",
                            self.target_shape
                        ),
                    ));
                }
                Some(n / known.max(1))
            }
        };
        Ok(self
            .target_shape
            .iter()
            .map(|&d| if d == -1 { inferred } else { Some(d as usize) })
            .collect())
    }
}

impl Layer for Reshape {
    fn class_name(&self) -> &'static str {
        "Reshape"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        if shape.is_empty() {
            return Err(Error::layer(
                &self.name,
                format!("needs an input with a batch axis, got {}", shape_str(shape)),
            ));
        }
        let count = shape[1..].iter().try_fold(1usize, |a, d| d.map(|d| a * d));
        let mut out = vec![shape[0]];
        out.extend(self.resolve(count)?);
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        if x.rank() == 0 {
            return Err(Error::layer(&self.name, "needs an input with a batch axis"));
        }
        let count: usize = x.shape()[1..].iter().product();
        let mut dims = vec![x.shape()[0]];
        dims.extend(
            self.resolve(Some(count))?
                .into_iter()
                .map(|d| d.unwrap_or(0)),
        );
        Ok(x.reshape(&dims)?)
    }

    fn config(&self) -> Value {
        to_config(&ReshapeConfig {
            name: self.name.clone(),
            target_shape: self.target_shape.clone(),
        })
    }
}
