//! The CPU backend: the engine's own kernels ([`crate::kernels`]) behind [`Backend`].
//!
//! One file per op family: the broadcasting binary arms are here, the elementwise unary ones
//! and their fused chains in `unary.rs` (each picks the vectorised kernel of one [`Op`]
//! variant), matrix products in `matmul.rs`,
//! convolutions in `conv.rs`, reductions in `reduce.rs`, normalisations in `norm.rs`, softmax in `softmax.rs`,
//! RoI Align / RoI pooling in `roi.rs`, losses in `loss/`, copies in `manip.rs` (gather/scatter
//! in `manip/gather.rs`), pooling and resizing in `separable/`, comparisons / `where` /
//! `masked_fill` in `compare.rs`, dropout masks in `dropout.rs`, dtype conversion in
//! `convert.rs`. The families not listed still
//! call their kernels from their op files (see `docs/engine.md`).

mod conv;
mod conv_dense;
mod conv_shifted;
pub(crate) mod filter_cache;
mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
mod softmax;
// copies, pooling and resizing
mod manip;
mod separable;

pub(crate) mod loss;
mod roi;
// comparisons, logic, where, masked_fill
mod compare;
// dropout masks, dtype conversion
mod convert;
mod dropout;
mod unary;
pub(crate) mod unary_grad;

use super::Backend;
use crate::autograd::Op;
use crate::kernels::elementwise as ew;
use crate::ops::broadcast::broadcast_map2;
use crate::ops::conv::Geom as ConvGeom;
use crate::ops::loss::LossArgs;
use crate::ops::matmul::Plan as MatmulPlan;
use crate::ops::roi::RoiPlan;
use crate::ops::separable::{IdxBuf, SepPlan};
use crate::parallel::prelude::*;
use crate::rng::Rng;
use crate::shape::Layout;
use crate::storage::pool;
use crate::{Device, Error, Result, Tensor};

