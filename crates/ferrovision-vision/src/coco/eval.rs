//! The evaluation itself: pycocotools' `evaluateImg` per (image, category) cell and
//! `accumulate` per category (see the parent module for the algorithm).

use super::load::*;
use crate::error::{Result, VisionError};
use crate::rle::{bb_iou, Rle};
use ferrovision_tensor::parallel::prelude::*;
use std::collections::HashMap;

/// The evaluation grid: pycocotools' defaults for boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoParams {
    /// IoU thresholds `.50:.05:.95` (as `np.linspace`).
    pub iou_thrs: Vec<f64>,
    /// Recall thresholds `0:.01:1` (as `np.linspace`).
    pub rec_thrs: Vec<f64>,
    /// Max detections per image, ascending (`[1, 10, 100]`).
    pub max_dets: Vec<usize>,
    /// Area ranges all / small / medium / large.
    pub area_rngs: Vec<(f64, f64)>,
}

/// `np.linspace(start, stop, num)`: `i * step + start`, last element exactly `stop`.
pub(super) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

impl Default for CocoParams {
    fn default() -> Self {
        CocoParams {
            // int(np.round((0.95 - .5) / .05)) + 1 = 10, int(np.round(1 / .01)) + 1 = 101
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_rngs: vec![
                (0.0, 1e5 * 1e5),
                (0.0, 32.0 * 32.0),
                (32.0 * 32.0, 96.0 * 96.0),
                (96.0 * 96.0, 1e5 * 1e5),
            ],
        }
    }
}

impl CocoParams {
    /// Checks the grid before an evaluation uses it: IoU and recall thresholds non-empty,
    /// strictly ascending and within [0, 1]; `max_dets` strictly ascending with at least two
    /// entries (the summary reads AR at the first, second and last); exactly four area ranges
    /// (all, small, medium, large: the summary's rows), each `(lo, hi)` with `lo <= hi` and
    /// no NaN. The error names the field, what it must be and what it holds.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, want: &str, got: String| {
            Err(VisionError::invalid(
                "evaluate",
                format!("CocoParams.{field} must be {want}, got {got}"),
            ))
        };
        for (field, thrs) in [("iou_thrs", &self.iou_thrs), ("rec_thrs", &self.rec_thrs)] {
            let in_range = thrs.iter().all(|t| (0.0..=1.0).contains(t));
            if thrs.is_empty() || !in_range || thrs.windows(2).any(|w| w[0] >= w[1]) {
                return bad(
                    field,
                    "a non-empty, strictly ascending list of values in [0, 1]",
                    format!("{thrs:?}"),
                );
            }
        }
        let md = &self.max_dets;
        if md.len() < 2 || md.windows(2).any(|w| w[0] >= w[1]) {
            return bad(
                "max_dets",
                "a strictly ascending list of at least 2 counts",
                format!("{md:?}"),
            );
        }
        let ar = &self.area_rngs;
        if ar.len() != 4 {
            return bad(
                "area_rngs",
                "4 ranges (all, small, medium, large)",
                format!("{} ranges", ar.len()),
            );
        }
        if let Some((i, r)) = ar
            .iter()
            .enumerate()
            .find(|(_, (lo, hi))| lo.is_nan() || hi.is_nan() || lo > hi)
        {
            return bad(
                &format!("area_rngs[{i}]"),
                "(lo, hi) with lo <= hi and no NaN",
                format!("{r:?}"),
            );
        }
        Ok(())
    }
}

/// Accumulated COCO evaluation.
#[derive(Debug, Clone)]
pub struct CocoEval {
    /// The grid used.
    pub params: CocoParams,
    /// `(id, name)` per category, in evaluation order (ascending id).
    pub categories: Vec<(i64, String)>,
    /// Precision `[T][R][K][A][M]` row-major; -1 where a category has no ground truth.
    pub precision: Vec<f64>,
    /// Recall `[T][K][A][M]` row-major; -1 where a category has no ground truth.
    pub recall: Vec<f64>,
    /// The 12 summary numbers: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
    pub stats: [f64; 12],
}

