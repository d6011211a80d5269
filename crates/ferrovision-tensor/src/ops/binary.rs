//! Binary elementwise ops with NumPy broadcasting: add, sub, mul, div, pow, maximum, minimum.

use crate::autograd::record;
use crate::shape::{broadcast_shapes, numel};
use crate::storage::pool;
use crate::{Result, Tensor};
use rayon::prelude::*;

/// Which binary op a kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

impl BinOp {
    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
            BinOp::Max => {
                if a >= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinOp::Min => {
                if a <= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
            BinOp::Pow => "pow",
            BinOp::Max => "maximum",
            BinOp::Min => "minimum",
        }
    }
}

/// Inner loop over one row with strides (1 or 0) specialised so the compiler vectorises it.
#[inline(always)]
fn row(op: BinOp, a: &[f32], sa: usize, b: &[f32], sb: usize, out: &mut [f32]) {
    macro_rules! go {
        ($f:expr) => {
            match (sa, sb) {
                (1, 1) => {
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o = $f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[0];
                    for (o, &x) in out.iter_mut().zip(a) {
                        *o = $f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[0];
                    for (o, &y) in out.iter_mut().zip(b) {
                        *o = $f(x, y);
                    }
                }
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = $f(a[i * sa], b[i * sb]);
                    }
                }
            }
        };
    }
    match op {
        BinOp::Add => go!(|x: f32, y: f32| x + y),
        BinOp::Sub => go!(|x: f32, y: f32| x - y),
        BinOp::Mul => go!(|x: f32, y: f32| x * y),
        BinOp::Div => go!(|x: f32, y: f32| x / y),
        _ => go!(|x: f32, y: f32| op.apply(x, y)),
    }
}

/// Forward kernel of a broadcasting binary op on f32 tensors (no autodiff).
pub(crate) fn binary_forward(op: BinOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = op.name();
    a.expect_f32(name)?;
    b.expect_f32(name)?;
    super::same_device(name, a, b)?;
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    let n = numel(&shape);
    let mut out = pool::take_uninit(n);
    if n == 0 {
        return Ok(Tensor::from_f32(out, &shape));
    }
    let ga = a.storage().read();
    let gb = b.storage().read();
    let (crate::storage::Buffer::F32(da), crate::storage::Buffer::F32(db)) = (&*ga, &*gb) else {
        unreachable!("dtype checked above")
    };
    let sa = a.layout().broadcast_strides(&shape);
    let sb = b.layout().broadcast_strides(&shape);
    let (oa, ob) = (a.layout().offset, b.layout().offset);
    let rank = shape.len();
    let inner = if rank == 0 { 1 } else { shape[rank - 1] };
    let (isa, isb) = if rank == 0 {
        (1, 1)
    } else {
        (sa[rank - 1], sb[rank - 1])
    };
    let rows = n / inner;
    let outer_shape = if rank == 0 {
        vec![]
    } else {
        shape[..rank - 1].to_vec()
    };
    // Fully contiguous same-shape operands: one flat row, split across threads.
    let flat = a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous();
    if flat {
        let da = &da[oa..oa + n];
        let db = &db[ob..ob + n];
        match super::par_chunk(n, 1 << 15) {
            Some(chunk) => out
                .par_chunks_mut(chunk)
                .zip(da.par_chunks(chunk).zip(db.par_chunks(chunk)))
                .for_each(|(o, (x, y))| row(op, x, 1, y, 1, o)),
            None => row(op, da, 1, db, 1, &mut out),
        }
        drop((ga, gb));
        return Ok(Tensor::from_f32(out, &shape));
    }
    let row_offsets = |r: usize| -> (usize, usize) {
        // Offset of row r (multi-index over the outer dims) in a and b.
        let mut rem = r;
        let (mut pa, mut pb) = (oa, ob);
        for d in (0..outer_shape.len()).rev() {
            let i = rem % outer_shape[d];
            rem /= outer_shape[d];
            pa += i * sa[d];
            pb += i * sb[d];
        }
        (pa, pb)
    };
    let run_row = |r: usize, o: &mut [f32]| {
        let (pa, pb) = row_offsets(r);
        let la = if isa == 0 { 1 } else { (inner - 1) * isa + 1 };
        let lb = if isb == 0 { 1 } else { (inner - 1) * isb + 1 };
        row(op, &da[pa..pa + la], isa, &db[pb..pb + lb], isb, o);
    };
    if n >= 1 << 16 && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| run_row(r, o));
    } else {
        for (r, o) in out.chunks_mut(inner).enumerate() {
            run_row(r, o);
        }
    }
    debug_assert_eq!(rows * inner, n);
    drop((ga, gb));
    Ok(Tensor::from_f32(out, &shape))
}

