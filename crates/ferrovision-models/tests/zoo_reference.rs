//! Every zoo architecture against its reference implementation (torchvision or Keras
//! applications): `reference/zoo/<family>.py` filled the reference model with the formula
//! weights of `reference/zoo/formula_weights.py`, ran the formula input through it in eval
//! mode and committed the outputs and parameter counts; here the zoo model is filled the same
//! way (by *our* weight names, so names, layouts, padding and the layer order must all match)
//! and must give the same outputs and the same trainable parameter count.

mod common;

use common::{assert_close, formula_fill, formula_input, zoo_fixture};
use ferrovision_models::{build, ModelOptions};
use ferrovision_nn::{CallCtx, NetworkExt};

/// Builds `arch` for the fixture `fixture`'s input and classes, fills it, runs it and compares.
fn check(arch: &str, fixture: &str, opts: impl Fn(ModelOptions) -> ModelOptions) {
    let f = zoo_fixture(fixture);
    let net = build(
        arch,
        &opts(ModelOptions::new(&f.input_shape[1..], f.classes)),
    )
    .unwrap();
    formula_fill(net.as_ref());
    let params: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
    if let Some(want) = f.json["torchvision_params"].as_u64() {
        assert_eq!(
            params as u64, want,
            "{arch}: trainable parameters vs torchvision"
        );
    }
    let x = formula_input(&f.input_shape);
    let y = net.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_close(arch, &y[0].to_vec::<f32>().unwrap(), &f.logits, 1e-4);
}

#[test]
fn resnet18_matches_torchvision() {
    check("resnet18", "resnet18", |o| o);
}

/// Parameter counts of `arch` built for `input_shape` and `classes`.
struct Counts {
    trainable: u64,
    total: u64,
    /// The channels of every batch norm: in the nets where every convolution feeds one batch
    /// norm, the number of biases Keras' convolutions add.
    batch_norm_channels: u64,
}

fn counts(arch: &str, opts: &ModelOptions) -> Counts {
    let net = build(arch, opts).unwrap();
    let sum = |w: &[(String, ferrovision_nn::Param)]| -> u64 {
        w.iter().map(|(_, p)| p.numel() as u64).sum()
    };
    let all = net.named_weights();
    let gammas: Vec<_> = all
        .iter()
        .filter(|(n, _)| n.ends_with("/gamma"))
        .cloned()
        .collect();
    Counts {
        trainable: sum(&net.trainable_weights()),
        total: sum(&all),
        batch_norm_channels: sum(&gammas),
    }
}

/// The options of the ImageNet models whose counts Keras and torchvision document.
fn imagenet() -> ModelOptions {
    ModelOptions::new(&[3, 224, 224], 1000)
}

/// The fixture's count `key` (a JSON integer).
fn count(f: &common::ZooFixture, key: &str) -> u64 {
    f.json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture has no integer '{key}'"))
}

/// An ImageNet ResNet with 1000 classes has torchvision's documented count; where Keras has
/// the net, Keras' trainable count is ours plus one bias per conv output channel (Keras keeps
/// conv biases, torchvision drops them before batch norm), and Keras' non-trainable count is
/// our batch-norm moving statistics.
fn imagenet_resnet_counts(arch: &str) {
    let f = zoo_fixture(arch);
    let c = counts(arch, &imagenet());
    assert_eq!(c.trainable, count(&f, "torchvision_params_1000"), "{arch}");
    if f.json.get("keras_total_params").is_some() {
        assert_eq!(
            count(&f, "keras_trainable_params"),
            c.trainable + c.batch_norm_channels,
            "{arch}: Keras trainable = ours + conv biases"
        );
        assert_eq!(
            count(&f, "keras_total_params") - count(&f, "keras_trainable_params"),
            c.total - c.trainable,
            "{arch}: Keras non-trainable = our moving statistics"
        );
    }
}

#[test]
fn resnet34_matches_torchvision() {
    check("resnet34", "resnet34", |o| o);
    imagenet_resnet_counts("resnet34");
}

#[test]
fn resnet50_matches_torchvision_and_keras_counts() {
    check("resnet50", "resnet50", |o| o);
    imagenet_resnet_counts("resnet50");
}

#[test]
fn resnet101_matches_torchvision_and_keras_counts() {
    check("resnet101", "resnet101", |o| o);
    imagenet_resnet_counts("resnet101");
}

#[test]
fn resnet152_matches_torchvision_and_keras_counts() {
    check("resnet152", "resnet152", |o| o);
    imagenet_resnet_counts("resnet152");
}

/// A CIFAR ResNet against the script's PyTorch model of the same structure: same logits, same
/// count, and the count minus the two projection shortcuts is He et al.'s figure (which counts
/// parameter-free option-A shortcuts) to the paper's two decimals in millions.
fn cifar_resnet(arch: &str) {
    check(arch, arch, |o| o);
    let f = zoo_fixture(arch);
    let trainable = counts(arch, &ModelOptions::new(&[3, 32, 32], 10)).trainable;
    assert_eq!(trainable, count(&f, "torch_params"), "{arch} vs PyTorch");
    let option_a = trainable - count(&f, "projection_params");
    let paper = f.json["paper_params"].as_f64().unwrap();
    assert_eq!(
        (option_a as f64 / 1e4).round(),
        (paper / 1e4).round(),
        "{arch}: {option_a} parameters with option-A shortcuts vs the paper's {paper}"
    );
}

