//! Box ops, NMS, anchors, box coder and RoI ops against torchvision / TensorFlow fixtures
//! (reference/make_vision_fixtures.py).

mod common;
use common::*;
use ferrovision_tensor::{gradcheck::GradCheck, Tensor};
use ferrovision_vision::anchors::{base_anchors, grid_anchors};
use ferrovision_vision::boxes::{elementwise, pairwise, IouKind};
use ferrovision_vision::coder::BoxCoder;
use ferrovision_vision::nms::{
    batched_nms, batched_nms_per_class, combined_nms, nms, soft_nms, CombinedNmsOpts, SoftNmsMethod,
};
use ferrovision_vision::roi::{roi_align, roi_pool, RoiAlignOpts};

#[test]
fn iou_family_matches_torchvision() {
    let f = load("boxes.json");
    for c in f["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (a, b) = (boxes(&c["a"]), boxes(&c["b"]));
        for (key, kind) in [
            ("iou", IouKind::Iou),
            ("giou", IouKind::Giou),
            ("diou", IouKind::Diou),
            ("ciou", IouKind::Ciou),
        ] {
            assert_close(
                name,
                key,
                &pairwise(&a, &b, kind),
                &f32s(&c[key]),
                1e-5,
                1e-6,
            );
            let m = a.len().min(b.len());
            if key != "iou" {
                let pairs = elementwise(&a[..m], &b[..m], kind).unwrap();
                let k = format!("{key}_pairs");
                assert_close(name, &k, &pairs, &f32s(&c[k.as_str()]), 1e-5, 1e-6);
            }
        }
    }
}

#[test]
fn box_coder_matches_torchvision() {
    let f = load("boxes.json");
    let c = &f["coder"];
    let w = f32s(&c["weights"]);
    let mut coder = BoxCoder::new([w[0], w[1], w[2], w[3]]);
    assert!((coder.clip as f64 - c["clip"].as_f64().unwrap()).abs() < 1e-6);
    coder.clip = c["clip"].as_f64().unwrap() as f32;
    let anchors = boxes(&c["anchors"]);
    let enc = coder.encode(&boxes(&c["gt"]), &anchors).unwrap();
    let enc: Vec<f32> = enc.into_iter().flatten().collect();
    assert_close("coder", "encode", &enc, &f32s(&c["encoded"]), 1e-5, 1e-5);
    let deltas: Vec<[f32; 4]> = boxes(&c["deltas"]);
    let dec: Vec<f32> = coder
        .decode(&deltas, &anchors)
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_close("coder", "decode", &dec, &f32s(&c["decoded"]), 1e-5, 1e-5);
}

#[test]
fn anchors_match_torchvision() {
    let f = load("boxes.json");
    for c in f["anchors"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let base = base_anchors(&f32s(&c["sizes"]), &f32s(&c["ratios"])).unwrap();
        let flat: Vec<f32> = base.iter().flatten().copied().collect();
        assert_eq!(flat, f32s(&c["base"]), "{name} base");
        let img = usizes(&c["image"]);
        let grid = usizes(&c["grid"]);
        let stride = ((img[0] / grid[0]) as f32, (img[1] / grid[1]) as f32);
        let all = grid_anchors(&base, (grid[0], grid[1]), stride);
        let flat: Vec<f32> = all.iter().flatten().copied().collect();
        assert_eq!(flat, f32s(&c["anchors"]), "{name} grid");
    }
}

