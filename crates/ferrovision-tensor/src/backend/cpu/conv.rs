//! CPU convolutions: the kernels behind [`Backend::conv`](super::super::Backend::conv) and its
//! backward / transposed siblings.
//!
//! The op file (`ops/conv.rs`) validates the operands and plans the geometry ([`Geom`]); this
//! file runs it. Algorithms, chosen per shape:
//! - **pointwise** (1×1, stride 1, no padding): a plain GEMM on the NCHW data, no im2col;
//! - **depthwise** 2-d (`groups == Cin`, `Cout = mult·Cin`): a direct kernel per channel plane;
//! - **general**: im2col + GEMM with bias (+ReLU) fused in the GEMM epilogue, one GEMM per group,
//!   images batched into one GEMM until it has [`min_gemm_columns`] output positions;
//! - 3×3 stride-1 layers may take **Winograd** (`kernels/winograd/`), and maps with fewer
//!   positions than half the kernel's taps the **dense** form (`conv_dense.rs`), by shape rules.
//!
//! Backward: input gradient by `Wᵀ · grad` then col2im, weight gradient by `grad · colᵀ`
//! accumulated over the batch (one partial sum per thread; stride-1 layers with large planes
//! use one GEMM per kernel tap on a padded copy instead, `conv_shifted.rs`), bias gradient by a
//! reduction. A
//! transposed convolution is the input-gradient path of a convolution (its bias initialises the
//! col2im target), and its backward is the forward convolution.

use super::conv_dense::{DMatrix, Dense};
use super::conv_shifted::Shifted;
use super::filter_cache;
use crate::kernels::depthwise;
use crate::kernels::elementwise;
use crate::kernels::gemm::{
    sgemm, sgemm_packed, Activation, BPanelLayout, Bias, Epilogue, PanelLayout, Residual,
};
use crate::kernels::im2col;
use crate::kernels::winograd;
use crate::ops::conv::{conv_algo, min_gemm_columns, ConvAlgo, Geom};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Result, Tensor};

impl Geom {
    fn plane(&self) -> depthwise::Plane {
        let w = &self.win;
        depthwise::Plane {
            ih: w.input[0],
            iw: w.input[1],
            oh: w.out[0],
            ow: w.out[1],
            kh: w.kernel[0],
            kw: w.kernel[1],
            sh: w.stride[0],
            sw: w.stride[1],
            ph: w.pad[0],
            pw: w.pad[1],
            dh: w.dilation[0],
            dw: w.dilation[1],
        }
    }
    /// The Winograd geometry of this convolution when it is a 2-d 3×3 stride-1 one-group
    /// convolution with padding ≤ 2 (so its input gradient is one too).
    fn winograd_geometry(&self) -> Option<winograd::Geometry> {
        let w = &self.win;
        let fits = w.rank() == 2
            && self.groups == 1
            && w.kernel == [3, 3]
            && w.stride == [1, 1]
            && w.dilation == [1, 1]
            && w.pad.iter().all(|&p| p <= 2);
        fits.then(|| winograd::Geometry {
            n: self.n,
            cin: self.cin,
            cout: self.cout,
            input: [w.input[0], w.input[1]],
            out: [w.out[0], w.out[1]],
            pad: [w.pad[0], w.pad[1]],
        })
    }
    /// The Winograd geometry of this convolution's forward pass (and input gradient) when it
    /// has one and the algorithm choice takes Winograd for it ([`winograd_rule`] under
    /// [`ConvAlgo::Auto`]; `cached`: the transformed filters come from the filter cache, as in
    /// inference).
    fn winograd(&self, cached: bool) -> Option<winograd::Geometry> {
        self.winograd_if(|wg| winograd_rule(wg, cached).is_some())
    }
    /// The Winograd geometry of this convolution's weight gradient when the algorithm choice
    /// takes Winograd for it ([`winograd_weight_grad_rule`] under [`ConvAlgo::Auto`]).
    fn winograd_weight_grad(&self) -> Option<winograd::Geometry> {
        self.winograd_if(winograd_weight_grad_rule)
    }
    /// The Winograd geometry when this convolution has one and [`conv_algo`] takes Winograd:
    /// never with `Im2col`, always with a Winograd setting, by `auto_rule` with `Auto`.
    fn winograd_if(
        &self,
        auto_rule: impl FnOnce(&winograd::Geometry) -> bool,
    ) -> Option<winograd::Geometry> {
        let wg = self.winograd_geometry()?;
        let chosen = match conv_algo() {
            ConvAlgo::Im2col => false,
            ConvAlgo::Winograd | ConvAlgo::WinogradTiled | ConvAlgo::WinogradWide => true,
            ConvAlgo::Auto | ConvAlgo::Dense => auto_rule(&wg),
        };
        chosen.then_some(wg)
    }
    /// Images per GEMM for the general path.
    fn images_per_gemm(&self) -> usize {
        let p = self.p_out().max(1);
        min_gemm_columns().div_ceil(p).clamp(1, self.n.max(1))
    }
}

/// The bias gradient `[c]` (channel sums of `gd`, `[n, c, p]`) as a tensor.
fn bias_grad(gd: &[f32], n: usize, c: usize, p: usize) -> Tensor {
    let v = channel_sums(gd, n, c, p);
    let len = v.len();
    Tensor::from_f32(v, &[len])
}

