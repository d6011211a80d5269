//! `train`'s recipe options end to end (weight decay, momentum, schedules, frozen layers, warm
//! start with a backbone learning-rate multiplier), bit-exact resume with all of them, top-5
//! accuracy, the input normalisation applied at evaluation as in training, and `evaluate`'s
//! test-time augmentation and ensembles.

mod common;

use common::{fails, ferrovision, json, ok, scratch};
use std::path::Path;
use std::process::Output;

const QUICK: &[&str] = &[
    "--model",
    "mlp",
    "--limit",
    "400",
    "--test-limit",
    "300",
    "--batch-size",
    "32",
    "--seed",
    "5",
    "--verbose",
    "0",
];

fn train(out: &Path, epochs: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--epochs", epochs];
    args.extend_from_slice(QUICK);
    args.extend_from_slice(extra);
    ferrovision(&args, cwd)
}

#[test]
fn fine_tuning_recipe_resumes_bit_exactly() {
    let tmp = scratch();
    // Stage 1: a model to warm-start from.
    let base = tmp.join("base");
    let text = ok(train(&base, "1", &["--optimizer", "adam"], &tmp));
    // 10 classes: top-5 accuracy is logged and reported.
    assert!(text.contains("top-5 accuracy"), "{text}");
    let m = json(&base.join("metrics.json"));
    let top5 = m["test_top_5_accuracy"].as_f64().unwrap();
    assert!(
        top5 >= m["test_accuracy"].as_f64().unwrap() && top5 <= 1.0,
        "{m}"
    );
    let base_model = base.join("model.safetensors");
    let recipe = [
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--momentum",
        "0.8",
        "--weight-decay",
        "1e-3",
        "--schedule",
        "cosine",
        "--warmup-epochs",
        "1",
        "--freeze",
        "name:dense_1",
        "--init-from",
        base_model.to_str().unwrap(),
        "--backbone-lr-multiplier",
        "0.1",
    ];
    // Stage 2, straight through 3 epochs.
    let straight = tmp.join("straight");
    let text = ok(train(&straight, "3", &recipe, &tmp));
    assert!(
        text.contains("loaded 4 weight(s)")
            && text.contains("froze 1 layer(s) matching name:dense_1"),
        "{text}"
    );
    assert!(
        text.contains("trainable parameters: 100480 of 101770"),
        "{text}"
    );
    let run = json(&straight.join("run.json"));
    assert_eq!(run["recipe"]["schedule"], "cosine");
    assert_eq!(run["recipe"]["freeze"][0], "name:dense_1");
    // The frozen head kept the warm-started values: dense_1 equals the base model's.
    // (Checked through the saved files' tensors.)
    let head = |p: &Path| {
        let f = ferrovision_io::load_safetensors(p).unwrap();
        f.get("weights/dense_1/kernel")
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(head(&straight.join("model.safetensors")), head(&base_model));
    assert_ne!(
        ferrovision_io::load_safetensors(&straight.join("model.safetensors"))
            .unwrap()
            .get("weights/dense/kernel")
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        ferrovision_io::load_safetensors(&base_model)
            .unwrap()
            .get("weights/dense/kernel")
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    );

    // The same run crashed after its first checkpoint (a 3-epoch run: the schedule spans the
    // --epochs given at the start) and resumed: identical to the last bit.
    let resumed = tmp.join("resumed");
    std::fs::create_dir_all(resumed.join("checkpoints")).unwrap();
    for f in ["run.json", "checkpoints/epoch-001.safetensors"] {
        std::fs::copy(straight.join(f), resumed.join(f)).unwrap();
    }
    let err = fails(train(
        &resumed,
        "3",
        &["--resume", "--weight-decay", "0.1"],
        &tmp,
    ));
    assert!(err.contains("cannot change when resuming"), "{err}");
    ok(ferrovision(
        &[
            "train",
            "--out",
            resumed.to_str().unwrap(),
            "--epochs",
            "3",
            "--resume",
            "--verbose",
            "0",
        ],
        &tmp,
    ));
    let weights = |p: &Path| {
        let f = ferrovision_io::load_safetensors(&p.join("model.safetensors")).unwrap();
        f.tensors
            .iter()
            .filter(|(n, _)| n.starts_with("weights/") || n.starts_with("optimizer/"))
            .map(|(n, t)| (n.clone(), t.to_vec::<f32>().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(weights(&straight), weights(&resumed));
    let (a, b) = (
        json(&straight.join("metrics.json")),
        json(&resumed.join("metrics.json")),
    );
    for k in ["test_loss", "test_accuracy", "test_top_5_accuracy", "lr"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // The cosine schedule ran to its end.
    assert!(a["lr"].as_f64().unwrap() < 1e-3, "{a}");
}

#[test]
fn normalisation_applies_at_evaluation_and_evaluate_averages() {
    let tmp = scratch();
    let aug = tmp.join("norm.json");
    std::fs::write(
        &aug,
        r#"{"ops": [], "normalize": {"mean": [0.5], "std": [0.25]}}"#,
    )
    .unwrap();
    let run = tmp.join("run");
    ok(train(
        &run,
        "2",
        &[
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--augment",
            aug.to_str().unwrap(),
        ],
        &tmp,
    ));
    let m = json(&run.join("metrics.json"));
    let model = run.join("model.safetensors");
    let model_s = model.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec!["evaluate", "--model-file", model_s, "--limit", "300"];
        args.extend_from_slice(extra);
        ok(ferrovision(&args, &tmp))
    };
    // Regression (issue 10 item 9): evaluate normalises as training did, so it reproduces the
    // run's own test numbers (without normalisation the loss was several times larger).
    let text = eval(&[]);
    let want = format!(
        "accuracy {:.4}, top-5 accuracy {:.4}, loss {:.4}",
        m["test_accuracy"].as_f64().unwrap(),
        m["test_top_5_accuracy"].as_f64().unwrap(),
        m["test_loss"].as_f64().unwrap()
    );
    assert!(text.contains(&want), "{text} vs {want}");
    // The last epoch's validation loss is the same evaluation.
    let h = json(&run.join("history.json"));
    let last = h["logs"][1].as_array().unwrap();
    let val_loss = last
        .iter()
        .find(|p| p[0] == "val_loss")
        .map(|p| p[1].as_f64().unwrap())
        .unwrap();
    assert!((val_loss - m["test_loss"].as_f64().unwrap()).abs() < 1e-6);

    // An ensemble of a model with itself averages identical probabilities: same accuracy.
    let text = eval(&["--model-file", model_s]);
    assert!(text.contains("ensemble of 2"), "{text}");
    let acc = format!("accuracy {:.4}", m["test_accuracy"].as_f64().unwrap());
    assert!(text.contains(&acc), "{text} vs {acc}");
    // Ten-crop TTA runs and says so.
    let text = eval(&["--tta", "ten-crop", "--tta-padding", "2"]);
    assert!(
        text.contains("with ten-crop TTA") && text.contains("top-5 accuracy"),
        "{text}"
    );
}

#[test]
fn recipe_errors_are_clear() {
    let tmp = scratch();
    let out = tmp.join("r");
    let err = fails(train(&out, "1", &["--freeze", "class:Conv3D"], &tmp));
    assert!(
        err.contains("--freeze class:Conv3D") && err.contains("no layer matches"),
        "{err}"
    );
    let err = fails(train(&tmp.join("r2"), "1", &["--warmup-epochs", "1"], &tmp));
    assert!(
        err.contains("--warmup-epochs needs --schedule cosine"),
        "{err}"
    );
    let err = fails(train(
        &tmp.join("r3"),
        "1",
        &["--schedule", "step:3,2"],
        &tmp,
    ));
    assert!(err.contains("step:E1,E2"), "{err}");
    let err = fails(train(
        &tmp.join("r4"),
        "1",
        &["--optimizer", "adam", "--momentum", "0.9"],
        &tmp,
    ));
    assert!(err.contains("no momentum"), "{err}");
    let missing = tmp.join("nope.safetensors");
    let err = fails(train(
        &tmp.join("r5"),
        "1",
        &["--init-from", missing.to_str().unwrap()],
        &tmp,
    ));
    assert!(
        err.contains("--init-from") && err.contains("nope.safetensors"),
        "{err}"
    );
}
