//! Anchor boxes: base anchors from sizes and aspect ratios, their tiling over a feature map
//! (torchvision `AnchorGenerator`), and k-means anchor selection with the `1 - IoU` distance
//! (YOLOv2).

use crate::boxes::BBox;
use crate::error::{Result, VisionError};
use ferrovision_tensor::rng::Rng;

/// Zero-centred base anchors for every (aspect ratio, size) pair, ratio-major, rounded to whole
/// pixels as torchvision does. `ratio = h / w`; each anchor keeps the area `size^2`.
pub fn base_anchors(sizes: &[f32], aspect_ratios: &[f32]) -> Result<Vec<BBox>> {
    if let Some(r) = aspect_ratios.iter().find(|r| !(**r > 0.0 && r.is_finite())) {
        return Err(VisionError::invalid(
            "base_anchors",
            format!("aspect ratios must be positive and finite, got {r}"),
        ));
    }
    if let Some(s) = sizes.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
        return Err(VisionError::invalid(
            "base_anchors",
            format!("sizes must be positive and finite, got {s}"),
        ));
    }
    let mut out = Vec::with_capacity(sizes.len() * aspect_ratios.len());
    for &r in aspect_ratios {
        let hr = r.sqrt();
        let wr = 1.0 / hr;
        for &s in sizes {
            let w = wr * s;
            let h = hr * s;
            // torchvision: round(stack([-w, -h, w, h]) / 2) with round-half-to-even.
            out.push([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0].map(|v| v.round_ties_even()));
        }
    }
    Ok(out)
}

/// Tiles base anchors over a `grid_h x grid_w` feature map with `stride = (sy, sx)` pixels:
/// location-major (row by row), then base anchor, like torchvision's `grid_anchors`.
pub fn grid_anchors(base: &[BBox], grid: (usize, usize), stride: (f32, f32)) -> Vec<BBox> {
    let (gh, gw) = grid;
    let mut out = Vec::with_capacity(gh * gw * base.len());
    for y in 0..gh {
        let sy = y as f32 * stride.0;
        for x in 0..gw {
            let sx = x as f32 * stride.1;
            for b in base {
                out.push([b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy]);
            }
        }
    }
    out
}

