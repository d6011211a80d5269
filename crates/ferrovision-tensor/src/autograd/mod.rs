//! Reverse-mode automatic differentiation over a graph recorded while ops run (like
//! TensorFlow's GradientTape, always on unless inside [`no_grad`]).
//!
//! Each op whose input requires a gradient attaches a [`Node`] to its output. The node holds
//! the typed op record ([`Op`]: kind and attributes), one input record per input (the edge to
//! the input's node or leaf variable, its shape and dtype), the output's shape and dtype, and
//! what the gradient needs, taken once by `backward`:
//!
//! - for the engine's ops, the op family's gradient rule (a [`GradRule`] function such as
//!   `ops::binary::grad`, which matches on the `Op`) and the values the forward pass saved for
//!   it ([`Saved`]: tensor handles plus optional op-specific state such as argmax indices);
//! - for [`Op::Custom`] ops, the user's backward closure.
//!
//! `backward` runs the nodes in reverse topological order and drops the saved values as soon as
//! a node has run; the op record stays, so [`graph::walk`] works before and after a backward.

pub mod graph;
mod op;

pub use op::{Cmp, Interpolation, Logic, Op};

use crate::{DType, Error, Result, Tensor};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send>;

/// The gradient rule of an op family: from the recorded op, its saved values ([`GradCtx`]) and
/// the output gradient, one optional gradient per input (shaped like that input). Runs with
/// recording disabled.
pub(crate) type GradRule = fn(&Op, &mut GradCtx<'_>, &Tensor) -> Result<Vec<Option<Tensor>>>;

/// Values an op's forward pass keeps for its gradient rule.
#[derive(Default)]
pub(crate) struct Saved {
    /// Tensor handles (usually detached inputs or the output).
    pub tensors: Vec<Tensor>,
    /// Op-specific state that is not a tensor (masks, argmax indices, statistics).
    pub state: Option<Box<dyn std::any::Any + Send>>,
}

impl Saved {
    /// Nothing saved (the rule needs only the op, the shapes and the gradient).
    pub fn none() -> Saved {
        Saved::default()
    }

    /// These tensors.
    pub fn tensors(tensors: Vec<Tensor>) -> Saved {
        Saved {
            tensors,
            state: None,
        }
    }

    /// These tensors and op-specific state.
    pub fn with_state<T: Send + 'static>(tensors: Vec<Tensor>, state: T) -> Saved {
        Saved {
            tensors,
            state: Some(Box::new(state)),
        }
    }
}

/// What a [`GradRule`] sees of its node: the saved values and the inputs' shapes and needs.
pub(crate) struct GradCtx<'a> {
    op: &'a Op,
    inputs: &'a dyn RuleInputs,
    saved: Saved,
}

/// The recorded inputs as a gradient rule sees them: a graph node's, or a traced training
/// step's ([`crate::trace`]).
pub(crate) trait RuleInputs {
    /// True when input `i` takes part in autodiff.
    fn needs(&self, i: usize) -> bool;
    /// The shape input `i` had.
    fn shape(&self, i: usize) -> &[usize];
    fn len(&self) -> usize;
}

impl RuleInputs for Vec<Input> {
    fn needs(&self, i: usize) -> bool {
        self.get(i).is_some_and(|x| x.edge.is_some())
    }
    fn shape(&self, i: usize) -> &[usize] {
        self.get(i).map_or(&[], |x| x.shape.as_slice())
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// Runs one op's gradient (`backward`, taken from its node or a traced step) on the output
/// gradient `g`, and checks the result: one entry per recorded input, each shaped like it.
pub(crate) fn run_gradient(
    op: &Op,
    inputs: &dyn RuleInputs,
    backward: Backward,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let grads = match backward {
        Backward::Closure(f) => f(g)?,
        Backward::Rule(rule, saved) => rule(op, &mut GradCtx { op, inputs, saved }, g)?,
    };
    if grads.len() != inputs.len() {
        return Err(Error::Backward(format!(
            "op '{}' returned {} gradients for {} inputs",
            op.name(),
            grads.len(),
            inputs.len()
        )));
    }
    for (i, gi) in grads.iter().enumerate() {
        if let Some(gi) = gi {
            if gi.shape() != inputs.shape(i) {
                return Err(Error::Backward(format!(
                    "op '{}' produced a gradient of shape {:?} for an input of shape {:?}",
                    op.name(),
                    gi.shape(),
                    inputs.shape(i)
                )));
            }
        }
    }
    Ok(grads)
}

impl GradCtx<'_> {
    /// Saved tensor `i`.
    pub fn saved(&self, i: usize) -> Result<&Tensor> {
        self.saved
            .tensors
            .get(i)
            .ok_or_else(|| self.internal("a saved tensor is missing"))
    }

    /// The op-specific state, moved out (a rule takes it once).
    pub fn take_state<T: 'static>(&mut self) -> Result<Box<T>> {
        match self.saved.state.take().map(|s| s.downcast::<T>()) {
            Some(Ok(s)) => Ok(s),
            _ => Err(self.internal("its saved state is missing or of another type")),
        }
    }

