//! Pascal VOC detection evaluation (annotations parsed by `ferrovision_data::annotations::voc`,
//! re-exported here): per-class precision/recall curves
//! and AP with the VOC devkit's rules (IoU with the +1 pixel convention, a detection matches
//! when IoU > 0.5, `difficult` objects count neither as hits nor misses, a second detection of
//! the same object is a false positive), 11-point (VOC2007) or all-point (VOC2010+) AP.

use crate::error::{read_to_string, Result, VisionError};
use crate::json_util::{parse, Ctx};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub use ferrovision_data::annotations::voc::{parse_voc_xml, VocAnnotation, VocObject};

/// Reads every `*.xml` file of a directory (sorted by name).
pub fn load_voc_dir(dir: &Path) -> Result<Vec<VocAnnotation>> {
    let rd = std::fs::read_dir(dir).map_err(|e| VisionError::io(dir, e))?;
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(VisionError::format(
            dir.display().to_string(),
            "directory",
            "no *.xml annotation files",
        ));
    }
    paths
        .iter()
        .map(|p| Ok(parse_voc_xml(&read_to_string(p)?, p)?))
        .collect()
}

/// One detection for VOC evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct VocDetection {
    /// Image id (annotation stem) it belongs to.
    pub image_id: String,
    /// Class name.
    pub class: String,
    /// Confidence.
    pub score: f64,
    /// `[xmin, ymin, xmax, ymax]`.
    pub bbox: [f64; 4],
}

/// Parses a detection list: a JSON array of `{"image_id": "raccoon-1", "class": "raccoon",
/// "score": 0.9, "bbox": [xmin, ymin, xmax, ymax]}` (`"label"` is accepted for `"class"`; an
/// image may be named by its id or its file name). Every entry is checked against `gt`.
pub fn parse_voc_detections(
    text: &str,
    file: &str,
    gt: &[VocAnnotation],
) -> Result<Vec<VocDetection>> {
    let v = parse(text, file)?;
    let list = v.as_array().ok_or_else(|| {
        VisionError::format(file, "top level", "expected a JSON list of detections")
    })?;
    let mut ids: HashMap<&str, &str> = HashMap::new();
    for a in gt {
        ids.insert(&a.image_id, &a.image_id);
        ids.insert(&a.filename, &a.image_id);
    }
    let classes: std::collections::HashSet<&str> = gt
        .iter()
        .flat_map(|a| a.objects.iter().map(|o| o.class.as_str()))
        .collect();
    let mut out = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let ctx = Ctx {
            file,
            entry: format!("detection {i}"),
        };
        let o = ctx.obj(d)?;
        let img = o
            .get("image_id")
            .and_then(|x| x.as_str())
            .ok_or_else(|| ctx.err("missing string field 'image_id'"))?;
        let image_id = ids
            .get(img)
            .ok_or_else(|| ctx.err(format!("image_id '{img}' has no annotation file")))?
            .to_string();
        let class = o
            .get("class")
            .or_else(|| o.get("label"))
            .and_then(|x| x.as_str())
            .ok_or_else(|| ctx.err("missing string field 'class'"))?;
        if !classes.contains(class) {
            return Err(ctx.err(format!("class '{class}' does not occur in the annotations")));
        }
        let score = ctx.num(d, "score")?;
        let bbox = ctx.four(d, "bbox")?;
        if bbox[2] < bbox[0] || bbox[3] < bbox[1] {
            return Err(ctx.err(format!(
                "bbox {bbox:?} has xmax < xmin or ymax < ymin (VOC boxes are corners)"
            )));
        }
        out.push(VocDetection {
            image_id,
            class: class.to_string(),
            score,
            bbox,
        });
    }
    Ok(out)
}

/// Reads a detection list file (see [`parse_voc_detections`]).
pub fn load_voc_detections(path: &Path, gt: &[VocAnnotation]) -> Result<Vec<VocDetection>> {
    parse_voc_detections(&read_to_string(path)?, &path.display().to_string(), gt)
}

/// Options of [`evaluate_voc`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VocOpts {
    /// A detection matches when IoU `>` this (0.5).
    pub iou_threshold: f64,
    /// 11-point interpolated AP (VOC2007) instead of the all-point area (VOC2010+).
    pub use_07_metric: bool,
    /// Measure widths as `x2 - x1 + 1` (the devkit's integer-pixel convention).
    pub pixel_offset: bool,
}

impl Default for VocOpts {
    fn default() -> Self {
        VocOpts {
            iou_threshold: 0.5,
            use_07_metric: false,
            pixel_offset: true,
        }
    }
}

/// Evaluation of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct VocClassResult {
    /// Class name.
    pub class: String,
    /// Average precision.
    pub ap: f64,
    /// Non-difficult ground-truth objects.
    pub npos: usize,
    /// Detections of this class.
    pub num_detections: usize,
    /// Recall after each detection, by decreasing score.
    pub recall: Vec<f64>,
    /// Precision after each detection, by decreasing score.
    pub precision: Vec<f64>,
}

/// Evaluation of all classes.
#[derive(Debug, Clone, PartialEq)]
pub struct VocEval {
    /// Per class, sorted by name (classes with ground truth only).
    pub classes: Vec<VocClassResult>,
    /// Mean AP over the classes.
    pub map: f64,
}

