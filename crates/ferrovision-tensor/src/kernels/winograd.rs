//! Winograd convolution F(4×4, 3×3) for 3×3 stride-1 layers (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016).
//!
//! A 4×4 block of outputs of a 3×3 correlation needs a 6×6 input tile `d` and the filter `g`:
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Over `C` input and `K` output channels the elementwise
//! product becomes 36 independent GEMMs, one per tile position `ξ`:
//! `M[ξ][k][t] = Σ_c U[ξ][k][c] · V[ξ][c][t]` with `U = G g Gᵀ` (filters) and `V = Bᵀ d B`
//! (input tiles `t`). That is 36 multiplies per 16 outputs instead of 144: 4× fewer than direct
//! or im2col convolution, paid for with the three transforms and a larger rounding error (the
//! points 0, ±1, ±2, ±½ make F(4×4, 3×3) about 10× less exact than direct f32 convolution; the
//! tests bound it against a double-precision direct convolution).
//!
//! Layout and blocking: tiles are numbered image by image, row by row. They are processed in
//! blocks (whole images, or bands of tile rows of one image) sized so that a block's `V` and `M`
//! (36·(C+K)·tiles floats) stay in the L2 cache: per block the input tiles are transformed into
//! `V`, the 36 GEMMs run on one thread with the shared `U`, and `M` is transformed back into the
//! block's output rows with the bias and ReLU applied. Blocks run in parallel (with fewer
//! blocks than threads, one block at batch 1 on 28 px maps, a block's 36 GEMMs run in parallel
//! instead) and each output element is computed by one block with the same operation order, so
//! results do not depend on the number of threads. The block plan depends on the shape only.
//!
//! The transforms work on 16 tiles at once (one lane per tile), so the compiler vectorises them
//! with AVX-512 or AVX2 ([`crate::multiversion!`]); they use no FMA contraction, so every ISA
//! level computes the same values. The transposes between tile-major rows and 16-lane vectors
//! are AVX-512 or AVX2 shuffles where available (`winograd/shuffle.rs`, with scalar twins).
//!
//! The input gradient of a 3×3 stride-1 convolution is itself one: the output gradient
//! correlated with the filters rotated by 180° and transposed in (K, C), padded by `2 − pad`
//! ([`transform_filter`] with `rotate`). The weight gradient is the transposed algorithm
//! (`winograd/wgrad.rs`, [`weight_grad`]). In training on few-tile maps, where the transformed
//! filters outweigh the tiles, the whole-batch layout transforms them block by block inside its
//! GEMMs instead of writing them whole (`winograd/fused.rs`, [`filters_by_blocks`]).

#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::gemm::{sgemm_isa, Epilogue};
use crate::parallel::prelude::*;
use crate::storage::pool::PooledVec;

/// Tile side (inputs).
const A: usize = 6;
/// Outputs per tile side.
const MO: usize = 4;
/// Tile positions (GEMMs).
const XI: usize = A * A;
/// Tiles per transform step (one SIMD lane each).
const LANES: usize = 16;
/// Floats one 16-tile step reads from a half-transformed row (4·16 + 2).
const STEP: usize = MO * LANES + 2;
/// Fewest slots (GEMM columns) per block: wide layers exceed L2 rather than pack their
/// transformed filters for a handful of columns (measured: 64-channel 16 px layers 0.87x -> 1.2x
/// against im2col, 128-channel 28 px 0.95x -> 1.6x).
const MIN_BLOCK_SLOTS: usize = 128;
/// Blocks a batch is split into at least (when it has that many images), for the threads; a
/// constant, so the plan does not depend on the thread count.
const MIN_BLOCKS: usize = 4;
/// Target floats of one block's `V` and `M` (L2-resident working set, ~512 KiB).
const BLOCK_FLOATS: usize = 128 * 1024;

/// Geometry of one 3×3 stride-1 correlation over `n` images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    /// Input plane (rows, columns).
    pub input: [usize; 2],
    /// Output plane (rows, columns).
    pub out: [usize; 2],
    /// Padding before (top, left); reads outside the input are zero.
    pub pad: [usize; 2],
}

