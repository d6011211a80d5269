//! Images: decode/encode (JPEG, PNG 8/16-bit, BMP, GIF), dtype and range conversion, resize
//! (nearest, bilinear, bicubic, area; antialiased when shrinking), letterbox, crop, pad, flip,
//! rotate 90, colour conversions and per-channel normalisation.
//!
//! Pixels are stored interleaved (HWC, row-major) in an [`Image<T>`]; [`Image::to_tensor_chw`]
//! produces the engine's NCHW layout. JPEG goes straight to `zune-jpeg` in strict mode (the
//! fastest decoder measured here, see `docs/data.md`), everything else through the `image` crate.

#[cfg(feature = "image")]
use crate::fsutil::write_atomic;
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
#[cfg(feature = "image")]
use std::path::Path;

/// A pixel component type.
pub trait Pixel: Copy + Default + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// Largest value of the natural range (255 for u8, 65535 for u16, 1.0 for f32).
    const MAX: f32;
    /// To f32 (no scaling).
    fn to_f32(self) -> f32;
    /// From f32, rounded and saturated to the type's range.
    fn from_f32(v: f32) -> Self;
}

impl Pixel for u8 {
    const MAX: f32 = 255.0;
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        // `as` saturates and maps NaN to 0.
        (v + 0.5) as u8
    }
}
impl Pixel for u16 {
    const MAX: f32 = 65535.0;
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        (v + 0.5) as u16
    }
}
impl Pixel for f32 {
    const MAX: f32 = 1.0;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
}

/// An interleaved (HWC) image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<T> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
    pub channels: usize,
    /// `height * width * channels` values, row-major.
    pub data: Vec<T>,
}

/// A decoded image of the file's own depth.
#[derive(Debug, Clone, PartialEq)]
pub enum DynImage {
    /// 8 bits per channel.
    U8(Image<u8>),
    /// 16 bits per channel (16-bit PNG).
    U16(Image<u16>),
}

impl DynImage {
    /// Converts to 8 bits per channel (16-bit values are scaled by 255/65535 and rounded).
    pub fn into_u8(self) -> Image<u8> {
        match self {
            DynImage::U8(i) => i,
            DynImage::U16(i) => i.map(|v| ((v as u32 * 255 + 32767) / 65535) as u8),
        }
    }
}

impl<T: Pixel> Image<T> {
    /// An image filled with `fill`.
    pub fn new(width: usize, height: usize, channels: usize, fill: T) -> Self {
        Image {
            width,
            height,
            channels,
            data: vec![fill; width * height * channels],
        }
    }

    /// Wraps data, checking its length.
    pub fn from_vec(width: usize, height: usize, channels: usize, data: Vec<T>) -> Result<Self> {
        if data.len() != width * height * channels || channels == 0 {
            return Err(Error::invalid(
                "Image::from_vec",
                format!("{} values for {width}x{height}x{channels}", data.len()),
            ));
        }
        Ok(Image {
            width,
            height,
            channels,
            data,
        })
    }