/// Convolution forward `act(conv(x, w) + bias + residual)` into a new tensor of shape
/// `out_shape`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    op: &'static str,
    geom: &Geom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    relu: bool,
    out_shape: &[usize],
) -> Result<Tensor> {
    let inference = !crate::autograd::is_grad_enabled();
    let dense = Dense::new(geom, !inference);
    let wino = if dense.is_none() {
        geom.winograd(inference)
    } else {
        None
    };
    let y = x.with_f32(op, |xs| {
        w.with_f32(op, |ws| {
            with_opt(bias, op, |bs| {
                with_opt(residual, op, |rs| match (&dense, &wino) {
                    (Some(dense), _) if inference => {
                        dense.forward_inference(xs, w, ws, bs, rs, relu, geom)
                    }
                    (Some(dense), _) => {
                        let d = dense.matrix(w, ws, geom);
                        dense.forward(xs, DMatrix::Plain(&d), bs, rs, relu, geom)
                    }
                    (None, Some(wg)) => winograd_forward(xs, w, ws, bs, rs, relu, wg, inference),
                    (None, None) => {
                        let ep = ConvEpilogue {
                            bias: bs,
                            relu,
                            residual: rs,
                        };
                        let panels =
                            (inference && !geom.depthwise()).then(|| weight_panels(w, ws, geom));
                        conv_forward(xs, ws, panels.as_deref().map(Vec::as_slice), ep, geom)
                    }
                })
            })
        })
    })????;
    Ok(Tensor::from_f32(y, out_shape))
}

/// `y = act(y + r)` elementwise (the residual of a convolution whose kernel cannot take it in
/// its epilogue).
fn add_residual(y: &mut [f32], r: &[f32], relu: bool) {
    crate::parallel::par_rows(y, 1, |i0, yc| {
        let rc = &r[i0..i0 + yc.len()];
        elementwise::zip_apply(yc, rc, |v, b| add_act(v, b, relu));
    });
}

/// `act(a + b)`: the residual add, then the ReLU where asked.
#[inline(always)]
pub(super) fn add_act(a: f32, b: f32, relu: bool) -> f32 {
    let s = a + b;
    if relu {
        s.max(0.0)
    } else {
        s
    }
}

/// What the forward GEMMs add and apply to a block of outputs: the bias, a residual of the
/// block's shape (a residual connection fused into the convolution before it, added after the
/// bias, as the separate add would) and the ReLU.
#[derive(Clone, Copy, Default)]
struct ConvEpilogue<'a> {
    bias: Option<&'a [f32]>,
    relu: bool,
    residual: Option<&'a [f32]>,
}

impl ConvEpilogue<'_> {
    fn act(&self) -> Activation {
        if self.relu {
            Activation::Relu
        } else {
            Activation::None
        }
    }
}

/// The shape rule of [`ConvAlgo::Auto`], read off `ferrovision-bench conv` (README): `None`
/// where im2col + GEMM is faster, else whether the whole-batch layout is (`Some(true)`) or the
/// tiled one (`Some(false)`).
///
/// The tiled layout wins where maps are large and layers narrow (ResNet-20's 32 and 16 px
/// stages, ResNet-18's 16 px stage at 64 px input, ResNet-50's 56 and 28 px stages: 1.3-1.9x).
/// The whole-batch layout wins on maps of at most 4×4 tiles with enough output positions in
/// the batch (at least 256) to pay for the filter transform (4x the weights' size; read from
/// the cache in inference): ResNet-18's 8 and 4 px stages, ResNet-50's 14 and 7 px ones,
/// 1.1-2.3x. Training once asked for 512 positions (the filters are transformed every call);
/// at 256, ResNet-18's 4 px stage at batch 16 trains 1.4x faster forward (the whole step
/// 11.70 -> 12.34 steps/s, 4 interleaved pairs, Zen 4). On 2×2 maps a 4×4 tile wastes three
/// quarters of its multiplies, and with few tiles the transformed filters cost more to read
/// than im2col's multiplies: im2col there.
///
/// With `cached` filters (inference: transformed once, kept in the B-panel layout) the
/// whole-batch layout needs only [`CACHED_MIN_TILES`] tiles in the batch instead of 256
/// output positions, on layers of at least 64 channels (the range measured). Measured
/// (forward, cached filters, 2 threads, Zen 4, im2col time / wide time): batch 1 ResNet-50 14 px 256 channels (16 tiles) 1.42-1.48x, 7 px 512 channels
/// (4 tiles) 1.05-1.17x, ResNet-18 8 px 128 channels (4 tiles) 1.43x, ResNet-20 8 px 64
/// channels 1.28x; ResNet-18's 4 px 256-channel map at batch 4 (4 tiles) 1.12x, at batch 1
/// (one tile) 0.60x.
fn winograd_rule(wg: &winograd::Geometry, cached: bool) -> Option<bool> {
    let side = wg.out[0].min(wg.out[1]);
    let channels = wg.cin.max(wg.cout);
    if (side >= 16 && channels <= 64) || (side >= 28 && channels <= 128) {
        return Some(false);
    }
    let [th, tw] = wg.tiles();
    let positions = wg.n * wg.out[0] * wg.out[1];
    let enough = if cached && wg.cin.min(wg.cout) >= 64 {
        wg.n * th * tw >= CACHED_MIN_TILES
    } else {
        positions >= 256
    };
    (side >= 4 && th * tw <= 16 && enough).then_some(true)
}

