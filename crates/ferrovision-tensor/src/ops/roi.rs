//! RoI pooling and RoI Align (torchvision.ops `roi_pool` / `roi_align` semantics), with
//! gradients with respect to the feature map (the detector heads' feature crops).
//!
//! Both take a feature map `[N, C, H, W]` and regions `[K, 5]` of rows
//! `(batch_index, x1, y1, x2, y2)` in input-image coordinates (multiplied by `spatial_scale` to
//! reach feature-map coordinates), and return `[K, C, out_h, out_w]`. The regions get no
//! gradient (as in torchvision). The arithmetic follows torchvision's CPU kernels in f32.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{DType, Error, Result, Tensor};

/// Options of [`Tensor::roi_align`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiAlignOpts {
    /// Output size `(height, width)`.
    pub output_size: (usize, usize),
    /// Factor from region coordinates to feature-map coordinates (e.g. 1/16).
    pub spatial_scale: f32,
    /// Sampling points per bin along each axis; `<= 0` means adaptive (`ceil(roi / output)`).
    pub sampling_ratio: i32,
    /// Shift the region by -0.5 pixel so that pixel centres align (Detectron2's `aligned=True`).
    pub aligned: bool,
}

impl Default for RoiAlignOpts {
    fn default() -> Self {
        RoiAlignOpts {
            output_size: (7, 7),
            spatial_scale: 1.0,
            sampling_ratio: -1,
            aligned: false,
        }
    }
}

struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
}

fn check(op: &'static str, input: &Tensor, rois: &Tensor, out: (usize, usize)) -> Result<Geometry> {
    if input.rank() != 4 {
        return Err(Error::invalid(
            op,
            format!(
                "feature map must be [N, C, H, W], got shape {:?}",
                input.shape()
            ),
        ));
    }
    if input.dtype() != DType::F32 || rois.dtype() != DType::F32 {
        return Err(Error::invalid(
            op,
            format!(
                "feature map and regions must be f32, got {:?} and {:?}",
                input.dtype(),
                rois.dtype()
            ),
        ));
    }
    if rois.rank() != 2 || rois.shape()[1] != 5 {
        return Err(Error::invalid(
            op,
            format!(
                "regions must be [K, 5] rows of (batch_index, x1, y1, x2, y2), got shape {:?}",
                rois.shape()
            ),
        ));
    }
    if out.0 == 0 || out.1 == 0 {
        return Err(Error::invalid(
            op,
            format!("output size must be positive, got {out:?}"),
        ));
    }
    let s = input.shape();
    Ok(Geometry {
        n: s[0],
        c: s[1],
        h: s[2],
        w: s[3],
        k: rois.shape()[0],
    })
}

fn read_rois(op: &'static str, rois: &Tensor, n: usize) -> Result<Vec<[f32; 5]>> {
    let v = rois.to_vec::<f32>()?;
    let mut out = Vec::with_capacity(v.len() / 5);
    for (i, r) in v.chunks_exact(5).enumerate() {
        if r.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                op,
                format!("region {i} has a non-finite value: {r:?}"),
            ));
        }
        if r[0] < 0.0 || r[0].fract() != 0.0 || r[0] as usize >= n {
            return Err(Error::invalid(
                op,
                format!(
                    "region {i}: batch index {} is not an image index below {n}",
                    r[0]
                ),
            ));
        }
        out.push([r[0], r[1], r[2], r[3], r[4]]);
    }
    Ok(out)
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

impl Tensor {
    /// RoI Align (torchvision `ops.roi_align`) of a feature map `[N, C, H, W]` over regions
    /// `[K, 5]` of rows `(batch_index, x1, y1, x2, y2)`: the average of bilinearly interpolated
    /// samples per output bin, `[K, C, out_h, out_w]`. Differentiable with respect to `self`.
    pub fn roi_align(&self, rois: &Tensor, opts: RoiAlignOpts) -> Result<Tensor> {
        roi_align(self, rois, opts)
    }

