//! Matrix products: [`Tensor::matmul`] (`torch.matmul` semantics), [`Tensor::linear`] and
//! [`Tensor::linear_relu`] (bias and ReLU fused into the GEMM epilogue).
//!
//! Operands are read in place through their strides (transposed or expanded views cost no
//! copy). A batch whose right operand is shared (e.g. `[N, T, in] · [in, out]`) and whose left
//! batch dims merge with its rows runs as one large GEMM; other batches run one GEMM per batch
//! entry in parallel. Backward uses the same kernels with swapped strides:
//! `dA = dC · Bᵀ`, `dB = Aᵀ · dC`, accumulating over broadcast batch dims directly in the GEMM.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved};
use crate::kernels::gemm::{sgemm, Activation, Bias, Epilogue};
use crate::parallel::prelude::*;
use crate::shape::{contiguous_strides, numel, Layout};
use crate::storage::{pool, Buffer};
use crate::{Error, Result, Tensor};

/// Where one GEMM operand lives: element (batch index `b`, row `r`, col `c`) is at
/// `off + Σ b_i·bstr_i + r·rs + c·cs`.
#[derive(Debug, Clone)]
struct Operand {
    off: usize,
    bstr: Vec<usize>,
    rs: usize,
    cs: usize,
}

impl Operand {
    /// The transposed operand (rows and columns swapped).
    fn t(&self) -> Operand {
        Operand {
            off: self.off,
            bstr: self.bstr.clone(),
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// A contiguous `[batch..., rows, cols]` operand.
    fn dense(batch: &[usize], rows: usize, cols: usize) -> Operand {
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

/// A planned product `C[batch, m, n] = A[batch, m, k] · B[batch, k, n]`.
#[derive(Debug, Clone)]
struct Plan {
    /// Broadcast batch shape.
    batch: Vec<usize>,
    /// A's and B's own batch shapes, left-padded with 1 to `batch.len()`.
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    /// Shape of the result (promoted 1-d dims removed).
    out_shape: Vec<usize>,
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

/// Advances a row-major multi-index.
fn next_index(idx: &mut [usize], shape: &[usize]) {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < shape[d] {
            return;
        }
        idx[d] = 0;
    }
}

/// Writes the epilogue applied to a zero product (`k == 0`) into one `m×n` block.
fn fill_epilogue(c: &mut [f32], n: usize, epi: Epilogue<'_>) {
    for (i, row) in c.chunks_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let mut x = match epi.bias {
                Bias::None => 0.0,
                Bias::PerRow(b) => b[i],
                Bias::PerCol(b) => b[j],
            };
            if epi.act == Activation::Relu {
                x = x.max(0.0);
            }
            *v = x;
        }
    }
}

/// Below this many multiply-adds the batch loop stays on one thread.
const PAR_MIN_MACS: usize = 1 << 15;

/// Batched GEMM into a contiguous `[out_batch..., m, n]` output, summing over the batch dims
/// where `out_batch` is 1 but `batch` is not (gradients of broadcast operands).
///
/// The epilogue is applied on every GEMM, so it must be the default when anything is summed.
#[allow(clippy::too_many_arguments)]
fn batched_gemm(
    batch: &[usize],
    out_batch: &[usize],
    (m, n, k): (usize, usize, usize),
    ad: &[f32],
    a: &Operand,
    bd: &[f32],
    b: &Operand,
    out: &mut [f32],
    epi: Epilogue<'_>,
) {
    let mn = m * n;
    if mn == 0 {
        return;
    }
    let red_shape: Vec<usize> = batch
        .iter()
        .zip(out_batch)
        .map(|(&full, &o)| if o == 1 { full } else { 1 })
        .collect();
    let red = numel(&red_shape);
    let slots = numel(out_batch);
    debug_assert_eq!(out.len(), slots * mn);
    if k == 0 || red == 0 {
        for c in out.chunks_mut(mn) {
            fill_epilogue(c, n, epi);
        }
        return;
    }
    let run_slot = |s: usize, c: &mut [f32]| {
        let mut sidx = vec![0usize; out_batch.len()];
        let mut rem = s;
        for d in (0..out_batch.len()).rev() {
            sidx[d] = rem % out_batch[d];
            rem /= out_batch[d];
        }
        let mut ridx = vec![0usize; batch.len()];
        for r in 0..red {
            let (mut ao, mut bo) = (a.off, b.off);
            for d in 0..batch.len() {
                let i = sidx[d] + ridx[d];
                ao += i * a.bstr[d];
                bo += i * b.bstr[d];
            }
            sgemm(
                m,
                n,
                k,
                &ad[ao..],
                a.rs,
                a.cs,
                &bd[bo..],
                b.rs,
                b.cs,
                c,
                n,
                r > 0,
                epi,
            );
            next_index(&mut ridx, &red_shape);
        }
    };
    if slots > 1 && slots * red * mn * k >= PAR_MIN_MACS && crate::parallel::num_threads() > 1 {
        out.par_chunks_mut(mn)
            .enumerate()
            .for_each(|(s, c)| run_slot(s, c));
    } else {
        for (s, c) in out.chunks_mut(mn).enumerate() {
            run_slot(s, c);
        }
    }
}

/// Runs `f` on the whole f32 storage of `t` (to be indexed through its layout).
fn with_storage<R>(t: &Tensor, op: &'static str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    t.expect_f32(op)?;
    let guard = t.storage().read();
    let Buffer::F32(data) = &*guard else {
        return Err(Error::dtype(op, t.dtype(), "f32"));
    };
    Ok(f(data))
}

/// Column sums of a contiguous `[rows, n]` matrix (bias gradients).
pub(crate) fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    let rows = g.len().checked_div(n).unwrap_or(0);
    let partial = |rows: &[f32]| -> Vec<f32> {
        let mut acc = vec![0.0f32; n];
        for r in rows.chunks_exact(n) {
            for (a, &v) in acc.iter_mut().zip(r) {
                *a += v;
            }
        }
        acc
    };
    match super::par_chunk(rows, (1 << 14) / n.max(1) + 1) {
        Some(chunk) => g.par_chunks(chunk * n).map(partial).reduce(
            || vec![0.0; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        ),
        None => partial(g),
    }
}

fn mm_impl(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
) -> Result<Tensor> {
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    super::same_device(op, a, b)?;
    let p = plan(op, a.layout(), b.layout())?;
    let mut out = pool::take_uninit(numel(&p.out_shape));
    let run = |bias: Option<&[f32]>, out: &mut [f32]| -> Result<()> {
        let epi = Epilogue {
            bias: bias.map_or(Bias::None, Bias::PerCol),
            act,
        };
        with_storage(a, op, |ad| {
            with_storage(b, op, |bd| {
                batched_gemm(
                    &p.batch,
                    &p.batch,
                    (p.m, p.n, p.k),
                    ad,
                    &p.a,
                    bd,
                    &p.b,
                    out,
                    epi,
                )
            })
        })?
    };
    match bias {
        Some(bt) => {
            bt.expect_f32(op)?;
            bt.with_f32(op, |bs| run(Some(bs), &mut out))??
        }
        None => run(None, &mut out)?,
    }
    let y = Tensor::from_f32(out, &p.out_shape);

    let mut inputs = vec![a, b];
    if let Some(bt) = bias {
        inputs.push(bt);
    }
    let rec = if bias.is_none() && op == "matmul" {
        Op::MatMul
    } else {
        Op::Linear {
            relu: act == Activation::Relu,
        }
    };
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let mut tensors = vec![a.detach(), b.detach()];
    if act == Activation::Relu {
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
        mm_impl("matmul", self, other, None, Activation::None)
    }

    /// Dense layer `x · W (+ bias)` (Keras convention): `self` is `[..., in]`, `weight`
    /// `[in, out]`, `bias` `[out]`; the result is `[..., out]`. The bias is added in the GEMM.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        check_linear("linear", self, weight, bias)?;
        mm_impl("linear", self, weight, bias, Activation::None)
    }

    /// `relu(x · W + bias)` with the bias and the ReLU fused into the GEMM epilogue (shapes as
    /// in [`Tensor::linear`]).
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        check_linear("linear_relu", self, weight, bias)?;
        mm_impl("linear_relu", self, weight, bias, Activation::Relu)
    }
}

