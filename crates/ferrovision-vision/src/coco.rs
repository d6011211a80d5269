//! COCO detection evaluation (bounding boxes and masks), numerically equal to pycocotools'
//! `COCOeval` with `iouType='bbox'` or `'segm'`.
//!
//! The algorithm is pycocotools' step for step: per image and category, detections sorted by
//! score (stable) and cut to 100, IoU in f64 (boxes: `maskApi.c` `bbIou`; masks: run-length
//! IoU of [`crate::rle`], pycocotools' `rleIou`) with crowd regions measured against the
//! detection area, greedy matching per IoU threshold that prefers non-ignored ground truth, ignored
//! detections outside the area range; then per category, area range and max-detection count,
//! all detections sorted by score (stable), cumulative TP/FP, precision made monotone and read
//! at 101 recall points, and the 12 summary numbers as means over the entries that are not -1.
//! It even keeps pycocotools' quirk that a match with a ground-truth annotation of id 0 counts
//! as unmatched. Categories run in parallel. The IoU is the only step that differs between box
//! and mask evaluation.
//!
//! Masks (`segm`): ground-truth segmentations are polygons (rasterized with COCO's rule at the
//! image's `height` / `width`, parts merged), uncompressed RLE or compressed RLE, converted as
//! pycocotools' `annToRLE` does; the ground-truth `area` is the file's. Detections carry a
//! `segmentation` (compressed RLE as pycocotools requires, but polygons and uncompressed RLE are
//! read too); as in pycocotools' `loadRes`, when the first detection of the file has a non-empty
//! `bbox` every detection's area is its box area `w * h`, otherwise its mask area.
//!
//! Differences from pycocotools, all on inputs pycocotools would reject, crash on or silently
//! misread: malformed files, detections naming unknown images or categories, and duplicate
//! annotation ids are errors naming the file and entry; an empty detection list evaluates (to
//! zeros) instead of raising; a ground-truth annotation without `area` uses its box area (masks:
//! its mask area). For masks: malformed RLE strings, counts that do not cover `height * width`,
//! an RLE whose size differs from its image's, a polygon with an odd number of coordinates, an
//! empty polygon list and a detection without `segmentation` are errors (pycocotools reads past
//! buffers, drops the last coordinate, or rasterizes the detection's box); a polygon whose first
//! part has fewer than three points is rasterized (pycocotools raises).

use crate::error::{read_to_string, Result, VisionError};
use crate::json_util::{parse, Ctx};
use crate::rle::{bb_iou, Rle};
/// Python's `'{:.Nf}'.format(v)` (the summary lines), from `ferrovision_io::pyfmt`.
pub use ferrovision_io::pyfmt::py_fixed;
use ferrovision_tensor::parallel::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// What is compared: boxes (`bbox`) or masks (`segm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IouType {
    /// Bounding boxes `[x, y, w, h]`.
    Bbox,
    /// Segmentation masks (polygons or RLE).
    Segm,
}

impl IouType {
    /// `"bbox"` or `"segm"`, as pycocotools names them.
    pub fn as_str(self) -> &'static str {
        match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
        }
    }
}

impl std::str::FromStr for IouType {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bbox" => Ok(IouType::Bbox),
            "segm" => Ok(IouType::Segm),
            _ => Err(VisionError::invalid(
                "eval coco",
                format!(
                    "iou type '{s}' is not supported (bbox, segm; keypoints is not implemented)"
                ),
            )),
        }
    }
}

/// One ground-truth annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct GtAnnotation {
    /// Annotation id (unique in the file).
    pub id: i64,
    /// Image id.
    pub image_id: i64,
    /// Category id.
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// Area used for the small/medium/large ranges (the file's `area`, else `w * h`; loaded
    /// for masks: else the mask area).
    pub area: f64,
    /// Crowd region: matches any number of detections and never counts as a miss.
    pub iscrowd: bool,
    /// The mask (loaded for [`IouType::Segm`]; `None` when loaded for boxes).
    pub segmentation: Option<Rle>,
}

