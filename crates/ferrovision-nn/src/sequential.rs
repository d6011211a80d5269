//! `Sequential`: a plain stack of one-input layers.

use crate::layer::{shape_of, single_input, single_shape, CallCtx, Layer, Shape};
use crate::network::{
    layer_configs, layers_from_configs, model_layer_methods, model_network_methods, Network,
    NetworkExt,
};
use crate::summary::SummaryRow;
use crate::{Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::{json, Value};

/// A stack of layers, each feeding the next.
///
/// ```
/// use ferrovision_nn::{layers::Dense, Activation, Sequential};
/// use ferrovision_nn::tensor::Tensor;
/// let model = Sequential::new(&[3])
///     .add(Dense::new(4).activation(Activation::Relu))
///     .add(Dense::new(1))
///     .build()?;
/// let y = model.predict_batch(&Tensor::ones(&[2, 3]))?;
/// assert_eq!(y.shape(), &[2, 1]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub struct Sequential {
    name: String,
    input: Shape,
    layers: Vec<Box<dyn Layer>>,
    shapes: Vec<Shape>,
}

/// Builder returned by [`Sequential::new`].
pub struct SequentialBuilder {
    name: String,
    input: Shape,
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// Starts a model whose input has this per-sample shape (batch axis excluded), e.g.
    /// `&[1, 28, 28]` for MNIST in channels-first layout.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input_shape: &[usize]) -> SequentialBuilder {
        Self::with_input(input_shape.iter().map(|&d| Some(d)).collect())
    }

    /// Like [`Sequential::new`] with unknown sizes allowed (`None`), batch axis excluded.
    pub fn with_input(input_shape: Vec<Option<usize>>) -> SequentialBuilder {
        let mut input = vec![None];
        input.extend(input_shape);
        SequentialBuilder {
            name: "sequential".into(),
            input,
            layers: Vec::new(),
        }
    }

    /// Runs the model in inference mode on one batch.
    pub fn predict_batch(&self, x: &Tensor) -> Result<Tensor> {
        let mut ctx = CallCtx::new(false);
        ferrovision_tensor::no_grad(|| self.call(std::slice::from_ref(x), &mut ctx))
    }

    /// Output shape after each layer.
    pub fn layer_output_shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Rebuilds (unbuilt layers, built by this call) from [`Layer::config`].
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let input: Shape = serde_json::from_value(cfg["input_shape"].clone())
            .map_err(|e| Error::config(format!("Sequential config: bad input_shape: {e}")))?;
        let b = SequentialBuilder {
            name: cfg["name"].as_str().unwrap_or("sequential").to_string(),
            input,
            layers: layers_from_configs("Sequential config", cfg)?,
        };
        b.build()
    }
}

impl SequentialBuilder {
    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn add_boxed(mut self, layer: Box<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }

    /// Names the model.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Names unnamed layers, builds every layer in turn and checks that the shapes chain.
    pub fn build(self) -> Result<Sequential> {
        let mut layers = self.layers;
        assign_names(&mut layers);
        let mut shape = self.input.clone();
        let mut shapes = Vec::with_capacity(layers.len());
        for l in layers.iter_mut() {
            let ins = [shape.clone()];
            l.build(&ins)?;
            shape = l.output_shape(&ins)?;
            shapes.push(shape.clone());
        }
        Ok(Sequential {
            name: self.name,
            input: self.input,
            layers,
            shapes,
        })
    }
}

/// Gives unnamed layers Keras-style unique names: `dense`, `dense_1`, ... (snake case of the
/// class name), leaving user-given names alone. Duplicate user names get a suffix too.
pub(crate) fn assign_names(layers: &mut [Box<dyn Layer>]) {
    let mut used: Vec<String> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if l.name().is_empty() || used.iter().any(|u| u == l.name()) {
            pending.push(i);
        } else {
            used.push(l.name().to_string());
        }
    }
    for i in pending {
        let l = &mut layers[i];
        let base = if l.name().is_empty() {
            snake_case(l.class_name())
        } else {
            l.name().to_string()
        };
        let mut name = base.clone();
        let mut i = 1;
        while used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        used.push(name.clone());
        l.set_name(name);
    }
}

/// `Conv2D` -> `conv2d`, `BatchNormalization` -> `batch_normalization`.
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_ascii_lowercase());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Layer for Sequential {
    fn class_name(&self) -> &'static str {
        "Sequential"
    }

    model_layer_methods!();

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let mut shape = single_shape(self, input_shapes)?.clone();
        for l in &self.layers {
            shape = l.output_shape(&[shape])?;
        }
        Ok(shape)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        let mut x = single_input(self, inputs)?.clone();
        check_input(&self.name, &self.input, &x)?;
        for l in &self.layers {
            x = l.call(std::slice::from_ref(&x), ctx)?;
        }
        Ok(x)
    }

    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "input_shape": self.input,
            "layers": layer_configs(&self.layers),
        })
    }
}

/// Checks a concrete input against a symbolic shape, naming the model.
pub(crate) fn check_input(model: &str, expected: &Shape, x: &Tensor) -> Result<()> {
    let got = shape_of(x);
    let ok =
        got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| e.is_none() || e == g);
    if ok {
        Ok(())
    } else {
        Err(Error::layer(
            model,
            format!(
                "input has shape {:?}, expected {}",
                x.shape(),
                crate::layer::shape_str(expected)
            ),
        ))
    }
}

impl Network for Sequential {
    fn class_name(&self) -> &'static str {
        "Sequential"
    }

    fn forward(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        Ok(vec![self.call(inputs, ctx)?])
    }

    fn input_shapes(&self) -> Vec<Shape> {
        vec![self.input.clone()]
    }

    fn output_shapes(&self) -> Vec<Shape> {
        vec![self
            .shapes
            .last()
            .cloned()
            .unwrap_or_else(|| self.input.clone())]
    }

    model_network_methods!();

    fn summary_rows(&self) -> Vec<SummaryRow> {
        self.layers
            .iter()
            .zip(&self.shapes)
            .map(|(l, s)| SummaryRow {
                name: l.name().to_string(),
                class_name: l.class_name().to_string(),
                output_shapes: vec![s.clone()],
                params: l.weights().iter().map(Param::numel).sum(),
                connected_to: vec![],
            })
            .collect()
    }
}
