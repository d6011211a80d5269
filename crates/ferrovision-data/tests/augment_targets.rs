//! Geometric augmentation keeps boxes and masks on the pixels: synthetic images whose boxes
//! enclose rectangles of known colours, checked after many random flip/crop/affine chains.

use ferrovision_data::augment::{Augment, Op};
use ferrovision_data::image::{Filter, Image};
use ferrovision_data::sample::ImageSample;
use ferrovision_tensor::rng::Rng;

const COLORS: [[u8; 3]; 3] = [[250, 20, 20], [20, 240, 30], [30, 40, 250]];

fn synthetic() -> ImageSample {
    let (w, h) = (160, 120);
    let mut img = Image::new(w, h, 3, 128u8);
    let mut map = Image::new(w, h, 1, 0u8);
    let rects = [[10usize, 15, 60, 55], [80, 20, 150, 70], [30, 70, 100, 112]];
    for (k, r) in rects.iter().enumerate() {
        for y in r[1]..r[3] {
            for x in r[0]..r[2] {
                for (c, &v) in COLORS[k].iter().enumerate() {
                    img.set(x, y, c, v);
                }
                map.set(x, y, 0, k as u8 + 1);
            }
        }
    }
    let boxes = rects
        .iter()
        .map(|r| [r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32])
        .collect();
    let masks = rects
        .iter()
        .map(|r| {
            let mut m = Image::new(w, h, 1, 0u8);
            for y in r[1]..r[3] {
                for x in r[0]..r[2] {
                    m.set(x, y, 0, 1);
                }
            }
            m
        })
        .collect();
    ImageSample {
        image: img,
        boxes,
        box_labels: vec![0, 1, 2],
        label_map: Some(map),
        instance_masks: masks,
        weight: 1.0,
        file_name: "synthetic".into(),
        ..Default::default()
    }
}

fn is_color(img: &Image<u8>, x: usize, y: usize, k: usize) -> bool {
    (0..3).all(|c| (img.get(x, y, c) as i32 - COLORS[k][c] as i32).abs() <= 12)
}

/// For each kept box: the colour's pixels all lie inside the box (1-pixel tolerance for
/// resampling), the box interior is mostly that colour (axis-aligned chains), and the label
/// map and instance mask agree with the colour.
fn check(s: &ImageSample, axis_aligned: bool, what: &str) {
    assert_eq!(s.boxes.len(), s.box_labels.len());
    assert_eq!(s.boxes.len(), s.instance_masks.len());
    let img = &s.image;
    let map = s.label_map.as_ref().unwrap();
    assert_eq!((map.width, map.height), (img.width, img.height));
    for (b, &k) in s.boxes.iter().zip(&s.box_labels) {
        let k = k as usize;
        let mut inside = 0;
        let mut colored = 0;
        for y in 0..img.height {
            for x in 0..img.width {
                let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                let in_box = cx >= b[0] && cx <= b[2] && cy >= b[1] && cy <= b[3];
                let near_box =
                    cx >= b[0] - 1.5 && cx <= b[2] + 1.5 && cy >= b[1] - 1.5 && cy <= b[3] + 1.5;
                let col = is_color(img, x, y, k);
                if col {
                    assert!(
                        near_box,
                        "{what}: colour {k} at ({x},{y}) outside its box {b:?}"
                    );
                    // The label map says the same class where the colour is solid.
                    assert_eq!(
                        map.get(x, y, 0) as usize,
                        k + 1,
                        "{what}: label map at ({x},{y})"
                    );
                }
                if in_box {
                    inside += 1;
                    colored += col as usize;
                }
            }
        }
        if axis_aligned {
            assert!(
                colored as f32 >= 0.8 * inside as f32,
                "{what}: box {b:?} of class {k} is only {colored}/{inside} its colour"
            );
        } else {
            assert!(
                colored > 0,
                "{what}: box {b:?} of class {k} holds none of its colour"
            );
        }
    }
    // Every colour still visible in quantity has its box (not dropped while visible).
    for k in 0..3 {
        let n = (0..img.height)
            .flat_map(|y| (0..img.width).map(move |x| (x, y)))
            .filter(|&(x, y)| is_color(img, x, y, k))
            .count();
        let kept = s.box_labels.contains(&(k as i64));
        if n > 2000 {
            assert!(
                kept,
                "{what}: colour {k} covers {n} pixels but its box was dropped"
            );
        }
    }
    // Instance masks follow the label map.
    for (m, &k) in s.instance_masks.iter().zip(&s.box_labels) {
        for i in 0..m.data.len() {
            if m.data[i] == 1 {
                assert_eq!(
                    map.data[i] as i64,
                    k + 1,
                    "{what}: instance mask {k} disagrees with the label map"
                );
            }
        }
    }
}

#[test]
fn axis_aligned_chains_keep_boxes_on_their_colour() {
    let aug = Augment::new(vec![
        Op::RandomResizedCrop {
            size: [96, 128],
            scale: [0.3, 1.0],
            ratio: [0.75, 1.33],
        },
        Op::Hflip { p: 0.5 },
        Op::Vflip { p: 0.5 },
        Op::ScaleJitter { min: 0.7, max: 1.3 },
    ]);
    let mut dropped = 0;
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let s = aug.apply(synthetic(), &mut rng).unwrap();
        dropped += 3 - s.boxes.len();
        check(&s, true, &format!("seed {seed}"));
    }
    assert!(dropped > 0, "random crops should drop some boxes");
}

