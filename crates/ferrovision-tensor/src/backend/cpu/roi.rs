//! CPU RoI Align and RoI pooling kernels behind [`Backend::roi`](super::super::Backend::roi) and
//! `roi_backward` (torchvision's CPU arithmetic in f32).
//!
//! RoI Align precomputes, per region, every output bin's bilinear sampling points as four
//! `(offset in the plane, weight)` taps; the forward averages the tapped values per bin (regions
//! in parallel) and the backward spreads each bin's gradient over the same taps (feature planes
//! in parallel, so no two tasks write the same value). RoI pooling rounds the region to whole
//! pixels, takes each bin's maximum and returns the arg-max positions its backward scatters to.
//! The op file (`ops/roi.rs`) validates the feature map and regions and records.

use crate::autograd::Op;
use crate::ops::roi::{RoiAlignOpts, RoiPlan as Geometry};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Result, Tensor};

/// The options of a `RoiAlign` record (`None` for any other op).
fn align_opts(op: &Op) -> Option<RoiAlignOpts> {
    match *op {
        Op::RoiAlign {
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
        } => Some(RoiAlignOpts {
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
        }),
        _ => None,
    }
}

/// RoI Align or RoI pooling of `input` over the plan's regions: the `[K, C, out_h, out_w]`
/// output and, for pooling, the I64 arg-max offset within the plane per output (-1: empty bin).
pub(super) fn forward(op: &Op, g: &Geometry, input: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    if let Some(opts) = align_opts(op) {
        return Ok((roi_align(input, g, opts)?, None));
    }
    let Op::RoiPool {
        output_size,
        spatial_scale,
    } = *op
    else {
        return Err(super::not_in_family(op, "RoI"));
    };
    let (y, arg) = roi_pool(input, g, output_size, spatial_scale)?;
    Ok((y, Some(arg)))
}

/// The feature-map gradient `[N, C, H, W]` of RoI Align or RoI pooling for the output gradient
/// `g_out`; `argmax` is the pooling forward's arg-max tensor.
pub(super) fn backward(
    op: &Op,
    g: &Geometry,
    argmax: Option<&Tensor>,
    g_out: &Tensor,
) -> Result<Tensor> {
    if let Some(opts) = align_opts(op) {
        return roi_align_grad(&opts, g, g_out);
    }
    match (op, argmax) {
        (Op::RoiPool { output_size, .. }, Some(arg)) => {
            roi_pool_grad(*output_size, g, &arg.to_vec::<i64>()?, g_out)
        }
        _ => Err(super::not_in_family(op, "RoI")),
    }
}

/// Bilinear sample positions and weights of one region: for every output bin, its sampling
/// points, each as four `(offset in the plane, weight)` pairs; plus the divisor `count`.
struct Samples {
    /// `[bin][point][corner]` flattened: `bins * points * 4` entries.
    taps: Vec<(u32, f32)>,
    points: usize,
    count: f32,
}

