//! The backend seam: op methods validate their arguments, then run the computation through the
//! [`Backend`] of the tensors' device (the structure of candle's `BackendStorage`). The op kind
//! travels as the typed [`Op`] record, so a backend sees exactly what the graph records.
//!
//! Today the elementwise unary ops (`Tensor::relu`, `exp`, `mul_scalar`, ...), the
//! broadcasting binary ops (`add` ... `minimum`), the matrix products (`matmul`, `linear`,
//! `linear_relu`), the convolutions (`conv*d`, `conv2d_relu`, `conv_transpose*d`), the
//! reductions (`sum` ... `norm`, `argmax`/`argmin`), the normalisations (`batch_norm`,
//! `layer_norm`, `group_norm`, `instance_norm`), `softmax`/`log_softmax`, the RoI ops
//! (`roi_align`, `roi_pool`), the losses (`cross_entropy`, `nll_loss`, `cross_entropy_dense`,
//! `binary_cross_entropy[_with_logits]`, `mse_loss`, `l1_loss`, `huber_loss`), the copies
//! (`cat`, `stack`, `gather`, `scatter`, `index_select`, `pad`, `flip`, `repeat`, the
//! densifying `contiguous` copy, the product gradient's `dot_reduce`), pooling (max, average,
//! adaptive, global, `max_unpool`) and resizing, the comparisons, logical ops, `isnan` /
//! `isfinite`, `where_` and `masked_fill`, dropout and spatial dropout (mask generation
//! included), `to_dtype`, the slice gradient (a `map_copy`) and `one_hot` (a scatter), forward
//! and backward (the unary gradients through `unary_backward`), dispatch through it. The one
//! documented exception is the host-side in-place API of `ops/inplace.rs` (loading weights,
//! fused optimizer updates over slices): a GPU backend brings its own optimizer kernels. A CUDA
//! backend is one more `impl Backend`.

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
use crate::ops::separable::{IdxBuf, SepPlan};
use crate::rng::Rng;
use crate::shape::Layout;
use crate::{Device, Error, Result, Tensor};

/// A device's implementation of the op families that dispatch through the seam.
pub trait Backend: Send + Sync {
    /// The device whose tensors this backend computes on.
    fn device(&self) -> Device;

    /// An elementwise unary op of an f32 tensor (`op` is one of `Neg`, `AddScalar` ...
    /// `Clamp`): a new contiguous tensor of the same shape. Errors name the op.
    fn unary(&self, op: &Op, x: &Tensor) -> Result<Tensor>;

    /// The elementwise unary ops `ops` applied one after the other to `x`, which the caller
    /// hands over: a traced plan's elementwise-chain fusion. Equal to calling
    /// [`Backend::unary`] for each op (the default does that); a backend may instead run the
    /// whole chain in one pass, in `x`'s own buffer when nothing else holds it.
    fn unary_chain(&self, ops: &[Op], x: Tensor) -> Result<Tensor> {
        ops.iter().try_fold(x, |t, op| self.unary(op, &t))
    }

    /// The input gradient of the elementwise unary op `op` for the output gradient `g`, from
    /// the tensor its op method saved (`saved`: the input or output, see each op; `None` for
    /// the ops with a constant derivative: `Neg`, the scalar add/sub/mul/div).
    fn unary_backward(&self, op: &Op, saved: Option<&Tensor>, g: &Tensor) -> Result<Tensor>;