    /// True when input `i` takes part in autodiff (so wants a gradient).
    pub fn needs(&self, i: usize) -> bool {
        self.inputs.needs(i)
    }

    /// The shape input `i` had.
    pub fn input_shape(&self, i: usize) -> &[usize] {
        self.inputs.shape(i)
    }

    /// The number of recorded inputs.
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// An error for a rule called with a record it does not handle (an engine bug).
    pub fn internal(&self, what: &str) -> Error {
        Error::Backward(format!(
            "internal error in the gradient of op '{}': {what}",
            self.op.name()
        ))
    }

    /// The error for an op kind a family's rule does not cover (an engine bug).
    pub fn unexpected(&self) -> Error {
        self.internal("the op family's gradient rule does not cover it")
    }
}

/// A node's gradient, taken by the first backward through it.
pub(crate) enum Backward {
    /// The engine's ops: the family rule and the saved values.
    Rule(GradRule, Saved),
    /// [`Op::Custom`]: the user's closure.
    Closure(BackwardFn),
}

/// Ids of graph nodes and leaf variables (one counter: an id names one or the other).
static NEXT_GRAPH_ID: AtomicU64 = AtomicU64::new(1);

fn next_graph_id() -> u64 {
    NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed)
}

/// Gradient slot of a leaf variable (a tensor created with `requires_grad_(true)`).
pub struct LeafCell {
    id: u64,
    grad: Mutex<Option<Tensor>>,
}

impl Default for LeafCell {
    fn default() -> Self {
        LeafCell {
            id: next_graph_id(),
            grad: Mutex::new(None),
        }
    }
}

/// One recorded op in the graph.
pub struct Node {
    id: u64,
    op: Op,
    inputs: Vec<Input>,
    out_shape: Vec<usize>,
    out_dtype: DType,
    backward: Mutex<Option<Backward>>,
}

/// One input of a recorded op: where its value came from, and its shape and dtype.
struct Input {
    edge: Option<Edge>,
    /// `Tensor::id` of the input handle (names a constant input in the graph walk).
    tensor_id: u64,
    shape: Vec<usize>,
    dtype: DType,
}

#[derive(Clone)]
enum Edge {
    Node(Arc<Node>),
    Leaf(Arc<LeafCell>),
}

