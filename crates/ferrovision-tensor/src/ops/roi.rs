//! RoI pooling and RoI Align (torchvision.ops `roi_pool` / `roi_align` semantics), with
//! gradients with respect to the feature map (the detector heads' feature crops).
//!
//! Both take a feature map `[N, C, H, W]` and regions `[K, 5]` of rows
//! `(batch_index, x1, y1, x2, y2)` in input-image coordinates (multiplied by `spatial_scale` to
//! reach feature-map coordinates), and return `[K, C, out_h, out_w]`. The regions get no
//! gradient (as in torchvision). The arithmetic follows torchvision's CPU kernels in f32.
//!
//! The op methods validate the feature map and the regions into a [`RoiPlan`], run
//! [`Backend::roi`](crate::backend::Backend::roi) and record; the gradient rules run
//! `Backend::roi_backward` (the sampling and pooling kernels are in `backend/cpu/roi.rs`).

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
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

/// A validated RoI op: the feature map's `[N, C, H, W]`, the region count `K` and the regions
/// (made by the op method, run by a [`Backend`](crate::backend::Backend)).
#[derive(Debug, Clone)]
pub struct RoiPlan {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) k: usize,
    /// Rows `(batch_index, x1, y1, x2, y2)`, finite, with valid batch indices.
    pub(crate) rois: Vec<[f32; 5]>,
}

/// Validates the shapes and dtypes: the plan without its regions (see [`read_rois`]).
fn check(op: &'static str, input: &Tensor, rois: &Tensor, out: (usize, usize)) -> Result<RoiPlan> {
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
    Ok(RoiPlan {
        n: s[0],
        c: s[1],
        h: s[2],
        w: s[3],
        k: rois.shape()[0],
        rois: Vec::new(),
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
    let mut plan = check(OP, input, rois, opts.output_size)?;
    if opts.spatial_scale.is_nan() || opts.spatial_scale <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("spatial_scale must be positive, got {}", opts.spatial_scale),
        ));
    }
    // The device first: the regions are read on the host.
    let b = backend::for_device(input.device(), OP)?;
    plan.rois = read_rois(OP, rois, plan.n)?;
    let rec = Op::RoiAlign {
        output_size: opts.output_size,
        spatial_scale: opts.spatial_scale,
        sampling_ratio: opts.sampling_ratio,
        aligned: opts.aligned,
    };
    let (y, _) = b.roi(&rec, &plan, input)?;
    Ok(record_rule(
        y,
        rec,
        &[input, rois],
        roi_grad,
        Saved::with_state(vec![], plan),
    ))
}

fn roi_pool(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<Tensor> {
    const OP: &str = "roi_pool";
    let mut plan = check(OP, input, rois, output_size)?;
    if spatial_scale.is_nan() || spatial_scale <= 0.0 {
        return Err(Error::invalid(
            OP,
            format!("spatial_scale must be positive, got {spatial_scale}"),
        ));
    }
    // The device first: the regions are read on the host.
    let b = backend::for_device(input.device(), OP)?;
    plan.rois = read_rois(OP, rois, plan.n)?;
    let rec = Op::RoiPool {
        output_size,
        spatial_scale,
    };
    let (y, argmax) = b.roi(&rec, &plan, input)?;
    Ok(record_rule(
        y,
        rec,
        &[input, rois],
        roi_grad,
        Saved::with_state(argmax.into_iter().collect(), plan),
    ))
}

/// The gradient rule of `roi_align` (each bin's gradient spread over its bilinear samples) and
/// `roi_pool` (each bin's gradient to its saved arg-max position); the regions get none.
fn roi_grad(op: &Op, ctx: &mut GradCtx<'_>, g_out: &Tensor) -> Result<Vec<Option<Tensor>>> {
    if !matches!(op, Op::RoiAlign { .. } | Op::RoiPool { .. }) {
        return Err(ctx.unexpected());
    }
    let plan = ctx.take_state::<RoiPlan>()?;
    let argmax = match op {
        Op::RoiPool { .. } => Some(ctx.saved(0)?),
        _ => None,
    };
    let gx =
        backend::for_device(g_out.device(), op.name())?.roi_backward(op, &plan, argmax, g_out)?;
    Ok(vec![Some(gx), None])
}
