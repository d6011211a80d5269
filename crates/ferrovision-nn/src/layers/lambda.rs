//! `Lambda`: a layer wrapping a closure.

use crate::layer::{single_input, single_shape, CallCtx, Layer, Shape};
use crate::{Error, Result};
use ferrovision_tensor::{no_grad, Tensor};
use serde_json::{json, Value};
use std::sync::Arc;

type Func = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;
type ShapeFunc = Arc<dyn Fn(&Shape) -> Result<Shape> + Send + Sync>;

/// A stateless layer running a closure on its single input (Keras `Lambda`).
///
/// **A Lambda layer cannot be saved as architecture**: a closure is code, not data, so
/// [`crate::layers::layer_from_config`] refuses `"Lambda"` configs. Save the weights, and
/// rebuild models containing Lambda layers in code (or write a registered custom layer).
///
/// The output shape comes from [`Lambda::output_shape_fn`] when given; otherwise it is found
/// by running the closure on zero inputs twice, with unknown sizes set to 2 and then to 3:
/// output sizes that differ between the two runs are reported as unknown (`None`).
///
/// ```
/// use ferrovision_nn::layers::Lambda;
/// use ferrovision_nn::{Layer, layer::CallCtx};
/// use ferrovision_nn::tensor::Tensor;
/// let double = Lambda::new(|x| Ok(x.mul_scalar(2.0)?));
/// let y = double.call(&[Tensor::ones(&[1, 2])], &mut CallCtx::new(false))?;
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 2.0]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
#[derive(Clone)]
pub struct Lambda {
    name: String,
    f: Func,
    shape_fn: Option<ShapeFunc>,
}

impl Lambda {
    /// A layer computing `f(x)`.
    pub fn new(f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static) -> Self {
        Lambda {
            name: String::new(),
            f: Arc::new(f),
            shape_fn: None,
        }
    }

    /// Sets the layer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Computes the output shape from the input shape (batch axis included) without running
    /// the closure.
    pub fn output_shape_fn(
        mut self,
        f: impl Fn(&Shape) -> Result<Shape> + Send + Sync + 'static,
    ) -> Self {
        self.shape_fn = Some(Arc::new(f));
        self
    }

    fn probe(&self, shape: &Shape, unknown: usize) -> Result<Vec<usize>> {
        let dims: Vec<usize> = shape.iter().map(|d| d.unwrap_or(unknown)).collect();
        let y = no_grad(|| (self.f)(&Tensor::zeros(&dims)))?;
        Ok(y.shape().to_vec())
    }
}

impl Layer for Lambda {
    fn class_name(&self) -> &'static str {
        "Lambda"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        let shape = single_shape(self, input_shapes)?;
        if let Some(f) = &self.shape_fn {
            return f(shape);
        }
        let wrap = |e: Error| {
            Error::layer(
                &self.name,
                format!("could not infer the output shape by running the function on zeros ({e}); give output_shape_fn"),
            )
        };
        let a = self.probe(shape, 2).map_err(wrap)?;
        if shape.iter().all(|d| d.is_some()) {
            return Ok(a.into_iter().map(Some).collect());
        }
        let b = self.probe(shape, 3).map_err(wrap)?;
        if a.len() != b.len() {
            return Err(Error::layer(
                &self.name,
                "the output rank depends on unknown input sizes; give output_shape_fn",
            ));
        }
        Ok(a.iter()
            .zip(&b)
            .map(|(&x, &y)| (x == y).then_some(x))
            .collect())
    }

    fn call(&self, inputs: &[Tensor], _ctx: &mut CallCtx) -> Result<Tensor> {
        (self.f)(single_input(self, inputs)?)
    }

    /// Only the name: the closure cannot be serialised.
    fn config(&self) -> Value {
        json!({"name": self.name})
    }
}
