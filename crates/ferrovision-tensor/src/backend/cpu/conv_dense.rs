//! Convolutions on maps smaller than the kernel as one dense GEMM.
//!
//! When an input plane has fewer positions than the kernel has taps (ResNet-18's 2×2 stage at
//! 64 px input, a 1×1 map under a padded 3×3 kernel, the small levels of a feature pyramid),
//! im2col mostly multiplies padding: a 3×3 pad-1 convolution of a 2×2 map does 36
//! multiply-adds per channel pair and image, of which 16 read the input. Written as the linear
//! map it is,
//!
//! ```text
//! Y[n][(co, o)] = Σ_(ci, i) X[n][(ci, i)] · D[(ci, i)][(co, o)],   D[(ci, i)][(co, o)] = W[co][ci][tap(o, i)]
//! ```
//!
//! (`D` is zero where input position `i` lies outside output position `o`'s window), the
//! convolution is one GEMM on the NCHW input and output as they lie: `P_in·P_out` multiply-adds
//! per channel pair and image instead of `KK·P_out`, no im2col copy, and the GEMM epilogue adds
//! the bias, a fused residual and the ReLU as on the other paths. The input gradient is
//! `dY·Dᵀ`, again one GEMM. The rounding differs from im2col's only by the order of the sums.
//!
//! `D` holds `P_in·P_out / KK` times the weights' floats (16/9 on 2×2 maps) and costs a pass
//! over the weights to build, so it is kept in the filter cache under the weight's storage
//! version: inference builds it once (already in the GEMM's B-panel layout, so that no call
//! packs it: [`Dense::forward_inference`]), a training step builds it in the forward pass and
//! its input gradient reuses it (the optimizer's write makes it stale). The weight gradient stays
//! on im2col (a dense `Xᵀ·dY` would write `D`'s size and then reduce it into the taps).
//!
//! Chosen ([`Dense::new`]) for one-group convolutions whose input plane has at most half as
//! many positions as the kernel has taps, with at least [`MIN_IMAGES`] images (below, reading
//! the larger `D` costs more than the saved multiplies; measured in `ferrovision-bench conv`).

use super::conv::add_act;
use super::filter_cache::{self, Form};
use crate::kernels::gemm::{
    sgemm, sgemm_b_panels, Activation, BPanelLayout, Bias, Epilogue, Residual,
};
use crate::ops::conv::{conv_algo, ConvAlgo, Geom};
use crate::storage::pool::{self, PooledVec};
use crate::Tensor;

/// Fewest images for the dense form under [`ConvAlgo::Auto`] when `D` is larger than the
/// weights: below, reading it costs more than the saved multiplies. Measured (2 threads, Zen 4,
/// 512 channels on a 2×2 map, 3×3 pad 1, cached `D`, forward + input gradient): batch 8 0.94x
/// the im2col time, batch 16 1.3x, batch 32 1.9x.
const MIN_IMAGES: usize = 16;
/// In training `D` is built every step: the saved multiply-adds,
/// `n·(KK − P_in)·P_out` per channel pair, must exceed this many times `D`'s `P_in·P_out`
/// elements. Measured: building `D` of a 512-channel 2×2 layer takes ~3 ms (2 threads, Zen 4),
/// more than its two GEMMs save at batch 16 (~1 ms; 80 vs 16 per element here), and ResNet-18
/// training with the dense form forced ran 10.7-11.0 steps/s against 11.4-12.1; a 1×1 map
/// (8n vs 1) gains 6x at batch 16.
const TRAINING_BUILD_COST: usize = 32;
/// Image counts whose forward runs as `Yᵀ = Dᵀ·Xᵀ` ([`Dense::forward`]).
const TRANSPOSED: std::ops::Range<usize> = 8..32;
/// Largest `D` (floats, 64 MB): bounds the cached copy.
const MAX_MATRIX: usize = 16 << 20;

/// The dense form of a convolution: which kernel tap links each (input, output) position pair.
pub(super) struct Dense {
    /// `taps[i·P_out + o]`: the kernel tap (row-major over the kernel dims) that reads input
    /// position `i` for output position `o`, or `KK` where none does (`fill` reads a zero
    /// there).
    taps: Vec<usize>,
}

impl Dense {
    /// The dense form of `g` when the algorithm choice takes it: never with a fixed algorithm
    /// ([`ConvAlgo::Im2col`], the Winograd settings), always where it fits with
    /// [`ConvAlgo::Dense`], by the shape rule with [`ConvAlgo::Auto`] (`training`: the
    /// weights change every step, so `D` is built for each).
    pub(super) fn new(g: &Geom, training: bool) -> Option<Dense> {
        let (p_in, p_out, kk) = (g.p_in(), g.p_out(), g.kk());
        let fits = g.groups == 1
            && p_out > 0
            && 2 * p_in <= kk
            && g.cin * p_in * g.cout * p_out <= MAX_MATRIX;
        let chosen = fits
            && match conv_algo() {
                ConvAlgo::Dense => true,
                ConvAlgo::Auto => auto_rule(g, training),
                _ => false,
            };
        chosen.then(|| Dense { taps: taps(g) })
    }