/// Fewest tiles in the batch for the whole-batch Winograd layout when its transformed filters
/// are cached ([`winograd_rule`]).
const CACHED_MIN_TILES: usize = 4;

/// The shape rule of [`ConvAlgo::Auto`] for weight gradients: whether Winograd is faster than
/// the im2col (or shifted-window) GEMMs. Measured (2 threads, Zen 4, interleaved medians,
/// im2col time / Winograd time, ranges over runs of `ferrovision-bench conv` and a per-layer
/// timer): ResNet-18 at 64 px batch 16: 1.3-1.9x (16 px, 64 channels), 1.7-2.0x (8 px),
/// 1.06-1.2x (4 px; 2.1x at batch 32), 0.23-0.27x (2 px: a 4×4 tile wastes three quarters);
/// ResNet-50 224 px batch 16: 1.3-1.6x, 2.1x, 1.5-1.6x, 1.45x (56, 28, 14, 7 px); CIFAR
/// ResNet-20 batch 128: 0.59-0.73x at 16 channels (the shifted-window GEMMs win there), 1.06x
/// at 32 and 1.2x at 64. With few output positions in the batch the 36·C·K sums of `dU` cost
/// more than the multiplies saved: ResNet-50 at batch 1, 0.84-0.86x (14 px, 196 positions) and
/// 0.25-0.35x (7 px, 49 positions), hence at least 256 positions (ResNet-18's 4 px stage at
/// batch 16: 1.05-1.19x).
fn winograd_weight_grad_rule(wg: &winograd::Geometry) -> bool {
    let positions = wg.n * wg.out[0] * wg.out[1];
    wg.out[0].min(wg.out[1]) >= 4 && wg.cin.min(wg.cout) >= 32 && positions >= 256
}

/// Winograd forward: `y = act(conv3x3(x, w) + bias + res)` (`w` the weight tensor, `ws` its
/// values).
#[allow(clippy::too_many_arguments)]
/// In inference (gradients off) the transformed filters are cached ([`filter_cache`]).
fn winograd_forward(
    x: &[f32],
    w: &Tensor,
    ws: &[f32],
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    wg: &winograd::Geometry,
    inference: bool,
) -> Vec<f32> {
    let mut y = pool::take_uninit(wg.n * wg.cout * wg.out[0] * wg.out[1]);
    let wide = winograd_wide(wg, inference);
    let transform = |u: &mut [f32]| winograd::transform_filter(ws, wg.cout, wg.cin, false, wide, u);
    if inference && wide {
        // Kept in the GEMMs' B-panel layout: packing them was as costly as their product on
        // few-tile maps.
        let layout = BPanelLayout::new(wg.cin, wg.cout);
        let u = filter_cache::get_or_insert(w, filter_cache::Form::WinogradPanels(layout), || {
            let mut u = PoolBuf::take(wg.filter_len());
            transform(&mut u.0);
            winograd::wide_filter_panels(&u.0, &layout)
        });
        let filters = winograd::WideFilters::Panels(&u, layout);
        winograd::conv3x3_wide(x, filters, bias, res, relu, wg, &mut y);
    } else if inference {
        let form = filter_cache::Form::Winograd {
            rotate: false,
            in_major: false,
        };
        let u = filter_cache::get_or_insert(w, form, || {
            let mut u = vec![0.0f32; wg.filter_len()];
            transform(&mut u);
            u
        });
        winograd_conv(x, &u, false, bias, res, relu, wg, &mut y);
    } else if wide && winograd::filters_by_blocks(wg) {
        // Training on few tiles: the filters transformed block by block inside the GEMMs.
        filter_cache::release_stale();
        let filters = winograd::WideFilters::Weights {
            w: ws,
            rotate: false,
        };
        winograd::conv3x3_wide(x, filters, bias, res, relu, wg, &mut y);
    } else {
        filter_cache::release_stale();
        let mut u = PoolBuf::take(wg.filter_len());
        transform(&mut u.0);
        winograd_conv(x, &u.0, wide, bias, res, relu, wg, &mut y);
    }
    y
}

/// Winograd input gradient of the forward geometry `wg`: the output gradient correlated with
/// the rotated, transposed filters, padded by `2 − pad`.
fn winograd_input_grad(gout: &[f32], w: &[f32], wg: &winograd::Geometry) -> Vec<f32> {
    let back = winograd::Geometry {
        n: wg.n,
        cin: wg.cout,
        cout: wg.cin,
        input: wg.out,
        out: wg.input,
        pad: [2 - wg.pad[0], 2 - wg.pad[1]],
    };
    let wide = winograd_wide(&back, false);
    let mut dx = pool::take_uninit(back.n * back.cout * back.out[0] * back.out[1]);
    if wide && winograd::filters_by_blocks(&back) {
        let filters = winograd::WideFilters::Weights { w, rotate: true };
        winograd::conv3x3_wide(gout, filters, None, None, false, &back, &mut dx);
        return dx;
    }
    let mut u = PoolBuf::take(back.filter_len());
    winograd::transform_filter(w, wg.cout, wg.cin, true, wide, &mut u.0);
    winograd_conv(gout, &u.0, wide, None, None, false, &back, &mut dx);
    dx
}

