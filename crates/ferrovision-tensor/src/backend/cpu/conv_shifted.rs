//! Weight gradient of a 2-d stride-1 convolution without im2col: one GEMM per kernel tap on
//! shifted views of a padded copy of the input.
//!
//! `dW[co][ci][kh][kw] = Σ_{n,y,x} dY[n][co][y][x] · Xp[n][ci][y + kh][x + kw]`, with `Xp` the
//! input zero-padded to a `PH × PW` plane (`PH = OH + KH − 1`, `PW = OW + KW − 1`). With the
//! output gradient laid out on the same `PW`-wide rows (zeros in its `KW − 1` extra columns and
//! `KH − 1` extra rows), tap `(kh, kw)` is `Xp` read at a constant offset `kh·PW + kw` from
//! `dY`'s index: `dW[·][·][kh][kw] = dYp · shift(Xp, kh·PW + kw)ᵀ`, a GEMM with both operands
//! contiguous in the reduction (the unpacked dot-product GEMM path for small channel counts).
//! Images follow each other in the reduction, so a GEMM spans several images. The padding
//! costs `PH·PW / (OH·OW)` more multiply-adds (1.13× at 32×32, 1.27× at 16×16): on large
//! planes less than the `KH·KW`-fold copy of im2col it replaces, so smaller planes keep im2col
//! ([`MIN_POSITIONS`]).
//!
//! Images are split into ranges, one per thread, each with its own partial sum (as the im2col
//! path does); every range is cut into chunks of whole images sized for the cache.

use crate::kernels::gemm::{sgemm, Epilogue};
use crate::ops::conv::Geom;
use crate::parallel::prelude::*;
use crate::storage::pool::{self, PooledVec};

/// Fewest output positions per image for the shifted GEMMs. Measured (2 threads, Zen 4,
/// weight gradient of a 3×3 pad-1 layer): 16 channels at 32×32, batch 128: 0.60× the im2col
/// time; 64 channels at 56×56, batch 16: 0.90×; but 32 channels at 16×16: 1.14×, 64 at 16×16:
/// 1.14×, 128 at 28×28: 1.13× (the padding's extra work outweighs the saved copy).
const MIN_POSITIONS: usize = 1024;
/// Target reduction length (floats per operand row) of one chunk's GEMMs.
const CHUNK_K: usize = 4096;

/// The padded plane of a convolution that takes the shifted weight gradient.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shifted {
    /// Padded rows and columns.
    ph: usize,
    pw: usize,
}

impl Shifted {
    /// The shifted layout for `g`, when it is a 2-d stride-1 undilated one-group convolution
    /// (not 1×1: that one needs no im2col) with at least [`MIN_POSITIONS`] outputs per image.
    pub(super) fn new(g: &Geom) -> Option<Shifted> {
        let w = &g.win;
        let fits = w.rank() == 2
            && g.groups == 1
            && w.stride == [1, 1]
            && w.dilation == [1, 1]
            && !g.pointwise()
            && g.p_out() >= MIN_POSITIONS;
        fits.then(|| Shifted {
            ph: w.out[0] + w.kernel[0] - 1,
            pw: w.out[1] + w.kernel[1] - 1,
        })
    }

    fn plane(&self) -> usize {
        self.ph * self.pw
    }

    /// Floats after the last plane that the farthest tap reads.
    fn tail(&self, g: &Geom) -> usize {
        (g.win.kernel[0] - 1) * self.pw + g.win.kernel[1] - 1
    }

    /// Images per chunk.
    fn images(&self) -> usize {
        (CHUNK_K / self.plane()).max(1)
    }

    /// Input planes `n0..n0 + nb`, channel-major: `xp[c·ld + j·plane + yp·pw + xp]`.
    fn fill_input(&self, x: &[f32], g: &Geom, n0: usize, nb: usize, xp: &mut [f32], ld: usize) {
        let (ih, iw) = (g.win.input[0], g.win.input[1]);
        let (pt, pl) = (g.win.pad[0], g.win.pad[1]);
        let plane = self.plane();
        // Padded columns that hold input columns: xp − pl in 0..iw.
        let (c0, c1) = (pl.min(self.pw), (pl + iw).min(self.pw));
        for c in 0..g.cin {
            let row = &mut xp[c * ld..][..ld];
            for j in 0..nb {
                let src = &x[((n0 + j) * g.cin + c) * ih * iw..][..ih * iw];
                let dst = &mut row[j * plane..][..plane];
                for (yp, out) in dst.chunks_exact_mut(self.pw).enumerate() {
                    match yp.checked_sub(pt).filter(|&iy| iy < ih) {
                        Some(iy) if c1 > c0 => {
                            out[..c0].fill(0.0);
                            out[c0..c1].copy_from_slice(&src[iy * iw + c0 - pl..][..c1 - c0]);
                            out[c1..].fill(0.0);
                        }
                        _ => out.fill(0.0),
                    }
                }
            }
            row[nb * plane..].fill(0.0);
        }
    }

