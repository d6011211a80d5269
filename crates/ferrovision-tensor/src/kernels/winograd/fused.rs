//! The whole-batch layout's GEMMs with the filter transform done block by block, for training.
//!
//! In training the weights change every step, so every Winograd convolution transforms its
//! filters: `U` is 36·C·K floats, four times the weights (9.4 MB at 256 channels), written
//! once and read back by the 36 GEMMs. On few-tile maps (ResNet-18's 8 and 4 px stages at
//! 64 px input, 16-64 tiles in the batch) each `U` element then serves a handful of
//! multiply-adds, and moving `U` through memory costs as much as the products (the rule,
//! [`filters_by_blocks`], takes this form for ResNet-18's 4 px stage, not its 8 px one). Here
//! `U` never exists whole: the output channels are split into column blocks (one task each),
//! and per block of input channels a task transforms just that part of the filters (36 planes
//! of `cb × kb`, straight into the GEMM's B-panel layout, L2-resident) and runs the 36 GEMMs
//! on it, adding to its own columns of `M`. The weights are read instead of `U` (a quarter of
//! the bytes), and nothing is packed.
//!
//! The transform is [`super::transform_filter`]'s (same 1-d steps, same order), so `U` has the
//! same values; the GEMMs sum over the input channels in blocks (64-128, at most [`BLOCK_IN`])
//! instead of the GEMM's own depth blocks, so `M` agrees with the unfused layout to rounding.
//! Each `M` element is computed by one task in a fixed order: the result does not depend on the
//! number of threads. The weight gradient's blocks ([`weight_grad_blocks`]) are the same idea
//! for `dU`.

use super::wgrad::filter_grad;
use super::wide::store_lanes;
use super::{filter_1d, Geometry, A, LANES, XI};
use crate::kernels::gemm::{sgemm_b_panels_on, sgemm_isa, BPanelLayout, Epilogue};
use crate::parallel::prelude::*;
use crate::parallel::SendPtr;
use crate::storage::pool::PooledVec;

/// Input channels per block (the GEMMs' depth; at most the GEMM's own depth block, 384, so
/// that layers of up to that many channels sum in the same order as the unfused GEMMs).
const BLOCK_IN: usize = 256;
/// Target floats of one task's transformed filter block (36 planes, ~576 KiB: L2-resident).
const BLOCK_FLOATS: usize = 144 * 1024;

/// How many times the transformed filters outweigh the transformed tiles of a batch of
/// `tiles` tiles: `C·K / (tiles·(C + K))` (`U` against `V` and `M`).
fn filter_weight(g: &Geometry, tiles: usize) -> f64 {
    (g.cin * g.cout) as f64 / (tiles * (g.cin + g.cout)).max(1) as f64
}

/// Whether a whole-batch convolution (or input gradient) of geometry `g` in training should
/// transform its filters block by block ([`super::WideFilters::Weights`]): where `U` is at
/// least 4x the tiles' data. Measured (2 threads, Zen 4, interleaved minima, filter transform
/// and GEMMs, unfused time / fused time): 256 channels on 4 px maps at batch 16 (8x) 1.2-1.5x,
/// at batch 32 (4x) 1.2-1.4x, at batch 64 (2x) 1.05-1.08x; 512 channels on 7 px maps at batch
/// 16 (4x) 0.97-1.11x; 128 channels on 8 px maps at batch 16 (1x) 0.99-1.02x; 256 channels on
/// 14 px maps at batch 16 (0.5x) 0.71-0.80x.
pub fn filters_by_blocks(g: &Geometry) -> bool {
    let [th, tw] = g.tiles();
    filter_weight(g, g.n * th * tw) >= 4.0
}

/// The weight gradient's rule ([`weight_grad_blocks`]): `dU` by blocks where it is at least 8x
/// the tiles' data (its blocks re-pack their slices of `V` and `M̄` once per block). Measured
/// as above (whole weight gradient): 256 channels on 4 px maps at batch 16 (8x) 1.3-1.4x, at
/// batch 32 (4x) 0.7-0.9x; 512 channels on 4 px maps at batch 16 (16x) 1.45x, on 7 px maps
/// (4x) 0.7-0.8x.
pub(super) fn weight_grad_by_blocks(g: &Geometry, tiles: usize) -> bool {
    filter_weight(g, tiles) >= 8.0
}

