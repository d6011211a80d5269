//! Fused fast paths for the usual training input: geometry (crop, resize, flip) resampled
//! straight from the decoded 8-bit image into planar f32 `[C, H, W]`, colour jitter done in
//! float in at most two passes over that buffer, and the result written into a slice the caller
//! owns (a slot of a batch tensor, see `Dataset::map_batch_seeded`).
//!
//! The loops are plain safe Rust compiled with AVX-512 (or AVX2) where the CPU has it (see
//! `multiversion!`); every helper they call is `#[inline(always)]` so it is compiled the same
//! way.
//!
//! Semantics are those of torchvision's float ops (`adjust_brightness`, `adjust_contrast`,
//! `adjust_saturation`, `adjust_hue`): checked against fixtures written by torchvision
//! (`reference/make_jitter_fixtures.py`) and against straightforward per-pixel code in tests.

use crate::image::{axis_weights, AxisWeights, Filter, Image, Normalize};
use crate::{Error, Result};
use ferrovision_tensor::multiversion;
use ferrovision_tensor::rng::Rng;

/// Grey level weights of torchvision's and TensorFlow's `rgb_to_grayscale` (used by contrast
/// and saturation).
pub const GREY: [f32; 3] = [0.2989, 0.587, 0.114];

/// Pixels per block of the jitter passes: every op runs over a block while it sits in L1.
const BLOCK: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

/// Resamples the window `[x0, y0, x1, y1)` (continuous pixel coordinates, inside the image) of
/// an 8-bit image to `out_w x out_h`, writing planar f32 `[C, out_h, out_w]` scaled to [0, 1]
/// into `out`. Bilinear with antialiasing when shrinking, with exactly the weights of
/// [`Image::resize`] and `Augment`'s geometry; `flip_x`/`flip_y` mirror the result.
///
/// Vertical pass first (contiguous, vectorised over the window's row), then the horizontal
/// pass per output row, which writes the three planes directly.
#[allow(clippy::too_many_arguments)]
pub fn resample_to_chw(
    img: &Image<u8>,
    window: [f64; 4],
    out_w: usize,
    out_h: usize,
    flip_x: bool,
    flip_y: bool,
    out: &mut [f32],
) -> Result<()> {
    let c = img.channels;
    let [x0, y0, x1, y1] = window;
    if out_w == 0 || out_h == 0 || img.width == 0 || img.height == 0 || c == 0 {
        return Err(Error::invalid(
            "resample_to_chw",
            format!(
                "cannot resample {}x{}x{c} to {out_w}x{out_h}",
                img.width, img.height
            ),
        ));
    }
    if !(x0 >= -1e-6
        && y0 >= -1e-6
        && x1 <= img.width as f64 + 1e-6
        && y1 <= img.height as f64 + 1e-6
        && x1 > x0
        && y1 > y0)
    {
        return Err(Error::invalid(
            "resample_to_chw",
            format!(
                "window {window:?} is empty or leaves the {}x{} image",
                img.width, img.height
            ),
        ));
    }
    if out.len() != c * out_w * out_h {
        return Err(Error::invalid(
            "resample_to_chw",
            format!(
                "output holds {} values, {c}x{out_h}x{out_w} needs {}",
                out.len(),
                c * out_w * out_h
            ),
        ));
    }
    let xw = axis_weights(img.width, x0, x1 - x0, out_w, Filter::Bilinear, flip_x);
    let mut yw = axis_weights(img.height, y0, y1 - y0, out_h, Filter::Bilinear, flip_y);
    // Fold the 1/255 range conversion into the vertical weights.
    yw.w.iter_mut().for_each(|v| *v *= 1.0 / 255.0);
    let cmin = *xw.start.iter().min().expect("out_w > 0");
    let cmax = xw
        .start
        .iter()
        .zip(&xw.len)
        .map(|(s, l)| s + l)
        .max()
        .expect("out_w > 0");
    let span = cmax - cmin;
    // Zero tail so the horizontal pass can always read `taps` pixels (their weights are 0).
    let mut row = vec![0f32; (span + xw.taps) * c];
    resample_rows(img, &xw, &yw, cmin, cmax, &mut row, out_w, out_h, out);
    Ok(())
}