    /// The value at `(x, y, c)`.
    #[inline]
    pub fn get(&self, x: usize, y: usize, c: usize) -> T {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Sets the value at `(x, y, c)`.
    #[inline]
    pub fn set(&mut self, x: usize, y: usize, c: usize, v: T) {
        self.data[(y * self.width + x) * self.channels + c] = v;
    }

    /// Applies `f` to every value.
    pub fn map<U: Pixel>(&self, f: impl Fn(T) -> U) -> Image<U> {
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// Converts to f32 scaled to [0, 1].
    pub fn to_f32(&self) -> Image<f32> {
        let s = 1.0 / T::MAX;
        self.map(|v| v.to_f32() * s)
    }

    /// Converts a [0, 1] float image back to `U`'s range (rounded, saturated).
    pub fn convert<U: Pixel>(&self) -> Image<U> {
        let s = U::MAX / T::MAX;
        self.map(|v| U::from_f32(v.to_f32() * s))
    }

    /// The `w x h` window at `(x, y)`; errors when it leaves the image.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Result<Self> {
        if x + w > self.width || y + h > self.height || w == 0 || h == 0 {
            return Err(Error::invalid(
                "crop",
                format!(
                    "window {w}x{h} at ({x},{y}) does not fit a {}x{} image",
                    self.width, self.height
                ),
            ));
        }
        let c = self.channels;
        let mut data = Vec::with_capacity(w * h * c);
        for row in y..y + h {
            let s = (row * self.width + x) * c;
            data.extend_from_slice(&self.data[s..s + w * c]);
        }
        Ok(Image {
            width: w,
            height: h,
            channels: c,
            data,
        })
    }

    /// The central `fraction` (0, 1] of each side.
    pub fn central_crop(&self, fraction: f32) -> Result<Self> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::invalid(
                "central_crop",
                format!("fraction {fraction} not in (0, 1]"),
            ));
        }
        let w = ((self.width as f32 * fraction).round() as usize).max(1);
        let h = ((self.height as f32 * fraction).round() as usize).max(1);
        self.crop((self.width - w) / 2, (self.height - h) / 2, w, h)
    }

    /// Pads with `fill`: `left, top, right, bottom` pixels.
    pub fn pad(&self, left: usize, top: usize, right: usize, bottom: usize, fill: T) -> Self {
        let (w, h, c) = (
            self.width + left + right,
            self.height + top + bottom,
            self.channels,
        );
        let mut out = Image::new(w, h, c, fill);
        for y in 0..self.height {
            let s = y * self.width * c;
            let d = ((y + top) * w + left) * c;
            out.data[d..d + self.width * c].copy_from_slice(&self.data[s..s + self.width * c]);
        }
        out
    }

    /// Mirror left-right.
    pub fn flip_horizontal(&self) -> Self {
        let c = self.channels;
        let mut out = self.clone();
        for y in 0..self.height {
            let row = &self.data[y * self.width * c..(y + 1) * self.width * c];
            let orow = &mut out.data[y * self.width * c..(y + 1) * self.width * c];
            for x in 0..self.width {
                let d = (self.width - 1 - x) * c;
                orow[d..d + c].copy_from_slice(&row[x * c..x * c + c]);
            }
        }
        out
    }

    /// Mirror top-bottom.
    pub fn flip_vertical(&self) -> Self {
        let rc = self.width * self.channels;
        let mut out = self.clone();
        for y in 0..self.height {
            let d = (self.height - 1 - y) * rc;
            out.data[d..d + rc].copy_from_slice(&self.data[y * rc..(y + 1) * rc]);
        }
        out
    }

    /// Rotates by `k` quarter turns counter-clockwise (like `tf.image.rot90`).
    pub fn rot90(&self, k: i32) -> Self {
        let k = k.rem_euclid(4);
        let mut img = self.clone();
        for _ in 0..k {
            let (w, h, c) = (img.width, img.height, img.channels);
            let mut out = Image::new(h, w, c, T::default());
            for y in 0..h {
                for x in 0..w {
                    // CCW: (x, y) -> (y, w-1-x)
                    let d = ((w - 1 - x) * h + y) * c;
                    let s = (y * w + x) * c;
                    out.data[d..d + c].copy_from_slice(&img.data[s..s + c]);
                }
            }
            img = out;
        }
        img
    }

    /// Resizes to `width x height` (antialiased when shrinking, except `Nearest`).
    pub fn resize(&self, width: usize, height: usize, filter: Filter) -> Result<Self> {
        resample(
            self,
            [0.0, 0.0, self.width as f64, self.height as f64],
            width,
            height,
            filter,
            false,
        )
    }

    /// Resizes keeping the aspect ratio and pads to `width x height` with `fill` (letterbox).
    /// Returns the image, the scale and the `(left, top)` padding, to map boxes.
    pub fn resize_with_pad(
        &self,
        width: usize,
        height: usize,
        filter: Filter,
        fill: T,
    ) -> Result<(Self, f64, (usize, usize))> {
        let s = (width as f64 / self.width as f64).min(height as f64 / self.height as f64);
        let nw = ((self.width as f64 * s).round() as usize).clamp(1, width);
        let nh = ((self.height as f64 * s).round() as usize).clamp(1, height);
        let r = self.resize(nw, nh, filter)?;
        let (l, t) = ((width - nw) / 2, (height - nh) / 2);
        Ok((
            r.pad(l, t, width - nw - l, height - nh - t, fill),
            s,
            (l, t),
        ))
    }

    /// An engine tensor `[C, H, W]` of f32 scaled to [0, 1], then `(x - mean[c]) / std[c]`
    /// when `norm` is given.
    pub fn to_tensor_chw(&self, norm: Option<&Normalize>) -> Result<Tensor> {
        let (w, h, c) = (self.width, self.height, self.channels);
        let plane = w * h;
        let mut out = vec![0f32; plane * c];
        let s = 1.0 / T::MAX;
        for ch in 0..c {
            let (scale, shift) = match norm {
                Some(n) => {
                    let m = n.mean.get(ch).copied().unwrap_or(0.0);
                    let sd = n.std.get(ch).copied().unwrap_or(1.0);
                    (s / sd, -m / sd)
                }
                None => (s, 0.0),
            };
            let o = &mut out[ch * plane..(ch + 1) * plane];
            for (i, v) in o.iter_mut().enumerate() {
                *v = self.data[i * c + ch].to_f32() * scale + shift;
            }
        }
        Ok(Tensor::from_vec(out, &[c, h, w])?)
    }

    /// An engine tensor `[H, W, C]` of the raw values (u8 stays u8; f32 stays f32).
    pub fn to_tensor_hwc(&self) -> Result<Tensor>
    where
        T: ferrovision_tensor::Element,
    {
        Ok(Tensor::from_vec(
            self.data.clone(),
            &[self.height, self.width, self.channels],
        )?)
    }
}

