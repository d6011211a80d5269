//! CPU kernels of the comparison family behind [`Backend::compare`](super::super::Backend)
//! and its gradient `compare_backward`: comparisons (tensor-tensor with broadcasting, and
//! against a scalar), logical ops, `isnan`/`isfinite`, `where` and `masked_fill`.
//!
//! Tensors of the same dtype compare in that dtype; mixed dtypes compare as f64 (exact for every
//! dtype but i64 beyond 2^53). Broadcasting runs through [`Broadcast`] row plans (`bcast2`,
//! `bcast3`), with unit-stride / broadcast-scalar fast paths; selections keep the input dtype.
//! The gradient of `where`/`masked_fill` is `g` masked by the Bool condition (`mask_grad`).

use crate::autograd::{Cmp, Logic, Op};
use crate::ops::broadcast::Broadcast;
use crate::parallel::prelude::*;
use crate::shape::{broadcast_shapes, numel, Layout};
use crate::storage::{pool, Buffer};
use crate::{DType, Element, Error, Result, Tensor};

/// `out = f(a, b)` over two strided operands broadcast to `shape` (out is row-major).
#[allow(clippy::too_many_arguments)]
fn bcast2<A, B, O>(
    da: &[A],
    la: &Layout,
    db: &[B],
    lb: &Layout,
    shape: &[usize],
    out: &mut [O],
    f: impl Fn(A, B) -> O + Sync,
) where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Send,
{
    let plan = Broadcast::new(shape, [la, lb]);
    let [sa, sb] = plan.inner_strides;
    plan.par_rows(out, |[pa, pb], dst| {
        let n = dst.len();
        let (ra, rb) = (plan.row_slice(da, 0, pa, n), plan.row_slice(db, 1, pb, n));
        match (sa, sb) {
            (1, 1) => {
                for ((d, &x), &y) in dst.iter_mut().zip(ra).zip(rb) {
                    *d = f(x, y);
                }
            }
            (1, 0) => {
                let y = rb[0];
                for (d, &x) in dst.iter_mut().zip(ra) {
                    *d = f(x, y);
                }
            }
            (0, 1) => {
                let x = ra[0];
                for (d, &y) in dst.iter_mut().zip(rb) {
                    *d = f(x, y);
                }
            }
            _ => {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = f(ra[i * sa], rb[i * sb]);
                }
            }
        }
    });
}

/// `out = f(a, b, c)` over three strided operands broadcast to `shape`.
#[allow(clippy::too_many_arguments)]
fn bcast3<A, B, C, O>(
    (da, la): (&[A], &Layout),
    (db, lb): (&[B], &Layout),
    (dc, lc): (&[C], &Layout),
    shape: &[usize],
    out: &mut [O],
    f: impl Fn(A, B, C) -> O + Sync,
) where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    O: Send,
{
    let plan = Broadcast::new(shape, [la, lb, lc]);
    let [sa, sb, sc] = plan.inner_strides;
    plan.par_rows(out, |[pa, pb, pc], dst| {
        let n = dst.len();
        let (ra, rb, rc) = (
            plan.row_slice(da, 0, pa, n),
            plan.row_slice(db, 1, pb, n),
            plan.row_slice(dc, 2, pc, n),
        );
        if (sa, sb, sc) == (1, 1, 1) {
            for (((d, &x), &y), &z) in dst.iter_mut().zip(ra).zip(rb).zip(rc) {
                *d = f(x, y, z);
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = f(ra[i * sa], rb[i * sb], rc[i * sc]);
            }
        }
    });
}

/// Compares two typed operands with `cmp`.
fn cmp_typed<T: PartialOrd + Copy + Sync>(
    (da, la): (&[T], &Layout),
    (db, lb): (&[T], &Layout),
    shape: &[usize],
    cmp: Cmp,
    out: &mut [bool],
) {
    match cmp {
        Cmp::Eq => bcast2(da, la, db, lb, shape, out, |a, b| a == b),
        Cmp::Ne => bcast2(da, la, db, lb, shape, out, |a, b| a != b),
        Cmp::Lt => bcast2(da, la, db, lb, shape, out, |a, b| a < b),
        Cmp::Le => bcast2(da, la, db, lb, shape, out, |a, b| a <= b),
        Cmp::Gt => bcast2(da, la, db, lb, shape, out, |a, b| a > b),
        Cmp::Ge => bcast2(da, la, db, lb, shape, out, |a, b| a >= b),
    }
}