/// How a tensor takes part in autodiff.
#[derive(Clone)]
pub(crate) enum AutogradMeta {
    Leaf(Arc<LeafCell>),
    Node(Arc<Node>),
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Set while a traced training step replays an op ([`collect_backward`]).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
    /// What the ops run under [`collect_backward`] recorded: (output id, gradient).
    static COLLECTED: std::cell::RefCell<Vec<(u64, Backward)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` (one op of a traced training step, [`crate::trace`]) so that the op records its
/// gradient rule and saved values for the plan instead of attaching a graph node: returns
/// `f`'s result and the backward recorded for `out_id(result)`, the op's output (`None` when
/// the op recorded nothing for it). The plan runs the rules itself in its backward pass.
///
/// Records are matched to the output, and the list is kept per call, so that work a pool
/// thread picks up while this op waits (another caller's) cannot mix its records in.
pub(crate) fn collect_backward<R>(
    f: impl FnOnce() -> R,
    out_id: impl FnOnce(&R) -> Option<u64>,
) -> (R, Option<Backward>) {
    struct Reset(bool, Vec<(u64, Backward)>);
    impl Drop for Reset {
        fn drop(&mut self) {
            COLLECTING.with(|c| c.set(self.0));
            COLLECTED.with(|v| std::mem::swap(&mut *v.borrow_mut(), &mut self.1));
        }
    }
    let mut reset = Reset(
        COLLECTING.with(|c| c.replace(true)),
        COLLECTED.with(|v| std::mem::take(&mut *v.borrow_mut())),
    );
    // The gradient mode stays the caller's (on): kernels choose their training paths by
    // it, as eagerly.
    let r = f();
    let mine = COLLECTED.with(|v| std::mem::take(&mut *v.borrow_mut()));
    COLLECTED.with(|v| *v.borrow_mut() = std::mem::take(&mut reset.1));
    let id = out_id(&r);
    let backward = mine
        .into_iter()
        .rev()
        .find(|(o, _)| Some(*o) == id)
        .map(|(_, b)| b);
    (r, backward)
}

/// Runs `f` with this thread's engine state set for a new job: gradient mode `grad`, no trace
/// capture, no collecting; restores the state after. Pool jobs run through it
/// ([`crate::parallel::on_pool`]): a pool thread waiting inside one job's op may run another
/// caller's job, which must not see the first one's modes.
#[cfg_attr(not(feature = "threads"), allow(dead_code))]
pub(crate) fn isolated<R>(grad: bool, f: impl FnOnce() -> R) -> R {
    struct Restore {
        grad: bool,
        collecting: bool,
        tracing: bool,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.grad));
            COLLECTING.with(|c| c.set(self.collecting));
            crate::trace::set_tracing(self.tracing);
        }
    }
    let _restore = Restore {
        grad: GRAD_ENABLED.with(|g| g.replace(grad)),
        collecting: COLLECTING.with(|c| c.replace(false)),
        tracing: crate::trace::set_tracing(false),
    };
    f()
}

fn is_collecting() -> bool {
    COLLECTING.with(Cell::get)
}

/// True unless the current thread is inside a [`no_grad`] scope.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording any op for autodiff (inference, optimizer updates).
///
/// ```
/// use ferrovision_tensor::{no_grad, Tensor};
/// let w = Tensor::ones(&[2]).requires_grad_(true);
/// let y = no_grad(|| w.mul_scalar(2.0)).unwrap();
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables gradient recording until dropped.
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let prev = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { prev }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

fn attach(out: Tensor, meta: AutogradMeta) -> Tensor {
    match Arc::try_unwrap(out.0) {
        Ok(mut inner) => {
            inner.autograd = Some(meta);
            Tensor(Arc::new(inner))
        }
        Err(shared) => Tensor::from_parts(
            shared.storage.clone(),
            shared.layout.clone(),
            shared.dtype,
            Some(meta),
        ),
    }
}

/// True when an op on `inputs` is recorded: gradients are enabled and some input needs one, or
/// a [`crate::trace`] is capturing this thread's ops. Ops check this before building their op
/// record and saving anything expensive for the gradient.
pub(crate) fn is_recorded(inputs: &[&Tensor]) -> bool {
    needs_node(inputs) || crate::trace::is_tracing() || is_collecting()
}

/// True when an op on `inputs` gets a graph node (gradients on, some input needs one).
fn needs_node(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
}

/// Records `out = op(inputs)` with its typed op record, the family's gradient rule and the
/// values saved for it, when any input requires a gradient.
pub(crate) fn record_rule(
    out: Tensor,
    op: Op,
    inputs: &[&Tensor],
    rule: GradRule,
    saved: Saved,
) -> Tensor {
    attach_node(out, op, inputs, None, Backward::Rule(rule, saved))
}

/// [`record_rule`] for an op whose recorded inputs are not all it reads: `operands` lists
/// everything a replay needs, in the op's own order (absent optionals as `None`), for a
/// [`crate::trace`] to capture (batch norm's running statistics, for one).
pub(crate) fn record_rule_operands(
    out: Tensor,
    op: Op,
    inputs: &[&Tensor],
    operands: &[Option<&Tensor>],
    rule: GradRule,
    saved: Saved,
) -> Tensor {
    attach_node(out, op, inputs, Some(operands), Backward::Rule(rule, saved))
}

/// Records an op whose gradient is a closure (user-defined ops; see [`record`]).
pub(crate) fn record_closure(
    out: Tensor,
    op: Op,
    inputs: &[&Tensor],
    backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
) -> Tensor {
    if !is_recorded(inputs) {
        return out;
    }
    attach_node(out, op, inputs, None, Backward::Closure(Box::new(backward)))
}

fn attach_node(
    out: Tensor,
    op: Op,
    inputs: &[&Tensor],
    operands: Option<&[Option<&Tensor>]>,
    backward: Backward,
) -> Tensor {
    if is_collecting() {
        COLLECTED.with(|v| v.borrow_mut().push((out.id(), backward)));
        return out;
    }
    let traced = crate::trace::is_tracing().then(|| op.clone());
    let out = if needs_node(inputs) {
        let node = Node {
            id: next_graph_id(),
            op,
            inputs: inputs
                .iter()
                .map(|t| Input {
                    edge: t.edge(),
                    tensor_id: t.id(),
                    shape: t.shape().to_vec(),
                    dtype: t.dtype(),
                })
                .collect(),
            out_shape: out.shape().to_vec(),
            out_dtype: out.dtype(),
            backward: Mutex::new(Some(backward)),
        };
        attach(out, AutogradMeta::Node(Arc::new(node)))
    } else {
        out
    };
    if let Some(op) = traced {
        match operands {
            Some(operands) => crate::trace::capture(op, operands, inputs, &out),
            None => {
                let operands: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
                crate::trace::capture(op, &operands, inputs, &out);
            }
        }
    }
    out
}

/// Records an op with no gradient (e.g. an integer-valued output): asking for a gradient
/// through it fails with [`Error::NoGradient`] naming the op.
pub(crate) fn record_op_non_differentiable(out: Tensor, op: Op, inputs: &[&Tensor]) -> Tensor {
    record_rule(out, op, inputs, no_gradient, Saved::none())
}

/// The rule of ops without a gradient.
fn no_gradient(op: &Op, _: &mut GradCtx<'_>, _: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Err(Error::NoGradient { op: op.name() })
}

/// Records a user-defined op `out = name(inputs)` (an [`Op::Custom`] node) with its backward
/// closure when any input requires a gradient.
///
/// `backward` receives the gradient of the output (same shape as `out`) and returns one entry
/// per input, in order: `Some(grad)` with the input's shape, or `None` when that input gets no
/// gradient. It runs with recording disabled.
pub fn record(
    out: Tensor,
    name: &'static str,
    inputs: &[&Tensor],
    backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
) -> Tensor {
    record_closure(out, Op::Custom { name }, inputs, backward)
}

/// Records a user-defined op that has no gradient: asking for a gradient through it fails with
/// [`Error::NoGradient`] naming `name`.
pub fn record_non_differentiable(out: Tensor, name: &'static str, inputs: &[&Tensor]) -> Tensor {
    record_op_non_differentiable(out, Op::Custom { name }, inputs)
}

/// Applies a user-defined differentiable function.
///
/// `forward` runs without recording on the inputs; `backward` maps the output gradient to one
/// optional gradient per input. This is how gradient reversal or straight-through estimators are
/// written:
///
/// ```
/// use ferrovision_tensor::{custom_op, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap().requires_grad_(true);
/// // Gradient reversal: identity forward, negated gradient backward.
/// let y = custom_op("grad_reverse", &[&x], |xs| Ok(xs[0].clone()), |g| Ok(vec![Some(g.neg()?)])).unwrap();
/// y.sum_all().unwrap().backward().unwrap();
/// assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), vec![-1.0, -1.0]);
/// ```
pub fn custom_op(
    name: &'static str,
    inputs: &[&Tensor],
    forward: impl FnOnce(&[Tensor]) -> Result<Tensor>,
    backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
) -> Result<Tensor> {
    let detached: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let out = no_grad(|| forward(&detached))?;
    // A fresh handle so that an identity forward does not alias the input's graph node.
    let out = out.view_with_layout(out.layout().clone());
    Ok(record(out, name, inputs, backward))
}

impl Tensor {
    /// True when gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.autograd.is_some()
    }