/// Per-channel normalisation constants, applied to [0, 1] values: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Normalize {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Normalize {
    /// The ImageNet statistics used by most pretrained backbones.
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Colour
// ---------------------------------------------------------------------------------------------

impl Image<u8> {
    /// Like [`to_rgb`](Self::to_rgb), without a copy when the image is RGB already.
    pub fn into_rgb(self) -> Image<u8> {
        if self.channels == 3 {
            self
        } else {
            self.to_rgb()
        }
    }

    /// Converts to 3-channel RGB (grey is replicated, alpha dropped).
    pub fn to_rgb(&self) -> Image<u8> {
        match self.channels {
            3 => self.clone(),
            1 | 2 => {
                let c = self.channels;
                let mut d = Vec::with_capacity(self.width * self.height * 3);
                for p in self.data.chunks_exact(c) {
                    d.extend_from_slice(&[p[0], p[0], p[0]]);
                }
                Image {
                    width: self.width,
                    height: self.height,
                    channels: 3,
                    data: d,
                }
            }
            _ => {
                let c = self.channels;
                let mut d = Vec::with_capacity(self.width * self.height * 3);
                for p in self.data.chunks_exact(c) {
                    d.extend_from_slice(&p[..3]);
                }
                Image {
                    width: self.width,
                    height: self.height,
                    channels: 3,
                    data: d,
                }
            }
        }
    }
}

impl<T: Pixel> Image<T> {
    /// Swaps the first and third channels (RGB <-> BGR).
    pub fn swap_rb(&self) -> Result<Self> {
        if self.channels < 3 {
            return Err(Error::invalid(
                "swap_rb",
                format!("needs >= 3 channels, got {}", self.channels),
            ));
        }
        let mut out = self.clone();
        for p in out.data.chunks_exact_mut(self.channels) {
            p.swap(0, 2);
        }
        Ok(out)
    }

    /// Luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B), one channel.
    pub fn to_grey(&self) -> Result<Self> {
        if self.channels == 1 {
            return Ok(self.clone());
        }
        if self.channels < 3 {
            return Err(Error::invalid(
                "to_grey",
                format!("needs 1 or >= 3 channels, got {}", self.channels),
            ));
        }
        let data = self
            .data
            .chunks_exact(self.channels)
            .map(|p| {
                T::from_f32(0.299 * p[0].to_f32() + 0.587 * p[1].to_f32() + 0.114 * p[2].to_f32())
            })
            .collect();
        Ok(Image {
            width: self.width,
            height: self.height,
            channels: 1,
            data,
        })
    }
}

/// RGB in [0, 1] to HSV with h, s, v in [0, 1] (like `tf.image.rgb_to_hsv`).
#[inline]
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let s = if max > 0.0 { d / max } else { 0.0 };
    // Plain compares instead of `rem_euclid` (an fmod call) keep this cheap per pixel.
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        let x = (g - b) / d;
        (if x < 0.0 { x + 6.0 } else { x }) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    (h, s, max)
}