#[test]
fn nms_keeps_exactly_torchvisions_indices() {
    let f = load("nms.json");
    let mut checked = 0;
    for c in f["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let b = boxes(&c["boxes"]);
        let s = f32s(&c["scores"]);
        let cls = usizes(&c["classes"]);
        let thr = c["iou_threshold"].as_f64().unwrap();
        let want = usizes(&c["keep"]);
        let got = if c["batched"].as_bool().unwrap() {
            let got = batched_nms(&b, &s, &cls, thr).unwrap();
            if !name.contains("negative") {
                // Unshifted per-class NMS keeps the same set on these inputs.
                let mut p = batched_nms_per_class(&b, &s, &cls, thr).unwrap();
                let mut w = want.clone();
                p.sort_unstable();
                w.sort_unstable();
                assert_eq!(p, w, "{name}: per-class set");
            }
            got
        } else {
            nms(&b, &s, thr).unwrap()
        };
        assert_eq!(got, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 10);
}

#[test]
fn combined_nms_matches_tensorflow() {
    let f = load("nms.json");
    for c in f["combined"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let opts = CombinedNmsOpts {
            max_output_per_class: c["max_per_class"].as_u64().unwrap() as usize,
            max_total: c["max_total"].as_u64().unwrap() as usize,
            iou_threshold: c["iou_threshold"].as_f64().unwrap() as f32,
            score_threshold: c["score_threshold"].as_f64().unwrap() as f32,
            pad_per_class: c["pad_per_class"].as_bool().unwrap(),
            clip_boxes: c["clip_boxes"].as_bool().unwrap(),
        };
        let q = c["q"].as_u64().unwrap() as usize;
        let ncls = c["num_classes"].as_u64().unwrap() as usize;
        let out = combined_nms(&boxes(&c["boxes"]), q, &f32s(&c["scores"]), ncls, &opts).unwrap();
        assert_eq!(
            out.valid,
            c["valid"].as_u64().unwrap() as usize,
            "{name} valid"
        );
        assert_eq!(out.classes, usizes(&c["out_classes"]), "{name} classes");
        assert_eq!(out.scores, f32s(&c["out_scores"]), "{name} scores");
        let flat: Vec<f32> = out.boxes.iter().flatten().copied().collect();
        assert_eq!(flat, f32s(&c["out_boxes"]), "{name} boxes");
    }
}

#[test]
fn gaussian_soft_nms_matches_tensorflow() {
    let f = load("nms.json");
    for c in f["soft"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (sel, sc) = soft_nms(
            &boxes(&c["boxes"]),
            &f32s(&c["scores"]),
            c["iou_threshold"].as_f64().unwrap(),
            SoftNmsMethod::Gaussian {
                sigma: c["sigma"].as_f64().unwrap() as f32,
            },
            c["score_threshold"].as_f64().unwrap() as f32,
        )
        .unwrap();
        assert_eq!(sel, usizes(&c["selected"]), "{name}");
        assert_close(
            name,
            "scores",
            &sc,
            &f32s(&c["selected_scores"]),
            1e-5,
            1e-6,
        );
    }
}

fn roi_case_tensors(c: &serde_json::Value) -> (Tensor, Tensor) {
    let shape = usizes(&c["input_shape"]);
    let x = Tensor::from_vec(f32s(&c["input"]), &shape).unwrap();
    let r = f32s(&c["rois"]);
    let k = r.len() / 5;
    (x, Tensor::from_vec(r, &[k, 5]).unwrap())
}

fn run_roi(c: &serde_json::Value, x: &Tensor, r: &Tensor) -> Tensor {
    let out = usizes(&c["output_size"]);
    let scale = c["spatial_scale"].as_f64().unwrap() as f32;
    if c["op"] == "roi_align" {
        roi_align(
            x,
            r,
            RoiAlignOpts {
                output_size: (out[0], out[1]),
                spatial_scale: scale,
                sampling_ratio: c["sampling_ratio"].as_i64().unwrap() as i32,
                aligned: c["aligned"].as_bool().unwrap(),
            },
        )
        .unwrap()
    } else {
        roi_pool(x, r, (out[0], out[1]), scale).unwrap()
    }
}

#[test]
fn roi_ops_forward_and_gradient_match_torchvision() {
    let f = load("roi.json");
    for c in f["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (x, r) = roi_case_tensors(c);
        let x = x.requires_grad_(true);
        let y = run_roi(c, &x, &r);
        assert_eq!(y.shape(), usizes(&c["output_shape"]).as_slice(), "{name}");
        assert_close(
            name,
            "output",
            &y.to_vec::<f32>().unwrap(),
            &f32s(&c["output"]),
            1e-4,
            1e-6,
        );
        let cot = Tensor::from_vec(f32s(&c["cotangent"]), y.shape()).unwrap();
        y.backward_with(&cot).unwrap();
        let g = x.grad().unwrap().to_vec::<f32>().unwrap();
        assert_close(name, "grad_input", &g, &f32s(&c["grad_input"]), 1e-4, 1e-6);
    }
}

#[test]
fn roi_ops_pass_finite_difference_gradcheck() {
    let f = load("roi.json");
    for c in f["cases"].as_array().unwrap() {
        let (x, r) = roi_case_tensors(c);
        let x = if c["op"] == "roi_pool" {
            // Max pooling: distinct integer values spaced by 1 so a step of 0.1 never moves an
            // arg-max (the fixture's values are only 1e-5 apart).
            let n = x.numel();
            let mut rng = ferrovision_tensor::rng::Rng::new(5);
            let mut v: Vec<f32> = (0..n).map(|i| i as f32).collect();
            for i in (1..n).rev() {
                v.swap(i, rng.below(i as u64 + 1) as usize);
            }
            Tensor::from_vec(v, x.shape()).unwrap()
        } else {
            x // RoI Align is linear in the feature map.
        };
        let check = GradCheck {
            eps: 0.1,
            atol: 2e-3,
            rtol: 1e-2,
            max_elements: 128,
            seed: 11,
        };
        // The regions get no gradient (as in torchvision), so only the feature map is checked.
        check
            .run(|xs| Ok(run_roi(c, &xs[0], &r)), &[x])
            .unwrap_or_else(|e| panic!("{}: {e}", c["name"]));
    }
}

#[test]
fn roi_ops_reject_bad_regions() {
    let x = Tensor::zeros(&[1, 1, 4, 4]);
    let bad = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 2.0, 2.0], &[1, 5]).unwrap();
    let e = roi_align(&x, &bad, RoiAlignOpts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch index"), "{e}");
    let nan = Tensor::from_vec(vec![0.0f32, f32::NAN, 0.0, 2.0, 2.0], &[1, 5]).unwrap();
    let e = roi_pool(&x, &nan, (2, 2), 1.0).unwrap_err().to_string();
    assert!(e.contains("region 0") && e.contains("non-finite"), "{e}");
    let wrong = Tensor::zeros(&[2, 4]);
    assert!(roi_align(&x, &wrong, RoiAlignOpts::default()).is_err());
}