impl Geometry {
    /// Tile rows and columns of the output (4×4 outputs a tile).
    pub fn tiles(&self) -> [usize; 2] {
        [self.out[0].div_ceil(MO), self.out[1].div_ceil(MO)]
    }
    /// Floats of the transformed filters `U` for this geometry.
    pub fn filter_len(&self) -> usize {
        XI * self.cin * self.cout
    }
    /// Panics unless the operands of a convolution of this geometry are long enough (a caller
    /// bug: the op validated the shapes).
    fn check_operands(
        &self,
        x: &[f32],
        u_len: usize,
        bias: Option<&[f32]>,
        res: Option<&[f32]>,
        y: &[f32],
    ) {
        let p_in = self.input[0] * self.input[1];
        let p_out = self.out[0] * self.out[1];
        assert!(
            x.len() >= self.n * self.cin * p_in,
            "winograd: input too short"
        );
        assert!(
            y.len() >= self.n * self.cout * p_out,
            "winograd: output too short"
        );
        assert!(u_len >= self.filter_len(), "winograd: filters too short");
        assert!(bias.is_none_or(|b| b.len() >= self.cout));
        assert!(
            res.is_none_or(|r| r.len() >= self.n * self.cout * p_out),
            "winograd: residual too short"
        );
    }
}

/// `U[ξ][k][c] = (G g Gᵀ)[ξ]` for filters `w` `[K][C][3][3]` (`rotate: false`), or for the
/// rotated, transposed filters of the input gradient, `U[ξ][c][k]` from `w[k][c]` turned by 180°
/// (`rotate: true`): `U[ξ][out][in]` for the convolution's output and input channels, the tiled
/// layout's order ([`conv3x3`]). `in_major` stores `U[ξ][in][out]` instead, the whole-batch
/// layout's ([`conv3x3_wide`]). `u` has [`Geometry::filter_len`] floats.
///
/// Vectorised over 16 filters at a time; bands of rows run in parallel (every value is computed
/// the same way whatever the thread count).
pub fn transform_filter(
    w: &[f32],
    k: usize,
    c: usize,
    rotate: bool,
    in_major: bool,
    u: &mut [f32],
) {
    assert!(w.len() >= k * c * 9 && u.len() >= XI * k * c);
    let plane = k * c;
    if plane == 0 {
        return;
    }
    // Rows and columns of each of the 36 planes of U.
    let (outs, ins) = if rotate { (c, k) } else { (k, c) };
    let (rows, cols) = if in_major { (ins, outs) } else { (outs, ins) };
    // Bands of rows (a constant split, independent of the thread count): per band, its part of
    // each of the 36 planes.
    let band = rows.div_ceil(16).max(1);
    let mut parts: Vec<Vec<&mut [f32]>> = (0..rows.div_ceil(band)).map(|_| Vec::new()).collect();
    for plane_u in u[..XI * plane].chunks_mut(plane) {
        for (bi, part) in plane_u.chunks_mut(band * cols).enumerate() {
            parts[bi].push(part);
        }
    }
    let spec = FilterSpec {
        c,
        rotate,
        in_major,
        cols,
        fast: shuffle::fast(),
    };
    let run = |(bi, mut part): (usize, Vec<&mut [f32]>)| {
        let r0 = bi * band;
        let r1 = (r0 + band).min(rows);
        filter_rows(w, &spec, r0, r1, &mut part);
    };
    let jobs: Vec<_> = parts.into_iter().enumerate().collect();
    if jobs.len() > 1 && crate::parallel::num_threads() > 1 {
        jobs.into_par_iter().for_each(run);
    } else {
        jobs.into_iter().for_each(run);
    }
}

/// What [`transform_filter`] computes (shared by its bands).
struct FilterSpec {
    c: usize,
    rotate: bool,
    in_major: bool,
    cols: usize,
    /// The shuffles this CPU runs ([`shuffle::fast`]).
    fast: shuffle::Shuffles,
}