/// HSV (all in [0, 1]) to RGB in [0, 1].
#[inline]
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = (h - h.floor()) * 6.0;
    let fl = h6.floor();
    // `h - floor(h)` can round up to 1.0 for tiny negative h: that is hue 0.
    let (i, f) = if fl >= 6.0 {
        (0, 0.0)
    } else {
        (fl as i32, h6 - fl)
    };
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

impl Image<f32> {
    /// RGB (in [0, 1]) to HSV, 3 channels.
    pub fn rgb_to_hsv(&self) -> Result<Self> {
        self.per_pixel3("rgb_to_hsv", rgb_to_hsv)
    }

    /// HSV to RGB, 3 channels.
    pub fn hsv_to_rgb(&self) -> Result<Self> {
        self.per_pixel3("hsv_to_rgb", hsv_to_rgb)
    }

    fn per_pixel3(
        &self,
        op: &'static str,
        f: impl Fn(f32, f32, f32) -> (f32, f32, f32),
    ) -> Result<Self> {
        if self.channels != 3 {
            return Err(Error::invalid(
                op,
                format!("needs 3 channels, got {}", self.channels),
            ));
        }
        let mut out = self.clone();
        for p in out.data.chunks_exact_mut(3) {
            let (a, b, c) = f(p[0], p[1], p[2]);
            p[0] = a;
            p[1] = b;
            p[2] = c;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Resampling
// ---------------------------------------------------------------------------------------------

/// Interpolation filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Nearest neighbour (labels, masks).
    Nearest,
    /// Triangle filter.
    Bilinear,
    /// Keys cubic (a = -0.5).
    Bicubic,
    /// Box filter (area average when shrinking).
    Area,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Area => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Nearest | Filter::Area => {
                if x < 0.5 {
                    1.0
                } else if x == 0.5 {
                    0.5
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per-output-index source window and normalised weights along one axis.
pub(crate) struct AxisWeights {
    pub(crate) start: Vec<usize>,
    pub(crate) len: Vec<usize>,
    /// `taps` weights per output index; those past `len` are 0.
    pub(crate) w: Vec<f32>,
    pub(crate) taps: usize,
}

/// Weights mapping `out_len` outputs onto the source interval `[src0, src0 + src_len)` of an
/// axis of `in_len` pixels (edge pixels repeat outside). `flip` reverses the output order.
pub(crate) fn axis_weights(
    in_len: usize,
    src0: f64,
    src_len: f64,
    out_len: usize,
    filter: Filter,
    flip: bool,
) -> AxisWeights {
    let scale = src_len / out_len as f64;
    let mut start = Vec::with_capacity(out_len);
    let mut len = Vec::with_capacity(out_len);
    if filter == Filter::Nearest {
        for o in 0..out_len {
            let oo = if flip { out_len - 1 - o } else { o };
            let c = src0 + (oo as f64 + 0.5) * scale;
            let i = (c.floor() as i64).clamp(0, in_len as i64 - 1) as usize;
            start.push(i);
            len.push(1);
        }
        return AxisWeights {
            start,
            len,
            w: vec![1.0; out_len],
            taps: 1,
        };
    }
    // Antialias: stretch the filter by the shrink factor.
    let fscale = scale.max(1.0);
    let support = filter.support() * fscale;
    let taps = (support * 2.0).ceil() as usize + 1;
    let mut w = vec![0f32; out_len * taps];
    let mut tmp = vec![0f64; taps];
    for o in 0..out_len {
        let oo = if flip { out_len - 1 - o } else { o };
        let center = src0 + (oo as f64 + 0.5) * scale;
        let lo = (center - support - 0.5).floor() as i64;
        let hi = (center + support + 0.5).ceil() as i64;
        // Taps outside the image are dropped and the rest renormalised (as TensorFlow's
        // scale_and_translate and PIL do), rather than repeating the edge pixel.
        let first = lo.max(0).min(in_len as i64 - 1);
        let last = hi.min(in_len as i64 - 1).max(first);
        let n = ((last - first + 1) as usize).min(taps);
        tmp[..n].iter_mut().for_each(|v| *v = 0.0);
        let mut total = 0.0;
        for j in first..first + n as i64 {
            let wt = filter.weight((j as f64 + 0.5 - center) / fscale);
            tmp[(j - first) as usize] = wt;
            total += wt;
        }
        if total == 0.0 {
            tmp[0] = 1.0;
            total = 1.0;
        }
        for k in 0..n {
            w[o * taps + k] = (tmp[k] / total) as f32;
        }
        start.push(first as usize);
        len.push(n);
    }
    AxisWeights {
        start,
        len,
        w,
        taps,
    }
}

/// Resamples the source window `[x0, y0, x1, y1)` (continuous pixel coordinates) of `img` to
/// `out_w x out_h`; `flip_x` mirrors the result. Separable: a horizontal pass over the rows the
/// vertical filter needs, then a vertical pass.
pub(crate) fn resample<T: Pixel>(
    img: &Image<T>,
    window: [f64; 4],
    out_w: usize,
    out_h: usize,
    filter: Filter,
    flip_x: bool,
) -> Result<Image<T>> {
    resample_flip(img, window, out_w, out_h, filter, flip_x, false)
}

pub(crate) fn resample_flip<T: Pixel>(
    img: &Image<T>,
    window: [f64; 4],
    out_w: usize,
    out_h: usize,
    filter: Filter,
    flip_x: bool,
    flip_y: bool,
) -> Result<Image<T>> {
    if out_w == 0 || out_h == 0 || img.width == 0 || img.height == 0 {
        return Err(Error::invalid(
            "resize",
            format!(
                "cannot resize {}x{} to {out_w}x{out_h}",
                img.width, img.height
            ),
        ));
    }
    if out_w.saturating_mul(out_h) > 1 << 28 {
        return Err(Error::invalid(
            "resize",
            format!("output {out_w}x{out_h} is too large"),
        ));
    }
    let c = img.channels;
    let [x0, y0, x1, y1] = window;
    let xw = axis_weights(img.width, x0, x1 - x0, out_w, filter, flip_x);
    let yw = axis_weights(img.height, y0, y1 - y0, out_h, filter, flip_y);
    if filter == Filter::Nearest {
        let mut data = Vec::with_capacity(out_w * out_h * c);
        for oy in 0..out_h {
            let row = yw.start[oy] * img.width;
            for ox in 0..out_w {
                let s = (row + xw.start[ox]) * c;
                data.extend_from_slice(&img.data[s..s + c]);
            }
        }
        return Ok(Image {
            width: out_w,
            height: out_h,
            channels: c,
            data,
        });
    }
    // Rows of the source that the vertical pass reads.
    let rmin = *yw.start.iter().min().unwrap();
    let rmax = yw
        .start
        .iter()
        .zip(&yw.len)
        .map(|(s, l)| s + l)
        .max()
        .unwrap();
    let nrows = rmax - rmin;
    let mut tmp = vec![0f32; nrows * out_w * c];
    for r in 0..nrows {
        let src = &img.data[(rmin + r) * img.width * c..(rmin + r + 1) * img.width * c];
        let dst = &mut tmp[r * out_w * c..(r + 1) * out_w * c];
        for ox in 0..out_w {
            let (s, n) = (xw.start[ox], xw.len[ox]);
            let wts = &xw.w[ox * xw.taps..ox * xw.taps + n];
            let d = &mut dst[ox * c..ox * c + c];
            if c == 3 {
                let (mut a, mut b, mut e) = (0f32, 0f32, 0f32);
                for (k, &wt) in wts.iter().enumerate() {
                    let p = &src[(s + k) * 3..(s + k) * 3 + 3];
                    a += p[0].to_f32() * wt;
                    b += p[1].to_f32() * wt;
                    e += p[2].to_f32() * wt;
                }
                d[0] = a;
                d[1] = b;
                d[2] = e;
            } else {
                for ch in 0..c {
                    let mut acc = 0f32;
                    for (k, &wt) in wts.iter().enumerate() {
                        acc += src[(s + k) * c + ch].to_f32() * wt;
                    }
                    d[ch] = acc;
                }
            }
        }
    }
    let rowlen = out_w * c;
    let mut data = vec![T::default(); out_h * rowlen];
    let mut acc = vec![0f32; rowlen];
    for oy in 0..out_h {
        let (s, n) = (yw.start[oy] - rmin, yw.len[oy]);
        let wts = &yw.w[oy * yw.taps..oy * yw.taps + n];
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (k, &wt) in wts.iter().enumerate() {
            let row = &tmp[(s + k) * rowlen..(s + k + 1) * rowlen];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v * wt;
            }
        }
        let out = &mut data[oy * rowlen..(oy + 1) * rowlen];
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = T::from_f32(a);
        }
    }
    Ok(Image {
        width: out_w,
        height: out_h,
        channels: c,
        data,
    })
}

// ---------------------------------------------------------------------------------------------
// Decode / encode
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "image")]
/// Decodes JPEG, PNG (8/16-bit; grey, grey+alpha, RGB, RGBA), BMP or GIF (first frame).
/// `path` is only used in error messages.
pub fn decode(bytes: &[u8], path: impl AsRef<Path>) -> Result<DynImage> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return decode_jpeg(bytes, path).map(DynImage::U8);
    }
    let img = image::load_from_memory(bytes).map_err(|e| Error::image(&path, e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    use image::DynamicImage as D;
    // The `image` crate's buffers are already `h * w * channels` long.
    fn wrap<T>(w: usize, h: usize, channels: usize, data: Vec<T>) -> Image<T> {
        Image {
            width: w,
            height: h,
            channels,
            data,
        }
    }
    Ok(match img {
        D::ImageLuma8(b) => DynImage::U8(wrap(w, h, 1, b.into_raw())),
        D::ImageLumaA8(b) => DynImage::U8(wrap(w, h, 2, b.into_raw())),
        D::ImageRgb8(b) => DynImage::U8(wrap(w, h, 3, b.into_raw())),
        D::ImageRgba8(b) => DynImage::U8(wrap(w, h, 4, b.into_raw())),
        D::ImageLuma16(b) => DynImage::U16(wrap(w, h, 1, b.into_raw())),
        D::ImageLumaA16(b) => DynImage::U16(wrap(w, h, 2, b.into_raw())),
        D::ImageRgb16(b) => DynImage::U16(wrap(w, h, 3, b.into_raw())),
        D::ImageRgba16(b) => DynImage::U16(wrap(w, h, 4, b.into_raw())),
        other => DynImage::U8(wrap(w, h, 4, other.to_rgba8().into_raw())),
    })
}

#[cfg(feature = "image")]
/// Decodes a JPEG with `zune-jpeg` in strict mode (a truncated or corrupt stream is an error,
/// not a grey-filled image). Grey JPEGs stay one channel; CMYK/YCCK become RGB.
pub fn decode_jpeg(bytes: &[u8], path: impl AsRef<Path>) -> Result<Image<u8>> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    // zune-jpeg decodes a stream cut inside its last scan without complaint, so check that the
    // end-of-image marker follows the last start-of-scan (entropy-coded data cannot contain
    // FF D9 or FF DA because of byte stuffing).
    // Scanning back from the end, the first of the two markers met must be EOI (this stops
    // at the EOI, normally the last two bytes, instead of scanning the whole entropy data).
    let last = bytes
        .windows(2)
        .rposition(|w| w[0] == 0xFF && (w[1] == 0xD9 || w[1] == 0xDA));
    let eoi_after = last
        .is_some_and(|p| bytes[p + 1] == 0xD9 && bytes[..p].windows(2).any(|w| w == [0xFF, 0xDA]));
    if !eoi_after {
        return Err(Error::image(
            &path,
            "JPEG: truncated (no end-of-image marker after the last scan)",
        ));
    }
    let opts = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    d.decode_headers()
        .map_err(|e| Error::image(&path, format!("JPEG: {e:?}")))?;
    let cs = d.input_colorspace().unwrap_or(ColorSpace::RGB);
    let (out_cs, ch) = if matches!(cs, ColorSpace::Luma) {
        (ColorSpace::Luma, 1)
    } else {
        (ColorSpace::RGB, 3)
    };
    d.set_options(opts.jpeg_set_out_colorspace(out_cs));
    let data = d
        .decode()
        .map_err(|e| Error::image(&path, format!("JPEG: {e:?}")))?;
    let (w, h) = d
        .dimensions()
        .ok_or_else(|| Error::image(&path, "JPEG: no dimensions"))?;
    let ch = if data.len() == w * h * ch {
        ch
    } else {
        data.len() / (w * h).max(1)
    };
    Image::from_vec(w, h, ch, data)
        .map_err(|_| Error::image(&path, "JPEG: decoder returned a buffer of the wrong size"))
}

