//! `Permute`: reorders the non-batch axes.

use crate::layer::{shape_str, single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Permute`'s saved config (Keras keys).
#[derive(Serialize, Deserialize)]
struct PermuteConfig {
    #[serde(default)]
    name: String,
    dims: Vec<usize>,
}

/// Permutes the axes of each sample. `dims` are 1-based and exclude the batch axis, like
/// Keras: `Permute::new(&[2, 1])` swaps the two axes of a `[N, A, B]` input.
pub struct Permute {
    name: String,
    dims: Vec<usize>,
}

impl Permute {
    /// Permutation `dims` of `1..=rank-1`.
    pub fn new(dims: &[usize]) -> Self {
        Permute {
            name: String::new(),
            dims: dims.to_vec(),
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: PermuteConfig = from_config("layer", "Permute", cfg)?;
        let l = Permute::new(&c.dims).named(&c.name);
        l.validate()
            .map_err(|e| Error::config(format!("Permute config: {e}")))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        let mut sorted = self.dims.clone();
        sorted.sort_unstable();
        if sorted != (1..=self.dims.len()).collect::<Vec<_>>() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "dims {:?} must be a permutation of 1..={} (1-based, batch axis excluded)",
                    self.dims,
                    self.dims.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        self.validate()?;
        if rank != self.dims.len() + 1 {
            return Err(Error::layer(
                &self.name,
                format!(
                    "dims {:?} need a rank-{} input (batch axis included), got rank {rank}",
                    self.dims,
                    self.dims.len() + 1
                ),
            ));
        }
        Ok(())
    }
}

impl Layer for Permute {
    fn class_name(&self) -> &'static str {
        "Permute"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.check_rank(shape.len()).map_err(|e| match e {
            Error::Layer { layer, msg } => Error::Layer {
                layer,
                msg: format!("{msg} {}", shape_str(shape)),
            },
            e => e,
        })?;
        let mut out = vec![shape[0]];
        out.extend(self.dims.iter().map(|&d| shape[d]));
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        self.check_rank(x.rank())?;
        let mut perm = vec![0];
        perm.extend_from_slice(&self.dims);
        Ok(x.permute(&perm)?)
    }

    fn config(&self) -> Value {
        to_config(&PermuteConfig {
            name: self.name.clone(),
            dims: self.dims.clone(),
        })
    }
}
