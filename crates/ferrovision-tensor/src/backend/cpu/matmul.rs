//! CPU matrix products: the batched packed GEMM behind [`Backend::matmul`] and
//! [`Backend::matmul_backward`](super::super::Backend::matmul_backward).
//!
//! The op file (`ops/matmul.rs`) plans the product from the operands' layouts (broadcast batch,
//! strides, promoted 1-d dims); this file runs it: one [`sgemm`] per batch entry (in parallel
//! for big batches), reading operands in place through their strides, bias and ReLU fused into
//! the epilogue. Backward reuses the same loop with swapped strides, `dA = dC·Bᵀ`,
//! `dB = Aᵀ·dC`, summing over broadcast batch dims directly in the GEMM.
//!
//! [`Backend::matmul`]: super::super::Backend::matmul

use crate::autograd::Op;
use crate::kernels::gemm::{sgemm, Activation, Bias, Epilogue};
use crate::ops::matmul::{Operand, Plan};
use crate::parallel::prelude::*;
use crate::shape::numel;
use crate::storage::{pool, Buffer};
use crate::{Error, Result, Tensor};

/// The fused activation of a matrix-product op record.
fn activation(op: &Op) -> Activation {
    match op {
        Op::Linear { relu: true } => Activation::Relu,
        _ => Activation::None,
    }
}

/// `A·B (+ bias) (then ReLU)` as planned by `p` (the forward of `matmul` / `linear` /
/// `linear_relu`).
pub(super) fn forward(
    op: &Op,
    p: &Plan,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let (op, act) = (op.name(), activation(op));
    let mut out = pool::take_uninit(numel(&p.out_shape));
    let run = |bias: Option<&[f32]>, out: &mut [f32]| -> Result<()> {
        let epi = Epilogue {
            bias: bias.map_or(Bias::None, Bias::PerCol),
            act,
            residual: None,
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
    Ok(Tensor::from_f32(out, &p.out_shape))
}

/// The gradients `[dA, dB, dbias]` (each only where `needs` asks) of the product planned by `p`
/// for the output gradient `g`; `relu_out` is the saved output of a fused ReLU, whose mask is
/// applied to `g` first.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    op: &Op,
    p: &Plan,
    g: &Tensor,
    sa: &Tensor,
    sb: &Tensor,
    relu_out: Option<&Tensor>,
    needs: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let op = op.name();
    let [ra, rb, rbias] = needs;
    let g = match relu_out {
        Some(y) => super::unary_grad::zip_map_f32(g, y, "linear_relu backward", |g, y| {
            if y > 0.0 {
                g
            } else {
                0.0
            }
        })?,
        None => g.clone(),
    };
    g.with_f32(op, |gd| -> Result<_> {
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
        Ok([ga, gb, gbias])
    })?
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
fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
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
    match crate::ops::par_chunk(rows, (1 << 14) / n.max(1) + 1) {
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
