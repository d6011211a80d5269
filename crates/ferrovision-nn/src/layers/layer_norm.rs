//! `LayerNormalization`: per-sample normalization over chosen axes.

use crate::layer::{shape_str, single_input, single_shape, CallCtx, Layer, Shape};
use crate::registry::{from_config, to_config};
use crate::{Error, Initializer, Param, Regularizer, Result};
use ferrovision_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Normalized axes: saved as a list, read from one integer or a list (Keras).
struct Axes(Vec<isize>);

impl Serialize for Axes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Axes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(isize),
            Many(Vec<isize>),
        }
        match OneOrMany::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected an integer or a list of integers"))?
        {
            OneOrMany::One(a) => Ok(Axes(vec![a])),
            OneOrMany::Many(v) => Ok(Axes(v)),
        }
    }
}

/// `LayerNormalization`'s saved config (Keras keys; missing keys take the defaults of
/// [`LayerNormalization::new`]).
#[derive(Serialize, Deserialize)]
#[serde(default)]
struct LayerNormConfig {
    name: String,
    axis: Axes,
    epsilon: f32,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    beta_regularizer: Option<Regularizer>,
    gamma_regularizer: Option<Regularizer>,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            name: String::new(),
            axis: Axes(vec![-1]),
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            beta_regularizer: None,
            gamma_regularizer: None,
        }
    }
}

/// Layer normalization (Keras `LayerNormalization`): each sample is normalised with its own
/// mean and (biased) variance over `axis` (default the last axis, `-1`), then scaled by
/// `gamma` and shifted by `beta`, whose shape is the input's sizes on those axes (in
/// increasing axis order). Epsilon defaults to 1e-3 like Keras. For a channels-first image
/// `[N, C, H, W]`, `axis(&[1, 2, 3])` normalises each whole sample and `axis(&[1])` each pixel
/// over its channels.
pub struct LayerNormalization {
    name: String,
    axis: Vec<isize>,
    epsilon: f32,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    beta_regularizer: Option<Regularizer>,
    gamma_regularizer: Option<Regularizer>,
    built: Option<(usize, Vec<usize>)>,
    gamma: Option<Param>,
    beta: Option<Param>,
}

impl Default for LayerNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerNormalization {
    /// Layer normalization over the last axis with Keras' defaults.
    pub fn new() -> Self {
        LayerNormalization {
            name: String::new(),
            axis: vec![-1],
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            beta_regularizer: None,
            gamma_regularizer: None,
            built: None,
            gamma: None,
            beta: None,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The normalised axes (negative counts from the end; never the batch axis).
    pub fn axis(mut self, axis: &[isize]) -> Self {
        self.axis = axis.to_vec();
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

    /// Rebuilds from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let c: LayerNormConfig = from_config("layer", "LayerNormalization", cfg)?;
        let mut l = LayerNormalization::new().named(&c.name);
        l.axis = c.axis.0;
        l.epsilon = c.epsilon;
        l.center = c.center;
        l.scale = c.scale;
        l.beta_initializer = c.beta_initializer;
        l.gamma_initializer = c.gamma_initializer;
        l.beta_regularizer = c.beta_regularizer;
        l.gamma_regularizer = c.gamma_regularizer;
        if !(l.epsilon > 0.0 && l.epsilon.is_finite()) || l.axis.is_empty() {
            return Err(Error::config(format!(
                "LayerNormalization config: needs a positive epsilon and at least one axis, got {cfg}"
            )));
        }
        Ok(l)
    }

    /// The sorted, de-duplicated axes for a rank-`rank` input.
    fn axes(&self, rank: usize) -> Result<Vec<usize>> {
        let r = rank as isize;
        let mut out = Vec::with_capacity(self.axis.len());
        for &a in &self.axis {
            let i = if a < 0 { a + r } else { a };
            if i < 1 || i >= r {
                return Err(Error::layer(
                    &self.name,
                    format!("axis {a} is not a non-batch axis of a rank-{rank} input"),
                ));
            }
            out.push(i as usize);
        }
        out.sort_unstable();
        out.dedup();
        if out.is_empty() {
            return Err(Error::layer(&self.name, "needs at least one axis"));
        }
        Ok(out)
    }
}

impl Layer for LayerNormalization {
    fn class_name(&self) -> &'static str {
        "LayerNormalization"
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
        let shape = single_shape(self, input_shapes)?;
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(Error::layer(
                &self.name,
                format!("epsilon must be positive and finite, got {}", self.epsilon),
            ));
        }
        let axes = self.axes(shape.len())?;
        let mut pshape = Vec::with_capacity(axes.len());
        for &a in &axes {
            pshape.push(shape[a].ok_or_else(|| {
                Error::layer(
                    &self.name,
                    format!(
                        "needs known sizes on the normalised axes {axes:?}, got {}",
                        shape_str(shape)
                    ),
                )
            })?);
        }
        let n: usize = pshape.iter().product();
        if self.scale {
            let g = self.gamma_initializer.init_global(&pshape, n, n)?;
            self.gamma =
                Some(Param::new("gamma", g, true).with_regularizer(self.gamma_regularizer));
        }
        if self.center {
            let b = self.beta_initializer.init_global(&pshape, n, n)?;
            self.beta = Some(Param::new("beta", b, true).with_regularizer(self.beta_regularizer));
        }
        self.built = Some((shape.len(), pshape));
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        self.axes(shape.len())?;
        Ok(shape.clone())
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        let x = single_input(self, inputs)?;
        let Some((rank, pshape)) = &self.built else {
            return Err(Error::layer(&self.name, "called before build"));
        };
        if x.rank() != *rank {
            return Err(Error::layer(
                &self.name,
                format!(
                    "was built for rank-{rank} inputs, got shape {:?}",
                    x.shape()
                ),
            ));
        }
        let axes = self.axes(*rank)?;
        let got: Vec<usize> = axes.iter().map(|&a| x.shape()[a]).collect();
        if &got != pshape {
            return Err(Error::layer(
                &self.name,
                format!(
                    "was built for sizes {pshape:?} on axes {axes:?}, got input of shape {:?}",
                    x.shape()
                ),
            ));
        }
        let gamma = self.gamma.as_ref().map(|p| p.value());
        let beta = self.beta.as_ref().map(|p| p.value());
        let trailing = axes
            .iter()
            .enumerate()
            .all(|(i, &a)| a == rank - axes.len() + i);
        if trailing {
            return Ok(x.layer_norm(pshape, gamma.as_ref(), beta.as_ref(), self.epsilon)?);
        }
        // Move the normalised axes to the end (keeping their order), normalise, move back.
        let mut perm: Vec<usize> = (0..*rank).filter(|a| !axes.contains(a)).collect();
        perm.extend(&axes);
        let mut inv = vec![0; *rank];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let y =
            x.permute(&perm)?
                .layer_norm(pshape, gamma.as_ref(), beta.as_ref(), self.epsilon)?;
        Ok(y.permute(&inv)?)
    }

    fn weights(&self) -> Vec<Param> {
        self.gamma.iter().chain(self.beta.iter()).cloned().collect()
    }

    fn config(&self) -> Value {
        to_config(&LayerNormConfig {
            name: self.name.clone(),
            axis: Axes(self.axis.clone()),
            epsilon: self.epsilon,
            center: self.center,
            scale: self.scale,
            beta_initializer: self.beta_initializer,
            gamma_initializer: self.gamma_initializer,
            beta_regularizer: self.beta_regularizer,
            gamma_regularizer: self.gamma_regularizer,
        })
    }
}