/// Winograd weight gradient `[cout][cin][3][3]` of the forward geometry `wg` from its input
/// `x` and output gradient `gout`.
fn winograd_weight_grad(x: &[f32], gout: &[f32], wg: &winograd::Geometry) -> Vec<f32> {
    let mut dw = pool::take_uninit(wg.cout * wg.cin * 9);
    winograd::weight_grad(x, gout, wg, &mut dw);
    dw
}

/// A Winograd convolution with filters `u` transformed for its layout (`wide`: input-major).
#[allow(clippy::too_many_arguments)]
fn winograd_conv(
    x: &[f32],
    u: &[f32],
    wide: bool,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    wg: &winograd::Geometry,
    y: &mut [f32],
) {
    if wide {
        winograd::conv3x3_wide(x, winograd::WideFilters::Plain(u), bias, res, relu, wg, y);
    } else {
        winograd::conv3x3(x, u, bias, res, relu, wg, y);
    }
}

/// The Winograd layout (`true`: whole-batch): the one [`conv_algo`] asks for, else the shape
/// rule's, else tiled.
fn winograd_wide(wg: &winograd::Geometry, cached: bool) -> bool {
    match conv_algo() {
        ConvAlgo::WinogradWide => true,
        ConvAlgo::WinogradTiled => false,
        _ => winograd_rule(wg, cached).unwrap_or(false),
    }
}

/// Transposed convolution forward (the input-gradient path of `geom`'s convolution, the bias
/// initialising the output planes) into a new tensor of shape `out_shape`.
pub(super) fn transpose_forward(
    op: &'static str,
    geom: &Geom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out_shape: &[usize],
) -> Result<Tensor> {
    let y = x.with_f32(op, |xs| {
        w.with_f32(op, |ws| {
            with_opt(bias, op, |bs| conv_backward(None, ws, xs, geom, true, bs).0)
        })
    })???;
    Ok(Tensor::from_f32(
        y.expect("input gradient requested"),
        out_shape,
    ))
}

/// The gradients `[dx, dw, dbias]` of a convolution (only where `needs` asks), through the
/// mask of a fused ReLU whose saved output is `relu_out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    op: &'static str,
    geom: &Geom,
    g: &Tensor,
    sx: &Tensor,
    sw: &Tensor,
    relu_out: Option<&Tensor>,
    needs: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let [rx, rw, rb] = needs;
    let g = relu_mask(g, relu_out)?;
    let dense = if rx { Dense::new(geom, true) } else { None };
    let wino = if rx && dense.is_none() {
        geom.winograd(false)
    } else {
        None
    };
    let wino_dw = if rw {
        geom.winograd_weight_grad()
    } else {
        None
    };
    let (dx, dw, db) = g.with_f32(op, |gd| -> Result<_> {
        let (dx, dw) = with_opt(rw.then_some(sx), op, |xs| {
            sw.with_f32(op, |ws| {
                // The weight gradient by Winograd where chosen; what is left goes the general way.
                let (xs, dw_wino) = match (xs, &wino_dw) {
                    (Some(xs), Some(wg)) => (None, Some(winograd_weight_grad(xs, gd, wg))),
                    (xs, _) => (xs, None),
                };
                let (dx, dw) = match (&dense, &wino) {
                    (Some(dense), _) => {
                        let dx = dense.input_grad(gd, &dense.matrix(sw, ws, geom), geom);
                        (Some(dx), conv_backward(xs, ws, gd, geom, false, None).1)
                    }
                    (None, Some(wg)) => {
                        let dx = winograd_input_grad(gd, ws, wg);
                        (Some(dx), conv_backward(xs, ws, gd, geom, false, None).1)
                    }
                    (None, None) => conv_backward(xs, ws, gd, geom, rx, None),
                };
                (dx, dw.or(dw_wino))
            })
        })??;
        let db = rb.then(|| bias_grad(gd, geom.n, geom.cout, geom.p_out()));
        Ok((dx, dw, db))
    })??;
    Ok([
        dx.map(|v| Tensor::from_f32(v, sx.shape())),
        dw.map(|v| Tensor::from_f32(v, sw.shape())),
        db,
    ])
}

/// The gradients `[dx, dw, dbias]` of a transposed convolution: `dx` is the forward
/// convolution of `g`, `dw` that convolution's weight gradient, the bias gradient the channel
/// sums.
pub(super) fn transpose_backward(
    op: &'static str,
    geom: &Geom,
    g: &Tensor,
    sx: &Tensor,
    sw: &Tensor,
    needs: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let [rx, rw, rb] = needs;
    let (dx, dw, db) = g.with_f32(op, |gd| -> Result<_> {
        let dx = if rx {
            Some(sw.with_f32(op, |ws| {
                conv_forward(gd, ws, None, ConvEpilogue::default(), geom)
            })?)
        } else {
            None
        };
        let dw = if rw {
            sx.with_f32(op, |xs| {
                conv_backward(Some(gd), &[], xs, geom, false, None).1
            })?
        } else {
            None
        };
        let db = rb.then(|| bias_grad(gd, geom.n, geom.cin, geom.p_in()));
        Ok((dx, dw, db))
    })??;
    Ok([
        dx.map(|v| Tensor::from_f32(v, sx.shape())),
        dw.map(|v| Tensor::from_f32(v, sw.shape())),
        db,
    ])
}

