//! `BatchNormalization` with Keras 3 semantics (moving statistics, frozen = inference mode).

use crate::layer::{shape_str, single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `BatchNormalization`'s saved config (Keras keys; missing keys take the defaults of
/// [`BatchNormalization::new`]).
#[derive(Serialize, Deserialize)]
#[serde(default)]
struct BatchNormConfig {
    name: String,
    trainable: bool,
    axis: isize,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    moving_mean_initializer: Initializer,
    moving_variance_initializer: Initializer,
    beta_regularizer: Option<Regularizer>,
    gamma_regularizer: Option<Regularizer>,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            name: String::new(),
            trainable: true,
            axis: 1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
            beta_regularizer: None,
            gamma_regularizer: None,
        }
    }
}

/// Batch normalization over one axis (Keras `BatchNormalization`; default `axis = 1`, the
/// channel axis of channels-first data and the feature axis of `[N, F]`).
///
/// - Training mode (`ctx.training`) on a trainable layer: normalises with the batch mean and
///   (biased) variance over every other axis, and updates the non-trainable weights
///   `moving = moving * momentum + batch * (1 - momentum)` (Keras: biased variance).
/// - Inference mode, or a frozen layer (`set_trainable(false)`): normalises with the moving
///   statistics and leaves them alone (Keras 3 behaviour, which makes fine-tuning safe).
///
/// `y = (x - mean) / sqrt(var + epsilon) * gamma + beta`. Weights in order: `gamma`, `beta`
/// (trainable; absent when `scale` / `center` are off), `moving_mean`, `moving_variance`.
/// Defaults: momentum 0.99, epsilon 1e-3.
pub struct BatchNormalization {
    name: String,
    axis: isize,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    moving_mean_initializer: Initializer,
    moving_variance_initializer: Initializer,
    beta_regularizer: Option<Regularizer>,
    gamma_regularizer: Option<Regularizer>,
    trainable: bool,
    built: Option<(usize, usize)>,
    gamma: Option<Param>,
    beta: Option<Param>,
    moving_mean: Option<Param>,
    moving_variance: Option<Param>,
}

impl Default for BatchNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormalization {
    /// Batch normalization over axis 1 with Keras' defaults.
    pub fn new() -> Self {
        BatchNormalization {
            name: String::new(),
            axis: 1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
            beta_regularizer: None,
            gamma_regularizer: None,
            trainable: true,
            built: None,
            gamma: None,
            beta: None,
            moving_mean: None,
            moving_variance: None,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The normalised axis (negative counts from the end; not the batch axis).
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
        self
    }

    /// Weight of the old value in the moving averages.
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// Added to the variance before the square root.
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Learn an offset `beta`.
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Learn a scale `gamma`.
    pub fn scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }

    /// Initializer of `beta`.
    pub fn beta_initializer(mut self, init: Initializer) -> Self {
        self.beta_initializer = init;
        self
    }

    /// Initializer of `gamma`.
    pub fn gamma_initializer(mut self, init: Initializer) -> Self {
        self.gamma_initializer = init;
        self
    }

    /// Initializer of `moving_mean`.
    pub fn moving_mean_initializer(mut self, init: Initializer) -> Self {
        self.moving_mean_initializer = init;
        self
    }

    /// Initializer of `moving_variance`.
    pub fn moving_variance_initializer(mut self, init: Initializer) -> Self {
        self.moving_variance_initializer = init;
        self
    }

    /// Penalises `beta`.
    pub fn beta_regularizer(mut self, r: Regularizer) -> Self {
        self.beta_regularizer = Some(r);
        self
    }

    /// Penalises `gamma`.
    pub fn gamma_regularizer(mut self, r: Regularizer) -> Self {
        self.gamma_regularizer = Some(r);
        self
    }

    /// True unless the layer was frozen with [`Layer::set_trainable`].
    pub fn is_trainable(&self) -> bool {
        self.trainable
    }

    /// The moving mean (after build).
    pub fn moving_mean(&self) -> Option<&Param> {
        self.moving_mean.as_ref()
    }

