//! Dropout (elementwise) and spatial dropout (whole channels), with inverted scaling: kept
//! values are multiplied by `1 / (1 − p)` during training so inference is the identity.
//!
//! Masks take one random `u32` per element (per channel for spatial dropout): an element is
//! kept when the number is at least `round(p · 2³²)`. Elementwise masks are drawn in fixed
//! chunks of 64 Ki elements, each from its own generator seeded from the caller's [`Rng`], so
//! the chunks are filled in parallel and the mask depends only on the seed, never on the
//! number of threads. The backward pass multiplies by the saved byte mask.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::parallel::prelude::*;
use crate::rng::Rng;
use crate::storage::pool;
use crate::{Error, Result, Tensor};

/// Elements per independently seeded mask chunk (fixed: it defines the random stream).
const CHUNK: usize = 1 << 16;

fn check_p(op: &'static str, p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            op,
            format!("dropout probability has to be between 0 and 1, got {p}"),
        ));
    }
    Ok(())
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
    match super::par_chunk(xs.len(), 1 << 15) {
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

/// The kept-element mask of a dropout and its scale, saved for the gradient.
struct Mask {
    /// 1 = kept, one byte per segment of `seg` elements.
    mask: Vec<u8>,
    seg: usize,
    scale: f32,
}

/// Records `out` with the gradient rule `dx = dy · mask · scale`.
fn record_masked(
    out: Tensor,
    rec: Op,
    x: &Tensor,
    mask: Vec<u8>,
    seg: usize,
    scale: f32,
) -> Tensor {
    let saved = Saved::with_state(vec![], Mask { mask, seg, scale });
    record_rule(out, rec, &[x], grad, saved)
}

/// Zeros of `x`'s shape whose gradient is zero (dropout with `p == 1`, nothing saved).
fn all_dropped(rec: Op, x: &Tensor) -> Tensor {
    let out = Tensor::zeros(x.shape());
    record_rule(out, rec, &[x], grad, Saved::none())
}

/// The gradient rule of the dropouts: the output gradient through the saved mask and scale
/// (zeros when everything was dropped).
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if matches!(op, Op::Dropout { p } | Op::SpatialDropout { p } if *p == 1.0) {
        return Ok(vec![Some(Tensor::zeros(g.shape()))]);
    }
    let m = ctx.take_state::<Mask>()?;
    let dx = g.with_f32(op.name(), |gs| apply_mask(gs, &m.mask, m.seg, m.scale))?;
    Ok(vec![Some(Tensor::from_f32(dx, g.shape()))])
}

impl Tensor {
    /// Inverted dropout: in training, each element is zeroed with probability `p` and the kept
    /// ones are scaled by `1 / (1 − p)`. The identity when `!training` or `p == 0`; zeros when
    /// `p == 1`; an error for `p` outside `[0, 1]`. The mask is drawn from `rng`, so the same
    /// seed gives the same mask (independent of the thread count).
    ///
    /// ```
    /// use ferrovision_tensor::{rng::Rng, Tensor};
    /// let x = Tensor::ones(&[1000]);
    /// let y = x.dropout(0.5, true, &mut Rng::new(1)).unwrap().to_vec::<f32>().unwrap();
    /// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    /// ```
    pub fn dropout(&self, p: f32, training: bool, rng: &mut Rng) -> Result<Tensor> {
        const OP: &str = "dropout";
        check_p(OP, p)?;
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        self.expect_f32(OP)?;
        if p == 1.0 {
            return Ok(all_dropped(Op::Dropout { p }, self));
        }
        let n = self.numel();
        let threshold = (p as f64 * 4_294_967_296.0).round() as u64;
        let scale = 1.0f32 / (1.0f32 - p);
        let seeds: Vec<u64> = (0..n.div_ceil(CHUNK)).map(|_| rng.next_u64()).collect();
        let mut mask = vec![0u8; n];
        let mut out = pool::take_uninit(n);
        self.with_f32(OP, |xs| {
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
        let out = Tensor::from_f32(out, self.shape());
        Ok(record_masked(out, Op::Dropout { p }, self, mask, 1, scale))
    }

    /// Spatial dropout of `[N, C, ...]` (like Keras `SpatialDropout2D` / `torch.nn.functional.
    /// dropout2d`): whole channels of each sample are zeroed with probability `p`, the kept ones
    /// scaled by `1 / (1 − p)`. Same conventions as [`Tensor::dropout`]; one random number per
    /// (sample, channel).
    pub fn spatial_dropout(&self, p: f32, training: bool, rng: &mut Rng) -> Result<Tensor> {
        const OP: &str = "spatial_dropout";
        check_p(OP, p)?;
        if self.rank() < 2 {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                "[N, C, ...] (rank >= 2)",
            ));
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        self.expect_f32(OP)?;
        if p == 1.0 {
            return Ok(all_dropped(Op::SpatialDropout { p }, self));
        }
        let sh = self.shape();
        let segs = sh[0] * sh[1];
        let seg: usize = sh[2..].iter().product();
        let threshold = (p as f64 * 4_294_967_296.0).round() as u64;
        let scale = 1.0f32 / (1.0f32 - p);
        let mut mask = vec![0u8; segs];
        fill_mask(&mut mask, rng, threshold);
        let out = self.with_f32(OP, |xs| apply_mask(xs, &mask, seg, scale))?;
        let out = Tensor::from_f32(out, sh);
        Ok(record_masked(
            out,
            Op::SpatialDropout { p },
            self,
            mask,
            seg,
            scale,
        ))
    }

    /// [`Tensor::dropout`] drawing from the process-wide generator (see
    /// [`crate::rng::manual_seed`]).
    pub fn dropout_global(&self, p: f32, training: bool) -> Result<Tensor> {
        crate::rng::with_global(|r| self.dropout(p, training, r))
    }

    /// [`Tensor::spatial_dropout`] drawing from the process-wide generator.
    pub fn spatial_dropout_global(&self, p: f32, training: bool) -> Result<Tensor> {
        crate::rng::with_global(|r| self.spatial_dropout(p, training, r))
    }
}