/// The distance between two of the 36 planes of a block of `len` floats: padded by one cache
/// line when `len` is a multiple of 1 KiB, so that the 36 stores of one filter (and the 36
/// reads of one weight gradient) do not all fall into the same L1 cache set.
fn plane_stride(len: usize) -> usize {
    if len.is_multiple_of(256) {
        len + 16
    } else {
        len
    }
}

/// How many input channels ahead the filter transforms prefetch their weights (here and in
/// [`super::transform_filter`]): the lanes' weights are 9·C floats apart, 16 streams the
/// hardware prefetcher does not keep up with (perf: the loads were 45 % of this transform; with
/// the hints the transform's share of a ResNet-18 training step went 4.1 -> 2.7 %).
pub(super) const PREFETCH_STEPS: usize = 8;

/// Which filters a block transforms: the convolution's own (`w` `[cout][cin][3][3]`) or, for an
/// input gradient, the forward filters turned by 180° and transposed in (K, C) (`w`
/// `[cin][cout][3][3]` of this geometry, i.e. `[K][C][3][3]` of the forward one).
#[derive(Debug, Clone, Copy)]
pub(super) struct FilterSource<'a> {
    pub w: &'a [f32],
    pub rotate: bool,
}

/// `M[ξ][t][k] = Σ_c V[t][ξ][c] · U[ξ][c][k]` (`v` `[tiles][36][cin]`, `m` `[36][tiles][cout]`)
/// with `U` made from `src` block by block.
pub(super) fn gemms(src: FilterSource<'_>, v: &[f32], g: &Geometry, tiles: usize, m: &mut [f32]) {
    assert!(
        src.w.len() >= g.cout * g.cin * 9,
        "winograd: weights too short"
    );
    let nr = BPanelLayout::new(1, 1).width();
    // Column blocks of whole panels: at least 4 (for the threads) where the layer allows.
    let panels = g.cout.div_ceil(nr);
    let kb = nr * panels.div_ceil(4).clamp(1, 2);
    let cb = (BLOCK_FLOATS / (XI * kb)).clamp(LANES, BLOCK_IN);
    let blocks = g.cout.div_ceil(kb);
    // Each task owns columns k0..k0 + kb of every plane of M; they are handed out as raw
    // column ranges of one buffer (disjoint, so the writes do not race).
    let m_ptr = SendPtr(m.as_mut_ptr());
    let m_len = m.len();
    (0..blocks).into_par_iter().for_each(|bi| {
        let k0 = bi * kb;
        let kw = kb.min(g.cout - k0);
        let mut c0 = 0;
        while c0 < g.cin {
            let cw = cb.min(g.cin - c0);
            let layout = BPanelLayout::new(cw, kw);
            let plane = plane_stride(layout.len());
            let mut u = PooledVec::<f32>::take(XI * plane);
            filter_block(src, g, c0, cw, k0, kw, &layout, plane, &mut u);
            for xi in 0..XI {
                // SAFETY: columns k0..k0 + kw of plane xi belong to this task only; the
                // slice spans from the first of them to the end of the plane's last row.
                let mx = unsafe {
                    let at = xi * tiles * g.cout + k0;
                    let len = (tiles - 1) * g.cout + kw;
                    debug_assert!(at + len <= m_len);
                    std::slice::from_raw_parts_mut(m_ptr.get().add(at), len)
                };
                sgemm_b_panels_on(
                    1,
                    &layout,
                    &u[xi * plane..],
                    tiles,
                    &v[xi * g.cin + c0..],
                    XI * g.cin,
                    1,
                    mx,
                    g.cout,
                    c0 > 0,
                    Epilogue::default(),
                );
            }
            c0 += cw;
        }
    });
}

