//! COCO evaluation against pycocotools (reference/make_coco_fixtures.py): all 12 numbers,
//! per-category AP/AR and the whole precision/recall arrays (as sums) to 1e-6, and the printed
//! summary character for character.

mod common;
use common::*;
use ferrovision_vision::coco::{eval_coco_report, evaluate_bbox, CocoGroundTruth};

#[test]
fn coco_eval_equals_pycocotools() {
    let dir = fixture_dir().join("coco");
    let exp = load("coco/expected.json");
    let cases = exp["cases"].as_object().unwrap();
    assert!(cases.len() >= 8);
    for (name, e) in cases {
        let gt = CocoGroundTruth::load(&dir.join(format!("{name}_gt.json"))).unwrap();
        let dt = gt
            .load_detections(&dir.join(format!("{name}_dt.json")))
            .unwrap();
        let ev = evaluate_bbox(&gt, &dt).unwrap();
        let ids: Vec<i64> = ev.categories.iter().map(|c| c.0).collect();
        let want_ids: Vec<i64> = e["category_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(ids, want_ids, "{name}");
        assert_matches_pycocotools(name, &ev, e);
    }
}

#[test]
fn report_text_and_json() {
    let dir = fixture_dir().join("coco");
    let exp = load("coco/expected.json");
    let e = &exp["cases"]["basic"];
    let gt = dir.join("basic_gt.json");
    let dt = dir.join("basic_dt.json");
    let text = eval_coco_report(&gt, &dt, "bbox", false).unwrap();
    assert_eq!(text, e["summary"].as_str().unwrap());
    let js: serde_json::Value =
        serde_json::from_str(&eval_coco_report(&gt, &dt, "bbox", true).unwrap()).unwrap();
    let keys = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];
    for (k, w) in keys.iter().zip(f64s(&e["stats"])) {
        assert!((js[k].as_f64().unwrap() - w).abs() <= 1e-12, "{k}");
    }
    let g = CocoGroundTruth::load(&gt).unwrap();
    let ev = evaluate_bbox(&g, &g.load_detections(&dt).unwrap()).unwrap();
    let table = ev.per_category_table();
    assert_eq!(table.lines().count(), 1 + ev.categories.len());
    let png = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/vision-test-output/coco_basic_pr.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    ev.save_pr_curves(&png, 0.5, 10).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let err = eval_coco_report(&gt, &dt, "keypoints", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("keypoints"), "{err}");
    // Box-only ground truth cannot be evaluated as masks: the error names the annotation.
    let err = eval_coco_report(&gt, &dt, "segm", false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("basic_gt.json")
            && err.contains("annotations[0]")
            && err.contains("segmentation"),
        "{err}"
    );
    let err = eval_coco_report(&dir.join("missing_gt.json"), &dt, "bbox", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing_gt.json"), "{err}");
}

fn gt_err(text: &str) -> String {
    CocoGroundTruth::parse(text, "gt.json")
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_ground_truth_is_a_clear_error() {
    let e = gt_err("{\"images\": [");
    assert!(e.contains("gt.json") && e.contains("invalid JSON"), "{e}");
    let e = gt_err(r#"{"images": [], "categories": []}"#);
    assert!(e.contains("missing field 'annotations'"), "{e}");
    let e = gt_err(
        r#"{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":7,"image_id":2,"category_id":1,"bbox":[0,0,1,1]}]}"#,
    );
    assert!(
        e.contains("annotations[0] (id 7)") && e.contains("image_id 2"),
        "{e}"
    );
    let e = gt_err(
        r#"{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":7,"image_id":1,"category_id":1,"bbox":[0,0,-1,1]}]}"#,
    );
    assert!(e.contains("negative width"), "{e}");
    let e = gt_err(
        r#"{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":7,"image_id":1,"category_id":1,"bbox":[0,0,1]}]}"#,
    );
    assert!(e.contains("4 numbers"), "{e}");
    let e = gt_err(r#"{"images":[{"id":1},{"id":1}],"categories":[],"annotations":[]}"#);
    assert!(
        e.contains("images[1]") && e.contains("duplicate image id 1"),
        "{e}"
    );
    let e = gt_err(r#"{"images":[{"id":"a"}],"categories":[],"annotations":[]}"#);
    assert!(e.contains("images[0]") && e.contains("integer"), "{e}");
    let e = gt_err(
        r#"{"images":[{"id":1}],"categories":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]},{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]}"#,
    );
    assert!(e.contains("duplicate annotation id 1"), "{e}");
}

#[test]
fn malformed_detections_are_clear_errors() {
    let gt = CocoGroundTruth::parse(
        r#"{"images":[{"id":1}],"categories":[{"id":3}],"annotations":[]}"#,
        "gt.json",
    )
    .unwrap();
    let err = |t: &str| gt.parse_detections(t, "dt.json").unwrap_err().to_string();
    let e = err(r#"[{"image_id":9,"category_id":3,"bbox":[0,0,1,1],"score":1}]"#);
    assert!(
        e.contains("dt.json") && e.contains("detection 0") && e.contains("image_id 9"),
        "{e}"
    );
    let e = err(
        r#"[{"image_id":1,"category_id":3,"bbox":[0,0,1,1],"score":1},{"image_id":1,"category_id":4,"bbox":[0,0,1,1],"score":1}]"#,
    );
    assert!(
        e.contains("detection 1") && e.contains("category_id 4"),
        "{e}"
    );
    let e = err(r#"[{"image_id":1,"category_id":3,"bbox":[0,0,1,1]}]"#);
    assert!(e.contains("missing field 'score'"), "{e}");
    let e = err(r#"[{"image_id":1,"category_id":3,"bbox":[0,0,-2,1],"score":0.5}]"#);
    assert!(e.contains("negative width"), "{e}");
    let e = err(r#"{"image_id":1}"#);
    assert!(e.contains("expected a JSON list"), "{e}");
    let e = err(r#"[{"image_id":1,"category_id":3,"bbox":[0,0,1,null],"score":0.5}]"#);
    assert!(e.contains("finite numbers"), "{e}");
    // An empty list is valid: everything is missed.
    let ev = evaluate_bbox(&gt, &gt.parse_detections("[]", "dt.json").unwrap()).unwrap();
    assert_eq!(ev.stats[0], -1.0); // no ground truth either
}
