//! Functional models: graphs of layers with several inputs and outputs, branches, shared
//! layers and nested models (Keras' functional API, with explicit handles instead of symbolic
//! tensors).

use crate::layer::{CallCtx, Layer, Shape};
use crate::network::{
    layer_configs, layers_from_configs, model_layer_methods, model_network_methods, Network,
    NetworkExt,
};
use crate::sequential::{check_input, snake_case};
use crate::summary::SummaryRow;
use crate::{Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::{json, Value};

/// A value in a graph under construction: a model input or a layer output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(usize);

/// A layer added to a graph; call it several times to share its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerId(usize);

#[derive(Debug, Clone)]
enum NodeKind {
    Input { name: String },
    Call { layer: usize, inputs: Vec<usize> },
}

#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    shape: Shape,
}

/// Builds a [`Functional`] model.
///
/// ```
/// use ferrovision_nn::{layers::Dense, Activation, Graph};
/// let mut g = Graph::new();
/// let x = g.input("features", &[Some(8)]);
/// let shared = g.add_layer(Dense::new(4).activation(Activation::Relu));
/// let a = g.call(shared, &[x])?;           // the same weights ...
/// let b = g.call(shared, &[a])?;           // ... used twice
/// let out = g.apply(Dense::new(1), &[b])?;
/// let net = g.build("tiny", &[x], &[out])?;
/// assert_eq!(net.output_shapes()[0], vec![None, Some(1)]);
/// # use ferrovision_nn::Network;
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
#[derive(Default)]
pub struct Graph {
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<Node>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// A model input with this per-sample shape (batch axis excluded; `None` = any size),
    /// e.g. `&[Some(3), None, None]` for images of any size.
    pub fn input(&mut self, name: &str, shape: &[Option<usize>]) -> NodeId {
        let mut full = vec![None];
        full.extend_from_slice(shape);
        self.nodes.push(Node {
            kind: NodeKind::Input {
                name: name.to_string(),
            },
            shape: full,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Adds a layer without calling it (to call it several times: shared weights). An unnamed
    /// layer gets a unique Keras-style name.
    pub fn add_layer(&mut self, layer: impl Layer + 'static) -> LayerId {
        self.add_boxed(Box::new(layer))
    }

    /// Adds a boxed layer.
    pub fn add_boxed(&mut self, mut layer: Box<dyn Layer>) -> LayerId {
        let base = if layer.name().is_empty() {
            snake_case(layer.class_name())
        } else {
            layer.name().to_string()
        };
        let mut name = base.clone();
        let mut i = 1;
        while self.layers.iter().any(|l| l.name() == name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        layer.set_name(name);
        self.layers.push(layer);
        LayerId(self.layers.len() - 1)
    }

    /// Calls a layer on nodes, building it on its first call; returns the output node.
    pub fn call(&mut self, layer: LayerId, inputs: &[NodeId]) -> Result<NodeId> {
        let shapes: Vec<Shape> = inputs
            .iter()
            .map(|n| {
                self.nodes
                    .get(n.0)
                    .map(|node| node.shape.clone())
                    .ok_or_else(|| Error::config(format!("node {} is not in this graph", n.0)))
            })
            .collect::<Result<_>>()?;
        let l = self
            .layers
            .get_mut(layer.0)
            .ok_or_else(|| Error::config(format!("layer {} is not in this graph", layer.0)))?;
        l.build(&shapes)?;
        let shape = l.output_shape(&shapes)?;
        self.nodes.push(Node {
            kind: NodeKind::Call {
                layer: layer.0,
                inputs: inputs.iter().map(|n| n.0).collect(),
            },
            shape,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// Adds a layer and calls it once.
    pub fn apply(&mut self, layer: impl Layer + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.add_layer(layer);
        self.call(id, inputs)
    }

    /// The symbolic shape of a node (batch axis first).
    pub fn shape(&self, node: NodeId) -> Option<&Shape> {
        self.nodes.get(node.0).map(|n| &n.shape)
    }

    /// Finishes the model with these inputs and outputs. Every input an output depends on must
    /// be listed; layers no output uses are dropped.
    pub fn build(self, name: &str, inputs: &[NodeId], outputs: &[NodeId]) -> Result<Functional> {
        let n = self.nodes.len();
        for id in inputs.iter().chain(outputs) {
            if id.0 >= n {
                return Err(Error::config(format!("node {} is not in this graph", id.0)));
            }
        }
        for id in inputs {
            if !matches!(self.nodes[id.0].kind, NodeKind::Input { .. }) {
                return Err(Error::config(format!(
                    "model '{name}': node {} is a layer output, not an input",
                    id.0
                )));
            }
        }
        if outputs.is_empty() {
            return Err(Error::config(format!(
                "model '{name}' needs at least one output"
            )));
        }
        // Which nodes the outputs need (nodes are created in topological order).
        let mut needed = vec![false; n];
        for o in outputs {
            needed[o.0] = true;
        }
        for i in (0..n).rev() {
            if needed[i] {
                if let NodeKind::Call { inputs: ins, .. } = &self.nodes[i].kind {
                    for &j in ins {
                        needed[j] = true;
                    }
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let (true, NodeKind::Input { name: iname }) = (needed[i], &node.kind) {
                if !inputs.iter().any(|x| x.0 == i) {
                    return Err(Error::config(format!(
                        "model '{name}': an output depends on input '{iname}', which is not among the model's inputs"
                    )));
                }
            }
        }
        // Keep the needed nodes and the layers they call, renumbered.
        let mut node_map = vec![usize::MAX; n];
        let mut layer_map = vec![usize::MAX; self.layers.len()];
        let mut nodes = Vec::new();
        let mut used_layers = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let kind = match &node.kind {
                NodeKind::Input { name } => NodeKind::Input { name: name.clone() },
                NodeKind::Call { layer, inputs } => {
                    if layer_map[*layer] == usize::MAX {
                        layer_map[*layer] = used_layers.len();
                        used_layers.push(*layer);
                    }
                    NodeKind::Call {
                        layer: layer_map[*layer],
                        inputs: inputs.iter().map(|&j| node_map[j]).collect(),
                    }
                }
            };
            node_map[i] = nodes.len();
            nodes.push(Node {
                kind,
                shape: node.shape.clone(),
            });
        }
        let mut slots: Vec<Option<Box<dyn Layer>>> = self.layers.into_iter().map(Some).collect();
        let layers = used_layers
            .iter()
            .map(|&i| slots[i].take().expect("each layer is taken once"))
            .collect();
        Ok(Functional {
            name: name.to_string(),
            layers,
            nodes,
            inputs: inputs.iter().map(|x| node_map[x.0]).collect(),
            outputs: outputs.iter().map(|x| node_map[x.0]).collect(),
        })
    }
}

/// A model defined as a graph of layers (see [`Graph`]).
pub struct Functional {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<Node>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

impl Functional {
    /// Runs the graph; `ctx` collects layer penalties.
    fn run(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects {} input(s), got {}",
                    self.inputs.len(),
                    inputs.len()
                ),
            ));
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.nodes.len()];
        for (&slot, x) in self.inputs.iter().zip(inputs) {
            check_input(&self.name, &self.nodes[slot].shape, x)?;
            values[slot] = Some(x.clone());
        }
        // Free intermediate values once their last consumer ran.
        let mut last_use = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { inputs, .. } = &node.kind {
                for &j in inputs {
                    last_use[j] = i;
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { layer, inputs } = &node.kind {
                let args: Vec<Tensor> = inputs
                    .iter()
                    .map(|&j| values[j].clone().expect("nodes run in topological order"))
                    .collect();
                values[i] = Some(self.layers[*layer].call(&args, ctx)?);
                for &j in inputs {
                    if last_use[j] == i && !self.outputs.contains(&j) {
                        values[j] = None;
                    }
                }
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&o| values[o].clone().expect("outputs are computed"))
            .collect())
    }

    /// Symbolic output shapes for these input shapes.
    fn infer(&self, input_shapes: &[Shape]) -> Result<Vec<Shape>> {
        if input_shapes.len() != self.inputs.len() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects {} input(s), got {}",
                    self.inputs.len(),
                    input_shapes.len()
                ),
            ));
        }
        let mut shapes: Vec<Shape> = self.nodes.iter().map(|n| n.shape.clone()).collect();
        for (&slot, s) in self.inputs.iter().zip(input_shapes) {
            shapes[slot] = s.clone();
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { layer, inputs } = &node.kind {
                let ins: Vec<Shape> = inputs.iter().map(|&j| shapes[j].clone()).collect();
                shapes[i] = self.layers[*layer].output_shape(&ins)?;
            }
        }
        Ok(self.outputs.iter().map(|&o| shapes[o].clone()).collect())
    }

    /// Rebuilds a model from [`Layer::config`] output.
    pub fn from_config(cfg: &Value) -> Result<Self> {
        let bad = |m: String| Error::config(format!("Functional config: {m}"));
        let mut g = Graph::new();
        let ids: Vec<LayerId> = layers_from_configs("Functional config", cfg)?
            .into_iter()
            .map(|l| g.add_boxed(l))
            .collect();
        let nodes = cfg["nodes"]
            .as_array()
            .ok_or_else(|| bad("needs a 'nodes' list".into()))?;
        let mut node_ids = Vec::new();
        for n in nodes {
            if let Some(name) = n["input"].as_str() {
                let shape: Shape = serde_json::from_value(n["shape"].clone())
                    .map_err(|e| bad(format!("input '{name}': bad shape: {e}")))?;
                node_ids.push(g.input(name, shape.get(1..).unwrap_or(&[])));
            } else {
                let layer = n["layer"]
                    .as_u64()
                    .and_then(|i| ids.get(i as usize).copied())
                    .ok_or_else(|| bad(format!("node {n} names no valid layer")))?;
                let ins = n["inputs"]
                    .as_array()
                    .ok_or_else(|| bad(format!("node {n} has no inputs")))?
                    .iter()
                    .map(|i| {
                        i.as_u64()
                            .and_then(|i| node_ids.get(i as usize).copied())
                            .ok_or_else(|| bad(format!("node {n} uses an unknown node")))
                    })
                    .collect::<Result<Vec<NodeId>>>()?;
                node_ids.push(g.call(layer, &ins)?);
            }
        }
        let pick = |key: &str| -> Result<Vec<NodeId>> {
            cfg[key]
                .as_array()
                .ok_or_else(|| bad(format!("needs '{key}'")))?
                .iter()
                .map(|i| {
                    i.as_u64()
                        .and_then(|i| node_ids.get(i as usize).copied())
                        .ok_or_else(|| bad(format!("'{key}' names an unknown node")))
                })
                .collect()
        };
        let (inputs, outputs) = (pick("inputs")?, pick("outputs")?);
        g.build(
            cfg["name"].as_str().unwrap_or("functional"),
            &inputs,
            &outputs,
        )
    }

    /// The one output of a model used as a layer.
    fn single_output<T>(&self, mut outs: Vec<T>) -> Result<T> {
        if outs.len() != 1 {
            return Err(Error::layer(
                &self.name,
                format!(
                    "has {} outputs; only single-output models can be used as layers",
                    outs.len()
                ),
            ));
        }
        Ok(outs.remove(0))
    }

    fn node_label(&self, i: usize) -> String {
        match &self.nodes[i].kind {
            NodeKind::Input { name } => name.clone(),
            NodeKind::Call { layer, .. } => self.layers[*layer].name().to_string(),
        }
    }

    /// One summary row per layer call (Keras' functional summary, with "Connected to").
    pub(crate) fn rows(&self) -> Vec<SummaryRow> {
        let mut rows = Vec::new();
        let mut counted = vec![false; self.layers.len()];
        for node in &self.nodes {
            let row = match &node.kind {
                NodeKind::Input { name } => SummaryRow {
                    name: name.clone(),
                    class_name: "InputLayer".into(),
                    output_shape: node.shape.clone(),
                    params: 0,
                    connected_to: vec![],
                },
                NodeKind::Call { layer, inputs } => {
                    let l = &self.layers[*layer];
                    let params = if counted[*layer] {
                        0
                    } else {
                        counted[*layer] = true;
                        l.weights().iter().map(Param::numel).sum()
                    };
                    SummaryRow {
                        name: l.name().to_string(),
                        class_name: l.class_name().into(),
                        output_shape: node.shape.clone(),
                        params,
                        connected_to: inputs.iter().map(|&j| self.node_label(j)).collect(),
                    }
                }
            };
            rows.push(row);
        }
        rows
    }
}

impl Layer for Functional {
    fn class_name(&self) -> &'static str {
        "Functional"
    }

    model_layer_methods!();

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        self.single_output(self.infer(input_shapes)?)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        self.single_output(self.run(inputs, ctx)?)
    }

    fn config(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Input { name } => json!({"input": name, "shape": n.shape}),
                NodeKind::Call { layer, inputs } => json!({"layer": layer, "inputs": inputs}),
            })
            .collect();
        json!({
            "name": self.name,
            "layers": layer_configs(&self.layers),
            "nodes": nodes,
            "inputs": self.inputs,
            "outputs": self.outputs,
        })
    }
}

impl Network for Functional {
    fn class_name(&self) -> &'static str {
        "Functional"
    }

    fn forward(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        self.run(inputs, ctx)
    }

    fn input_shapes(&self) -> Vec<Shape> {
        self.inputs
            .iter()
            .map(|&i| self.nodes[i].shape.clone())
            .collect()
    }

    fn output_shapes(&self) -> Vec<Shape> {
        self.outputs
            .iter()
            .map(|&i| self.nodes[i].shape.clone())
            .collect()
    }

    model_network_methods!();

    fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|&o| self.node_label(o)).collect()
    }

    fn summary_rows(&self) -> Vec<SummaryRow> {
        self.rows()
    }
}
