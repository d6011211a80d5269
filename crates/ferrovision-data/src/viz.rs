//! Drawing for visual checks: box outlines and label-map boundaries on an RGB image.

use crate::image::Image;

/// Draws a `thickness`-pixel rectangle outline for box `[x0, y0, x1, y1]` (pixels).
pub fn draw_box(img: &mut Image<u8>, b: [f32; 4], color: [u8; 3], thickness: usize) {
    if img.channels < 3 || img.width == 0 || img.height == 0 {
        return;
    }
    let (w, h) = (img.width as i64, img.height as i64);
    let x0 = (b[0].floor() as i64).clamp(0, w - 1);
    let y0 = (b[1].floor() as i64).clamp(0, h - 1);
    let x1 = ((b[2].ceil() as i64) - 1).clamp(0, w - 1);
    let y1 = ((b[3].ceil() as i64) - 1).clamp(0, h - 1);
    let t = thickness as i64;
    for y in y0..=y1 {
        for x in x0..=x1 {
            if x - x0 < t || x1 - x < t || y - y0 < t || y1 - y < t {
                for (c, &v) in color.iter().enumerate() {
                    img.set(x as usize, y as usize, c, v);
                }
            }
        }
    }
}

/// A distinct colour for class `k`.
pub fn palette(k: usize) -> [u8; 3] {
    const P: [[u8; 3]; 12] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 128, 0],
        [128, 0, 255],
        [0, 128, 255],
        [128, 255, 0],
        [255, 0, 128],
        [255, 255, 255],
    ];
    P[k % P.len()]
}

/// Paints pixels where the label map changes class (4-neighbourhood) in the class colour.
pub fn draw_mask_outline(img: &mut Image<u8>, mask: &Image<u8>) {
    if mask.width != img.width || mask.height != img.height || img.channels < 3 {
        return;
    }
    let (w, h) = (mask.width, mask.height);
    for y in 0..h {
        for x in 0..w {
            let v = mask.get(x, y, 0);
            let edge = (x + 1 < w && mask.get(x + 1, y, 0) != v)
                || (y + 1 < h && mask.get(x, y + 1, 0) != v);
            if edge {
                for (k, &cv) in palette(v as usize).iter().enumerate() {
                    img.set(x, y, k, cv);
                }
            }
        }
    }
}

/// Blends a class colour over every pixel with `alpha` in [0, 1] (ignore value 255 untouched).
pub fn blend_mask(img: &mut Image<u8>, mask: &Image<u8>, alpha: f32) {
    if mask.width != img.width || mask.height != img.height || img.channels < 3 {
        return;
    }
    for y in 0..mask.height {
        for x in 0..mask.width {
            let v = mask.get(x, y, 0);
            if v == 255 {
                continue;
            }
            for (k, &cv) in palette(v as usize).iter().enumerate() {
                let p = img.get(x, y, k) as f32;
                img.set(x, y, k, (p * (1.0 - alpha) + cv as f32 * alpha + 0.5) as u8);
            }
        }
    }
}