/// AP from a precision/recall curve: 11-point (max precision at recall >= 0, 0.1, .., 1) or
/// the area under the monotone precision envelope.
pub fn voc_ap(recall: &[f64], precision: &[f64], use_07_metric: bool) -> f64 {
    if use_07_metric {
        let mut ap = 0.0;
        for i in 0..11 {
            let t = i as f64 * 0.1; // np.arange(0, 1.1, 0.1)
            let p = recall
                .iter()
                .zip(precision)
                .filter(|(r, _)| **r >= t)
                .map(|(_, p)| *p)
                .fold(f64::NEG_INFINITY, f64::max);
            ap += if p.is_finite() { p } else { 0.0 } / 11.0;
        }
        return ap;
    }
    let mut mrec = Vec::with_capacity(recall.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (1..mpre.len()).rev() {
        mpre[i - 1] = mpre[i - 1].max(mpre[i]);
    }
    let mut ap = 0.0;
    for i in 0..mrec.len() - 1 {
        if mrec[i + 1] != mrec[i] {
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
        }
    }
    ap
}

fn iou(a: &[f64; 4], b: &[f64; 4], one: f64) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0]) + one).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1]) + one).max(0.0);
    let inter = iw * ih;
    let uni = (a[2] - a[0] + one) * (a[3] - a[1] + one) + (b[2] - b[0] + one) * (b[3] - b[1] + one)
        - inter;
    if uni > 0.0 {
        inter / uni
    } else {
        0.0
    }
}

/// Evaluates detections against VOC annotations, class by class.
pub fn evaluate_voc(gt: &[VocAnnotation], dets: &[VocDetection], opts: VocOpts) -> Result<VocEval> {
    if !(0.0..=1.0).contains(&opts.iou_threshold) {
        return Err(VisionError::invalid(
            "evaluate_voc",
            format!(
                "the IoU threshold must be between 0 and 1, got {}",
                opts.iou_threshold
            ),
        ));
    }
    if let Some(i) = dets.iter().position(|d| !d.score.is_finite()) {
        return Err(VisionError::invalid(
            "evaluate_voc",
            format!("detection {i} has a non-finite score"),
        ));
    }
    let one = if opts.pixel_offset { 1.0 } else { 0.0 };
    let img_index: HashMap<&str, usize> = gt
        .iter()
        .enumerate()
        .map(|(i, a)| (a.image_id.as_str(), i))
        .collect();
    let mut by_class: BTreeMap<&str, ()> = BTreeMap::new();
    for a in gt {
        for o in &a.objects {
            by_class.insert(&o.class, ());
        }
    }
    let mut classes = Vec::new();
    for &cls in by_class.keys() {
        // Per image: this class's boxes, difficult flags, and "already detected" flags.
        let mut objs: Vec<Vec<(&[f64; 4], bool)>> = vec![Vec::new(); gt.len()];
        let mut npos = 0;
        for (i, a) in gt.iter().enumerate() {
            for o in a.objects.iter().filter(|o| o.class == cls) {
                objs[i].push((&o.bbox, o.difficult));
                npos += usize::from(!o.difficult);
            }
        }
        let mut seen: Vec<Vec<bool>> = objs.iter().map(|v| vec![false; v.len()]).collect();
        let mut cd: Vec<&VocDetection> = dets.iter().filter(|d| d.class == cls).collect();
        cd.sort_by(|a, b| b.score.total_cmp(&a.score));
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let (mut recall, mut precision) = (Vec::new(), Vec::new());
        for d in &cd {
            let im = *img_index.get(d.image_id.as_str()).ok_or_else(|| {
                VisionError::invalid(
                    "evaluate_voc",
                    format!("detection names image '{}' without annotation", d.image_id),
                )
            })?;
            let mut best = f64::NEG_INFINITY;
            let mut jmax = 0;
            for (j, (b, _)) in objs[im].iter().enumerate() {
                let v = iou(&d.bbox, b, one);
                if v > best {
                    best = v;
                    jmax = j;
                }
            }
            if best > opts.iou_threshold {
                if !objs[im][jmax].1 {
                    if !seen[im][jmax] {
                        tp += 1.0;
                        seen[im][jmax] = true;
                    } else {
                        fp += 1.0;
                    }
                }
            } else {
                fp += 1.0;
            }
            recall.push(if npos > 0 { tp / npos as f64 } else { f64::NAN });
            precision.push(tp / (tp + fp).max(f64::EPSILON));
        }
        if npos == 0 {
            continue; // only difficult objects: no AP, as rec would divide by zero
        }
        classes.push(VocClassResult {
            class: cls.to_string(),
            ap: voc_ap(&recall, &precision, opts.use_07_metric),
            npos,
            num_detections: cd.len(),
            recall,
            precision,
        });
    }
    let map = if classes.is_empty() {
        0.0
    } else {
        classes.iter().map(|c| c.ap).sum::<f64>() / classes.len() as f64
    };
    Ok(VocEval { classes, map })
}

impl VocEval {
    /// Per-class AP table and the mean, as `ferrovision eval voc` prints it.
    pub fn report(&self, opts: &VocOpts) -> String {
        let metric = if opts.use_07_metric {
            "11-point (VOC2007)"
        } else {
            "all-point (VOC2010+)"
        };
        let mut s = format!("{:<20} {:>6} {:>6} {:>8}\n", "class", "gt", "dets", "AP");
        for c in &self.classes {
            s.push_str(&format!(
                "{:<20} {:>6} {:>6} {:>8.4}\n",
                c.class, c.npos, c.num_detections, c.ap
            ));
        }
        s.push_str(&format!(
            "mAP@{} ({metric}): {:.4}\n",
            opts.iou_threshold, self.map
        ));
        s
    }
}

/// What `ferrovision eval voc` prints: per-class AP and mAP for the VOC annotation directory
/// `gt_dir` (`*.xml`) and the detection list `dt` (JSON, see [`parse_voc_detections`]).
pub fn eval_voc_report(gt_dir: &Path, dt: &Path, opts: VocOpts) -> Result<String> {
    let gt = load_voc_dir(gt_dir)?;
    let d = load_voc_detections(dt, &gt)?;
    Ok(evaluate_voc(&gt, &d, opts)?.report(&opts))
}