/// The transformed filters of input channels `c0..c0 + cw` and output channels `k0..k0 + kw`:
/// plane ξ of `u` (at `ξ·plane`) holds `U[ξ][c][k]` in `layout` (`cw × kw`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter_block_body(
    src: FilterSource<'_>,
    g: &Geometry,
    c0: usize,
    cw: usize,
    k0: usize,
    kw: usize,
    layout: &BPanelLayout,
    plane: usize,
    u: &mut [f32],
) {
    // Columns (output channels) past `kw` in the last panel stay zero.
    if !kw.is_multiple_of(layout.width()) {
        u[..XI * plane].fill(0.0);
    }
    let fast = super::shuffle::fast();
    let mut taps = [[0.0f32; LANES]; 9];
    let mut gg = [[[0.0f32; LANES]; 3]; A];
    let mut out = [[0.0f32; LANES]; A];
    // The lanes run along the output channels: 9·C floats apart in `[cout][cin][3][3]`, 9 in
    // the input gradient's `[cin][cout][3][3]`.
    let stride = if src.rotate { 9 } else { g.cin * 9 };
    // Floats from one input channel's filters to the next's.
    let step = if src.rotate { g.cout * 9 } else { 9 };
    // 16 output channels at a time, walking the input channels: each lane reads its weights
    // in order (16 sequential streams the prefetcher follows).
    let mut j0 = 0;
    while j0 < kw {
        let lanes = LANES.min(kw - j0);
        for c in 0..cw {
            let (out_ch, in_ch) = (k0 + j0, c0 + c);
            let at = if src.rotate {
                (in_ch * g.cout + out_ch) * 9
            } else {
                (out_ch * g.cin + in_ch) * 9
            };
            super::shuffle::prefetch_taps(&src.w[at..], stride, lanes, PREFETCH_STEPS * step);
            super::shuffle::gather_taps(fast, &src.w[at..], stride, lanes, src.rotate, &mut taps);
            let f = |i: usize, j: usize| taps[3 * i + j];
            // G f (6×3) along the filter's rows, then (G f) Gᵀ along each row a: the order of
            // `transform_filter`, so the values are the same.
            for j in 0..3 {
                filter_1d(&[f(0, j), f(1, j), f(2, j)], &mut out);
                for a in 0..A {
                    gg[a][j] = out[a];
                }
            }
            let at = layout.index(c, j0);
            for a in 0..A {
                filter_1d(&gg[a], &mut out);
                for b in 0..A {
                    let p = &mut u[(a * A + b) * plane + at..][..lanes];
                    store_lanes(&out[b], p);
                }
            }
        }
        j0 += LANES;
    }
}

crate::multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn filter_block(src: FilterSource<'_>, g: &Geometry, c0: usize, cw: usize, k0: usize, kw: usize, layout: &BPanelLayout, plane: usize, u: &mut [f32]) {
        filter_block_body(src, g, c0, cw, k0, kw, layout, plane, u)
    }
}

/// The weight gradient from `M̄` (`mb`, `[tiles][36][cout]`) and `V` (`v`, `[tiles][36][cin]`)
/// of the whole batch: `dw[k][c] = Gᵀ [Σ_t M̄[t][ξ][k] · V[t][ξ][c]] G`, by blocks of output
/// channels (one task each) and of input channels, so that `dU` (36·C·K floats) is never
/// written whole: each block's 36 planes are summed in an L2-resident buffer and turned into
/// its weights at once. Same sums as the unfused form (each a GEMM over the tiles), so the
/// same values.
pub(super) fn weight_grad_blocks(
    mb: &[f32],
    v: &[f32],
    g: &Geometry,
    tiles: usize,
    dw: &mut [f32],
) {
    let isa = crate::kernels::isa();
    let kb = 32.min(g.cout);
    let cb = (BLOCK_FLOATS / (XI * kb)).clamp(LANES, g.cin.max(LANES));
    dw[..g.cout * g.cin * 9]
        .par_chunks_mut(kb * g.cin * 9)
        .enumerate()
        .for_each(|(bi, dwb)| {
            let k0 = bi * kb;
            let kw = kb.min(g.cout - k0);
            let mut c0 = 0;
            while c0 < g.cin {
                let cw = cb.min(g.cin - c0);
                let plane = plane_stride(kw * cw);
                let mut du = PooledVec::<f32>::take(XI * plane);
                for (xi, du_xi) in du.chunks_mut(plane).enumerate() {
                    // dU[ξ] (kw × cw) = M̄[·][ξ][k0..]ᵀ · V[·][ξ][c0..], summed over the tiles.
                    sgemm_isa(
                        isa,
                        1,
                        kw,
                        cw,
                        tiles,
                        &mb[xi * g.cout + k0..],
                        1,
                        XI * g.cout,
                        &v[xi * g.cin + c0..],
                        XI * g.cin,
                        1,
                        du_xi,
                        cw,
                        false,
                        Epilogue::default(),
                    );
                }
                for k in 0..kw {
                    let dwk = &mut dwb[(k * g.cin + c0) * 9..][..cw * 9];
                    filter_grad(&du[k * cw..], plane, cw, dwk);
                }
                c0 += cw;
            }
        });
}
