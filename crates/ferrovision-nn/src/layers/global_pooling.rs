//! `GlobalAveragePooling1D/2D/3D` and `GlobalMaxPooling1D/2D/3D`.

use super::common::{check_rank, check_tensor_rank};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::Result;
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The saved config of the global poolings (Keras keys).
#[derive(Serialize, Deserialize)]
struct GlobalPoolingConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    keepdims: bool,
}

/// Mean (`MAX = false`) or max over all `R` spatial axes of `[N, C, *spatial]`, giving
/// `[N, C]` (or `[N, C, 1, ..]` with `keepdims`), like Keras `GlobalAveragePooling2D` /
/// `GlobalMaxPooling2D` in channels-first mode.
pub struct GlobalPooling<const R: usize, const MAX: bool> {
    name: String,
    keepdims: bool,
}

/// Mean over `L` of `[N, C, L]`.
pub type GlobalAveragePooling1D = GlobalPooling<1, false>;
/// Mean over `H, W` of `[N, C, H, W]`.
pub type GlobalAveragePooling2D = GlobalPooling<2, false>;
/// Mean over `D, H, W` of `[N, C, D, H, W]`.
pub type GlobalAveragePooling3D = GlobalPooling<3, false>;
/// Max over `L` of `[N, C, L]`.
pub type GlobalMaxPooling1D = GlobalPooling<1, true>;
/// Max over `H, W` of `[N, C, H, W]`.
pub type GlobalMaxPooling2D = GlobalPooling<2, true>;
/// Max over `D, H, W` of `[N, C, D, H, W]`.
pub type GlobalMaxPooling3D = GlobalPooling<3, true>;

fn class(r: usize, max: bool) -> &'static str {
    match (r, max) {
        (1, false) => "GlobalAveragePooling1D",
        (2, false) => "GlobalAveragePooling2D",
        (_, false) => "GlobalAveragePooling3D",
        (1, true) => "GlobalMaxPooling1D",
        (2, true) => "GlobalMaxPooling2D",
        (_, true) => "GlobalMaxPooling3D",
    }
}

impl<const R: usize, const MAX: bool> GlobalPooling<R, MAX> {
    /// Global pooling to `[N, C]`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        GlobalPooling {
            name: String::new(),
            keepdims: false,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Keeps the spatial axes with size 1.
    pub fn keepdims(mut self, keepdims: bool) -> Self {
        self.keepdims = keepdims;
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: GlobalPoolingConfig = from_config("layer", class(R, MAX), cfg)?;
        Ok(Self::new().named(&c.name).keepdims(c.keepdims))
    }
}

impl<const R: usize, const MAX: bool> Layer for GlobalPooling<R, MAX> {
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
        check_rank(self, shape, R + 2, "[N, C, *spatial]")?;
        let mut out = vec![shape[0], shape[1]];
        if self.keepdims {
            out.extend(std::iter::repeat_n(Some(1), R));
        }
        Ok(out)
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_tensor_rank(self, x, R + 2, "[N, C, *spatial]")?;
        let ones = [1usize; R];
        let y = match (R, MAX) {
            (2, false) if !self.keepdims => return Ok(x.global_avg_pool2d()?),
            (2, true) if !self.keepdims => return Ok(x.global_max_pool2d()?),
            (1, false) => x.adaptive_avg_pool1d(&ones)?,
            (2, false) => x.adaptive_avg_pool2d(&ones)?,
            (_, false) => x.adaptive_avg_pool3d(&ones)?,
            (1, true) => x.adaptive_max_pool1d(&ones)?,
            (2, true) => x.adaptive_max_pool2d(&ones)?,
            (_, true) => x.adaptive_max_pool3d(&ones)?,
        };
        if self.keepdims {
            Ok(y)
        } else {
            Ok(y.reshape(&x.shape()[..2])?)
        }
    }

    fn config(&self) -> Value {
        to_config(&GlobalPoolingConfig {
            name: self.name.clone(),
            keepdims: self.keepdims,
        })
    }
}
