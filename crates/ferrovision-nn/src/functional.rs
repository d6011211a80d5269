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
use std::collections::HashMap;

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

    /// Cuts the model at a layer's output: a model named `name` with the same inputs whose one
    /// output is the output of the (top-level) layer `layer` (output `index` of a multi-output
    /// layer: `"layer_1"`, as [`Network::output_names`] spells it). The layers up to the cut
    /// are moved, not copied, so their weights are the same [`Param`]s; the layers after it
    /// are dropped. Nest the result in a new [`Graph`] (under `name`, so its weights are
    /// `name/<layer>/<weight>`) to graft a new head onto the backbone. A layer called more
    /// than once cannot be a cut point (which call would it be?).
    pub fn cut_at(self, layer: &str, name: &str) -> Result<Functional> {
        let (node, index) = self.cut_point(layer)?;
        let inputs: Vec<NodeId> = self.inputs.iter().map(|&i| NodeId(i, 0)).collect();
        let graph = Graph {
            layers: self.layers,
            nodes: self.nodes,
        };
        graph.build(name, &inputs, &[NodeId(node, index)])
    }

    /// Splits the model at a layer's output into two models that compose back to it: the
    /// backbone (as [`Functional::cut_at`]: the same inputs, the cut as its one output) and
    /// the head (one input, `input`, of the cut's shape; the same outputs). Every layer moves
    /// into one of them with its weights, under the same name. Typical use: run the frozen
    /// backbone once over a dataset and train the head on the cached features. Errors when a
    /// connection crosses the cut (a layer after it reads a value from before it, other than
    /// the cut itself: a residual around the cut point) or a layer is called on both sides.
    ///
    /// ```
    /// use ferrovision_nn::{layers::Dense, Activation, Graph, Network, CallCtx};
    /// use ferrovision_nn::tensor::Tensor;
    /// let mut g = Graph::new();
    /// let x = g.input("x", &[Some(4)]);
    /// let h = g.apply(Dense::new(8).activation(Activation::Relu).named("features"), &[x])?;
    /// let y = g.apply(Dense::new(3).named("classes"), &[h])?;
    /// let net = g.build("net", &[x], &[y])?;
    /// let (backbone, head) = net.split_at("features", "backbone", "head")?;
    /// let input = Tensor::ones(&[2, 4]);
    /// let features = backbone.forward(&[input], &mut CallCtx::new(false))?;
    /// assert_eq!(features[0].shape(), &[2, 8]);
    /// let logits = head.forward(&features, &mut CallCtx::new(false))?;
    /// assert_eq!(logits[0].shape(), &[2, 3]);
    /// # Ok::<(), ferrovision_nn::Error>(())
    /// ```
    pub fn split_at(
        self,
        layer: &str,
        backbone_name: &str,
        head_name: &str,
    ) -> Result<(Functional, Functional)> {
        let (cut, index) = self.cut_point(layer)?;
        let n = self.nodes.len();
        // The nodes the cut needs (nodes are stored in topological order).
        let mut before = vec![false; n];
        before[cut] = true;
        for i in (0..=cut).rev() {
            if before[i] {
                if let NodeKind::Call { inputs, .. } = &self.nodes[i].kind {
                    for &(j, _) in inputs {
                        before[j] = true;
                    }
                }
            }
        }
        // The nodes the outputs need beyond the cut.
        let mut after = vec![false; n];
        for &(o, k) in &self.outputs {
            if (o, k) == (cut, index) {
                return Err(Error::config(format!(
                    "model '{}': '{layer}' is an output; there is no head after it",
                    self.name
                )));
            }
            if before[o] {
                return Err(Error::config(format!(
                    "model '{}': the output '{}' comes before the cut at '{layer}'",
                    self.name,
                    self.node_label((o, k))
                )));
            }
            after[o] = true;
        }
        for i in (0..n).rev() {
            if !after[i] {
                continue;
            }
            if let NodeKind::Call { inputs, layer: l } = &self.nodes[i].kind {
                for &(j, k) in inputs {
                    if (j, k) == (cut, index) {
                        continue;
                    }
                    if before[j] || matches!(self.nodes[j].kind, NodeKind::Input { .. }) {
                        return Err(Error::config(format!(
                            "model '{}': layer '{}' after the cut at '{layer}' reads '{}' from \
                             before it; split where no connection crosses",
                            self.name,
                            self.layers[*l].name(),
                            self.node_label((j, k))
                        )));
                    }
                    after[j] = true;
                }
            }
        }
        let layer_of = |i: usize| match &self.nodes[i].kind {
            NodeKind::Call { layer, .. } => Some(*layer),
            NodeKind::Input { .. } => None,
        };
        for i in (0..n).filter(|&i| after[i]) {
            let l = layer_of(i).expect("head nodes are calls");
            if (0..n).any(|j| before[j] && layer_of(j) == Some(l)) {
                return Err(Error::config(format!(
                    "model '{}': layer '{}' is called on both sides of the cut at '{layer}'",
                    self.name,
                    self.layers[l].name()
                )));
            }
        }
        // The head: a new input for the cut value, then the nodes after it, renumbered.
        let mut slots: Vec<Option<Box<dyn Layer>>> = self.layers.into_iter().map(Some).collect();
        let mut head_nodes = vec![Node {
            kind: NodeKind::Input {
                name: "input".into(),
            },
            shapes: vec![self.nodes[cut].shapes[index].clone()],
        }];
        let mut head_layers: Vec<Box<dyn Layer>> = Vec::new();
        let mut layer_map: HashMap<usize, usize> = HashMap::new();
        let mut node_map = vec![usize::MAX; n];
        for i in (0..n).filter(|&i| after[i]) {
            let NodeKind::Call { layer: l, inputs } = &self.nodes[i].kind else {
                unreachable!("head nodes are calls")
            };
            let mapped = *layer_map.entry(*l).or_insert_with(|| {
                head_layers.push(slots[*l].take().expect("each layer is taken once"));
                head_layers.len() - 1
            });
            let inputs = inputs
                .iter()
                .map(|&(j, k)| {
                    if (j, k) == (cut, index) {
                        (0, 0)
                    } else {
                        (node_map[j], k)
                    }
                })
                .collect();
            node_map[i] = head_nodes.len();
            head_nodes.push(Node {
                kind: NodeKind::Call {
                    layer: mapped,
                    inputs,
                },
                shapes: self.nodes[i].shapes.clone(),
            });
        }
        let head = Functional {
            name: head_name.to_string(),
            layers: head_layers,
            nodes: head_nodes,
            inputs: vec![0],
            outputs: self
                .outputs
                .iter()
                .map(|&(o, k)| (node_map[o], k))
                .collect(),
        };
        // The backbone: the remaining layers (a taken slot is never needed before the cut).
        let mut nodes = self.nodes;
        for (i, node) in nodes.iter_mut().enumerate() {
            if !before[i] {
                // Unneeded by the backbone; `build` drops it, but must not see a taken layer.
                node.kind = NodeKind::Input {
                    name: String::new(),
                };
            }
        }
        // The head's layers left their slots; weight-free stand-ins keep the indices (`build`
        // drops every layer the backbone does not call, the stand-ins among them).
        let layers: Vec<Box<dyn Layer>> = slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Box::new(crate::layers::Flatten::new())))
            .collect();
        let inputs: Vec<NodeId> = self.inputs.iter().map(|&i| NodeId(i, 0)).collect();
        let backbone =
            Graph { layers, nodes }.build(backbone_name, &inputs, &[NodeId(cut, index)])?;
        Ok((backbone, head))
    }

    /// The node and output index of the (top-level) layer output `layer` (`"name"` or
    /// `"name_k"` for output k of a multi-output layer), which must be called exactly once.
    fn cut_point(&self, layer: &str) -> Result<(usize, usize)> {
        let (base, index) = match self.layers.iter().position(|l| l.name() == layer) {
            Some(i) => (i, 0),
            None => {
                let split = layer.rsplit_once('_').and_then(|(b, k)| {
                    let i = self.layers.iter().position(|l| l.name() == b)?;
                    Some((i, k.parse::<usize>().ok()?))
                });
                split.ok_or_else(|| {
                    let names: Vec<&str> = self.layers.iter().map(|l| l.name()).collect();
                    Error::config(format!(
                        "model '{}': no layer '{layer}' to cut at (layers: {})",
                        self.name,
                        names.join(", ")
                    ))
                })?
            }
        };
        let calls: Vec<usize> = (0..self.nodes.len())
            .filter(
                |&i| matches!(self.nodes[i].kind, NodeKind::Call { layer, .. } if layer == base),
            )
            .collect();
        let node = match calls.as_slice() {
            [n] => *n,
            _ => {
                return Err(Error::config(format!(
                    "model '{}': layer '{layer}' is called {} times; cut at a layer called once",
                    self.name,
                    calls.len()
                )))
            }
        };
        if index >= self.nodes[node].shapes.len() {
            return Err(Error::config(format!(
                "model '{}': layer '{}' has {} output(s), no output {index}",
                self.name,
                self.layers[base].name(),
                self.nodes[node].shapes.len()
            )));
        }
        Ok((node, index))
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

    fn into_functional(self: Box<Self>) -> Option<Functional> {
        Some(*self)
    }
}