#[cfg(feature = "image")]
/// Decodes and converts to 3-channel 8-bit RGB.
pub fn decode_rgb8(bytes: &[u8], path: impl AsRef<Path>) -> Result<Image<u8>> {
    Ok(decode(bytes, path)?.into_u8().into_rgb())
}

#[cfg(feature = "image")]
/// Reads and decodes an image file.
pub fn read_image(path: impl AsRef<Path>) -> Result<DynImage> {
    let bytes = crate::fsutil::read(&path)?;
    decode(&bytes, path)
}

#[cfg(feature = "image")]
/// Reads and decodes an image file (as [`read_image`]: the one decode path of the workspace)
/// into the `image` crate's [`image::DynamicImage`], for code that draws or converts with that
/// crate (vision's drawing, the CLI's digit input). Channels and bit depth are kept.
pub fn read_image_dynamic(path: impl AsRef<Path>) -> Result<image::DynamicImage> {
    use image::{DynamicImage as D, ImageBuffer};
    let bad = || Error::image(&path, "decoded buffer does not match its size");
    Ok(match read_image(&path)? {
        DynImage::U8(i) => {
            let (w, h) = (i.width as u32, i.height as u32);
            match i.channels {
                1 => D::ImageLuma8(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                2 => D::ImageLumaA8(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                3 => D::ImageRgb8(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                _ => D::ImageRgba8(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
            }
        }
        DynImage::U16(i) => {
            let (w, h) = (i.width as u32, i.height as u32);
            match i.channels {
                1 => D::ImageLuma16(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                2 => D::ImageLumaA16(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                3 => D::ImageRgb16(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
                _ => D::ImageRgba16(ImageBuffer::from_raw(w, h, i.data).ok_or_else(bad)?),
            }
        }
    })
}

#[cfg(feature = "image")]
fn color_type(channels: usize, sixteen: bool) -> Result<image::ExtendedColorType> {
    use image::ExtendedColorType as E;
    Ok(match (channels, sixteen) {
        (1, false) => E::L8,
        (2, false) => E::La8,
        (3, false) => E::Rgb8,
        (4, false) => E::Rgba8,
        (1, true) => E::L16,
        (2, true) => E::La16,
        (3, true) => E::Rgb16,
        (4, true) => E::Rgba16,
        _ => {
            return Err(Error::invalid(
                "encode",
                format!("{channels} channels cannot be encoded"),
            ))
        }
    })
}

#[cfg(feature = "image")]
/// Encodes an 8-bit image as PNG.
pub fn encode_png(img: &Image<u8>) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            color_type(img.channels, false)?,
        )
        .map_err(|e| Error::image("<png>", e.to_string()))?;
    Ok(out)
}

#[cfg(feature = "image")]
/// Encodes a 16-bit image as PNG.
pub fn encode_png16(img: &Image<u16>) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    // The encoder takes native-endian samples and writes big-endian PNG.
    let bytes: Vec<u8> = img.data.iter().flat_map(|v| v.to_ne_bytes()).collect();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &bytes,
            img.width as u32,
            img.height as u32,
            color_type(img.channels, true)?,
        )
        .map_err(|e| Error::image("<png>", e.to_string()))?;
    Ok(out)
}

#[cfg(feature = "image")]
/// Encodes an 8-bit grey or RGB image as JPEG with `quality` 1..=100.
pub fn encode_jpeg(img: &Image<u8>, quality: u8) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    if img.channels != 1 && img.channels != 3 {
        return Err(Error::invalid(
            "encode_jpeg",
            format!("needs 1 or 3 channels, got {}", img.channels),
        ));
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            color_type(img.channels, false)?,
        )
        .map_err(|e| Error::image("<jpeg>", e.to_string()))?;
    Ok(out)
}

#[cfg(feature = "image")]
/// Writes an 8-bit image atomically as PNG or JPEG (quality 95), chosen by the extension.
pub fn save(img: &Image<u8>, path: impl AsRef<Path>) -> Result<()> {
    let p = path.as_ref();
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "png" => encode_png(img)?,
        "jpg" | "jpeg" => encode_jpeg(img, 95)?,
        _ => {
            return Err(Error::image(
                p,
                "unknown extension (use .png, .jpg or .jpeg)",
            ))
        }
    };
    Ok(write_atomic(p, &bytes)?)
}