/// Rows `r0..r1` of every plane of U into `part[ξ]` (which starts at row `r0`).
#[inline(always)]
fn filter_rows_body(w: &[f32], s: &FilterSpec, r0: usize, r1: usize, part: &mut [&mut [f32]]) {
    let mut taps = [[0.0f32; LANES]; 9];
    let mut gg = [[[0.0f32; LANES]; 3]; A];
    let mut out = [[0.0f32; LANES]; A];
    // The lanes run along the columns (output channels when input-major, else input
    // channels): the weights' first index (K) or second (C), so 9·C or 9 floats apart.
    let col_is_out = s.in_major;
    let stride = if col_is_out != s.rotate { s.c * 9 } else { 9 };
    // From one row's filters to the next's: the other index.
    let step = if stride == 9 { s.c * 9 } else { 9 };
    // 16 columns at a time, walking the rows: where the lanes are 9·C floats apart, each
    // lane then reads its weights in order (16 sequential streams).
    let mut col0 = 0;
    while col0 < s.cols {
        let lanes = LANES.min(s.cols - col0);
        for r in r0..r1 {
            let (out_ch, in_ch) = if col_is_out { (col0, r) } else { (r, col0) };
            let (ki, ci) = if s.rotate {
                (in_ch, out_ch)
            } else {
                (out_ch, in_ch)
            };
            let src = &w[(ki * s.c + ci) * 9..];
            shuffle::prefetch_taps(src, stride, lanes, fused::PREFETCH_STEPS * step);
            shuffle::gather_taps(s.fast, src, stride, lanes, s.rotate, &mut taps);
            let g = |i: usize, j: usize| taps[3 * i + j];
            // G g (6×3): along the filter's rows, for each column j.
            for j in 0..3 {
                filter_1d(&[g(0, j), g(1, j), g(2, j)], &mut out);
                for a in 0..A {
                    gg[a][j] = out[a];
                }
            }
            // (G g) Gᵀ (6×6): along each row a.
            let at = (r - r0) * s.cols + col0;
            for a in 0..A {
                filter_1d(&gg[a], &mut out);
                for b in 0..A {
                    wide::store_lanes(&out[b], &mut part[a * A + b][at..at + lanes]);
                }
            }
        }
        col0 += LANES;
    }
}

crate::multiversion! {
    fn filter_rows(w: &[f32], s: &FilterSpec, r0: usize, r1: usize, part: &mut [&mut [f32]]) {
        filter_rows_body(w, s, r0, r1, part)
    }
}

/// `G g` over 16 lanes.
#[inline(always)]
fn filter_1d(g: &[[f32; LANES]; 3], out: &mut [[f32; LANES]; A]) {
    for l in 0..LANES {
        let (g0, g1, g2) = (g[0][l], g[1][l], g[2][l]);
        out[0][l] = g0 / 4.0;
        out[1][l] = -(g0 + g1 + g2) / 6.0;
        out[2][l] = -(g0 - g1 + g2) / 6.0;
        out[3][l] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
        out[4][l] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
        out[5][l] = g2;
    }
}

/// `Bᵀ d` over 16 lanes.
#[inline(always)]
fn input_1d(d: &[[f32; LANES]; A], out: &mut [[f32; LANES]; A]) {
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        out[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        out[1][l] = -4.0 * d1 - 4.0 * d2 + d3 + d4;
        out[2][l] = 4.0 * d1 - 4.0 * d2 - d3 + d4;
        out[3][l] = -2.0 * d1 - d2 + 2.0 * d3 + d4;
        out[4][l] = 2.0 * d1 - d2 - 2.0 * d3 + d4;
        out[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// `Aᵀ m` over 16 lanes.
#[inline(always)]
fn output_1d(m: &[[f32; LANES]; A], out: &mut [[f32; LANES]; MO]) {
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4, m5) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]);
        out[0][l] = m0 + m1 + m2 + m3 + m4;
        out[1][l] = m1 - m2 + 2.0 * (m3 - m4);
        out[2][l] = m1 + m2 + 4.0 * (m3 + m4);
        out[3][l] = m1 - m2 + 8.0 * (m3 - m4) + m5;
    }
}

// The transforms are separable: first along the rows of a tile (i), vectorised over the input
// columns q, then along its columns (j), vectorised over tiles. In the second step a tile row's
// data sits at `4·tw + j` in a buffer whose tile rows are `4·(tw_count + 1)` apart, so over
// all the tile rows of a block the tiles are at `4·s + j` for a "slot" s = row·(tw+1) + tw: one
// uniform stride-4 pattern (the compiler turns the fixed 66-float windows into shuffles) and
// full 16-lane steps even for 2-tile-wide maps. The one extra slot per tile row is computed and
// never written out (its V column only meets its own M column in the GEMMs).