/// The keys of [`CocoEval::stats`] in order.
pub const STAT_KEYS: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// Per-image evaluation of one category in one area range (pycocotools' `evaluateImg`).
pub(super) struct ImgEval {
    /// Scores of the kept detections, by decreasing score.
    scores: Vec<f64>,
    /// `[T][D]`: the matched ground-truth id (0 = unmatched).
    dtm: Vec<i64>,
    /// `[T][D]`: ignored detections.
    dt_ig: Vec<bool>,
    /// Number of non-ignored ground truths.
    npig: usize,
}

/// Evaluates one (image, category) cell for every area range.
pub(super) fn eval_cell(
    gts: &[&GtAnnotation],
    dts: &[(usize, &CocoDetection)],
    p: &CocoParams,
    iou_type: IouType,
) -> Result<Vec<ImgEval>> {
    let t_n = p.iou_thrs.len();
    let max_det = *p
        .max_dets
        .last()
        .ok_or_else(|| VisionError::invalid("evaluate", "CocoParams.max_dets is empty"))?;
    // Stable sort by decreasing score, cut to the largest max-detections.
    let mut dts: Vec<(usize, &CocoDetection)> = dts.to_vec();
    dts.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    dts.truncate(max_det);
    let d_n = dts.len();
    let g_n = gts.len();
    let ious = iou_matrix(gts, &dts, iou_type)?;
    let scores: Vec<f64> = dts.iter().map(|d| d.1.score).collect();
    let mut out = Vec::with_capacity(p.area_rngs.len());
    for &(lo, hi) in &p.area_rngs {
        let ig: Vec<bool> = gts
            .iter()
            .map(|g| g.iscrowd || g.area < lo || g.area > hi)
            .collect();
        // Non-ignored ground truth first, stable.
        let mut order: Vec<usize> = (0..g_n).collect();
        order.sort_by_key(|&g| ig[g]);
        let mut dtm = vec![0i64; t_n * d_n];
        let mut dt_ig = vec![false; t_n * d_n];
        let mut gtm = vec![false; g_n];
        if d_n > 0 && g_n > 0 {
            for (ti, &t) in p.iou_thrs.iter().enumerate() {
                gtm.iter_mut().for_each(|m| *m = false);
                for di in 0..d_n {
                    let mut iou = t.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for (rank, &gi) in order.iter().enumerate() {
                        if gtm[rank] && !gts[gi].iscrowd {
                            continue;
                        }
                        if let Some(mr) = m {
                            if !ig[order[mr]] && ig[gi] {
                                break;
                            }
                        }
                        let v = ious[di * g_n + gi];
                        if v < iou {
                            continue;
                        }
                        iou = v;
                        m = Some(rank);
                    }
                    if let Some(mr) = m {
                        let gi = order[mr];
                        dt_ig[ti * d_n + di] = ig[gi];
                        dtm[ti * d_n + di] = gts[gi].id;
                        gtm[mr] = true;
                    }
                }
            }
        }
        for (di, d) in dts.iter().enumerate() {
            let a = match iou_type {
                IouType::Bbox => d.1.bbox[2] * d.1.bbox[3],
                IouType::Segm => d.1.area,
            };
            if a < lo || a > hi {
                for ti in 0..t_n {
                    if dtm[ti * d_n + di] == 0 {
                        dt_ig[ti * d_n + di] = true;
                    }
                }
            }
        }
        out.push(ImgEval {
            scores: scores.clone(),
            dtm,
            dt_ig,
            npig: ig.iter().filter(|&&x| !x).count(),
        });
    }
    Ok(out)
}

