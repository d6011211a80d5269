//! Functional models: graphs of layers with several inputs and outputs, branches, shared
//! layers and nested models (Keras' functional API, with explicit handles instead of symbolic
//! tensors).
//!
//! A graph node is a model input or one call of a layer; a call of a multi-output layer (or of
//! a nested model with several outputs) yields several values, and a [`NodeId`] names one of
//! them (`node`, `output index`). Saved configs write a value as the node number when it is
//! output 0 (the format of single-output graphs, so older files load) and as `[node, index]`
//! otherwise.

use crate::layer::{only_output, CallCtx, Layer, Shape};
use crate::network::{
    layer_configs, layers_from_configs, model_layer_methods, model_network_methods, Network,
    NetworkExt,
};
use crate::sequential::{check_input, snake_case};
use crate::summary::SummaryRow;
use crate::{Error, Param, Result};
use ferrovision_tensor::Tensor;
use serde_json::{json, Value};

/// A value in a graph under construction: a model input or one output of a layer call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(usize, usize);

impl NodeId {
    /// Which output of its layer call this value is (0 for inputs and single-output layers).
    pub fn output_index(self) -> usize {
        self.1
    }
}

/// A layer added to a graph; call it several times to share its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerId(usize);

#[derive(Debug, Clone)]
enum NodeKind {
    Input {
        name: String,
    },
    Call {
        layer: usize,
        inputs: Vec<(usize, usize)>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    /// One shape per output (inputs have one).
    shapes: Vec<Shape>,
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
            shapes: vec![full],
        });
        NodeId(self.nodes.len() - 1, 0)
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

    /// Calls a single-output layer on nodes, building it on its first call; returns the output
    /// node (an error for a layer with several outputs: use [`Graph::call_multi`]).
    pub fn call(&mut self, layer: LayerId, inputs: &[NodeId]) -> Result<NodeId> {
        let outs = self.call_multi(layer, inputs)?;
        only_output(self.layers[layer.0].as_ref(), outs)
    }

    /// Calls a layer on nodes, building it on its first call; returns one node per output of
    /// the layer (a multi-output layer or a nested model with several outputs).
    pub fn call_multi(&mut self, layer: LayerId, inputs: &[NodeId]) -> Result<Vec<NodeId>> {
        let shapes: Vec<Shape> = inputs
            .iter()
            .map(|n| {
                self.shape(*n).cloned().ok_or_else(|| {
                    Error::config(format!("node {}:{} is not in this graph", n.0, n.1))
                })
            })
            .collect::<Result<_>>()?;
        let l = self
            .layers
            .get_mut(layer.0)
            .ok_or_else(|| Error::config(format!("layer {} is not in this graph", layer.0)))?;
        l.build(&shapes)?;
        let out_shapes = l.output_shapes_for(&shapes)?;
        let n_out = out_shapes.len();
        self.nodes.push(Node {
            kind: NodeKind::Call {
                layer: layer.0,
                inputs: inputs.iter().map(|n| (n.0, n.1)).collect(),
            },
            shapes: out_shapes,
        });
        let node = self.nodes.len() - 1;
        Ok((0..n_out).map(|i| NodeId(node, i)).collect())
    }

    /// Adds a layer and calls it once.
    pub fn apply(&mut self, layer: impl Layer + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.add_layer(layer);
        self.call(id, inputs)
    }

    /// Adds a layer (or a nested model) and calls it once; one node per output.
    pub fn apply_multi(
        &mut self,
        layer: impl Layer + 'static,
        inputs: &[NodeId],
    ) -> Result<Vec<NodeId>> {
        let id = self.add_layer(layer);
        self.call_multi(id, inputs)
    }

    /// The symbolic shape of a value (batch axis first).
    pub fn shape(&self, node: NodeId) -> Option<&Shape> {
        self.nodes.get(node.0).and_then(|n| n.shapes.get(node.1))
    }

    /// Finishes the model with these inputs and outputs. Every input an output depends on must
    /// be listed; layers no output uses are dropped.
    pub fn build(self, name: &str, inputs: &[NodeId], outputs: &[NodeId]) -> Result<Functional> {
        let n = self.nodes.len();
        for id in inputs.iter().chain(outputs) {
            if self.shape(*id).is_none() {
                return Err(Error::config(format!(
                    "node {}:{} is not in this graph",
                    id.0, id.1
                )));
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
                    for &(j, _) in ins {
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
                        inputs: inputs.iter().map(|&(j, k)| (node_map[j], k)).collect(),
                    }
                }
            };
            node_map[i] = nodes.len();
            nodes.push(Node {
                kind,
                shapes: node.shapes.clone(),
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
            outputs: outputs.iter().map(|x| (node_map[x.0], x.1)).collect(),
        })
    }
}

