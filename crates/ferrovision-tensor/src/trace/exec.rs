//! Replaying one recorded op: the [`Op`] record with its attributes and the operand values in,
//! the op's public method (the same validation and kernels as eager mode) called, the output out.
//!
//! An op joins traced plans by getting an arm here; ops without one (user-defined ops, ops whose
//! record does not hold every operand such as `where` or `gather`, random ops in training mode)
//! make [`supported`] false, and a plan that needs them is not built (the caller runs eagerly).

use crate::autograd::{Interpolation, Op};
use crate::ops::conv::{ConvOpts, ConvTransposeOpts};
use crate::{Error, PoolOpts, ResizeMode, Result, Tensor};

const OP: &str = "trace";

/// True when [`run`] can replay `op` in an inference plan, or in a training plan (`training`:
/// batch norm in training mode too, which updates its running statistics in place each time,
/// as eagerly).
pub(crate) fn supported(op: &Op, training: bool) -> bool {
    use Op::*;
    match op {
        BatchNorm { training: t, .. } => !t || training,
        // Masks from the process-wide generator: a training step draws the next ones, as
        // eagerly (a caller's generator is not in the record).
        Dropout { global_rng, .. } | SpatialDropout { global_rng, .. } => *global_rng && training,
        Add | Sub | Mul | Div | Pow | Maximum | Minimum => true,
        op if is_unary_elementwise(op) => true,
        ToDtype { .. } | Contiguous | Reshape | Permute { .. } | Slice { .. } | Expand => true,
        Sum { .. } | Mean { .. } | MatMul | Linear { .. } | Conv { .. } => true,
        ConvTranspose { .. } => true,
        MaxPool { .. } | AvgPool { .. } | AdaptiveAvgPool { .. } | AdaptiveMaxPool { .. } => true,
        Resize { .. } | LayerNorm { .. } | GroupNorm { .. } | InstanceNorm { .. } => true,
        Softmax { .. } | LogSoftmax { .. } | Cat { .. } | Pad { .. } | Flip { .. } => true,
        _ => false,
    }
}

/// Where a convolution step holds a residual fused into it ([`super::rewrite::fuse_residuals`]),
/// after the input, weight and (optional) bias.
pub(super) const RESIDUAL_ARG: usize = 3;

fn arg<'a>(args: &'a [Option<Tensor>], i: usize, op: &Op) -> Result<&'a Tensor> {
    args.get(i).and_then(Option::as_ref).ok_or_else(|| {
        Error::invalid(
            OP,
            format!("internal error: operand {i} of '{}' is missing", op.name()),
        )
    })
}

fn opt(args: &[Option<Tensor>], i: usize) -> Option<&Tensor> {
    args.get(i).and_then(Option::as_ref)
}

fn axes(dims: &[usize]) -> Vec<isize> {
    dims.iter().map(|&d| d as isize).collect()
}

/// True for the broadcasting binary ops, which a ReLU after them can join ([`run`]'s
/// `relu_after`).
pub(crate) fn is_binary(op: &Op) -> bool {
    use Op::*;
    matches!(op, Add | Sub | Mul | Div | Pow | Maximum | Minimum)
}

/// True for the elementwise unary ops of f32 tensors (activations, scalar arithmetic), which
/// can run chained in one pass after the op before them ([`super::rewrite::fuse_chains`]).
pub(crate) fn is_unary_elementwise(op: &Op) -> bool {
    use Op::*;
    matches!(
        op,
        Neg | AddScalar { .. }
            | SubScalar { .. }
            | RsubScalar { .. }
            | MulScalar { .. }
            | DivScalar { .. }
            | PowScalar { .. }
            | Reciprocal
            | Square
            | Sqrt
            | Rsqrt
            | Abs
            | Sign
            | Exp
            | Log
            | Log1p
            | Sin
            | Cos
            | Tanh
            | Sigmoid
            | Relu
            | Relu6
            | LeakyRelu { .. }
            | Elu { .. }
            | Selu
            | Gelu
            | GeluTanh
            | Softplus
            | Silu
            | HardSigmoid
            | HardSwish
            | Clamp { .. }
    )
}