    /// Output-gradient planes `n0..n0 + nb` on `pw`-wide rows, zeros elsewhere:
    /// `gp[co·ld + j·plane + y·pw + x]`.
    fn fill_grad(&self, gout: &[f32], g: &Geom, n0: usize, nb: usize, gp: &mut [f32], ld: usize) {
        let (oh, ow) = (g.win.out[0], g.win.out[1]);
        let plane = self.plane();
        for co in 0..g.cout {
            let row = &mut gp[co * ld..][..ld];
            for j in 0..nb {
                let src = &gout[((n0 + j) * g.cout + co) * oh * ow..][..oh * ow];
                let dst = &mut row[j * plane..][..plane];
                for (y, out) in dst.chunks_exact_mut(self.pw).take(oh).enumerate() {
                    out[..ow].copy_from_slice(&src[y * ow..][..ow]);
                    out[ow..].fill(0.0);
                }
                dst[oh * self.pw..].fill(0.0);
            }
        }
    }

    /// Adds (or, when `first`, writes) the weight gradient of images `n0..n1` into `acc`,
    /// laid out `[tap][cout][cin]`.
    fn accumulate(&self, x: &[f32], gout: &[f32], g: &Geom, n0: usize, n1: usize, acc: &mut [f32]) {
        let (kw, taps) = (g.win.kernel[1], g.kk());
        let cb = self.images().min(n1 - n0);
        let tail = self.tail(g);
        let mut xp = PooledVec::<f32>::take(g.cin * (cb * self.plane() + tail));
        let mut gp = PooledVec::<f32>::take(g.cout * cb * self.plane());
        let mut first = true;
        let mut i = n0;
        while i < n1 {
            let nb = cb.min(n1 - i);
            let k = nb * self.plane();
            let ldx = k + tail;
            self.fill_input(x, g, i, nb, &mut xp, ldx);
            self.fill_grad(gout, g, i, nb, &mut gp, k);
            for t in 0..taps {
                let off = (t / kw) * self.pw + t % kw;
                sgemm(
                    g.cout,
                    g.cin,
                    k,
                    &gp,
                    k,
                    1,
                    &xp[off..],
                    1,
                    ldx,
                    &mut acc[t * g.cout * g.cin..],
                    g.cin,
                    !first,
                    Epilogue::default(),
                );
            }
            first = false;
            i += nb;
        }
    }

    /// The weight gradient `[cout, cin, kh, kw]` of the convolution `g` with input `x`
    /// (`[n, cin, ih, iw]`) and output gradient `gout` (`[n, cout, oh, ow]`).
    pub(super) fn weight_grad(&self, x: &[f32], gout: &[f32], g: &Geom) -> Vec<f32> {
        let (taps, wlen) = (g.kk(), g.cout * g.cin * g.kk());
        if g.n == 0 {
            return pool::take_zeroed(wlen);
        }
        let chunks = g.n.div_ceil(self.images());
        let t = chunks.min(crate::parallel::num_threads()).max(1);
        let ranges: Vec<(usize, usize)> = (0..t)
            .map(|r| (r * g.n / t, (r + 1) * g.n / t))
            .filter(|(a, b)| b > a)
            .collect();
        let run = |&(n0, n1): &(usize, usize)| {
            let mut acc = pool::take_uninit(wlen);
            self.accumulate(x, gout, g, n0, n1, &mut acc);
            acc
        };
        let parts: Vec<Vec<f32>> = if ranges.len() > 1 {
            ranges.par_iter().map(run).collect()
        } else {
            ranges.iter().map(run).collect()
        };
        let mut parts = parts.into_iter();
        let mut total = parts.next().unwrap_or_else(|| pool::take_zeroed(wlen));
        for part in parts {
            for (a, b) in total.iter_mut().zip(&part) {
                *a += b;
            }
            pool::give_back(part);
        }
        // [tap][cout][cin] -> [cout][cin][tap]
        let mut dw = pool::take_uninit(wlen);
        for (co, w) in dw.chunks_exact_mut(g.cin * taps).enumerate() {
            for (ci, wt) in w.chunks_exact_mut(taps).enumerate() {
                for (tap, v) in wt.iter_mut().enumerate() {
                    *v = total[(tap * g.cout + co) * g.cin + ci];
                }
            }
        }
        pool::give_back(total);
        dw
    }
}
