//! Comparisons (Bool outputs, broadcasting, any numeric dtype), logical ops, `where_`,
//! `masked_fill`, `isnan` and `isfinite`.
//!
//! Tensors of the same dtype compare in that dtype; mixed dtypes compare as f64 (exact for every
//! dtype but i64 beyond 2^53). Comparisons have no gradient; `where_` and `masked_fill` pass
//! gradients to their float inputs.

use super::broadcast::Broadcast;
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::parallel::prelude::*;
use crate::shape::{broadcast_shapes, numel, Layout};
use crate::storage::{pool, Buffer};
use crate::{DType, Element, Error, Result, Tensor};

/// A comparison predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn name(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Ne => "ne",
            Cmp::Lt => "lt",
            Cmp::Le => "le",
            Cmp::Gt => "gt",
            Cmp::Ge => "ge",
        }
    }

    fn scalar_name(self) -> &'static str {
        match self {
            Cmp::Eq => "eq_scalar",
            Cmp::Ne => "ne_scalar",
            Cmp::Lt => "lt_scalar",
            Cmp::Le => "le_scalar",
            Cmp::Gt => "gt_scalar",
            Cmp::Ge => "ge_scalar",
        }
    }
}

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
        match super::par_chunk(x.len(), 1 << 16) {
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
fn truth_values(t: &Tensor, op: &'static str) -> Result<Vec<bool>> {
    t.check_cpu(op)?;
    if t.dtype() == DType::Bool {
        return t.to_vec::<bool>();
    }
    Ok(t.to_f64_vec()?.into_iter().map(|v| v != 0.0).collect())
}

fn expect_bool(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::Bool {
        return Err(Error::dtype(
            op,
            t.dtype(),
            "Bool (a mask from a comparison)",
        ));
    }
    t.check_cpu(op)
}

/// Masks a gradient of the broadcast shape: keeps `g` where `cond == keep`, 0 elsewhere.
fn mask_grad(cond: &Tensor, g: &Tensor, keep: bool, op: &'static str) -> Result<Tensor> {
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

impl Tensor {
    fn compare(&self, other: &Tensor, cmp: Cmp) -> Result<Tensor> {
        let op = cmp.name();
        super::same_device(op, self, other)?;
        self.check_cpu(op)?;
        let shape = broadcast_shapes(op, self.shape(), other.shape())?;
        let mut out = vec![false; numel(&shape)];
        {
            let (ga, gb) = (self.storage().read(), other.storage().read());
            let (la, lb) = (self.layout(), other.layout());
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
                    let (x, y) = (self.to_f64_vec()?, other.to_f64_vec()?);
                    let (la, lb) = (
                        Layout::contiguous(self.shape()),
                        Layout::contiguous(other.shape()),
                    );
                    cmp_typed((&x, &la), (&y, &lb), &shape, cmp, &mut out);
                }
            }
        }
        Tensor::from_vec(out, &shape)
    }

    fn compare_scalar(&self, value: f64, cmp: Cmp) -> Result<Tensor> {
        let op = cmp.scalar_name();
        self.check_cpu(op)?;
        let out = match self.dtype() {
            // A float tensor compares with the scalar rounded to its dtype, like PyTorch.
            DType::F32 => self.with_f32(op, |x| cmp_scalar_slice(x, value as f32, cmp))?,
            DType::I64 if value.fract() == 0.0 && value.abs() < 9.2e18 => {
                cmp_scalar_slice(&self.to_vec::<i64>()?, value as i64, cmp)
            }
            DType::F16 => {
                let v = half::f16::from_f64(value).to_f64();
                cmp_scalar_slice(&self.to_f64_vec()?, v, cmp)
            }
            DType::BF16 => {
                let v = half::bf16::from_f64(value).to_f64();
                cmp_scalar_slice(&self.to_f64_vec()?, v, cmp)
            }
            _ => cmp_scalar_slice(&self.to_f64_vec()?, value, cmp),
        };
        Tensor::from_vec(out, self.shape())
    }

    /// `self == other` elementwise with broadcasting, as a Bool tensor.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Eq)
    }

    /// `self != other` elementwise with broadcasting (true where either is NaN).
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ne)
    }

    /// `self < other` elementwise with broadcasting.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Lt)
    }

    /// `self <= other` elementwise with broadcasting.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Le)
    }

    /// `self > other` elementwise with broadcasting.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Gt)
    }

    /// `self >= other` elementwise with broadcasting.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, Cmp::Ge)
    }

    /// `self == value` as a Bool tensor. Float tensors compare with `value` rounded to their
    /// dtype (like PyTorch); integer tensors compare exactly.
    pub fn eq_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Eq)
    }

    /// `self != value` (see [`Tensor::eq_scalar`]).
    pub fn ne_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Ne)
    }

    /// `self < value` (see [`Tensor::eq_scalar`]).
    pub fn lt_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Lt)
    }

    /// `self <= value` (see [`Tensor::eq_scalar`]).
    pub fn le_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Le)
    }

    /// `self > value` (see [`Tensor::eq_scalar`]).
    pub fn gt_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Gt)
    }

    /// `self >= value` (see [`Tensor::eq_scalar`]).
    pub fn ge_scalar(&self, value: f64) -> Result<Tensor> {
        self.compare_scalar(value, Cmp::Ge)
    }

    fn logical(
        &self,
        other: &Tensor,
        op: &'static str,
        f: fn(bool, bool) -> bool,
    ) -> Result<Tensor> {
        super::same_device(op, self, other)?;
        let shape = broadcast_shapes(op, self.shape(), other.shape())?;
        let (a, b) = (truth_values(self, op)?, truth_values(other, op)?);
        let mut out = vec![false; numel(&shape)];
        bcast2(
            &a,
            &Layout::contiguous(self.shape()),
            &b,
            &Layout::contiguous(other.shape()),
            &shape,
            &mut out,
            f,
        );
        Tensor::from_vec(out, &shape)
    }

    /// Elementwise AND with broadcasting, as a Bool tensor. Non-Bool inputs count as true where
    /// non-zero (like PyTorch).
    pub fn logical_and(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, "logical_and", |a, b| a && b)
    }

    /// Elementwise OR with broadcasting (see [`Tensor::logical_and`]).
    pub fn logical_or(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, "logical_or", |a, b| a || b)
    }

    /// Elementwise XOR with broadcasting (see [`Tensor::logical_and`]).
    pub fn logical_xor(&self, other: &Tensor) -> Result<Tensor> {
        self.logical(other, "logical_xor", |a, b| a != b)
    }

    /// Elementwise NOT, as a Bool tensor (non-Bool inputs: true where zero).
    pub fn logical_not(&self) -> Result<Tensor> {
        let v: Vec<bool> = truth_values(self, "logical_not")?
            .into_iter()
            .map(|b| !b)
            .collect();
        Tensor::from_vec(v, self.shape())
    }

    /// Elementwise select: `a` where `self` (a Bool condition) is true, `b` elsewhere; all three
    /// broadcast. `a` and `b` must share a dtype; for f32 the gradient flows to `a` where the
    /// condition holds and to `b` elsewhere.
    pub fn where_(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where";
        expect_bool(OP, self)?;
        super::same_device(OP, self, a)?;
        super::same_device(OP, a, b)?;
        if a.dtype() != b.dtype() {
            return Err(Error::dtype(
                OP,
                b.dtype(),
                format!("the dtype of the other branch ({:?})", a.dtype()),
            ));
        }
        let ab = broadcast_shapes(OP, a.shape(), b.shape())?;
        let shape = broadcast_shapes(OP, self.shape(), &ab)?;
        let n = numel(&shape);
        let out = {
            let (gc, ga, gb) = (
                self.storage().read(),
                a.storage().read(),
                b.storage().read(),
            );
            let Buffer::Bool(dc) = &*gc else {
                unreachable!("dtype checked")
            };
            let lc = (dc.as_slice(), self.layout());
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
        if a.dtype() != DType::F32 {
            return Ok(out);
        }
        Ok(record_rule(
            out,
            Op::Where,
            &[a, b],
            where_grad,
            Saved::tensors(vec![self.detach()]),
        ))
    }

    /// `value` where `mask` (Bool) is true, `self` elsewhere; `self` and `mask` broadcast. For
    /// f32 the gradient passes where the mask is false.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        const OP: &str = "masked_fill";
        expect_bool(OP, mask)?;
        super::same_device(OP, self, mask)?;
        let shape = broadcast_shapes(OP, self.shape(), mask.shape())?;
        let n = numel(&shape);
        let out = {
            let (gx, gm) = (self.storage().read(), mask.storage().read());
            let Buffer::Bool(dm) = &*gm else {
                unreachable!("dtype checked")
            };
            let (lx, lm) = (self.layout(), mask.layout());
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
        if self.dtype() != DType::F32 {
            return Ok(out);
        }
        Ok(record_rule(
            out,
            Op::MaskedFill { value },
            &[self],
            masked_fill_grad,
            Saved::tensors(vec![mask.detach()]),
        ))
    }

    /// True where the value is NaN (always false for integer and Bool tensors).
    pub fn isnan(&self) -> Result<Tensor> {
        self.float_test("isnan", f64::is_nan, f32::is_nan, false)
    }

    /// True where the value is neither infinite nor NaN (always true for integers and Bool).
    pub fn isfinite(&self) -> Result<Tensor> {
        self.float_test("isfinite", f64::is_finite, f32::is_finite, true)
    }

    fn float_test(
        &self,
        op: &'static str,
        f64_test: fn(f64) -> bool,
        f32_test: fn(f32) -> bool,
        int_value: bool,
    ) -> Result<Tensor> {
        self.check_cpu(op)?;
        let v = match self.dtype() {
            DType::F32 => self.with_f32(op, |x| x.iter().map(|&v| f32_test(v)).collect())?,
            DType::F16 | DType::BF16 => self.to_f64_vec()?.into_iter().map(f64_test).collect(),
            _ => vec![int_value; self.numel()],
        };
        Tensor::from_vec(v, self.shape())
    }
}

/// The gradient rule of `where_`: `g` masked by the condition (and its negation), summed
/// back to each input's shape.
fn where_grad(_: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let cond = ctx.saved(0)?;
    let (ra, rb) = (ctx.needs(0), ctx.needs(1));
    let (sa, sb) = (ctx.input_shape(0), ctx.input_shape(1));
    let ga = if ra {
        Some(mask_grad(cond, g, true, "where backward")?.sum_to_shape(sa)?)
    } else {
        None
    };
    let gb = if rb {
        Some(mask_grad(cond, g, false, "where backward")?.sum_to_shape(sb)?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

/// The gradient rule of `masked_fill`: `g` where the mask is false.
fn masked_fill_grad(_: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let m = ctx.saved(0)?;
    let sx = ctx.input_shape(0);
    Ok(vec![Some(
        mask_grad(m, g, false, "masked_fill backward")?.sum_to_shape(sx)?,
    )])
}