/// Applies `cmp` against a scalar to a slice, in parallel for big inputs.
fn cmp_scalar_slice<T: PartialOrd + Copy + Sync>(x: &[T], v: T, cmp: Cmp) -> Vec<bool> {
    let mut out = vec![false; x.len()];
    fn go<T: Copy + Sync>(x: &[T], out: &mut [bool], f: impl Fn(T) -> bool + Sync) {
        match crate::parallel::par_chunk(x.len(), 1 << 16) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(x.par_chunks(chunk))
                .for_each(|(o, s)| {
                    for (d, &a) in o.iter_mut().zip(s) {
                        *d = f(a);
                    }
                }),
            None => {
                for (d, &a) in out.iter_mut().zip(x) {
                    *d = f(a);
                }
            }
        }
    }
    match cmp {
        Cmp::Eq => go(x, &mut out, |a| a == v),
        Cmp::Ne => go(x, &mut out, |a| a != v),
        Cmp::Lt => go(x, &mut out, |a| a < v),
        Cmp::Le => go(x, &mut out, |a| a <= v),
        Cmp::Gt => go(x, &mut out, |a| a > v),
        Cmp::Ge => go(x, &mut out, |a| a >= v),
    }
    out
}

/// The values of any tensor as booleans (`!= 0`; NaN is true), row-major.
fn truth_values(t: &Tensor) -> Result<Vec<bool>> {
    if t.dtype() == DType::Bool {
        return t.to_vec::<bool>();
    }
    Ok(t.to_f64_vec()?.into_iter().map(|v| v != 0.0).collect())
}

/// Masks a gradient of the broadcast shape: keeps `g` where `cond == keep`, 0 elsewhere.
pub(super) fn mask_grad(cond: &Tensor, g: &Tensor, keep: bool, op: &'static str) -> Result<Tensor> {
    let shape = g.shape().to_vec();
    let mut out = pool::take_uninit(numel(&shape));
    let gc = cond.storage().read();
    let Buffer::Bool(dc) = &*gc else {
        return Err(Error::dtype(op, cond.dtype(), "Bool"));
    };
    g.with_f32(op, |gs| {
        let lg = Layout::contiguous(&shape);
        bcast2(
            dc.as_slice(),
            cond.layout(),
            gs,
            &lg,
            &shape,
            &mut out,
            |c, g| {
                if c == keep {
                    g
                } else {
                    0.0
                }
            },
        )
    })?;
    Ok(Tensor::from_f32(out, &shape))
}

/// The comparison family's forward: see [`Backend::compare`](super::super::Backend::compare).
pub(super) fn compare(op: &Op, inputs: &[&Tensor]) -> Result<Tensor> {
    let name = op.name();
    let arity = match op {
        Op::Where => 3,
        Op::Compare { .. } | Op::MaskedFill { .. } => 2,
        Op::Logical { kind } if *kind != Logic::Not => 2,
        _ => 1,
    };
    if inputs.len() != arity {
        return Err(Error::invalid(
            name,
            format!("expected {arity} input(s), got {}", inputs.len()),
        ));
    }
    match *op {
        Op::Compare { cmp } => compare_tensors(name, inputs[0], inputs[1], cmp),
        Op::CompareScalar { cmp, value } => compare_scalar(name, inputs[0], value, cmp),
        Op::Logical { kind: Logic::Not } => {
            let v: Vec<bool> = truth_values(inputs[0])?.into_iter().map(|b| !b).collect();
            Tensor::from_vec(v, inputs[0].shape())
        }
        Op::Logical { kind } => logical(name, inputs[0], inputs[1], kind),
        Op::IsNan => float_test(name, inputs[0], f64::is_nan, f32::is_nan, false),
        Op::IsFinite => float_test(name, inputs[0], f64::is_finite, f32::is_finite, true),
        Op::Where => where_(inputs[0], inputs[1], inputs[2]),
        Op::MaskedFill { value } => masked_fill(inputs[0], inputs[1], value),
        _ => Err(Error::invalid(name, "not an op of the comparison family")),
    }
}

