//! The typed op record: what a recorded graph node computed.
//!
//! Every differentiable op records one [`Op`] value in the autograd node of its output: the op
//! kind and its attributes (strides, axes, scalars, modes...), in the form a consumer of the graph
//! needs (resolved axes, per-dimension strides and paddings), not the raw arguments. A traced
//! plan, an ONNX exporter or an int8 pass reads these through [`crate::autograd::graph`];
//! inputs and their shapes and dtypes live next to the op in the node, so an `Op` holds only
//! what the shapes do not already say.
//!
//! [`Op::name`] is the op's name as `grad_fn_name` and error messages show it (the public method
//! name, e.g. `"conv2d"`, `"max_pool2d"`).

use crate::ops::loss::Reduction;
use crate::ops::manip::PadMode;
use crate::ops::reduce::NormOrd;
use crate::DType;

/// How a resize op interpolates (the attribute of [`Op::Resize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Nearest neighbour (source index `floor(dst * in / out)`).
    Nearest,
    /// Linear per axis (bilinear in 2-D).
    Linear { align_corners: bool },
    /// Cubic per axis (bicubic in 2-D, A = -0.75).
    Cubic { align_corners: bool },
}

/// A comparison predicate (the attribute of [`Op::Compare`] and [`Op::CompareScalar`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// An elementwise logical op (the attribute of [`Op::Logical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    And,
    Or,
    Xor,
    Not,
}

