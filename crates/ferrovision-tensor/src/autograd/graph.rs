//! A read-only walk over the recorded graph: the view a traced plan, an ONNX exporter or an
//! int8 pass builds on.
//!
//! The engine records a node for each op that has an input requiring a gradient (see the
//! [module docs](super)); [`walk`] visits every node reachable from some output tensors,
//! producers before consumers (a topological order, each node once), with its typed [`Op`],
//! where each input came from ([`Value`]) and the input and output shapes and dtypes. Inputs
//! that are not recorded are [`Value::Leaf`] (a variable, e.g. a weight) or [`Value::Constant`]
//! (a tensor that needs no gradient, e.g. the batch of images). To record a whole inference
//! graph, mark its inputs `requires_grad_(true)` (or run under a training step).
//!
//! ```
//! use ferrovision_tensor::autograd::{graph, Op};
//! use ferrovision_tensor::Tensor;
//! let x = Tensor::ones(&[2, 3]).requires_grad_(true);
//! let y = x.relu().unwrap().sum(&[1], false).unwrap();
//! let nodes = graph::walk(&[&y]);
//! let ops: Vec<&Op> = nodes.iter().map(|n| n.op()).collect();
//! assert_eq!(ops, [&Op::Relu, &Op::Sum { dims: vec![1], keepdim: false }]);
//! assert_eq!(nodes[1].inputs()[0].value, graph::Value::Node(nodes[0].id()));
//! assert_eq!(nodes[1].output_shape(), &[2]);
//! ```

use super::{AutogradMeta, Edge, Node, Op};
use crate::{DType, Tensor};
use std::collections::HashSet;
use std::sync::Arc;

/// Where a value in the graph comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// The output of the recorded node with this id ([`GraphNode::id`]).
    Node(u64),
    /// A leaf variable (a tensor made with `requires_grad_(true)`); the id is stable across
    /// handles of the same variable.
    Leaf(u64),
    /// A tensor that takes no part in autodiff, by its `Tensor::id` (a constant of the graph).
    Constant(u64),
}

/// One input of a recorded op.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput<'a> {
    /// Where the input value comes from.
    pub value: Value,
    /// Its shape when the op ran.
    pub shape: &'a [usize],
    /// Its dtype.
    pub dtype: DType,
}

/// A recorded op, as [`walk`] yields it (keeps the node alive, not its saved tensors' use).
#[derive(Clone)]
pub struct GraphNode {
    node: Arc<Node>,
}

impl GraphNode {
    /// The node's id, unique in the process (the same as `Value::Node` of its consumers).
    pub fn id(&self) -> u64 {
        self.node.id
    }

    /// The op kind and its attributes.
    pub fn op(&self) -> &Op {
        &self.node.op
    }

    /// The op's name (`op().name()`).
    pub fn name(&self) -> &'static str {
        self.node.op.name()
    }

    /// The op's inputs, in the order the op takes them.
    pub fn inputs(&self) -> Vec<GraphInput<'_>> {
        self.node
            .inputs
            .iter()
            .map(|i| GraphInput {
                value: match &i.edge {
                    Some(Edge::Node(n)) => Value::Node(n.id),
                    Some(Edge::Leaf(c)) => Value::Leaf(c.id),
                    None => Value::Constant(i.tensor_id),
                },
                shape: &i.shape,
                dtype: i.dtype,
            })
            .collect()
    }

    /// The output's shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.node.out_shape
    }

    /// The output's dtype.
    pub fn output_dtype(&self) -> DType {
        self.node.out_dtype
    }
}

impl std::fmt::Debug for GraphNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphNode")
            .field("id", &self.id())
            .field("op", self.op())
            .field("inputs", &self.inputs())
            .field("output_shape", &self.output_shape())
            .field("output_dtype", &self.output_dtype())
            .finish()
    }
}

impl Tensor {
    /// Where this tensor sits in the recorded graph: the node that produced it, the leaf
    /// variable it is, or a constant.
    pub fn graph_value(&self) -> Value {
        match &self.0.autograd {
            Some(AutogradMeta::Node(n)) => Value::Node(n.id),
            Some(AutogradMeta::Leaf(c)) => Value::Leaf(c.id),
            None => Value::Constant(self.id()),
        }
    }
}

/// Every node recorded on the way to `outputs`, producers before consumers, each once.
///
/// Outputs that were not produced by a recorded op contribute nothing. Iterative (no recursion
/// limit on deep graphs); the order among independent branches follows input order.
pub fn walk(outputs: &[&Tensor]) -> Vec<GraphNode> {
    let mut order = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    // (node, whether its inputs were already pushed): post-order without recursion.
    let mut stack: Vec<(Arc<Node>, bool)> = Vec::new();
    for t in outputs.iter().rev() {
        if let Some(AutogradMeta::Node(n)) = &t.0.autograd {
            stack.push((n.clone(), false));
        }
    }
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(GraphNode { node });
            continue;
        }
        if !seen.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        for input in node.inputs.iter().rev() {
            if let Some(Edge::Node(child)) = &input.edge {
                if !seen.contains(&child.id) {
                    stack.push((child.clone(), false));
                }
            }
        }
    }
    order
}