/// Runs `op` on `args` (the recorded operands, in the op's order); `out_shape` is the shape
/// the trace saw (used by the ops whose record leaves it to the shapes: reshape, expand).
/// `relu_after` (binary ops only) applies a ReLU in the same pass.
pub(crate) fn run(
    op: &Op,
    args: &[Option<Tensor>],
    out_shape: &[usize],
    relu_after: bool,
) -> Result<Tensor> {
    use Op::*;
    let x = arg(args, 0, op)?;
    if relu_after {
        if !is_binary(op) {
            return Err(Error::invalid(
                OP,
                format!("internal error: a ReLU fused into '{}'", op.name()),
            ));
        }
        let b = arg(args, 1, op)?;
        return crate::ops::binary::binary_relu(op, x, b);
    }
    let b = || arg(args, 1, op);
    match op {
        Add => x.add(b()?),
        Sub => x.sub(b()?),
        Mul => x.mul(b()?),
        Div => x.div(b()?),
        Pow => x.pow(b()?),
        Maximum => x.maximum(b()?),
        Minimum => x.minimum(b()?),
        Neg => x.neg(),
        AddScalar { c } => x.add_scalar(*c),
        SubScalar { c } => x.sub_scalar(*c),
        RsubScalar { c } => x.rsub_scalar(*c),
        MulScalar { c } => x.mul_scalar(*c),
        DivScalar { c } => x.div_scalar(*c),
        PowScalar { p } => x.pow_scalar(*p),
        Reciprocal => x.reciprocal(),
        Square => x.square(),
        Sqrt => x.sqrt(),
        Rsqrt => x.rsqrt(),
        Abs => x.abs(),
        Sign => x.sign(),
        Exp => x.exp(),
        Log => x.log(),
        Log1p => x.log1p(),
        Sin => x.sin(),
        Cos => x.cos(),
        Tanh => x.tanh(),
        Sigmoid => x.sigmoid(),
        Relu => x.relu(),
        Relu6 => x.relu6(),
        LeakyRelu { slope } => x.leaky_relu(*slope),
        Elu { alpha } => x.elu(*alpha),
        Selu => x.selu(),
        Gelu => x.gelu(),
        GeluTanh => x.gelu_tanh(),
        Softplus => x.softplus(),
        Silu => x.silu(),
        HardSigmoid => x.hard_sigmoid(),
        HardSwish => x.hard_swish(),
        Clamp { min, max } => x.clamp(*min, *max),
        ToDtype { to, .. } => x.to_dtype(*to),
        Contiguous => x.contiguous(),
        Reshape => x.reshape(out_shape),
        Permute { perm } => x.permute(perm),
        Slice {
            axis,
            start,
            end,
            step,
        } => x.slice(*axis as isize, *start, *end, *step),
        Expand => x.expand(out_shape),
        Sum { dims, keepdim } => x.sum(&axes(dims), *keepdim),
        Mean { dims, keepdim } => x.mean(&axes(dims), *keepdim),
        MatMul => x.matmul(b()?),
        Linear { relu: false } => x.linear(b()?, opt(args, 2)),
        Linear { relu: true } => x.linear_relu(b()?, opt(args, 2)),
        Conv {
            stride,
            padding,
            dilation,
            groups,
            relu,
        } => {
            let opts = ConvOpts {
                stride: stride.clone(),
                padding: crate::Padding::Explicit(padding.clone()),
                dilation: dilation.clone(),
                groups: *groups,
            };
            match opt(args, RESIDUAL_ARG) {
                Some(r) => {
                    crate::ops::conv::conv_nd_residual(x, b()?, opt(args, 2), r, &opts, *relu)
                }
                None => crate::ops::conv::conv_nd(x, b()?, opt(args, 2), &opts, *relu),
            }
        }
        ConvTranspose {
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        } => {
            let opts = ConvTransposeOpts::new()
                .stride(stride)
                .padding(padding)
                .output_padding(output_padding)
                .dilation(dilation)
                .groups(*groups);
            let (w, bias) = (b()?, opt(args, 2));
            match stride.len() {
                1 => x.conv_transpose1d(w, bias, &opts),
                2 => x.conv_transpose2d(w, bias, &opts),
                _ => x.conv_transpose3d(w, bias, &opts),
            }
        }
        MaxPool {
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => {
            let o = PoolOpts {
                kernel: kernel.clone(),
                stride: stride.clone(),
                padding: padding.clone(),
                dilation: dilation.clone(),
                ceil_mode: *ceil_mode,
                count_include_pad: true,
            };
            match kernel.len() {
                1 => x.max_pool1d(&o),
                2 => x.max_pool2d(&o),
                _ => x.max_pool3d(&o),
            }
        }
        AvgPool {
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => {
            let o = PoolOpts {
                kernel: kernel.clone(),
                stride: stride.clone(),
                padding: padding.clone(),
                dilation: Vec::new(),
                ceil_mode: *ceil_mode,
                count_include_pad: *count_include_pad,
            };
            match kernel.len() {
                1 => x.avg_pool1d(&o),
                2 => x.avg_pool2d(&o),
                _ => x.avg_pool3d(&o),
            }
        }
        AdaptiveAvgPool { output_size } => match output_size.len() {
            1 => x.adaptive_avg_pool1d(output_size),
            2 => x.adaptive_avg_pool2d(output_size),
            _ => x.adaptive_avg_pool3d(output_size),
        },
        AdaptiveMaxPool { output_size } => match output_size.len() {
            1 => x.adaptive_max_pool1d(output_size),
            2 => x.adaptive_max_pool2d(output_size),
            _ => x.adaptive_max_pool3d(output_size),
        },
        Resize { size, mode } => {
            let mode = match *mode {
                Interpolation::Nearest => ResizeMode::Nearest,
                Interpolation::Linear { align_corners } => ResizeMode::Bilinear { align_corners },
                Interpolation::Cubic { align_corners } => ResizeMode::Bicubic { align_corners },
            };
            x.resize(size, mode)
        }
        BatchNorm {
            training,
            momentum,
            eps,
            keras,
        } => {
            let norm = if *keras {
                Tensor::batch_norm_keras
            } else {
                Tensor::batch_norm
            };
            norm(
                x,
                arg(args, 3, op)?,
                arg(args, 4, op)?,
                opt(args, 1),
                opt(args, 2),
                *training,
                *momentum,
                *eps,
            )
        }
        LayerNorm {
            normalized_shape,
            eps,
        } => x.layer_norm(normalized_shape, opt(args, 1), opt(args, 2), *eps),
        GroupNorm { groups, eps } => x.group_norm(*groups, opt(args, 1), opt(args, 2), *eps),
        InstanceNorm { eps } => x.instance_norm(opt(args, 1), opt(args, 2), *eps),
        Dropout { p, .. } => x.dropout_global(*p, true),
        SpatialDropout { p, .. } => x.spatial_dropout_global(*p, true),
        Softmax { axis } => x.softmax(*axis as isize),
        LogSoftmax { axis } => x.log_softmax(*axis as isize),
        Cat { axis } => {
            let parts = (0..args.len())
                .map(|i| arg(args, i, op))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&parts, *axis as isize)
        }
        Pad { pads, mode } => x.pad(pads, *mode),
        Flip { dims } => x.flip(&axes(dims)),
        other => Err(Error::invalid(
            OP,
            format!("op '{}' cannot be replayed in a traced plan", other.name()),
        )),
    }
}