/// One recorded op kind with its attributes.
///
/// Variants are grouped by family; `dims`/`axis` attributes are resolved (non-negative) axes of
/// the input. Spatial attributes (`kernel`, `stride`, `padding`, ...) have one entry per spatial
/// dim. New variants are added as ops are added, so match with a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    // ----- elementwise binary (broadcasting) -----
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,

    // ----- elementwise unary -----
    Neg,
    AddScalar {
        c: f32,
    },
    SubScalar {
        c: f32,
    },
    /// `c - x`.
    RsubScalar {
        c: f32,
    },
    MulScalar {
        c: f32,
    },
    DivScalar {
        c: f32,
    },
    PowScalar {
        p: f32,
    },
    Reciprocal,
    Square,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Exp,
    Log,
    Log1p,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    Relu6,
    LeakyRelu {
        slope: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu,
    /// Exact (erf) GELU.
    Gelu,
    /// Tanh-approximated GELU.
    GeluTanh,
    Softplus,
    Silu,
    HardSigmoid,
    HardSwish,
    Clamp {
        min: Option<f32>,
        max: Option<f32>,
    },

    // ----- dtype and layout -----
    ToDtype {
        from: DType,
        to: DType,
    },
    /// A contiguous copy of a strided view.
    Contiguous,
    /// Same elements, new shape (the output shape is the node's output shape).
    Reshape,
    Permute {
        perm: Vec<usize>,
    },
    /// Elements `start, start + step, ... < end` of `axis`.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    /// Broadcast view to the output shape.
    Expand,

    // ----- reductions -----
    Sum {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Mean {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Max {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Min {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Prod {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Var {
        dims: Vec<usize>,
        correction: usize,
        keepdim: bool,
    },
    Std {
        dims: Vec<usize>,
        correction: usize,
        keepdim: bool,
    },
    LogSumExp {
        dims: Vec<usize>,
        keepdim: bool,
    },
    Norm {
        ord: NormOrd,
        dims: Vec<usize>,
        keepdim: bool,
    },

    // ----- linear algebra -----
    /// Batched `a @ b` with broadcasting batch dims.
    MatMul,
    /// `x @ w (+ bias)` with `w` as `[in, out]`; `relu` when the ReLU is fused.
    Linear {
        relu: bool,
    },

    // ----- convolution -----
    /// N-d convolution (weight `[out, in / groups, k...]`); `padding` is (before, after) per
    /// spatial dim; `relu` when the ReLU is fused.
    Conv {
        stride: Vec<usize>,
        padding: Vec<(usize, usize)>,
        dilation: Vec<usize>,
        groups: usize,
        relu: bool,
    },
    /// N-d transposed convolution (weight `[in, out / groups, k...]`).
    ConvTranspose {
        stride: Vec<usize>,
        padding: Vec<usize>,
        output_padding: Vec<usize>,
        dilation: Vec<usize>,
        groups: usize,
    },

    // ----- pooling and resizing -----
    MaxPool {
        kernel: Vec<usize>,
        stride: Vec<usize>,
        padding: Vec<usize>,
        dilation: Vec<usize>,
        ceil_mode: bool,
    },
    AvgPool {
        kernel: Vec<usize>,
        stride: Vec<usize>,
        padding: Vec<usize>,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    AdaptiveAvgPool {
        output_size: Vec<usize>,
    },
    AdaptiveMaxPool {
        output_size: Vec<usize>,
    },
    /// Scatter of pooled values to their argmax indices (second input).
    MaxUnpool {
        output_size: Vec<usize>,
    },
    /// Resize of the spatial dims to `size`.
    Resize {
        size: Vec<usize>,
        mode: Interpolation,
    },

    /// RoI Align of a feature map (first input) over regions `[K, 5]` (second input, no
    /// gradient).
    RoiAlign {
        output_size: (usize, usize),
        spatial_scale: f32,
        sampling_ratio: i32,
        aligned: bool,
    },
    /// RoI max pooling (inputs as [`Op::RoiAlign`]).
    RoiPool {
        output_size: (usize, usize),
        spatial_scale: f32,
    },

    // ----- normalisation -----
    /// Batch norm; in training the running statistics are updated in place, PyTorch's way
    /// (`(1 − momentum)·running + momentum·batch`, unbiased variance) or, with `keras`,
    /// Keras' (`momentum·running + (1 − momentum)·batch`, biased variance).
    BatchNorm {
        training: bool,
        momentum: f32,
        eps: f32,
        keras: bool,
    },
    LayerNorm {
        normalized_shape: Vec<usize>,
        eps: f32,
    },
    GroupNorm {
        groups: usize,
        eps: f32,
    },
    InstanceNorm {
        eps: f32,
    },

    // ----- softmax and losses -----
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    /// Cross entropy over class scores. Recorded inputs: the scores, then the optional sample
    /// weights; the class-index targets are saved with the op (they take no gradient).
    CrossEntropy {
        ignore_index: Option<i64>,
        label_smoothing: f32,
        reduction: Reduction,
    },
    /// Negative log-likelihood over log-probabilities (inputs as [`Op::CrossEntropy`]).
    NllLoss {
        ignore_index: Option<i64>,
        label_smoothing: f32,
        reduction: Reduction,
    },
    /// Cross entropy against probability targets (second input).
    CrossEntropyDense {
        label_smoothing: f32,
        reduction: Reduction,
    },
    /// Inputs: logits, targets, then the optional weight and pos_weight.
    BinaryCrossEntropyWithLogits {
        reduction: Reduction,
    },
    /// Inputs: probabilities, targets, then the optional weight.
    BinaryCrossEntropy {
        reduction: Reduction,
    },
    MseLoss {
        reduction: Reduction,
    },
    L1Loss {
        reduction: Reduction,
    },
    HuberLoss {
        delta: f32,
        reduction: Reduction,
    },

    // ----- regularisation -----
    /// Elementwise dropout with probability `p` (the mask is saved, not recomputed);
    /// `global_rng`: the mask was drawn from the process-wide generator (so a traced training
    /// step can draw its next one), else from a caller's.
    Dropout {
        p: f32,
        global_rng: bool,
    },
    /// Channel dropout (whole feature maps) with probability `p` (`global_rng` as for
    /// [`Op::Dropout`]).
    SpatialDropout {
        p: f32,
        global_rng: bool,
    },

    // ----- selection and assembly -----
    /// `cond ? a : b`; the recorded inputs are `a` and `b`.
    Where,
    MaskedFill {
        value: f32,
    },

    // ----- comparisons, logic and float tests (Bool outputs, never differentiated) -----
    /// `a <cmp> b` with broadcasting.
    Compare {
        cmp: Cmp,
    },
    /// `x <cmp> value` (the scalar rounded to a float tensor's dtype).
    CompareScalar {
        cmp: Cmp,
        value: f64,
    },
    /// Elementwise logic with broadcasting (`Not` has one input).
    Logical {
        kind: Logic,
    },
    IsNan,
    IsFinite,
    Cat {
        axis: usize,
    },
    Stack {
        axis: usize,
    },
    Gather {
        axis: usize,
    },
    Scatter {
        axis: usize,
    },
    ScatterAdd {
        axis: usize,
    },
    IndexSelect {
        axis: usize,
    },
    /// `(before, after)` per dim, first dim first.
    Pad {
        pads: Vec<(usize, usize)>,
        mode: PadMode,
    },
    Flip {
        dims: Vec<usize>,
    },
    Repeat {
        reps: Vec<usize>,
    },

    /// A user-defined op ([`crate::custom_op`], [`crate::autograd::record`]): its gradient is
    /// the closure given when it was recorded.
    Custom {
        name: &'static str,
    },
}

impl Op {
    /// The op's name, as `Tensor::grad_fn_name` reports it.
    pub fn name(&self) -> &'static str {
        fn by_rank(names: [&'static str; 3], rank: usize) -> &'static str {
            names[rank.clamp(1, 3) - 1]
        }
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Pow => "pow",
            Op::Maximum => "maximum",
            Op::Minimum => "minimum",
            Op::Neg => "neg",
            Op::AddScalar { .. } => "add_scalar",
            Op::SubScalar { .. } => "sub_scalar",
            Op::RsubScalar { .. } => "rsub_scalar",
            Op::MulScalar { .. } => "mul_scalar",
            Op::DivScalar { .. } => "div_scalar",
            Op::PowScalar { .. } => "pow_scalar",
            Op::Reciprocal => "reciprocal",
            Op::Square => "square",
            Op::Sqrt => "sqrt",
            Op::Rsqrt => "rsqrt",
            Op::Abs => "abs",
            Op::Sign => "sign",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Log1p => "log1p",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Elu { .. } => "elu",
            Op::Selu => "selu",
            Op::Gelu => "gelu",
            Op::GeluTanh => "gelu_tanh",
            Op::Softplus => "softplus",
            Op::Silu => "silu",
            Op::HardSigmoid => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::Clamp { .. } => "clamp",
            Op::ToDtype { .. } => "to_dtype",
            Op::Contiguous => "contiguous",
            Op::Reshape => "reshape",
            Op::Permute { .. } => "permute",
            Op::Slice { .. } => "slice",
            Op::Expand => "expand",
            Op::Sum { .. } => "sum",
            Op::Mean { .. } => "mean",
            Op::Max { .. } => "max",
            Op::Min { .. } => "min",
            Op::Prod { .. } => "prod",
            Op::Var { .. } => "var",
            Op::Std { .. } => "std",
            Op::LogSumExp { .. } => "logsumexp",
            Op::Norm { .. } => "norm",
            Op::MatMul => "matmul",
            Op::Linear { relu: false } => "linear",
            Op::Linear { relu: true } => "linear_relu",
            Op::Conv { relu: true, .. } => "conv2d_relu",
            Op::Conv { stride, .. } => by_rank(["conv1d", "conv2d", "conv3d"], stride.len()),
            Op::ConvTranspose { stride, .. } => by_rank(
                ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d"],
                stride.len(),
            ),
            Op::MaxPool { kernel, .. } => {
                by_rank(["max_pool1d", "max_pool2d", "max_pool3d"], kernel.len())
            }
            Op::AvgPool { kernel, .. } => {
                by_rank(["avg_pool1d", "avg_pool2d", "avg_pool3d"], kernel.len())
            }
            Op::AdaptiveAvgPool { output_size } => by_rank(
                [
                    "adaptive_avg_pool1d",
                    "adaptive_avg_pool2d",
                    "adaptive_avg_pool3d",
                ],
                output_size.len(),
            ),
            Op::AdaptiveMaxPool { output_size } => by_rank(
                [
                    "adaptive_max_pool1d",
                    "adaptive_max_pool2d",
                    "adaptive_max_pool3d",
                ],
                output_size.len(),
            ),
            Op::MaxUnpool { output_size } => by_rank(
                ["max_unpool1d", "max_unpool2d", "max_unpool3d"],
                output_size.len(),
            ),
            Op::Resize { size, mode } => match mode {
                Interpolation::Nearest => by_rank(
                    [
                        "upsample_nearest1d",
                        "upsample_nearest2d",
                        "upsample_nearest3d",
                    ],
                    size.len(),
                ),
                Interpolation::Linear { .. } => by_rank(
                    [
                        "upsample_linear1d",
                        "upsample_bilinear2d",
                        "upsample_trilinear3d",
                    ],
                    size.len(),
                ),
                Interpolation::Cubic { .. } => "upsample_bicubic2d",
            },
            Op::RoiAlign { .. } => "roi_align",
            Op::RoiPool { .. } => "roi_pool",
            Op::BatchNorm { .. } => "batch_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::GroupNorm { .. } => "group_norm",
            Op::InstanceNorm { .. } => "instance_norm",
            Op::Softmax { .. } => "softmax",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::CrossEntropy { .. } => "cross_entropy",
            Op::NllLoss { .. } => "nll_loss",
            Op::CrossEntropyDense { .. } => "cross_entropy_dense",
            Op::BinaryCrossEntropyWithLogits { .. } => "binary_cross_entropy_with_logits",
            Op::BinaryCrossEntropy { .. } => "binary_cross_entropy",
            Op::MseLoss { .. } => "mse_loss",
            Op::L1Loss { .. } => "l1_loss",
            Op::HuberLoss { .. } => "huber_loss",
            Op::Dropout { .. } => "dropout",
            Op::SpatialDropout { .. } => "spatial_dropout",
            Op::Where => "where",
            Op::MaskedFill { .. } => "masked_fill",
            Op::Compare { cmp } => match cmp {
                Cmp::Eq => "eq",
                Cmp::Ne => "ne",
                Cmp::Lt => "lt",
                Cmp::Le => "le",
                Cmp::Gt => "gt",
                Cmp::Ge => "ge",
            },
            Op::CompareScalar { cmp, .. } => match cmp {
                Cmp::Eq => "eq_scalar",
                Cmp::Ne => "ne_scalar",
                Cmp::Lt => "lt_scalar",
                Cmp::Le => "le_scalar",
                Cmp::Gt => "gt_scalar",
                Cmp::Ge => "ge_scalar",
            },
            Op::Logical { kind } => match kind {
                Logic::And => "logical_and",
                Logic::Or => "logical_or",
                Logic::Xor => "logical_xor",
                Logic::Not => "logical_not",
            },
            Op::IsNan => "isnan",
            Op::IsFinite => "isfinite",
            Op::Cat { .. } => "cat",
            Op::Stack { .. } => "stack",
            Op::Gather { .. } => "gather",
            Op::Scatter { .. } => "scatter",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::IndexSelect { .. } => "index_select",
            Op::Pad { .. } => "pad",
            Op::Flip { .. } => "flip",
            Op::Repeat { .. } => "repeat",
            Op::Custom { name } => name,
        }
    }
}