    fn rows(g: &Geom) -> usize {
        g.cin * g.p_in()
    }

    fn cols(g: &Geom) -> usize {
        g.cout * g.p_out()
    }

    /// `D` for the weights `w` (`[cout, cin, kernel]`, contiguous), from the filter cache.
    pub(super) fn matrix(&self, w: &Tensor, ws: &[f32], g: &Geom) -> std::sync::Arc<Vec<f32>> {
        let form = Form::Dense(g.win.clone());
        filter_cache::get_or_insert(w, form, || {
            let mut d = pool::take_uninit(Self::rows(g) * Self::cols(g));
            self.fill(ws, g, &mut d);
            d
        })
    }

    /// Writes every element of `D`. One task per block of input channels (their rows are
    /// contiguous); within it each weight row `W[co][ci..][..]` is read once, while it is in
    /// the cache, and spread over the block's `D` rows.
    fn fill(&self, w: &[f32], g: &Geom, d: &mut [f32]) {
        use crate::parallel::prelude::*;
        const CI_BLOCK: usize = 8;
        let (p_in, p_out, kk) = (g.p_in(), g.p_out(), g.kk());
        let cols = Self::cols(g);
        let block = |b: usize, rows: &mut [f32]| {
            let ci0 = b * CI_BLOCK;
            let nci = rows.len() / (p_in * cols);
            // One filter's taps and a zero for the pairs no tap links.
            let mut filter = vec![0.0f32; kk + 1];
            for co in 0..g.cout {
                let src = &w[(co * g.cin + ci0) * kk..][..nci * kk];
                for (j, taps_of_ci) in src.chunks_exact(kk).enumerate() {
                    filter[..kk].copy_from_slice(taps_of_ci);
                    for i in 0..p_in {
                        let row = &mut rows[(j * p_in + i) * cols + co * p_out..][..p_out];
                        let taps = &self.taps[i * p_out..][..p_out];
                        for (v, &t) in row.iter_mut().zip(taps) {
                            *v = filter[t];
                        }
                    }
                }
            }
        };
        d.par_chunks_mut(CI_BLOCK * p_in * cols)
            .enumerate()
            .for_each(|(b, rows)| block(b, rows));
    }

