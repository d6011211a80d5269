//! Resizing (upsampling or downsampling) of `(N, C, L)` and `(N, C, H, W)` tensors (unbatched
//! `(C, L)` / `(C, H, W)` too) with PyTorch's `interpolate` semantics: `nearest`, `linear` /
//! `bilinear` and `bicubic` (no antialiasing), with or without `align_corners`.
//!
//! Each mode is a separable linear map: every output position reads a few input positions per
//! axis with fixed weights (1 for nearest, 2 for linear, 4 clamped taps for cubic). Source
//! positions and weights are computed in f32 exactly as PyTorch's CPU kernels do, so nearest
//! picks the same pixels. The maps are planned by [`super::separable`] and run by the backend
//! (`Backend::pool`); the backward pass applies the transposed map (nearest sums the gradients of the outputs that copied a
//! pixel, bilinear and bicubic scatter-add them with the interpolation weights).

use super::separable::{separable_linear, Spatial, Taps};
use crate::autograd::{Interpolation, Op};
use crate::{Error, Result, Tensor};

/// Interpolation of [`Tensor::resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// PyTorch `mode="nearest"`: source index `floor(dst * in / out)`.
    Nearest,
    /// PyTorch `mode="bilinear"`.
    Bilinear { align_corners: bool },
    /// PyTorch `mode="bicubic"` (A = -0.75, border pixels repeated).
    Bicubic { align_corners: bool },
}

/// PyTorch's `nearest_idx` (in f32): `min(floor(dst * (in / out)), in - 1)`.
fn nearest_taps(len_in: usize, len_out: usize) -> Option<Taps> {
    if len_in == len_out {
        return None;
    }
    let scale = len_in as f32 / len_out as f32;
    Some(Taps::build(len_in, len_out, |o, v| {
        let src = if len_out == 2 * len_in {
            o >> 1
        } else {
            ((o as f32 * scale).floor() as usize).min(len_in - 1)
        };
        v.push((src, 1.0));
    }))
}

/// PyTorch's `area_pixel_compute_scale` for a size-given resize.
fn area_scale(len_in: usize, len_out: usize, align_corners: bool) -> f32 {
    if align_corners {
        if len_out > 1 {
            (len_in - 1) as f32 / (len_out - 1) as f32
        } else {
            0.0
        }
    } else {
        len_in as f32 / len_out as f32
    }
}

/// PyTorch's `area_pixel_compute_source_index`.
fn source_index(scale: f32, o: usize, align_corners: bool, cubic: bool) -> f32 {
    if align_corners {
        scale * o as f32
    } else {
        let s = scale * (o as f32 + 0.5) - 0.5;
        if !cubic && s < 0.0 {
            0.0
        } else {
            s
        }
    }
}

/// Linear interpolation taps: `(i0, 1 - λ), (i1, λ)` with PyTorch's index guards.
fn linear_taps(len_in: usize, len_out: usize, align_corners: bool) -> Option<Taps> {
    if len_in == len_out {
        return None;
    }
    let scale = area_scale(len_in, len_out, align_corners);
    Some(Taps::build(len_in, len_out, |o, v| {
        let real = source_index(scale, o, align_corners, false);
        let i0 = (real.floor() as usize).min(len_in - 1);
        let l1 = (real - i0 as f32).clamp(0.0, 1.0);
        let i1 = if i0 < len_in - 1 { i0 + 1 } else { i0 };
        v.push((i0, 1.0 - l1));
        v.push((i1, l1));
    }))
}

fn cubic_conv1(x: f32, a: f32) -> f32 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

fn cubic_conv2(x: f32, a: f32) -> f32 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// Bicubic taps: four neighbours `i0-1 ..= i0+2` clamped to the border, Keys weights (A=-0.75).
fn cubic_taps(len_in: usize, len_out: usize, align_corners: bool) -> Option<Taps> {
    if len_in == len_out {
        return None;
    }
    const A: f32 = -0.75;
    let scale = area_scale(len_in, len_out, align_corners);
    let last = len_in as i64 - 1;
    Some(Taps::build(len_in, len_out, |o, v| {
        let real = source_index(scale, o, align_corners, true);
        let i0 = (real.floor() as i64).min(last);
        let t = (real - i0 as f32).clamp(0.0, 1.0);
        let w = [
            cubic_conv2(t + 1.0, A),
            cubic_conv1(t, A),
            cubic_conv1(1.0 - t, A),
            cubic_conv2(2.0 - t, A),
        ];
        for (j, &wj) in w.iter().enumerate() {
            let i = (i0 - 1 + j as i64).clamp(0, last) as usize;
            v.push((i, wj));
        }
    }))
}

/// Which taps a mode uses along one axis.
#[derive(Clone, Copy)]
enum Interp {
    Nearest,
    Linear(bool),
    Cubic(bool),
}

impl Interp {
    fn taps(self, len_in: usize, len_out: usize) -> Option<Taps> {
        match self {
            Interp::Nearest => nearest_taps(len_in, len_out),
            Interp::Linear(a) => linear_taps(len_in, len_out, a),
            Interp::Cubic(a) => cubic_taps(len_in, len_out, a),
        }
    }
}