    /// True for a tensor with no recorded producer (a variable or a constant).
    pub fn is_leaf(&self) -> bool {
        !matches!(self.0.autograd, Some(AutogradMeta::Node(_)))
    }

    /// A handle on the same data that is a leaf variable collecting gradients (`true`) or a
    /// constant (`false`).
    pub fn requires_grad_(self, requires: bool) -> Tensor {
        let meta = requires.then(|| AutogradMeta::Leaf(Arc::new(LeafCell::default())));
        Tensor::from_parts(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            meta,
        )
    }

    /// A handle on the same data cut off from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            None,
        )
    }

    /// The name of the op that produced this tensor, if it was recorded.
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        match &self.0.autograd {
            Some(AutogradMeta::Node(n)) => Some(n.op.name()),
            _ => None,
        }
    }

    /// The accumulated gradient of a leaf variable.
    pub fn grad(&self) -> Option<Tensor> {
        match &self.0.autograd {
            Some(AutogradMeta::Leaf(cell)) => {
                cell.grad.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            _ => None,
        }
    }

    /// Clears the accumulated gradient of a leaf variable.
    pub fn zero_grad(&self) {
        if let Some(AutogradMeta::Leaf(cell)) = &self.0.autograd {
            *cell.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Replaces the accumulated gradient of a leaf variable (used by gradient clipping).
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        match &self.0.autograd {
            Some(AutogradMeta::Leaf(cell)) => {
                if let Some(g) = &grad {
                    if g.shape() != self.shape() {
                        return Err(Error::shape_mismatch("set_grad", self.shape(), g.shape()));
                    }
                }
                *cell.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
                Ok(())
            }
            _ => Err(Error::invalid(
                "set_grad",
                "only leaf variables hold gradients",
            )),
        }
    }

    fn edge(&self) -> Option<Edge> {
        match &self.0.autograd {
            None => None,
            Some(AutogradMeta::Leaf(c)) => Some(Edge::Leaf(c.clone())),
            Some(AutogradMeta::Node(n)) => Some(Edge::Node(n.clone())),
        }
    }

    /// Back-propagates from a one-element tensor, adding d(self)/d(leaf) into every leaf
    /// variable's `grad()`. The graph is freed as it goes; call the forward pass again for a
    /// second backward.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Backward(format!(
                "backward() needs a one-element tensor, got shape {:?}; pass a seed gradient with backward_with",
                self.shape()
            )));
        }
        let seed = Tensor::ones(self.shape());
        self.backward_with(&seed)
    }

    /// Back-propagates a seed gradient of the same shape as `self`.
    pub fn backward_with(&self, seed: &Tensor) -> Result<()> {
        run_backward(self, seed, &mut |cell, g| accumulate_leaf(cell, g))
    }
}

