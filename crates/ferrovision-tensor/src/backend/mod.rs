//! The backend seam: op methods validate their arguments, then run the computation through the
//! [`Backend`] of the tensors' device (the structure of candle's `BackendStorage`). The op kind
//! travels as the typed [`Op`] record, so a backend sees exactly what the graph records.
//!
//! Today the elementwise unary ops (`Tensor::relu`, `exp`, `mul_scalar`, ...), the
//! broadcasting binary ops (`add` ... `minimum`), the matrix products (`matmul`, `linear`,
//! `linear_relu`), the convolutions (`conv*d`, `conv2d_relu`, `conv_transpose*d`), the
//! reductions (`sum` ... `norm`, `argmax`/`argmin`), the normalisations (`batch_norm`,
//! `layer_norm`, `group_norm`, `instance_norm`), `softmax`/`log_softmax`, the RoI ops
//! (`roi_align`, `roi_pool`) and the losses (`cross_entropy`, `nll_loss`, `cross_entropy_dense`,
//! `binary_cross_entropy[_with_logits]`, `mse_loss`, `l1_loss`, `huber_loss`), forward and
//! backward, dispatch through it; the other families (pooling, resizing, copies) still call the
//! CPU kernels from their op files and reject non-CPU tensors. Each family moves behind trait
//! methods the same way; a CUDA backend is then one more `impl Backend`.

pub(crate) mod cpu;
#[cfg(test)]
mod tests;

pub use cpu::loss::LossStats;
pub use cpu::norm::NormStats;
pub use cpu::CpuBackend;

use crate::autograd::Op;
use crate::ops::conv::Geom as ConvGeom;
use crate::ops::loss::LossArgs;
use crate::ops::matmul::Plan as MatmulPlan;
use crate::ops::roi::RoiPlan;
use crate::{Device, Error, Result, Tensor};

/// A device's implementation of the op families that dispatch through the seam.
pub trait Backend: Send + Sync {
    /// The device whose tensors this backend computes on.
    fn device(&self) -> Device;

    /// An elementwise unary op of an f32 tensor (`op` is one of `Neg`, `AddScalar` ...
    /// `Clamp`): a new contiguous tensor of the same shape. Errors name the op.
    fn unary(&self, op: &Op, x: &Tensor) -> Result<Tensor>;

    /// A broadcasting binary op of two f32 tensors (`Add`, `Sub`, `Mul`, `Div`, `Pow`,
    /// `Maximum`, `Minimum`): a new contiguous tensor of the broadcast shape.
    fn binary(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor>;

    /// The matrix product planned by `plan` (`op` is `MatMul` or `Linear { relu }`): `a·b`
    /// (+ `bias` per column) (then ReLU), a new contiguous tensor of `plan`'s output shape.
    fn matmul(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor>;

    /// The gradients `[da, db, dbias]` of a planned matrix product for the output gradient `g`,
    /// each computed only where `needs` asks; `relu_out` is the saved output of a fused ReLU
    /// (`Linear { relu: true }`), whose mask applies to `g` first.
    #[allow(clippy::too_many_arguments)]
    fn matmul_backward(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        g: &Tensor,
        a: &Tensor,
        b: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]>;

    /// The convolution planned by `geom` (`op` names it for errors): `conv(x, w) (+ bias per
    /// output channel) (then ReLU where `relu`)`, a new contiguous tensor of `out_shape`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        relu: bool,
        out_shape: &[usize],
    ) -> Result<Tensor>;

    /// The gradients `[dx, dw, dbias]` of a planned convolution for the output gradient `g`,
    /// each only where `needs` asks; `relu_out` is the saved output of a fused ReLU, whose mask
    /// applies to `g` first.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]>;

    /// The transposed convolution of `x` by `w` (+ `bias`), where `geom` is the geometry of the
    /// forward convolution it transposes: a new contiguous tensor of `out_shape`.
    fn conv_transpose(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        out_shape: &[usize],
    ) -> Result<Tensor>;

    /// The gradients `[dx, dw, dbias]` of a planned transposed convolution for the output
    /// gradient `g`, each only where `needs` asks.
    fn conv_transpose_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]>;

    /// A reduction of an f32 tensor over the op's resolved axes (`op` is `Sum`, `Mean`, `Max`,
    /// `Min`, `Prod`, `Var`, `Std`, `LogSumExp` or `Norm`): the output, and the auxiliary tensor
    /// its gradient rule saves (the keepdim mean of `Var`/`Std`, the keepdim result of
    /// `LogSumExp`; else `None`).
    fn reduce(&self, op: &Op, x: &Tensor) -> Result<(Tensor, Option<Tensor>)>;

