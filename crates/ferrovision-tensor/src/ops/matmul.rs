//! Matrix products: [`Tensor::matmul`] (`torch.matmul` semantics), [`Tensor::linear`] and
//! [`Tensor::linear_relu`] (bias and ReLU fused into the GEMM epilogue).
//!
//! Operands are read in place through their strides (transposed or expanded views cost no
//! copy). A batch whose right operand is shared (e.g. `[N, T, in] · [in, out]`) and whose left
//! batch dims merge with its rows runs as one large GEMM; other batches run one GEMM per batch
//! entry in parallel. Backward uses the same kernels with swapped strides:
//! `dA = dC · Bᵀ`, `dB = Aᵀ · dC`, accumulating over broadcast batch dims directly in the GEMM.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::shape::{contiguous_strides, numel, Layout};
use crate::{Error, Result, Tensor};

/// Where one GEMM operand lives: element (batch index `b`, row `r`, col `c`) is at
/// `off + Σ b_i·bstr_i + r·rs + c·cs`.
#[derive(Debug, Clone)]
pub struct Operand {
    pub(crate) off: usize,
    pub(crate) bstr: Vec<usize>,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl Operand {
    /// The transposed operand (rows and columns swapped).
    pub(crate) fn t(&self) -> Operand {
        Operand {
            off: self.off,
            bstr: self.bstr.clone(),
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// A contiguous `[batch..., rows, cols]` operand.
    pub(crate) fn dense(batch: &[usize], rows: usize, cols: usize) -> Operand {
        let mut shape = batch.to_vec();
        shape.extend([rows, cols]);
        let st = contiguous_strides(&shape);
        Operand {
            off: 0,
            bstr: st[..batch.len()].to_vec(),
            rs: cols,
            cs: 1,
        }
    }
}

/// A planned product `C[batch, m, n] = A[batch, m, k] · B[batch, k, n]` (made by the op method
/// from the operands' layouts, run by a [`Backend`](crate::backend::Backend)).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Broadcast batch shape.
    pub(crate) batch: Vec<usize>,
    /// A's and B's own batch shapes, left-padded with 1 to `batch.len()`.
    pub(crate) a_batch: Vec<usize>,
    pub(crate) b_batch: Vec<usize>,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) a: Operand,
    pub(crate) b: Operand,
    /// Shape of the result (promoted 1-d dims removed).
    pub(crate) out_shape: Vec<usize>,
}

fn plan(op: &'static str, a: &Layout, b: &Layout) -> Result<Plan> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape.clone(),
            rhs: b.shape.clone(),
            detail: "both operands need rank >= 1".into(),
        });
    }
    // Promote 1-d operands: a row vector on the left, a column vector on the right.
    let (a_sh, a_st) = if a.rank() == 1 {
        (vec![1, a.shape[0]], vec![0, a.strides[0]])
    } else {
        (a.shape.clone(), a.strides.clone())
    };
    let (b_sh, b_st) = if b.rank() == 1 {
        (vec![b.shape[0], 1], vec![b.strides[0], 0])
    } else {
        (b.shape.clone(), b.strides.clone())
    };
    let (ra, rb) = (a_sh.len(), b_sh.len());
    let (m, k) = (a_sh[ra - 2], a_sh[ra - 1]);
    let (kb, n) = (b_sh[rb - 2], b_sh[rb - 1]);
    if k != kb {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape.clone(),
            rhs: b.shape.clone(),
            detail: format!("contracted dimensions differ ({k} vs {kb})"),
        });
    }
    let bl = (ra - 2).max(rb - 2);
    let pad = |sh: &[usize], st: &[usize]| -> (Vec<usize>, Vec<usize>) {
        let lead = bl - sh.len();
        let mut shape = vec![1; lead];
        shape.extend_from_slice(sh);
        let mut strides = vec![0; lead];
        strides.extend(sh.iter().zip(st).map(|(&d, &s)| if d == 1 { 0 } else { s }));
        (shape, strides)
    };
    let (a_batch, a_bstr) = pad(&a_sh[..ra - 2], &a_st[..ra - 2]);
    let (b_batch, b_bstr) = pad(&b_sh[..rb - 2], &b_st[..rb - 2]);
    let mut batch = Vec::with_capacity(bl);
    for i in 0..bl {
        let (da, db) = (a_batch[i], b_batch[i]);
        if da != db && da != 1 && db != 1 {
            return Err(Error::ShapeMismatch {
                op,
                lhs: a.shape.clone(),
                rhs: b.shape.clone(),
                detail: format!("batch dimensions do not broadcast ({da} vs {db})"),
            });
        }
        batch.push(da.max(db));
    }
    let mut out_shape = batch.clone();
    if a.rank() > 1 {
        out_shape.push(m);
    }
    if b.rank() > 1 {
        out_shape.push(n);
    }
    let mut p = Plan {
        batch,
        a_batch,
        b_batch,
        m,
        n,
        k,
        a: Operand {
            off: a.offset,
            bstr: a_bstr,
            rs: a_st[ra - 2],
            cs: a_st[ra - 1],
        },
        b: Operand {
            off: b.offset,
            bstr: b_bstr,
            rs: b_st[rb - 2],
            cs: b_st[rb - 1],
        },
        out_shape,
    };
    // Shared right operand and A's batch dims merging with its rows: one [batch*m, k] GEMM.
    if !p.batch.is_empty() && p.b_batch.iter().all(|&d| d == 1) {
        let mut dims: Vec<(usize, usize)> = p
            .a_batch
            .iter()
            .zip(&p.a.bstr)
            .map(|(&d, &s)| (d, s))
            .chain([(m, p.a.rs)])
            .filter(|&(d, _)| d != 1)
            .collect();
        if dims.is_empty() {
            dims.push((1, p.a.rs));
        }
        if dims.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0) {
            p.m = numel(&p.a_batch) * m;
            p.a.rs = dims[dims.len() - 1].1;
            p.batch.clear();
            p.a_batch.clear();
            p.b_batch.clear();
            p.a.bstr.clear();
            p.b.bstr.clear();
        }
    }
    Ok(p)
}

