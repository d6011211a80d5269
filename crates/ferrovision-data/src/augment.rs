//! Seeded, target-aware augmentation.
//!
//! Every geometric op (flip, crop, random resized crop, resize, scale jitter, rotation, affine,
//! letterbox, rot90) is an affine map from input to output pixel coordinates. Consecutive
//! geometric ops are composed into one matrix and applied **once** to the image (bilinear), the
//! label map and instance masks (nearest), and the boxes (corners mapped, axis-aligned hull,
//! clipped, dropped with their labels below a minimum visible fraction). So the targets cannot
//! drift apart from the pixels, and the image is resampled only once. Photometric ops touch the
//! image only. Randomness comes from the `Rng` passed in (see `Dataset::map_seeded`).

use crate::fused::{jitter_chw, normalize_chw, resample_to_chw, u8_to_chw, Jitter, GREY};
use crate::image::{hsv_to_rgb, resample_flip, rgb_to_hsv, Filter, Image, Normalize, Pixel};
use crate::sample::{ImageSample, Sample};
use crate::{Error, Result};
use ferrovision_tensor::rng::Rng;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Affine geometry
// ---------------------------------------------------------------------------------------------

/// An affine map `[a, b, c, d, e, f]`: `x' = a x + b y + c`, `y' = d x + e y + f`, from input to
/// output continuous pixel coordinates (pixel `i` covers `[i, i + 1)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// The identity map.
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    /// `self` then `next`.
    pub fn then(self, next: Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [p, q, r, s, t, u] = next.0;
        Affine([
            p * a + q * d,
            p * b + q * e,
            p * c + q * f + r,
            s * a + t * d,
            s * b + t * e,
            s * c + t * f + u,
        ])
    }

    /// Maps a point.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// The inverse map (None when singular).
    pub fn inverse(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([
            ia,
            ib,
            -(ia * c + ib * f),
            id,
            ie,
            -(id * c + ie * f),
        ]))
    }

    fn translate(tx: f64, ty: f64) -> Affine {
        Affine([1.0, 0.0, tx, 0.0, 1.0, ty])
    }

    fn scale(sx: f64, sy: f64) -> Affine {
        Affine([sx, 0.0, 0.0, 0.0, sy, 0.0])
    }
}

/// Pending geometry: a map from the current image to an output of `out_w x out_h`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    m: Affine,
    out_w: usize,
    out_h: usize,
}

/// For an axis-aligned map (scale, translate, flip) whose source window lies inside a
/// `width x height` image: the window `[x0, y0, x1, y1]` and whether x and y are mirrored.
fn axis_window(g: &Geometry, width: usize, height: usize) -> Option<([f64; 4], bool, bool)> {
    let [a, b, _, d, e, _] = g.m.0;
    if !(b == 0.0 && d == 0.0 && a != 0.0 && e != 0.0) {
        return None;
    }
    let inv = g.m.inverse()?;
    let (x0, y0) = inv.apply(0.0, 0.0);
    let (x1, y1) = inv.apply(g.out_w as f64, g.out_h as f64);
    let win = [x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)];
    let inside = win[0] >= -1e-6
        && win[1] >= -1e-6
        && win[2] <= width as f64 + 1e-6
        && win[3] <= height as f64 + 1e-6;
    inside.then_some((win, x1 < x0, y1 < y0))
}