impl Tensor {
    fn interpolate(
        &self,
        op: &'static str,
        sp: usize,
        size: &[usize],
        mode: Interp,
    ) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        if size.len() != sp {
            return Err(Error::invalid(
                op,
                format!("size {size:?} must have {sp} value(s), one per spatial dim"),
            ));
        }
        if size.contains(&0) || s.dims.contains(&0) {
            return Err(Error::invalid(
                op,
                format!(
                    "input spatial size {:?} and output size {size:?} must be positive",
                    &s.dims[3 - sp..]
                ),
            ));
        }
        super::view::check_numel(op, &[&self.shape()[..self.rank() - sp], size].concat())?;
        let mut taps: [Option<Taps>; 3] = [None, None, None];
        for (i, a) in (3 - sp..3).enumerate() {
            taps[a] = mode.taps(s.dims[a], size[i]);
        }
        let rec = Op::Resize {
            size: size.to_vec(),
            mode: match mode {
                Interp::Nearest => Interpolation::Nearest,
                Interp::Linear(align_corners) => Interpolation::Linear { align_corners },
                Interp::Cubic(align_corners) => Interpolation::Cubic { align_corners },
            },
        };
        separable_linear(self, op, sp, taps, rec)
    }

    fn scaled_size(&self, op: &'static str, sp: usize, factor: usize) -> Result<Vec<usize>> {
        let s = Spatial::of(self, op, sp)?;
        if factor == 0 {
            return Err(Error::invalid(op, "scale factor must be positive"));
        }
        s.dims[3 - sp..]
            .iter()
            .map(|&d| d.checked_mul(factor))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::invalid(op, format!("scale factor {factor} is too large")))
    }

    /// Nearest-neighbour resize of `(N, C, L)` to length `size[0]`, like
    /// `F.interpolate(x, size, mode="nearest")`: output `i` copies input `floor(i * L / size)`.
    pub fn upsample_nearest1d(&self, size: &[usize]) -> Result<Tensor> {
        self.interpolate("upsample_nearest1d", 1, size, Interp::Nearest)
    }

    /// Nearest-neighbour resize of `(N, C, H, W)` to `size = [H_out, W_out]`, like
    /// `F.interpolate(x, size, mode="nearest")` (source index `floor(dst * in / out)` per dim).
    ///
    /// ```
    /// use ferrovision_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap();
    /// let y = x.upsample_nearest2d(&[3, 3]).unwrap();
    /// assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0]);
    /// ```
    pub fn upsample_nearest2d(&self, size: &[usize]) -> Result<Tensor> {
        self.interpolate("upsample_nearest2d", 2, size, Interp::Nearest)
    }

    /// Nearest-neighbour upsampling of `(N, C, H, W)` by an integer factor (each pixel becomes a
    /// `factor x factor` block), like `F.interpolate(x, scale_factor=factor)`.
    pub fn upsample_nearest2d_scale(&self, factor: usize) -> Result<Tensor> {
        let size = self.scaled_size("upsample_nearest2d", 2, factor)?;
        self.upsample_nearest2d(&size)
    }

    /// Linear resize of `(N, C, L)` to length `size[0]`, like
    /// `F.interpolate(x, size, mode="linear", align_corners=...)`.
    pub fn upsample_linear1d(&self, size: &[usize], align_corners: bool) -> Result<Tensor> {
        self.interpolate("upsample_linear1d", 1, size, Interp::Linear(align_corners))
    }

    /// Bilinear resize of `(N, C, H, W)` to `size = [H_out, W_out]`, like
    /// `F.interpolate(x, size, mode="bilinear", align_corners=...)` (no antialiasing, so
    /// downsampling reads at most 2x2 pixels per output).
    ///
    /// With `align_corners = false` the source coordinate is `(dst + 0.5) * in / out - 0.5`
    /// (clamped at 0); with `true` it is `dst * (in - 1) / (out - 1)`.
    pub fn upsample_bilinear2d(&self, size: &[usize], align_corners: bool) -> Result<Tensor> {
        self.interpolate(
            "upsample_bilinear2d",
            2,
            size,
            Interp::Linear(align_corners),
        )
    }

    /// Bilinear upsampling of `(N, C, H, W)` by an integer factor, like
    /// `F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=...)`.
    pub fn upsample_bilinear2d_scale(&self, factor: usize, align_corners: bool) -> Result<Tensor> {
        let size = self.scaled_size("upsample_bilinear2d", 2, factor)?;
        self.upsample_bilinear2d(&size, align_corners)
    }

    /// Bicubic resize of `(N, C, H, W)` to `size = [H_out, W_out]`, like
    /// `F.interpolate(x, size, mode="bicubic", align_corners=...)` (A = -0.75, border pixels
    /// repeated; the output can overshoot the input range).
    pub fn upsample_bicubic2d(&self, size: &[usize], align_corners: bool) -> Result<Tensor> {
        self.interpolate("upsample_bicubic2d", 2, size, Interp::Cubic(align_corners))
    }

    /// Resizes the spatial dims of `(N, C, H, W)` (or `(C, H, W)`) to `size = [H_out, W_out]`
    /// with the given interpolation.
    pub fn resize(&self, size: &[usize], mode: ResizeMode) -> Result<Tensor> {
        match mode {
            ResizeMode::Nearest => self.upsample_nearest2d(size),
            ResizeMode::Bilinear { align_corners } => self.upsample_bilinear2d(size, align_corners),
            ResizeMode::Bicubic { align_corners } => self.upsample_bicubic2d(size, align_corners),
        }
    }
}