/// The shared op method of `matmul` / `linear` / `linear_relu` (`rec` is the op record):
/// plans the product from the layouts, runs it on the device's backend, records the rule.
fn mm_impl(rec: Op, a: &Tensor, b: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let op = rec.name();
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    super::same_device(op, a, b)?;
    let p = plan(op, a.layout(), b.layout())?;
    let y = backend::for_device(a.device(), op)?.matmul(&rec, &p, a, b, bias)?;

    let mut inputs = vec![a, b];
    if let Some(bt) = bias {
        inputs.push(bt);
    }
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let mut tensors = vec![a.detach(), b.detach()];
    if rec == (Op::Linear { relu: true }) {
        tensors.push(y.detach());
    }
    let saved = Saved::with_state(tensors, p);
    Ok(record_rule(y, rec, &inputs, grad, saved))
}

/// Checks the operands of `linear` / `linear_relu`.
fn check_linear(op: &'static str, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<()> {
    if w.rank() != 2 {
        return Err(Error::bad_shape(
            op,
            w.shape(),
            "a weight of shape [in, out]",
        ));
    }
    if x.rank() == 0 || x.shape()[x.rank() - 1] != w.shape()[0] {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.shape().to_vec(),
            rhs: w.shape().to_vec(),
            detail: format!(
                "the input's last dimension must equal the weight's {} input features",
                w.shape()[0]
            ),
        });
    }
    if let Some(b) = bias {
        if b.shape() != [w.shape()[1]] {
            return Err(Error::bad_shape(
                op,
                b.shape(),
                format!(
                    "a bias of shape [{}] for weight {:?}",
                    w.shape()[1],
                    w.shape()
                ),
            ));
        }
    }
    Ok(())
}

impl Tensor {
    /// Matrix product with `torch.matmul` semantics.
    ///
    /// - 1-d · 1-d: dot product (a scalar);
    /// - 2-d · 2-d: matrix product `[m, k] · [k, n] -> [m, n]`;
    /// - a 1-d left operand is a row vector `[1, k]`, a 1-d right operand a column `[k, 1]`, and
    ///   the added dimension is removed from the result;
    /// - higher ranks are batches of matrices (the last two dims) whose batch dims broadcast.
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    /// let v = Tensor::from_vec(vec![1.0f32, 1.0], &[2]).unwrap();
    /// assert_eq!(a.matmul(&v).unwrap().to_vec::<f32>().unwrap(), vec![3.0, 7.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        mm_impl(Op::MatMul, self, other, None)
    }

    /// Dense layer `x · W (+ bias)` (Keras convention): `self` is `[..., in]`, `weight`
    /// `[in, out]`, `bias` `[out]`; the result is `[..., out]`. The bias is added in the GEMM.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        check_linear("linear", self, weight, bias)?;
        mm_impl(Op::Linear { relu: false }, self, weight, bias)
    }

    /// `relu(x · W + bias)` with the bias and the ReLU fused into the GEMM epilogue (shapes as
    /// in [`Tensor::linear`]).
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        check_linear("linear_relu", self, weight, bias)?;
        mm_impl(Op::Linear { relu: true }, self, weight, bias)
    }
}

/// The gradient rule of `matmul` / `linear`: `dA = dY·Bᵀ`, `dB = Aᵀ·dY`, the bias gradient the
/// column sums of `dY` (after the fused ReLU's mask), computed by the device's backend.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let p = ctx.take_state::<Plan>()?;
    let (sa, sb) = (ctx.saved(0)?, ctx.saved(1)?);
    let saved_y = match op {
        Op::Linear { relu: true } => Some(ctx.saved(2)?),
        _ => None,
    };
    let needs = [ctx.needs(0), ctx.needs(1), ctx.needs(2)];
    let has_bias = ctx.num_inputs() == 3;
    let [ga, gb, gbias] = backend::for_device(g.device(), op.name())?
        .matmul_backward(op, &p, g, sa, sb, saved_y, needs)?;
    let mut grads = vec![ga, gb];
    if has_bias {
        grads.push(gbias);
    }
    Ok(grads)
}
