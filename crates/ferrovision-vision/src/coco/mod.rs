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
    evaluate, evaluate_bbox, evaluate_segm, evaluate_with, numpy_pairwise_sum, CocoEval,
    CocoParams, STAT_KEYS,
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
    #[test]
    fn bad_params_are_errors_naming_the_field_not_panics() {
        let gt = r#"{"images":[{"id":1}],"categories":[{"id":3,"name":"a"}],
            "annotations":[{"id":1,"image_id":1,"category_id":3,"bbox":[10,10,50,40],"area":2000}]}"#;
        let g = CocoGroundTruth::parse(gt, "gt.json").unwrap();
        let d = g
            .parse_detections(
                r#"[{"image_id":1,"category_id":3,"bbox":[10,10,50,40],"score":0.9}]"#,
                "dt.json",
            )
            .unwrap();
        // The per-image step itself no longer unwraps an empty max_dets (it panicked).
        let empty = CocoParams {
            max_dets: vec![],
            ..CocoParams::default()
        };
        let gs: Vec<&GtAnnotation> = g.annotations.iter().collect();
        let ds = [(0, &d[0])];
        let err = eval::eval_cell(&gs, &ds, &empty, IouType::Bbox)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("max_dets"), "{err}");

        let def = CocoParams::default;
        let cases: Vec<(CocoParams, &str)> = vec![
            (empty.clone(), "CocoParams.max_dets must be a strictly ascending list of at least 2 counts, got []"),
            (CocoParams { max_dets: vec![100], ..def() }, "CocoParams.max_dets"),
            (CocoParams { max_dets: vec![10, 1, 100], ..def() }, "CocoParams.max_dets"),
            (CocoParams { iou_thrs: vec![], ..def() }, "CocoParams.iou_thrs must be a non-empty, strictly ascending list of values in [0, 1], got []"),
            (CocoParams { iou_thrs: vec![0.75, 0.5], ..def() }, "CocoParams.iou_thrs"),
            (CocoParams { iou_thrs: vec![0.5, 1.5], ..def() }, "CocoParams.iou_thrs"),
            (CocoParams { iou_thrs: vec![f64::NAN], ..def() }, "CocoParams.iou_thrs"),
            (CocoParams { rec_thrs: vec![-0.1, 0.5], ..def() }, "CocoParams.rec_thrs"),
            (CocoParams { area_rngs: vec![(0.0, 1e10)], ..def() }, "CocoParams.area_rngs must be 4 ranges (all, small, medium, large), got 1 ranges"),
            (
                CocoParams { area_rngs: vec![(0.0, 1e10), (0.0, f64::NAN), (1.0, 2.0), (3.0, 4.0)], ..def() },
                "CocoParams.area_rngs[1] must be (lo, hi) with lo <= hi and no NaN, got (0.0, NaN)",
            ),
            (
                CocoParams { area_rngs: vec![(0.0, 1e10), (0.0, 1.0), (5.0, 2.0), (3.0, 4.0)], ..def() },
                "CocoParams.area_rngs[2]",
            ),
        ];
        for (p, want) in cases {
            let err = evaluate_with(&g, &d, IouType::Bbox, p.clone()).err();
            let err = err
                .unwrap_or_else(|| panic!("{p:?} was accepted"))
                .to_string();
            assert!(err.starts_with("evaluate: ") && err.contains(want), "{err}");
        }
        // The default grid through either entry point gives the same result.
        let a = evaluate_with(&g, &d, IouType::Bbox, def()).unwrap();
        assert_eq!(a.stats, evaluate_bbox(&g, &d).unwrap().stats);
        assert!((a.stats[0] - 1.0).abs() < 1e-12, "{:?}", a.stats);
    }
}