/// Step 1 of the input transform: `w[a·w_ld + q] = Σ_i Bᵀ[a][i] · rows[i·row_len + q]` for
/// `q < width`.
#[inline(always)]
fn input_cols_body(rows: &[f32], row_len: usize, width: usize, w: &mut [f32], w_ld: usize) {
    let r: [&[f32]; A] = std::array::from_fn(|i| &rows[i * row_len..][..width]);
    for q in 0..width {
        let (d0, d1, d2, d3, d4, d5) = (r[0][q], r[1][q], r[2][q], r[3][q], r[4][q], r[5][q]);
        w[q] = 4.0 * d0 - 5.0 * d2 + d4;
        w[w_ld + q] = -4.0 * d1 - 4.0 * d2 + d3 + d4;
        w[2 * w_ld + q] = 4.0 * d1 - 4.0 * d2 - d3 + d4;
        w[3 * w_ld + q] = -2.0 * d1 - d2 + 2.0 * d3 + d4;
        w[4 * w_ld + q] = 2.0 * d1 - d2 - 2.0 * d3 + d4;
        w[5 * w_ld + q] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// Step 2 of the input transform: slots `0..slots` of the 6 half-transformed rows `w` (slot s
/// at `4·s + j`) into `v[ξ·v_ld + s]`.
#[inline(always)]
fn input_tiles_body(w: &[f32], w_ld: usize, slots: usize, v: &mut [f32], v_ld: usize) {
    let fast = shuffle::fast();
    let mut d = [[0.0f32; LANES]; A];
    let mut lo = [[0.0f32; LANES]; MO];
    let mut out = [[0.0f32; LANES]; A];
    for a in 0..A {
        let mut s0 = 0;
        while s0 < slots {
            let win = &w[a * w_ld + MO * s0..][..STEP];
            // Columns 0..4 of the 16 tiles by one transpose; columns 4 and 5 of tile l are
            // columns 0 and 1 of tile l + 1 (and the window's last two floats).
            shuffle::deinterleave4(fast, &win[..MO * LANES], &mut lo);
            d[..MO].copy_from_slice(&lo);
            for j in 0..2 {
                d[MO + j][..LANES - 1].copy_from_slice(&lo[j][1..]);
                d[MO + j][LANES - 1] = win[MO * LANES + j];
            }
            input_1d(&d, &mut out);
            for b in 0..A {
                v[(a * A + b) * v_ld + s0..][..LANES].copy_from_slice(&out[b]);
            }
            s0 += LANES;
        }
    }
}

/// Step 1 of the output transform: slots `0..slots` of `m[ξ·m_ld + s]` into the 6 rows `z`
/// (`z[a·z_ld + 4·s + j] = Σ_b Aᵀ[j][b] · m[(6a + b)·m_ld + s]`).
#[inline(always)]
fn output_tiles_body(m: &[f32], m_ld: usize, slots: usize, z: &mut [f32], z_ld: usize) {
    let fast = shuffle::fast();
    let mut mm = [[0.0f32; LANES]; A];
    let mut out = [[0.0f32; LANES]; MO];
    for a in 0..A {
        let mut s0 = 0;
        while s0 < slots {
            for b in 0..A {
                mm[b].copy_from_slice(&m[(a * A + b) * m_ld + s0..][..LANES]);
            }
            output_1d(&mm, &mut out);
            shuffle::interleave4(fast, &out, &mut z[a * z_ld + MO * s0..][..MO * LANES]);
            s0 += LANES;
        }
    }
}

/// Step 2 of the output transform for one tile row: output row `i < rows` is
/// `act(Σ_a Aᵀ[i][a] · z[a·z_ld + q] + bias (+ res[i·stride + q]))` for `q < width`, written to
/// `y[i·stride + q]`. The residual is added to the rounded `… + bias`, as a separate add would.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_rows_body(
    z: &[f32],
    z_ld: usize,
    width: usize,
    bias: f32,
    relu: bool,
    y: &mut [f32],
    stride: usize,
    rows: usize,
    res: Option<&[f32]>,
) {
    let r: [&[f32]; A] = std::array::from_fn(|a| &z[a * z_ld..][..width]);
    // One loop per output row with the activation chosen outside it, so that each loop is a
    // plain vectorisable map over the columns (no closures: they would not inherit the
    // caller's target features and stay uninlined calls).
    for i in 0..rows {
        let yr = &mut y[i * stride..][..width];
        let rr = res.map(|rs| &rs[i * stride..][..width]);
        match i {
            0 => output_row::<0>(&r, yr, bias, relu, rr),
            1 => output_row::<1>(&r, yr, bias, relu, rr),
            2 => output_row::<2>(&r, yr, bias, relu, rr),
            _ => output_row::<3>(&r, yr, bias, relu, rr),
        }
    }
}

/// Row `I` of `Aᵀ m` for one column of the half-transformed tile.
#[inline(always)]
fn output_row_value<const I: usize>(m0: f32, m1: f32, m2: f32, m3: f32, m4: f32, m5: f32) -> f32 {
    match I {
        0 => m0 + m1 + m2 + m3 + m4,
        1 => m1 - m2 + 2.0 * (m3 - m4),
        2 => m1 + m2 + 4.0 * (m3 + m4),
        _ => m1 - m2 + 8.0 * (m3 - m4) + m5,
    }
}

/// `y[q] = act(row_I(z[·][q]) + bias (+ res[q]))` over the columns of one output row.
#[inline(always)]
fn output_row<const I: usize>(
    r: &[&[f32]; A],
    y: &mut [f32],
    bias: f32,
    relu: bool,
    res: Option<&[f32]>,
) {
    let n = y.len();
    // Six slice locals (not an array in memory) so that the stores to `y` cannot alias them.
    let (r0, r1, r2, r3, r4, r5) = (
        &r[0][..n],
        &r[1][..n],
        &r[2][..n],
        &r[3][..n],
        &r[4][..n],
        &r[5][..n],
    );
    match res {
        None => {
            for q in 0..n {
                let v = output_row_value::<I>(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q]) + bias;
                y[q] = if relu { v.max(0.0) } else { v };
            }
        }
        Some(rs) => {
            let rs = &rs[..n];
            for q in 0..n {
                let v = output_row_value::<I>(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q]) + bias;
                let v = v + rs[q];
                y[q] = if relu { v.max(0.0) } else { v };
            }
        }
    }
}