    /// The input gradient (of shape `x_shape`) of a reduction for the output gradient `g`;
    /// `saved` are the tensors its op method saved, in order.
    fn reduce_backward(
        &self,
        op: &Op,
        x_shape: &[usize],
        saved: [Option<&Tensor>; 3],
        g: &Tensor,
    ) -> Result<Tensor>;

    /// `argmax` (`is_max`) or `argmin` along the middle axis of `x` (any dtype) seen as
    /// `[k1, r, k2]`: the first index of the extremum (NaN wins), an I64 tensor of `out_shape`.
    fn arg_reduce(
        &self,
        op: &'static str,
        x: &Tensor,
        dims: (usize, usize, usize),
        is_max: bool,
        out_shape: &[usize],
    ) -> Result<Tensor>;

    /// A normalisation (`op` is `BatchNorm`, `LayerNorm`, `GroupNorm` or `InstanceNorm`) of
    /// the dense, validated `x` with optional affine `weight`/`bias`; `running` are batch
    /// norm's `[mean, var]` (updated in place when training). Returns the output and the
    /// statistics `norm_backward` reuses.
    fn norm(
        &self,
        op: &Op,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running: Option<[&Tensor; 2]>,
    ) -> Result<(Tensor, NormStats)>;

    /// The gradients `[dx, dweight, dbias]` of a normalisation for the dense output gradient
    /// `g`, from its dense input `x` and forward `stats`: `dx` where `need_dx`, the affine ones
    /// where the op had them.
    fn norm_backward(
        &self,
        op: &Op,
        x: &Tensor,
        stats: NormStats,
        g: &Tensor,
        need_dx: bool,
    ) -> Result<[Option<Tensor>; 3]>;

    /// Softmax or log-softmax (`op` is `Softmax` or `LogSoftmax`) of the f32 `x` seen as
    /// `dims = [outer, C, inner]`, along the middle axis: a new contiguous tensor of `x`'s shape.
    fn softmax(&self, op: &Op, dims: (usize, usize, usize), x: &Tensor) -> Result<Tensor>;

    /// The input gradient of a softmax or log-softmax from its output `y` and the output
    /// gradient `g`, both seen as `dims = [outer, C, inner]`.
    fn softmax_backward(
        &self,
        op: &Op,
        dims: (usize, usize, usize),
        y: &Tensor,
        g: &Tensor,
    ) -> Result<Tensor>;

    // --- RoI ops and losses ---

    /// RoI Align or RoI pooling (`op` is `RoiAlign` or `RoiPool`) of the f32 feature map `x`
    /// over the validated regions of `plan`: the `[K, C, out_h, out_w]` output and, for RoI
    /// pooling, the I64 arg-max offset within the plane of every output (-1 for an empty bin)
    /// that `roi_backward` needs.
    fn roi(&self, op: &Op, plan: &RoiPlan, x: &Tensor) -> Result<(Tensor, Option<Tensor>)>;

    /// The feature-map gradient `[N, C, H, W]` of RoI Align or RoI pooling for the output
    /// gradient `g`; `argmax` is the tensor `roi` returned for RoI pooling.
    fn roi_backward(
        &self,
        op: &Op,
        plan: &RoiPlan,
        argmax: Option<&Tensor>,
        g: &Tensor,
    ) -> Result<Tensor>;

    /// A loss (`op` is `CrossEntropy`, `NllLoss`, `CrossEntropyDense`,
    /// `BinaryCrossEntropyWithLogits`, `BinaryCrossEntropy`, `MseLoss`, `L1Loss` or
    /// `HuberLoss`; `args` are [`LossArgs::Class`] for the first two, else [`LossArgs::Pair`]):
    /// the reduced (or per-element) loss and the statistics `loss_backward` reuses.
    fn loss(&self, op: &Op, args: &LossArgs<'_>) -> Result<(Tensor, LossStats)>;

    /// The gradients of a loss for the output gradient `g`, each computed only where `needs`
    /// asks: `[d scores, d sample_weights]` (class-index losses), `[d input, d target]` (dense
    /// cross-entropy), `[d input, d target, d weight, d pos_weight]` (binary cross-entropy; the
    /// weight gradients have the input's shape), `[d input]` (the pointwise losses, always
    /// computed; the target's is its negation). `args` are the forward's (the op saves them).
    fn loss_backward(
        &self,
        op: &Op,
        args: &LossArgs<'_>,
        stats: LossStats,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

/// The backend of `device`, or [`Error::DeviceMismatch`] naming `op` where none is built (every
/// device but the CPU today).
pub fn for_device(device: Device, op: &'static str) -> Result<&'static dyn Backend> {
    #[cfg(test)]
    if let Some(b) = tests::OVERRIDE.with(|o| o.get()) {
        return Ok(b);
    }
    match device {
        Device::Cpu => Ok(&CpuBackend),
        other => Err(Error::DeviceMismatch {
            op,
            lhs: other,
            rhs: Device::Cpu,
        }),
    }
}
