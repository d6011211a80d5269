//! Non-maximum suppression: greedy (torchvision `nms`), batched over classes (torchvision
//! `batched_nms`), soft-NMS (linear and Gaussian) and combined NMS with per-class and total
//! limits (TensorFlow `combined_non_max_suppression`).
//!
//! The greedy kernels reproduce torchvision's CPU arithmetic in f32 operation for operation
//! (areas, clamped intersection, `inter / (area_i + area_j - inter)` compared with the f64
//! threshold by `>`), and order candidates by score descending with ties broken by the lower
//! index, so the kept indices equal torchvision's on the same inputs.

use crate::boxes::BBox;
use crate::error::{Result, VisionError};

fn check_inputs(op: &'static str, boxes: &[BBox], scores: &[f32]) -> Result<()> {
    if boxes.len() != scores.len() {
        return Err(VisionError::invalid(
            op,
            format!("{} boxes but {} scores", boxes.len(), scores.len()),
        ));
    }
    for (i, b) in boxes.iter().enumerate() {
        if b.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::invalid(
                op,
                format!("box {i} has a non-finite coordinate: {b:?}"),
            ));
        }
        if b[2] < b[0] || b[3] < b[1] {
            return Err(VisionError::invalid(
                op,
                format!("box {i} has negative size (x2 < x1 or y2 < y1): {b:?}"),
            ));
        }
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(VisionError::invalid(op, format!("score {i} is NaN")));
    }
    Ok(())
}

/// Indices sorted by score descending; equal scores keep ascending index order (a stable sort,
/// as torchvision's CPU sort).
fn order_by_score(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// torchvision's IoU in f32, operation for operation.
#[inline(always)]
fn tv_iou(a: &BBox, area_a: f32, b: &BBox, area_b: f32) -> f32 {
    let xx1 = if a[0] < b[0] { b[0] } else { a[0] };
    let yy1 = if a[1] < b[1] { b[1] } else { a[1] };
    let xx2 = if b[2] < a[2] { b[2] } else { a[2] };
    let yy2 = if b[3] < a[3] { b[3] } else { a[3] };
    let w = xx2 - xx1;
    let w = if 0.0 < w { w } else { 0.0 };
    let h = yy2 - yy1;
    let h = if 0.0 < h { h } else { 0.0 };
    let inter = w * h;
    inter / (area_a + area_b - inter)
}

/// Greedy NMS over `order` (already sorted by score): marks kept entries in `keep`.
/// `suppressed` is scratch space of at least `order.len()` entries.
fn greedy(
    boxes: &[BBox],
    areas: &[f32],
    order: &[usize],
    thr: f64,
    keep: &mut [bool],
    suppressed: &mut Vec<bool>,
) {
    suppressed.clear();
    suppressed.resize(order.len(), false);
    for a in 0..order.len() {
        if suppressed[a] {
            continue;
        }
        let i = order[a];
        keep[i] = true;
        let (bi, ai) = (&boxes[i], areas[i]);
        for b in a + 1..order.len() {
            if suppressed[b] {
                continue;
            }
            let j = order[b];
            if tv_iou(bi, ai, &boxes[j], areas[j]) as f64 > thr {
                suppressed[b] = true;
            }
        }
    }
}

fn areas_f32(boxes: &[BBox]) -> Vec<f32> {
    boxes
        .iter()
        .map(|b| (b[2] - b[0]) * (b[3] - b[1]))
        .collect()
}

/// Greedy NMS (torchvision `ops.nms`): indices of the kept corner boxes, by decreasing score.
/// A box is dropped when its IoU with a kept higher-scoring box is `> iou_threshold`.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_threshold: f64) -> Result<Vec<usize>> {
    check_inputs("nms", boxes, scores)?;
    let order = order_by_score(scores);
    let areas = areas_f32(boxes);
    let mut keep = vec![false; boxes.len()];
    greedy(
        boxes,
        &areas,
        &order,
        iou_threshold,
        &mut keep,
        &mut Vec::new(),
    );
    Ok(order.into_iter().filter(|&i| keep[i]).collect())
}