/// A model defined as a graph of layers (see [`Graph`]).
pub struct Functional {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<Node>,
    /// Input nodes.
    inputs: Vec<usize>,
    /// Output values: (node, output index).
    outputs: Vec<(usize, usize)>,
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
        let mut values: Vec<Option<Vec<Tensor>>> = vec![None; self.nodes.len()];
        for (&slot, x) in self.inputs.iter().zip(inputs) {
            check_input(&self.name, &self.nodes[slot].shapes[0], x)?;
            values[slot] = Some(vec![x.clone()]);
        }
        // Free intermediate values once their last consumer ran.
        let mut last_use = vec![0usize; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { inputs, .. } = &node.kind {
                for &(j, _) in inputs {
                    last_use[j] = i;
                }
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { layer, inputs } = &node.kind {
                let args: Vec<Tensor> = inputs
                    .iter()
                    .map(|&(j, k)| {
                        values[j].as_ref().expect("nodes run in topological order")[k].clone()
                    })
                    .collect();
                let layer = &self.layers[*layer];
                let outs = layer.call_outputs(&args, ctx)?;
                if outs.len() != node.shapes.len() {
                    return Err(Error::layer(
                        layer.name(),
                        format!(
                            "returned {} outputs, its output_shapes_for gave {}",
                            outs.len(),
                            node.shapes.len()
                        ),
                    ));
                }
                values[i] = Some(outs);
                for &(j, _) in inputs {
                    if last_use[j] == i && !self.outputs.iter().any(|o| o.0 == j) {
                        values[j] = None;
                    }
                }
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&(o, k)| values[o].as_ref().expect("outputs are computed")[k].clone())
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
        let mut shapes: Vec<Vec<Shape>> = self.nodes.iter().map(|n| n.shapes.clone()).collect();
        for (&slot, s) in self.inputs.iter().zip(input_shapes) {
            shapes[slot] = vec![s.clone()];
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Call { layer, inputs } = &node.kind {
                let ins: Vec<Shape> = inputs.iter().map(|&(j, k)| shapes[j][k].clone()).collect();
                shapes[i] = self.layers[*layer].output_shapes_for(&ins)?;
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|&(o, k)| shapes[o][k].clone())
            .collect())
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
        // One entry per node: its values (one per output).
        let mut node_ids: Vec<Vec<NodeId>> = Vec::new();
        // A value: `node` (output 0) or `[node, index]`.
        let value = |v: &Value, node_ids: &[Vec<NodeId>]| -> Option<NodeId> {
            let (node, idx) = match v {
                Value::Array(a) if a.len() == 2 => (a[0].as_u64()?, a[1].as_u64()?),
                _ => (v.as_u64()?, 0),
            };
            node_ids.get(node as usize)?.get(idx as usize).copied()
        };
        for n in nodes {
            if let Some(name) = n["input"].as_str() {
                let shape: Shape = serde_json::from_value(n["shape"].clone())
                    .map_err(|e| bad(format!("input '{name}': bad shape: {e}")))?;
                node_ids.push(vec![g.input(name, shape.get(1..).unwrap_or(&[]))]);
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
                        value(i, &node_ids)
                            .ok_or_else(|| bad(format!("node {n} uses an unknown node")))
                    })
                    .collect::<Result<Vec<NodeId>>>()?;
                node_ids.push(g.call_multi(layer, &ins)?);
            }
        }
        let pick = |key: &str| -> Result<Vec<NodeId>> {
            cfg[key]
                .as_array()
                .ok_or_else(|| bad(format!("needs '{key}'")))?
                .iter()
                .map(|i| {
                    value(i, &node_ids).ok_or_else(|| bad(format!("'{key}' names an unknown node")))
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

    /// A value's name: the input or layer name, `<layer>_<index>` for an output of a
    /// multi-output layer (output names key per-output losses and logs).
    fn node_label(&self, (i, k): (usize, usize)) -> String {
        match &self.nodes[i].kind {
            NodeKind::Input { name } => name.clone(),
            NodeKind::Call { layer, .. } if self.nodes[i].shapes.len() == 1 => {
                self.layers[*layer].name().to_string()
            }
            NodeKind::Call { layer, .. } => format!("{}_{k}", self.layers[*layer].name()),
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
                    output_shapes: node.shapes.clone(),
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
                        output_shapes: node.shapes.clone(),
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

/// A value in a saved config: the node number for output 0 (the single-output format), else
/// `[node, index]`.
fn value_json((node, k): (usize, usize)) -> Value {
    if k == 0 {
        json!(node)
    } else {
        json!([node, k])
    }
}

impl Layer for Functional {
    fn class_name(&self) -> &'static str {
        "Functional"
    }

    model_layer_methods!();

    fn output_shape(&self, input_shapes: &[Shape]) -> Result<Shape> {
        only_output(self, self.infer(input_shapes)?)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Tensor> {
        only_output(self, self.run(inputs, ctx)?)
    }

    fn output_shapes_for(&self, input_shapes: &[Shape]) -> Result<Vec<Shape>> {
        self.infer(input_shapes)
    }

    fn call_outputs(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> Result<Vec<Tensor>> {
        self.run(inputs, ctx)
    }

    fn config(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Input { name } => json!({"input": name, "shape": n.shapes[0]}),
                NodeKind::Call { layer, inputs } => {
                    let ins: Vec<Value> = inputs.iter().map(|&v| value_json(v)).collect();
                    json!({"layer": layer, "inputs": ins})
                }
            })
            .collect();
        json!({
            "name": self.name,
            "layers": layer_configs(&self.layers),
            "nodes": nodes,
            "inputs": self.inputs,
            "outputs": self.outputs.iter().map(|&v| value_json(v)).collect::<Vec<_>>(),
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
            .map(|&i| self.nodes[i].shapes[0].clone())
            .collect()
    }

    fn output_shapes(&self) -> Vec<Shape> {
        self.outputs
            .iter()
            .map(|&(i, k)| self.nodes[i].shapes[k].clone())
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
