//! Synthetic COCO `segm` data for `ferrovision-bench coco-segm`: ground truth as polygons
//! (convex, non-convex, multi-part) plus crowd regions as uncompressed RLE, detections as
//! compressed RLE strings made with our `rle` module from perturbed ground-truth shapes and
//! false positives.

use super::{rand_box, round2, zipf_category, CocoInput, N_CAT};
use ferrovision::tensor::rng::Rng;
use ferrovision_vision::rle::Rle;
use serde_json::{json, Value};
use std::path::Path;

const H: u32 = 480;
const W: u32 = 640;

/// Images in the benchmark (sized so pycocotools takes tens of seconds on 2 cores).
pub const N_IMG: usize = 4000;
/// Detections per image.
pub const PER_IMG: usize = 20;

/// A star-shaped polygon inside the box `[x, y, w, h]`: `n` vertices at increasing angles
/// around the box centre. With `dent` 0 every vertex lies on the inscribed ellipse (convex);
/// with `dent` > 0 each radius shrinks by up to that fraction, so the outline is non-convex.
fn blob(rng: &mut Rng, b: [f64; 4], n: usize, dent: f64) -> Vec<f64> {
    let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
    let (rx, ry) = (b[2] / 2.0, b[3] / 2.0);
    let phase = rng.next_f64() * std::f64::consts::TAU;
    let mut xy = Vec::with_capacity(2 * n);
    for k in 0..n {
        // Jitter the angle within its slot so the vertices stay in order (a simple polygon).
        let a = phase + (k as f64 + 0.8 * rng.next_f64()) * std::f64::consts::TAU / n as f64;
        let r = 1.0 - dent * rng.next_f64();
        xy.push(round2(cx + rx * r * a.cos()));
        xy.push(round2(cy + ry * r * a.sin()));
    }
    xy
}

/// One ground-truth object's polygon parts in its box: convex, non-convex, or split in two or
/// three pieces (an occluded object).
fn gt_shape(rng: &mut Rng, b: [f64; 4]) -> Vec<Vec<f64>> {
    let n = 8 + rng.below(17) as usize;
    let u = rng.next_f64();
    if u < 0.45 {
        vec![blob(rng, b, n, 0.0)]
    } else if u < 0.85 {
        vec![blob(rng, b, n, 0.5)]
    } else {
        let parts = 2 + rng.below(2) as usize;
        let pw = b[2] / parts as f64;
        (0..parts)
            .map(|i| {
                let pb = [b[0] + i as f64 * pw, b[1], 0.85 * pw, b[3]];
                let n = 6 + rng.below(8) as usize;
                blob(rng, pb, n, 0.3)
            })
            .collect()
    }
}

/// A detector's version of a shape: every vertex moved by the same shift and scale about the
/// centre of `b`, plus per-vertex noise; `j` sets the strength (relative to the box size).
fn perturb(rng: &mut Rng, parts: &[Vec<f64>], b: [f64; 4], j: f64) -> Vec<Vec<f64>> {
    let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
    let (dx, dy) = (
        j * b[2] * (rng.next_f64() - 0.5),
        j * b[3] * (rng.next_f64() - 0.5),
    );
    let (sx, sy) = (
        1.0 + j * (rng.next_f64() - 0.5),
        1.0 + j * (rng.next_f64() - 0.5),
    );
    parts
        .iter()
        .map(|p| {
            p.chunks_exact(2)
                .flat_map(|v| {
                    let nx = 0.3 * j * b[2] * (rng.next_f64() - 0.5);
                    let ny = 0.3 * j * b[3] * (rng.next_f64() - 0.5);
                    [
                        cx + (v[0] - cx) * sx + dx + nx,
                        cy + (v[1] - cy) * sy + dy + ny,
                    ]
                })
                .collect()
        })
        .collect()
}

fn rle_err(e: ferrovision_vision::rle::RleError) -> String {
    format!("segm input: {e}")
}

/// A detection mask from perturbed polygon parts, sometimes edited at the mask level as a
/// segmentation head's output is: a spill-over blob merged in (union) or a cut-off side
/// (intersection with a box).
fn det_mask(rng: &mut Rng, parts: &[Vec<f64>], b: [f64; 4]) -> Result<Rle, String> {
    let m = Rle::from_polygons(parts, H, W).map_err(rle_err)?;
    let u = rng.next_f64();
    if u < 0.2 {
        let sb = [
            b[0] + b[2] * rng.next_f64(),
            b[1] + b[3] * rng.next_f64(),
            0.3 * b[2] + 2.0,
            0.3 * b[3] + 2.0,
        ];
        let spill = Rle::from_polygon(&blob(rng, sb, 8, 0.3), H, W).map_err(rle_err)?;
        Rle::merge(&[m, spill], false).map_err(rle_err)
    } else if u < 0.4 {
        let keep = 0.6 + 0.4 * rng.next_f64();
        let cut = if rng.next_f64() < 0.5 {
            [b[0] - 2.0, b[1] - 2.0, keep * b[2] + 2.0, b[3] + 4.0]
        } else {
            [b[0] - 2.0, b[1] - 2.0, b[2] + 4.0, keep * b[3] + 2.0]
        };
        let cut = Rle::from_bbox(cut, H, W).map_err(rle_err)?;
        Rle::merge(&[m, cut], true).map_err(rle_err)
    } else {
        Ok(m)
    }
}