/// Runs `f` on the f32 data of `t`, or on `None`.
fn with_opt<R>(
    t: Option<&Tensor>,
    op: &'static str,
    f: impl FnOnce(Option<&[f32]>) -> R,
) -> Result<R> {
    match t {
        Some(t) => t.with_f32(op, |s| f(Some(s))),
        None => Ok(f(None)),
    }
}

/// Zeroes the gradient where the (ReLU) output is not positive.
fn relu_mask(g: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    match y {
        Some(y) => {
            super::unary_grad::zip_map_f32(
                g,
                y,
                "relu backward",
                |g, y| if y > 0.0 { g } else { 0.0 },
            )
        }
        None => Ok(g.clone()),
    }
}

/// A pool buffer returned on drop.
type PoolBuf = crate::storage::pool::PooledVec<f32>;

/// Work (elements) below which a plane loop stays on one thread.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// im2col of `nb` consecutive images into a `[cin·kk, nb·p_out]` matrix with row stride `ld`.
fn im2col_images(xs: &[f32], nb: usize, g: &Geom, col: &mut [f32], ld: usize, par: bool) {
    let (kk, p, p_in, cin) = (g.kk(), g.p_out(), g.p_in(), g.cin);
    let col = &mut col[..cin * kk * ld];
    let body = |c: usize, block: &mut [f32]| {
        for j in 0..nb {
            let plane = &xs[(j * cin + c) * p_in..][..p_in];
            match &g.gather {
                Some(t) => t.im2col(plane, &mut block[j * p..], ld),
                None => im2col::im2col(plane, &g.win, &mut block[j * p..], ld),
            }
        }
    };
    if par && col.len() >= PAR_MIN_ELEMS && cin > 1 {
        col.par_chunks_mut(kk * ld)
            .enumerate()
            .for_each(|(c, b)| body(c, b));
    } else {
        col.chunks_mut(kk * ld)
            .enumerate()
            .for_each(|(c, b)| body(c, b));
    }
}

/// col2im of a `[cin·kk, nb·p_out]` matrix into `nb` images, each plane first set to its
/// channel's `init` value (or 0).
#[allow(clippy::too_many_arguments)]
fn col2im_images(
    dcol: &[f32],
    nb: usize,
    g: &Geom,
    dx: &mut [f32],
    ld: usize,
    par: bool,
    init: Option<&[f32]>,
) {
    let (kk, p, p_in, cin) = (g.kk(), g.p_out(), g.p_in(), g.cin);
    let dx = &mut dx[..nb * cin * p_in];
    let body = |idx: usize, plane: &mut [f32]| {
        let (j, c) = (idx / cin, idx % cin);
        plane.fill(init.map_or(0.0, |b| b[c]));
        let src = &dcol[c * kk * ld + j * p..];
        match &g.gather {
            Some(t) => t.col2im(src, ld, plane),
            None => im2col::col2im(src, ld, &g.win, plane),
        }
    };
    if par && dx.len() >= PAR_MIN_ELEMS && nb * cin > 1 {
        dx.par_chunks_mut(p_in)
            .enumerate()
            .for_each(|(i, pl)| body(i, pl));
    } else {
        dx.chunks_mut(p_in)
            .enumerate()
            .for_each(|(i, pl)| body(i, pl));
    }
}

/// The weights of every group packed as the GEMM reads them ([`PanelLayout`], groups one after
/// the other), from the filter cache: inference runs them again and again, and packing them on
/// every call (and cache block) was 9 % of ResNet-50's batch-1 inference.
fn weight_panels(w: &Tensor, ws: &[f32], g: &Geom) -> std::sync::Arc<Vec<f32>> {
    let layout = PanelLayout::new(g.cout_g(), g.kg());
    let form = filter_cache::Form::Panels {
        layout,
        groups: g.groups,
    };
    filter_cache::get_or_insert(w, form, || {
        let group = layout.len();
        let mut panels = Vec::with_capacity(group * g.groups);
        for gi in 0..g.groups {
            panels.extend(layout.pack(&ws[gi * group..][..group], g.kg(), 1));
        }
        panels
    })
}

