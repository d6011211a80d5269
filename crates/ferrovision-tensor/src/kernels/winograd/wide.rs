//! The whole-batch ("wide") layout of Winograd F(4×4, 3×3), for small feature maps with many
//! channels (ResNet-18's 8 and 4 px stages at 64 px input, ResNet-50's 14 and 7 px stages).
//!
//! The tiled layout ([`super::conv3x3`]) vectorises the transforms over tiles and splits the
//! batch into L2-sized blocks, each running its own 36 GEMMs. On a 4×4 map an image is one tile
//! (plus the layout's spare slot per tile row), so a block's GEMMs have a few dozen columns and
//! stream the whole transformed filter bank `U` (36·C·K floats, 9 MB at 256 channels) once per
//! block. Here the transforms are vectorised over 16 channels instead, every tile of the batch
//! goes into one `V`, and each of the 36 GEMMs runs once over all tiles:
//!
//! 1. input transform, images in parallel (with fewer images than threads, batch 1, each
//!    image's tiles in parallel): `V[t][ξ][c] = (Bᵀ d_{t,c} B)[ξ]`;
//! 2. GEMMs, tile positions ξ in parallel: `M[ξ][t][k] = Σ_c V[t][ξ][c] · U[ξ][c][k]` (the
//!    filters transformed input-major, [`super::transform_filter`] with `in_major`);
//! 3. output transform, images in parallel (with fewer images than threads, groups of 16
//!    output channels in parallel): `y[n][k] = act(Aᵀ M A + bias)` per tile.
//!
//! The 1-d transforms are the tiled layout's, applied in another order, and the GEMM blocking
//! differs, so the two layouts agree to rounding, not bits.
//! Each output element is computed by one task whose work does not depend on the thread count,
//! so results are the same for any number of threads.

use super::{input_1d, output_1d, Geometry, A, LANES, MO, XI};
use crate::kernels::gemm::{sgemm_b_panels_on, sgemm_isa, BPanelLayout, Epilogue};
use crate::parallel::prelude::*;
use crate::storage::pool::PooledVec;