multiversion! {
#[allow(clippy::too_many_arguments)]
fn resample_rows(
    img: &Image<u8>,
    xw: &AxisWeights,
    yw: &AxisWeights,
    cmin: usize,
    cmax: usize,
    row: &mut [f32],
    out_w: usize,
    out_h: usize,
    out: &mut [f32],
) {
    let c = img.channels;
    let plane = out_w * out_h;
    let span = cmax - cmin;
    for oy in 0..out_h {
        let (s, n) = (yw.start[oy], yw.len[oy]);
        let wts = &yw.w[oy * yw.taps..oy * yw.taps + n];
        vertical(img, s, wts, cmin * c, cmax * c, &mut row[..span * c]);
        horizontal(row, xw, cmin, c, plane, oy * out_w, out_w, out);
    }
}
}

/// `row = sum_k wts[k] * img[s + k][lo..hi]` (u8 to f32).
#[inline(always)]
fn vertical(img: &Image<u8>, s: usize, wts: &[f32], lo: usize, hi: usize, row: &mut [f32]) {
    let stride = img.width * img.channels;
    let first = &img.data[s * stride + lo..s * stride + hi];
    let w0 = wts[0];
    for (d, &v) in row.iter_mut().zip(first) {
        *d = v as f32 * w0;
    }
    for (k, &wk) in wts.iter().enumerate().skip(1) {
        let src = &img.data[(s + k) * stride + lo..(s + k) * stride + hi];
        for (d, &v) in row.iter_mut().zip(src) {
            *d += v as f32 * wk;
        }
    }
}

/// The horizontal pass of one output row `o / out_w`, written to every plane of `out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn horizontal(
    row: &[f32],
    xw: &AxisWeights,
    cmin: usize,
    c: usize,
    plane: usize,
    o: usize,
    out_w: usize,
    out: &mut [f32],
) {
    if c == 3 {
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let (r, g, b) = (
            &mut r[o..o + out_w],
            &mut g[o..o + out_w],
            &mut b[o..o + out_w],
        );
        match xw.taps {
            3 => h3::<3>(row, xw, cmin, r, g, b),
            4 => h3::<4>(row, xw, cmin, r, g, b),
            5 => h3::<5>(row, xw, cmin, r, g, b),
            6 => h3::<6>(row, xw, cmin, r, g, b),
            7 => h3::<7>(row, xw, cmin, r, g, b),
            8 => h3::<8>(row, xw, cmin, r, g, b),
            _ => h_any(row, xw, cmin, 3, plane, o, out_w, out),
        }
    } else {
        h_any(row, xw, cmin, c, plane, o, out_w, out);
    }
}

/// Three interleaved channels, `T` taps per output pixel (unused taps have weight 0).
#[inline(always)]
fn h3<const T: usize>(
    row: &[f32],
    xw: &AxisWeights,
    cmin: usize,
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    for (ox, ((r, g), b)) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()).enumerate() {
        let s = (xw.start[ox] - cmin) * 3;
        // The zero tail of `row` holds `T` pixels, so this never runs past its end.
        let p = &row[s..s + 3 * T];
        let w = &xw.w[ox * T..ox * T + T];
        let (mut ar, mut ag, mut ab) = (0f32, 0f32, 0f32);
        for k in 0..T {
            ar += p[3 * k] * w[k];
            ag += p[3 * k + 1] * w[k];
            ab += p[3 * k + 2] * w[k];
        }
        *r = ar;
        *g = ag;
        *b = ab;
    }
}

/// Any channel count, any number of taps.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn h_any(
    row: &[f32],
    xw: &AxisWeights,
    cmin: usize,
    c: usize,
    plane: usize,
    o: usize,
    out_w: usize,
    out: &mut [f32],
) {
    let t = xw.taps;
    for ox in 0..out_w {
        let s = xw.start[ox] - cmin;
        let w = &xw.w[ox * t..ox * t + t];
        for ch in 0..c {
            let mut a = 0f32;
            for (k, &wk) in w.iter().enumerate() {
                a += row[(s + k) * c + ch] * wk;
            }
            out[ch * plane + o + ox] = a;
        }
    }
}

/// Converts an 8-bit interleaved image to planar f32 `[C, H, W]` in [0, 1] (no resampling).
pub fn u8_to_chw(img: &Image<u8>, out: &mut [f32]) -> Result<()> {
    let (c, plane) = (img.channels, img.width * img.height);
    if out.len() != c * plane {
        return Err(Error::invalid(
            "u8_to_chw",
            format!("output holds {} values, image has {}", out.len(), c * plane),
        ));
    }
    u8_to_chw_body(img, out);
    Ok(())
}

