//! Drawing for reports and the CLI: boxes with class labels and scores, mask overlays with a
//! palette, label-map colouring, precision-recall curves; PNG in and out (written atomically).
//!
//! Text uses the built-in 5x7 bitmap font of [`font`] (labels drawn upper-case), so drawing
//! needs no font files; the CLI's plots use the same font.

pub mod font;

use crate::boxes::BBox;
use crate::error::{read_to_string, Result, VisionError};
use crate::json_util::{parse, Ctx};
use image::RgbImage;
use std::path::Path;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// The Pascal VOC colour map: colour of label `i` (0 is black), bits of `i` spread over the
/// high bits of R, G and B.
pub fn voc_color(i: u32) -> Rgb {
    let (mut c, mut rgb) = (i, [0u8; 3]);
    for j in 0..8 {
        for (k, v) in rgb.iter_mut().enumerate() {
            *v |= (((c >> k) & 1) as u8) << (7 - j);
        }
        c >>= 3;
    }
    rgb
}

/// Bright, well separated colours for boxes, cycled by class index.
pub fn box_color(i: usize) -> Rgb {
    const C: [Rgb; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ];
    C[i % C.len()]
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, image::Rgb(c));
    }
}

/// Fills the rectangle `[x0, x1) x [y0, y1)` (clipped to the image).
pub fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
    for y in y0.max(0)..y1.min(img.height() as i64) {
        for x in x0.max(0)..x1.min(img.width() as i64) {
            img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    }
}

