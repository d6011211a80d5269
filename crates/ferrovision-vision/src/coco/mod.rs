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

mod eval;
mod load;
mod summary;

pub use eval::{
    evaluate, evaluate_bbox, evaluate_segm, numpy_pairwise_sum, CocoEval, CocoParams, STAT_KEYS,
};
/// Python's `'{:.Nf}'.format(v)` (the summary lines), from `ferrovision_io::pyfmt`.
pub use ferrovision_io::pyfmt::py_fixed;
pub use load::{CocoDetection, CocoGroundTruth, GtAnnotation, IouType};

use crate::error::Result;
use std::path::Path;

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
