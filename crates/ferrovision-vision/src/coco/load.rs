//! Reading COCO ground truth and detection files (boxes, polygons, RLE) into the evaluation's
//! types, with errors naming the file and entry. The JSON structure is parsed once, by
//! `ferrovision_data::annotations::coco` (shared with the COCO dataset source); this module adds
//! what evaluation needs: annotation ids, segmentations turned into [`Rle`]s, detections
//! checked against the ground truth, and pycocotools' area rules.

use crate::error::{read_to_string, Result, VisionError};
use crate::json_util::Ctx;
use crate::rle::Rle;
use ferrovision_data::annotations::coco::{parse_coco_detections, parse_coco_instances};
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

    /// Parses COCO ground-truth JSON text for `iou_type`; `file` names it in errors. The
    /// structure is read by `ferrovision_data::annotations::coco`; the evaluation adds that
    /// every annotation needs an `id` and, for masks, a `segmentation`.
    pub fn parse_for(text: &str, file: &str, iou_type: IouType) -> Result<Self> {
        let segm = iou_type == IouType::Segm;
        let raw = parse_coco_instances(text, file)?;
        let mut image_ids = Vec::with_capacity(raw.images.len());
        let mut image_sizes = HashMap::new();
        for im in &raw.images {
            image_ids.push(im.id);
            if let (true, Some(h), Some(w)) = (segm, im.height, im.width) {
                image_sizes.insert(im.id, (h, w));
            }
        }
        image_ids.sort_unstable();
        let mut categories: Vec<(i64, String)> = raw
            .categories
            .into_iter()
            .map(|c| (c.id, c.name.unwrap_or_else(|| c.id.to_string())))
            .collect();
        categories.sort_by_key(|c| c.0);
        let mut annotations = Vec::with_capacity(raw.annotations.len());
        for (i, a) in raw.annotations.into_iter().enumerate() {
            let Some(id) = a.id else {
                return Err(VisionError::format(
                    file,
                    format!("annotations[{i}]"),
                    "missing field 'id'",
                ));
            };
            let segmentation = if segm {
                let ctx = Ctx {
                    file,
                    entry: format!("annotations[{i}] (id {id})"),
                };
                let s = a.segmentation.as_ref().ok_or_else(|| {
                    ctx.err("missing field 'segmentation' (needed for segm evaluation)")
                })?;
                Some(segmentation(
                    &ctx,
                    s,
                    a.image_id,
                    image_sizes.get(&a.image_id).copied(),
                )?)
            } else {
                None
            };
            let area = match (a.area, &segmentation) {
                (Some(area), _) => area,
                (None, Some(r)) => r.area() as f64,
                (None, None) => a.bbox[2] * a.bbox[3],
            };
            annotations.push(GtAnnotation {
                id,
                image_id: a.image_id,
                category_id: a.category_id,
                bbox: a.bbox,
                area,
                iscrowd: a.iscrowd,
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

    /// Parses COCO results JSON text for `iou_type`; `file` names it in errors. The structure
    /// is read by `ferrovision_data::annotations::coco`; here every entry is checked against
    /// this ground truth.
    pub fn parse_detections_for(
        &self,
        text: &str,
        file: &str,
        iou_type: IouType,
    ) -> Result<Vec<CocoDetection>> {
        let list = parse_coco_detections(text, file)?;
        let images: std::collections::HashSet<i64> = self.image_ids.iter().copied().collect();
        let cats: std::collections::HashSet<i64> = self.categories.iter().map(|c| c.0).collect();
        // pycocotools' loadRes picks its branch from the first entry: with a non-empty `bbox`
        // every area is the box area (and a box is required), otherwise the mask area.
        let box_area = iou_type == IouType::Bbox || list.first().is_some_and(|d| d.bbox.is_some());
        let mut out = Vec::with_capacity(list.len());
        for (i, d) in list.into_iter().enumerate() {
            // Built only when needed (errors, masks): 100 000 detections are common.
            let ctx = || Ctx {
                file,
                entry: format!("detection {i}"),
            };
            let image_id = d.image_id;
            if !images.contains(&image_id) {
                return Err(ctx().err(format!(
                    "image_id {image_id} is not an image of the ground truth {}",
                    self.file
                )));
            }
            let category_id = d.category_id;
            if !cats.contains(&category_id) {
                return Err(ctx().err(format!(
                    "category_id {category_id} is not a category of the ground truth {}",
                    self.file
                )));
            }
            let segmentation = if iou_type == IouType::Segm {
                let ctx = ctx();
                let s = d.segmentation.as_ref().ok_or_else(|| {
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
            let bbox = match d.bbox {
                Some(b) => b,
                None if box_area => {
                    let why = if iou_type == IouType::Segm {
                        " (the first detection has a bbox, so every detection's area is its box area, as in pycocotools)"
                    } else {
                        ""
                    };
                    return Err(ctx().err(format!("missing field 'bbox'{why}")));
                }
                None => segmentation.as_ref().map_or([0.0; 4], Rle::to_bbox),
            };
            let area = match &segmentation {
                Some(r) if !box_area => r.area() as f64,
                _ => bbox[2] * bbox[3],
            };
            out.push(CocoDetection {
                image_id,
                category_id,
                bbox,
                score: d.score,
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
