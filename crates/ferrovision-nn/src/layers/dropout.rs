//! `Dropout` and `SpatialDropout1D/2D/3D`: random zeroing in training mode.
//!
//! `Dropout` with a Keras `noise_shape` draws one keep/drop decision per entry of that
//! (broadcastable) shape: `[None, 1, 1, 1]` drops whole samples of a residual branch, the
//! drop-connect / stochastic depth of EfficientNet. Per-sample (`[N, 1, ..., 1]`) and
//! per-channel (`[N, C, 1, ..., 1]`) masks run as the engine's channel dropout (an op traced
//! training steps replay); other noise shapes draw the mask on the host.

use super::common::{check_rank, check_tensor_rank};
use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Result};
use ferrovision_tensor::{rng, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `Dropout`'s saved config (Keras keys; `noise_shape` only when set, so configs saved before
/// it existed load unchanged).
#[derive(Serialize, Deserialize)]
struct DropoutConfig {
    #[serde(default)]
    name: String,
    rate: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    noise_shape: Option<Vec<Option<usize>>>,
}

/// The saved config of `SpatialDropout*` (Keras keys).
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
/// [`ferrovision_tensor::rng::manual_seed`] makes runs reproducible. With a
/// [`noise_shape`](Dropout::noise_shape) the decisions are shared along its size-1 axes.
pub struct Dropout {
    name: String,
    rate: f32,
    noise_shape: Option<Vec<Option<usize>>>,
}

impl Dropout {
    /// Dropout with probability `rate` (in `[0, 1]`; checked when the layer is built).
    pub fn new(rate: f32) -> Self {
        Dropout {
            name: String::new(),
            rate,
            noise_shape: None,
        }
    }

    /// Keras' `noise_shape`: the shape of the keep/drop mask, one entry per input axis (batch
    /// included), `None` for the input's size there, `Some(1)` to share one decision along the
    /// axis (`&[None, Some(1), Some(1), Some(1)]` keeps or drops whole samples). Checked
    /// against the input when the layer is built.
    pub fn noise_shape(mut self, shape: &[Option<usize>]) -> Self {
        self.noise_shape = Some(shape.to_vec());
        self
    }

    /// The mask shape for an input of `shape`, or an error naming both shapes when the noise
    /// shape does not broadcast to it.
    fn mask_shape(&self, shape: &[Option<usize>]) -> Result<Option<Vec<Option<usize>>>> {
        let Some(ns) = &self.noise_shape else {
            return Ok(None);
        };
        let fits = ns.len() == shape.len()
            && ns.iter().zip(shape).all(|(n, d)| match (n, d) {
                (None, _) | (Some(1), _) | (Some(_), None) => true,
                (Some(n), Some(d)) => n == d,
            });
        if !fits {
            return Err(Error::layer(
                &self.name,
                format!("noise_shape {ns:?} does not broadcast to the input shape {shape:?}"),
            ));
        }
        Ok(Some(ns.iter().zip(shape).map(|(n, d)| n.or(*d)).collect()))
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: DropoutConfig = from_config("layer", "Dropout", cfg)?;
        check_rate(&c.name, c.rate).map_err(|e| Error::config(format!("Dropout config: {e}")))?;
        let mut l = Dropout::new(c.rate).named(&c.name);
        l.noise_shape = c.noise_shape;
        Ok(l)
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

    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        check_rate(&self.name, self.rate)?;
        self.mask_shape(single_shape(self, input_shapes)?)?;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.mask_shape(shape)?;
        Ok(shape.clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        check_rate(&self.name, self.rate)?;
        let known: Vec<Option<usize>> = x.shape().iter().map(|&d| Some(d)).collect();
        let Some(mask_shape) = self.mask_shape(&known)? else {
            return Ok(x.dropout_global(self.rate, ctx.training)?);
        };
        if !ctx.training || self.rate == 0.0 {
            return Ok(x.clone());
        }
        // Every entry of the mask shape is known here (taken from the tensor).
        let mask_shape: Vec<usize> = mask_shape.into_iter().flatten().collect();
        if let Some(groups) = leading_mask(&mask_shape, x.shape()) {
            // One decision per sample (drop-connect) or per (sample, channel): the engine's
            // channel dropout over the input viewed as [N, groups, rest], an op traced
            // training steps replay.
            let n = x.shape()[0];
            let viewed = x.reshape(&[n, groups, x.numel() / (n * groups).max(1)])?;
            let y = viewed.spatial_dropout_global(self.rate, true)?;
            return Ok(y.reshape(x.shape())?);
        }
        let keep = 1.0 - self.rate;
        let mask = rng::with_global(|r| Tensor::bernoulli(&mask_shape, keep, r))?;
        // Inverted scaling; rate 1 leaves the all-zero mask as is.
        let mask = if keep > 0.0 {
            mask.mul_scalar(1.0 / keep)?
        } else {
            mask
        };
        Ok(x.mul(&mask)?)
    }

    fn config(&self) -> Value {
        to_config(&DropoutConfig {
            name: self.name.clone(),
            rate: self.rate,
            noise_shape: self.noise_shape.clone(),
        })
    }
}

/// For a mask of `mask` over an input of `shape`: the number of decisions per sample when the
/// mask is `[N, 1, ..., 1]` (1) or `[N, C, 1, ..., 1]` (`C`), so the input's trailing values
/// share each one; `None` for other masks (and inputs of rank < 2).
fn leading_mask(mask: &[usize], shape: &[usize]) -> Option<usize> {
    if shape.len() < 2 || mask.len() != shape.len() || mask[0] != shape[0] {
        return None;
    }
    let groups = mask[1];
    let rest_is_one = mask[2..].iter().all(|&d| d == 1);
    (rest_is_one && (groups == 1 || groups == shape[1]) && shape.iter().all(|&d| d > 0))
        .then_some(groups)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::layer_from_config;

    #[test]
    fn noise_shape_drops_whole_samples_in_training_only() {
        ferrovision_tensor::rng::manual_seed(7);
        let mut l = Dropout::new(0.5).noise_shape(&[None, Some(1), Some(1), Some(1)]);
        let shape = vec![None, Some(2), Some(3), Some(3)];
        l.build(&[shape]).unwrap();
        let x = Tensor::ones(&[16, 2, 3, 3]);
        let y = l
            .call(std::slice::from_ref(&x), &mut CallCtx::new(true))
            .unwrap();
        let v = y.to_vec::<f32>().unwrap();
        let per_sample: Vec<f32> = v.chunks(18).map(|s| s[0]).collect();
        for (i, s) in v.chunks(18).enumerate() {
            assert!(
                s.iter().all(|&e| e == s[0]),
                "sample {i} mixes decisions: {s:?}"
            );
            assert!(s[0] == 0.0 || s[0] == 2.0, "sample {i}: {}", s[0]);
        }
        assert!(
            per_sample.contains(&0.0) && per_sample.contains(&2.0),
            "{per_sample:?}"
        );
        let y = l
            .call(std::slice::from_ref(&x), &mut CallCtx::new(false))
            .unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    }

    #[test]
    fn noise_shape_is_saved_only_when_set_and_checked() {
        let plain = Dropout::new(0.25).named("d").config();
        assert!(plain.get("noise_shape").is_none(), "{plain}");
        // A config saved before noise_shape existed loads as plain dropout.
        let old = serde_json::json!({"name": "d", "rate": 0.25});
        assert_eq!(layer_from_config("Dropout", &old).unwrap().config(), plain);
        let l = Dropout::new(0.2).noise_shape(&[None, Some(1), Some(1), Some(1)]);
        let cfg = l.config();
        assert_eq!(cfg["noise_shape"], serde_json::json!([null, 1, 1, 1]));
        assert_eq!(layer_from_config("Dropout", &cfg).unwrap().config(), cfg);
        let mut bad = Dropout::new(0.2)
            .named("drop")
            .noise_shape(&[None, Some(3)]);
        let e = bad.build(&[vec![None, Some(2)]]).unwrap_err().to_string();
        assert!(e.contains("drop") && e.contains("[None, Some(3)]"), "{e}");
    }
}