/// A COCO ground-truth file: images, categories and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoGroundTruth {
    /// The file it came from (for error messages).
    pub file: String,
    /// Image ids, sorted ascending (pycocotools' evaluation order).
    pub image_ids: Vec<i64>,
    /// `(id, name)` of each category, sorted by id.
    pub categories: Vec<(i64, String)>,
    /// Annotations in file order.
    pub annotations: Vec<GtAnnotation>,
    /// `(height, width)` of the images that give both (read when loaded for masks).
    pub image_sizes: HashMap<i64, (u32, u32)>,
}

/// One detection (a line of a COCO results file).
#[derive(Debug, Clone, PartialEq)]
pub struct CocoDetection {
    /// Image id (must be an image of the ground truth).
    pub image_id: i64,
    /// Category id (must be a category of the ground truth).
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels (for masks without a `bbox` field: the mask's box).
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
    /// Area for the small/medium/large ranges: boxes `w * h`; masks as pycocotools' `loadRes`
    /// (the box area when the file's first detection has a box, else the mask area).
    pub area: f64,
    /// The mask (read for [`IouType::Segm`]; `None` for boxes).
    pub segmentation: Option<Rle>,
}

fn check_wh(ctx: &Ctx, b: &[f64; 4]) -> Result<()> {
    if b[2] < 0.0 || b[3] < 0.0 {
        return Err(ctx.err(format!(
            "bbox {b:?} has negative width or height (COCO boxes are [x, y, w, h])"
        )));
    }
    Ok(())
}

impl CocoGroundTruth {
    /// Reads a COCO ground-truth JSON file for box evaluation (segmentations are not read).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_for(path, IouType::Bbox)
    }

