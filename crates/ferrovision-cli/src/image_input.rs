//! Turning a user's PNG/JPEG image into a model input: MNIST-like 28x28 digits for digit
//! models ([`load_digit`]), plain resized RGB or grey for others ([`load_input`]).
//!
//! MNIST digits are white on black, scaled so the digit fits a 20x20 box, and placed in a 28x28
//! image with their centre of mass at the centre. Photos and drawings usually differ in all three,
//! so [`load_digit`] does the same steps: grey (transparent pixels count as white paper), invert
//! when the border is bright (dark ink on light paper), crop to the ink, scale the longer side to
//! 20 pixels, and centre by mass. An image that is already 28x28 is only grey-converted and
//! inverted if needed, since it is most likely an MNIST-style image already.

use crate::error::{CliError, Result};
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};
use std::path::Path;

/// MNIST's image side.
const SIDE: u32 = 28;
/// The box MNIST scales each digit into.
const BOX: u32 = 20;
/// Pixels at least this bright (0-255, after inversion) count as ink when cropping.
const INK: u8 = 40;

/// Opens a PNG or JPEG file (format recognized from its content) as 8-bit grey, compositing any
/// transparency onto white.
pub fn open_grey(path: &Path) -> Result<GrayImage> {
    // Decoded by ferrovision-data (the workspace's one decode path); its errors name the file.
    let img = ferrovision_data::image::read_image_dynamic(path)
        .map_err(|e| CliError::new(format!("{e} (PNG and JPEG are supported)")))?;
    if img.color().has_alpha() {
        let la = img.to_luma_alpha8();
        let mut out = GrayImage::new(la.width(), la.height());
        for (o, p) in out.pixels_mut().zip(la.pixels()) {
            let (l, a) = (p.0[0] as u32, p.0[1] as u32);
            o.0[0] = ((l * a + 255 * (255 - a) + 127) / 255) as u8;
        }
        Ok(out)
    } else {
        Ok(img.to_luma8())
    }
}

/// Mean brightness of the outermost pixel ring.
fn border_mean(img: &GrayImage) -> f64 {
    let (w, h) = img.dimensions();
    let mut sum = 0u64;
    let mut n = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += p.0[0] as u64;
            n += 1;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// Makes the digit white on black: inverts when the border is brighter than mid-grey.
pub fn to_white_on_black(mut img: GrayImage) -> GrayImage {
    if border_mean(&img) > 127.0 {
        imageops::invert(&mut img);
    }
    img
}

/// The MNIST-style 28x28 version of a white-on-black image: crop to the ink, fit the longer
/// side to 20 pixels, centre by mass. Blank images are just resized.
pub fn mnist_normalize(img: &GrayImage) -> GrayImage {
    let (w, h) = img.dimensions();
    if (w, h) == (SIDE, SIDE) {
        return img.clone();
    }
    // Bounding box of the ink.
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[0] >= INK {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 == u32::MAX {
        return imageops::resize(img, SIDE, SIDE, FilterType::Triangle);
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = imageops::crop_imm(img, x0, y0, cw, ch).to_image();
    let scale = BOX as f64 / cw.max(ch) as f64;
    let nw = ((cw as f64 * scale).round() as u32).clamp(1, BOX);
    let nh = ((ch as f64 * scale).round() as u32).clamp(1, BOX);
    let digit = imageops::resize(&crop, nw, nh, FilterType::Triangle);
    // Centre of mass of the scaled digit, to be placed at the image centre.
    let (mut mx, mut my, mut m) = (0.0, 0.0, 0.0);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = p.0[0] as f64;
        mx += v * (x as f64 + 0.5);
        my += v * (y as f64 + 0.5);
        m += v;
    }
    let (cx, cy) = if m > 0.0 {
        (mx / m, my / m)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    // MNIST puts the centre of mass on pixel (14, 14), i.e. at 14.5 in these pixel-edge
    // coordinates (the mean over its test set is (14.51, 14.49)).
    let target = SIDE as f64 / 2.0 + 0.5;
    let ox = (target - cx).round() as i64;
    let oy = (target - cy).round() as i64;
    let mut out = GrayImage::from_pixel(SIDE, SIDE, Luma([0]));
    imageops::overlay(&mut out, &digit, ox, oy);
    out
}

/// Loads an image file as an MNIST-like input: 784 values in `[0, 1]`, row-major 28x28.
pub fn load_digit(path: &Path) -> Result<Vec<f32>> {
    let grey = to_white_on_black(open_grey(path)?);
    let img = mnist_normalize(&grey);
    Ok(img.pixels().map(|p| p.0[0] as f32 / 255.0).collect())
}

/// Writes 784 values in `[0, 1]` as a 28x28 grey PNG (used by `demo` to save the digits it
/// predicts).
pub fn save_digit_png(pixels: &[f32], path: &Path) -> Result<()> {
    if pixels.len() != (SIDE * SIDE) as usize {
        return Err(CliError::new(format!(
            "save_digit_png: {} values, expected 784",
            pixels.len()
        )));
    }
    let img = GrayImage::from_fn(SIDE, SIDE, |x, y| {
        Luma([(pixels[(y * SIDE + x) as usize].clamp(0.0, 1.0) * 255.0).round() as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    Ok(ferrovision_io::write_atomic(path, &png)?)
}

/// One image file as a model input of `shape` (`[C, H, W]`, values in `[0, 1]`): MNIST's
/// preparation ([`load_digit`]) for 1x28x28 models, otherwise RGB (or grey for one channel)
/// resized to `H x W`.
pub fn load_input(path: &Path, shape: [usize; 3]) -> Result<Vec<f32>> {
    if shape == [1, SIDE as usize, SIDE as usize] {
        return load_digit(path);
    }
    let bytes = ferrovision_data::fsutil::read(path)?;
    let img = ferrovision_data::image::decode_rgb8(&bytes, path)?;
    Ok(crate::data::to_chw(img, shape)?)
}