fn det_json(img: usize, cat: usize, m: &Rle, score: f64) -> Value {
    json!({"image_id": img, "category_id": cat, "score": score,
        "segmentation": {"size": [H, W], "counts": m.to_coco_string()}})
}

fn score(rng: &mut Rng, lo: f64, span: f64) -> f64 {
    ((lo + span * rng.next_f64()) * 1e6).round() / 1e6
}

/// Writes `coco_segm_gt.json` and `coco_segm_dt.json` to `dir`: [`N_IMG`] images of 480x640,
/// 80 categories (skewed as in the bbox benchmark), 0-14 objects per image (mean 7) with
/// log-uniform sizes, 4 % crowd regions, and exactly [`PER_IMG`] detections per image:
/// perturbed masks of 80 % of the objects (higher scores), false positives and loose
/// duplicates (lower scores).
pub fn write(dir: &Path, seed: u64) -> Result<CocoInput, String> {
    let mut rng = Rng::new(seed);
    let (mut images, mut anns, mut dets) = (Vec::new(), Vec::new(), Vec::new());
    let mut ann_id = 1;
    for img in 1..=N_IMG {
        images.push(
            json!({"id": img, "width": W, "height": H, "file_name": format!("{img:06}.jpg")}),
        );
        // (box, polygon parts, category) of each object, for the detections below.
        let mut objs: Vec<([f64; 4], Vec<Vec<f64>>, usize)> = Vec::new();
        for _ in 0..rng.below(15) {
            let b = rand_box(&mut rng, 400.0);
            let c = zipf_category(&mut rng);
            if rng.next_f64() < 0.04 {
                // A crowd: several overlapping blobs over a wider box, stored as COCO stores
                // crowd regions (uncompressed RLE).
                let cb = [b[0], b[1], (b[2] * 1.5).min(f64::from(W) - b[0]), b[3]];
                let parts: Vec<Vec<f64>> = (0..3 + rng.below(4))
                    .map(|_| {
                        let sb = [
                            cb[0] + 0.6 * cb[2] * rng.next_f64(),
                            cb[1] + 0.4 * cb[3] * rng.next_f64(),
                            0.4 * cb[2] + 1.0,
                            0.6 * cb[3] + 1.0,
                        ];
                        blob(&mut rng, sb, 10, 0.3)
                    })
                    .collect();
                let m = Rle::from_polygons(&parts, H, W).map_err(rle_err)?;
                if m.area() == 0 {
                    continue;
                }
                anns.push(
                    json!({"id": ann_id, "image_id": img, "category_id": c, "iscrowd": 1,
                    "area": m.area(), "bbox": m.to_bbox(),
                    "segmentation": {"size": [H, W], "counts": m.counts()}}),
                );
                ann_id += 1;
                objs.push((cb, parts, c));
                continue;
            }
            let parts = gt_shape(&mut rng, b);
            let m = Rle::from_polygons(&parts, H, W).map_err(rle_err)?;
            if m.area() == 0 {
                continue; // too thin to cover a pixel centre: not a usable annotation
            }
            anns.push(
                json!({"id": ann_id, "image_id": img, "category_id": c, "iscrowd": 0,
                "area": m.area(), "bbox": m.to_bbox(), "segmentation": parts}),
            );
            ann_id += 1;
            objs.push((b, parts, c));
        }
        let mut n = 0;
        for (b, parts, c) in &objs {
            if n == PER_IMG || rng.next_f64() < 0.2 {
                continue;
            }
            let j = 0.02 + 0.15 * rng.next_f64();
            let p = perturb(&mut rng, parts, *b, j);
            let m = det_mask(&mut rng, &p, *b)?;
            let s = score(&mut rng, 0.3, 0.7);
            dets.push(det_json(img, *c, &m, s));
            n += 1;
        }
        while n < PER_IMG {
            let (m, c) = if !objs.is_empty() && rng.next_f64() < 0.3 {
                // A loose duplicate or a neighbour's mask with the same class.
                let (b, parts, c) = &objs[rng.below(objs.len() as u64) as usize];
                let p = perturb(&mut rng, parts, *b, 0.5);
                (det_mask(&mut rng, &p, *b)?, *c)
            } else {
                let b = rand_box(&mut rng, 300.0);
                let parts = gt_shape(&mut rng, b);
                let c = zipf_category(&mut rng);
                (det_mask(&mut rng, &parts, b)?, c)
            };
            let s = score(&mut rng, 0.0, 0.6);
            dets.push(det_json(img, c, &m, s));
            n += 1;
        }
    }
    let cats: Vec<_> = (1..=N_CAT)
        .map(|c| json!({"id": c, "name": format!("class{c}")}))
        .collect();
    let gt = json!({"images": images, "annotations": anns, "categories": cats});
    super::write_json_pair(dir, "coco_segm", &gt, dets)
}
