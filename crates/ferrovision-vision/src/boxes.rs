//! Axis-aligned boxes: formats and conversions, area, clipping, scaling, and the IoU family
//! (IoU, GIoU, DIoU, CIoU) as pairwise matrices or elementwise over matched pairs.
//!
//! A box is `[f32; 4]`; its meaning is given by a [`BoxFormat`]. Every function that takes boxes
//! in corner form expects `x1 <= x2` and `y1 <= y2` and finite coordinates; [`validate`] checks
//! that and names the offending box.

use crate::error::{Result, VisionError};

/// One box as four numbers; see [`BoxFormat`] for their meaning.
pub type BBox = [f32; 4];

/// How the four numbers of a box are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFormat {
    /// Corners `[x1, y1, x2, y2]` (torchvision, Pascal VOC).
    Xyxy,
    /// Top-left corner and size `[x, y, w, h]` (COCO).
    Xywh,
    /// Centre and size `[cx, cy, w, h]` (YOLO, DETR).
    Cxcywh,
}

impl std::str::FromStr for BoxFormat {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xyxy" => Ok(BoxFormat::Xyxy),
            "xywh" => Ok(BoxFormat::Xywh),
            "cxcywh" => Ok(BoxFormat::Cxcywh),
            _ => Err(VisionError::invalid(
                "BoxFormat",
                format!("unknown box format '{s}', expected xyxy, xywh or cxcywh"),
            )),
        }
    }
}

fn to_xyxy(b: BBox, from: BoxFormat) -> BBox {
    match from {
        BoxFormat::Xyxy => b,
        BoxFormat::Xywh => [b[0], b[1], b[0] + b[2], b[1] + b[3]],
        BoxFormat::Cxcywh => [
            b[0] - 0.5 * b[2],
            b[1] - 0.5 * b[3],
            b[0] + 0.5 * b[2],
            b[1] + 0.5 * b[3],
        ],
    }
}

fn from_xyxy(b: BBox, to: BoxFormat) -> BBox {
    match to {
        BoxFormat::Xyxy => b,
        BoxFormat::Xywh => [b[0], b[1], b[2] - b[0], b[3] - b[1]],
        BoxFormat::Cxcywh => [
            0.5 * (b[0] + b[2]),
            0.5 * (b[1] + b[3]),
            b[2] - b[0],
            b[3] - b[1],
        ],
    }
}

/// Converts one box between formats.
pub fn convert_box(b: BBox, from: BoxFormat, to: BoxFormat) -> BBox {
    if from == to {
        return b;
    }
    from_xyxy(to_xyxy(b, from), to)
}

/// Converts boxes between formats.
pub fn convert(boxes: &[BBox], from: BoxFormat, to: BoxFormat) -> Vec<BBox> {
    boxes.iter().map(|&b| convert_box(b, from, to)).collect()
}

/// Absolute pixel coordinates to coordinates normalised by the image size (any format: x-like
/// entries are divided by `width`, y-like by `height`).
pub fn normalize(boxes: &[BBox], width: f32, height: f32) -> Result<Vec<BBox>> {
    if !(width > 0.0 && height > 0.0) {
        return Err(VisionError::invalid(
            "normalize",
            format!("image size must be positive, got {width}x{height}"),
        ));
    }
    Ok(scale(boxes, 1.0 / width, 1.0 / height))
}

/// Normalised coordinates back to absolute pixels.
pub fn denormalize(boxes: &[BBox], width: f32, height: f32) -> Vec<BBox> {
    scale(boxes, width, height)
}

/// Multiplies x-like entries by `sx` and y-like entries by `sy` (valid for every format, since
/// the formats only mix x with x and y with y).
pub fn scale(boxes: &[BBox], sx: f32, sy: f32) -> Vec<BBox> {
    boxes
        .iter()
        .map(|b| [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy])
        .collect()
}

/// Clips corner boxes to `[0, width] x [0, height]`.
pub fn clip(boxes: &[BBox], width: f32, height: f32) -> Vec<BBox> {
    boxes
        .iter()
        .map(|b| {
            [
                b[0].clamp(0.0, width),
                b[1].clamp(0.0, height),
                b[2].clamp(0.0, width),
                b[3].clamp(0.0, height),
            ]
        })
        .collect()
}

/// Area of a corner box (`(x2 - x1) * (y2 - y1)`, no +1 pixel convention).
#[inline]
pub fn area(b: &BBox) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// Areas of corner boxes.
pub fn areas(boxes: &[BBox]) -> Vec<f32> {
    boxes.iter().map(area).collect()
}

/// Indices of corner boxes whose width and height are both at least `min_size`.
pub fn remove_small(boxes: &[BBox], min_size: f32) -> Vec<usize> {
    (0..boxes.len())
        .filter(|&i| {
            let b = boxes[i];
            b[2] - b[0] >= min_size && b[3] - b[1] >= min_size
        })
        .collect()
}

/// Checks that every box is finite and, in corner form, has `x1 <= x2`, `y1 <= y2` (or, in the
/// size formats, non-negative width and height). The error names `what` and the box index.
pub fn validate(boxes: &[BBox], format: BoxFormat, what: &'static str) -> Result<()> {
    for (i, b) in boxes.iter().enumerate() {
        if b.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::invalid(
                what,
                format!("box {i} has a non-finite coordinate: {b:?}"),
            ));
        }
        let (w, h) = match format {
            BoxFormat::Xyxy => (b[2] - b[0], b[3] - b[1]),
            _ => (b[2], b[3]),
        };
        if w < 0.0 || h < 0.0 {
            return Err(VisionError::invalid(
                what,
                format!("box {i} has negative size ({w} x {h}): {b:?}"),
            ));
        }
    }
    Ok(())
}