impl Tensor {
    /// `self + other` with broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinOp::Add, self, other)?;
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Ok(record(out, "add", &[self, other], move |g| {
            Ok(vec![Some(g.sum_to_shape(&sa)?), Some(g.sum_to_shape(&sb)?)])
        }))
    }

    /// `self - other` with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinOp::Sub, self, other)?;
        let (sa, sb) = (self.shape().to_vec(), other.shape().to_vec());
        Ok(record(out, "sub", &[self, other], move |g| {
            Ok(vec![
                Some(g.sum_to_shape(&sa)?),
                Some(g.neg()?.sum_to_shape(&sb)?),
            ])
        }))
    }

    /// `self * other` (elementwise) with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinOp::Mul, self, other)?;
        let (a, b) = (self.detach(), other.detach());
        let (ra, rb) = (self.requires_grad(), other.requires_grad());
        Ok(record(out, "mul", &[self, other], move |g| {
            let ga = if ra {
                Some(binary_forward(BinOp::Mul, g, &b)?.sum_to_shape(a.shape())?)
            } else {
                None
            };
            let gb = if rb {
                Some(binary_forward(BinOp::Mul, g, &a)?.sum_to_shape(b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// `self / other` (elementwise) with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinOp::Div, self, other)?;
        let (a, b) = (self.detach(), other.detach());
        let (ra, rb) = (self.requires_grad(), other.requires_grad());
        Ok(record(out, "div", &[self, other], move |g| {
            let g_over_b = binary_forward(BinOp::Div, g, &b)?;
            let gb = if rb {
                // d(a/b)/db = -a/b^2 = -(g/b) * (a/b)
                let a_over_b = binary_forward(BinOp::Div, &a, &b)?;
                Some(
                    binary_forward(BinOp::Mul, &g_over_b, &a_over_b)?
                        .neg()?
                        .sum_to_shape(b.shape())?,
                )
            } else {
                None
            };
            let ga = if ra {
                Some(g_over_b.sum_to_shape(a.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// `self ^ other` (elementwise power) with broadcasting. The gradient for the exponent uses
    /// `ln(self)` and is only meaningful where `self > 0`.
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinOp::Pow, self, other)?;
        let (a, b, y) = (self.detach(), other.detach(), out.detach());
        let (ra, rb) = (self.requires_grad(), other.requires_grad());
        Ok(record(out, "pow", &[self, other], move |g| {
            let ga = if ra {
                // b * a^(b-1)
                let bm1 = b.add_scalar(-1.0)?;
                let d = binary_forward(BinOp::Mul, &b, &binary_forward(BinOp::Pow, &a, &bm1)?)?;
                Some(binary_forward(BinOp::Mul, g, &d)?.sum_to_shape(a.shape())?)
            } else {
                None
            };
            let gb = if rb {
                let d = binary_forward(BinOp::Mul, &y, &a.log()?)?;
                Some(binary_forward(BinOp::Mul, g, &d)?.sum_to_shape(b.shape())?)
            } else {
                None
            };
            Ok(vec![ga, gb])
        }))
    }

    /// Elementwise maximum with broadcasting; ties send the gradient to `self`.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.min_max(other, BinOp::Max)
    }

    /// Elementwise minimum with broadcasting; ties send the gradient to `self`.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.min_max(other, BinOp::Min)
    }

    fn min_max(&self, other: &Tensor, op: BinOp) -> Result<Tensor> {
        let out = binary_forward(op, self, other)?;
        let (a, b) = (self.detach(), other.detach());
        Ok(record(out, op.name(), &[self, other], move |g| {
            // Mask of where `a` won (ties go to a), computed elementwise in the broadcast shape.
            let shape = g.shape().to_vec();
            let av = a.expand(&shape)?.contiguous()?.to_vec::<f32>()?;
            let bv = b.expand(&shape)?.contiguous()?.to_vec::<f32>()?;
            let gv = g.to_vec::<f32>()?;
            let mut ga = pool::take_uninit(gv.len());
            let mut gb = pool::take_uninit(gv.len());
            for i in 0..gv.len() {
                let a_wins = op.apply(av[i], bv[i]) == av[i] || av[i].is_nan();
                ga[i] = if a_wins { gv[i] } else { 0.0 };
                gb[i] = if a_wins { 0.0 } else { gv[i] };
            }
            Ok(vec![
                Some(Tensor::from_f32(ga, &shape).sum_to_shape(a.shape())?),
                Some(Tensor::from_f32(gb, &shape).sum_to_shape(b.shape())?),
            ])
        }))
    }
}