fn accumulate_leaf(cell: &Arc<LeafCell>, g: Tensor) -> Result<()> {
    accumulate(&mut cell.grad.lock().unwrap_or_else(|e| e.into_inner()), g)
}

/// Adds the gradient `g` into `slot` (the first contribution is kept as is: `prev + g` after).
pub(crate) fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        None => g,
        Some(prev) => add_same_shape(&prev, &g)?,
    });
    Ok(())
}

/// `a + b` for equal shapes, without recording (gradient accumulation).
fn add_same_shape(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(
            "grad accumulate",
            a.shape(),
            b.shape(),
        ));
    }
    // One vectorised, threaded pass writing `a + b` (not a copy of `a`, then `b` added):
    // residual networks sum a full activation's gradient here at every skip connection.
    crate::ops::broadcast::broadcast_map2("grad accumulate", a, b, |x, y| x + y)
}

/// Gradients of `output` with respect to each of `inputs` (leaf variables), returned instead of
/// accumulated into `grad()` (like `tf.GradientTape.gradient`). `None` where an input does not
/// influence the output.
pub fn grad(output: &Tensor, inputs: &[&Tensor]) -> Result<Vec<Option<Tensor>>> {
    let mut wanted: HashMap<usize, usize> = HashMap::new();
    for (i, t) in inputs.iter().enumerate() {
        match &t.0.autograd {
            Some(AutogradMeta::Leaf(c)) => {
                wanted.insert(Arc::as_ptr(c) as usize, i);
            }
            _ => {
                return Err(Error::Backward(format!(
                    "grad: input {i} is not a leaf variable (create it with requires_grad_(true))"
                )))
            }
        }
    }
    if output.numel() != 1 {
        return Err(Error::Backward(format!(
            "grad needs a one-element output, got shape {:?}",
            output.shape()
        )));
    }
    let mut out: Vec<Option<Tensor>> = vec![None; inputs.len()];
    let seed = Tensor::ones(output.shape());
    run_backward(output, &seed, &mut |cell, g| {
        if let Some(&i) = wanted.get(&(Arc::as_ptr(cell) as usize)) {
            out[i] = Some(match out[i].take() {
                None => g,
                Some(prev) => add_same_shape(&prev, &g)?,
            });
        }
        Ok(())
    })?;
    Ok(out)
}