/// NMS per class (torchvision `ops.batched_nms`): boxes of different classes never suppress
/// each other. Returns kept indices by decreasing score.
///
/// Bit-for-bit compatible with torchvision on CPU: up to 1000 boxes torchvision runs one NMS on
/// boxes shifted by `class * (max_coordinate + 1)` (in f32), above that it runs plain NMS per
/// class; this function computes the overlaps on the same coordinates in each regime, so its
/// decisions equal torchvision's even where the shift rounds coordinates. It is faster because
/// it only compares boxes of the same class. Use [`batched_nms_per_class`] for the unshifted
/// arithmetic at every size.
pub fn batched_nms(
    boxes: &[BBox],
    scores: &[f32],
    classes: &[usize],
    iou_threshold: f64,
) -> Result<Vec<usize>> {
    check_inputs("batched_nms", boxes, scores)?;
    check_classes("batched_nms", boxes, classes)?;
    if boxes.is_empty() {
        return Ok(Vec::new());
    }
    if boxes.len() * 4 > 4000 {
        return grouped(boxes, scores, classes, iou_threshold);
    }
    // torchvision's coordinate trick, in f32.
    let mut max_c = f32::NEG_INFINITY;
    let mut min_c = f32::INFINITY;
    for b in boxes {
        for &v in b {
            max_c = max_c.max(v);
            min_c = min_c.min(v);
        }
    }
    let shift = max_c + 1.0;
    let shifted: Vec<BBox> = boxes
        .iter()
        .zip(classes)
        .map(|(b, &c)| {
            let off = c as f32 * shift;
            [b[0] + off, b[1] + off, b[2] + off, b[3] + off]
        })
        .collect();
    if min_c < 0.0 || iou_threshold < 0.0 {
        // Negative coordinates: the shift may not separate classes, and torchvision then lets
        // boxes of neighbouring classes suppress each other (as does a negative threshold,
        // which zero overlap exceeds). Run its single global NMS.
        return nms(&shifted, scores, iou_threshold);
    }
    grouped(&shifted, scores, classes, iou_threshold)
}

/// NMS per class on the unshifted coordinates at every size (what torchvision does above 1000
/// boxes). Returns kept indices by decreasing score.
pub fn batched_nms_per_class(
    boxes: &[BBox],
    scores: &[f32],
    classes: &[usize],
    iou_threshold: f64,
) -> Result<Vec<usize>> {
    check_inputs("batched_nms_per_class", boxes, scores)?;
    check_classes("batched_nms_per_class", boxes, classes)?;
    grouped(boxes, scores, classes, iou_threshold)
}

fn check_classes(op: &'static str, boxes: &[BBox], classes: &[usize]) -> Result<()> {
    if classes.len() != boxes.len() {
        return Err(VisionError::invalid(
            op,
            format!("{} boxes but {} class ids", boxes.len(), classes.len()),
        ));
    }
    Ok(())
}

/// Greedy NMS within each class; output in global score order.
fn grouped(boxes: &[BBox], scores: &[f32], classes: &[usize], thr: f64) -> Result<Vec<usize>> {
    // One sort by (class, score descending, index): each class's candidates in torchvision's
    // order (ties by lower index), classes contiguous.
    let mut by_class: Vec<usize> = (0..boxes.len()).collect();
    by_class.sort_unstable_by(|&a, &b| {
        classes[a]
            .cmp(&classes[b])
            .then(scores[b].total_cmp(&scores[a]))
            .then(a.cmp(&b))
    });
    let areas = areas_f32(boxes);
    let mut keep = vec![false; boxes.len()];
    let mut scratch = Vec::new();
    let mut start = 0;
    while start < by_class.len() {
        let c = classes[by_class[start]];
        let mut end = start + 1;
        while end < by_class.len() && classes[by_class[end]] == c {
            end += 1;
        }
        greedy(
            boxes,
            &areas,
            &by_class[start..end],
            thr,
            &mut keep,
            &mut scratch,
        );
        start = end;
    }
    let mut kept: Vec<usize> = (0..boxes.len()).filter(|&i| keep[i]).collect();
    kept.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    Ok(kept)
}

/// How soft-NMS decays the scores of boxes overlapping a selected one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SoftNmsMethod {
    /// `s *= 1 - iou` when `iou > iou_threshold` (Bodla et al. 2017).
    Linear,
    /// `s *= exp(-0.5 * iou^2 / sigma)` (TensorFlow's `soft_nms_sigma`); boxes with
    /// `iou > iou_threshold` are removed outright.
    Gaussian { sigma: f32 },
}