/// `out[group rows] = act(W_g · col_g + bias + residual)` for every group; `col`, `out` and the
/// residual have `ld` columns. `panels`: the weights packed ([`weight_panels`]).
#[allow(clippy::too_many_arguments)]
fn group_gemms(
    g: &Geom,
    w: &[f32],
    panels: Option<&[f32]>,
    col: &[f32],
    ld: usize,
    out: &mut [f32],
    ep: ConvEpilogue<'_>,
    par: bool,
) {
    let (cout_g, kg) = (g.cout_g(), g.kg());
    let layout = PanelLayout::new(cout_g, kg);
    let one = |gi: usize, o: &mut [f32]| {
        let epi = Epilogue {
            bias: ep
                .bias
                .map_or(Bias::None, |b| Bias::PerRow(&b[gi * cout_g..][..cout_g])),
            act: ep.act(),
            residual: ep.residual.map(|r| Residual {
                values: &r[gi * cout_g * ld..][..cout_g * ld],
                ld,
            }),
        };
        let (wg, colg) = (&w[gi * cout_g * kg..], &col[gi * kg * ld..]);
        match panels {
            Some(panels) => {
                let pg = &panels[gi * layout.len()..][..layout.len()];
                sgemm_packed(&layout, pg, ld, wg, kg, 1, colg, ld, 1, o, ld, false, epi);
            }
            None => sgemm(cout_g, ld, kg, wg, kg, 1, colg, ld, 1, o, ld, false, epi),
        }
    };
    let out = &mut out[..g.cout * ld];
    if par && g.groups > 1 {
        out.par_chunks_mut(cout_g * ld)
            .enumerate()
            .for_each(|(gi, o)| one(gi, o));
    } else {
        out.chunks_mut(cout_g * ld)
            .enumerate()
            .for_each(|(gi, o)| one(gi, o));
    }
}

/// Forward of `nb` images into `y` (`[nb, cout, p_out]`).
#[allow(clippy::too_many_arguments)]
fn forward_images(
    xs: &[f32],
    nb: usize,
    w: &[f32],
    panels: Option<&[f32]>,
    ep: ConvEpilogue<'_>,
    g: &Geom,
    y: &mut [f32],
    par: bool,
) {
    let p = g.p_out();
    let ld = nb * p;
    if nb == 1 && g.pointwise() {
        group_gemms(g, w, panels, xs, p, y, ep, par);
        return;
    }
    let mut col = PoolBuf::take(g.cin * g.kk() * ld);
    im2col_images(xs, nb, g, &mut col.0, ld, par);
    if nb == 1 {
        group_gemms(g, w, panels, &col.0, ld, y, ep, par);
        return;
    }
    // The residual is laid out like `y`: added (then the ReLU) in the reordering copy.
    let gemm_ep = match ep.residual {
        Some(_) => ConvEpilogue {
            relu: false,
            residual: None,
            ..ep
        },
        None => ep,
    };
    let mut tmp = PoolBuf::take(g.cout * ld);
    group_gemms(g, w, panels, &col.0, ld, &mut tmp.0, gemm_ep, par);
    // [cout, nb·p] -> [nb, cout, p]
    for (j, img) in y.chunks_mut(g.cout * p).enumerate() {
        for (co, row) in img.chunks_mut(p).enumerate() {
            let src = &tmp.0[co * ld + j * p..][..p];
            match ep.residual {
                None => row.copy_from_slice(src),
                Some(r) => {
                    let r = &r[(j * g.cout + co) * p..][..p];
                    elementwise::map2(src, r, row, |a, b| add_act(a, b, ep.relu));
                }
            }
        }
    }
}

/// Convolution forward: `y = act(conv(x, w) + bias + residual)`, `[n, cout, p_out]`
/// (`panels`: the weights packed, [`weight_panels`]).
fn conv_forward(
    x: &[f32],
    w: &[f32],
    panels: Option<&[f32]>,
    ep: ConvEpilogue<'_>,
    g: &Geom,
) -> Vec<f32> {
    let (p_in, p_out) = (g.p_in(), g.p_out());
    let mut y = pool::take_uninit(g.n * g.cout * p_out);
    if y.is_empty() {
        return y;
    }
    if g.depthwise() {
        let plane = g.plane();
        let (kk, mult) = (g.kk(), g.cout_g());
        let body = |idx: usize, out: &mut [f32]| {
            let (n, co) = (idx / g.cout, idx % g.cout);
            let ci = co / mult;
            depthwise::forward(
                &x[(n * g.cin + ci) * p_in..][..p_in],
                &w[co * kk..][..kk],
                ep.bias.map_or(0.0, |b| b[co]),
                ep.relu && ep.residual.is_none(),
                &plane,
                out,
            );
        };
        if y.len() >= PAR_MIN_ELEMS {
            y.par_chunks_mut(p_out)
                .enumerate()
                .for_each(|(i, o)| body(i, o));
        } else {
            y.chunks_mut(p_out)
                .enumerate()
                .for_each(|(i, o)| body(i, o));
        }
        if let Some(r) = ep.residual {
            add_residual(&mut y, r, ep.relu);
        }
        return y;
    }
    let cb = g.images_per_gemm();
    let nchunks = g.n.div_ceil(cb);
    let threads = crate::parallel::num_threads();
    let inner_par = nchunks < threads;
    let task = |ci: usize, ychunk: &mut [f32]| {
        let n0 = ci * cb;
        let nb = ychunk.len() / (g.cout * p_out);
        let xs = &x[n0 * g.cin * p_in..(n0 + nb) * g.cin * p_in];
        let ep = ConvEpilogue {
            residual: ep
                .residual
                .map(|r| &r[n0 * g.cout * p_out..(n0 + nb) * g.cout * p_out]),
            ..ep
        };
        forward_images(xs, nb, w, panels, ep, g, ychunk, inner_par);
    };
    let chunk_len = cb * g.cout * p_out;
    if nchunks > 1 && threads > 1 {
        y.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| task(i, c));
    } else {
        y.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| task(i, c));
    }
    y
}