multiversion! {
fn u8_to_chw_body(img: &Image<u8>, out: &mut [f32]) {
    let (c, plane) = (img.channels, img.width * img.height);
    if c == 3 {
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (((r, g), b), px) in r
            .iter_mut()
            .zip(g.iter_mut())
            .zip(b.iter_mut())
            .zip(img.data.chunks_exact(3))
        {
            *r = px[0] as f32 * (1.0 / 255.0);
            *g = px[1] as f32 * (1.0 / 255.0);
            *b = px[2] as f32 * (1.0 / 255.0);
        }
        return;
    }
    for (ch, o) in out.chunks_exact_mut(plane.max(1)).enumerate() {
        for (d, px) in o.iter_mut().zip(img.data.chunks_exact(c)) {
            *d = px[ch] as f32 * (1.0 / 255.0);
        }
    }
}
}

/// `x * (1 / std[c]) - mean[c] / std[c]` per plane (missing entries: mean 0, std 1).
pub fn normalize_chw(out: &mut [f32], channels: usize, norm: &Normalize) {
    normalize_body(out, channels, norm);
}

multiversion! {
fn normalize_body(out: &mut [f32], channels: usize, norm: &Normalize) {
    let plane = out.len() / channels.max(1);
    for (ch, o) in out.chunks_exact_mut(plane.max(1)).enumerate() {
        let m = norm.mean.get(ch).copied().unwrap_or(0.0);
        let sd = norm.std.get(ch).copied().unwrap_or(1.0);
        let (scale, shift) = (1.0 / sd, -m / sd);
        for v in o.iter_mut() {
            *v = *v * scale + shift;
        }
    }
}
}

// ---------------------------------------------------------------------------------------------
// Colour jitter
// ---------------------------------------------------------------------------------------------

/// One adjustment of a colour jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JitterStep {
    /// `clamp(x * f, 0, 1)`.
    Brightness(f32),
    /// `clamp(f * x + (1 - f) * m, 0, 1)`, `m` the mean grey level of the whole image at this
    /// point of the chain (mean of all values for one channel).
    Contrast(f32),
    /// `clamp(f * x + (1 - f) * grey, 0, 1)` per pixel, `grey` = [`GREY`] weights.
    Saturation(f32),
    /// Hue shift by `d` turns through HSV (torchvision's `_rgb2hsv`/`_hsv2rgb`).
    Hue(f32),
}

/// The adjustments drawn for one image, in the order they apply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Jitter {
    /// Steps in order (ops with strength 0 are left out).
    pub steps: Vec<JitterStep>,
}

impl Jitter {
    /// Draws like torchvision's `ColorJitter`: a random order of the four adjustments, then
    /// factors from `[max(0, 1 - x), 1 + x]` and a hue shift from `[-hue, hue]`. The draws do
    /// not depend on which strengths are 0, so the generator advances the same way always.
    pub fn draw(brightness: f32, contrast: f32, saturation: f32, hue: f32, rng: &mut Rng) -> Self {
        let uni = |rng: &mut Rng, a: f32, b: f32| a + (b - a) * rng.next_f32();
        let mut order = [0usize, 1, 2, 3];
        for i in (1..4).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let b = uni(rng, (1.0 - brightness).max(0.0), 1.0 + brightness);
        let c = uni(rng, (1.0 - contrast).max(0.0), 1.0 + contrast);
        let s = uni(rng, (1.0 - saturation).max(0.0), 1.0 + saturation);
        let h = uni(rng, -hue, hue);
        let steps = order
            .iter()
            .filter_map(|k| match k {
                0 if brightness > 0.0 => Some(JitterStep::Brightness(b)),
                1 if contrast > 0.0 => Some(JitterStep::Contrast(c)),
                2 if saturation > 0.0 => Some(JitterStep::Saturation(s)),
                3 if hue > 0.0 => Some(JitterStep::Hue(h)),
                _ => None,
            })
            .collect();
        Jitter { steps }
    }
}