/// Soft-NMS: repeatedly selects the highest (decayed) score, decays the scores of the remaining
/// boxes by their overlap with it, and drops boxes whose score falls to `score_threshold` or
/// below. Returns the selected indices and their decayed scores, in selection order.
pub fn soft_nms(
    boxes: &[BBox],
    scores: &[f32],
    iou_threshold: f64,
    method: SoftNmsMethod,
    score_threshold: f32,
) -> Result<(Vec<usize>, Vec<f32>)> {
    check_inputs("soft_nms", boxes, scores)?;
    if let SoftNmsMethod::Gaussian { sigma } = method {
        if sigma.is_nan() || sigma <= 0.0 {
            return Err(VisionError::invalid(
                "soft_nms",
                format!("Gaussian sigma must be > 0, got {sigma}"),
            ));
        }
    }
    let areas = areas_f32(boxes);
    let mut live: Vec<(usize, f32)> = (0..boxes.len())
        .filter(|&i| scores[i] > score_threshold)
        .map(|i| (i, scores[i]))
        .collect();
    let (mut sel, mut sel_scores) = (Vec::new(), Vec::new());
    while !live.is_empty() {
        // Highest score, lowest index on ties.
        let mut best = 0;
        for k in 1..live.len() {
            let (i, s) = live[k];
            let (bi, bs) = live[best];
            if s > bs || (s == bs && i < bi) {
                best = k;
            }
        }
        let (i, s) = live.swap_remove(best);
        sel.push(i);
        sel_scores.push(s);
        live.retain_mut(|(j, sj)| {
            let iou = tv_iou(&boxes[i], areas[i], &boxes[*j], areas[*j]);
            let iou = if iou.is_nan() { 0.0 } else { iou };
            let w = match method {
                SoftNmsMethod::Linear => {
                    if iou as f64 > iou_threshold {
                        1.0 - iou
                    } else {
                        1.0
                    }
                }
                SoftNmsMethod::Gaussian { sigma } => {
                    if iou as f64 > iou_threshold {
                        0.0
                    } else {
                        (-0.5 * iou * iou / sigma).exp()
                    }
                }
            };
            *sj *= w;
            *sj > score_threshold
        });
    }
    Ok((sel, sel_scores))
}

/// Options of [`combined_nms`] (TensorFlow `combined_non_max_suppression`).
#[derive(Debug, Clone)]
pub struct CombinedNmsOpts {
    /// At most this many boxes kept per class.
    pub max_output_per_class: usize,
    /// At most this many boxes kept in total (the output is padded to this size).
    pub max_total: usize,
    /// Boxes with IoU `> iou_threshold` with a kept box of the same class are dropped.
    pub iou_threshold: f32,
    /// Only scores `> score_threshold` are candidates.
    pub score_threshold: f32,
    /// Pad to `min(max_output_per_class * num_classes, max_total)` instead of `max_total`.
    pub pad_per_class: bool,
    /// Clip output coordinates to `[0, 1]`.
    pub clip_boxes: bool,
}

impl Default for CombinedNmsOpts {
    fn default() -> Self {
        CombinedNmsOpts {
            max_output_per_class: 100,
            max_total: 100,
            iou_threshold: 0.5,
            score_threshold: f32::NEG_INFINITY,
            pad_per_class: false,
            clip_boxes: true,
        }
    }
}

/// Result of [`combined_nms`] for one image: padded arrays and the number of valid entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CombinedNmsOutput {
    /// Kept boxes (corners as given, clipped if asked), zero-padded.
    pub boxes: Vec<BBox>,
    /// Their scores, zero-padded.
    pub scores: Vec<f32>,
    /// Their class indices, zero-padded.
    pub classes: Vec<usize>,
    /// How many leading entries are real detections.
    pub valid: usize,
}

fn tf_iou(a: &BBox, b: &BBox) -> f32 {
    // TensorFlow accepts corners in any order and returns 0 for empty boxes.
    let (ay1, ay2) = (a[0].min(a[2]), a[0].max(a[2]));
    let (ax1, ax2) = (a[1].min(a[3]), a[1].max(a[3]));
    let (by1, by2) = (b[0].min(b[2]), b[0].max(b[2]));
    let (bx1, bx2) = (b[1].min(b[3]), b[1].max(b[3]));
    let area_a = (ay2 - ay1) * (ax2 - ax1);
    let area_b = (by2 - by1) * (bx2 - bx1);
    if area_a <= 0.0 || area_b <= 0.0 {
        return 0.0;
    }
    let ih = (ay2.min(by2) - ay1.max(by1)).max(0.0);
    let iw = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let inter = ih * iw;
    inter / (area_a + area_b - inter)
}

