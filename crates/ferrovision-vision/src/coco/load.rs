//! Reading COCO ground truth and detection files (boxes, polygons, RLE) into the evaluation's
//! types, with errors naming the file and entry.

use crate::error::{read_to_string, Result, VisionError};
use crate::json_util::{parse, Ctx};
use crate::rle::Rle;
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

pub(super) fn check_wh(ctx: &Ctx, b: &[f64; 4]) -> Result<()> {
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
pub(super) fn segmentation(
    ctx: &Ctx,
    s: &Value,
    image_id: i64,
    size: Option<(u32, u32)>,
) -> Result<Rle> {
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