    /// A broadcasting binary op of two f32 tensors (`Add`, `Sub`, `Mul`, `Div`, `Pow`,
    /// `Maximum`, `Minimum`): a new contiguous tensor of the broadcast shape.
    fn binary(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor>;

    /// [`Backend::binary`] followed by a ReLU (NaN kept), in one pass where the backend can:
    /// a traced plan's fusion of a residual block's add and ReLU. Equal to the two ops; the
    /// default runs them one after the other.
    fn binary_relu(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let y = self.binary(op, a, b)?;
        self.unary(&Op::Relu, &y)
    }

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
    /// output channel) (+ residual, a tensor of `out_shape`) (then ReLU where `relu`)`, a new
    /// contiguous tensor of `out_shape`. The residual is a residual connection fused into the
    /// convolution by traced plans: added after the bias, as the separate add would.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
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

    // --- copies, pooling and resizing ---

    /// A contiguous copy of `x` (any dtype) in row-major order; `op` names the caller for
    /// errors.
    fn contiguous(&self, op: &'static str, x: &Tensor) -> Result<Tensor>;

    /// `Σ_axes g·x` of two f32 tensors of one shape (the fused gradient of a broadcast factor
    /// of a product), a new contiguous tensor of `out_shape` (the shape with `axes` summed
    /// away to size 1 or dropped).
    fn dot_reduce(
        &self,
        op: &'static str,
        g: &Tensor,
        x: &Tensor,
        axes: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor>;

    /// The index-map copy of `x` (any dtype) read through `layout`: output element
    /// `(i_0, .., i_k)` is input element `(maps[0][i_0], .., maps[k][i_k])`, or `fill` (converted
    /// to the dtype) where an entry is `usize::MAX`; a new contiguous tensor of the maps'
    /// lengths. `op` is the recorded op (`IndexSelect`, `Pad`, `Flip`, `Repeat`, or `Cat`,
    /// `Stack`, `Pad`, `Flip` in their gradients).
    fn map_copy(
        &self,
        op: &Op,
        x: &Tensor,
        layout: &Layout,
        maps: &[Vec<usize>],
        fill: f64,
    ) -> Result<Tensor>;

    /// The adjoint of [`Backend::map_copy`] for the output gradient `g` (any dtype): a new
    /// contiguous tensor of `in_shape` where input element `maps(i)` receives the sum of `g[i]`.
    fn map_accumulate(
        &self,
        op: &Op,
        g: &Tensor,
        maps: &[Vec<usize>],
        in_shape: &[usize],
    ) -> Result<Tensor>;

    /// `cat` / `stack` (`op`) of tensors of one dtype: output row `r` is tensor 0's block `r`,
    /// then tensor 1's, ... (`blocks[i]` elements each), a new contiguous tensor of `out_shape`.
    fn concat(
        &self,
        op: &Op,
        tensors: &[&Tensor],
        blocks: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor>;

    /// `Gather` of `x` at `index` along the op's axis (`src` is `None`), or `Scatter` /
    /// `ScatterAdd` of `src` into a copy of `x`; the operands are validated, the index values
    /// are range-checked here ([`Error::IndexOutOfRange`]).
    fn index_op(&self, op: &Op, x: &Tensor, index: &Tensor, src: Option<&Tensor>)
        -> Result<Tensor>;

    /// The gradients `[d_input, d_src]` of a gather/scatter for the output gradient `g`, each
    /// where `needs` asks (`d_src` only for the scatters); `in_shape`/`src_shape` are the shapes
    /// of the op's input and `src`.
    fn index_op_backward(
        &self,
        op: &Op,
        g: &Tensor,
        index: &Tensor,
        in_shape: &[usize],
        src_shape: &[usize],
        needs: [bool; 2],
    ) -> Result<[Option<Tensor>; 2]>;

    /// A planned separable pooling or resize of the f32 `x` (`op` is `MaxPool` or
    /// `AdaptiveMaxPool`: window maxima, NaN wins, ties to the first; `AvgPool`,
    /// `AdaptiveAvgPool` or `Resize`: the weighted per-axis maps): a new contiguous tensor of
    /// `plan.out_shape`, and for a max pooling with `track` the flat argmax per output.
    fn pool(
        &self,
        op: &Op,
        plan: &SepPlan,
        x: &Tensor,
        track: bool,
    ) -> Result<(Tensor, Option<IdxBuf>)>;

    /// The input gradient (of `plan.in_shape`) of a planned pooling or resize for the output
    /// gradient `g`; `argmax` is what [`Backend::pool`] tracked for a max pooling.
    fn pool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        argmax: Option<&IdxBuf>,
    ) -> Result<Tensor>;

    /// Max unpooling (`op` is `MaxUnpool`): zeros of `plan.out_shape` with each element of `x`
    /// written at its flat plane index `idx` (checked in range by the op).
    fn max_unpool(&self, op: &Op, plan: &SepPlan, x: &Tensor, idx: &[i64]) -> Result<Tensor>;

    /// The input gradient of a max unpooling: `g` gathered at the indices.
    fn max_unpool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        idx: &[i64],
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

    /// A comparison-family op: `Compare` (two tensors, broadcasting), `CompareScalar`,
    /// `Logical` (two inputs, one for `Not`), `IsNan`, `IsFinite` (any dtype, a Bool tensor),
    /// `Where` (`[cond, a, b]`, the dtype of `a`) or `MaskedFill` (`[x, mask]`, the dtype of
    /// `x`): a new contiguous tensor of the broadcast shape.
    fn compare(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor>;

    /// The gradient masking of `Where` / `MaskedFill`: the f32 gradient `g` (of the broadcast
    /// shape) where the Bool `cond` (broadcast to it) equals `keep`, 0 elsewhere.
    fn compare_backward(&self, op: &Op, cond: &Tensor, g: &Tensor, keep: bool) -> Result<Tensor>;

    /// A dropout of the f32 tensor `x` (`Dropout { p }` per element, `SpatialDropout { p }` per
    /// `[N, C]` channel, `0 < p < 1`) with its keep mask drawn from `rng`: the output
    /// (`x · mask / (1 − p)`) and the mask (1 = kept, one byte per element or channel). The
    /// same `rng` state gives the same mask on every backend and thread count.
    fn dropout(&self, op: &Op, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Vec<u8>)>;

    /// The dropout gradient `g · mask / (1 − p)` for the `mask` its forward returned.
    fn dropout_backward(&self, op: &Op, g: &Tensor, mask: &[u8]) -> Result<Tensor>;

    /// The dtype conversion `ToDtype { from, to }` of `x` (any layout): a new contiguous tensor
    /// of dtype `to` (floats to ints truncate toward zero).
    fn to_dtype(&self, op: &Op, x: &Tensor) -> Result<Tensor>;
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
