//! Per-axis iteration shared by softmax, the class losses and normalisation: the
//! `[outer, C, inner]` view of a tensor around one axis ([`AxisDims`]), its split into
//! contiguous rows or position tiles, the engine's vectorisable `exp`, and lane-parallel f64
//! sums that keep long reductions accurate.

use crate::parallel::prelude::*;
use crate::{Result, Tensor};

// ----------------------------------------------------------------------------------------------
// Shared numeric helpers
// ----------------------------------------------------------------------------------------------

/// The engine's vectorisable `exp` (≤ 1 ulp, see `kernels::elementwise`).
pub(crate) use crate::kernels::elementwise::exp as fast_exp;

/// Maximum of a slice (`-inf` when empty); NaNs are skipped here, callers get NaN from the
/// later `exp(x - max)` anyway.
#[inline]
pub(crate) fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut it = x.chunks_exact(16);
    for v in &mut it {
        for i in 0..16 {
            acc[i] = if v[i] > acc[i] { v[i] } else { acc[i] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &a in acc.iter().chain(it.remainder()) {
        m = if a > m { a } else { m };
    }
    m
}

/// Sum of a slice in 16 f32 lanes, flushed into f64 every 4096 elements (fast and accurate).
#[inline]
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for chunk in x.chunks(4096) {
        let mut acc = [0.0f32; 16];
        let mut it = chunk.chunks_exact(16);
        for v in &mut it {
            for i in 0..16 {
                acc[i] += v[i];
            }
        }
        let mut t = 0.0f32;
        for &a in acc.iter().chain(it.remainder()) {
            t += a;
        }
        total += t as f64;
    }
    total
}

/// `Σ f(a_i, b_i)` over two equal-length slices, in 16 f32 lanes flushed into f64.
#[inline(always)]
pub(crate) fn sum2_f64(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut total = 0.0f64;
    for (ca, cb) in a.chunks(4096).zip(b.chunks(4096)) {
        let mut acc = [0.0f32; 16];
        let mut ia = ca.chunks_exact(16);
        let mut ib = cb.chunks_exact(16);
        for (va, vb) in (&mut ia).zip(&mut ib) {
            for i in 0..16 {
                acc[i] += f(va[i], vb[i]);
            }
        }
        let mut t = 0.0f32;
        for &x in &acc {
            t += x;
        }
        for (&x, &y) in ia.remainder().iter().zip(ib.remainder()) {
            t += f(x, y);
        }
        total += t as f64;
    }
    total
}

/// `Σ f(a_i)` in 16 f32 lanes flushed into f64.
#[inline(always)]
pub(crate) fn sum1_f64(a: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0.0f64;
    for ca in a.chunks(4096) {
        let mut acc = [0.0f32; 16];
        let mut ia = ca.chunks_exact(16);
        for va in &mut ia {
            for i in 0..16 {
                acc[i] += f(va[i]);
            }
        }
        let mut t = 0.0f32;
        for &x in acc.iter() {
            t += x;
        }
        for &x in ia.remainder() {
            t += f(x);
        }
        total += t as f64;
    }
    total
}

// ----------------------------------------------------------------------------------------------
// [outer, C, inner] tiling
// ----------------------------------------------------------------------------------------------

/// Largest tile (positions) of the `inner > 1` kernels; sizes their stack scratch arrays.
pub(crate) const MAX_BLOCK: usize = 512;

/// The `[outer, C, inner]` view of a shape around `axis`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AxisDims {
    pub outer: usize,
    pub c: usize,
    pub inner: usize,
}

impl AxisDims {
    pub(crate) fn new(shape: &[usize], axis: usize) -> Self {
        AxisDims {
            outer: shape[..axis].iter().product(),
            c: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }

    /// Positions (= outer · inner), each reduced over C values.
    pub(crate) fn positions(&self) -> usize {
        self.outer * self.inner
    }

    /// Tile width for the `inner > 1` kernels: the `C × block` tile stays around 32 KiB.
    pub(crate) fn block(&self) -> usize {
        let b = (8192 / self.c.max(1)).clamp(16, MAX_BLOCK) & !15;
        b.min(self.inner).max(1)
    }

    /// Offset of element (o, k, i).
    #[inline(always)]
    pub(crate) fn at(&self, o: usize, k: usize, i: usize) -> usize {
        (o * self.c + k) * self.inner + i
    }
}

/// One tile of an `[outer, C, inner]` output: outer index, first inner position, and the C
/// mutable row pieces (each `len` long) it owns.
pub(crate) struct Tile<'a, T = f32> {
    pub o: usize,
    pub i0: usize,
    pub len: usize,
    pub rows: Vec<&'a mut [T]>,
}