/// IoU of every (score-sorted) detection with every ground truth of one cell, `[D][G]`:
/// the one step in which box and mask evaluation differ.
pub(super) fn iou_matrix(
    gts: &[&GtAnnotation],
    dts: &[(usize, &CocoDetection)],
    iou_type: IouType,
) -> Result<Vec<f64>> {
    let g_n = gts.len();
    match iou_type {
        IouType::Bbox => {
            let mut ious = vec![0.0f64; dts.len() * g_n];
            for (di, d) in dts.iter().enumerate() {
                for (gi, g) in gts.iter().enumerate() {
                    ious[di * g_n + gi] = bb_iou(&d.1.bbox, &g.bbox, g.iscrowd);
                }
            }
            Ok(ious)
        }
        IouType::Segm => {
            let dm = dts
                .iter()
                .map(|d| {
                    d.1.segmentation
                        .as_ref()
                        .ok_or_else(|| no_mask("detection", d.0 as i64))
                })
                .collect::<Result<Vec<&Rle>>>()?;
            let gm = gts
                .iter()
                .map(|g| {
                    g.segmentation
                        .as_ref()
                        .ok_or_else(|| no_mask("annotation id", g.id))
                })
                .collect::<Result<Vec<&Rle>>>()?;
            let crowd: Vec<bool> = gts.iter().map(|g| g.iscrowd).collect();
            crate::rle::iou(&dm, &gm, &crowd)
                .map_err(|e| VisionError::invalid("evaluate_segm", e.0))
        }
    }
}

pub(super) fn no_mask(what: &str, id: i64) -> VisionError {
    VisionError::invalid(
        "evaluate_segm",
        format!("{what} {id} has no segmentation (load with IouType::Segm)"),
    )
}

/// Accumulates one category: returns precision `[T][R][A][M]` and recall `[T][A][M]`.
pub(super) fn accumulate_category(cells: &[Vec<ImgEval>], p: &CocoParams) -> (Vec<f64>, Vec<f64>) {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rngs.len(),
        p.max_dets.len(),
    );
    let mut prec = vec![-1.0; t_n * r_n * a_n * m_n];
    let mut rec = vec![-1.0; t_n * a_n * m_n];
    if cells.is_empty() {
        return (prec, rec);
    }
    for (mi, &max_det) in p.max_dets.iter().enumerate() {
        // Concatenate per image (image order), then a stable sort by decreasing score.
        let mut idx: Vec<(u32, u32)> = Vec::new(); // (cell, det)
        let mut sc: Vec<f64> = Vec::new();
        for (ci, c) in cells.iter().enumerate() {
            let d_n = c[0].scores.len().min(max_det);
            for di in 0..d_n {
                idx.push((ci as u32, di as u32));
                sc.push(c[0].scores[di]);
            }
        }
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by(|&a, &b| sc[b].total_cmp(&sc[a]));
        let nd_all = order.len();
        for ai in 0..a_n {
            let npig: usize = cells.iter().map(|c| c[ai].npig).sum();
            if npig == 0 {
                continue;
            }
            for ti in 0..t_n {
                // Cumulative TP / FP over the non-ignored detections.
                let mut tp = 0.0f64;
                let mut fp = 0.0f64;
                let mut rc = Vec::with_capacity(nd_all);
                let mut pr = Vec::with_capacity(nd_all);
                for &o in &order {
                    let (ci, di) = idx[o];
                    let e = &cells[ci as usize][ai];
                    let d_n = e.scores.len();
                    let k = ti * d_n + di as usize;
                    let ignored = e.dt_ig[k];
                    let matched = e.dtm[k] != 0;
                    if !ignored {
                        if matched {
                            tp += 1.0;
                        } else {
                            fp += 1.0;
                        }
                    }
                    rc.push(tp / npig as f64);
                    pr.push(tp / (fp + tp + f64::EPSILON));
                }
                let nd = rc.len();
                rec[(ti * a_n + ai) * m_n + mi] = if nd > 0 { rc[nd - 1] } else { 0.0 };
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // np.searchsorted(rc, rec_thrs, 'left'): first i with rc[i] >= thr.
                let mut pi = 0;
                for (ri, &thr) in p.rec_thrs.iter().enumerate() {
                    while pi < nd && rc[pi] < thr {
                        pi += 1;
                    }
                    let q = if pi < nd { pr[pi] } else { 0.0 };
                    prec[((ti * r_n + ri) * a_n + ai) * m_n + mi] = q;
                    if pi >= nd {
                        // Once past the end every later threshold reads 0 too.
                        for rj in ri + 1..r_n {
                            prec[((ti * r_n + rj) * a_n + ai) * m_n + mi] = 0.0;
                        }
                        break;
                    }
                }
            }
        }
    }
    (prec, rec)
}

