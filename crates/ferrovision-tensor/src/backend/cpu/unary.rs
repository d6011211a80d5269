//! Elementwise unary ops: one vectorised slice kernel per [`Op`] variant, and chains of them run
//! in one pass (a traced plan's elementwise-chain fusion).
//!
//! A chain `f_n(...f_1(x))` is applied block by block: each block of [`BLOCK`] values goes
//! through every op while it and its twin (a stack buffer) stay in the L1 cache, instead of
//! each op reading and writing the whole tensor and taking a new buffer. When nothing else
//! holds the input's buffer (a plan step's fresh output) the chain writes into it in place.
//! Every op runs the kernel [`Backend::unary`](crate::backend::Backend::unary) runs for it on
//! each value, so the result is bitwise the ops' one after the other.

use super::{clamp_bounds, clamp_f32, map_f32, not_in_family, relu_f32, sign_f32, PAR_MIN};
use super::{SELU_ALPHA, SELU_SCALE};
use crate::autograd::Op;
use crate::kernels::elementwise as ew;
use crate::parallel::prelude::*;
use crate::{Result, Tensor};

/// A slice kernel: `out[i] = f(src[i])` for equal-length slices.
pub(super) type SliceKernel = Box<dyn Fn(&[f32], &mut [f32]) + Send + Sync>;

/// Values per block of a chain: a block and its twin (16 KiB) fit in L1.
const BLOCK: usize = 2048;

/// The scalar function `f` applied with the vectorised loop of the best ISA.
fn map<F>(f: F) -> SliceKernel
where
    F: Fn(f32) -> f32 + Copy + Send + Sync + 'static,
{
    Box::new(move |s, o| ew::map1(s, o, f))
}

/// The slice kernel of the elementwise unary op `op` (`Neg`, `AddScalar` ... `Clamp`).
pub(super) fn kernel(op: &Op) -> Result<SliceKernel> {
    Ok(match *op {
        Op::DivScalar { c } => map(move |x| x / c),
        Op::Sign => map(sign_f32),
        Op::PowScalar { p } => {
            // Exact products, roots and divisions for the common exponents, like PyTorch.
            if p == 0.0 {
                map(|_| 1.0)
            } else if p == 1.0 {
                map(|x| x)
            } else if p == 2.0 {
                map(|x| x * x)
            } else if p == 3.0 {
                map(|x| x * x * x)
            } else if p == 0.5 {
                map(f32::sqrt)
            } else if p == -0.5 {
                map(|x| 1.0 / x.sqrt())
            } else if p == -1.0 {
                map(|x| 1.0 / x)
            } else if p == -2.0 {
                map(|x| 1.0 / (x * x))
            } else {
                map(move |x| x.powf(p))
            }
        }
        Op::Neg => map(|x| -x),
        Op::AddScalar { c } => map(move |x| x + c),
        Op::SubScalar { c } => map(move |x| x - c),
        Op::RsubScalar { c } => map(move |x| c - x),
        Op::MulScalar { c } => map(move |x| x * c),
        Op::Reciprocal => map(|x| 1.0 / x),
        Op::Square => map(|x| x * x),
        Op::Sqrt => map(f32::sqrt),
        Op::Rsqrt => map(|x| 1.0 / x.sqrt()),
        Op::Abs => map(f32::abs),
        Op::Exp => Box::new(ew::exp_slice),
        Op::Log => Box::new(ew::log_slice),
        Op::Log1p => Box::new(ew::log1p_slice),
        Op::Sin => map(f32::sin),
        Op::Cos => map(f32::cos),
        Op::Tanh => Box::new(ew::tanh_slice),
        Op::Sigmoid => Box::new(ew::sigmoid_slice),
        Op::Relu => map(relu_f32),
        Op::Relu6 => map(|x| clamp_f32(x, 0.0, 6.0)),
        Op::LeakyRelu { slope } => map(move |x| if x > 0.0 { x } else { x * slope }),
        Op::Elu { alpha } => Box::new(move |x, y| ew::elu_slice(x, y, alpha, 1.0)),
        Op::Selu => Box::new(|x, y| ew::elu_slice(x, y, SELU_ALPHA, SELU_SCALE)),
        Op::Gelu => Box::new(ew::gelu_slice),
        Op::GeluTanh => Box::new(ew::gelu_tanh_slice),
        Op::Softplus => Box::new(ew::softplus_slice),
        Op::Silu => Box::new(ew::silu_slice),
        Op::HardSigmoid => map(|x| clamp_f32(x + 3.0, 0.0, 6.0) / 6.0),
        Op::HardSwish => map(|x| x * clamp_f32(x + 3.0, 0.0, 6.0) / 6.0),
        Op::Clamp { min, max } => {
            let (lo, hi) = clamp_bounds(min, max);
            map(move |x| clamp_f32(x, lo, hi))
        }
        _ => return Err(not_in_family(op, "elementwise unary")),
    })
}

/// `ops` applied one after the other to `x` in one pass: in `x`'s buffer when `x` is a
/// contiguous f32 tensor that nothing else holds, else into a new one (the first op reads each
/// block of `x` into it, the others run there).
pub(super) fn chain(ops: &[Op], x: Tensor) -> Result<Tensor> {
    let kernels = ops.iter().map(kernel).collect::<Result<Vec<_>>>()?;
    let Some((first, rest)) = kernels.split_first() else {
        return Ok(x);
    };
    let name = ops[0].name();
    if x.is_sole_owner() && x.dtype() == crate::DType::F32 && x.is_contiguous() {
        x.with_f32_mut(name, |v| {
            for_blocks(v, |block, twin| run_in_place(block, &kernels, twin))
        })?;
        return Ok(x);
    }
    map_f32(&x, name, |src, out| {
        let mut twin = [0.0f32; BLOCK];
        for (s, o) in src.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            first(s, o);
            run_in_place(o, rest, &mut twin[..o.len()]);
        }
    })
}

/// Calls `f(block, twin)` on each [`BLOCK`]-long block of `v` (threads over large tensors),
/// `twin` a scratch block of the same length.
fn for_blocks(v: &mut [f32], f: impl Fn(&mut [f32], &mut [f32]) + Sync) {
    let blocks = |part: &mut [f32]| {
        let mut twin = [0.0f32; BLOCK];
        for block in part.chunks_mut(BLOCK) {
            let n = block.len();
            f(block, &mut twin[..n]);
        }
    };
    match crate::ops::par_chunk(v.len(), PAR_MIN) {
        Some(chunk) => v.par_chunks_mut(chunk).for_each(blocks),
        None => blocks(v),
    }
}

/// Runs `kernels` on `block` in turn, alternating between `block` and `twin`; the result ends
/// in `block`.
fn run_in_place(block: &mut [f32], kernels: &[SliceKernel], twin: &mut [f32]) {
    let mut in_twin = false;
    for k in kernels {
        if in_twin {
            k(twin, block);
        } else {
            k(block, twin);
        }
        in_twin = !in_twin;
    }
    if in_twin {
        block.copy_from_slice(twin);
    }
}
