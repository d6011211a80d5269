//! Elementwise unary ops and scalar arithmetic.

use crate::autograd::record;
use crate::storage::pool;
use crate::{Result, Tensor};
use rayon::prelude::*;

/// Applies `f` to every element (f32) into a new contiguous tensor, in parallel for big inputs.
pub(crate) fn map_f32(
    t: &Tensor,
    op: &'static str,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<Tensor> {
    t.expect_f32(op)?;
    let mut out = pool::take_uninit(t.numel());
    t.with_f32(op, |src| match super::par_chunk(src.len(), 1 << 15) {
        Some(chunk) => out
            .par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(o, s)| f(s, o)),
        None => f(src, &mut out),
    })?;
    Ok(Tensor::from_f32(out, t.shape()))
}

/// Combines two same-shape f32 tensors elementwise into a new tensor (used by backward rules).
pub(crate) fn zip_map_f32(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(crate::Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    a.expect_f32(op)?;
    b.expect_f32(op)?;
    let mut out = pool::take_uninit(a.numel());
    a.with_f32(op, |xs| {
        b.with_f32(op, |ys| {
            let body = |o: &mut [f32], x: &[f32], y: &[f32]| {
                for ((r, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *r = f(x, y);
                }
            };
            match super::par_chunk(xs.len(), 1 << 15) {
                Some(chunk) => out
                    .par_chunks_mut(chunk)
                    .zip(xs.par_chunks(chunk).zip(ys.par_chunks(chunk)))
                    .for_each(|(o, (x, y))| body(o, x, y)),
                None => body(&mut out, xs, ys),
            }
        })
    })??;
    Ok(Tensor::from_f32(out, a.shape()))
}

impl Tensor {
    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        let out = map_f32(self, "neg", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = -x;
            }
        })?;
        Ok(record(out, "neg", &[self], |g| Ok(vec![Some(g.neg()?)])))
    }

    /// `self + c`.
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        let out = map_f32(self, "add_scalar", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = x + c;
            }
        })?;
        Ok(record(out, "add_scalar", &[self], |g| {
            Ok(vec![Some(g.clone())])
        }))
    }

    /// `self * c`.
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        let out = map_f32(self, "mul_scalar", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = x * c;
            }
        })?;
        Ok(record(out, "mul_scalar", &[self], move |g| {
            Ok(vec![Some(g.mul_scalar(c)?)])
        }))
    }

    /// `exp(self)`.
    pub fn exp(&self) -> Result<Tensor> {
        let out = map_f32(self, "exp", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = x.exp();
            }
        })?;
        let y = out.detach();
        Ok(record(out, "exp", &[self], move |g| {
            Ok(vec![Some(g.mul(&y)?)])
        }))
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        let out = map_f32(self, "log", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = x.ln();
            }
        })?;
        let x = self.detach();
        Ok(record(out, "log", &[self], move |g| {
            Ok(vec![Some(g.div(&x)?)])
        }))
    }

    /// `max(self, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        let out = map_f32(self, "relu", |s, o| {
            for (x, r) in s.iter().zip(o) {
                *r = x.max(0.0);
            }
        })?;
        let y = out.detach();
        Ok(record(out, "relu", &[self], move |g| {
            Ok(vec![Some(zip_map_f32(g, &y, "relu backward", |g, y| {
                if y > 0.0 {
                    g
                } else {
                    0.0
                }
            })?)])
        }))
    }
}
