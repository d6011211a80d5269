//! RoI pooling and RoI Align (torchvision.ops `roi_pool` / `roi_align` semantics) for detector
//! heads: thin wrappers over the engine ops [`Tensor::roi_align`] and [`Tensor::roi_pool`],
//! which validate their arguments, record a typed op (`Op::RoiAlign` / `Op::RoiPool`) and
//! carry the gradient with respect to the feature map.
//!
//! Both take a feature map `[N, C, H, W]` and regions `[K, 5]` of rows
//! `(batch_index, x1, y1, x2, y2)` in input-image coordinates (multiplied by `spatial_scale` to
//! reach feature-map coordinates), and return `[K, C, out_h, out_w]`. The regions get no
//! gradient (as in torchvision). The arithmetic follows torchvision's CPU kernels in f32.

use crate::error::Result;
use ferrovision_tensor::Tensor;

pub use ferrovision_tensor::RoiAlignOpts;

/// RoI Align (torchvision `ops.roi_align`): average of bilinearly interpolated samples per
/// output bin. Differentiable with respect to `input`.
pub fn roi_align(input: &Tensor, rois: &Tensor, opts: RoiAlignOpts) -> Result<Tensor> {
    Ok(input.roi_align(rois, opts)?)
}

/// RoI max pooling (torchvision `ops.roi_pool`): the region is rounded to whole feature-map
/// pixels and split into `output_size` bins; each output is the maximum of its bin (0 for an
/// empty bin). The gradient goes to the arg-max position.
pub fn roi_pool(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<Tensor> {
    Ok(input.roi_pool(rois, output_size, spatial_scale)?)
}
