//! Drawing: annotated PNGs of the raccoon images (boxes where the raccoons are), PR curves,
//! label maps, and errors for bad box files.

mod common;
use common::*;
use ferrovision_vision::draw::{
    box_color, colorize_labels, draw_boxes_file, load_image, parse_draw_boxes, pr_curve_png,
};
use ferrovision_vision::voc::parse_voc_xml;
use std::path::PathBuf;

fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/vision-test-output")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn raccoon_boxes_are_drawn_on_the_raccoons() {
    let Some(data) = data_dir() else {
        println!("skipped: shared/data not found (set FERROVISION_DATA)");
        return;
    };
    let root = data.join("raccoon");
    if !root.is_dir() {
        println!("skipped: {} not found", root.display());
        return;
    }
    let out = out_dir("raccoon");
    for n in [1, 10, 42] {
        let xml = root.join(format!("annotations/raccoon-{n}.xml"));
        let ann = parse_voc_xml(
            &std::fs::read_to_string(&xml).unwrap(),
            xml.to_str().unwrap(),
        )
        .unwrap();
        let boxes: Vec<serde_json::Value> = ann
            .objects
            .iter()
            .map(|o| serde_json::json!({"bbox": o.bbox, "label": o.class, "score": 1.0}))
            .collect();
        let bj = out.join(format!("raccoon-{n}.json"));
        std::fs::write(&bj, serde_json::Value::Array(boxes).to_string()).unwrap();
        let img_path = root.join("images").join(&ann.filename);
        let png = out.join(format!("raccoon-{n}.png"));
        assert_eq!(
            draw_boxes_file(&img_path, &bj, &png).unwrap(),
            ann.objects.len()
        );
        let orig = load_image(&img_path).unwrap();
        let drawn = load_image(&png).unwrap();
        assert_eq!(drawn.dimensions(), orig.dimensions());
        assert_eq!((ann.width, ann.height), orig.dimensions());
        // The box outline has the box colour at its corners and edges; the centre of the box
        // (the raccoon) is untouched.
        let c = box_color(0);
        for o in &ann.objects {
            let [x1, y1, x2, y2] = o.bbox.map(|v| v as u32);
            assert_eq!(
                drawn.get_pixel(x2, y2).0,
                c,
                "raccoon-{n} bottom-right corner"
            );
            assert_eq!(
                drawn.get_pixel((x1 + x2) / 2, y2).0,
                c,
                "raccoon-{n} bottom edge"
            );
            assert_eq!(
                drawn.get_pixel(x1, (y1 + y2) / 2).0,
                c,
                "raccoon-{n} left edge"
            );
            let (cx, cy) = ((x1 + x2) / 2, (y1 + y2) / 2);
            assert_eq!(
                drawn.get_pixel(cx, cy),
                orig.get_pixel(cx, cy),
                "raccoon-{n} centre"
            );
        }
        println!("wrote {}", png.display());
    }
}

#[test]
fn pr_curve_and_label_map_pngs() {
    let out = out_dir("plots");
    let curve: Vec<(f64, f64)> = (0..=100)
        .map(|i| (i as f64 / 100.0, 1.0 - (i as f64 / 100.0).powi(3)))
        .collect();
    let p = out.join("pr.png");
    pr_curve_png(&[("class a".into(), curve)], &p, 400).unwrap();
    let img = load_image(&p).unwrap();
    assert_eq!(img.dimensions(), (400, 400));
    let labels: Vec<u32> = (0..64).map(|i| i % 4).collect();
    let lm = colorize_labels(&labels, 8, 8, Some(3)).unwrap();
    assert_eq!(lm.get_pixel(1, 0).0, [128, 0, 0]);
    assert_eq!(lm.get_pixel(3, 0).0, [255, 255, 255]);
    assert!(colorize_labels(&labels, 8, 7, None).is_err());
}

#[test]
fn bad_box_files_and_images_are_clear_errors() {
    let e = parse_draw_boxes(r#"[{"bbox":[10,10,5,20]}]"#, "b.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.json") && e.contains("box 0") && e.contains("x2 < x1"),
        "{e}"
    );
    let e = parse_draw_boxes(r#"[{"bbox":[0,0,1,1]},{"box":[0,0,1,1]}]"#, "b.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("box 1") && e.contains("missing field 'bbox'"),
        "{e}"
    );
    let out = out_dir("errors");
    let bj = out.join("ok.json");
    std::fs::write(&bj, r#"[{"bbox":[0,0,1,1]}]"#).unwrap();
    let e = draw_boxes_file(&out.join("missing.png"), &bj, &out.join("x.png"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.png"), "{e}");
    let not_img = out.join("not_an_image.png");
    std::fs::write(&not_img, b"hello").unwrap();
    let e = draw_boxes_file(&not_img, &bj, &out.join("x.png"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not_an_image.png"), "{e}");
}
