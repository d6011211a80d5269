//! COCO mask evaluation and RLE against pycocotools (reference/make_coco_segm_fixtures.py):
//! the 12 stats, per-category AP and the precision/recall arrays (as sums) to 1e-6, the printed
//! summary character for character, and polygon rasterization / RLE strings / areas / boxes /
//! merges exactly.

mod common;
use common::*;
use ferrovision_vision::coco::{eval_coco_report, evaluate_segm, CocoGroundTruth, IouType};
use ferrovision_vision::rle::{iou, Rle};
use serde_json::Value;

fn seg_dir() -> std::path::PathBuf {
    fixture_dir().join("coco_segm")
}

fn u32_of(v: &Value) -> u32 {
    v.as_u64().unwrap() as u32
}

#[test]
fn segm_eval_equals_pycocotools() {
    let dir = seg_dir();
    let exp = load("coco_segm/expected.json");
    let cases = exp["cases"].as_object().unwrap();
    assert!(cases.len() >= 4);
    for (name, e) in cases {
        let gt =
            CocoGroundTruth::load_for(&dir.join(format!("{name}_gt.json")), IouType::Segm).unwrap();
        let dt = gt
            .load_detections_for(&dir.join(format!("{name}_dt.json")), IouType::Segm)
            .unwrap();
        let ev = evaluate_segm(&gt, &dt).unwrap();
        assert_matches_pycocotools(name, &ev, e);
    }
}

#[test]
fn segm_report_text_and_json() {
    let dir = seg_dir();
    let exp = load("coco_segm/expected.json");
    let e = &exp["cases"]["segm_with_boxes"];
    let gt = dir.join("segm_with_boxes_gt.json");
    let dt = dir.join("segm_with_boxes_dt.json");
    let text = eval_coco_report(&gt, &dt, "segm", false).unwrap();
    assert_eq!(text, e["summary"].as_str().unwrap());
    let js: Value =
        serde_json::from_str(&eval_coco_report(&gt, &dt, "segm", true).unwrap()).unwrap();
    for (k, w) in ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        .iter()
        .zip(f64s(&e["stats"]))
    {
        assert!((js[k].as_f64().unwrap() - w).abs() <= 1e-12, "{k}");
    }
    // The same mask files evaluate as boxes too (bbox of the ground truth, bbox of detections).
    assert!(eval_coco_report(&gt, &dt, "bbox", false).is_ok());
}

#[test]
fn detection_area_follows_load_res() {
    // With boxes in the file, the area is the box's; without, the mask's (pycocotools loadRes).
    let dir = seg_dir();
    let gt =
        CocoGroundTruth::load_for(&dir.join("segm_with_boxes_gt.json"), IouType::Segm).unwrap();
    let dt = gt
        .load_detections_for(&dir.join("segm_with_boxes_dt.json"), IouType::Segm)
        .unwrap();
    assert!(dt.iter().all(|d| d.area == d.bbox[2] * d.bbox[3]));
    assert!(dt
        .iter()
        .any(|d| d.area != d.segmentation.as_ref().unwrap().area() as f64));
    let gt = CocoGroundTruth::load_for(&dir.join("segm_basic_gt.json"), IouType::Segm).unwrap();
    let dt = gt
        .load_detections_for(&dir.join("segm_basic_dt.json"), IouType::Segm)
        .unwrap();
    for d in &dt {
        let r = d.segmentation.as_ref().unwrap();
        assert_eq!(d.area, r.area() as f64);
        assert_eq!(d.bbox, r.to_bbox());
    }
}