/// Per-channel sums of a `[n, c, p]` tensor (bias gradients).
fn channel_sums(gd: &[f32], n: usize, c: usize, p: usize) -> Vec<f32> {
    let sum_channel = |ch: usize| -> f32 {
        let mut acc = [0.0f32; 8];
        let mut tail = 0.0f32;
        for i in 0..n {
            let row = &gd[(i * c + ch) * p..][..p];
            let mut it = row.chunks_exact(8);
            for chunk in &mut it {
                for l in 0..8 {
                    acc[l] += chunk[l];
                }
            }
            tail += it.remainder().iter().sum::<f32>();
        }
        acc.iter().sum::<f32>() + tail
    };
    if n * c * p >= PAR_MIN_ELEMS {
        (0..c).into_par_iter().map(sum_channel).collect()
    } else {
        (0..c).map(sum_channel).collect()
    }
}

/// Backward of `nb` images starting at image `n0`: the input gradient into `dx` (`[nb, cin,
/// p_in]`, initialised with `init` per channel) and/or the weight gradient added into (or, when
/// `first`, written to) `dw`.
#[allow(clippy::too_many_arguments)]
fn backward_images(
    x: Option<&[f32]>,
    w: &[f32],
    gout: &[f32],
    g: &Geom,
    n0: usize,
    nb: usize,
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    first: bool,
    init: Option<&[f32]>,
    par: bool,
    bufs: &mut [PoolBuf; 3],
) {
    let (p, p_in) = (g.p_out(), g.p_in());
    let (cout_g, cin_g, kg) = (g.cout_g(), g.cin_g(), g.kg());
    let ld = nb * p;
    let [gch, dcol, col] = bufs;
    // The output gradient as a [cout, nb·p] matrix.
    let gsrc: &[f32] = if nb == 1 {
        &gout[n0 * g.cout * p..][..g.cout * p]
    } else {
        for j in 0..nb {
            for co in 0..g.cout {
                gch.0[co * ld + j * p..][..p]
                    .copy_from_slice(&gout[((n0 + j) * g.cout + co) * p..][..p]);
            }
        }
        &gch.0
    };
    if let Some(dx) = dx {
        if nb == 1 && g.pointwise() {
            for gi in 0..g.groups {
                let epi = Epilogue {
                    bias: init.map_or(Bias::None, |b| Bias::PerRow(&b[gi * cin_g..][..cin_g])),
                    ..Epilogue::default()
                };
                sgemm(
                    cin_g,
                    p,
                    cout_g,
                    &w[gi * cout_g * cin_g..],
                    1,
                    cin_g,
                    &gsrc[gi * cout_g * p..],
                    p,
                    1,
                    &mut dx[gi * cin_g * p..],
                    p,
                    false,
                    epi,
                );
            }
        } else {
            for gi in 0..g.groups {
                sgemm(
                    kg,
                    ld,
                    cout_g,
                    &w[gi * cout_g * kg..],
                    1,
                    kg,
                    &gsrc[gi * cout_g * ld..],
                    ld,
                    1,
                    &mut dcol.0[gi * kg * ld..],
                    ld,
                    false,
                    Epilogue::default(),
                );
            }
            col2im_images(&dcol.0, nb, g, dx, ld, par, init);
        }
    }
    if let Some(dw) = dw {
        let x = x.expect("the input is needed for the weight gradient");
        let xs = &x[n0 * g.cin * p_in..][..nb * g.cin * p_in];
        let colref: &[f32] = if nb == 1 && g.pointwise() {
            xs
        } else {
            im2col_images(xs, nb, g, &mut col.0, ld, par);
            &col.0
        };
        for gi in 0..g.groups {
            sgemm(
                cout_g,
                kg,
                ld,
                &gsrc[gi * cout_g * ld..],
                ld,
                1,
                &colref[gi * kg * ld..],
                1,
                ld,
                &mut dw[gi * cout_g * kg..],
                kg,
                !first,
                Epilogue::default(),
            );
        }
    }
}