/// Evaluates bounding-box detections against the ground truth (pycocotools `COCOeval` with
/// `iouType='bbox'`: `evaluate()`, `accumulate()`, `summarize()`).
pub fn evaluate_bbox(gt: &CocoGroundTruth, dts: &[CocoDetection]) -> Result<CocoEval> {
    evaluate(gt, dts, IouType::Bbox)
}

/// Evaluates mask detections against the ground truth (pycocotools `COCOeval` with
/// `iouType='segm'`); both must have been loaded with [`IouType::Segm`].
pub fn evaluate_segm(gt: &CocoGroundTruth, dts: &[CocoDetection]) -> Result<CocoEval> {
    evaluate(gt, dts, IouType::Segm)
}

/// Evaluates detections against the ground truth with box or mask IoU (pycocotools
/// `COCOeval`: `evaluate()`, `accumulate()`, `summarize()`) on the default grid.
pub fn evaluate(
    gt: &CocoGroundTruth,
    dts: &[CocoDetection],
    iou_type: IouType,
) -> Result<CocoEval> {
    evaluate_with(gt, dts, iou_type, CocoParams::default())
}

/// [`evaluate`] on a custom grid (pycocotools' `COCOeval.params`), checked first by
/// [`CocoParams::validate`].
pub fn evaluate_with(
    gt: &CocoGroundTruth,
    dts: &[CocoDetection],
    iou_type: IouType,
    p: CocoParams,
) -> Result<CocoEval> {
    p.validate()?;
    if iou_type == IouType::Segm {
        check_mask_sizes(gt, dts)?;
    }
    let img_index: HashMap<i64, usize> = gt
        .image_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let cat_index: HashMap<i64, usize> = gt
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.0, i))
        .collect();
    let lookup = |img: i64, cat: i64, what: &str, i: usize| -> Result<(usize, usize)> {
        match (img_index.get(&img), cat_index.get(&cat)) {
            (Some(&a), Some(&b)) => Ok((b, a)),
            _ => Err(VisionError::format(
                gt.file.clone(),
                format!("{what} {i}"),
                format!("image {img} / category {cat} not in the ground truth"),
            )),
        }
    };
    // (category, image, file position), stable by position.
    let mut g_keys = Vec::with_capacity(gt.annotations.len());
    for (i, a) in gt.annotations.iter().enumerate() {
        let (k, im) = lookup(a.image_id, a.category_id, "annotation", i)?;
        g_keys.push((k, im, i));
    }
    g_keys.sort_unstable();
    let mut d_keys = Vec::with_capacity(dts.len());
    for (i, d) in dts.iter().enumerate() {
        if !d.score.is_finite() || d.bbox.iter().any(|v| !v.is_finite()) {
            return Err(VisionError::invalid(
                "evaluate_bbox",
                format!("detection {i} has a non-finite score or box"),
            ));
        }
        let (k, im) = lookup(d.image_id, d.category_id, "detection", i)?;
        d_keys.push((k, im, i));
    }
    d_keys.sort_unstable();
    // Split both key lists by category.
    let k_n = gt.categories.len();
    let split = |keys: &[(usize, usize, usize)]| -> Vec<std::ops::Range<usize>> {
        let mut r = vec![0..0; k_n];
        let mut s = 0;
        while s < keys.len() {
            let k = keys[s].0;
            let mut e = s;
            while e < keys.len() && keys[e].0 == k {
                e += 1;
            }
            r[k] = s..e;
            s = e;
        }
        r
    };
    let g_split = split(&g_keys);
    let d_split = split(&d_keys);
    let per_cat: Vec<(Vec<f64>, Vec<f64>)> = (0..k_n)
        .into_par_iter()
        .map(|k| {
            let gk = &g_keys[g_split[k].clone()];
            let dk = &d_keys[d_split[k].clone()];
            let mut cells = Vec::new();
            let (mut gi, mut di) = (0, 0);
            while gi < gk.len() || di < dk.len() {
                let img = match (gk.get(gi), dk.get(di)) {
                    (Some(g), Some(d)) => g.1.min(d.1),
                    (Some(g), None) => g.1,
                    (None, Some(d)) => d.1,
                    (None, None) => unreachable!(),
                };
                let mut gs = Vec::new();
                while gi < gk.len() && gk[gi].1 == img {
                    gs.push(&gt.annotations[gk[gi].2]);
                    gi += 1;
                }
                let mut ds = Vec::new();
                while di < dk.len() && dk[di].1 == img {
                    ds.push((dk[di].2, &dts[dk[di].2]));
                    di += 1;
                }
                cells.push(eval_cell(&gs, &ds, &p, iou_type)?);
            }
            Ok(accumulate_category(&cells, &p))
        })
        .collect::<Result<_>>()?;
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rngs.len(),
        p.max_dets.len(),
    );
    let mut precision = vec![-1.0; t_n * r_n * k_n * a_n * m_n];
    let mut recall = vec![-1.0; t_n * k_n * a_n * m_n];
    for (k, (pc, rc)) in per_cat.iter().enumerate() {
        for t in 0..t_n {
            for r in 0..r_n {
                for a in 0..a_n {
                    for m in 0..m_n {
                        precision[(((t * r_n + r) * k_n + k) * a_n + a) * m_n + m] =
                            pc[((t * r_n + r) * a_n + a) * m_n + m];
                    }
                }
            }
            for a in 0..a_n {
                for m in 0..m_n {
                    recall[((t * k_n + k) * a_n + a) * m_n + m] = rc[(t * a_n + a) * m_n + m];
                }
            }
        }
    }
    let mut ev = CocoEval {
        params: p,
        categories: gt.categories.clone(),
        precision,
        recall,
        stats: [0.0; 12],
    };
    ev.stats = ev.summarize();
    Ok(ev)
}