/// Anchors for several feature maps of one image (an FPN): level `i` has sizes `sizes[i]` and
/// feature-map size `grids[i]`; its stride is `image_size / grid` (integer division, as
/// torchvision). Levels are concatenated in order.
pub fn pyramid_anchors(
    image_size: (usize, usize),
    grids: &[(usize, usize)],
    sizes: &[Vec<f32>],
    aspect_ratios: &[Vec<f32>],
) -> Result<Vec<BBox>> {
    if grids.len() != sizes.len() || grids.len() != aspect_ratios.len() {
        return Err(VisionError::invalid(
            "pyramid_anchors",
            format!(
                "{} feature maps but {} size lists and {} ratio lists",
                grids.len(),
                sizes.len(),
                aspect_ratios.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for ((g, s), r) in grids.iter().zip(sizes).zip(aspect_ratios) {
        if g.0 == 0 || g.1 == 0 {
            return Err(VisionError::invalid(
                "pyramid_anchors",
                format!("feature map size {g:?} has a zero side"),
            ));
        }
        let stride = ((image_size.0 / g.0) as f32, (image_size.1 / g.1) as f32);
        out.extend(grid_anchors(&base_anchors(s, r)?, *g, stride));
    }
    Ok(out)
}

/// IoU of two boxes given as sizes and aligned at a common centre (the k-means similarity).
pub fn wh_iou(a: (f32, f32), b: (f32, f32)) -> f64 {
    let inter = (a.0.min(b.0) as f64) * (a.1.min(b.1) as f64);
    let union = a.0 as f64 * a.1 as f64 + b.0 as f64 * b.1 as f64 - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Anchor sizes chosen by [`kmeans_anchors`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansAnchors {
    /// `(w, h)` of each anchor, by increasing area.
    pub anchors: Vec<(f32, f32)>,
    /// Mean over the boxes of the best IoU with any anchor (YOLOv2's "Avg IOU").
    pub mean_best_iou: f64,
    /// Iterations run until the assignment stopped changing (or the limit).
    pub iterations: usize,
}

/// Mean over `wh` of the best centred IoU with any of `anchors`.
pub fn mean_best_iou(wh: &[(f32, f32)], anchors: &[(f32, f32)]) -> f64 {
    if wh.is_empty() {
        return 0.0;
    }
    wh.iter()
        .map(|&b| anchors.iter().map(|&a| wh_iou(b, a)).fold(0.0, f64::max))
        .sum::<f64>()
        / wh.len() as f64
}

/// k-means over box sizes with distance `1 - IoU` (YOLOv2): k-means++ seeding from `seed`,
/// centroids updated to the mean size of their boxes, until no assignment changes or
/// `max_iter` iterations.
pub fn kmeans_anchors(
    wh: &[(f32, f32)],
    k: usize,
    max_iter: usize,
    seed: u64,
) -> Result<KMeansAnchors> {
    const OP: &str = "kmeans_anchors";
    if k == 0 || wh.len() < k {
        return Err(VisionError::invalid(
            OP,
            format!(
                "need k >= 1 and at least k boxes, got k={k} and {} boxes",
                wh.len()
            ),
        ));
    }
    if let Some(i) = wh
        .iter()
        .position(|&(w, h)| !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()))
    {
        return Err(VisionError::invalid(
            OP,
            format!("box {i} has a non-positive or non-finite size {:?}", wh[i]),
        ));
    }
    let mut rng = Rng::new(seed);
    let dist = |a, b| 1.0 - wh_iou(a, b);
    // k-means++: each next centre drawn with probability proportional to its squared distance.
    let mut cents = vec![wh[rng.below(wh.len() as u64) as usize]];
    let mut d2: Vec<f64> = wh.iter().map(|&b| dist(b, cents[0]).powi(2)).collect();
    while cents.len() < k {
        let total: f64 = d2.iter().sum();
        let next = if total > 0.0 {
            let mut r = rng.next_f64() * total;
            let mut pick = wh.len() - 1;
            for (i, &d) in d2.iter().enumerate() {
                if r < d {
                    pick = i;
                    break;
                }
                r -= d;
            }
            pick
        } else {
            rng.below(wh.len() as u64) as usize
        };
        cents.push(wh[next]);
        for (i, &b) in wh.iter().enumerate() {
            d2[i] = d2[i].min(dist(b, wh[next]).powi(2));
        }
    }
    let mut assign = vec![usize::MAX; wh.len()];
    let mut iterations = 0;
    while iterations < max_iter {
        iterations += 1;
        let mut changed = false;
        for (i, &b) in wh.iter().enumerate() {
            let mut best = 0;
            let mut best_d = f64::INFINITY;
            for (c, &m) in cents.iter().enumerate() {
                let d = dist(b, m);
                if d < best_d {
                    best_d = d;
                    best = c;
                }
            }
            if assign[i] != best {
                assign[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![(0.0f64, 0.0f64, 0usize); k];
        for (i, &(w, h)) in wh.iter().enumerate() {
            let s = &mut sums[assign[i]];
            s.0 += w as f64;
            s.1 += h as f64;
            s.2 += 1;
        }
        for (c, s) in sums.iter().enumerate() {
            // An empty cluster keeps its centre.
            if s.2 > 0 {
                cents[c] = ((s.0 / s.2 as f64) as f32, (s.1 / s.2 as f64) as f32);
            }
        }
    }
    cents.sort_by(|a, b| (a.0 * a.1).total_cmp(&(b.0 * b.1)));
    Ok(KMeansAnchors {
        mean_best_iou: mean_best_iou(wh, &cents),
        anchors: cents,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_recovers_well_separated_shapes() {
        let mut wh = Vec::new();
        let mut rng = Rng::new(3);
        for &(w, h) in &[(10.0f32, 10.0f32), (40.0, 20.0), (30.0, 90.0)] {
            for _ in 0..50 {
                let j = 1.0 + 0.05 * (rng.next_f32() - 0.5);
                wh.push((w * j, h / j));
            }
        }
        let r = kmeans_anchors(&wh, 3, 100, 1).unwrap();
        assert!(r.mean_best_iou > 0.9, "{r:?}");
        assert!((r.anchors[0].0 - 10.0).abs() < 1.0);
        // More anchors never fit worse than fewer on the same boxes.
        let r1 = kmeans_anchors(&wh, 1, 100, 1).unwrap();
        assert!(r1.mean_best_iou < r.mean_best_iou);
        assert!(kmeans_anchors(&wh[..2], 3, 10, 1).is_err());
        assert!(kmeans_anchors(&[(0.0, 1.0)], 1, 10, 1).is_err());
    }
}