/// The gradient rule of `matmul` / `linear`: `dA = dY·Bᵀ`, `dB = Aᵀ·dY` with the packed GEMM,
/// the bias gradient the column sums of `dY` (after the fused ReLU's mask).
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let p = ctx.take_state::<Plan>()?;
    let (sa, sb) = (ctx.saved(0)?, ctx.saved(1)?);
    let saved_y = match op {
        Op::Linear { relu: true } => Some(ctx.saved(2)?),
        _ => None,
    };
    let op = op.name();
    let (ra, rb, rbias) = (ctx.needs(0), ctx.needs(1), ctx.needs(2));
    let has_bias = ctx.num_inputs() == 3;
    let g =
        match &saved_y {
            Some(y) => super::unary::zip_map_f32(g, y, "linear_relu backward", |g, y| {
                if y > 0.0 {
                    g
                } else {
                    0.0
                }
            })?,
            None => g.clone(),
        };
    let (ga, gb, gbias) = g.with_f32(op, |gd| -> Result<_> {
        let g_op = Operand::dense(&p.batch, p.m, p.n);
        let ga = if ra {
            let mut da = pool::take_uninit(sa.numel());
            with_storage(sb, op, |bd| {
                batched_gemm(
                    &p.batch,
                    &p.a_batch,
                    (p.m, p.k, p.n),
                    gd,
                    &g_op,
                    bd,
                    &p.b.t(),
                    &mut da,
                    Epilogue::default(),
                )
            })?;
            Some(Tensor::from_f32(da, sa.shape()))
        } else {
            None
        };
        let gb = if rb {
            let mut db = pool::take_uninit(sb.numel());
            with_storage(sa, op, |ad| {
                batched_gemm(
                    &p.batch,
                    &p.b_batch,
                    (p.k, p.n, p.m),
                    ad,
                    &p.a.t(),
                    gd,
                    &g_op,
                    &mut db,
                    Epilogue::default(),
                )
            })?;
            Some(Tensor::from_f32(db, sb.shape()))
        } else {
            None
        };
        let gbias = if rbias {
            Some(Tensor::from_f32(column_sums(gd, p.n), &[p.n]))
        } else {
            None
        };
        Ok((ga, gb, gbias))
    })??;
    let mut grads = vec![ga, gb];
    if has_bias {
        grads.push(gbias);
    }
    Ok(grads)
}