    /// Parses COCO ground-truth JSON text for box evaluation; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        Self::parse_for(text, file, IouType::Bbox)
    }

    /// Reads a COCO ground-truth JSON file for `iou_type`: for [`IouType::Segm`] every
    /// annotation's `segmentation` is converted to an [`Rle`] (polygons need the image's
    /// `height` and `width`).
    pub fn load_for(path: &Path, iou_type: IouType) -> Result<Self> {
        let text = read_to_string(path)?;
        Self::parse_for(&text, &path.display().to_string(), iou_type)
    }

    /// Parses COCO ground-truth JSON text for `iou_type`; `file` names it in errors.
    pub fn parse_for(text: &str, file: &str, iou_type: IouType) -> Result<Self> {
        let segm = iou_type == IouType::Segm;
        let v = parse(text, file)?;
        let top = Ctx {
            file,
            entry: "top level".into(),
        };
        let mut image_ids = Vec::new();
        let mut image_sizes = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (i, im) in top.array(&v, "images")?.iter().enumerate() {
            let ctx = Ctx {
                file,
                entry: format!("images[{i}]"),
            };
            let id = ctx.int(im, "id")?;
            if !seen.insert(id) {
                return Err(ctx.err(format!("duplicate image id {id}")));
            }
            image_ids.push(id);
            if segm {
                let o = ctx.obj(im)?;
                if o.contains_key("height") && o.contains_key("width") {
                    let dim = |k: &str| -> Result<u32> {
                        let x = ctx.int(im, k)?;
                        u32::try_from(x).map_err(|_| {
                            ctx.err(format!(
                                "field '{k}' must be a non-negative 32-bit integer, got {x}"
                            ))
                        })
                    };
                    image_sizes.insert(id, (dim("height")?, dim("width")?));
                }
            }
        }
        image_ids.sort_unstable();
        let mut categories = Vec::new();
        let mut cat_seen = std::collections::HashSet::new();
        for (i, c) in top.array(&v, "categories")?.iter().enumerate() {
            let ctx = Ctx {
                file,
                entry: format!("categories[{i}]"),
            };
            let id = ctx.int(c, "id")?;
            if !cat_seen.insert(id) {
                return Err(ctx.err(format!("duplicate category id {id}")));
            }
            let name = ctx
                .obj(c)?
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| id.to_string());
            categories.push((id, name));
        }
        categories.sort_by_key(|c| c.0);
        let mut annotations = Vec::new();
        let mut ann_seen = std::collections::HashSet::new();
        for (i, a) in top.array(&v, "annotations")?.iter().enumerate() {
            let mut ctx = Ctx {
                file,
                entry: format!("annotations[{i}]"),
            };
            let id = ctx.int(a, "id")?;
            ctx.entry = format!("annotations[{i}] (id {id})");
            if !ann_seen.insert(id) {
                return Err(ctx.err(format!("duplicate annotation id {id}")));
            }
            let image_id = ctx.int(a, "image_id")?;
            if !seen.contains(&image_id) {
                return Err(ctx.err(format!("image_id {image_id} is not in 'images'")));
            }
            let category_id = ctx.int(a, "category_id")?;
            if !cat_seen.contains(&category_id) {
                return Err(ctx.err(format!("category_id {category_id} is not in 'categories'")));
            }
            let bbox = ctx.four(a, "bbox")?;
            check_wh(&ctx, &bbox)?;
            let area = ctx.opt_num(a, "area")?;
            let iscrowd = ctx.opt_flag(a, "iscrowd")?;
            let segmentation = if segm {
                let s = ctx.field(a, "segmentation").map_err(|_| {
                    ctx.err("missing field 'segmentation' (needed for segm evaluation)")
                })?;
                Some(segmentation(
                    &ctx,
                    s,
                    image_id,
                    image_sizes.get(&image_id).copied(),
                )?)
            } else {
                None
            };
            let area = match (area, &segmentation) {
                (Some(a), _) => a,
                (None, Some(r)) => r.area() as f64,
                (None, None) => bbox[2] * bbox[3],
            };
            annotations.push(GtAnnotation {
                id,
                image_id,
                category_id,
                bbox,
                area,
                iscrowd,
                segmentation,
            });
        }
        Ok(CocoGroundTruth {
            file: file.to_string(),
            image_ids,
            categories,
            annotations,
            image_sizes,
        })
    }

    /// Reads a COCO results file of boxes (a JSON list of `{image_id, category_id, bbox,
    /// score}`), checking every entry against this ground truth.
    pub fn load_detections(&self, path: &Path) -> Result<Vec<CocoDetection>> {
        self.load_detections_for(path, IouType::Bbox)
    }

    /// Parses COCO results JSON text of boxes; `file` names it in errors.
    pub fn parse_detections(&self, text: &str, file: &str) -> Result<Vec<CocoDetection>> {
        self.parse_detections_for(text, file, IouType::Bbox)
    }

    /// Reads a COCO results file for `iou_type`: for [`IouType::Segm`] every entry needs a
    /// `segmentation` (`bbox` is optional), `{image_id, category_id, segmentation, score}`.
    pub fn load_detections_for(
        &self,
        path: &Path,
        iou_type: IouType,
    ) -> Result<Vec<CocoDetection>> {
        let text = read_to_string(path)?;
        self.parse_detections_for(&text, &path.display().to_string(), iou_type)
    }

    /// Parses COCO results JSON text for `iou_type`; `file` names it in errors.
    pub fn parse_detections_for(
        &self,
        text: &str,
        file: &str,
        iou_type: IouType,
    ) -> Result<Vec<CocoDetection>> {
        let v = parse(text, file)?;
        let list = v.as_array().ok_or_else(|| {
            VisionError::format(
                file,
                "top level",
                format!(
                    "expected a JSON list of detections, got {}",
                    crate::json_util::kind(&v)
                ),
            )
        })?;
        let images: std::collections::HashSet<i64> = self.image_ids.iter().copied().collect();
        let cats: std::collections::HashSet<i64> = self.categories.iter().map(|c| c.0).collect();
        // pycocotools' loadRes picks its branch from the first entry: with a non-empty `bbox`
        // every area is the box area (and a box is required), otherwise the mask area.
        let has_box = |d: &Value| {
            d.get("bbox")
                .is_some_and(|b| !b.is_null() && b.as_array().is_none_or(|a| !a.is_empty()))
        };
        let box_area = iou_type == IouType::Bbox || list.first().is_some_and(has_box);
        let mut out = Vec::with_capacity(list.len());
        for (i, d) in list.iter().enumerate() {
            let ctx = Ctx {
                file,
                entry: format!("detection {i}"),
            };
            let image_id = ctx.int(d, "image_id")?;
            if !images.contains(&image_id) {
                return Err(ctx.err(format!(
                    "image_id {image_id} is not an image of the ground truth {}",
                    self.file
                )));
            }
            let category_id = ctx.int(d, "category_id")?;
            if !cats.contains(&category_id) {
                return Err(ctx.err(format!(
                    "category_id {category_id} is not a category of the ground truth {}",
                    self.file
                )));
            }
            let segmentation = if iou_type == IouType::Segm {
                let s = ctx.field(d, "segmentation").map_err(|_| {
                    ctx.err("missing field 'segmentation' (needed for segm evaluation)")
                })?;
                Some(segmentation(
                    &ctx,
                    s,
                    image_id,
                    self.image_sizes.get(&image_id).copied(),
                )?)
            } else {
                None
            };
            let bbox = if box_area || has_box(d) {
                let b = ctx.four(d, "bbox").map_err(|e| {
                    if box_area && iou_type == IouType::Segm {
                        ctx.err(format!(
                            "{e} (the first detection has a bbox, so every detection's area is its box area, as in pycocotools)"
                        ))
                    } else {
                        e
                    }
                })?;
                check_wh(&ctx, &b)?;
                b
            } else {
                segmentation.as_ref().map_or([0.0; 4], Rle::to_bbox)
            };
            let score = ctx.num(d, "score")?;
            let area = match &segmentation {
                Some(r) if !box_area => r.area() as f64,
                _ => bbox[2] * bbox[3],
            };
            out.push(CocoDetection {
                image_id,
                category_id,
                bbox,
                score,
                area,
                segmentation,
            });
        }
        Ok(out)
    }
}