/// Splits a contiguous `[outer, C, inner]` buffer into disjoint tiles of `block` positions, so
/// tiles can be written in parallel without unsafe code.
pub(crate) fn split_tiles<T>(out: &mut [T], d: AxisDims, block: usize) -> Vec<Tile<'_, T>> {
    let nb = d.inner.div_ceil(block);
    let mut tiles: Vec<Tile<'_, T>> = Vec::with_capacity(d.outer * nb);
    if d.c == 0 || d.inner == 0 {
        return tiles;
    }
    for (o, plane) in out.chunks_mut(d.c * d.inner).enumerate() {
        let base = tiles.len();
        for j in 0..nb {
            let i0 = j * block;
            tiles.push(Tile {
                o,
                i0,
                len: block.min(d.inner - i0),
                rows: Vec::with_capacity(d.c),
            });
        }
        for row in plane.chunks_mut(d.inner) {
            for (j, piece) in row.chunks_mut(block).enumerate() {
                tiles[base + j].rows.push(piece);
            }
        }
    }
    tiles
}

/// Runs `f` over tiles, in parallel when the total work (`elems`) is worth it.
pub(crate) fn for_tiles<'a, T: Send>(
    tiles: Vec<Tile<'a, T>>,
    elems: usize,
    f: impl Fn(Tile<'a, T>) + Sync + Send,
) {
    if elems >= 1 << 15 && crate::parallel::num_threads() > 1 && tiles.len() > 1 {
        tiles.into_par_iter().for_each(f);
    } else {
        tiles.into_iter().for_each(f);
    }
}

/// Runs `f(first_row, rows_chunk)` over chunks of `row_len`-long rows of `out`, in parallel
/// when worth it.
pub(crate) fn for_rows(out: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    match super::par_chunk(out.len(), 1 << 14) {
        Some(chunk) => {
            let rows_per = chunk.div_ceil(row_len).max(1);
            out.par_chunks_mut(rows_per * row_len)
                .enumerate()
                .for_each(|(j, o)| f(j * rows_per, o));
        }
        None => f(0, out),
    }
}

/// Reads a tensor as a contiguous f32 copy-or-share: `self` detached when already dense,
/// otherwise a contiguous copy by the backend (so kernels and saved tensors can borrow one
/// slice).
pub(crate) fn dense(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.detach())
    } else {
        crate::backend::for_device(t.device(), "contiguous")?.contiguous("contiguous", t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_accuracy() {
        let mut worst = 0.0f64;
        let mut x = -103.0f32;
        while x < 88.7 {
            let e = fast_exp(x) as f64;
            let r = (x as f64).exp();
            // Relative error where the result is a normal float.
            if r > 1.2e-38 {
                worst = worst.max(((e - r) / r).abs());
            }
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst rel error {worst}");
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(-200.0), 0.0);
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(100.0), f32::INFINITY);
        assert!(fast_exp(f32::NAN).is_nan());
        assert!(fast_exp(88.7) > 3.0e38);
    }

    #[test]
    fn tiles_cover_everything_once() {
        let d = AxisDims {
            outer: 3,
            c: 5,
            inner: 37,
        };
        let mut buf = vec![0.0f32; 3 * 5 * 37];
        let tiles = split_tiles(&mut buf, d, 16);
        for_tiles(tiles, 0, |mut t| {
            for (k, r) in t.rows.iter_mut().enumerate() {
                for (i, v) in r.iter_mut().enumerate() {
                    *v += d.at(t.o, k, t.i0 + i) as f32 + 1.0;
                }
            }
        });
        for (i, v) in buf.iter().enumerate() {
            assert_eq!(*v, i as f32 + 1.0);
        }
    }
}