/// Pixel size of `text` drawn at `scale`.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let n = text.chars().count() as u32;
    ((6 * n).saturating_sub(1) * scale, 7 * scale)
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` pixels wide.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, c: Rgb, scale: u32) {
    let s = scale.max(1) as i64;
    for (k, ch) in text.chars().enumerate() {
        // Labels are drawn upper-case (the font's capitals read better on images).
        let g = font::glyph(ch.to_ascii_uppercase());
        let ox = x + k as i64 * 6 * s;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    fill_rect(
                        img,
                        ox + col * s,
                        y + row as i64 * s,
                        ox + (col + 1) * s,
                        y + (row as i64 + 1) * s,
                        c,
                    );
                }
            }
        }
    }
}

/// Draws the outline of a corner box, `thickness` pixels wide inwards.
pub fn draw_rect(img: &mut RgbImage, b: BBox, c: Rgb, thickness: u32) {
    let (x0, y0) = (b[0].round() as i64, b[1].round() as i64);
    let (x1, y1) = (b[2].round() as i64, b[3].round() as i64);
    let t = thickness.max(1) as i64;
    fill_rect(img, x0, y0, x1 + 1, y0 + t, c);
    fill_rect(img, x0, y1 + 1 - t, x1 + 1, y1 + 1, c);
    fill_rect(img, x0, y0, x0 + t, y1 + 1, c);
    fill_rect(img, x1 + 1 - t, y0, x1 + 1, y1 + 1, c);
}

/// A line from `(x0, y0)` to `(x1, y1)` (Bresenham).
pub fn draw_line(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        put(img, x, y, c);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// One box to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawBox {
    /// Corner box in pixels.
    pub bbox: BBox,
    /// Class name or id shown in the label (may be empty).
    pub label: String,
    /// Score shown after the label, if any.
    pub score: Option<f32>,
    /// Colour index (see [`box_color`]).
    pub color: usize,
}

/// Draws boxes with a filled label tag (`label score`) above each; line width and text size
/// grow with the image.
pub fn draw_boxes(img: &mut RgbImage, boxes: &[DrawBox]) {
    let side = img.width().min(img.height());
    let thick = (side / 200).max(2);
    let scale = (side / 300).max(1);
    for b in boxes {
        let c = box_color(b.color);
        draw_rect(img, b.bbox, c, thick);
        let text = match (b.label.is_empty(), b.score) {
            (false, Some(s)) => format!("{} {:.2}", b.label, s),
            (false, None) => b.label.clone(),
            (true, Some(s)) => format!("{s:.2}"),
            (true, None) => continue,
        };
        let (tw, th) = text_size(&text, scale);
        let pad = scale as i64;
        let x0 = b.bbox[0].round() as i64;
        let mut y0 = b.bbox[1].round() as i64 - th as i64 - 2 * pad;
        if y0 < 0 {
            y0 = b.bbox[1].round() as i64; // no room above: put the tag inside the box
        }
        fill_rect(
            img,
            x0,
            y0,
            x0 + tw as i64 + 2 * pad,
            y0 + th as i64 + 2 * pad,
            c,
        );
        let luma = 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
        let fg = if luma > 140.0 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        draw_text(img, x0 + pad, y0 + pad, &text, fg, scale);
    }
}

/// Blends `color` into the pixels where `mask` is set, with opacity `alpha` in `[0, 1]`.
pub fn overlay_mask(img: &mut RgbImage, mask: &[bool], color: Rgb, alpha: f32) -> Result<()> {
    if mask.len() != (img.width() * img.height()) as usize {
        return Err(VisionError::invalid(
            "overlay_mask",
            format!(
                "{} mask pixels for a {}x{} image",
                mask.len(),
                img.width(),
                img.height()
            ),
        ));
    }
    let a = alpha.clamp(0.0, 1.0);
    for (p, &m) in img.pixels_mut().zip(mask) {
        if m {
            for (v, &ck) in p.0.iter_mut().zip(&color) {
                *v = (*v as f32 * (1.0 - a) + ck as f32 * a).round() as u8;
            }
        }
    }
    Ok(())
}

/// Colours a label map with the VOC palette; `ignore` pixels are drawn white.
pub fn colorize_labels(
    labels: &[u32],
    width: u32,
    height: u32,
    ignore: Option<u32>,
) -> Result<RgbImage> {
    if labels.len() != (width * height) as usize {
        return Err(VisionError::invalid(
            "colorize_labels",
            format!("{} labels for a {width}x{height} image", labels.len()),
        ));
    }
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let l = labels[(y * width + x) as usize];
        image::Rgb(if Some(l) == ignore {
            [255; 3]
        } else {
            voc_color(l)
        })
    }))
}

/// Blends a label map over an image with the VOC palette (label 0 and `ignore` left as is).
pub fn overlay_labels(
    img: &mut RgbImage,
    labels: &[u32],
    ignore: Option<u32>,
    alpha: f32,
) -> Result<()> {
    if labels.len() != (img.width() * img.height()) as usize {
        return Err(VisionError::invalid(
            "overlay_labels",
            format!(
                "{} labels for a {}x{} image",
                labels.len(),
                img.width(),
                img.height()
            ),
        ));
    }
    let a = alpha.clamp(0.0, 1.0);
    for (p, &l) in img.pixels_mut().zip(labels) {
        if l == 0 || Some(l) == ignore {
            continue;
        }
        let c = voc_color(l);
        for (v, &ck) in p.0.iter_mut().zip(&c) {
            *v = (*v as f32 * (1.0 - a) + ck as f32 * a).round() as u8;
        }
    }
    Ok(())
}

/// Reads an image file (JPEG, PNG, BMP, GIF) as RGB, decoded by `ferrovision-data`'s image I/O.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    Ok(ferrovision_data::image::read_image_dynamic(path)?.to_rgb8())
}

/// Encodes an image as PNG and writes it atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| VisionError::Image {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
    Ok(ferrovision_io::write_atomic(path, &buf)?)
}

/// Writes an image in the format its file name says: `.png`, `.jpg`/`.jpeg` (quality 95) or
/// `.bmp`; any other extension is an error (never PNG bytes under a `.jpg` name).
pub fn save_image(img: &RgbImage, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let err = |msg: String| VisionError::Image {
        path: path.display().to_string(),
        msg,
    };
    let mut buf = Vec::new();
    match ext.as_str() {
        "png" => return save_png(img, path),
        "jpg" | "jpeg" => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95)
            .encode_image(img)
            .map_err(|e| err(e.to_string()))?,
        "bmp" => img
            .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Bmp)
            .map_err(|e| err(e.to_string()))?,
        _ => {
            return Err(err(format!(
                "cannot write '.{ext}' images; name the output .png, .jpg or .bmp"
            )))
        }
    }
    Ok(ferrovision_io::write_atomic(path, &buf)?)
}

/// Plots precision-recall curves (`(name, [(recall, precision)])`) with axes, ticks and a
/// legend, and writes a `size x size` PNG.
pub fn pr_curve_png(curves: &[(String, Vec<(f64, f64)>)], path: &Path, size: u32) -> Result<()> {
    let size = size.max(200);
    let mut img = RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
    let m = (size / 8) as i64;
    let (x0, y0, x1, y1) = (m, m / 2, size as i64 - m / 2, size as i64 - m);
    let to_px = |r: f64, p: f64| {
        (
            x0 + ((x1 - x0) as f64 * r.clamp(0.0, 1.0)).round() as i64,
            y1 - ((y1 - y0) as f64 * p.clamp(0.0, 1.0)).round() as i64,
        )
    };
    let grey = [200, 200, 200];
    for k in 0..=5 {
        let v = k as f64 / 5.0;
        let (gx, gy) = to_px(v, v);
        draw_line(&mut img, gx, y0, gx, y1, grey);
        draw_line(&mut img, x0, gy, x1, gy, grey);
        let t = format!("{v:.1}");
        draw_text(&mut img, gx - 8, y1 + 6, &t, [0, 0, 0], 1);
        draw_text(&mut img, x0 - 24, gy - 3, &t, [0, 0, 0], 1);
    }
    draw_line(&mut img, x0, y1, x1, y1, [0, 0, 0]);
    draw_line(&mut img, x0, y0, x0, y1, [0, 0, 0]);
    draw_text(
        &mut img,
        (x0 + x1) / 2 - 15,
        y1 + 18,
        "RECALL",
        [0, 0, 0],
        1,
    );
    draw_text(&mut img, 4, 4, "PRECISION", [0, 0, 0], 1);
    for (i, (name, pts)) in curves.iter().enumerate() {
        let c = box_color(i);
        for w in pts.windows(2) {
            let (ax, ay) = to_px(w[0].0, w[0].1);
            let (bx, by) = to_px(w[1].0, w[1].1);
            draw_line(&mut img, ax, ay, bx, by, c);
            draw_line(&mut img, ax, ay + 1, bx, by + 1, c);
        }
        let ly = y0 + 4 + 12 * i as i64;
        fill_rect(&mut img, x1 - 110, ly, x1 - 100, ly + 7, c);
        draw_text(&mut img, x1 - 96, ly, name, [0, 0, 0], 1);
    }
    save_png(&img, path)
}

/// Parses a box list for drawing: a JSON array of `{"bbox": [x1, y1, x2, y2], "label": "cat",
/// "score": 0.9}` (`label` may be a string or a class id, `label` and `score` are optional).
pub fn parse_draw_boxes(text: &str, file: &str) -> Result<Vec<DrawBox>> {
    let v = parse(text, file)?;
    let list = v
        .as_array()
        .ok_or_else(|| VisionError::format(file, "top level", "expected a JSON list of boxes"))?;
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let ctx = Ctx {
            file,
            entry: format!("box {i}"),
        };
        let bb = ctx.four(b, "bbox")?;
        if bb[2] < bb[0] || bb[3] < bb[1] {
            return Err(ctx.err(format!(
                "bbox {bb:?} has x2 < x1 or y2 < y1 (expected corners)"
            )));
        }
        let label = match ctx.obj(b)?.get("label") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(n) if n.is_number() => n.to_string(),
            Some(other) => {
                return Err(ctx.err(format!(
                    "field 'label' must be a string or number, got {other}"
                )))
            }
        };
        let score = ctx.opt_num(b, "score")?.map(|s| s as f32);
        let color = match names.iter().position(|n| *n == label) {
            Some(k) => k,
            None => {
                names.push(label.clone());
                names.len() - 1
            }
        };
        out.push(DrawBox {
            bbox: bb.map(|v| v as f32),
            label,
            score,
            color,
        });
    }
    Ok(out)
}