    /// RoI max pooling (torchvision `ops.roi_pool`): the region is rounded to whole feature-map
    /// pixels and split into `output_size` bins; each output is the maximum of its bin (0 for an
    /// empty bin). The gradient goes to the arg-max position.
    pub fn roi_pool(
        &self,
        rois: &Tensor,
        output_size: (usize, usize),
        spatial_scale: f32,
    ) -> Result<Tensor> {
        roi_pool(self, rois, output_size, spatial_scale)
    }
}

fn roi_align(input: &Tensor, rois: &Tensor, opts: RoiAlignOpts) -> Result<Tensor> {
    const OP: &str = "roi_align";
    let g = check(OP, input, rois, opts.output_size)?;
    if opts.spatial_scale.is_nan() || opts.spatial_scale <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("spatial_scale must be positive, got {}", opts.spatial_scale),
        ));
    }
    let r = read_rois(OP, rois, g.n)?;
    let (ph, pw) = opts.output_size;
    let bins = ph * pw;
    let plane = g.h * g.w;
    let mut out = pool::take_uninit(g.k * g.c * bins);
    if g.h > 0 && g.w > 0 {
        input.with_f32(OP, |x| {
            out.par_chunks_mut((g.c * bins).max(1))
                .zip(r.par_iter())
                .for_each(|(o, roi)| {
                    let s = align_samples(roi, &g, &opts);
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
    let y = Tensor::from_vec(out, &[g.k, g.c, ph, pw])?;
    Ok(record_rule(
        y,
        Op::RoiAlign {
            output_size: opts.output_size,
            spatial_scale: opts.spatial_scale,
            sampling_ratio: opts.sampling_ratio,
            aligned: opts.aligned,
        },
        &[input, rois],
        roi_align_grad,
        Saved::with_state(vec![], (g, r)),
    ))
}

fn roi_pool(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<Tensor> {
    const OP: &str = "roi_pool";
    let g = check(OP, input, rois, output_size)?;
    if spatial_scale.is_nan() || spatial_scale <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("spatial_scale must be positive, got {spatial_scale}"),
        ));
    }
    let r = read_rois(OP, rois, g.n)?;
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
    let y = Tensor::from_vec(out, &[g.k, g.c, ph, pw])?;
    Ok(record_rule(
        y,
        Op::RoiPool {
            output_size,
            spatial_scale,
        },
        &[input, rois],
        roi_pool_grad,
        Saved::with_state(vec![], (g, r, arg)),
    ))
}

/// The gradient rule of `roi_align`: each bin's gradient spread over its bilinear samples
/// (the regions get none).
fn roi_align_grad(op: &Op, ctx: &mut GradCtx<'_>, g_out: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::RoiAlign {
        output_size,
        spatial_scale,
        sampling_ratio,
        aligned,
    } = *op
    else {
        return Err(ctx.unexpected());
    };
    const OP: &str = "roi_align";
    let opts = RoiAlignOpts {
        output_size,
        spatial_scale,
        sampling_ratio,
        aligned,
    };
    let saved = ctx.take_state::<(Geometry, Vec<[f32; 5]>)>()?;
    let (g, r) = (&saved.0, &saved.1);
    let bins = output_size.0 * output_size.1;
    let plane = g.h * g.w;
    let gy = g_out;
    let mut gx = pool::take_zeroed(g.n * g.c * plane);
    if plane > 0 {
        let samples: Vec<Samples> = r.iter().map(|roi| align_samples(roi, g, &opts)).collect();
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
    Ok(vec![
        Some(Tensor::from_vec(gx, &[g.n, g.c, g.h, g.w])?),
        None,
    ])
}

/// The gradient rule of `roi_pool`: each bin's gradient to its arg-max position (the regions
/// get none).
fn roi_pool_grad(op: &Op, ctx: &mut GradCtx<'_>, g_out: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::RoiPool { output_size, .. } = *op else {
        return Err(ctx.unexpected());
    };
    const OP: &str = "roi_pool";
    let saved = ctx.take_state::<(Geometry, Vec<[f32; 5]>, Vec<i64>)>()?;
    let (g, r, arg) = (&saved.0, &saved.1, &saved.2);
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
    Ok(vec![
        Some(Tensor::from_vec(gx, &[g.n, g.c, g.h, g.w])?),
        None,
    ])
}