fn compare_tensors(op: &'static str, a: &Tensor, b: &Tensor, cmp: Cmp) -> Result<Tensor> {
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let mut out = vec![false; numel(&shape)];
    {
        let (ga, gb) = (a.storage().read(), b.storage().read());
        let (la, lb) = (a.layout(), b.layout());
        macro_rules! typed {
            ($x:expr, $y:expr) => {
                cmp_typed(
                    ($x.as_slice(), la),
                    ($y.as_slice(), lb),
                    &shape,
                    cmp,
                    &mut out,
                )
            };
        }
        match (&*ga, &*gb) {
            (Buffer::F32(x), Buffer::F32(y)) => typed!(x, y),
            (Buffer::I64(x), Buffer::I64(y)) => typed!(x, y),
            (Buffer::I32(x), Buffer::I32(y)) => typed!(x, y),
            (Buffer::U8(x), Buffer::U8(y)) => typed!(x, y),
            (Buffer::Bool(x), Buffer::Bool(y)) => typed!(x, y),
            (Buffer::F16(x), Buffer::F16(y)) => typed!(x, y),
            (Buffer::BF16(x), Buffer::BF16(y)) => typed!(x, y),
            _ => {
                drop((ga, gb));
                let (x, y) = (a.to_f64_vec()?, b.to_f64_vec()?);
                let (la, lb) = (Layout::contiguous(a.shape()), Layout::contiguous(b.shape()));
                cmp_typed((&x, &la), (&y, &lb), &shape, cmp, &mut out);
            }
        }
    }
    Tensor::from_vec(out, &shape)
}

fn compare_scalar(op: &'static str, x: &Tensor, value: f64, cmp: Cmp) -> Result<Tensor> {
    let out = match x.dtype() {
        // A float tensor compares with the scalar rounded to its dtype, like PyTorch.
        DType::F32 => x.with_f32(op, |x| cmp_scalar_slice(x, value as f32, cmp))?,
        DType::I64 if value.fract() == 0.0 && value.abs() < 9.2e18 => {
            cmp_scalar_slice(&x.to_vec::<i64>()?, value as i64, cmp)
        }
        DType::F16 => {
            let v = half::f16::from_f64(value).to_f64();
            cmp_scalar_slice(&x.to_f64_vec()?, v, cmp)
        }
        DType::BF16 => {
            let v = half::bf16::from_f64(value).to_f64();
            cmp_scalar_slice(&x.to_f64_vec()?, v, cmp)
        }
        _ => cmp_scalar_slice(&x.to_f64_vec()?, value, cmp),
    };
    Tensor::from_vec(out, x.shape())
}

fn logical(op: &'static str, ta: &Tensor, tb: &Tensor, kind: Logic) -> Result<Tensor> {
    let f: fn(bool, bool) -> bool = match kind {
        Logic::And => |a, b| a && b,
        Logic::Or => |a, b| a || b,
        _ => |a, b| a != b,
    };
    let shape = broadcast_shapes(op, ta.shape(), tb.shape())?;
    let (a, b) = (truth_values(ta)?, truth_values(tb)?);
    let mut out = vec![false; numel(&shape)];
    bcast2(
        &a,
        &Layout::contiguous(ta.shape()),
        &b,
        &Layout::contiguous(tb.shape()),
        &shape,
        &mut out,
        f,
    );
    Tensor::from_vec(out, &shape)
}

fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "where";
    let ab = broadcast_shapes(OP, a.shape(), b.shape())?;
    let shape = broadcast_shapes(OP, cond.shape(), &ab)?;
    let n = numel(&shape);
    let out = {
        let (gc, ga, gb) = (
            cond.storage().read(),
            a.storage().read(),
            b.storage().read(),
        );
        let Buffer::Bool(dc) = &*gc else {
            unreachable!("dtype checked")
        };
        let lc = (dc.as_slice(), cond.layout());
        let (la, lb) = (a.layout(), b.layout());
        macro_rules! typed {
            ($x:expr, $y:expr, $variant:ident) => {{
                let mut o = vec![Default::default(); n];
                bcast3(
                    lc,
                    ($x.as_slice(), la),
                    ($y.as_slice(), lb),
                    &shape,
                    &mut o,
                    |c, x, y| {
                        if c {
                            x
                        } else {
                            y
                        }
                    },
                );
                Buffer::$variant(o)
            }};
        }
        let buf = match (&*ga, &*gb) {
            (Buffer::F32(x), Buffer::F32(y)) => {
                let mut o = pool::take_uninit(n);
                bcast3(
                    lc,
                    (x.as_slice(), la),
                    (y.as_slice(), lb),
                    &shape,
                    &mut o,
                    |c, x, y| {
                        if c {
                            x
                        } else {
                            y
                        }
                    },
                );
                Buffer::F32(o)
            }
            (Buffer::F16(x), Buffer::F16(y)) => typed!(x, y, F16),
            (Buffer::BF16(x), Buffer::BF16(y)) => typed!(x, y, BF16),
            (Buffer::I64(x), Buffer::I64(y)) => typed!(x, y, I64),
            (Buffer::I32(x), Buffer::I32(y)) => typed!(x, y, I32),
            (Buffer::U8(x), Buffer::U8(y)) => typed!(x, y, U8),
            (Buffer::Bool(x), Buffer::Bool(y)) => typed!(x, y, Bool),
            _ => unreachable!("dtypes checked equal"),
        };
        Tensor::from_buffer(buf, &shape)
    };
    Ok(out)
}

fn masked_fill(x: &Tensor, mask: &Tensor, value: f32) -> Result<Tensor> {
    const OP: &str = "masked_fill";
    let shape = broadcast_shapes(OP, x.shape(), mask.shape())?;
    let n = numel(&shape);
    let out = {
        let (gx, gm) = (x.storage().read(), mask.storage().read());
        let Buffer::Bool(dm) = &*gm else {
            unreachable!("dtype checked")
        };
        let (lx, lm) = (x.layout(), mask.layout());
        macro_rules! typed {
            ($x:expr, $t:ty, $variant:ident) => {{
                let v = <$t as Element>::from_f64(value as f64);
                let mut o = vec![v; n];
                bcast2(
                    $x.as_slice(),
                    lx,
                    dm.as_slice(),
                    lm,
                    &shape,
                    &mut o,
                    |x, m| {
                        if m {
                            v
                        } else {
                            x
                        }
                    },
                );
                Buffer::$variant(o)
            }};
        }
        let buf = match &*gx {
            Buffer::F32(x) => {
                let mut o = pool::take_uninit(n);
                bcast2(
                    x.as_slice(),
                    lx,
                    dm.as_slice(),
                    lm,
                    &shape,
                    &mut o,
                    |x, m| {
                        if m {
                            value
                        } else {
                            x
                        }
                    },
                );
                Buffer::F32(o)
            }
            Buffer::F16(x) => typed!(x, half::f16, F16),
            Buffer::BF16(x) => typed!(x, half::bf16, BF16),
            Buffer::I64(x) => typed!(x, i64, I64),
            Buffer::I32(x) => typed!(x, i32, I32),
            Buffer::U8(x) => typed!(x, u8, U8),
            Buffer::Bool(x) => typed!(x, bool, Bool),
        };
        Tensor::from_buffer(buf, &shape)
    };
    Ok(out)
}

fn float_test(
    op: &'static str,
    x: &Tensor,
    f64_test: fn(f64) -> bool,
    f32_test: fn(f32) -> bool,
    int_value: bool,
) -> Result<Tensor> {
    let v = match x.dtype() {
        DType::F32 => x.with_f32(op, |x| x.iter().map(|&v| f32_test(v)).collect())?,
        DType::F16 | DType::BF16 => x.to_f64_vec()?.into_iter().map(f64_test).collect(),
        _ => vec![int_value; x.numel()],
    };
    Tensor::from_vec(v, x.shape())
}
