//! `AdaptiveAveragePooling2D`: average pooling to a fixed output size, whatever the input size
//! (Keras 3 `AdaptiveAveragePooling2D`, PyTorch `AdaptiveAvgPool2d`).
//!
//! Output cell `(i, j)` of an `H x W` input pooled to `OH x OW` is the mean of rows
//! `floor(i*H/OH) .. ceil((i+1)*H/OH)` and columns `floor(j*W/OW) .. ceil((j+1)*W/OW)`
//! (PyTorch's bins, which Keras 3 follows): equal windows when the sizes divide, overlapping
//! ones when they don't, and a replicated input cell when the output is larger than the input
//! (VGG's `AdaptiveAvgPool2d((7, 7))` on a 1x1 map). The engine op is
//! [`Tensor::adaptive_avg_pool2d`].

use super::common::{check_positive, check_rank, check_tensor_rank, Dims};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The saved config (Keras keys; `data_format` is always channels-first here).
#[derive(Serialize, Deserialize)]
struct AdaptivePoolingConfig {
    #[serde(default)]
    name: String,
    output_size: Dims<2>,
}

/// Average pooling of `[N, C, H, W]` to `[N, C, OH, OW]` for any `H, W` (see the module
/// header for the bins).
pub struct AdaptiveAveragePooling2D {
    name: String,
    output_size: [usize; 2],
}

impl AdaptiveAveragePooling2D {
    /// Pooling to `output_size` (one number for both axes, or `[OH, OW]`).
    pub fn new(output_size: impl Into<Dims<2>>) -> Self {
        AdaptiveAveragePooling2D {
            name: String::new(),
            output_size: output_size.into().0,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: AdaptivePoolingConfig = from_config("layer", "AdaptiveAveragePooling2D", cfg)?;
        let l = Self::new(c.output_size).named(&c.name);
        check_positive(&l, "output_size", &l.output_size)
            .map_err(|e| Error::config(format!("AdaptiveAveragePooling2D config: {e}")))?;
        Ok(l)
    }
}

impl Layer for AdaptiveAveragePooling2D {
    fn class_name(&self) -> &'static str {
        "AdaptiveAveragePooling2D"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        check_positive(self, "output_size", &self.output_size)?;
        check_rank(self, shape, 4, "[N, C, H, W]")?;
        if shape[2] == Some(0) || shape[3] == Some(0) {
            return Err(Error::layer(
                &self.name,
                format!("empty input {shape:?} has nothing to average"),
            ));
        }
        Ok(vec![
            shape[0],
            shape[1],
            Some(self.output_size[0]),
            Some(self.output_size[1]),
        ])
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, 4, "[N, C, H, W]")?;
        Ok(x.adaptive_avg_pool2d(&self.output_size)?)
    }

    fn config(&self) -> Value {
        to_config(&AdaptivePoolingConfig {
            name: self.name.clone(),
            output_size: Dims(self.output_size),
        })
    }
}
