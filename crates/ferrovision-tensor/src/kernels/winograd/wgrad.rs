//! The weight gradient of a 3×3 stride-1 convolution by Winograd F(4×4, 3×3) (Lavin & Gray
//! 2016, §5; cuDNN's "nonfused Winograd" weight gradient works the same way).
//!
//! The forward pass computes each 4×4 output block as `Y = Aᵀ [U ⊙ V] A` with `U = G g Gᵀ` and
//! `V = Bᵀ d B`. Its gradient with respect to `U` is `(A dY Aᵀ) ⊙ V` summed over the tiles, so
//!
//! `dg = Gᵀ [Σ_t M̄_t ⊙ V_t] G`, with `M̄ = A dY Aᵀ` (6×6 from a 4×4 block of the output
//! gradient, zero past the output's edge),
//!
//! which over channels is again 36 GEMMs, now reducing over tiles:
//! `dU[ξ][k][c] = Σ_t M̄[t][ξ][k] · V[t][ξ][c]`. That is 36 multiplies per tile and channel
//! pair instead of 144. `V` is the forward input transform, in the whole-batch layout of
//! [`super::conv3x3_wide`] (one vector lane per channel).
//!
//! The batch is taken in chunks of whole images sized by the shape (not by the thread count):
//! per chunk both transforms run images in parallel, then the 36 GEMMs (tile positions in
//! parallel) add the chunk's sums to `dU`. Every `dU` element is summed by one task in a fixed
//! chunk order, so the result is the same for any number of threads.

use super::wide::{channels_last, input_image, lanes16, load_lanes, store_lanes};
use super::{Geometry, A, LANES, MO, XI};
use crate::kernels::gemm::{sgemm_isa, Epilogue};
use crate::parallel::prelude::*;
use crate::storage::pool::PooledVec;

/// Target floats of one chunk's `V` and `M̄` together (~8 MiB).
const CHUNK_FLOATS: usize = 2 << 20;

/// `dw[k][c][3][3]` (every element written) of the correlation with geometry `g`, from its
/// input `x` (`[n][cin][input]`) and output gradient `dy` (`[n][cout][out]`).
pub fn weight_grad(x: &[f32], dy: &[f32], g: &Geometry, dw: &mut [f32]) {
    weight_grad_chunked(x, dy, g, dw, CHUNK_FLOATS)
}

/// [`weight_grad`] with chunks of about `chunk_floats` floats of transformed data.
pub(super) fn weight_grad_chunked(
    x: &[f32],
    dy: &[f32],
    g: &Geometry,
    dw: &mut [f32],
    chunk_floats: usize,
) {
    let p_in = g.input[0] * g.input[1];
    let p_out = g.out[0] * g.out[1];
    let wlen = g.cout * g.cin * 9;
    assert!(
        x.len() >= g.n * g.cin * p_in && dy.len() >= g.n * g.cout * p_out && dw.len() >= wlen,
        "winograd weight gradient: operands too short"
    );
    if wlen == 0 {
        return;
    }
    if g.n == 0 || p_out == 0 {
        dw[..wlen].fill(0.0);
        return;
    }
    let [th, tw] = g.tiles();
    let per_image = th * tw;
    let chunk = (chunk_floats / (per_image * XI * (g.cin + g.cout))).clamp(1, g.n);
    let isa = crate::kernels::isa();
    // dU whole only where the blocks of `fused::weight_grad_blocks` are not taken.
    let whole_du = chunk < g.n || !super::fused::weight_grad_by_blocks(g, g.n * per_image);
    let mut du = PooledVec::<f32>::take(if whole_du { XI * g.cout * g.cin } else { 0 });
    let mut v = PooledVec::<f32>::take(chunk * per_image * XI * g.cin);
    let mut mb = PooledVec::<f32>::take(chunk * per_image * XI * g.cout);
    let mut n0 = 0;
    while n0 < g.n {
        let images = chunk.min(g.n - n0);
        let tiles = images * per_image;
        v[..tiles * XI * g.cin]
            .par_chunks_mut(per_image * XI * g.cin)
            .enumerate()
            .for_each(|(i, vn)| input_image(&x[(n0 + i) * g.cin * p_in..][..g.cin * p_in], g, vn));
        mb[..tiles * XI * g.cout]
            .par_chunks_mut(per_image * XI * g.cout)
            .enumerate()
            .for_each(|(i, mn)| {
                grad_image(&dy[(n0 + i) * g.cout * p_out..][..g.cout * p_out], g, mn)
            });
        let (v, mb) = (&v[..], &mb[..]);
        if !whole_du {
            // One chunk, and the filters outweigh the tiles: dU by blocks, never whole.
            return super::fused::weight_grad_blocks(mb, v, g, tiles, dw);
        }
        du.par_chunks_mut(g.cout * g.cin)
            .enumerate()
            .for_each(|(xi, du_xi)| {
                // dU[ξ] (cout × cin) += M̄[·][ξ]ᵀ · V[·][ξ], a sum over the chunk's tiles.
                sgemm_isa(
                    isa,
                    1,
                    g.cout,
                    g.cin,
                    tiles,
                    &mb[xi * g.cout..],
                    1,
                    XI * g.cout,
                    &v[xi * g.cin..],
                    XI * g.cin,
                    1,
                    du_xi,
                    g.cin,
                    n0 > 0,
                    Epilogue::default(),
                );
            });
        n0 += images;
    }
    let du = &du[..];
    dw[..wlen]
        .par_chunks_mut(g.cin * 9)
        .enumerate()
        .for_each(|(k, dwk)| filter_grad(&du[k * g.cin..], g.cout * g.cin, g.cin, dwk));
}

