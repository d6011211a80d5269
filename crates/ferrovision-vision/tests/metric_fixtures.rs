//! Segmentation metrics vs scikit-learn / TensorFlow MeanIoU, PSNR / SSIM vs scikit-image,
//! morphology / labelling / distance transform / watershed vs scikit-image and SciPy
//! (reference/make_metric_fixtures.py).

mod common;
use common::*;
use ferrovision_vision::metrics::{psnr, ssim, ConfusionMatrix, SsimOpts};
use ferrovision_vision::morph::{
    close, connected_components, dilate, distance_transform, erode, instances_from_class_map, open,
    watershed, StructuringElement,
};

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn bools(v: &serde_json::Value) -> Vec<bool> {
    u32s(v).into_iter().map(|x| x != 0).collect()
}

#[test]
fn segmentation_metrics_match_sklearn_and_tf() {
    let f = load("segmentation.json");
    for c in f["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let n = c["num_classes"].as_u64().unwrap() as usize;
        let ignore = c["ignore"].as_u64().map(|v| v as u32);
        let mut cm = ConfusionMatrix::new(n);
        cm.update(&u32s(&c["target"]), &u32s(&c["pred"]), ignore)
            .unwrap();
        let want: Vec<u64> = u32s(&c["confusion"]).into_iter().map(u64::from).collect();
        assert_eq!(cm.counts(), want.as_slice(), "{name} confusion");
        let close = |a: f64, b: f64, what: &str| {
            assert!((a - b).abs() < 1e-6, "{name} {what}: {a} vs {b}");
        };
        close(
            cm.pixel_accuracy(),
            c["pixel_accuracy"].as_f64().unwrap(),
            "pixel acc",
        );
        for (k, (got, want)) in cm
            .per_class_iou()
            .iter()
            .zip(c["iou"].as_array().unwrap())
            .enumerate()
        {
            match (got, want.as_f64()) {
                (Some(g), Some(w)) => close(*g, w, &format!("iou[{k}]")),
                (None, None) => {}
                _ => panic!("{name} iou[{k}]: {got:?} vs {want}"),
            }
        }
        for (k, (got, want)) in cm
            .per_class_dice()
            .iter()
            .zip(c["dice"].as_array().unwrap())
            .enumerate()
        {
            match (got, want.as_f64()) {
                (Some(g), Some(w)) => close(*g, w, &format!("dice[{k}]")),
                (None, None) => {}
                _ => panic!("{name} dice[{k}]: {got:?} vs {want}"),
            }
        }
        close(
            cm.mean_iou(),
            c["mean_iou_sklearn"].as_f64().unwrap(),
            "mIoU sklearn",
        );
        close(cm.mean_iou(), c["mean_iou_tf"].as_f64().unwrap(), "mIoU TF");
    }
}

#[test]
fn psnr_and_ssim_match_skimage() {
    let f = load("quality.json");
    for c in f["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (a, b) = (f32s(&c["a"]), f32s(&c["b"]));
        let h = c["height"].as_u64().unwrap() as usize;
        let w = c["width"].as_u64().unwrap() as usize;
        let ch = c["channels"].as_u64().unwrap() as usize;
        let p = psnr(&a, &b, 255.0).unwrap();
        let wp = c["psnr"].as_f64().unwrap();
        assert!((p - wp).abs() < 1e-9 * wp.abs(), "{name} psnr {p} vs {wp}");
        let opts = if c["gaussian"].as_bool().unwrap() {
            SsimOpts::wang(255.0)
        } else {
            SsimOpts {
                data_range: 255.0,
                ..Default::default()
            }
        };
        let s = ssim(&a, &b, h, w, ch, opts).unwrap();
        let ws = c["ssim"].as_f64().unwrap();
        assert!((s - ws).abs() < 1e-9, "{name} ssim {s} vs {ws}");
    }
    assert!(ssim(&[0.0; 16], &[0.0; 16], 4, 4, 1, SsimOpts::default()).is_err()); // window > image
    assert!(psnr(&[0.0, f32::NAN], &[0.0, 0.0], 1.0).is_err());
}

#[test]
fn morphology_matches_skimage() {
    let f = load("morphology.json");
    let (h, w) = (
        f["height"].as_u64().unwrap() as usize,
        f["width"].as_u64().unwrap() as usize,
    );
    let m = bools(&f["mask"]);
    for (key, se) in [
        ("square1", StructuringElement::Square(1)),
        ("square2", StructuringElement::Square(2)),
        ("cross1", StructuringElement::Cross(1)),
        ("cross2", StructuringElement::Cross(2)),
        ("disk2", StructuringElement::Disk(2)),
        ("disk3", StructuringElement::Disk(3)),
    ] {
        let o = &f["ops"][key];
        assert_eq!(
            erode(&m, w, h, se).unwrap(),
            bools(&o["erode"]),
            "{key} erode"
        );
        assert_eq!(
            dilate(&m, w, h, se).unwrap(),
            bools(&o["dilate"]),
            "{key} dilate"
        );
        assert_eq!(open(&m, w, h, se).unwrap(), bools(&o["open"]), "{key} open");
        assert_eq!(
            close(&m, w, h, se).unwrap(),
            bools(&o["close"]),
            "{key} close"
        );
    }
}

#[test]
fn labelling_and_distance_transform_match_scipy() {
    let f = load("morphology.json");
    let (h, w) = (
        f["height"].as_u64().unwrap() as usize,
        f["width"].as_u64().unwrap() as usize,
    );
    let m = bools(&f["mask"]);
    let (l4, c4) = connected_components(&m, w, h, 4).unwrap();
    assert_eq!(l4, u32s(&f["label4"]));
    assert_eq!(c4.len() as u64, f["n4"].as_u64().unwrap());
    let (l8, c8) = connected_components(&m, w, h, 8).unwrap();
    assert_eq!(l8, u32s(&f["label8"]));
    let areas: Vec<usize> = c8.iter().map(|c| c.area).collect();
    let want: Vec<usize> = u32s(&f["areas8"]).into_iter().map(|a| a as usize).collect();
    assert_eq!(areas, want);
    for (c, yx) in c8.iter().zip(f["centroids8_yx"].as_array().unwrap()) {
        let yx = f64s(yx);
        assert!((c.centroid.0 - yx[1]).abs() < 1e-9 && (c.centroid.1 - yx[0]).abs() < 1e-9);
    }
    let d = distance_transform(&m, w, h).unwrap();
    assert_close("edt", "distance", &d, &f32s(&f["edt"]), 1e-6, 1e-6);
    // Instances from a class map: every 8-connected blob of class 1 is one instance.
    let classes: Vec<u32> = m.iter().map(|&b| u32::from(b)).collect();
    let (inst, comps) = instances_from_class_map(&classes, w, h, Some(0), 8).unwrap();
    assert_eq!(inst, l8);
    assert!(comps.iter().all(|c| c.value == 1));
}

#[test]
fn watershed_matches_skimage() {
    let f = load("morphology.json");
    let (h, w) = (
        f["height"].as_u64().unwrap() as usize,
        f["width"].as_u64().unwrap() as usize,
    );
    let elev = f32s(&f["elevation"]);
    let markers = u32s(&f["markers"]);
    let mask = bools(&f["ws_mask"]);
    let ws4 = watershed(&elev, &markers, w, h, Some(&mask), 4).unwrap();
    assert_eq!(ws4, u32s(&f["watershed4"]));
    let ws8 = watershed(&elev, &markers, w, h, None, 8).unwrap();
    assert_eq!(ws8, u32s(&f["watershed8"]));
}