/// The host CPU with the engine's SIMD kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn unary_backward(&self, op: &Op, saved: Option<&Tensor>, g: &Tensor) -> Result<Tensor> {
        unary_grad::unary_backward(op, saved, g)
    }

    fn unary(&self, op: &Op, x: &Tensor) -> Result<Tensor> {
        let kernel = unary::kernel(op)?;
        map_f32(x, op.name(), kernel)
    }

    fn unary_chain(&self, ops: &[Op], x: Tensor) -> Result<Tensor> {
        unary::chain(ops, x)
    }

    fn binary(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        binary_then(op, a, b, |v| v)
    }

    fn binary_relu(&self, op: &Op, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        binary_then(op, a, b, relu_f32)
    }

    fn matmul(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        matmul::forward(op, plan, a, b, bias)
    }

    fn matmul_backward(
        &self,
        op: &Op,
        plan: &MatmulPlan,
        g: &Tensor,
        a: &Tensor,
        b: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        matmul::backward(op, plan, g, a, b, relu_out, needs)
    }

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
    ) -> Result<Tensor> {
        conv::forward(op, geom, x, w, bias, residual, relu, out_shape)
    }

    fn conv_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        relu_out: Option<&Tensor>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        conv::backward(op, geom, g, x, w, relu_out, needs)
    }

    fn conv_transpose(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        conv::transpose_forward(op, geom, x, w, bias, out_shape)
    }

    fn conv_transpose_backward(
        &self,
        op: &'static str,
        geom: &ConvGeom,
        g: &Tensor,
        x: &Tensor,
        w: &Tensor,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        conv::transpose_backward(op, geom, g, x, w, needs)
    }

    fn reduce(&self, op: &Op, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        reduce::forward(op, x)
    }

    fn reduce_backward(
        &self,
        op: &Op,
        x_shape: &[usize],
        saved: [Option<&Tensor>; 3],
        g: &Tensor,
    ) -> Result<Tensor> {
        reduce::backward(op, x_shape, saved, g)
    }

    fn arg_reduce(
        &self,
        op: &'static str,
        x: &Tensor,
        dims: (usize, usize, usize),
        is_max: bool,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        reduce::arg_reduce(op, x, dims, is_max, out_shape)
    }

    fn norm(
        &self,
        op: &Op,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running: Option<[&Tensor; 2]>,
    ) -> Result<(Tensor, norm::NormStats)> {
        norm::forward(op, x, weight, bias, running)
    }

    fn norm_backward(
        &self,
        op: &Op,
        x: &Tensor,
        stats: norm::NormStats,
        g: &Tensor,
        need_dx: bool,
    ) -> Result<[Option<Tensor>; 3]> {
        norm::backward(op, x, stats, g, need_dx)
    }

    fn softmax(&self, op: &Op, dims: (usize, usize, usize), x: &Tensor) -> Result<Tensor> {
        softmax::forward(op, dims, x)
    }

    fn softmax_backward(
        &self,
        op: &Op,
        dims: (usize, usize, usize),
        y: &Tensor,
        g: &Tensor,
    ) -> Result<Tensor> {
        softmax::backward(op, dims, y, g)
    }

    fn contiguous(&self, _op: &'static str, x: &Tensor) -> Result<Tensor> {
        manip::contiguous(x)
    }

    fn dot_reduce(
        &self,
        op: &'static str,
        g: &Tensor,
        x: &Tensor,
        axes: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor> {
        let shape = g.shape().to_vec();
        let v = g.with_f32(op, |gs| {
            x.with_f32(op, |xs| reduce::dot_reduce_f32(gs, xs, &shape, axes))
        })??;
        Ok(Tensor::from_f32(v, out_shape))
    }

    fn map_copy(
        &self,
        op: &Op,
        x: &Tensor,
        layout: &Layout,
        maps: &[Vec<usize>],
        fill: f64,
    ) -> Result<Tensor> {
        manip::copy(op, x, layout, maps, fill)
    }

    fn map_accumulate(
        &self,
        op: &Op,
        g: &Tensor,
        maps: &[Vec<usize>],
        in_shape: &[usize],
    ) -> Result<Tensor> {
        manip::accumulate(op, g, maps, in_shape)
    }

    fn concat(
        &self,
        op: &Op,
        tensors: &[&Tensor],
        blocks: &[usize],
        out_shape: &[usize],
    ) -> Result<Tensor> {
        manip::cat(op, tensors, blocks, out_shape)
    }

    fn index_op(
        &self,
        op: &Op,
        x: &Tensor,
        index: &Tensor,
        src: Option<&Tensor>,
    ) -> Result<Tensor> {
        manip::gather::forward(op, x, index, src)
    }

    fn index_op_backward(
        &self,
        op: &Op,
        g: &Tensor,
        index: &Tensor,
        in_shape: &[usize],
        src_shape: &[usize],
        needs: [bool; 2],
    ) -> Result<[Option<Tensor>; 2]> {
        manip::gather::backward(op, g, index, in_shape, src_shape, needs)
    }

    fn pool(
        &self,
        op: &Op,
        plan: &SepPlan,
        x: &Tensor,
        track: bool,
    ) -> Result<(Tensor, Option<IdxBuf>)> {
        separable::forward(op, plan, x, track)
    }

    fn pool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        argmax: Option<&IdxBuf>,
    ) -> Result<Tensor> {
        separable::backward(op, plan, g, argmax)
    }

    fn max_unpool(&self, op: &Op, plan: &SepPlan, x: &Tensor, idx: &[i64]) -> Result<Tensor> {
        separable::max::unpool(op.name(), plan, x, idx)
    }

    fn max_unpool_backward(
        &self,
        op: &Op,
        plan: &SepPlan,
        g: &Tensor,
        idx: &[i64],
    ) -> Result<Tensor> {
        separable::max::unpool_backward(op.name(), plan, g, idx)
    }

    fn roi(&self, op: &Op, plan: &RoiPlan, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        roi::forward(op, plan, x)
    }

    fn roi_backward(
        &self,
        op: &Op,
        plan: &RoiPlan,
        argmax: Option<&Tensor>,
        g: &Tensor,
    ) -> Result<Tensor> {
        roi::backward(op, plan, argmax, g)
    }

    fn loss(&self, op: &Op, args: &LossArgs<'_>) -> Result<(Tensor, loss::LossStats)> {
        loss::forward(op, args)
    }

    fn loss_backward(
        &self,
        op: &Op,
        args: &LossArgs<'_>,
        stats: loss::LossStats,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        loss::backward(op, args, stats, g, needs)
    }

    fn compare(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
        compare::compare(op, inputs)
    }

    fn compare_backward(&self, op: &Op, cond: &Tensor, g: &Tensor, keep: bool) -> Result<Tensor> {
        let name = match op {
            Op::Where => "where backward",
            _ => "masked_fill backward",
        };
        compare::mask_grad(cond, g, keep, name)
    }

    fn dropout(&self, op: &Op, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Vec<u8>)> {
        dropout::forward(op, x, rng)
    }

    fn dropout_backward(&self, op: &Op, g: &Tensor, mask: &[u8]) -> Result<Tensor> {
        dropout::backward(op, g, mask)
    }

    fn to_dtype(&self, op: &Op, x: &Tensor) -> Result<Tensor> {
        convert::to_dtype(op, x)
    }
}

