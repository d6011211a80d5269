//! VOC evaluation against the devkit rules (reference/make_coco_fixtures.py), malformed input,
//! and the raccoon data set: AP falls as the boxes of a ground-truth "detector" are jittered more.

mod common;
use common::*;
use ferrovision_vision::voc::{
    evaluate_voc, load_voc_detections, load_voc_dir, parse_voc_detections, parse_voc_xml,
    VocDetection, VocOpts,
};

#[test]
fn voc_ap_matches_devkit_reference() {
    let dir = fixture_dir().join("voc");
    let exp = load("voc/expected.json");
    let gt = load_voc_dir(&dir.join("annotations")).unwrap();
    assert_eq!(gt.len(), 12);
    let dets = load_voc_detections(&dir.join("detections.json"), &gt).unwrap();
    for (use07, key, mkey) in [(true, "ap_07", "map_07"), (false, "ap_all", "map_all")] {
        let opts = VocOpts {
            use_07_metric: use07,
            ..Default::default()
        };
        let ev = evaluate_voc(&gt, &dets, opts).unwrap();
        assert_eq!(ev.classes.len(), 3);
        for c in &ev.classes {
            let want = exp[key][&c.class].as_f64().unwrap();
            assert!(
                (c.ap - want).abs() < 1e-12,
                "{key} {}: {} vs {want}",
                c.class,
                c.ap
            );
        }
        let want = exp[mkey].as_f64().unwrap();
        assert!((ev.map - want).abs() < 1e-12, "{mkey}");
        assert!(ev.report(&opts).contains("mAP@0.5"));
    }
}