/// The input transform of one block: every channel's tile rows into `v[(ξ·cin + c)·ld + s]`.
#[inline(always)]
fn input_block_body(
    x: &[f32],
    g: &Geometry,
    blk: &Block,
    rows: &mut [f32],
    half: &mut [f32],
    v: &mut [f32],
    ld: usize,
) {
    let [ih, iw] = g.input;
    let p_in = ih * iw;
    let tw1 = g.tiles()[1] + 1;
    let row_stride = MO * tw1;
    let half_ld = half.len() / A;
    let rows_per_image = blk.th1 - blk.th0;
    let tile_rows = blk.images * rows_per_image;
    for c in 0..g.cin {
        for r in 0..tile_rows {
            let (ni, th) = (r / rows_per_image, blk.th0 + r % rows_per_image);
            let plane = &x[((blk.n0 + ni) * g.cin + c) * p_in..][..p_in];
            fill_rows(plane, th, g, rows, row_stride);
            input_cols_body(
                rows,
                row_stride,
                row_stride,
                &mut half[r * row_stride..],
                half_ld,
            );
        }
        input_tiles_body(half, half_ld, ld, &mut v[c * ld..], g.cin * ld);
    }
}

crate::multiversion! {
    fn input_block(x: &[f32], g: &Geometry, blk: &Block, rows: &mut [f32], half: &mut [f32], v: &mut [f32], ld: usize) {
        input_block_body(x, g, blk, rows, half, v, ld)
    }
}

