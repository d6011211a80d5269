//! The gradients of the elementwise unary ops on the CPU (one fused, vectorised pass over the
//! output gradient and the saved input or output), and the two-operand elementwise helpers
//! other CPU gradient rules use (`zip_map`, `zip_slices`). Gradients at kinks follow PyTorch:
//! `relu'(0) = 0`, `abs'(0) = 0`, clamp passes the gradient on its closed range.

use super::{clamp_bounds, map_unary, sign_f32, SELU_ALPHA, SELU_SCALE};
use crate::autograd::Op;
use crate::kernels::elementwise as ew;
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Elements per parallel task of the elementwise kernels.
const PAR_MIN: usize = 1 << 15;

/// Combines two same-shape f32 tensors elementwise into a new tensor (used by backward rules).
/// Prefer [`zip_map`] with a `Copy` function in hot paths.
#[allow(dead_code)]
pub(crate) fn zip_map_f32(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<Tensor> {
    zip_map(a, b, op, &f)
}

/// [`zip_map_f32`] taking the function by value: a `Copy` function item or closure is called
/// directly in the vectorised loop (a `&F` adds a call shim that LLVM may not inline for big
/// bodies such as the GELU derivative).
pub(crate) fn zip_map<F>(a: &Tensor, b: &Tensor, op: &'static str, f: F) -> Result<Tensor>
where
    F: Fn(f32, f32) -> f32 + Copy + Send + Sync,
{
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    let mut out = pool::take_uninit(a.numel());
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| match crate::ops::par_chunk(xs.len(), PAR_MIN) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk).zip(ys.par_chunks(chunk)))
                .for_each(|(o, (x, y))| ew::map2(x, y, o, f)),
            None => ew::map2(xs, ys, &mut out, f),
        })
    })??;
    Ok(Tensor::from_f32(out, a.shape()))
}

/// Runs the slice kernel `k(g, s, out)` over two same-shape f32 tensors, in parallel for big
/// inputs.
fn zip_slices(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    k: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    let mut out = pool::take_uninit(a.numel());
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| match crate::ops::par_chunk(xs.len(), PAR_MIN) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk).zip(ys.par_chunks(chunk)))
                .for_each(|(o, (x, y))| k(x, y, o)),
            None => k(xs, ys, &mut out),
        })
    })??;
    Ok(Tensor::from_f32(out, a.shape()))
}

/// The input gradient of an elementwise unary op for the output gradient `g`: one fused pass
/// over `g` and the op's `saved` input or output, or a constant factor for the linear ones
/// (which save nothing).
pub(super) fn unary_backward(op: &Op, saved: Option<&Tensor>, g: &Tensor) -> Result<Tensor> {
    let name = op.name();
    // Ops with a constant derivative save nothing.
    let linear = |scale: f32| -> Result<Tensor> {
        if scale == 1.0 {
            Ok(g.clone())
        } else {
            map_unary(g, name, move |v| v * scale)
        }
    };
    let gx = match *op {
        Op::Neg | Op::RsubScalar { .. } => linear(-1.0)?,
        Op::AddScalar { .. } | Op::SubScalar { .. } => linear(1.0)?,
        Op::MulScalar { c } => linear(c)?,
        Op::DivScalar { c } => map_unary(g, "div_scalar", move |v| v / c)?,
        _ => {
            let s = saved.ok_or_else(|| {
                Error::Backward(format!(
                    "internal error: '{name}' backward needs its saved tensor"
                ))
            })?;
            saved_grad(op, s, g)?
        }
    };
    Ok(gx)
}

/// The gradient of the unary ops that read their saved input or output `s`.
fn saved_grad(op: &Op, s: &Tensor, g: &Tensor) -> Result<Tensor> {
    let name = op.name();
    match *op {
        Op::PowScalar { p } => {
            if p == 0.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |_, _| 0.0))
            } else if p == 1.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |g, _| g))
            } else if p == 2.0 {
                zip_slices(g, s, name, |g, s, o| ew::map2(g, s, o, |g, x| g * 2.0 * x))
            } else if p == 3.0 {
                zip_slices(g, s, name, |g, s, o| {
                    ew::map2(g, s, o, |g, x| g * 3.0 * (x * x))
                })
            } else {
                zip_slices(g, s, name, move |g, s, o| {
                    ew::map2(g, s, o, move |g: f32, x: f32| g * p * x.powf(p - 1.0))
                })
            }
        }
        Op::Reciprocal => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| -g * y * y)
        }),
        Op::Square => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| 2.0 * x * g)
        }),
        Op::Sqrt => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| g / (2.0 * y))
        }),
        Op::Rsqrt => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| -0.5 * g * (y * y * y))
        }),
        Op::Abs => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| g * sign_f32(x))
        }),
        Op::Exp => zip_slices(g, s, name, |g, y, o| ew::map2(g, y, o, |g, y| g * y)),
        Op::Log => zip_slices(g, s, name, |g, x, o| ew::map2(g, x, o, |g, x| g / x)),
        Op::Log1p => zip_slices(g, s, name, |g, x, o| {
            ew::map2(g, x, o, |g, x| g / (1.0 + x))
        }),
        Op::Sin => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| g * x.cos())
        }),
        Op::Cos => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| -g * x.sin())
        }),
        Op::Tanh => zip_slices(g, s, name, ew::tanh_backward_slice),
        Op::Sigmoid => zip_slices(g, s, name, ew::sigmoid_backward_slice),
        Op::Relu => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, y| if y > 0.0 { g } else { 0.0 })
        }),
        Op::Relu6 => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| if x > 0.0 && x < 6.0 { g } else { 0.0 })
        }),
        Op::LeakyRelu { slope } => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, move |g, x| if x > 0.0 { g } else { g * slope })
        }),
        Op::Elu { alpha } => zip_slices(g, s, name, move |g, x, o| {
            ew::elu_backward_slice(g, x, o, alpha, 1.0)
        }),
        Op::Selu => zip_slices(g, s, name, |g, x, o| {
            ew::elu_backward_slice(g, x, o, SELU_ALPHA, SELU_SCALE)
        }),
        Op::Gelu => zip_slices(g, s, name, ew::gelu_backward_slice),
        Op::GeluTanh => zip_slices(g, s, name, ew::gelu_tanh_backward_slice),
        Op::Softplus => zip_slices(g, s, name, ew::softplus_backward_slice),
        Op::Silu => zip_slices(g, s, name, ew::silu_backward_slice),
        Op::HardSigmoid => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(
                g,
                s,
                o,
                |g, x| {
                    if x > -3.0 && x < 3.0 {
                        g / 6.0
                    } else {
                        0.0
                    }
                },
            )
        }),
        Op::HardSwish => zip_slices(g, s, name, move |g, s, o| {
            ew::map2(g, s, o, |g, x| {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    g * (x / 3.0 + 0.5)
                } else {
                    g
                }
            })
        }),
        Op::Clamp { min, max } => {
            let (lo, hi) = clamp_bounds(min, max);
            zip_slices(g, s, name, move |g, s, o| {
                ew::map2(
                    g,
                    s,
                    o,
                    move |g, x| if x >= lo && x <= hi { g } else { 0.0 },
                )
            })
        }
        _ => Err(Error::Backward(format!(
            "internal error: '{name}' is not an elementwise unary op"
        ))),
    }
}