#[test]
fn rotations_and_affine_keep_boxes_around_their_colour() {
    let aug = Augment::new(vec![
        Op::Affine {
            degrees: 25.0,
            translate: [0.1, 0.1],
            scale: [0.8, 1.2],
            shear: 8.0,
        },
        Op::Hflip { p: 0.5 },
        Op::Rot90,
    ]);
    for seed in 0..25 {
        let mut rng = Rng::new(100 + seed);
        let s = aug.apply(synthetic(), &mut rng).unwrap();
        check(&s, false, &format!("seed {seed}"));
    }
}

#[test]
fn flip_is_exact() {
    let s = synthetic();
    let mut rng = Rng::new(0);
    let f = Augment::new(vec![Op::Hflip { p: 1.0 }])
        .apply(s.clone(), &mut rng)
        .unwrap();
    assert_eq!(f.image, s.image.flip_horizontal());
    assert_eq!(f.boxes[0], [100.0, 15.0, 150.0, 55.0]);
    let v = Augment::new(vec![Op::Vflip { p: 1.0 }])
        .apply(s.clone(), &mut rng)
        .unwrap();
    assert_eq!(
        v.label_map.unwrap(),
        s.label_map.as_ref().unwrap().flip_vertical()
    );
    let r = Augment::new(vec![Op::Resize {
        size: [60, 80],
        filter: Filter::Bilinear,
    }])
    .apply(s, &mut rng)
    .unwrap();
    assert_eq!(r.boxes[1], [40.0, 10.0, 75.0, 35.0]);
}

#[test]
fn photometric_ops_leave_targets_alone() {
    let s = synthetic();
    let aug = Augment::new(vec![
        Op::ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        },
        Op::Gamma { min: 0.7, max: 1.4 },
        Op::GaussianNoise { std: 5.0 },
        Op::Blur {
            min: 0.5,
            max: 1.5,
            p: 1.0,
        },
        Op::Cutout { size: 10, count: 2 },
        Op::Grayscale { p: 0.5 },
    ]);
    let mut rng = Rng::new(5);
    let out = aug.apply(s.clone(), &mut rng).unwrap();
    assert_eq!(out.boxes, s.boxes);
    assert_eq!(out.label_map, s.label_map);
    assert_ne!(out.image, s.image);
}

#[test]
fn config_json_round_trip_and_errors() {
    let text = r#"{"ops": [{"op": "random_resized_crop", "size": [224, 224]}, {"op": "hflip", "p": 0.5},
        {"op": "color_jitter", "brightness": 0.4, "hue": 0.1}], "min_box_visibility": 0.3,
        "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}"#;
    let a = Augment::from_json(text, "aug.json").unwrap();
    assert_eq!(a.ops.len(), 3);
    assert_eq!(Augment::from_json(&a.to_json(), "x").unwrap(), a);
    let e = Augment::from_json(r#"{"ops": [{"op": "hflip", "p": 2.0}]}"#, "aug.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("aug.json") && e.contains("ops[0]"), "{e}");
    let e = Augment::from_json("{\"ops\": [\n{\"op\": \"spin\"}]}", "aug.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("aug.json:2") && e.contains("spin"), "{e}");
    // Out-of-range values are errors naming the op (1e308 parses to infinity in f32).
    for (op, want) in [
        (
            r#"{"op": "rotate", "degrees": 1e308}"#,
            "degrees must be in [0, 360]",
        ),
        (
            r#"{"op": "affine", "degrees": 10, "scale": [0, 1e9]}"#,
            "scale 0 < lo <= hi <= 10",
        ),
        (
            r#"{"op": "affine", "translate": [0.1, -0.2]}"#,
            "translate in [0, 1]",
        ),
        (r#"{"op": "affine", "shear": 90}"#, "shear in [0, 90)"),
        (
            r#"{"op": "scale_jitter", "min": 0.5, "max": 1e9}"#,
            "max <= 16",
        ),
        (
            r#"{"op": "gaussian_noise", "std": -1}"#,
            "std must be in [0, 255]",
        ),
        (
            r#"{"op": "blur", "min": 0, "max": 1e6, "p": 0.5}"#,
            "max <= 64",
        ),
        (
            r#"{"op": "cutout", "size": 0, "count": 1}"#,
            "size must be in 1..=16384",
        ),
        (
            r#"{"op": "color_jitter", "brightness": 1e30}"#,
            "jitter amounts",
        ),
        (r#"{"op": "gamma", "min": 0.5, "max": 1e300}"#, "max <= 100"),
    ] {
        let e = Augment::from_json(&format!(r#"{{"ops": [{op}]}}"#), "aug.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("aug.json") && e.contains("ops[0]") && e.contains(want),
            "{op}: {e}"
        );
    }
    for norm in [
        r#"{"mean": [0.5], "std": [0]}"#,
        r#"{"mean": [0.5, 0.5], "std": [0.2]}"#,
        r#"{"mean": [], "std": []}"#,
        r#"{"mean": [0.5], "std": [-0.1]}"#,
    ] {
        let e = Augment::from_json(
            &format!(r#"{{"ops": [], "normalize": {norm}}}"#),
            "aug.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("aug.json") && e.contains("normalize needs"),
            "{norm}: {e}"
        );
    }
}