#[test]
fn resnet20_matches_pytorch_and_the_paper() {
    cifar_resnet("resnet20");
}

#[test]
fn resnet32_matches_pytorch_and_the_paper() {
    cifar_resnet("resnet32");
}

#[test]
fn resnet56_matches_pytorch_and_the_paper() {
    cifar_resnet("resnet56");
}

/// MobileNet v1 against Keras applications' `MobileNet` (alpha 1.0 on odd 67x75 images, where
/// Keras' `(0, 1)` zero padding matters, and alpha 0.25): same logits, and the same total and
/// trainable counts as Keras at 224 px with 1000 classes.
#[test]
fn mobilenet_v1_matches_keras() {
    for (fixture, alpha) in [("mobilenet_v1", 1.0), ("mobilenet_v1_alpha_0_25", 0.25)] {
        check("mobilenet_v1", fixture, |o| o.alpha(alpha));
        let f = zoo_fixture(fixture);
        let c = counts("mobilenet_v1", &imagenet().alpha(alpha));
        assert_eq!(c.total, count(&f, "keras_total_params"), "{fixture}");
        assert_eq!(
            c.trainable,
            count(&f, "keras_trainable_params"),
            "{fixture}"
        );
    }
}

/// MobileNet v2 against torchvision (67x75 images); with 1000 classes torchvision's count
/// (also at width 0.5), which is Keras' `MobileNetV2` trainable count (no conv biases on either
/// side); Keras' non-trainable count is our batch-norm moving statistics.
#[test]
fn mobilenet_v2_matches_torchvision_and_keras_counts() {
    check("mobilenet_v2", "mobilenet_v2", |o| o);
    let f = zoo_fixture("mobilenet_v2");
    let c = counts("mobilenet_v2", &imagenet());
    assert_eq!(c.trainable, count(&f, "torchvision_params_1000"));
    assert_eq!(c.trainable, count(&f, "keras_trainable_params"));
    assert_eq!(
        c.total - c.trainable,
        count(&f, "keras_total_params") - count(&f, "keras_trainable_params")
    );
    let half = counts("mobilenet_v2", &imagenet().alpha(0.5));
    assert_eq!(
        half.trainable,
        count(&f, "torchvision_params_1000_width_0_5")
    );
}

/// EfficientNet-Lite0 against the `efficientnet-lite-pytorch` package at 224 and 200 px (its
/// static TensorFlow-"same" paddings differ: the 5x5/2 conv on 25x25 pads 2 a side, on 28x28
/// 1 before and 2 after), with the package's parameter counts.
#[test]
fn efficientnet_lite0_matches_the_package() {
    for fixture in ["efficientnet_lite0", "efficientnet_lite0_200"] {
        check("efficientnet_lite0", fixture, |o| o);
        let f = zoo_fixture(fixture);
        let c = counts(
            "efficientnet_lite0",
            &ModelOptions::new(&[3, 64, 64], f.classes),
        );
        assert_eq!(c.trainable, count(&f, "torch_params"), "{fixture}");
    }
    let f = zoo_fixture("efficientnet_lite0");
    let c = counts("efficientnet_lite0", &imagenet());
    assert_eq!(c.trainable, count(&f, "torch_params_1000"));
}

/// Our EfficientNet-Lite0's PyTorch keys ([`to_torch_name`]) and shapes (through
/// [`from_torch`], which transposes the dense kernel) are exactly those of the real ImageNet
/// checkpoint (`efficientnet-lite0-57934424.pth`), listed by the reference script: the
/// pretrained weights load one to one. PyTorch's `num_batches_tracked` counters, if the file
/// has them, have no counterpart.
#[test]
fn efficientnet_lite0_names_and_shapes_are_the_pretrained_checkpoints() {
    use ferrovision_nn::layout::{from_torch, to_torch_name};
    use ferrovision_nn::tensor::Tensor;
    use std::collections::BTreeMap;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/zoo/efficientnet_lite0_weights.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut file: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for t in json["tensors"].as_array().unwrap() {
        let key = t["key"].as_str().unwrap().to_string();
        if key.ends_with(".num_batches_tracked") {
            continue;
        }
        let shape = t["shape"].as_array().unwrap();
        file.insert(
            key,
            shape.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
        );
    }
    assert!(file.len() > 200, "{} tensors", file.len());
    let net = build("efficientnet_lite0", &imagenet()).unwrap();
    let mut ours: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (name, p) in net.named_weights() {
        let key = to_torch_name(&name);
        let Some(shape) = file.get(&key) else {
            panic!("{name} ({key}) is not in the checkpoint");
        };
        let (layer, weight) = name.rsplit_once('/').unwrap();
        let class = net.get_layer(layer).unwrap().class_name();
        let imported = from_torch(class, weight, &Tensor::zeros(shape)).unwrap();
        assert_eq!(imported.shape(), p.shape().as_slice(), "{name} ({key})");
        ours.insert(key, shape.clone());
    }
    let missing: Vec<&String> = file.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "checkpoint tensors we lack: {missing:?}"
    );
}