/// Applies `jitter` in place to planar f32 `[C, H, W]` data in [0, 1] with `channels` 1 or 3
/// (saturation and hue leave one channel alone). One pass over the image, or two when a
/// contrast step needs the mean of the image as the steps before it left it.
pub fn jitter_chw(data: &mut [f32], channels: usize, jitter: &Jitter) -> Result<()> {
    if channels != 1 && channels != 3 {
        return Err(Error::invalid(
            "jitter_chw",
            format!("needs 1 or 3 channels, got {channels}"),
        ));
    }
    if !data.len().is_multiple_of(channels) {
        return Err(Error::invalid(
            "jitter_chw",
            format!("{} values do not split into {channels} planes", data.len()),
        ));
    }
    let plane = data.len() / channels;
    if plane == 0 || jitter.steps.is_empty() {
        return Ok(());
    }
    jitter_body(data, channels, plane, &jitter.steps);
    Ok(())
}

multiversion! {
fn jitter_body(data: &mut [f32], channels: usize, plane: usize, steps: &[JitterStep]) {
    let split = steps
        .iter()
        .position(|s| matches!(s, JitterStep::Contrast(_)));
    let (before, after) = steps.split_at(split.unwrap_or(steps.len()));
    if channels == 1 {
        let mut sum = 0f64;
        for x in data.chunks_mut(BLOCK) {
            for s in before {
                step1(s, x, 0.0);
            }
            if split.is_some() {
                sum += block_sum(x, x, x, [1.0, 0.0, 0.0]) as f64;
            }
        }
        if !after.is_empty() {
            let mean = (sum / plane as f64) as f32;
            for x in data.chunks_mut(BLOCK) {
                for s in after {
                    step1(s, x, mean);
                }
            }
        }
        return;
    }
    let (r, rest) = data.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let mut sum = 0f64;
    for ((r, g), b) in r
        .chunks_mut(BLOCK)
        .zip(g.chunks_mut(BLOCK))
        .zip(b.chunks_mut(BLOCK))
    {
        for s in before {
            step3(s, r, g, b, 0.0);
        }
        if split.is_some() {
            sum += block_sum(r, g, b, GREY) as f64;
        }
    }
    if !after.is_empty() {
        let mean = (sum / plane as f64) as f32;
        for ((r, g), b) in r
            .chunks_mut(BLOCK)
            .zip(g.chunks_mut(BLOCK))
            .zip(b.chunks_mut(BLOCK))
        {
            for s in after {
                step3(s, r, g, b, mean);
            }
        }
    }
}
}

/// `sum_i (k0 r_i + k1 g_i + k2 b_i)` with 16 partial sums (a vectorisable reduction).
#[inline(always)]
fn block_sum(r: &[f32], g: &[f32], b: &[f32], k: [f32; 3]) -> f32 {
    let mut acc = [0f32; 16];
    let n = r.len() / 16 * 16;
    for ((r, g), b) in r[..n]
        .chunks_exact(16)
        .zip(g[..n].chunks_exact(16))
        .zip(b[..n].chunks_exact(16))
    {
        for i in 0..16 {
            acc[i] += r[i] * k[0] + g[i] * k[1] + b[i] * k[2];
        }
    }
    let mut total: f32 = acc.iter().sum();
    for i in n..r.len() {
        total += r[i] * k[0] + g[i] * k[1] + b[i] * k[2];
    }
    total
}

#[inline(always)]
fn step1(s: &JitterStep, x: &mut [f32], mean: f32) {
    match *s {
        JitterStep::Brightness(f) => x.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
        JitterStep::Contrast(f) => {
            let m = (1.0 - f) * mean;
            x.iter_mut().for_each(|v| *v = (f * *v + m).clamp(0.0, 1.0))
        }
        JitterStep::Saturation(_) | JitterStep::Hue(_) => {}
    }
}

#[inline(always)]
fn step3(s: &JitterStep, r: &mut [f32], g: &mut [f32], b: &mut [f32], mean: f32) {
    match *s {
        JitterStep::Brightness(f) => {
            for x in [r, g, b] {
                x.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0));
            }
        }
        JitterStep::Contrast(f) => {
            let m = (1.0 - f) * mean;
            for x in [r, g, b] {
                x.iter_mut().for_each(|v| *v = (f * *v + m).clamp(0.0, 1.0));
            }
        }
        JitterStep::Saturation(f) => {
            let k = 1.0 - f;
            for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
                let grey = (*r * GREY[0] + *g * GREY[1] + *b * GREY[2]) * k;
                *r = (f * *r + grey).clamp(0.0, 1.0);
                *g = (f * *g + grey).clamp(0.0, 1.0);
                *b = (f * *b + grey).clamp(0.0, 1.0);
            }
        }
        JitterStep::Hue(d) => {
            for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
                (*r, *g, *b) = hue_shift(*r, *g, *b, d);
            }
        }
    }
}