#[test]
fn report_prints_per_class_ap_and_map() {
    let dir = fixture_dir().join("voc");
    let exp = load("voc/expected.json");
    let opts = VocOpts {
        use_07_metric: true,
        ..Default::default()
    };
    let text = ferrovision_vision::eval_voc_report(
        &dir.join("annotations"),
        &dir.join("detections.json"),
        opts,
    )
    .unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    for c in ["cat", "dog", "person"] {
        let line = text.lines().find(|l| l.starts_with(c)).unwrap();
        let ap: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(
            (ap - exp["ap_07"][c].as_f64().unwrap()).abs() < 1e-4,
            "{line}"
        );
    }
    assert!(
        text.contains(&format!("{:.4}", exp["map_07"].as_f64().unwrap())),
        "{text}"
    );
    // An IoU threshold outside [0, 1] (or NaN) is an error, not a mAP.
    for iou in [f64::NAN, f64::INFINITY, -1.0, 2.0] {
        let bad = VocOpts {
            iou_threshold: iou,
            ..opts
        };
        let e = ferrovision_vision::eval_voc_report(
            &dir.join("annotations"),
            &dir.join("detections.json"),
            bad,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("between 0 and 1"), "{iou}: {e}");
    }
    let e = ferrovision_vision::eval_voc_report(&dir.join("nope"), &dir.join("x.json"), opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn malformed_voc_input_is_a_clear_error() {
    let e = parse_voc_xml("<annotation><object>", "a.xml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.xml") && e.contains("invalid XML"), "{e}");
    let e = parse_voc_xml(
        "<annotation><object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>z</xmax><ymax>3</ymax></bndbox></object></annotation>",
        "b.xml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("b.xml") && e.contains("<object> 0") && e.contains("<xmax> 'z'"),
        "{e}"
    );
    let e = parse_voc_xml(
        "<annotation><object><name>x</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>",
        "c.xml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("xmax < xmin"), "{e}");
    let e = parse_voc_xml(
        "<annotation><object><bndbox/></object></annotation>",
        "d.xml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing <name>"), "{e}");
    let gt = vec![parse_voc_xml(
        "<annotation><filename>i.jpg</filename><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>",
        "i.xml",
    )
    .unwrap()];
    let err = |t: &str| {
        parse_voc_detections(t, "d.json", &gt)
            .unwrap_err()
            .to_string()
    };
    let e = err(r#"[{"image_id":"j","class":"cat","score":1,"bbox":[1,1,2,2]}]"#);
    assert!(
        e.contains("d.json") && e.contains("detection 0") && e.contains("'j'"),
        "{e}"
    );
    let e = err(r#"[{"image_id":"i.jpg","class":"dog","score":1,"bbox":[1,1,2,2]}]"#);
    assert!(e.contains("class 'dog'"), "{e}");
    let e = err(r#"[{"image_id":"i","class":"cat","score":1,"bbox":[1,1,0,2]}]"#);
    assert!(e.contains("xmax < xmin"), "{e}");
    let e = err(r#"[{"image_id":"i","class":"cat","score":"high","bbox":[1,1,2,2]}]"#);
    assert!(e.contains("'score'"), "{e}");
}

/// A tiny deterministic generator (xorshift) for the jitter.
struct Xs(u64);
impl Xs {
    fn f(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.f().max(1e-12), self.f());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[test]
fn raccoon_ap_falls_as_jitter_grows() {
    let Some(data) = data_dir() else {
        println!("skipped: shared/data not found (set FERROVISION_DATA)");
        return;
    };
    let ann = data.join("raccoon/annotations");
    if !ann.is_dir() {
        println!("skipped: {} not found", ann.display());
        return;
    }
    let gt = load_voc_dir(&ann).unwrap();
    assert_eq!(gt.len(), 200);
    let n_obj: usize = gt.iter().map(|a| a.objects.len()).sum();
    assert_eq!(n_obj, 217);
    let mut aps = Vec::new();
    for &jitter in &[0.0, 0.15, 0.2, 0.25, 0.35] {
        let mut rng = Xs(0x9e3779b97f4a7c15);
        let mut dets = Vec::new();
        for a in &gt {
            for o in &a.objects {
                let [x1, y1, x2, y2] = o.bbox;
                let (w, h) = (x2 - x1, y2 - y1);
                let b = [
                    x1 + jitter * w * rng.normal(),
                    y1 + jitter * h * rng.normal(),
                    x2 + jitter * w * rng.normal(),
                    y2 + jitter * h * rng.normal(),
                ];
                let b = [
                    b[0].min(b[2]),
                    b[1].min(b[3]),
                    b[0].max(b[2]),
                    b[1].max(b[3]),
                ];
                dets.push(VocDetection {
                    image_id: a.image_id.clone(),
                    class: o.class.clone(),
                    score: rng.f(),
                    bbox: b,
                });
            }
        }
        let ev = evaluate_voc(&gt, &dets, VocOpts::default()).unwrap();
        println!("jitter {jitter}: AP {:.4}", ev.map);
        aps.push(ev.map);
    }
    assert!(
        (aps[0] - 1.0).abs() < 1e-12,
        "exact boxes give AP 1: {aps:?}"
    );
    for w in aps.windows(2) {
        assert!(w[1] < w[0], "AP must fall as jitter grows: {aps:?}");
    }
    assert!(aps[4] < 0.5, "{aps:?}");

    // k-means anchors on the raccoon box sizes: more anchors fit the boxes better.
    let wh: Vec<(f32, f32)> = gt
        .iter()
        .flat_map(|a| a.objects.iter())
        .map(|o| {
            (
                (o.bbox[2] - o.bbox[0]) as f32,
                (o.bbox[3] - o.bbox[1]) as f32,
            )
        })
        .collect();
    let mut prev = 0.0;
    for k in [1, 3, 5, 9] {
        let r = ferrovision_vision::anchors::kmeans_anchors(&wh, k, 300, 1).unwrap();
        println!(
            "k-means anchors k={k}: mean best IoU {:.3} {:?}",
            r.mean_best_iou, r.anchors
        );
        assert!(
            r.mean_best_iou > prev,
            "k={k}: {} <= {prev}",
            r.mean_best_iou
        );
        prev = r.mean_best_iou;
    }
    assert!(prev > 0.7, "{prev}");
}