/// The error for an op passed to a backend method of another family (an engine bug).
fn not_in_family(op: &Op, family: &str) -> Error {
    Error::invalid(op.name(), format!("internal error: not a {family} op"))
}

/// Elements per parallel task of the elementwise kernels.
const PAR_MIN: usize = 1 << 15;

/// Applies `f` to every element (f32) into a new contiguous tensor, in parallel for big inputs.
pub(crate) fn map_f32(
    t: &Tensor,
    op: &'static str,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<Tensor> {
    t.expect_f32(op)?;
    let mut out = pool::take_uninit(t.numel());
    t.with_f32(op, |src| match crate::ops::par_chunk(src.len(), PAR_MIN) {
        Some(chunk) => out
            .par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(o, s)| f(s, o)),
        None => f(src, &mut out),
    })?;
    Ok(Tensor::from_f32(out, t.shape()))
}

/// Applies the scalar function `f` to every element with the vectorised kernel of the best ISA.
pub(crate) fn map_unary<F>(t: &Tensor, op: &'static str, f: F) -> Result<Tensor>
where
    F: Fn(f32) -> f32 + Copy + Send + Sync,
{
    map_f32(t, op, move |s, o| ew::map1(s, o, f))
}

/// `post(a op b)` for a broadcasting binary op: `post` is the identity for the op itself, a
/// ReLU for the fused add + ReLU of traced plans.
fn binary_then<P>(op: &Op, a: &Tensor, b: &Tensor, post: P) -> Result<Tensor>
where
    P: Fn(f32) -> f32 + Copy + Send + Sync,
{
    let name = op.name();
    match op {
        Op::Add => broadcast_map2(name, a, b, move |x, y| post(x + y)),
        Op::Sub => broadcast_map2(name, a, b, move |x, y| post(x - y)),
        Op::Mul => broadcast_map2(name, a, b, move |x, y| post(x * y)),
        Op::Div => broadcast_map2(name, a, b, move |x, y| post(x / y)),
        Op::Pow => broadcast_map2(name, a, b, move |x, y| post(pow_f32(x, y))),
        Op::Maximum => broadcast_map2(name, a, b, move |x, y| post(max_nan(x, y))),
        Op::Minimum => broadcast_map2(name, a, b, move |x, y| post(min_nan(x, y))),
        _ => Err(not_in_family(op, "broadcasting binary")),
    }
}

/// ReLU that keeps NaN (PyTorch's `relu`).
#[inline(always)]
fn relu_f32(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

/// `a^b` with exact squares and square roots like PyTorch.
#[inline(always)]
pub(crate) fn pow_f32(a: f32, b: f32) -> f32 {
    if b == 2.0 {
        a * a
    } else if b == 0.5 {
        a.sqrt()
    } else {
        a.powf(b)
    }
}

/// `max` that propagates NaN from either side (PyTorch `maximum`).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// `min` that propagates NaN from either side (PyTorch `minimum`).
#[inline(always)]
fn min_nan(a: f32, b: f32) -> f32 {
    if a <= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// `-1`, `0` or `1` (0 for NaN).
#[inline(always)]
pub(crate) fn sign_f32(x: f32) -> f32 {
    ((x > 0.0) as i32 - (x < 0.0) as i32) as f32
}

/// Clamp that keeps NaN and resolves `lo > hi` to `hi`.
#[inline(always)]
pub(crate) fn clamp_f32(x: f32, lo: f32, hi: f32) -> f32 {
    let v = if x < lo { lo } else { x };
    if v > hi {
        hi
    } else {
        v
    }
}

/// SELU constants (Klambauer et al., as in PyTorch).
pub(crate) const SELU_ALPHA: f32 = 1.673_263_2;
pub(crate) const SELU_SCALE: f32 = 1.050_701;

/// The `[lo, hi]` range of a clamp (a missing bound is infinite).
pub(crate) fn clamp_bounds(min: Option<f32>, max: Option<f32>) -> (f32, f32) {
    (
        min.unwrap_or(f32::NEG_INFINITY),
        max.unwrap_or(f32::INFINITY),
    )
}