/// Which overlap measure to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IouKind {
    /// Intersection over union.
    Iou,
    /// Generalised IoU: IoU minus the share of the enclosing box not covered by the union.
    Giou,
    /// Distance IoU: IoU minus squared centre distance over squared enclosing diagonal.
    Diou,
    /// Complete IoU: DIoU minus an aspect-ratio consistency term.
    Ciou,
}

/// The small constant torchvision adds to DIoU/CIoU denominators (`eps=1e-7`).
const EPS: f64 = 1e-7;

/// One overlap value between corner boxes `a` and `b`, computed in f64 with torchvision's
/// formulas. A degenerate pair (zero union) gives 0 IoU instead of NaN.
pub fn overlap(a: &BBox, b: &BBox, kind: IouKind) -> f64 {
    let [ax1, ay1, ax2, ay2] = a.map(|v| v as f64);
    let [bx1, by1, bx2, by2] = b.map(|v| v as f64);
    let area_a = (ax2 - ax1) * (ay2 - ay1);
    let area_b = (bx2 - bx1) * (by2 - by1);
    let iw = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let ih = (ay2.min(by2) - ay1.max(by1)).max(0.0);
    let inter = iw * ih;
    let union = area_a + area_b - inter;
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    match kind {
        IouKind::Iou => iou,
        IouKind::Giou => {
            let cw = (ax2.max(bx2) - ax1.min(bx1)).max(0.0);
            let ch = (ay2.max(by2) - ay1.min(by1)).max(0.0);
            let c = cw * ch;
            if c > 0.0 {
                iou - (c - union) / c
            } else {
                iou
            }
        }
        IouKind::Diou | IouKind::Ciou => {
            let cw = (ax2.max(bx2) - ax1.min(bx1)).max(0.0);
            let ch = (ay2.max(by2) - ay1.min(by1)).max(0.0);
            let diag = cw * cw + ch * ch + EPS;
            let dx = 0.5 * (ax1 + ax2) - 0.5 * (bx1 + bx2);
            let dy = 0.5 * (ay1 + ay2) - 0.5 * (by1 + by2);
            let diou = iou - (dx * dx + dy * dy) / diag;
            if kind == IouKind::Diou {
                return diou;
            }
            let (wa, ha) = (ax2 - ax1, ay2 - ay1);
            let (wb, hb) = (bx2 - bx1, by2 - by1);
            let d = (wa / ha).atan() - (wb / hb).atan();
            let v = 4.0 / (std::f64::consts::PI * std::f64::consts::PI) * d * d;
            let alpha = v / (1.0 - iou + v + EPS);
            diou - alpha * v
        }
    }
}

/// Pairwise overlap matrix of corner boxes, row-major `a.len() x b.len()`
/// (torchvision `box_iou` / `generalized_box_iou` / `distance_box_iou` / `complete_box_iou`).
pub fn pairwise(a: &[BBox], b: &[BBox], kind: IouKind) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(overlap(x, y, kind) as f32);
        }
    }
    out
}

/// Overlap of matched pairs `a[i]`, `b[i]` (what IoU-based box losses use: the loss is
/// `1 - value`).
pub fn elementwise(a: &[BBox], b: &[BBox], kind: IouKind) -> Result<Vec<f32>> {
    if a.len() != b.len() {
        return Err(VisionError::invalid(
            "elementwise_iou",
            format!(
                "{} boxes vs {} boxes: pairs need equal counts",
                a.len(),
                b.len()
            ),
        ));
    }
    Ok(a.iter()
        .zip(b)
        .map(|(x, y)| overlap(x, y, kind) as f32)
        .collect())
}

/// Plain IoU matrix (shorthand for `pairwise(a, b, IouKind::Iou)`).
pub fn box_iou(a: &[BBox], b: &[BBox]) -> Vec<f32> {
    pairwise(a, b, IouKind::Iou)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let b = [10.0, 20.0, 50.0, 80.0];
        for f in [BoxFormat::Xywh, BoxFormat::Cxcywh] {
            let c = convert_box(b, BoxFormat::Xyxy, f);
            assert_eq!(convert_box(c, f, BoxFormat::Xyxy), b);
        }
        assert_eq!(
            convert_box(b, BoxFormat::Xyxy, BoxFormat::Cxcywh),
            [30.0, 50.0, 40.0, 60.0]
        );
        assert_eq!(
            convert_box(b, BoxFormat::Xyxy, BoxFormat::Xywh),
            [10.0, 20.0, 40.0, 60.0]
        );
    }

    #[test]
    fn validate_names_the_box() {
        let e = validate(
            &[[0.0, 0.0, 1.0, 1.0], [5.0, 0.0, 1.0, 1.0]],
            BoxFormat::Xyxy,
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("box 1") && e.contains("negative size"), "{e}");
        let e = validate(&[[f32::NAN, 0.0, 1.0, 1.0]], BoxFormat::Xyxy, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("box 0") && e.contains("non-finite"), "{e}");
    }

    #[test]
    fn iou_of_known_pairs() {
        let a = [0.0, 0.0, 2.0, 2.0];
        let b = [1.0, 1.0, 3.0, 3.0];
        assert!((overlap(&a, &b, IouKind::Iou) - 1.0 / 7.0).abs() < 1e-12);
        // enclosing box 3x3 = 9, union 7: GIoU = 1/7 - 2/9
        assert!((overlap(&a, &b, IouKind::Giou) - (1.0 / 7.0 - 2.0 / 9.0)).abs() < 1e-12);
        assert_eq!(overlap(&a, &a, IouKind::Iou), 1.0);
        assert_eq!(
            clip(&[[-1.0, 2.0, 9.0, 3.0]], 5.0, 5.0),
            vec![[0.0, 2.0, 5.0, 3.0]]
        );
    }
}