/// `A d` over 16 lanes (6 values from 4: the transpose of the output transform's `Aᵀ`).
#[inline(always)]
fn grad_1d(d: &[[f32; LANES]; MO], out: &mut [[f32; LANES]; A]) {
    for l in 0..LANES {
        let (d0, d1, d2, d3) = (d[0][l], d[1][l], d[2][l], d[3][l]);
        out[0][l] = d0;
        out[1][l] = d0 + d1 + d2 + d3;
        out[2][l] = d0 - d1 + d2 - d3;
        out[3][l] = d0 + 2.0 * d1 + 4.0 * d2 + 8.0 * d3;
        out[4][l] = d0 - 2.0 * d1 + 4.0 * d2 - 8.0 * d3;
        out[5][l] = d3;
    }
}

/// `Gᵀ u` over 16 lanes (3 values from 6: the transpose of the filter transform's `G`).
#[inline(always)]
fn filter_grad_1d(u: &[[f32; LANES]; A], out: &mut [[f32; LANES]; 3]) {
    for l in 0..LANES {
        let (u0, u1, u2, u3, u4, u5) = (u[0][l], u[1][l], u[2][l], u[3][l], u[4][l], u[5][l]);
        out[0][l] = u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0;
        out[1][l] = (u2 - u1) / 6.0 + (u3 - u4) / 12.0;
        out[2][l] = (u3 + u4 - u1 - u2) / 6.0 + u5;
    }
}

/// `M̄ = A dY Aᵀ` of one image's output gradient (`dy` `[cout][out]`) into
/// `m[(t·36 + ξ)·cout + k]` for its tiles `t`.
#[inline(always)]
fn grad_image_body(dy: &[f32], g: &Geometry, m: &mut [f32]) {
    let [oh, ow] = g.out;
    let [th, tw] = g.tiles();
    // Channel-last with whole 16-lane groups, as the input transform does.
    let cs = g.cout.next_multiple_of(LANES);
    let mut hwc = PooledVec::<f32>::take(oh * ow * cs);
    channels_last(dy, g.cout, oh * ow, cs, &mut hwc);
    let mut d = [[[0.0f32; LANES]; MO]; MO];
    let mut e = [[[0.0f32; LANES]; A]; MO];
    let mut col = [[0.0f32; LANES]; MO];
    let mut out = [[0.0f32; LANES]; A];
    for ty in 0..th {
        let rows = MO.min(oh - ty * MO);
        for tx in 0..tw {
            let cols = MO.min(ow - tx * MO);
            let tile = &mut m[(ty * tw + tx) * XI * g.cout..][..XI * g.cout];
            let mut k0 = 0;
            while k0 < g.cout {
                let lanes = LANES.min(g.cout - k0);
                // Gather the 4×4 blocks of 16 channels (zero past the output's edge).
                for i in 0..MO {
                    for j in 0..MO {
                        d[i][j] = if i < rows && j < cols {
                            let at = ((ty * MO + i) * ow + tx * MO + j) * cs + k0;
                            lanes16(&hwc[at..])
                        } else {
                            [0.0; LANES]
                        };
                    }
                }
                // A dY Aᵀ: along each row (j), then along each column (i).
                for i in 0..MO {
                    grad_1d(&d[i], &mut e[i]);
                }
                for b in 0..A {
                    for i in 0..MO {
                        col[i] = e[i][b];
                    }
                    grad_1d(&col, &mut out);
                    for a in 0..A {
                        store_lanes(&out[a], &mut tile[(a * A + b) * g.cout + k0..][..lanes]);
                    }
                }
                k0 += LANES;
            }
        }
    }
}

crate::multiversion! {
    fn grad_image(dy: &[f32], g: &Geometry, m: &mut [f32]) {
        grad_image_body(dy, g, m)
    }
}

/// `dw[k][c] = Gᵀ dU[·][k][c] G` for one output channel `k` and the input channels `c` of `dwk`
/// (`[c][3][3]`), 16 at a time; `du[ξ·plane + c]` is `dU[ξ][k][c]`.
#[inline(always)]
pub(super) fn filter_grad_body(du: &[f32], plane: usize, dwk: &mut [f32]) {
    let cin = dwk.len() / 9;
    let fast = super::shuffle::fast();
    let mut u = [[[0.0f32; LANES]; A]; A];
    let mut h = [[[0.0f32; LANES]; 3]; A];
    let mut col = [[0.0f32; LANES]; A];
    let mut out = [[0.0f32; LANES]; 3];
    let mut taps = [[0.0f32; LANES]; 9];
    let mut c0 = 0;
    while c0 < cin {
        let lanes = LANES.min(cin - c0);
        for a in 0..A {
            for b in 0..A {
                let src = &du[(a * A + b) * plane + c0..][..lanes];
                load_lanes(src, &mut u[a][b]);
            }
        }
        // Gᵀ dU G: along each row (b), then along each column (a).
        for a in 0..A {
            filter_grad_1d(&u[a], &mut h[a]);
        }
        for q in 0..3 {
            for a in 0..A {
                col[a] = h[a][q];
            }
            filter_grad_1d(&col, &mut out);
            for p in 0..3 {
                taps[p * 3 + q] = out[p];
            }
        }
        super::shuffle::scatter_taps(fast, &taps, lanes, &mut dwk[c0 * 9..]);
        c0 += LANES;
    }
}

crate::multiversion! {
    pub(super) fn filter_grad(du: &[f32], plane: usize, cin: usize, dwk: &mut [f32]) {
        filter_grad_body(du, plane, &mut dwk[..cin * 9])
    }
}
