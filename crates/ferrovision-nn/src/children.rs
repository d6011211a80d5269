//! Child layers found automatically: how a custom layer or block that holds other layers
//! exposes them once, so weights, weight names, freezing, summaries and saving reach them.
//!
//! A block lists its child fields once with [`layer_children!`] inside its `impl Layer`; the
//! macro writes [`Layer::children`] and [`Layer::children_mut`]. Each child is named by its
//! field (a `Vec` field's items by `field/0`, `field/1`, ...; an `Option` field only when set),
//! so a weight's full name is the path of layer names down to it, `/`-separated, ending in the
//! weight name: `block/conv1/kernel`, `layer1/0/bn1/moving_mean`. The same path with `.` and
//! PyTorch weight names is the PyTorch `state_dict` key (see [`crate::layout::to_torch_name`]).
//!
//! ```
//! use ferrovision_nn::layer::{build_chain, single_input, single_shape, CallCtx, Layer, Shape};
//! use ferrovision_nn::layers::{BatchNormalization, Conv2D, PaddingMode};
//! use ferrovision_nn::{layer_children, NetworkExt, Result, Sequential};
//! use ferrovision_nn::tensor::Tensor;
//!
//! /// conv -> batch norm -> relu.
//! struct ConvBn { name: String, conv: Conv2D, bn: BatchNormalization }
//!
//! impl Layer for ConvBn {
//!     fn class_name(&self) -> &'static str { "ConvBn" }
//!     fn name(&self) -> &str { &self.name }
//!     fn set_name(&mut self, name: String) { self.name = name }
//!     layer_children!(conv, bn);
//!     fn build(&mut self, s: &[Shape]) -> Result<()> {
//!         let input = single_shape(self, s)?.clone();
//!         build_chain(&mut [&mut self.conv, &mut self.bn], input)?;
//!         Ok(())
//!     }
//!     fn output_shape(&self, s: &[Shape]) -> Result<Shape> {
//!         let s = self.conv.output_shape(s)?;
//!         self.bn.output_shape(&[s])
//!     }
//!     fn call(&self, x: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
//!         let y = self.conv.call(x, ctx)?;
//!         Ok(self.bn.call(&[y], ctx)?.relu()?)
//!     }
//! }
//!
//! let block = ConvBn {
//!     name: "stem".into(),
//!     conv: Conv2D::new(4, 3).padding(PaddingMode::Same).use_bias(false),
//!     bn: BatchNormalization::new(),
//! };
//! let net = Sequential::new(&[3, 8, 8]).add(block).build()?;
//! let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names[0], "stem/conv/kernel");
//! assert_eq!(names[1], "stem/bn/gamma");
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

use crate::layer::Layer;

/// A field that holds child layers: a layer, a boxed layer, or an `Option`/`Vec` of them.
pub trait ChildSlot {
    /// Appends `(name, layer)` for each child in this field.
    fn push_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Layer)>);

    /// Appends `(name, layer)` for each child in this field, mutably.
    fn push_children_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut dyn Layer)>);
}

impl<L: Layer> ChildSlot for L {
    fn push_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Layer)>) {
        out.push((name.to_string(), self));
    }

    fn push_children_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut dyn Layer)>) {
        out.push((name.to_string(), self));
    }
}

impl ChildSlot for Box<dyn Layer> {
    fn push_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Layer)>) {
        out.push((name.to_string(), self.as_ref()));
    }

    fn push_children_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut dyn Layer)>) {
        out.push((name.to_string(), self.as_mut()));
    }
}

impl<C: ChildSlot> ChildSlot for Option<C> {
    fn push_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Layer)>) {
        if let Some(c) = self {
            c.push_children(name, out);
        }
    }

    fn push_children_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut dyn Layer)>) {
        if let Some(c) = self {
            c.push_children_mut(name, out);
        }
    }
}

impl<C: ChildSlot> ChildSlot for Vec<C> {
    fn push_children<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a dyn Layer)>) {
        for (i, c) in self.iter().enumerate() {
            c.push_children(&format!("{name}/{i}"), out);
        }
    }

    fn push_children_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut dyn Layer)>) {
        for (i, c) in self.iter_mut().enumerate() {
            c.push_children_mut(&format!("{name}/{i}"), out);
        }
    }
}

/// Writes [`Layer::children`] and [`Layer::children_mut`] from a list of child fields (inside
/// `impl Layer for YourBlock`): `layer_children!(conv1, bn1, conv2, bn2, downsample);`. Each
/// field is a layer, a `Box<dyn Layer>`, or an `Option`/`Vec` of those; children are named by
/// their field.
#[macro_export]
macro_rules! layer_children {
    ($($field:ident),* $(,)?) => {
        fn children(&self) -> Vec<(String, &dyn $crate::Layer)> {
            #[allow(unused_mut)]
            let mut out = Vec::new();
            $($crate::children::ChildSlot::push_children(&self.$field, stringify!($field), &mut out);)*
            out
        }

        fn children_mut(&mut self) -> Vec<(String, &mut dyn $crate::Layer)> {
            #[allow(unused_mut)]
            let mut out = Vec::new();
            $($crate::children::ChildSlot::push_children_mut(&mut self.$field, stringify!($field), &mut out);)*
            out
        }
    };
}