fn align_samples(r: &[f32; 5], g: &Geometry, o: &RoiAlignOpts) -> Samples {
    let (ph, pw) = o.output_size;
    let off = if o.aligned { 0.5f32 } else { 0.0 };
    let sx = r[1] * o.spatial_scale - off;
    let sy = r[2] * o.spatial_scale - off;
    let ex = r[3] * o.spatial_scale - off;
    let ey = r[4] * o.spatial_scale - off;
    let mut rw = ex - sx;
    let mut rh = ey - sy;
    if !o.aligned {
        rw = rw.max(1.0);
        rh = rh.max(1.0);
    }
    let bh = rh / ph as f32;
    let bw = rw / pw as f32;
    let gh = if o.sampling_ratio > 0 {
        o.sampling_ratio as usize
    } else {
        (rh / ph as f32).ceil().max(0.0) as usize
    };
    let gw = if o.sampling_ratio > 0 {
        o.sampling_ratio as usize
    } else {
        (rw / pw as f32).ceil().max(0.0) as usize
    };
    let count = (gh * gw).max(1) as f32;
    let (height, width) = (g.h as f32, g.w as f32);
    let mut taps = Vec::with_capacity(ph * pw * gh * gw * 4);
    for py in 0..ph {
        for px in 0..pw {
            for iy in 0..gh {
                let yy = sy + py as f32 * bh + (iy as f32 + 0.5) * bh / gh as f32;
                for ix in 0..gw {
                    let xx = sx + px as f32 * bw + (ix as f32 + 0.5) * bw / gw as f32;
                    let (mut y, mut x) = (yy, xx);
                    if !(y >= -1.0 && y <= height && x >= -1.0 && x <= width) {
                        taps.extend_from_slice(&[(0, 0.0); 4]);
                        continue;
                    }
                    if y <= 0.0 {
                        y = 0.0;
                    }
                    if x <= 0.0 {
                        x = 0.0;
                    }
                    let mut yl = y as usize;
                    let mut xl = x as usize;
                    let yh;
                    let xh;
                    if yl >= g.h - 1 {
                        yl = g.h - 1;
                        yh = yl;
                        y = yl as f32;
                    } else {
                        yh = yl + 1;
                    }
                    if xl >= g.w - 1 {
                        xl = g.w - 1;
                        xh = xl;
                        x = xl as f32;
                    } else {
                        xh = xl + 1;
                    }
                    let ly = y - yl as f32;
                    let lx = x - xl as f32;
                    let hy = 1.0 - ly;
                    let hx = 1.0 - lx;
                    taps.push(((yl * g.w + xl) as u32, hy * hx));
                    taps.push(((yl * g.w + xh) as u32, hy * lx));
                    taps.push(((yh * g.w + xl) as u32, ly * hx));
                    taps.push(((yh * g.w + xh) as u32, ly * lx));
                }
            }
        }
    }
    Samples {
        taps,
        points: gh * gw,
        count,
    }
}

fn roi_align(input: &Tensor, g: &Geometry, opts: RoiAlignOpts) -> Result<Tensor> {
    const OP: &str = "roi_align";
    let r = &g.rois;
    let (ph, pw) = opts.output_size;
    let bins = ph * pw;
    let plane = g.h * g.w;
    let mut out = pool::take_uninit(g.k * g.c * bins);
    if g.h > 0 && g.w > 0 {
        input.with_f32(OP, |x| {
            out.par_chunks_mut((g.c * bins).max(1))
                .zip(r.par_iter())
                .for_each(|(o, roi)| {
                    let s = align_samples(roi, g, &opts);
                    let b = roi[0] as usize;
                    for c in 0..g.c {
                        let p = &x[(b * g.c + c) * plane..][..plane];
                        for bin in 0..bins {
                            let mut acc = 0.0f32;
                            let t = &s.taps[bin * s.points * 4..][..s.points * 4];
                            for q in t.chunks_exact(4) {
                                acc += q[0].1 * p[q[0].0 as usize]
                                    + q[1].1 * p[q[1].0 as usize]
                                    + q[2].1 * p[q[2].0 as usize]
                                    + q[3].1 * p[q[3].0 as usize];
                            }
                            o[c * bins + bin] = acc / s.count;
                        }
                    }
                });
        })?;
    } else {
        out.fill(0.0);
    }
    Tensor::from_vec(out, &[g.k, g.c, ph, pw])
}