/// Convolution backward: the input gradient (`need_dx`, planes initialised with `init` per input
/// channel) and the weight gradient (`x` given). `gout` is `[n, cout, p_out]`.
fn conv_backward(
    x: Option<&[f32]>,
    w: &[f32],
    gout: &[f32],
    g: &Geom,
    need_dx: bool,
    init: Option<&[f32]>,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (p_in, p_out, kk) = (g.p_in(), g.p_out(), g.kk());
    let need_dw = x.is_some();
    if !need_dx && !need_dw {
        return (None, None);
    }
    // Stride-1 weight gradients without im2col (the input gradient below, as before).
    if let (Some(x), Some(shifted)) = (x, Shifted::new(g)) {
        let dw = shifted.weight_grad(x, gout, g);
        let (dx, _) = conv_backward(None, w, gout, g, need_dx, init);
        return (dx, Some(dw));
    }
    let wlen = g.cout * g.kg();
    let mut dx = need_dx.then(|| pool::take_uninit(g.n * g.cin * p_in));
    if g.n == 0 || p_out == 0 {
        if let Some(dx) = &mut dx {
            for (i, pl) in dx.chunks_mut(p_in.max(1)).enumerate() {
                pl.fill(init.map_or(0.0, |b| b[i % g.cin]));
            }
        }
        return (dx, need_dw.then(|| pool::take_zeroed(wlen)));
    }
    if g.depthwise() {
        let plane = g.plane();
        let mult = g.cout_g();
        if let Some(dx) = &mut dx {
            let body = |idx: usize, pl: &mut [f32]| {
                let (n, ci) = (idx / g.cin, idx % g.cin);
                pl.fill(init.map_or(0.0, |b| b[ci]));
                for co in ci * mult..(ci + 1) * mult {
                    depthwise::backward_data(
                        &gout[(n * g.cout + co) * p_out..][..p_out],
                        &w[co * kk..][..kk],
                        &plane,
                        pl,
                    );
                }
            };
            if dx.len() >= PAR_MIN_ELEMS {
                dx.par_chunks_mut(p_in)
                    .enumerate()
                    .for_each(|(i, pl)| body(i, pl));
            } else {
                dx.chunks_mut(p_in)
                    .enumerate()
                    .for_each(|(i, pl)| body(i, pl));
            }
        }
        let dw = x.map(|x| {
            let mut dw = pool::take_uninit(wlen);
            let body = |co: usize, acc: &mut [f32]| {
                acc.fill(0.0);
                let ci = co / mult;
                for n in 0..g.n {
                    depthwise::backward_weight(
                        &gout[(n * g.cout + co) * p_out..][..p_out],
                        &x[(n * g.cin + ci) * p_in..][..p_in],
                        &plane,
                        acc,
                    );
                }
            };
            if g.n * g.cout * p_out >= PAR_MIN_ELEMS {
                dw.par_chunks_mut(kk)
                    .enumerate()
                    .for_each(|(co, a)| body(co, a));
            } else {
                dw.chunks_mut(kk)
                    .enumerate()
                    .for_each(|(co, a)| body(co, a));
            }
            dw
        });
        return (dx, dw);
    }

    let cb = g.images_per_gemm();
    let nchunks = g.n.div_ceil(cb);
    let threads = crate::parallel::num_threads();
    let t = nchunks.min(threads).max(1);
    let inner_par = t < threads;
    // Range r handles chunks [r·nchunks/t, (r+1)·nchunks/t), accumulating its own weight
    // gradient; the partial sums are added at the end.
    let ranges: Vec<(usize, usize)> = (0..t)
        .map(|r| {
            let (c0, c1) = (r * nchunks / t, (r + 1) * nchunks / t);
            (c0 * cb, (c1 * cb).min(g.n))
        })
        .collect();
    let mut dws: Vec<Vec<f32>> = if need_dw {
        (0..t).map(|_| pool::take_uninit(wlen)).collect()
    } else {
        Vec::new()
    };
    let mut dx_parts: Vec<Option<&mut [f32]>> = Vec::with_capacity(t);
    match &mut dx {
        Some(dx) => {
            let mut rest: &mut [f32] = dx;
            for &(i0, i1) in &ranges {
                let (head, tail) = rest.split_at_mut((i1 - i0) * g.cin * p_in);
                dx_parts.push(Some(head));
                rest = tail;
            }
        }
        None => dx_parts.extend((0..t).map(|_| None)),
    }
    let mut dw_parts: Vec<Option<&mut [f32]>> = dws.iter_mut().map(|v| Some(&mut v[..])).collect();
    dw_parts.resize_with(t, || None);
    type Job<'a> = (
        (usize, usize),
        (Option<&'a mut [f32]>, Option<&'a mut [f32]>),
    );
    let run = |((i0, i1), (mut dxp, mut dwp)): Job<'_>| {
        let ld_max = cb.min(i1 - i0) * p_out;
        let big = g.cin * kk * ld_max;
        let mut bufs = [
            PoolBuf::take(if cb > 1 { g.cout * ld_max } else { 0 }),
            PoolBuf::take(if need_dx { big } else { 0 }),
            PoolBuf::take(if need_dw { big } else { 0 }),
        ];
        let mut n0 = i0;
        while n0 < i1 {
            let nb = cb.min(i1 - n0);
            let dxi = dxp
                .as_deref_mut()
                .map(|d| &mut d[(n0 - i0) * g.cin * p_in..][..nb * g.cin * p_in]);
            backward_images(
                x,
                w,
                gout,
                g,
                n0,
                nb,
                dxi,
                dwp.as_deref_mut(),
                n0 == i0,
                init,
                inner_par,
                &mut bufs,
            );
            n0 += nb;
        }
    };
    let jobs: Vec<_> = ranges
        .into_iter()
        .zip(dx_parts.into_iter().zip(dw_parts))
        .collect();
    if t > 1 {
        jobs.into_par_iter().for_each(run);
    } else {
        jobs.into_iter().for_each(run);
    }
    let dw = if need_dw {
        let mut it = dws.into_iter();
        let mut total = it.next().expect("at least one partial sum");
        for part in it {
            for (a, b) in total.iter_mut().zip(&part) {
                *a += b;
            }
            pool::give_back(part);
        }
        Some(total)
    } else {
        None
    };
    (dx, dw)
}