/// Reads one `segmentation` value as pycocotools' `annToRLE`: polygons (rasterized at the
/// image size, parts merged), uncompressed RLE or compressed RLE, whose size must be the
/// image's when the image gives one.
fn segmentation(ctx: &Ctx, s: &Value, image_id: i64, size: Option<(u32, u32)>) -> Result<Rle> {
    let rle_err = |e: crate::rle::RleError| ctx.err(format!("segmentation: {e}"));
    match s {
        Value::Array(parts) => {
            let (h, w) = size.ok_or_else(|| {
                ctx.err(format!(
                    "image {image_id} has no 'height' and 'width', needed to rasterize a polygon segmentation"
                ))
            })?;
            let mut polys = Vec::with_capacity(parts.len());
            for (pi, p) in parts.iter().enumerate() {
                let coords = p.as_array().ok_or_else(|| {
                    ctx.err(format!(
                        "segmentation polygon {pi} must be a list of x, y numbers, got {}",
                        crate::json_util::kind(p)
                    ))
                })?;
                let xy = coords
                    .iter()
                    .map(|c| c.as_f64())
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| {
                        ctx.err(format!("segmentation polygon {pi} holds a value that is not a number"))
                    })?;
                polys.push(xy);
            }
            Rle::from_polygons(&polys, h, w).map_err(rle_err)
        }
        Value::Object(o) => {
            let sz = o
                .get("size")
                .and_then(Value::as_array)
                .filter(|a| a.len() == 2)
                .and_then(|a| {
                    let d = |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
                    Some((d(&a[0])?, d(&a[1])?))
                })
                .ok_or_else(|| {
                    ctx.err(format!(
                        "segmentation RLE needs 'size': [height, width] (non-negative integers), got {}",
                        o.get("size").map_or("nothing".to_string(), |v| v.to_string())
                    ))
                })?;
            if let Some(im) = size {
                if im != sz {
                    return Err(ctx.err(format!(
                        "segmentation RLE size [{}, {}] differs from image {image_id}'s [height, width] [{}, {}]",
                        sz.0, sz.1, im.0, im.1
                    )));
                }
            }
            match o.get("counts") {
                Some(Value::String(c)) => Rle::from_string(c, sz.0, sz.1).map_err(rle_err),
                Some(Value::Array(c)) => {
                    let counts = c
                        .iter()
                        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                        .collect::<Option<Vec<u32>>>()
                        .ok_or_else(|| {
                            ctx.err("segmentation RLE 'counts' must hold non-negative 32-bit integers")
                        })?;
                    Rle::new(sz.0, sz.1, counts).map_err(rle_err)
                }
                other => Err(ctx.err(format!(
                    "segmentation RLE needs 'counts' (a string or a list of integers), got {}",
                    other.map_or("nothing", crate::json_util::kind)
                ))),
            }
        }
        _ => Err(ctx.err(format!(
            "segmentation must be polygons (a list of [x, y, ...] lists) or an RLE object {{size, counts}}, got {}",
            crate::json_util::kind(s)
        ))),
    }
}

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
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
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
struct ImgEval {
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
fn eval_cell(
    gts: &[&GtAnnotation],
    dts: &[(usize, &CocoDetection)],
    p: &CocoParams,
    iou_type: IouType,
) -> Result<Vec<ImgEval>> {
    let t_n = p.iou_thrs.len();
    let max_det = *p.max_dets.last().unwrap();
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
fn iou_matrix(
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

fn no_mask(what: &str, id: i64) -> VisionError {
    VisionError::invalid(
        "evaluate_segm",
        format!("{what} {id} has no segmentation (load with IouType::Segm)"),
    )
}

/// Accumulates one category: returns precision `[T][R][A][M]` and recall `[T][A][M]`.
fn accumulate_category(cells: &[Vec<ImgEval>], p: &CocoParams) -> (Vec<f64>, Vec<f64>) {
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
/// `COCOeval`: `evaluate()`, `accumulate()`, `summarize()`).
pub fn evaluate(
    gt: &CocoGroundTruth,
    dts: &[CocoDetection],
    iou_type: IouType,
) -> Result<CocoEval> {
    let p = CocoParams::default();
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
fn check_mask_sizes(gt: &CocoGroundTruth, dts: &[CocoDetection]) -> Result<()> {
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

impl CocoEval {
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.params.iou_thrs.len(),
            self.params.rec_thrs.len(),
            self.categories.len(),
            self.params.area_rngs.len(),
            self.params.max_dets.len(),
        )
    }

    /// Mean of the entries > -1 for AP (`ap`) or AR, at IoU threshold index `t` (None: all),
    /// area index `a`, max-detections index `m`, categories `ks` (None: all); -1 when empty.
    /// The values are summed in NumPy's order (C order of the sliced array: threshold, recall,
    /// category) with NumPy's pairwise summation, so printed roundings agree with pycocotools.
    fn mean(&self, ap: bool, t: Option<usize>, a: usize, m: usize, ks: Option<usize>) -> f64 {
        let (t_n, r_n, k_n, a_n, m_n) = self.dims();
        let ts: Vec<usize> = t.map_or((0..t_n).collect(), |t| vec![t]);
        let kk: Vec<usize> = ks.map_or((0..k_n).collect(), |k| vec![k]);
        let mut vals = Vec::new();
        for &ti in &ts {
            if ap {
                for r in 0..r_n {
                    for &k in &kk {
                        vals.push(self.precision[(((ti * r_n + r) * k_n + k) * a_n + a) * m_n + m]);
                    }
                }
            } else {
                for &k in &kk {
                    vals.push(self.recall[((ti * k_n + k) * a_n + a) * m_n + m]);
                }
            }
        }
        vals.retain(|&v| v > -1.0);
        if vals.is_empty() {
            -1.0
        } else {
            numpy_pairwise_sum(&vals) / vals.len() as f64
        }
    }

    fn thr_index(&self, thr: f64) -> Option<usize> {
        self.params.iou_thrs.iter().position(|&t| t == thr)
    }

    fn summarize(&self) -> [f64; 12] {
        let m_last = self.params.max_dets.len() - 1;
        let t50 = self.thr_index(0.5);
        let t75 = self.thr_index(0.75);
        let ap = |t: Option<usize>, a: usize| self.mean(true, t, a, m_last, None);
        let ar = |a: usize, m: usize| self.mean(false, None, a, m, None);
        [
            ap(None, 0),
            t50.map_or(-1.0, |t| ap(Some(t), 0)),
            t75.map_or(-1.0, |t| ap(Some(t), 0)),
            ap(None, 1),
            ap(None, 2),
            ap(None, 3),
            ar(0, 0),
            ar(0, 1),
            ar(0, m_last),
            ar(1, m_last),
            ar(2, m_last),
            ar(3, m_last),
        ]
    }

    /// The 12 lines pycocotools' `summarize()` prints.
    pub fn summary_text(&self) -> String {
        let p = &self.params;
        let md = |m: usize| p.max_dets[m];
        let m_last = p.max_dets.len() - 1;
        let rows: [(bool, Option<f64>, &str, usize); 12] = [
            (true, None, "all", md(m_last)),
            (true, Some(0.5), "all", md(m_last)),
            (true, Some(0.75), "all", md(m_last)),
            (true, None, "small", md(m_last)),
            (true, None, "medium", md(m_last)),
            (true, None, "large", md(m_last)),
            (false, None, "all", md(0)),
            (false, None, "all", md(1)),
            (false, None, "all", md(m_last)),
            (false, None, "small", md(m_last)),
            (false, None, "medium", md(m_last)),
            (false, None, "large", md(m_last)),
        ];
        let mut s = String::new();
        for (i, (ap, thr, area, max_det)) in rows.iter().enumerate() {
            let (title, ty) = if *ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match thr {
                None => format!(
                    "{:.2}:{:.2}",
                    p.iou_thrs[0],
                    p.iou_thrs[p.iou_thrs.len() - 1]
                ),
                Some(t) => format!("{t:.2}"),
            };
            s.push_str(&format!(
                " {:<18} {} @[ IoU={:<9} | area={:>6} | maxDets={:>3} ] = {}\n",
                title,
                ty,
                iou,
                area,
                max_det,
                py_fixed(self.stats[i], 3)
            ));
        }
        s
    }

    /// The 12 numbers as one JSON object with keys [`STAT_KEYS`].
    pub fn summary_json(&self) -> String {
        let body: Vec<String> = STAT_KEYS
            .iter()
            .zip(self.stats)
            .map(|(k, v)| format!("\"{k}\": {}", json_num(v)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    /// AP@[.5:.95] (all areas, 100 detections) per category: `(id, name, ap)`, `ap = -1` for a
    /// category without ground truth.
    pub fn per_category_ap(&self) -> Vec<(i64, String, f64)> {
        let m_last = self.params.max_dets.len() - 1;
        self.categories
            .iter()
            .enumerate()
            .map(|(k, (id, name))| (*id, name.clone(), self.mean(true, None, 0, m_last, Some(k))))
            .collect()
    }

    /// Interpolated precision at the 101 recall thresholds for category index `k` at IoU
    /// threshold `iou` (e.g. 0.5), all areas, 100 detections: `(recall, precision)` points,
    /// empty if the category has no ground truth or the threshold is not on the grid.
    pub fn pr_curve(&self, k: usize, iou: f64) -> Vec<(f64, f64)> {
        let (_, r_n, k_n, a_n, m_n) = self.dims();
        let Some(t) = self
            .params
            .iou_thrs
            .iter()
            .position(|&x| (x - iou).abs() < 1e-9)
        else {
            return Vec::new();
        };
        if k >= k_n {
            return Vec::new();
        }
        let m = m_n - 1;
        let pts: Vec<(f64, f64)> = (0..r_n)
            .map(|r| {
                (
                    self.params.rec_thrs[r],
                    self.precision[(((t * r_n + r) * k_n + k) * a_n) * m_n + m],
                )
            })
            .collect();
        if pts.iter().all(|p| p.1 < 0.0) {
            Vec::new()
        } else {
            pts
        }
    }

    /// Writes the precision-recall curves (IoU `iou`, all areas, 100 detections) of the
    /// categories with ground truth, at most `max_curves` of them, as a PNG plot.
    pub fn save_pr_curves(&self, path: &Path, iou: f64, max_curves: usize) -> Result<()> {
        let curves: Vec<(String, Vec<(f64, f64)>)> = (0..self.categories.len())
            .map(|k| (self.categories[k].1.clone(), self.pr_curve(k, iou)))
            .filter(|c| !c.1.is_empty())
            .take(max_curves)
            .collect();
        crate::draw::pr_curve_png(&curves, path, 480)
    }

    /// A per-category AP table (AP@[.5:.95] and AP50), one row per category.
    pub fn per_category_table(&self) -> String {
        let (_, r_n, k_n, a_n, m_n) = self.dims();
        let t50 = self.thr_index(0.5);
        let mut s = format!("{:<24} {:>8} {:>8}\n", "category", "AP", "AP50");
        for (k, (id, name, ap)) in self.per_category_ap().into_iter().enumerate() {
            let ap50 = t50.map_or(-1.0, |t| {
                let vals: Vec<f64> = (0..r_n)
                    .map(|r| self.precision[(((t * r_n + r) * k_n + k) * a_n) * m_n + m_n - 1])
                    .filter(|&v| v > -1.0)
                    .collect();
                if vals.is_empty() {
                    -1.0
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                }
            });
            let label = format!("{name} ({id})");
            s.push_str(&format!("{label:<24} {ap:>8.4} {ap50:>8.4}\n"));
        }
        s
    }
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

pub(crate) fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// What `ferrovision eval coco` prints: pycocotools' 12 summary lines, or with `json` the
/// object `{"AP": .., "AP50": .., ..., "ARl": ..}` on one line. `iou_type` is `"bbox"` (box
/// IoU) or `"segm"` (mask IoU: polygons / RLE in the ground truth, a `segmentation` in every
/// detection); keypoint evaluation is not implemented.
pub fn eval_coco_report(gt: &Path, dt: &Path, iou_type: &str, json: bool) -> Result<String> {
    let t: IouType = iou_type.parse()?;
    let g = CocoGroundTruth::load_for(gt, t)?;
    let d = g.load_detections_for(dt, t)?;
    let ev = evaluate(&g, &d, t)?;
    Ok(if json {
        format!("{}\n", ev.summary_json())
    } else {
        ev.summary_text()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_grid() {
        let p = CocoParams::default();
        assert_eq!(p.iou_thrs.len(), 10);
        assert_eq!(p.iou_thrs[5], 0.75);
        assert_eq!(p.rec_thrs[100], 1.0);
        assert_eq!(p.rec_thrs[1], 0.01);
    }

    #[test]
    fn perfect_detections_give_one() {
        let gt = r#"{"images":[{"id":1},{"id":2}],"categories":[{"id":3,"name":"a"}],
            "annotations":[{"id":1,"image_id":1,"category_id":3,"bbox":[10,10,50,40],"area":2000,"iscrowd":0},
                           {"id":2,"image_id":2,"category_id":3,"bbox":[0,0,200,100],"area":20000}]}"#;
        let g = CocoGroundTruth::parse(gt, "gt.json").unwrap();
        let d = g
            .parse_detections(
                r#"[{"image_id":1,"category_id":3,"bbox":[10,10,50,40],"score":0.9},
                    {"image_id":2,"category_id":3,"bbox":[0,0,200,100],"score":0.8}]"#,
                "dt.json",
            )
            .unwrap();
        let ev = evaluate_bbox(&g, &d).unwrap();
        assert_eq!(ev.stats[0], 1.0);
        assert_eq!(ev.stats[3], -1.0); // no small objects
        assert!(ev.summary_text().starts_with(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"
        ));
    }
}