#[test]
fn polygon_rasterization_equals_pycocotools() {
    let u = load("coco_segm/rle.json");
    let cases = u["polygons"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (i, c) in cases.iter().enumerate() {
        let (h, w) = (u32_of(&c["h"]), u32_of(&c["w"]));
        let polys: Vec<Vec<f64>> = c["polygons"].as_array().unwrap().iter().map(f64s).collect();
        for (p, want) in polys.iter().zip(c["part_counts"].as_array().unwrap()) {
            let r = Rle::from_polygon(p, h, w).unwrap();
            assert_eq!(r.to_coco_string(), want.as_str().unwrap(), "case {i} part");
        }
        let r = Rle::from_polygons(&polys, h, w).unwrap();
        assert_eq!(
            r.to_coco_string(),
            c["counts"].as_str().unwrap(),
            "case {i}"
        );
        assert_eq!(r.area(), c["area"].as_u64().unwrap(), "case {i} area");
        assert_eq!(r.to_bbox().to_vec(), f64s(&c["bbox"]), "case {i} bbox");
        // The string decodes back to the same runs; decode/encode round-trips.
        let back = Rle::from_string(c["counts"].as_str().unwrap(), h, w).unwrap();
        assert_eq!(back, r, "case {i}");
        assert_eq!(Rle::encode(&r.decode(), h, w).unwrap(), r, "case {i}");
    }
}

#[test]
fn rle_strings_areas_boxes_equal_pycocotools() {
    let u = load("coco_segm/rle.json");
    for c in u["uncompressed"].as_array().unwrap() {
        let (h, w) = (u32_of(&c["h"]), u32_of(&c["w"]));
        let counts: Vec<u32> = usizes(&c["counts"]).iter().map(|&x| x as u32).collect();
        let r = Rle::new(h, w, counts).unwrap();
        assert_eq!(r.to_coco_string(), c["string"].as_str().unwrap(), "{c}");
        assert_eq!(
            Rle::from_string(c["string"].as_str().unwrap(), h, w).unwrap(),
            r
        );
        assert_eq!(r.area(), c["area"].as_u64().unwrap());
        assert_eq!(r.to_bbox().to_vec(), f64s(&c["bbox"]), "{c}");
    }
    for c in u["encode"].as_array().unwrap() {
        let (h, w) = (u32_of(&c["h"]), u32_of(&c["w"]));
        let rows: Vec<&[u8]> = c["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().as_bytes())
            .collect();
        // Column-major, as COCO.
        let mut mask = Vec::new();
        for x in 0..w as usize {
            for row in &rows {
                mask.push(u8::from(row[x] == b'1'));
            }
        }
        let r = Rle::encode(&mask, h, w).unwrap();
        assert_eq!(r.to_coco_string(), c["string"].as_str().unwrap());
        let want: Vec<u32> = usizes(&c["uncompressed"])
            .iter()
            .map(|&x| x as u32)
            .collect();
        assert_eq!(r.counts(), &want[..]);
        assert_eq!(r.decode(), mask);
        assert_eq!(r.area(), c["area"].as_u64().unwrap());
        assert_eq!(r.to_bbox().to_vec(), f64s(&c["bbox"]));
    }
    for c in u["merge"].as_array().unwrap() {
        let (h, w) = (u32_of(&c["h"]), u32_of(&c["w"]));
        let rles: Vec<Rle> = c["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Rle::from_string(s.as_str().unwrap(), h, w).unwrap())
            .collect();
        let un = Rle::merge(&rles, false).unwrap();
        assert_eq!(un.to_coco_string(), c["union"].as_str().unwrap());
        let int = Rle::merge(&rles, true).unwrap();
        assert_eq!(int.to_coco_string(), c["intersection"].as_str().unwrap());
    }
    for c in u["iou"].as_array().unwrap() {
        let (h, w) = (u32_of(&c["h"]), u32_of(&c["w"]));
        let read = |k: &str| -> Vec<Rle> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|s| Rle::from_string(s.as_str().unwrap(), h, w).unwrap())
                .collect()
        };
        let (dt, gt) = (read("dt"), read("gt"));
        let crowd: Vec<bool> = usizes(&c["iscrowd"]).iter().map(|&x| x == 1).collect();
        let got = iou(
            &dt.iter().collect::<Vec<_>>(),
            &gt.iter().collect::<Vec<_>>(),
            &crowd,
        )
        .unwrap();
        let want: Vec<f64> = c["iou"].as_array().unwrap().iter().flat_map(f64s).collect();
        assert_eq!(got, want, "{c}");
        assert!(want.iter().any(|&v| v > 0.0));
    }
}

const GT_HEAD: &str =
    r#"{"images":[{"id":1,"height":4,"width":5},{"id":2}],"categories":[{"id":1}],"annotations":["#;

fn gt_err(ann: &str) -> String {
    let text = format!("{GT_HEAD}{ann}]}}");
    CocoGroundTruth::parse_for(&text, "gt.json", IouType::Segm)
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_masks_are_clear_errors() {
    let a = |seg: &str| {
        format!(r#"{{"id":7,"image_id":1,"category_id":1,"bbox":[0,0,1,1],"segmentation":{seg}}}"#)
    };
    // A compressed string with a character outside COCO's alphabet.
    let e = gt_err(&a(r#"{"size":[4,5],"counts":"3~1"}"#));
    assert!(
        e.contains("gt.json") && e.contains("annotations[0] (id 7)") && e.contains("character 1"),
        "{e}"
    );
    // Counts that do not cover the image.
    let e = gt_err(&a(r#"{"size":[4,5],"counts":"34"}"#));
    assert!(
        e.contains("(id 7)") && e.contains("sum to 7") && e.contains("20"),
        "{e}"
    );
    let e = gt_err(&a(r#"{"size":[4,5],"counts":[3,4]}"#));
    assert!(e.contains("(id 7)") && e.contains("sum to 7"), "{e}");
    let e = gt_err(&a(r#"{"size":[4,5],"counts":[3,-4]}"#));
    assert!(e.contains("non-negative"), "{e}");
    // An RLE whose size is not the image's.
    let e = gt_err(&a(r#"{"size":[5,4],"counts":[20]}"#));
    assert!(
        e.contains("(id 7)") && e.contains("differs from image 1"),
        "{e}"
    );
    let e = gt_err(&a(r#"{"size":[4],"counts":[20]}"#));
    assert!(e.contains("'size'"), "{e}");
    // Polygons: an odd number of coordinates, no polygons, no image size.
    let e = gt_err(&a("[[0,0,3,0,3,3,1]]"));
    assert!(
        e.contains("(id 7)") && e.contains("polygon 0") && e.contains("7 coordinates"),
        "{e}"
    );
    let e = gt_err(&a("[]"));
    assert!(e.contains("no polygons"), "{e}");
    let e = gt_err(&a(r#"[[0,0,3,0,"x",3]]"#));
    assert!(e.contains("not a number"), "{e}");
    let e = gt_err(
        r#"{"id":8,"image_id":2,"category_id":1,"bbox":[0,0,1,1],"segmentation":[[0,0,3,0,3,3]]}"#,
    );
    assert!(
        e.contains("(id 8)") && e.contains("image 2 has no 'height'"),
        "{e}"
    );
    let e = gt_err(r#"{"id":9,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}"#);
    assert!(
        e.contains("(id 9)") && e.contains("missing field 'segmentation'"),
        "{e}"
    );
    let e = gt_err(&a("5"));
    assert!(e.contains("polygons") && e.contains("a number"), "{e}");
    // Without height/width an RLE is fine (its size is its own).
    let ok = format!(
        r#"{GT_HEAD}{{"id":1,"image_id":2,"category_id":1,"bbox":[0,0,1,1],"segmentation":{{"size":[2,2],"counts":[1,3]}}}}]}}"#
    );
    let g = CocoGroundTruth::parse_for(&ok, "gt.json", IouType::Segm).unwrap();
    assert_eq!(g.annotations[0].area, 3.0); // no 'area': the mask area
}

#[test]
fn malformed_detections_are_clear_errors() {
    let gt = CocoGroundTruth::parse_for(
        &format!(
            r#"{GT_HEAD}{{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,2,2],"area":4,"segmentation":[[0,0,2,0,2,2,0,2]]}}]}}"#
        ),
        "gt.json",
        IouType::Segm,
    )
    .unwrap();
    let err = |t: &str| {
        gt.parse_detections_for(t, "dt.json", IouType::Segm)
            .unwrap_err()
            .to_string()
    };
    let good = r#"{"image_id":1,"category_id":1,"segmentation":{"size":[4,5],"counts":"0220<"},"score":0.5}"#;
    let e = err(&format!(
        r#"[{good},{{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":0.5}}]"#
    ));
    assert!(
        e.contains("dt.json") && e.contains("detection 1") && e.contains("segmentation"),
        "{e}"
    );
    let e = err(
        r#"[{"image_id":1,"category_id":1,"segmentation":{"size":[4,5],"counts":"0P"},"score":0.5}]"#,
    );
    assert!(
        e.contains("detection 0") && e.contains("ends inside"),
        "{e}"
    );
    let e = err(
        r#"[{"image_id":1,"category_id":1,"segmentation":{"size":[3,5],"counts":"?"},"score":0.5}]"#,
    );
    assert!(
        e.contains("detection 0") && e.contains("differs from image 1"),
        "{e}"
    );
    // The first detection has a box: pycocotools then needs a box in every detection.
    let e = err(&format!(
        r#"[{{"image_id":1,"category_id":1,"bbox":[0,0,2,2],"segmentation":{{"size":[4,5],"counts":"0220<"}},"score":0.5}},{good}]"#
    ));
    assert!(
        e.contains("detection 1") && e.contains("'bbox'") && e.contains("box area"),
        "{e}"
    );
    // A valid file evaluates; the detection is the ground-truth square exactly.
    let d = gt
        .parse_detections_for(&format!("[{good}]"), "dt.json", IouType::Segm)
        .unwrap();
    let r = d[0].segmentation.as_ref().unwrap();
    assert_eq!(r, gt.annotations[0].segmentation.as_ref().unwrap());
    // pycocotools' precision tp / (tp + fp + eps) is just below 1.
    assert!((evaluate_segm(&gt, &d).unwrap().stats[1] - 1.0).abs() < 1e-12);
    // Box-only detections cannot be evaluated as masks.
    let boxes = gt
        .parse_detections(
            r#"[{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"score":0.5}]"#,
            "dt.json",
        )
        .unwrap();
    let e = evaluate_segm(&gt, &boxes).unwrap_err().to_string();
    assert!(
        e.contains("detection 0") && e.contains("no segmentation"),
        "{e}"
    );
}

#[test]
fn masks_of_different_sizes_in_one_image_are_an_error() {
    // Image 2 has no height/width, so only the comparison can catch the mismatch.
    let gt = CocoGroundTruth::parse_for(
        &format!(
            r#"{GT_HEAD}{{"id":3,"image_id":2,"category_id":1,"bbox":[0,0,1,1],"segmentation":{{"size":[2,2],"counts":[1,3]}}}}]}}"#
        ),
        "gt.json",
        IouType::Segm,
    )
    .unwrap();
    let d = gt
        .parse_detections_for(
            r#"[{"image_id":2,"category_id":1,"segmentation":{"size":[3,3],"counts":[0,9]},"score":0.5}]"#,
            "dt.json",
            IouType::Segm,
        )
        .unwrap();
    let e = evaluate_segm(&gt, &d).unwrap_err().to_string();
    assert!(
        e.contains("detection 0") && e.contains("annotation id 3") && e.contains("[3, 3]"),
        "{e}"
    );
}