/// The output transform of one block: `m[(ξ·cout + k)·ld + s]` into the block's output rows
/// (`out[image·cout + k]`), with the bias and ReLU.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_block_body(
    m: &[f32],
    g: &Geometry,
    blk: &Block,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    half: &mut [f32],
    out: &mut [&mut [f32]],
    ld: usize,
) {
    let [oh, ow] = g.out;
    let row_stride = MO * (g.tiles()[1] + 1);
    let half_ld = half.len() / A;
    let rows_per_image = blk.th1 - blk.th0;
    let tile_rows = blk.images * rows_per_image;
    for k in 0..g.cout {
        output_tiles_body(&m[k * ld..], g.cout * ld, ld, half, half_ld);
        let b = bias.map_or(0.0, |b| b[k]);
        for r in 0..tile_rows {
            let (ni, tr) = (r / rows_per_image, r % rows_per_image);
            let plane = &mut *out[ni * g.cout + k];
            let y0 = tr * MO;
            let rows_here = MO.min(plane.len() / ow - y0);
            // The residual is laid out like the whole output `y`.
            let res_rows = res.map(|rs| {
                let plane0 = ((blk.n0 + ni) * g.cout + k) * oh * ow;
                &rs[plane0 + (blk.th0 * MO + y0) * ow..]
            });
            output_rows_body(
                &half[r * row_stride..],
                half_ld,
                ow,
                b,
                relu,
                &mut plane[y0 * ow..],
                ow,
                rows_here,
                res_rows,
            );
        }
    }
}

crate::multiversion! {
    fn output_block(m: &[f32], g: &Geometry, blk: &Block, bias: Option<&[f32]>, res: Option<&[f32]>, relu: bool, half: &mut [f32], out: &mut [&mut [f32]], ld: usize) {
        output_block_body(m, g, blk, bias, res, relu, half, out, ld)
    }
}

/// The 6 input rows of tile row `th` of one channel `plane`, zero-padded: `rows[i·row_len + q]`
/// is input (4·th + i − pad₀, q − pad₁).
#[inline(always)]
fn fill_rows(plane: &[f32], th: usize, g: &Geometry, rows: &mut [f32], row_len: usize) {
    let [ih, iw] = g.input;
    for i in 0..A {
        let dst = &mut rows[i * row_len..][..row_len];
        let yy = (th * MO + i) as isize - g.pad[0] as isize;
        if yy < 0 || yy >= ih as isize {
            dst.fill(0.0);
            continue;
        }
        let src = &plane[yy as usize * iw..][..iw];
        let lo = g.pad[1].min(row_len);
        let hi = (iw + g.pad[1]).min(row_len);
        dst[..lo].fill(0.0);
        if hi > lo {
            dst[lo..hi].copy_from_slice(&src[lo - g.pad[1]..hi - g.pad[1]]);
        }
        dst[hi.max(lo)..].fill(0.0);
    }
}

/// A block of tiles: tile rows `th0..th1` of images `n0..n0 + images` (several images only
/// with whole planes).
#[derive(Debug, Clone, Copy)]
struct Block {
    n0: usize,
    images: usize,
    th0: usize,
    th1: usize,
}

/// The block plan: whole images per block when an image has few tiles, else bands of tile
/// rows. Depends on the geometry only (not on the thread count).
fn plan_blocks(g: &Geometry) -> Vec<Block> {
    let [th, tw] = g.tiles();
    let target = (BLOCK_FLOATS / (XI * (g.cin + g.cout))).max(MIN_BLOCK_SLOTS);
    let per_image = th * (tw + 1);
    let mut blocks = Vec::new();
    if per_image <= target {
        let per_block = (target / per_image).min(g.n.div_ceil(MIN_BLOCKS)).max(1);
        let mut n0 = 0;
        while n0 < g.n {
            let images = per_block.min(g.n - n0);
            blocks.push(Block {
                n0,
                images,
                th0: 0,
                th1: th,
            });
            n0 += images;
        }
    } else {
        // As few bands as fit the target, of equal height: 14 tile rows (56 px maps) are two
        // bands of 7, not 8 + 6, so two threads (batch 1) get the same work.
        let bands = th.div_ceil((target / (tw + 1)).max(1));
        let band = th.div_ceil(bands);
        for n in 0..g.n {
            let mut th0 = 0;
            while th0 < th {
                let th1 = (th0 + band).min(th);
                blocks.push(Block {
                    n0: n,
                    images: 1,
                    th0,
                    th1,
                });
                th0 = th1;
            }
        }
    }
    blocks
}