/// Every mask of one image must have one size (pycocotools compares masks of different sizes
/// as IoU -1, silently): the loaders check sizes against the image's `height` / `width`; this
/// also covers images without them and hand-built inputs.
pub(super) fn check_mask_sizes(gt: &CocoGroundTruth, dts: &[CocoDetection]) -> Result<()> {
    // Which item fixed each image's size: (size, is a detection, index); names are made only
    // for the error message.
    let name = |det: bool, i: usize| {
        if det {
            format!("detection {i}")
        } else {
            format!("annotation id {}", gt.annotations[i].id)
        }
    };
    let mut sizes: HashMap<i64, ((u32, u32), bool, usize)> = HashMap::new();
    let items = gt
        .annotations
        .iter()
        .enumerate()
        .map(|(i, a)| (a.image_id, &a.segmentation, false, i))
        .chain(
            dts.iter()
                .enumerate()
                .map(|(i, d)| (d.image_id, &d.segmentation, true, i)),
        );
    for (img, seg, det, i) in items {
        let Some(r) = seg else {
            return Err(VisionError::invalid(
                "evaluate_segm",
                format!(
                    "{} has no segmentation (load with IouType::Segm)",
                    name(det, i)
                ),
            ));
        };
        let sz = (r.height(), r.width());
        match sizes.get(&img) {
            Some(&(s, d0, i0)) if s != sz => {
                return Err(VisionError::invalid(
                    "evaluate_segm",
                    format!(
                    "{} has a mask of size [{}, {}] but {} in the same image {img} has [{}, {}]",
                    name(det, i),
                    sz.0,
                    sz.1,
                    name(d0, i0),
                    s.0,
                    s.1
                ),
                ))
            }
            Some(_) => {}
            None => {
                sizes.insert(img, (sz, det, i));
            }
        }
    }
    Ok(())
}

/// NumPy's pairwise summation of a contiguous f64 array (`np.sum`), bit for bit: blocks of up
/// to 128 summed with 8 accumulators, larger arrays split in halves (rounded to multiples of 8).
pub fn numpy_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = 0.0;
        for &x in a {
            r += x;
        }
        r
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_pairwise_sum(&a[..n2]) + numpy_pairwise_sum(&a[n2..])
    }
}