fn roi_pool(
    input: &Tensor,
    g: &Geometry,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "roi_pool";
    let r = &g.rois;
    let (ph, pw) = output_size;
    let bins = ph * pw;
    let plane = g.h * g.w;
    let mut out = pool::take_uninit(g.k * g.c * bins);
    // Arg-max offset within the plane, or -1 for an empty bin.
    let mut arg = vec![-1i64; g.k * g.c * bins];
    input.with_f32(OP, |x| {
        out.par_chunks_mut((g.c * bins).max(1))
            .zip(arg.par_chunks_mut((g.c * bins).max(1)))
            .zip(r.par_iter())
            .for_each(|((o, a), roi)| {
                let b = roi[0] as usize;
                // C++ std::round: half away from zero, as Rust's f32::round.
                let sw = (roi[1] * spatial_scale).round() as i64;
                let sh = (roi[2] * spatial_scale).round() as i64;
                let ew = (roi[3] * spatial_scale).round() as i64;
                let eh = (roi[4] * spatial_scale).round() as i64;
                let rw = (ew - sw + 1).max(1);
                let rh = (eh - sh + 1).max(1);
                let bh = rh as f32 / ph as f32;
                let bw = rw as f32 / pw as f32;
                for py in 0..ph {
                    let hs = ((py as f32 * bh).floor() as i64 + sh).clamp(0, g.h as i64);
                    let he = (((py + 1) as f32 * bh).ceil() as i64 + sh).clamp(0, g.h as i64);
                    for px in 0..pw {
                        let ws = ((px as f32 * bw).floor() as i64 + sw).clamp(0, g.w as i64);
                        let we = (((px + 1) as f32 * bw).ceil() as i64 + sw).clamp(0, g.w as i64);
                        let empty = he <= hs || we <= ws;
                        for c in 0..g.c {
                            let p = &x[(b * g.c + c) * plane..][..plane];
                            let mut best = if empty { 0.0 } else { -f32::MAX };
                            let mut bi = -1i64;
                            for yy in hs..he {
                                for xx in ws..we {
                                    let idx = (yy * g.w as i64 + xx) as usize;
                                    if p[idx] > best {
                                        best = p[idx];
                                        bi = idx as i64;
                                    }
                                }
                            }
                            o[c * bins + py * pw + px] = best;
                            a[c * bins + py * pw + px] = bi;
                        }
                    }
                }
            });
    })?;
    let shape = [g.k, g.c, ph, pw];
    Ok((
        Tensor::from_vec(out, &shape)?,
        Tensor::from_vec(arg, &shape)?,
    ))
}

/// RoI Align's feature-map gradient: each bin's gradient spread over its bilinear samples.
fn roi_align_grad(opts: &RoiAlignOpts, g: &Geometry, g_out: &Tensor) -> Result<Tensor> {
    const OP: &str = "roi_align";
    let r = &g.rois;
    let bins = opts.output_size.0 * opts.output_size.1;
    let plane = g.h * g.w;
    let gy = g_out;
    let mut gx = pool::take_zeroed(g.n * g.c * plane);
    if plane > 0 {
        let samples: Vec<Samples> = r.iter().map(|roi| align_samples(roi, g, opts)).collect();
        gy.with_f32(OP, |gy| {
            gx.par_chunks_mut(plane).enumerate().for_each(|(nc, gp)| {
                let (b, c) = (nc / g.c, nc % g.c);
                for (k, roi) in r.iter().enumerate() {
                    if roi[0] as usize != b {
                        continue;
                    }
                    let s = &samples[k];
                    let go = &gy[(k * g.c + c) * bins..][..bins];
                    for (bin, &gv) in go.iter().enumerate() {
                        let t = &s.taps[bin * s.points * 4..][..s.points * 4];
                        let gv = gv / s.count;
                        for &(pos, w) in t {
                            gp[pos as usize] += gv * w;
                        }
                    }
                }
            });
        })?;
    }
    Tensor::from_vec(gx, &[g.n, g.c, g.h, g.w])
}

/// RoI pooling's feature-map gradient: each bin's gradient to its arg-max position.
fn roi_pool_grad(
    output_size: (usize, usize),
    g: &Geometry,
    arg: &[i64],
    g_out: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "roi_pool";
    let r = &g.rois;
    let bins = output_size.0 * output_size.1;
    let plane = g.h * g.w;
    let gy = g_out;
    let mut gx = pool::take_zeroed(g.n * g.c * plane);
    gy.with_f32(OP, |gy| {
        for (k, roi) in r.iter().enumerate() {
            let b = roi[0] as usize;
            for c in 0..g.c {
                let base = (k * g.c + c) * bins;
                let gp = &mut gx[(b * g.c + c) * plane..][..plane];
                for bin in 0..bins {
                    let a = arg[base + bin];
                    if a >= 0 {
                        gp[a as usize] += gy[base + bin];
                    }
                }
            }
        }
    })?;
    Tensor::from_vec(gx, &[g.n, g.c, g.h, g.w])
}