/// Splits `y` (`[n][cout][oh·ow]`) into each block's output: one slice per (image, channel)
/// holding the block's rows.
fn split_outputs<'y>(y: &'y mut [f32], blocks: &[Block], g: &Geometry) -> Vec<Vec<&'y mut [f32]>> {
    let [oh, ow] = g.out;
    let p_out = oh * ow;
    let band_rows = |b: &Block| ((b.th1 - b.th0) * MO).min(oh - b.th0 * MO);
    let mut outs: Vec<Vec<&mut [f32]>> = blocks.iter().map(|_| Vec::new()).collect();
    let mut bi = 0;
    for (n, image) in y[..g.n * g.cout * p_out]
        .chunks_mut(g.cout * p_out)
        .enumerate()
    {
        while blocks[bi].n0 + blocks[bi].images <= n {
            bi += 1;
        }
        let mut last = bi;
        while last + 1 < blocks.len() && blocks[last + 1].n0 == n {
            last += 1;
        }
        for plane in image.chunks_mut(p_out) {
            if blocks[bi].images > 1 || bi == last {
                outs[bi].push(plane);
                continue;
            }
            let mut rest = plane;
            for b in bi..=last {
                let (head, tail) = rest.split_at_mut(band_rows(&blocks[b]) * ow);
                outs[b].push(head);
                rest = tail;
            }
        }
        if blocks[bi].images == 1 {
            bi = last;
        }
    }
    outs
}

/// `y = act(conv3x3(x) + bias + res)`: `x` `[n][cin][input]`, `u` the transformed filters
/// ([`transform_filter`], `[36][cout][cin]`), `res` (a residual connection, added after the
/// bias as a separate add would) and `y` `[n][cout][out]` (every element written).
pub fn conv3x3(
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    relu: bool,
    g: &Geometry,
    y: &mut [f32],
) {
    g.check_operands(x, u.len(), bias, res, y);
    let [oh, ow] = g.out;
    if g.n == 0 || oh * ow == 0 || g.cout == 0 {
        return;
    }
    let blocks = plan_blocks(g);
    let outs = split_outputs(y, &blocks, g);
    let [_, tw] = g.tiles();
    let row_stride = MO * (tw + 1);
    let isa = super::isa();
    // Fewer blocks than threads (small batches: one block at batch 1 on 28 px maps): the
    // block's 36 GEMMs run in parallel instead, each still on one thread (same results).
    let gemms_parallel = blocks.len() < crate::parallel::num_threads();
    let run = |(blk, mut out): (Block, Vec<&mut [f32]>)| {
        // Slots (tw + 1 per tile row) padded to whole 16-lane steps: the GEMMs' column count.
        let slots = (blk.images * (blk.th1 - blk.th0) * (tw + 1)).next_multiple_of(LANES);
        // Half-transformed rows: 6 of them, each holding every tile row of the block, padded so
        // that the last 16-slot step's window stays inside.
        let mut half = PooledVec::<f32>::take(A * (MO * slots + STEP));
        half.fill(0.0);
        let mut rows = PooledVec::<f32>::take(A * row_stride);
        let mut v = PooledVec::<f32>::take(XI * g.cin * slots);
        let mut m = PooledVec::<f32>::take(XI * g.cout * slots);
        input_block(x, g, &blk, &mut rows, &mut half, &mut v, slots);
        let gemm = |xi: usize, mx: &mut [f32]| {
            sgemm_isa(
                isa,
                1,
                g.cout,
                slots,
                g.cin,
                &u[xi * g.cout * g.cin..],
                g.cin,
                1,
                &v[xi * g.cin * slots..],
                slots,
                1,
                mx,
                slots,
                false,
                Epilogue::default(),
            )
        };
        let planes = &mut m[..XI * g.cout * slots];
        if gemms_parallel {
            planes
                .par_chunks_mut(g.cout * slots)
                .enumerate()
                .for_each(|(xi, mx)| gemm(xi, mx));
        } else {
            planes
                .chunks_mut(g.cout * slots)
                .enumerate()
                .for_each(|(xi, mx)| gemm(xi, mx));
        }
        output_block(&m, g, &blk, bias, res, relu, &mut half, &mut out, slots);
    };
    let jobs: Vec<_> = blocks.into_iter().zip(outs).collect();
    if jobs.len() > 1 && crate::parallel::num_threads() > 1 {
        jobs.into_par_iter().for_each(run);
    } else {
        jobs.into_iter().for_each(run);
    }
}

mod fused;
mod shuffle;
mod wgrad;
mod wide;
pub use fused::filters_by_blocks;
pub use wgrad::weight_grad;
pub use wide::{conv3x3_wide, wide_filter_panels, WideFilters};

#[cfg(test)]
mod tests;