/// The transformed filters of the whole-batch layout: the B of its 36 GEMMs.
#[derive(Debug, Clone, Copy)]
pub enum WideFilters<'a> {
    /// `[36][cin][cout]` ([`super::transform_filter`] with `in_major`), packed by every GEMM.
    Plain(&'a [f32]),
    /// The same planes each in the GEMM's B-panel layout (`layout`, `cin×cout`; plane ξ at
    /// `ξ·layout.len()`), as [`wide_filter_panels`] makes them: read where they are. For
    /// filters used again and again (inference): on ResNet-18's 4 px stage at batch 32 packing
    /// the filters was as costly as their product.
    Panels(&'a [f32], BPanelLayout),
    /// Not transformed: the weights (`[cout][cin][3][3]`, or with `rotate` the forward filters
    /// `[cin][cout][3][3]` of an input gradient, turned by 180°), transformed block by block
    /// inside the GEMMs (`winograd/fused.rs`). For training, where the filters are new on every
    /// call: `U` is never written whole.
    Weights { w: &'a [f32], rotate: bool },
}

/// The filters `u` (`[36][cin][cout]`, input-major) in [`WideFilters::Panels`]' layout:
/// `layout` is `cin×cout` ([`BPanelLayout::new`]`(cin, cout)`).
///
/// # Panics
/// If `u` is shorter than 36 planes of the layout's `cin·cout` (a programming error).
pub fn wide_filter_panels(u: &[f32], layout: &BPanelLayout) -> Vec<f32> {
    let plane = layout.rows() * layout.cols();
    let mut out = Vec::with_capacity(XI * layout.len());
    for p in u[..XI * plane].chunks_exact(plane.max(1)) {
        out.extend_from_slice(&layout.pack(p, layout.cols(), 1));
    }
    out
}

/// `y = act(conv3x3(x) + bias + res)` like [`super::conv3x3`], computed in the whole-batch layout:
/// the same operands and layouts except `u`, the filters transformed input-major
/// (`[36][cin][cout]`), plain or in panels ([`WideFilters`]; bitwise the same result).
pub fn conv3x3_wide(
    x: &[f32],
    u: WideFilters<'_>,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    g: &Geometry,
    y: &mut [f32],
) {
    let u_len = match u {
        WideFilters::Plain(u) => u.len(),
        WideFilters::Panels(u, layout) => {
            assert!(
                layout == BPanelLayout::for_isa(layout.isa(), g.cin, g.cout)
                    && u.len() >= XI * layout.len(),
                "winograd: filter panels of another shape"
            );
            g.filter_len()
        }
        WideFilters::Weights { .. } => g.filter_len(),
    };
    g.check_operands(x, u_len, bias, res, y);
    let p_out = g.out[0] * g.out[1];
    if g.n == 0 || p_out == 0 || g.cout == 0 {
        return;
    }
    let [th, tw] = g.tiles();
    let per_image = th * tw;
    let tiles = g.n * per_image;
    let isa = crate::kernels::isa();

    let mut v = PooledVec::<f32>::take(tiles * XI * g.cin);
    let mut m = PooledVec::<f32>::take(XI * tiles * g.cout);
    if g.cin == 0 {
        m.fill(0.0);
    } else {
        input_images(x, g, &mut v);
        gemms(isa, &v, u, g, tiles, &mut m);
    }
    output_images(&m, tiles, g, bias, res, relu, y);
}

/// The 36 GEMMs `M[ξ] = V[·][ξ] · U[ξ]`, tile positions in parallel (each on one thread).
fn gemms(
    isa: crate::kernels::Isa,
    v: &[f32],
    u: WideFilters<'_>,
    g: &Geometry,
    tiles: usize,
    m: &mut [f32],
) {
    if let WideFilters::Weights { w, rotate } = u {
        return super::fused::gemms(super::fused::FilterSource { w, rotate }, v, g, tiles, m);
    }
    m.par_chunks_mut(tiles * g.cout)
        .enumerate()
        .for_each(|(xi, mx)| match u {
            WideFilters::Weights { .. } => unreachable!("handled above"),
            WideFilters::Panels(u, layout) => sgemm_b_panels_on(
                1,
                &layout,
                &u[xi * layout.len()..],
                tiles,
                &v[xi * g.cin..],
                XI * g.cin,
                1,
                mx,
                g.cout,
                false,
                Epilogue::default(),
            ),
            WideFilters::Plain(u) => sgemm_isa(
                isa,
                1,
                tiles,
                g.cout,
                g.cin,
                &v[xi * g.cin..],
                XI * g.cin,
                1,
                &u[xi * g.cout * g.cin..],
                g.cout,
                1,
                mx,
                g.cout,
                false,
                Epilogue::default(),
            ),
        });
}

/// The input transforms of the images of `x` into `v` (whole images, `v[(t·36 + ξ)·cin + c]`):
/// images in parallel, or with fewer images than threads (batch 1) each image's tiles in
/// parallel. Every value is computed the same way either way.
fn input_images(x: &[f32], g: &Geometry, v: &mut [f32]) {
    let p_in = g.input[0] * g.input[1];
    let [th, tw] = g.tiles();
    let per_image = th * tw;
    let image_len = per_image * XI * g.cin;
    let threads = crate::parallel::num_threads();
    if g.n >= threads || per_image == 1 {
        v.par_chunks_mut(image_len)
            .enumerate()
            .for_each(|(n, vn)| input_image(&x[n * g.cin * p_in..][..g.cin * p_in], g, vn));
        return;
    }
    let cs = g.cin.next_multiple_of(LANES);
    let mut hwc = PooledVec::<f32>::take(p_in * cs);
    let per_task = per_image.div_ceil(2 * threads);
    for (n, vn) in v.chunks_mut(image_len).enumerate() {
        channels_last_image(
            &x[n * g.cin * p_in..][..g.cin * p_in],
            g.cin,
            p_in,
            cs,
            &mut hwc,
        );
        vn.par_chunks_mut(per_task * XI * g.cin)
            .enumerate()
            .for_each(|(i, part)| input_tiles(&hwc, g, i * per_task, part));
    }
}

/// The input transform of one image: `v[(t·36 + ξ)·cin + c]` for its tiles `t`.
#[inline(always)]
fn input_image_body(x: &[f32], g: &Geometry, v: &mut [f32]) {
    let [ih, iw] = g.input;
    // The image channel-last with whole 16-lane groups (zero past `cin`), so that a window
    // position's 16 channels are one contiguous load instead of 16 strided ones.
    let cs = g.cin.next_multiple_of(LANES);
    let mut hwc = PooledVec::<f32>::take(ih * iw * cs);
    channels_last(x, g.cin, ih * iw, cs, &mut hwc);
    input_tiles_body(&hwc, g, 0, v);
}

/// The input transform of tiles `t0..` of one image (as many as `v` holds) from the image
/// channel-last (`hwc`, 16-lane channel groups).
#[inline(always)]
fn input_tiles_body(hwc: &[f32], g: &Geometry, t0: usize, v: &mut [f32]) {
    let [ih, iw] = g.input;
    let tw = g.tiles()[1];
    let cs = g.cin.next_multiple_of(LANES);
    let mut d = [[[0.0f32; LANES]; A]; A];
    let mut e = [[[0.0f32; LANES]; A]; A];
    let mut col = [[0.0f32; LANES]; A];
    let mut out = [[0.0f32; LANES]; A];
    for (i_tile, tile) in v.chunks_exact_mut(XI * g.cin).enumerate() {
        let (ty, tx) = ((t0 + i_tile) / tw, (t0 + i_tile) % tw);
        let mut c0 = 0;
        while c0 < g.cin {
            let lanes = LANES.min(g.cin - c0);
            // Gather the 6×6 windows of 16 channels (zero outside the input).
            for i in 0..A {
                let yy = (ty * MO + i) as isize - g.pad[0] as isize;
                let row_in = yy >= 0 && (yy as usize) < ih;
                for j in 0..A {
                    let xx = (tx * MO + j) as isize - g.pad[1] as isize;
                    d[i][j] = if !row_in || xx < 0 || xx as usize >= iw {
                        [0.0; LANES]
                    } else {
                        let at = (yy as usize * iw + xx as usize) * cs + c0;
                        lanes16(&hwc[at..])
                    };
                }
            }
            // Bᵀ d B: along each row (j), then along each column (i).
            for i in 0..A {
                input_1d(&d[i], &mut e[i]);
            }
            for b in 0..A {
                for i in 0..A {
                    col[i] = e[i][b];
                }
                input_1d(&col, &mut out);
                for a in 0..A {
                    store_lanes(&out[a], &mut tile[(a * A + b) * g.cin + c0..][..lanes]);
                }
            }
            c0 += LANES;
        }
    }
}

/// `dst[p·ld + c] = src[c·planes + p]` for `c < channels`, zero for `channels ≤ c < ld` (`ld`
/// a multiple of 16): a `[channels][planes]` block channel-last. By 16×16 blocks through a
/// small buffer, so that reads and writes are whole 16-float runs (element by element, one
/// side strides by a power of two often enough and keeps missing the cache).
#[inline(always)]
pub(super) fn channels_last(
    src: &[f32],
    channels: usize,
    planes: usize,
    ld: usize,
    dst: &mut [f32],
) {
    let src = &src[..channels * planes];
    let dst = &mut dst[..planes * ld];
    let mut block = [[0.0f32; LANES]; LANES];
    let mut c0 = 0;
    while c0 < ld {
        let lanes = LANES.min(channels.saturating_sub(c0));
        let mut p0 = 0;
        while p0 + LANES <= planes {
            for (l, row) in block.iter_mut().enumerate() {
                *row = if l < lanes {
                    lanes16(&src[(c0 + l) * planes + p0..])
                } else {
                    [0.0; LANES]
                };
            }
            for i in 0..LANES {
                let column: [f32; LANES] = std::array::from_fn(|l| block[l][i]);
                store_lanes(&column, &mut dst[(p0 + i) * ld + c0..][..LANES]);
            }
            p0 += LANES;
        }
        for p in p0..planes {
            for l in 0..LANES {
                dst[p * ld + c0 + l] = if l < lanes {
                    src[(c0 + l) * planes + p]
                } else {
                    0.0
                };
            }
        }
        c0 += LANES;
    }
}

/// The 16 floats at the start of `src`.
#[inline(always)]
pub(super) fn lanes16(src: &[f32]) -> [f32; LANES] {
    let mut r = [0.0; LANES];
    r.copy_from_slice(&src[..LANES]);
    r
}

/// `src` (at most 16 floats) into the first lanes of `dst`: a fixed-size copy for a whole
/// group, as [`store_lanes`].
#[inline(always)]
pub(super) fn load_lanes(src: &[f32], dst: &mut [f32; LANES]) {
    match <&[f32; LANES]>::try_from(src) {
        Ok(whole) => *dst = *whole,
        Err(_) => dst[..src.len()].copy_from_slice(src),
    }
}

/// The first `dst.len()` (at most 16) lanes of `v` into `dst`: a fixed-size copy for a whole
/// group (a variable-length one becomes a `memcpy` call).
#[inline(always)]
pub(super) fn store_lanes(v: &[f32; LANES], dst: &mut [f32]) {
    match <&mut [f32; LANES]>::try_from(&mut *dst) {
        Ok(whole) => *whole = *v,
        Err(_) => {
            let n = dst.len();
            dst.copy_from_slice(&v[..n]);
        }
    }
}

crate::multiversion! {
    pub(super) fn input_image(x: &[f32], g: &Geometry, v: &mut [f32]) {
        input_image_body(x, g, v)
    }
}

crate::multiversion! {
    fn input_tiles(hwc: &[f32], g: &Geometry, t0: usize, v: &mut [f32]) {
        input_tiles_body(hwc, g, t0, v)
    }
}

crate::multiversion! {
    fn channels_last_image(src: &[f32], channels: usize, planes: usize, ld: usize, dst: &mut [f32]) {
        channels_last(src, channels, planes, ld, dst)
    }
}

/// The output transforms of every image from `m` into `y` (`[n][cout][oh·ow]`): images in
/// parallel, or with fewer images than threads (batch 1) groups of output channels of each
/// image in parallel. Every value is computed the same way either way.
#[allow(clippy::too_many_arguments)]
fn output_images(
    m: &[f32],
    tiles: usize,
    g: &Geometry,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let p_out = g.out[0] * g.out[1];
    let per_image = g.tiles()[0] * g.tiles()[1];
    let image_len = g.cout * p_out;
    let threads = crate::parallel::num_threads();
    let groups = g.cout.div_ceil(LANES);
    if g.n >= threads || groups == 1 {
        y[..g.n * image_len]
            .par_chunks_mut(image_len)
            .enumerate()
            .for_each(|(n, yn)| {
                let rn = res.map(|r| &r[n * image_len..][..image_len]);
                output_image(m, n * per_image, tiles, g, 0, bias, rn, relu, yn)
            });
        return;
    }
    let per_task = groups.div_ceil(2 * threads) * LANES;
    for (n, yn) in y[..g.n * image_len].chunks_mut(image_len).enumerate() {
        let rn = res.map(|r| &r[n * image_len..][..image_len]);
        yn.par_chunks_mut(per_task * p_out)
            .enumerate()
            .for_each(|(i, part)| {
                output_image(
                    m,
                    n * per_image,
                    tiles,
                    g,
                    i * per_task,
                    bias,
                    rn,
                    relu,
                    part,
                )
            });
    }
}

/// The output transform of one image (tiles `t0..t0 + tiles per image` of `m`, which holds
/// `tiles` tiles per tile position): `y[k][o]` for every output channel and position.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_image_body(
    m: &[f32],
    t0: usize,
    tiles: usize,
    g: &Geometry,
    k_begin: usize,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let [oh, ow] = g.out;
    let p_out = oh * ow;
    let [th, tw] = g.tiles();
    let k_end = k_begin + y.len() / p_out;
    let mut mm = [[[0.0f32; LANES]; A]; A];
    let mut z = [[[0.0f32; LANES]; MO]; A];
    let mut col = [[0.0f32; LANES]; A];
    let mut out = [[0.0f32; LANES]; MO];
    for ty in 0..th {
        let rows = MO.min(oh - ty * MO);
        for tx in 0..tw {
            let cols = MO.min(ow - tx * MO);
            let t = t0 + ty * tw + tx;
            let mut k0 = k_begin;
            while k0 < k_end {
                let lanes = LANES.min(k_end - k0);
                for a in 0..A {
                    for b in 0..A {
                        let src = &m[((a * A + b) * tiles + t) * g.cout + k0..][..lanes];
                        load_lanes(src, &mut mm[a][b]);
                    }
                }
                let mut bias_lanes = [0.0f32; LANES];
                if let Some(bs) = bias {
                    bias_lanes[..lanes].copy_from_slice(&bs[k0..k0 + lanes]);
                }
                // Aᵀ m A: along each row (b), then along each column (a).
                for a in 0..A {
                    output_1d(&mm[a], &mut z[a]);
                }
                for j in 0..cols {
                    for a in 0..A {
                        col[a] = z[a][j];
                    }
                    output_1d(&col, &mut out);
                    for i in 0..rows {
                        let at = (ty * MO + i) * ow + tx * MO + j;
                        for l in 0..lanes {
                            let mut v = out[i][l] + bias_lanes[l];
                            if let Some(r) = res {
                                v += r[(k0 + l) * p_out + at];
                            }
                            y[(k0 - k_begin + l) * p_out + at] = if relu { v.max(0.0) } else { v };
                        }
                    }
                }
                k0 += LANES;
            }
        }
    }
}

crate::multiversion! {
    fn output_image(m: &[f32], t0: usize, tiles: usize, g: &Geometry, k_begin: usize, bias: Option<&[f32]>, res: Option<&[f32]>, relu: bool, y: &mut [f32]) {
        output_image_body(m, t0, tiles, g, k_begin, bias, res, relu, y)
    }
}