fn run_backward(
    root: &Tensor,
    seed: &Tensor,
    sink: &mut dyn FnMut(&Arc<LeafCell>, Tensor) -> Result<()>,
) -> Result<()> {
    if seed.shape() != root.shape() {
        return Err(Error::shape_mismatch(
            "backward seed",
            root.shape(),
            seed.shape(),
        ));
    }
    let seed = seed.detach();
    let root_node =
        match &root.0.autograd {
            None => return Err(Error::Backward(
                "this tensor does not require grad: no input of the computation was a variable \
                 (requires_grad_(true)) or it was computed inside no_grad"
                    .into(),
            )),
            Some(AutogradMeta::Leaf(c)) => return sink(c, seed),
            Some(AutogradMeta::Node(n)) => n.clone(),
        };
    let _guard = NoGradGuard::new();

    // Count, for every node reachable from the root, how many edges point at it.
    let key = |n: &Arc<Node>| Arc::as_ptr(n) as usize;
    let mut pending: HashMap<usize, usize> = HashMap::new();
    let mut stack = vec![root_node.clone()];
    pending.insert(key(&root_node), 0);
    while let Some(n) = stack.pop() {
        for e in n.inputs.iter().filter_map(|i| i.edge.as_ref()) {
            if let Edge::Node(child) = e {
                let k = key(child);
                match pending.get_mut(&k) {
                    Some(c) => *c += 1,
                    None => {
                        pending.insert(k, 1);
                        stack.push(child.clone());
                    }
                }
            }
        }
    }

    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(key(&root_node), seed);
    let mut ready = vec![root_node];
    while let Some(node) = ready.pop() {
        let g = grads.remove(&key(&node));
        let backward = node
            .backward
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let input_grads: Vec<Option<Tensor>> = match (g, backward) {
            (Some(g), Some(b)) => run_gradient(&node.op, &node.inputs, b, &g)?,
            (Some(_), None) => {
                return Err(Error::Backward(format!(
                    "the graph through op '{}' was already freed by an earlier backward; run the \
                     forward pass again",
                    node.op.name()
                )))
            }
            // No gradient reached this node (all paths gave None): pass None on.
            (None, b) => {
                drop(b);
                vec![None; node.inputs.len()]
            }
        };
        for (input, g) in node.inputs.iter().zip(input_grads) {
            match &input.edge {
                None => {}
                Some(Edge::Leaf(cell)) => {
                    if let Some(g) = g {
                        sink(cell, g)?;
                    }
                }
                Some(Edge::Node(child)) => {
                    let k = key(child);
                    if let Some(g) = g {
                        let merged = match grads.remove(&k) {
                            None => g,
                            Some(prev) => add_same_shape(&prev, &g)?,
                        };
                        grads.insert(k, merged);
                    }
                    let c = pending.get_mut(&k).expect("every child was counted");
                    *c -= 1;
                    if *c == 0 {
                        ready.push(child.clone());
                    }
                }
            }
        }
    }
    Ok(())
}