/// Shifts the hue of one RGB pixel (values in [0, 1]) by `d` turns, branch-free so that it
/// vectorises. The formula is torchvision's:
///
/// RGB to HSV: `v = max`, `c = max - min`, `s = c / max` (0 when `c = 0`), `rc = (v - r) / c`
/// (likewise `gc`, `bc`; divisor 1 when `c = 0`), `h6 = bc - gc` if `v = r`, else `2 + rc - bc`
/// if `v = g`, else `4 + gc - rc`; `h = (h6 / 6 + 1) mod 1`.
/// Shift: `h' = (h + d) - floor(h + d)`.
/// HSV to RGB: `i = floor(6 h') mod 6`, `f = 6 h' - floor(6 h')`, `p = v (1 - s)`,
/// `q = v (1 - s f)`, `t = v (1 - s (1 - f))` (each clamped to [0, 1]) and (r, g, b) =
/// `(v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)` for `i = 0..5`.
#[inline(always)]
pub fn hue_shift(r: f32, g: f32, b: f32, d: f32) -> (f32, f32, f32) {
    let v = r.max(g).max(b);
    let mn = r.min(g).min(b);
    let eq = v == mn;
    let cr = v - mn;
    let s = cr / if eq { 1.0 } else { v };
    let div = if eq { 1.0 } else { cr };
    let rc = (v - r) / div;
    let gc = (v - g) / div;
    let bc = (v - b) / div;
    let h6 = if v == r {
        bc - gc
    } else if v == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    // h6 / 6 + 1 lies in [5/6, 7/6], so `mod 1` is one conditional subtraction (exact).
    let h1 = h6 / 6.0 + 1.0;
    let h = if h1 >= 1.0 { h1 - 1.0 } else { h1 };
    let hd = h + d;
    let h = hd - hd.floor();
    let h6 = h * 6.0;
    let fl = h6.floor();
    let f = h6 - fl;
    // h is in [0, 1] so floor(6 h) is in 0..=6; 6 is sector 0.
    let i = if fl >= 6.0 { fl - 6.0 } else { fl };
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    let ro = if (i == 0.0) | (i == 5.0) {
        v
    } else if i == 1.0 {
        q
    } else if i == 4.0 {
        t
    } else {
        p
    };
    let go = if (i == 1.0) | (i == 2.0) {
        v
    } else if i == 0.0 {
        t
    } else if i == 3.0 {
        q
    } else {
        p
    };
    let bo = if (i == 3.0) | (i == 4.0) {
        v
    } else if i == 2.0 {
        t
    } else if i == 5.0 {
        q
    } else {
        p
    };
    (ro, go, bo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::resample_flip;

    fn test_image(w: usize, h: usize, c: usize, seed: u64) -> Image<u8> {
        let mut rng = Rng::new(seed);
        let data = (0..w * h * c).map(|_| rng.below(256) as u8).collect();
        Image::from_vec(w, h, c, data).unwrap()
    }

    /// Planar copy of an interleaved f32 image.
    fn planar(img: &Image<f32>) -> Vec<f32> {
        let (c, n) = (img.channels, img.width * img.height);
        let mut out = vec![0f32; c * n];
        for i in 0..n {
            for ch in 0..c {
                out[ch * n + i] = img.data[i * c + ch];
            }
        }
        out
    }

    #[test]
    fn resample_matches_the_general_resampler() {
        // Shrinking (2x, 3.3x), growing, odd windows, flips, 1/3/4 channels: compare with
        // `resample_flip` on the f32 image (same weights, horizontal pass first).
        type Case = (usize, usize, usize, [f64; 4], usize, usize, bool, bool);
        let cases: &[Case] = &[
            (
                300,
                200,
                3,
                [10.0, 5.0, 290.0, 190.0],
                224,
                224,
                false,
                false,
            ),
            (300, 200, 3, [0.0, 0.0, 300.0, 200.0], 90, 60, true, false),
            (120, 90, 3, [3.0, 7.0, 80.0, 70.0], 224, 224, true, true),
            (500, 400, 3, [0.0, 0.0, 500.0, 400.0], 150, 120, false, true),
            (64, 48, 1, [2.0, 2.0, 60.0, 40.0], 31, 17, true, false),
            (64, 48, 4, [0.0, 1.0, 64.0, 47.0], 40, 50, false, false),
            (37, 23, 3, [0.5, 0.25, 36.5, 22.75], 113, 7, false, false),
            (1000, 30, 3, [0.0, 0.0, 1000.0, 30.0], 40, 30, false, false),
        ];
        for (k, &(w, h, c, win, ow, oh, fx, fy)) in cases.iter().enumerate() {
            let img = test_image(w, h, c, k as u64);
            let want = resample_flip(&img.to_f32(), win, ow, oh, Filter::Bilinear, fx, fy)
                .map(|i| planar(&i))
                .unwrap();
            let mut got = vec![f32::NAN; c * ow * oh];
            resample_to_chw(&img, win, ow, oh, fx, fy, &mut got).unwrap();
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max < 2e-6, "case {k}: max diff {max}");
        }
    }

    #[test]
    fn resample_rejects_bad_arguments() {
        let img = test_image(20, 10, 3, 1);
        let mut out = vec![0f32; 3 * 8 * 8];
        let e = resample_to_chw(&img, [0.0, 0.0, 21.0, 10.0], 8, 8, false, false, &mut out);
        assert!(e.unwrap_err().to_string().contains("leaves"));
        let e = resample_to_chw(&img, [0.0, 0.0, 20.0, 10.0], 8, 7, false, false, &mut out);
        assert!(e.unwrap_err().to_string().contains("192 values"));
    }

    #[test]
    fn u8_to_chw_and_normalize() {
        let img = test_image(7, 5, 3, 3);
        let mut out = vec![0f32; 105];
        u8_to_chw(&img, &mut out).unwrap();
        assert_eq!(out, planar(&img.to_f32()));
        normalize_chw(&mut out, 3, &Normalize::imagenet());
        let want = img.to_tensor_chw(Some(&Normalize::imagenet())).unwrap();
        let want: Vec<f32> = want.to_vec().unwrap();
        let max = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-6, "{max}");
    }

    #[test]
    fn every_isa_level_gives_the_same_bits() {
        // No reassociation or FMA contraction happens without fast-math, so the AVX-512, AVX2
        // and baseline builds of the kernels must agree exactly.
        use ferrovision_tensor::kernels::{set_isa_override, Isa};
        let img = test_image(317, 211, 3, 8);
        let run = || {
            let mut out = vec![0f32; 3 * 224 * 224];
            let win = [5.0, 3.0, 300.0, 200.0];
            resample_to_chw(&img, win, 224, 224, true, false, &mut out).unwrap();
            let j = Jitter::draw(0.4, 0.4, 0.4, 0.1, &mut Rng::new(2));
            jitter_chw(&mut out, 3, &j).unwrap();
            normalize_chw(&mut out, 3, &Normalize::imagenet());
            let mut plain = vec![0f32; 3 * 317 * 211];
            u8_to_chw(&img, &mut plain).unwrap();
            (out, plain)
        };
        set_isa_override(Some(Isa::Scalar));
        let reference = run();
        for level in [Isa::Avx2, Isa::Avx512] {
            set_isa_override(Some(level));
            let got = run();
            set_isa_override(None);
            assert!(got == reference, "{level:?} differs from scalar");
        }
        set_isa_override(None);
    }

    /// torchvision's `_rgb2hsv` / `_hsv2rgb` written out with branches.
    fn hue_reference(r: f32, g: f32, b: f32, d: f32) -> (f32, f32, f32) {
        let (h, s, v) = crate::image::rgb_to_hsv(r, g, b);
        crate::image::hsv_to_rgb(h + d, s, v)
    }

    #[test]
    fn hue_shift_matches_hsv_round_trip() {
        let mut rng = Rng::new(9);
        let mut worst = 0f32;
        for i in 0..20000 {
            // Include ties (grey, two equal channels) and the extremes.
            let q = |rng: &mut Rng| {
                if i % 3 == 0 {
                    rng.below(4) as f32 / 3.0
                } else {
                    rng.next_f32()
                }
            };
            let (r, g, b) = (q(&mut rng), q(&mut rng), q(&mut rng));
            let d = rng.next_f32() - 0.5;
            let a = hue_shift(r, g, b, d);
            let e = hue_reference(r, g, b, d);
            worst = worst
                .max((a.0 - e.0).abs())
                .max((a.1 - e.1).abs())
                .max((a.2 - e.2).abs());
        }
        assert!(worst < 2e-6, "worst {worst}");
    }
}