    /// The forward pass of inference (the weights used again and again): [`Dense::forward`]
    /// with `D` from the filter cache, kept in the GEMM's B-panel layout where the product
    /// reads it as B (all but [`TRANSPOSED`] image counts): packing the 16 MB `D` of a
    /// 512-channel 2×2 layer on every call was a third of that layer's time at batch 32.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_inference(
        &self,
        x: &[f32],
        w: &Tensor,
        ws: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        relu: bool,
        g: &Geom,
    ) -> Vec<f32> {
        if TRANSPOSED.contains(&g.n) {
            let d = self.matrix(w, ws, g);
            return self.forward(x, DMatrix::Plain(&d), bias, residual, relu, g);
        }
        let layout = BPanelLayout::new(Self::rows(g), Self::cols(g));
        let form = Form::DensePanels(g.win.clone(), layout);
        let d = filter_cache::get_or_insert(w, form, || {
            let mut d = PooledVec::take(Self::rows(g) * Self::cols(g));
            self.fill(ws, g, &mut d.0);
            layout.pack(&d.0, Self::cols(g), 1)
        });
        self.forward(x, DMatrix::Panels(&d, layout), bias, residual, relu, g)
    }

    /// `act(X·D + bias + residual)`: the forward pass, `[n, cout, P_out]`.
    ///
    /// For [`TRANSPOSED`] image counts it runs as `Yᵀ = Dᵀ·Xᵀ` and transposes the small result
    /// (adding the residual there): with up to 24 rows of `X` the GEMM reads `D` in place, one
    /// long row per step of the reduction, which is slow from 8 rows on (2×2 map, 512
    /// channels: 1.25x at batch 8, 1.6x at batch 16); below 8 packing `D` costs more (1.5x at
    /// batch 4). `D` in panels is only for the other image counts.
    pub(super) fn forward(
        &self,
        x: &[f32],
        d: DMatrix<'_>,
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        relu: bool,
        g: &Geom,
    ) -> Vec<f32> {
        let (rows, cols, n) = (Self::rows(g), Self::cols(g), g.n);
        let mut y = pool::take_uninit(n * cols);
        // One bias value per output channel, repeated over its positions.
        let bias_cols: Option<Vec<f32>> = bias.map(|b| {
            b.iter()
                .flat_map(|&v| std::iter::repeat_n(v, g.p_out()))
                .collect()
        });
        let act = |relu| {
            if relu {
                Activation::Relu
            } else {
                Activation::None
            }
        };
        if !TRANSPOSED.contains(&n) {
            let epilogue = Epilogue {
                bias: bias_cols.as_deref().map_or(Bias::None, Bias::PerCol),
                act: act(relu),
                residual: residual.map(|values| Residual { values, ld: cols }),
            };
            match d {
                DMatrix::Plain(d) => sgemm(
                    n, cols, rows, x, rows, 1, d, cols, 1, &mut y, cols, false, epilogue,
                ),
                DMatrix::Panels(d, layout) => {
                    sgemm_b_panels(&layout, d, n, x, rows, 1, &mut y, cols, false, epilogue)
                }
            }
            return y;
        }
        let DMatrix::Plain(d) = d else {
            unreachable!("conv_dense: D in panels for a transposed product")
        };
        let mut yt = PooledVec::take(cols * n);
        let epilogue = Epilogue {
            bias: bias_cols.as_deref().map_or(Bias::None, Bias::PerRow),
            act: act(relu && residual.is_none()),
            residual: None,
        };
        sgemm(
            cols, n, rows, d, 1, cols, x, 1, rows, &mut yt.0, n, false, epilogue,
        );
        for (j, y_row) in y.chunks_exact_mut(cols).enumerate() {
            for (p, v) in y_row.iter_mut().enumerate() {
                let s = yt.0[p * n + j];
                *v = match residual {
                    Some(r) => add_act(s, r[j * cols + p], relu),
                    None => s,
                };
            }
        }
        y
    }

    /// `dY·Dᵀ`: the input gradient, `[n, cin, P_in]`.
    pub(super) fn input_grad(&self, gd: &[f32], d: &[f32], g: &Geom) -> Vec<f32> {
        let (rows, cols) = (Self::rows(g), Self::cols(g));
        let mut dx = pool::take_uninit(g.n * rows);
        sgemm(
            g.n,
            rows,
            cols,
            gd,
            cols,
            1,
            d,
            1,
            cols,
            &mut dx,
            rows,
            false,
            Epilogue::default(),
        );
        dx
    }
}

/// `D` as [`Dense::forward`] reads it.
#[derive(Clone, Copy)]
pub(super) enum DMatrix<'a> {
    /// Row-major `[cin·P_in][cout·P_out]`.
    Plain(&'a [f32]),
    /// The same in the GEMM's B-panel layout.
    Panels(&'a [f32], BPanelLayout),
}

/// [`ConvAlgo::Auto`]'s choice for a convolution the dense form fits.
fn auto_rule(g: &Geom, training: bool) -> bool {
    let (p_in, p_out, kk) = (g.p_in(), g.p_out(), g.kk());
    let gemm_wins = p_in * p_out <= kk || g.n >= MIN_IMAGES;
    let build_pays = g.n * (kk - p_in) >= TRAINING_BUILD_COST * p_in;
    gemm_wins && (!training || build_pays)
}

/// The tap table of [`Dense::taps`]: along each dim, output `o` reads input
/// `o·stride − pad + k·dilation` with tap `k`.
fn taps(g: &Geom) -> Vec<usize> {
    let w = &g.win;
    let (p_in, p_out) = (g.p_in(), g.p_out());
    // Row-major multi-index of `flat` over `dims`, innermost last.
    let unravel = |mut flat: usize, dims: &[usize]| -> Vec<usize> {
        let mut idx = vec![0; dims.len()];
        for (d, &size) in dims.iter().enumerate().rev() {
            idx[d] = flat % size;
            flat /= size;
        }
        idx
    };
    let mut table = vec![g.kk(); p_in * p_out];
    for i in 0..p_in {
        let ii = unravel(i, &w.input);
        for o in 0..p_out {
            let oi = unravel(o, &w.out);
            let mut tap = 0;
            let mut reads = true;
            for d in 0..w.rank() {
                let offset = (ii[d] + w.pad[d]) as isize - (oi[d] * w.stride[d]) as isize;
                let dil = w.dilation[d] as isize;
                let k = offset / dil;
                if offset < 0 || offset % dil != 0 || k >= w.kernel[d] as isize {
                    reads = false;
                    break;
                }
                tap = tap * w.kernel[d] + k as usize;
            }
            if reads {
                table[i * p_out + o] = tap;
            }
        }
    }
    table
}
