//! Zoo architectures through the ONNX and TF.js import paths
//! (`reference/make_zoo_import_fixtures.py`): a reference model filled with the formula
//! weights, saved in the format by its own tools and run by its own runtime. Reading the file,
//! mapping it onto the zoo model by the format's naming (`pretrained::naming_for`) and running
//! the formula input must give the reference's logits: reader, names, layouts and architecture
//! checked together. (PyTorch: `efficientnet_real.rs`; Keras HDF5: `mini_xception_real.rs`.)

use ferrovision_import::pretrained::naming_for;
use ferrovision_import::remap::load_into;
use ferrovision_import::{read_weights, SourceFormat};
use ferrovision_models::formula::formula_input;
use ferrovision_models::{build, ModelOptions};
use ferrovision_nn::{CallCtx, Network};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/import")
        .join(name)
}

/// Reads `file`, loads it into `net` by its format's naming, runs the formula input of the
/// fixture `json` and compares the logits (rtol 1e-4 of the largest).
fn check(net: &dyn Network, file: &str, json: &str, format: SourceFormat) {
    let weights = read_weights(&fixture(file)).unwrap();
    assert_eq!(weights.format, format);
    load_into(net, &weights, &naming_for(weights.format)).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(json)).unwrap()).unwrap();
    let shape: Vec<usize> = want["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let got = net
        .forward(&[formula_input(&shape).unwrap()], &mut CallCtx::new(false))
        .unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    let reference: Vec<f32> = want["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got.len(), reference.len(), "{file}: number of logits");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
        assert!(
            (g - r).abs() <= 1e-4 * scale,
            "{file} logit {i}: ours {g}, reference {r} (max |logit| {scale})"
        );
    }
}

#[test]
fn onnx_resnet20_gives_onnxruntimes_logits() {
    let net = build("resnet20", &ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    check(
        net.as_ref(),
        "zoo_resnet20.onnx",
        "zoo_resnet20_onnx.json",
        SourceFormat::Onnx,
    );
}

#[test]
fn tfjs_uint8_mobilenet_v1_gives_keras_logits() {
    let net = build(
        "mobilenet_v1",
        &ModelOptions::new(&[3, 32, 32], 10).alpha(0.25),
    )
    .unwrap();
    check(
        net.as_ref(),
        "zoo_mobilenet_v1_tfjs/weights_manifest.json",
        "zoo_mobilenet_v1_tfjs.json",
        SourceFormat::Tfjs,
    );
}

#[test]
fn a_file_for_another_architecture_is_refused_naming_the_tensors() {
    // ResNet-20's ONNX weights do not fit ResNet-32: the error names what is missing and
    // nothing is assigned.
    let net = build("resnet32", &ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    let weights = read_weights(&fixture("zoo_resnet20.onnx")).unwrap();
    let err = load_into(net.as_ref(), &weights, &naming_for(weights.format))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing") && err.contains("layer1.3.conv1.weight"),
        "{err}"
    );
}