/// What `ferrovision draw` does: reads `image`, draws the boxes of the JSON file `boxes_json`
/// (see [`parse_draw_boxes`]) and writes the annotated image to `out` (see [`save_image`]). Returns
/// the box count.
pub fn draw_boxes_file(image: &Path, boxes_json: &Path, out: &Path) -> Result<usize> {
    let boxes = parse_draw_boxes(
        &read_to_string(boxes_json)?,
        &boxes_json.display().to_string(),
    )?;
    let mut img = load_image(image)?;
    draw_boxes(&mut img, &boxes);
    save_image(&img, out)?;
    Ok(boxes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_palette_first_colours() {
        assert_eq!(voc_color(0), [0, 0, 0]);
        assert_eq!(voc_color(1), [128, 0, 0]);
        assert_eq!(voc_color(2), [0, 128, 0]);
        assert_eq!(voc_color(3), [128, 128, 0]);
        assert_eq!(voc_color(15), [192, 128, 128]);
    }

    #[test]
    fn rect_outline_is_drawn_on_the_edges_only() {
        let mut img = RgbImage::new(20, 20);
        draw_rect(&mut img, [5.0, 5.0, 14.0, 12.0], [255, 0, 0], 1);
        assert_eq!(img.get_pixel(5, 5).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(14, 12).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(9, 8).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(15, 12).0, [0, 0, 0]);
    }
}