fn warp_image<T: Pixel>(img: &Image<T>, g: &Geometry, filter: Filter, fill: T) -> Result<Image<T>> {
    let [_, _, c, _, _, f] = g.m.0;
    if let Some((win, flip_x, flip_y)) = axis_window(g, img.width, img.height) {
        // Axis-aligned (scale, translate, flip): separable resampling with antialiasing.
        return resample_flip(img, win, g.out_w, g.out_h, filter, flip_x, flip_y);
    }
    // General map (rotation, shear, or windows leaving the image): per-pixel inverse mapping.
    let inv =
        g.m.inverse()
            .ok_or_else(|| Error::invalid("augment", "geometric transform is singular"))?;
    let ch = img.channels;
    let (w, h) = (img.width as i64, img.height as i64);
    let mut out = Image::new(g.out_w, g.out_h, ch, fill);
    let _ = (c, f);
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            let (sx, sy) = inv.apply(ox as f64 + 0.5, oy as f64 + 0.5);
            let o = (oy * g.out_w + ox) * ch;
            if filter == Filter::Nearest {
                let (ix, iy) = (sx.floor() as i64, sy.floor() as i64);
                if ix >= 0 && iy >= 0 && ix < w && iy < h {
                    let s = (iy as usize * img.width + ix as usize) * ch;
                    out.data[o..o + ch].copy_from_slice(&img.data[s..s + ch]);
                }
                continue;
            }
            // Bilinear between pixel centres; outside samples take the fill value.
            let (fx, fy) = (sx - 0.5, sy - 0.5);
            if fx < -1.0 || fy < -1.0 || fx > w as f64 || fy > h as f64 {
                continue;
            }
            let (x0, y0) = (fx.floor() as i64, fy.floor() as i64);
            let (tx, ty) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
            for k in 0..ch {
                let px = |x: i64, y: i64| -> f32 {
                    if x >= 0 && y >= 0 && x < w && y < h {
                        img.data[(y as usize * img.width + x as usize) * ch + k].to_f32()
                    } else {
                        fill.to_f32()
                    }
                };
                let v = (px(x0, y0) * (1.0 - tx) + px(x0 + 1, y0) * tx) * (1.0 - ty)
                    + (px(x0, y0 + 1) * (1.0 - tx) + px(x0 + 1, y0 + 1) * tx) * ty;
                out.data[o + k] = T::from_f32(v);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Ops and config
// ---------------------------------------------------------------------------------------------

/// One augmentation step. Serialised as `{"op": "hflip", "p": 0.5}` and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Horizontal flip with probability `p`.
    Hflip { p: f32 },
    /// Vertical flip with probability `p`.
    Vflip { p: f32 },
    /// Resize to `[height, width]`.
    Resize {
        size: [usize; 2],
        #[serde(default = "default_filter")]
        filter: Filter,
    },
    /// Resize keeping the aspect ratio and pad to `[height, width]`.
    Letterbox { size: [usize; 2] },
    /// Central crop of `[height, width]` (pads with the fill value when the image is smaller).
    CenterCrop { size: [usize; 2] },
    /// A random `[height, width]` window, after padding every side by `padding` pixels of the
    /// fill value (torchvision's `RandomCrop(size, padding)`; the CIFAR recipe is `size`
    /// 32x32 with `padding` 4).
    RandomCrop {
        size: [usize; 2],
        #[serde(default)]
        padding: usize,
    },
    /// Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize to `size`.
    RandomResizedCrop {
        size: [usize; 2],
        #[serde(default = "default_rrc_scale")]
        scale: [f32; 2],
        #[serde(default = "default_rrc_ratio")]
        ratio: [f32; 2],
    },
    /// Resize by a random factor in `[min, max]`.
    ScaleJitter { min: f32, max: f32 },
    /// Rotate by a random angle in `[-degrees, degrees]` about the centre (same output size).
    Rotate { degrees: f32 },
    /// Random affine: rotation, translation (fraction of size), zoom range and shear (degrees).
    Affine {
        #[serde(default)]
        degrees: f32,
        #[serde(default)]
        translate: [f32; 2],
        #[serde(default = "one_one")]
        scale: [f32; 2],
        #[serde(default)]
        shear: f32,
    },
    /// Rotate by a random multiple of 90 degrees.
    Rot90,
    /// Colour jitter like torchvision's `ColorJitter`: factors drawn from `[1-x, 1+x]` (hue shift
    /// from `[-hue, hue]`), applied in a random order.
    ColorJitter {
        #[serde(default)]
        brightness: f32,
        #[serde(default)]
        contrast: f32,
        #[serde(default)]
        saturation: f32,
        #[serde(default)]
        hue: f32,
    },
    /// Gamma correction with gamma drawn from `[min, max]`.
    Gamma { min: f32, max: f32 },
    /// Additive Gaussian noise with standard deviation `std` (in 0..255 units).
    GaussianNoise { std: f32 },
    /// Gaussian blur with sigma drawn from `[min, max]`, with probability `p`.
    Blur { min: f32, max: f32, p: f32 },
    /// `count` random squares of side `size` filled with grey.
    Cutout { size: usize, count: usize },
    /// Convert to grey (kept 3 channels) with probability `p`.
    Grayscale { p: f32 },
}

fn default_filter() -> Filter {
    Filter::Bilinear
}
fn default_rrc_scale() -> [f32; 2] {
    [0.08, 1.0]
}
fn default_rrc_ratio() -> [f32; 2] {
    [0.75, 4.0 / 3.0]
}
fn one_one() -> [f32; 2] {
    [1.0, 1.0]
}

/// An augmentation pipeline, loadable from JSON:
///
/// ```json
/// {"ops": [{"op": "random_resized_crop", "size": [224, 224]}, {"op": "hflip", "p": 0.5},
///          {"op": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}],
///  "min_box_visibility": 0.3, "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Steps in order.
    pub ops: Vec<Op>,
    /// A box whose visible part after a geometric op is below this fraction of its transformed
    /// area (or under 1 pixel wide/high) is dropped with its label and mask.
    #[serde(default = "default_vis")]
    pub min_box_visibility: f32,
    /// Pixel value for areas outside the source image.
    #[serde(default)]
    pub fill: u8,
    /// Label-map value for areas outside the source image (the "ignore" class).
    #[serde(default = "default_mask_fill")]
    pub mask_fill: u8,
    /// Normalisation applied by [`Augment::to_sample`].
    #[serde(default)]
    pub normalize: Option<Normalize>,
}