/// Combined NMS for one image (TensorFlow `combined_non_max_suppression`, batch of one):
/// greedy NMS per class on candidates above `score_threshold`, at most `max_output_per_class`
/// per class, then the best `max_total` over all classes by score.
///
/// `boxes` holds `num_boxes * q` boxes (row-major `[num_boxes, q, 4]`): `q == 1` shares one box
/// across classes, `q == num_classes` gives one box per class. `scores` is row-major
/// `[num_boxes, num_classes]`. Corners may be `[y1, x1, y2, x2]` (TensorFlow) or
/// `[x1, y1, x2, y2]`: IoU and clipping treat both axes alike.
pub fn combined_nms(
    boxes: &[BBox],
    q: usize,
    scores: &[f32],
    num_classes: usize,
    opts: &CombinedNmsOpts,
) -> Result<CombinedNmsOutput> {
    const OP: &str = "combined_nms";
    if num_classes == 0 || (q != 1 && q != num_classes) {
        return Err(VisionError::invalid(
            OP,
            format!("q must be 1 or num_classes ({num_classes}), got {q}"),
        ));
    }
    if !scores.len().is_multiple_of(num_classes) || boxes.len() != scores.len() / num_classes * q {
        return Err(VisionError::invalid(
            OP,
            format!(
                "{} boxes (q={q}) and {} scores do not describe the same number of boxes for {num_classes} classes",
                boxes.len(),
                scores.len()
            ),
        ));
    }
    if let Some(i) = boxes.iter().position(|b| b.iter().any(|v| !v.is_finite())) {
        return Err(VisionError::invalid(
            OP,
            format!("box {i} has a non-finite coordinate"),
        ));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(VisionError::invalid(OP, format!("score {i} is NaN")));
    }
    let n = scores.len() / num_classes;
    struct Cand {
        box_index: usize,
        score: f32,
        class: usize,
    }
    let mut cands: Vec<Cand> = Vec::new();
    for c in 0..num_classes {
        let qi = if q > 1 { c } else { 0 };
        let mut order: Vec<usize> = (0..n)
            .filter(|&i| scores[i * num_classes + c] > opts.score_threshold)
            .collect();
        order.sort_by(|&a, &b| scores[b * num_classes + c].total_cmp(&scores[a * num_classes + c]));
        let mut selected: Vec<usize> = Vec::new();
        for i in order {
            if selected.len() >= opts.max_output_per_class {
                break;
            }
            let bi = &boxes[i * q + qi];
            let suppressed = selected
                .iter()
                .rev()
                .any(|&j| tf_iou(bi, &boxes[j * q + qi]) > opts.iou_threshold);
            if !suppressed {
                selected.push(i);
                cands.push(Cand {
                    box_index: i,
                    score: scores[i * num_classes + c],
                    class: c,
                });
            }
        }
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let per_batch = if opts.pad_per_class {
        opts.max_total
            .min(opts.max_output_per_class.saturating_mul(num_classes))
    } else {
        opts.max_total
    };
    let valid = cands.len().min(per_batch);
    let mut out = CombinedNmsOutput {
        boxes: vec![[0.0; 4]; per_batch],
        scores: vec![0.0; per_batch],
        classes: vec![0; per_batch],
        valid,
    };
    for (k, c) in cands.iter().take(valid).enumerate() {
        let qi = if q > 1 { c.class } else { 0 };
        let mut b = boxes[c.box_index * q + qi];
        if opts.clip_boxes {
            b = b.map(|v| v.clamp(0.0, 1.0));
        }
        out.boxes[k] = b;
        out.scores[k] = c.score;
        out.classes[k] = c.class;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_suppresses_overlaps_and_keeps_ties_in_index_order() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 20.0, 30.0, 30.0],
            [0.0, 0.0, 10.0, 10.0],
        ];
        let keep = nms(&boxes, &[0.9, 0.8, 0.7, 0.9], 0.5).unwrap();
        assert_eq!(keep, vec![0, 2]);
        let keep = batched_nms(&boxes, &[0.9, 0.8, 0.7, 0.9], &[0, 1, 0, 1], 0.5).unwrap();
        assert_eq!(keep, vec![0, 3, 2]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = nms(&[[0.0, 0.0, -1.0, 1.0]], &[1.0], 0.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("box 0") && e.contains("negative size"), "{e}");
        let e = nms(&[[0.0, 0.0, 1.0, 1.0]], &[f32::NAN], 0.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
        assert!(nms(&[[0.0, 0.0, 1.0, 1.0]], &[], 0.5).is_err());
        assert!(batched_nms(&[[0.0, 0.0, 1.0, 1.0]], &[1.0], &[], 0.5).is_err());
    }

    #[test]
    fn soft_nms_linear_decays() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]];
        let (sel, s) = soft_nms(&boxes, &[0.9, 0.8], 0.3, SoftNmsMethod::Linear, 0.0).unwrap();
        assert_eq!(sel, vec![0, 1]);
        assert!((s[1] - 0.4).abs() < 1e-6); // iou 0.5 -> 0.8 * 0.5
    }
}