    /// The moving variance (after build).
    pub fn moving_variance(&self) -> Option<&Param> {
        self.moving_variance.as_ref()
    }

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: BatchNormConfig = from_config("layer", "BatchNormalization", cfg)?;
        let mut l = BatchNormalization::new().named(&c.name);
        l.axis = c.axis;
        l.momentum = c.momentum;
        l.epsilon = c.epsilon;
        l.center = c.center;
        l.scale = c.scale;
        l.beta_initializer = c.beta_initializer;
        l.gamma_initializer = c.gamma_initializer;
        l.moving_mean_initializer = c.moving_mean_initializer;
        l.moving_variance_initializer = c.moving_variance_initializer;
        l.beta_regularizer = c.beta_regularizer;
        l.gamma_regularizer = c.gamma_regularizer;
        l.trainable = c.trainable;
        l.validate()
            .map_err(|e| Error::config(format!("BatchNormalization config: {e}")))?;
        Ok(l)
    }

    fn validate(&self) -> Result<()> {
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(Error::layer(
                &self.name,
                format!("epsilon must be positive and finite, got {}", self.epsilon),
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::layer(
                &self.name,
                format!("momentum must be in [0, 1], got {}", self.momentum),
            ));
        }
        Ok(())
    }

    /// The axis as an index into a rank-`rank` shape.
    fn axis_index(&self, rank: usize) -> Result<usize> {
        let r = rank as isize;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if rank < 2 || a < 1 || a >= r {
            return Err(Error::layer(
                &self.name,
                format!(
                    "axis {} is not a non-batch axis of a rank-{rank} input (rank must be >= 2)",
                    self.axis
                ),
            ));
        }
        Ok(a as usize)
    }
}

impl Layer for BatchNormalization {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn build(&mut self, input_shapes: &[Shape]) -> Result<()> {
        if self.built.is_some() {
            return Ok(());
        }
        self.validate()?;
        let shape = single_shape(self, input_shapes)?;
        let ax = self.axis_index(shape.len())?;
        let Some(c) = shape[ax] else {
            return Err(Error::layer(
                &self.name,
                format!(
                    "needs a known size on axis {ax}, got input shape {}",
                    shape_str(shape)
                ),
            ));
        };
        let t = self.trainable;
        if self.scale {
            let g = self.gamma_initializer.init_global(&[c], c, c)?;
            self.gamma = Some(Param::new("gamma", g, t).with_regularizer(self.gamma_regularizer));
        }
        if self.center {
            let b = self.beta_initializer.init_global(&[c], c, c)?;
            self.beta = Some(Param::new("beta", b, t).with_regularizer(self.beta_regularizer));
        }
        let m = self.moving_mean_initializer.init_global(&[c], c, c)?;
        let v = self.moving_variance_initializer.init_global(&[c], c, c)?;
        self.moving_mean = Some(Param::new("moving_mean", m, false));
        self.moving_variance = Some(Param::new("moving_variance", v, false));
        self.built = Some((shape.len(), c));
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        let ax = self.axis_index(shape.len())?;
        if let (Some((_, c)), Some(d)) = (self.built, shape[ax]) {
            if c != d {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "was built for size {c} on axis {ax}, got {}",
                        shape_str(shape)
                    ),
                ));
            }
        }
        Ok(shape.clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        let (Some((_, c)), Some(mm), Some(mv)) =
            (self.built, &self.moving_mean, &self.moving_variance)
        else {
            return Err(Error::layer(&self.name, "called before build"));
        };
        let ax = self.axis_index(x.rank())?;
        if x.shape()[ax] != c {
            return Err(Error::layer(
                &self.name,
                format!(
                    "was built for size {c} on axis {ax}, got input of shape {:?}",
                    x.shape()
                ),
            ));
        }
        // The engine normalises axis 1; other axes are swapped there and back.
        let xt = if ax == 1 {
            x.clone()
        } else {
            x.transpose(1, ax as isize)?
        };
        let gamma = self.gamma.as_ref().map(|p| p.value());
        let beta = self.beta.as_ref().map(|p| p.value());
        // Training (a trainable layer) normalises with the batch's statistics and moves the
        // moving averages the Keras way, in the engine's op (so traced plans replay it).
        let y = xt.batch_norm_keras(
            &mm.value(),
            &mv.value(),
            gamma.as_ref(),
            beta.as_ref(),
            ctx.training && self.trainable,
            self.momentum,
            self.epsilon,
        )?;
        if ax == 1 {
            Ok(y)
        } else {
            Ok(y.transpose(1, ax as isize)?)
        }
    }

    fn weights(&self) -> Vec<Param> {
        self.gamma
            .iter()
            .chain(self.beta.iter())
            .chain(self.moving_mean.iter())
            .chain(self.moving_variance.iter())
            .cloned()
            .collect()
    }

    /// Freezing also switches the layer to inference behaviour (moving statistics, no
    /// updates), like Keras 3. The moving statistics are never trainable.
    fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
        for p in self.gamma.iter().chain(self.beta.iter()) {
            p.set_trainable(trainable);
        }
    }

    fn config(&self) -> Value {
        to_config(&BatchNormConfig {
            name: self.name.clone(),
            trainable: self.trainable,
            axis: self.axis,
            momentum: self.momentum,
            epsilon: self.epsilon,
            center: self.center,
            scale: self.scale,
            beta_initializer: self.beta_initializer,
            gamma_initializer: self.gamma_initializer,
            moving_mean_initializer: self.moving_mean_initializer,
            moving_variance_initializer: self.moving_variance_initializer,
            beta_regularizer: self.beta_regularizer,
            gamma_regularizer: self.gamma_regularizer,
        })
    }
}
