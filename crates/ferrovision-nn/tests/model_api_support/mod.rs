//! Shared by the model-API tests: `Split`, a custom two-output layer with a serde config,
//! and a two-input, two-output functional model that uses it.
#![allow(dead_code)]

use ferrovision_nn::layer::{only_output, single_input, single_shape, Shape};
use ferrovision_nn::layers::{layer_registry, Add, Dense};
use ferrovision_nn::registry::to_config;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{CallCtx, Functional, Graph, Layer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Splits the last axis into its first `left` entries and the rest: two outputs.
pub struct Split {
    pub name: String,
    pub left: usize,
}

#[derive(Serialize, Deserialize)]
struct SplitConfig {
    name: String,
    left: usize,
}

impl Layer for Split {
    fn class_name(&self) -> &'static str {
        "Split"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn output_shape(&self, s: &[Shape]) -> Result<Shape> {
        only_output(self, self.output_shapes_for(s)?)
    }
    fn call(&self, x: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        only_output(self, self.call_outputs(x, ctx)?)
    }
    fn output_shapes_for(&self, s: &[Shape]) -> Result<Vec<Shape>> {
        let s = single_shape(self, s)?;
        let n = s.last().copied().flatten().unwrap();
        let (mut a, mut b) = (s.clone(), s.clone());
        *a.last_mut().unwrap() = Some(self.left);
        *b.last_mut().unwrap() = Some(n - self.left);
        Ok(vec![a, b])
    }
    fn call_outputs(&self, x: &[Tensor], _ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        let x = single_input(self, x)?;
        let axis = x.shape().len() - 1;
        let n = x.shape()[axis];
        let axis = axis as isize;
        Ok(vec![
            x.narrow(axis, 0, self.left)?,
            x.narrow(axis, self.left, n - self.left)?,
        ])
    }
    fn config(&self) -> Value {
        to_config(&SplitConfig {
            name: self.name.clone(),
            left: self.left,
        })
    }
}

/// Registers `Split` (idempotent).
pub fn register_split() {
    layer_registry().register_config("Split", |c: SplitConfig| {
        Ok(Split {
            name: c.name,
            left: c.left,
        })
    });
}

/// A two-input, two-output model: `(a, b) -> (dense(a) split, b * 1)`.
pub fn two_output_inner() -> Functional {
    let mut g = Graph::new();
    let a = g.input("a", &[Some(4)]);
    let b = g.input("b", &[Some(2)]);
    let h = g.apply(Dense::new(6).named("mix"), &[a]).unwrap();
    let halves = g
        .apply_multi(
            Split {
                name: "split".into(),
                left: 2,
            },
            &[h],
        )
        .unwrap();
    assert_eq!(halves.len(), 2);
    assert_eq!(halves[1].output_index(), 1);
    assert_eq!(g.shape(halves[1]).unwrap(), &vec![None, Some(4)]);
    let sum = g.apply(Add::new(), &[halves[0], b]).unwrap();
    g.build("inner", &[a, b], &[sum, halves[1]]).unwrap()
}
