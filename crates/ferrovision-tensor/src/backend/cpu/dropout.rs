//! CPU kernels of the dropouts behind [`Backend::dropout`](super::super::Backend::dropout) and
//! `dropout_backward`: keep-mask generation and the masked, inverted-scaled multiply.
//!
//! Masks take one random `u32` per element (per channel for spatial dropout): an element is
//! kept when the number is at least `round(p · 2³²)`. Elementwise masks are drawn in fixed
//! chunks of 64 Ki elements, each from its own generator seeded from the caller's [`Rng`], so
//! the chunks are filled in parallel and the mask depends only on the seed, never on the
//! number of threads. The backward pass multiplies by the saved byte mask.

use crate::autograd::Op;
use crate::parallel::prelude::*;
use crate::rng::Rng;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Elements per independently seeded mask chunk (fixed: it defines the random stream).
const CHUNK: usize = 1 << 16;

/// The keep threshold, the inverted scale and the elements per mask byte of a dropout `op` on a
/// tensor of `shape`.
fn params(op: &Op, shape: &[usize]) -> Result<(u64, f32, usize)> {
    let (p, seg) = match *op {
        Op::Dropout { p, .. } => (p, 1),
        Op::SpatialDropout { p, .. } if shape.len() >= 2 => (p, shape[2..].iter().product()),
        _ => return Err(Error::invalid(op.name(), "not a dropout op of this shape")),
    };
    let threshold = (p as f64 * 4_294_967_296.0).round() as u64;
    let scale = 1.0f32 / (1.0f32 - p);
    Ok((threshold, scale, seg))
}

/// The dropout forward: see [`Backend::dropout`](super::super::Backend::dropout).
pub(super) fn forward(op: &Op, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Vec<u8>)> {
    let (threshold, scale, seg) = params(op, x.shape())?;
    if let Op::SpatialDropout { .. } = op {
        let sh = x.shape();
        let mut mask = vec![0u8; sh[0] * sh[1]];
        fill_mask(&mut mask, rng, threshold);
        let out = x.with_f32(op.name(), |xs| apply_mask(xs, &mask, seg, scale))?;
        return Ok((Tensor::from_f32(out, sh), mask));
    }
    const OP: &str = "dropout";
    let n = x.numel();
    let seeds: Vec<u64> = (0..n.div_ceil(CHUNK)).map(|_| rng.next_u64()).collect();
    let mut mask = vec![0u8; n];
    let mut out = pool::take_uninit(n);
    x.with_f32(OP, |xs| {
        let body = |j: usize, o: &mut [f32], m: &mut [u8]| {
            let mut rng = Rng::new(seeds[j]);
            let x = &xs[j * CHUNK..][..o.len()];
            // Sub-blocks keep the fresh mask bytes in L1 for the multiply (same stream).
            for ((o, m), x) in o
                .chunks_mut(4096)
                .zip(m.chunks_mut(4096))
                .zip(x.chunks(4096))
            {
                fill_mask(m, &mut rng, threshold);
                for ((o, &x), &k) in o.iter_mut().zip(x).zip(m.iter()) {
                    *o = x * (k as f32 * scale);
                }
            }
        };
        if n >= 2 * CHUNK && crate::parallel::num_threads() > 1 {
            out.par_chunks_mut(CHUNK)
                .zip(mask.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(j, (o, m))| body(j, o, m));
        } else {
            for (j, (o, m)) in out
                .chunks_mut(CHUNK)
                .zip(mask.chunks_mut(CHUNK))
                .enumerate()
            {
                body(j, o, m);
            }
        }
    })?;
    Ok((Tensor::from_f32(out, x.shape()), mask))
}

/// The dropout gradient: `g · mask · scale`.
pub(super) fn backward(op: &Op, g: &Tensor, mask: &[u8]) -> Result<Tensor> {
    let (_, scale, seg) = params(op, g.shape())?;
    let dx = g.with_f32(op.name(), |gs| apply_mask(gs, mask, seg, scale))?;
    Ok(Tensor::from_f32(dx, g.shape()))
}

/// Fills `mask` with 1 (keep) or 0 (drop), two `u32` draws per `u64`.
fn fill_mask(mask: &mut [u8], rng: &mut Rng, threshold: u64) {
    let mut pairs = mask.chunks_exact_mut(2);
    for m in &mut pairs {
        let v = rng.next_u64();
        m[0] = ((v & 0xFFFF_FFFF) >= threshold) as u8;
        m[1] = ((v >> 32) >= threshold) as u8;
    }
    if let [last] = pairs.into_remainder() {
        *last = ((rng.next_u64() & 0xFFFF_FFFF) >= threshold) as u8;
    }
}

/// `out = x · mask · scale`, with one mask byte per `seg`-long segment of `x`.
fn apply_mask(xs: &[f32], mask: &[u8], seg: usize, scale: f32) -> Vec<f32> {
    let mut out = pool::take_uninit(xs.len());
    let body = |first_seg: usize, o: &mut [f32]| {
        let x = &xs[first_seg * seg..][..o.len()];
        if seg == 1 {
            for ((o, &x), &k) in o.iter_mut().zip(x).zip(&mask[first_seg..]) {
                *o = x * (k as f32 * scale);
            }
        } else {
            for ((o, x), &k) in o.chunks_mut(seg).zip(x.chunks(seg)).zip(&mask[first_seg..]) {
                let f = k as f32 * scale;
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = x * f;
                }
            }
        }
    };
    if seg == 0 || xs.is_empty() {
        return out;
    }
    match crate::parallel::par_chunk(xs.len(), 1 << 15) {
        Some(chunk) => {
            let segs_per = chunk.div_ceil(seg);
            out.par_chunks_mut(segs_per * seg)
                .enumerate()
                .for_each(|(j, o)| body(j * segs_per, o));
        }
        None => body(0, &mut out),
    }
    out
}