fn default_vis() -> f32 {
    0.25
}
fn default_mask_fill() -> u8 {
    255
}

impl Augment {
    /// A pipeline of `ops` with default settings.
    pub fn new(ops: Vec<Op>) -> Self {
        Augment {
            ops,
            min_box_visibility: default_vis(),
            fill: 0,
            mask_fill: default_mask_fill(),
            normalize: None,
        }
    }

    /// Parses a JSON description; errors name `source` and the offending field/line.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let a: Augment = serde_json::from_str(text)
            .map_err(|e| Error::parse(source, Some(e.line()), e.to_string()))?;
        a.check(source)?;
        Ok(a)
    }

    /// Reads a JSON description from a file.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let text = crate::fsutil::read_to_string(&path)?;
        Self::from_json(&text, &path.as_ref().display().to_string())
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("Augment serialises")
    }

    fn check(&self, source: &str) -> Result<()> {
        let bad = |i: usize, m: &str| Err(Error::parse(source, None, format!("ops[{i}]: {m}")));
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Hflip { p } | Op::Vflip { p } | Op::Grayscale { p }
                    if !(0.0..=1.0).contains(p) =>
                {
                    return bad(i, "p must be in [0, 1]")
                }
                Op::Resize { size, .. }
                | Op::Letterbox { size }
                | Op::CenterCrop { size }
                | Op::RandomCrop { size, .. }
                | Op::RandomResizedCrop { size, .. }
                    if size[0] == 0 || size[1] == 0 || size[0] > 1 << 14 || size[1] > 1 << 14 =>
                {
                    return bad(i, "size must be in 1..=16384")
                }
                Op::RandomCrop { padding, .. } if *padding > 1 << 14 => {
                    return bad(i, "padding must be in 0..=16384")
                }
                Op::RandomResizedCrop { scale, ratio, .. }
                    if !(scale[0] > 0.0
                        && scale[0] <= scale[1]
                        && scale[1] <= 1.0
                        && ratio[0] > 0.0
                        && ratio[0] <= ratio[1]) =>
                {
                    return bad(
                        i,
                        "scale must satisfy 0 < lo <= hi <= 1 and ratio 0 < lo <= hi",
                    )
                }
                // Resizing by more than 16x would allocate images far beyond any real input.
                Op::ScaleJitter { min, max } if !(*min > 0.0 && min <= max && *max <= 16.0) => {
                    return bad(i, "needs 0 < min <= max <= 16")
                }
                Op::Gamma { min, max } if !(*min > 0.0 && min <= max && *max <= 100.0) => {
                    return bad(i, "needs 0 < min <= max <= 100")
                }
                Op::Rotate { degrees } if !(0.0..=360.0).contains(degrees) => {
                    return bad(i, "degrees must be in [0, 360]")
                }
                Op::Affine {
                    degrees,
                    translate,
                    scale,
                    shear,
                } if !((0.0..=360.0).contains(degrees)
                    && translate.iter().all(|t| (0.0..=1.0).contains(t))
                    && scale[0] > 0.0
                    && scale[0] <= scale[1]
                    && scale[1] <= 10.0
                    && (0.0..90.0).contains(shear)) =>
                {
                    return bad(
                        i,
                        "needs degrees in [0, 360], translate in [0, 1], scale 0 < lo <= hi <= \
                         10 and shear in [0, 90)",
                    )
                }
                Op::ColorJitter {
                    brightness,
                    contrast,
                    saturation,
                    hue,
                } if ![brightness, contrast, saturation]
                    .iter()
                    .all(|x| (0.0..=100.0).contains(*x))
                    || !(0.0..=0.5).contains(hue) =>
                {
                    return bad(i, "jitter amounts must be in [0, 100] and hue in [0, 0.5]")
                }
                Op::GaussianNoise { std } if !(0.0..=255.0).contains(std) => {
                    return bad(i, "std must be in [0, 255]")
                }
                Op::Blur { min, max, p }
                    if !(*min >= 0.0 && min <= max && *max <= 64.0 && (0.0..=1.0).contains(p)) =>
                {
                    return bad(i, "needs 0 <= min <= max <= 64 and p in [0, 1]")
                }
                Op::Cutout { size, count } if *size == 0 || *size > 1 << 14 || *count > 1024 => {
                    return bad(i, "size must be in 1..=16384 and count at most 1024")
                }
                _ => {}
            }
        }
        if let Some(n) = &self.normalize {
            let ok = !n.mean.is_empty()
                && n.mean.len() == n.std.len()
                && n.mean.iter().all(|m| m.is_finite())
                && n.std.iter().all(|s| s.is_finite() && *s > 0.0);
            if !ok {
                return Err(Error::parse(
                    source,
                    None,
                    "normalize needs as many finite means as standard deviations, each std > 0",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.min_box_visibility) {
            return Err(Error::parse(
                source,
                None,
                "min_box_visibility must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// Applies the pipeline to one sample.
    pub fn apply(&self, mut s: ImageSample, rng: &mut Rng) -> Result<ImageSample> {
        let mut geo: Option<Geometry> = None;
        for op in &self.ops {
            let (w, h) = match &geo {
                Some(g) => (g.out_w, g.out_h),
                None => (s.image.width, s.image.height),
            };
            if let Some(step) = self.geometric(op, w, h, rng)? {
                geo = Some(match geo {
                    Some(g) => Geometry {
                        m: g.m.then(step.m),
                        out_w: step.out_w,
                        out_h: step.out_h,
                    },
                    None => step,
                });
                continue;
            }
            if let Some(g) = geo.take() {
                s = self.apply_geometry(s, &g)?;
            }
            self.photometric(op, &mut s.image, rng)?;
        }
        if let Some(g) = geo.take() {
            s = self.apply_geometry(s, &g)?;
        }
        Ok(s)
    }

    /// Whether [`apply_image_chw`](Self::apply_image_chw) takes the fused path: geometric ops
    /// first, then only colour jitter.
    pub fn is_fused(&self) -> bool {
        let mut photometric = false;
        for op in &self.ops {
            match op {
                Op::ColorJitter { .. } => photometric = true,
                Op::Gamma { .. }
                | Op::GaussianNoise { .. }
                | Op::Blur { .. }
                | Op::Cutout { .. }
                | Op::Grayscale { .. } => return false,
                _ if photometric => return false,
                _ => {}
            }
        }
        true
    }

    /// Applies the pipeline to an image without targets and writes the result as planar f32
    /// `[C, H, W]` in [0, 1] (then normalised when `normalize` is set) into `out`, which must
    /// hold exactly that many values; returns `[C, H, W]`. The generator is used exactly as by
    /// [`apply`](Self::apply), so the same crop, flip and jitter factors are drawn.
    ///
    /// Pipelines of geometric ops followed by colour jitter on 1- or 3-channel images (see
    /// [`is_fused`](Self::is_fused)) take a fused path: one resampling pass from the 8-bit
    /// image straight into `out` (crop, resize and flip together; windows inside the image),
    /// then the jitter in float in place, with no 8-bit rounding in between. It agrees with
    /// `apply` followed by [`Image::to_tensor_chw`] up to that rounding. Other pipelines run
    /// `apply` and convert.
    pub fn apply_image_chw(
        &self,
        img: &Image<u8>,
        rng: &mut Rng,
        out: &mut [f32],
    ) -> Result<[usize; 3]> {
        let c = img.channels;
        let check = |shape: [usize; 3], out: &[f32]| {
            let n = shape.iter().product::<usize>();
            if out.len() == n {
                Ok(shape)
            } else {
                Err(Error::invalid(
                    "apply_image_chw",
                    format!(
                        "the augmented image is {shape:?} ({n} values), the output holds {}",
                        out.len()
                    ),
                ))
            }
        };
        if !(self.is_fused() && (c == 1 || c == 3)) {
            let s = self.apply(ImageSample::from_image(img.clone()), rng)?;
            let shape = check([c, s.image.height, s.image.width], out)?;
            u8_to_chw(&s.image, out)?;
            if let Some(n) = &self.normalize {
                normalize_chw(out, c, n);
            }
            return Ok(shape);
        }
        let (mut w, mut h) = (img.width, img.height);
        let mut geo: Option<Geometry> = None;
        let mut jitters = Vec::new();
        for op in &self.ops {
            if let Some(step) = self.geometric(op, w, h, rng)? {
                (w, h) = (step.out_w, step.out_h);
                geo = Some(match geo {
                    Some(g) => Geometry {
                        m: g.m.then(step.m),
                        out_w: step.out_w,
                        out_h: step.out_h,
                    },
                    None => step,
                });
            } else if let Op::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
            } = op
            {
                jitters.push(Jitter::draw(*brightness, *contrast, *saturation, *hue, rng));
            }
        }
        let shape = check([c, h, w], out)?;
        match geo {
            Some(g) if !(g.m == Affine::IDENTITY && w == img.width && h == img.height) => {
                if let Some((win, fx, fy)) = axis_window(&g, img.width, img.height) {
                    resample_to_chw(img, win, w, h, fx, fy, out)?;
                } else {
                    // Rotation, shear or a window leaving the image: the general warp, in f32.
                    let f = warp_image(
                        &img.to_f32(),
                        &g,
                        Filter::Bilinear,
                        self.fill as f32 / 255.0,
                    )?;
                    let n = w * h;
                    for (i, px) in f.data.chunks_exact(c).enumerate() {
                        for (ch, &v) in px.iter().enumerate() {
                            out[ch * n + i] = v;
                        }
                    }
                }
            }
            _ => u8_to_chw(img, out)?,
        }
        for j in &jitters {
            jitter_chw(out, c, j)?;
        }
        if let Some(n) = &self.normalize {
            normalize_chw(out, c, n);
        }
        Ok(shape)
    }

    /// [`apply`](Self::apply) then conversion to tensors with the configured normalisation.
    pub fn to_sample(&self, s: &ImageSample) -> Result<Sample> {
        s.to_sample(self.normalize.as_ref())
    }

    fn geometric(&self, op: &Op, w: usize, h: usize, rng: &mut Rng) -> Result<Option<Geometry>> {
        let (wf, hf) = (w as f64, h as f64);
        let same = |m: Affine| {
            Some(Geometry {
                m,
                out_w: w,
                out_h: h,
            })
        };
        let uni = |rng: &mut Rng, a: f32, b: f32| a as f64 + (b - a) as f64 * rng.next_f64();
        Ok(match op {
            Op::Hflip { p } => {
                if rng.next_f32() < *p {
                    same(Affine([-1.0, 0.0, wf, 0.0, 1.0, 0.0]))
                } else {
                    same(Affine::IDENTITY)
                }
            }
            Op::Vflip { p } => {
                if rng.next_f32() < *p {
                    same(Affine([1.0, 0.0, 0.0, 0.0, -1.0, hf]))
                } else {
                    same(Affine::IDENTITY)
                }
            }
            Op::Resize { size, .. } => Some(Geometry {
                m: Affine::scale(size[1] as f64 / wf, size[0] as f64 / hf),
                out_w: size[1],
                out_h: size[0],
            }),
            Op::Letterbox { size } => {
                let s = (size[1] as f64 / wf).min(size[0] as f64 / hf);
                let (nw, nh) = (wf * s, hf * s);
                let (l, t) = (
                    ((size[1] as f64 - nw) / 2.0).floor(),
                    ((size[0] as f64 - nh) / 2.0).floor(),
                );
                Some(Geometry {
                    m: Affine::scale(s, s).then(Affine::translate(l, t)),
                    out_w: size[1],
                    out_h: size[0],
                })
            }
            Op::CenterCrop { size } => {
                let (l, t) = (
                    ((wf - size[1] as f64) / 2.0).floor(),
                    ((hf - size[0] as f64) / 2.0).floor(),
                );
                Some(Geometry {
                    m: Affine::translate(-l, -t),
                    out_w: size[1],
                    out_h: size[0],
                })
            }
            Op::RandomCrop { size, padding } => {
                // A window of the image padded by `padding` on every side, drawn uniformly;
                // the padding is the fill value (outside the source image).
                let (pw, ph) = (w + 2 * padding, h + 2 * padding);
                let l = if pw > size[1] {
                    rng.below((pw - size[1] + 1) as u64) as f64
                } else {
                    0.0
                };
                let t = if ph > size[0] {
                    rng.below((ph - size[0] + 1) as u64) as f64
                } else {
                    0.0
                };
                let p = *padding as f64;
                Some(Geometry {
                    m: Affine::translate(p - l, p - t),
                    out_w: size[1],
                    out_h: size[0],
                })
            }
            Op::RandomResizedCrop { size, scale, ratio } => {
                let (cx, cy, cw, ch) = rrc_window(w, h, *scale, *ratio, rng);
                Some(Geometry {
                    m: Affine::translate(-cx, -cy)
                        .then(Affine::scale(size[1] as f64 / cw, size[0] as f64 / ch)),
                    out_w: size[1],
                    out_h: size[0],
                })
            }
            Op::ScaleJitter { min, max } => {
                let s = uni(rng, *min, *max);
                let (nw, nh) = (
                    ((wf * s).round() as usize).max(1),
                    ((hf * s).round() as usize).max(1),
                );
                Some(Geometry {
                    m: Affine::scale(nw as f64 / wf, nh as f64 / hf),
                    out_w: nw,
                    out_h: nh,
                })
            }
            Op::Rotate { degrees } => {
                let a = uni(rng, -degrees, *degrees).to_radians();
                same(about_centre(wf, hf, rotation(a)))
            }
            Op::Affine {
                degrees,
                translate,
                scale,
                shear,
            } => {
                let a = uni(rng, -degrees, *degrees).to_radians();
                let z = uni(rng, scale[0], scale[1]);
                let sh = uni(rng, -shear, *shear).to_radians().tan();
                let tx = uni(rng, -translate[0], translate[0]) * wf;
                let ty = uni(rng, -translate[1], translate[1]) * hf;
                let core = Affine([1.0, sh, 0.0, 0.0, 1.0, 0.0])
                    .then(rotation(a))
                    .then(Affine::scale(z, z));
                same(about_centre(wf, hf, core).then(Affine::translate(tx, ty)))
            }
            Op::Rot90 => {
                let k = rng.below(4);
                // Counter-clockwise quarter turns: (x, y) -> (y, w - x) swaps the sides.
                let mut m = Affine::IDENTITY;
                let (mut cw, mut chh) = (wf, hf);
                for _ in 0..k {
                    m = m.then(Affine([0.0, 1.0, 0.0, -1.0, 0.0, cw]));
                    std::mem::swap(&mut cw, &mut chh);
                }
                Some(Geometry {
                    m,
                    out_w: cw as usize,
                    out_h: chh as usize,
                })
            }
            _ => None,
        })
    }

    fn apply_geometry(&self, mut s: ImageSample, g: &Geometry) -> Result<ImageSample> {
        if g.m == Affine::IDENTITY && g.out_w == s.image.width && g.out_h == s.image.height {
            return Ok(s);
        }
        s.image = warp_image(&s.image, g, Filter::Bilinear, self.fill)?;
        if let Some(m) = &s.label_map {
            s.label_map = Some(warp_image(m, g, Filter::Nearest, self.mask_fill)?);
        }
        let masks = std::mem::take(&mut s.instance_masks);
        let masks: Vec<Image<u8>> = masks
            .iter()
            .map(|m| warp_image(m, g, Filter::Nearest, 0))
            .collect::<Result<_>>()?;
        let (ow, oh) = (g.out_w as f64, g.out_h as f64);
        let mut boxes = Vec::new();
        let mut labels = Vec::new();
        let mut kept_masks = Vec::new();
        for (i, b) in s.boxes.iter().enumerate() {
            let pts = [(b[0], b[1]), (b[2], b[1]), (b[0], b[3]), (b[2], b[3])]
                .map(|(x, y)| g.m.apply(x as f64, y as f64));
            let x0 = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let x1 = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            let y0 = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let y1 = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let area = (x1 - x0) * (y1 - y0);
            let (cx0, cy0, cx1, cy1) = (x0.max(0.0), y0.max(0.0), x1.min(ow), y1.min(oh));
            let visible = (cx1 - cx0).max(0.0) * (cy1 - cy0).max(0.0);
            if cx1 - cx0 < 1.0
                || cy1 - cy0 < 1.0
                || area <= 0.0
                || visible / area < self.min_box_visibility as f64
            {
                continue;
            }
            boxes.push([cx0 as f32, cy0 as f32, cx1 as f32, cy1 as f32]);
            labels.push(s.box_labels.get(i).copied().unwrap_or(0));
            if let Some(m) = masks.get(i) {
                kept_masks.push(m.clone());
            }
        }
        s.boxes = boxes;
        s.box_labels = labels;
        s.instance_masks = kept_masks;
        Ok(s)
    }

    fn photometric(&self, op: &Op, img: &mut Image<u8>, rng: &mut Rng) -> Result<()> {
        let uni = |rng: &mut Rng, a: f32, b: f32| a + (b - a) * rng.next_f32();
        match op {
            Op::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
            } => {
                let j = Jitter::draw(*brightness, *contrast, *saturation, *hue, rng);
                jitter_u8(img, &j)?;
            }
            Op::Gamma { min, max } => {
                let g = uni(rng, *min, *max);
                let lut: Vec<u8> = (0..256)
                    .map(|v| u8::from_f32(255.0 * (v as f32 / 255.0).powf(g)))
                    .collect();
                img.data.iter_mut().for_each(|v| *v = lut[*v as usize]);
            }
            Op::GaussianNoise { std } => {
                for v in img.data.iter_mut() {
                    // Box-Muller from two uniforms.
                    let u1 = rng.next_f32().max(1e-7);
                    let u2 = rng.next_f32();
                    let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                    *v = u8::from_f32((*v as f32 + n * std).clamp(0.0, 255.0));
                }
            }
            Op::Blur { min, max, p } => {
                if rng.next_f32() < *p {
                    let sigma = uni(rng, *min, *max);
                    *img = gaussian_blur(img, sigma);
                }
            }
            Op::Cutout { size, count } => {
                for _ in 0..*count {
                    let cx = rng.below(img.width.max(1) as u64) as i64;
                    let cy = rng.below(img.height.max(1) as u64) as i64;
                    let half = (*size / 2) as i64;
                    for y in (cy - half).max(0)..(cy - half + *size as i64).min(img.height as i64) {
                        for x in
                            (cx - half).max(0)..(cx - half + *size as i64).min(img.width as i64)
                        {
                            for c in 0..img.channels {
                                img.set(x as usize, y as usize, c, 128);
                            }
                        }
                    }
                }
            }
            Op::Grayscale { p } => {
                if rng.next_f32() < *p && img.channels >= 3 {
                    let c = img.channels;
                    for px in img.data.chunks_exact_mut(c) {
                        let l = u8::from_f32(
                            0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32,
                        );
                        px[..3].fill(l);
                    }
                }
            }
            _ => unreachable!("geometric ops are handled before"),
        }
        Ok(())
    }
}

fn rotation(a: f64) -> Affine {
    let (s, c) = a.sin_cos();
    Affine([c, -s, 0.0, s, c, 0.0])
}

fn about_centre(w: f64, h: f64, m: Affine) -> Affine {
    Affine::translate(-w / 2.0, -h / 2.0)
        .then(m)
        .then(Affine::translate(w / 2.0, h / 2.0))
}

/// torchvision's RandomResizedCrop window: 10 tries of (area, log-ratio), else a central crop
/// clamped to the ratio range. Returns `(x, y, w, h)`.
fn rrc_window(
    w: usize,
    h: usize,
    scale: [f32; 2],
    ratio: [f32; 2],
    rng: &mut Rng,
) -> (f64, f64, f64, f64) {
    let area = (w * h) as f64;
    let (lr0, lr1) = ((ratio[0] as f64).ln(), (ratio[1] as f64).ln());
    for _ in 0..10 {
        let ta = area * (scale[0] as f64 + (scale[1] - scale[0]) as f64 * rng.next_f64());
        let ar = (lr0 + (lr1 - lr0) * rng.next_f64()).exp();
        let cw = (ta * ar).sqrt().round();
        let ch = (ta / ar).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w as f64 && ch <= h as f64 {
            let x = rng.below((w as f64 - cw) as u64 + 1) as f64;
            let y = rng.below((h as f64 - ch) as u64 + 1) as f64;
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio[0] as f64 {
        (w as f64, (w as f64 / ratio[0] as f64).round())
    } else if in_ratio > ratio[1] as f64 {
        ((h as f64 * ratio[1] as f64).round(), h as f64)
    } else {
        (w as f64, h as f64)
    };
    (
        ((w as f64 - cw) / 2.0).floor(),
        ((h as f64 - ch) / 2.0).floor(),
        cw,
        ch,
    )
}

/// Colour jitter on an 8-bit image: its colour channels (the first 3, or the first 1 of grey
/// and grey + alpha) go to float, are adjusted by [`jitter_chw`] and are rounded back once;
/// alpha is left alone.
fn jitter_u8(img: &mut Image<u8>, j: &Jitter) -> Result<()> {
    let c = img.channels;
    let cc = if c >= 3 { 3 } else { 1 };
    let n = img.width * img.height;
    let mut buf = vec![0f32; cc * n];
    for (i, px) in img.data.chunks_exact(c).enumerate() {
        for ch in 0..cc {
            buf[ch * n + i] = px[ch] as f32 * (1.0 / 255.0);
        }
    }
    jitter_chw(&mut buf, cc, j)?;
    for (i, px) in img.data.chunks_exact_mut(c).enumerate() {
        for ch in 0..cc {
            px[ch] = u8::from_f32(buf[ch * n + i] * 255.0);
        }
    }
    Ok(())
}

/// `v * factor`.
pub fn adjust_brightness(img: &mut Image<u8>, factor: f32) {
    let lut: Vec<u8> = (0..256)
        .map(|v| u8::from_f32((v as f32 * factor).min(255.0)))
        .collect();
    img.data.iter_mut().for_each(|v| *v = lut[*v as usize]);
}

/// Blend with the mean grey level: `mean + (v - mean) * factor`.
pub fn adjust_contrast(img: &mut Image<u8>, factor: f32) {
    let c = img.channels;
    let n = (img.data.len() / c).max(1);
    let mean = if c >= 3 {
        img.data
            .chunks_exact(c)
            .map(|p| GREY[0] * p[0] as f32 + GREY[1] * p[1] as f32 + GREY[2] * p[2] as f32)
            .sum::<f32>()
            / n as f32
    } else {
        img.data.iter().map(|&v| v as f32).sum::<f32>() / img.data.len().max(1) as f32
    };
    let lut: Vec<u8> = (0..256)
        .map(|v| u8::from_f32((mean + (v as f32 - mean) * factor).clamp(0.0, 255.0)))
        .collect();
    img.data.iter_mut().for_each(|v| *v = lut[*v as usize]);
}

/// Blend with the grey version: `grey + (v - grey) * factor`.
pub fn adjust_saturation(img: &mut Image<u8>, factor: f32) {
    let c = img.channels;
    if c < 3 {
        return;
    }
    for p in img.data.chunks_exact_mut(c) {
        let g = GREY[0] * p[0] as f32 + GREY[1] * p[1] as f32 + GREY[2] * p[2] as f32;
        for v in &mut p[..3] {
            *v = u8::from_f32((g + (*v as f32 - g) * factor).clamp(0.0, 255.0));
        }
    }
}

/// Shifts the hue by `delta` turns (in [-0.5, 0.5]) through HSV.
pub fn adjust_hue(img: &mut Image<u8>, delta: f32) {
    let c = img.channels;
    if c < 3 {
        return;
    }
    let s = 1.0 / 255.0;
    for p in img.data.chunks_exact_mut(c) {
        let (h, sat, v) = rgb_to_hsv(p[0] as f32 * s, p[1] as f32 * s, p[2] as f32 * s);
        let (r, g, b) = hsv_to_rgb(h + delta, sat, v);
        p[0] = u8::from_f32(r * 255.0);
        p[1] = u8::from_f32(g * 255.0);
        p[2] = u8::from_f32(b * 255.0);
    }
}

/// Separable Gaussian blur (kernel radius 3 sigma, edges repeated).
pub fn gaussian_blur(img: &Image<u8>, sigma: f32) -> Image<u8> {
    if sigma <= 0.0 {
        return img.clone();
    }
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let (w, h, c) = (img.width as i64, img.height as i64, img.channels);
    let mut tmp = vec![0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut a = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let xx = (x + j as i64 - r).clamp(0, w - 1);
                    a += kv * img.data[((y * w + xx) as usize) * c + ch] as f32;
                }
                tmp[((y * w + x) as usize) * c + ch] = a;
            }
        }
    }
    let mut out = img.clone();
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut a = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let yy = (y + j as i64 - r).clamp(0, h - 1);
                    a += kv * tmp[((yy * w + x) as usize) * c + ch];
                }
                out.data[((y * w + x) as usize) * c + ch] = u8::from_f32(a);
            }
        }
    }
    out
}
