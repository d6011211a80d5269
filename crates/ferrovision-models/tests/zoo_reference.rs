//! Every zoo architecture against its reference implementation (torchvision or Keras
//! applications): `reference/zoo/<family>.py` filled the reference model with the formula
//! weights of `reference/zoo/formula_weights.py`, ran the formula input through it in eval
//! mode and committed the outputs and parameter counts; here the zoo model is filled the same
//! way (by *our* weight names, so names, layouts, padding and the layer order must all match)
//! and must give the same outputs and the same trainable parameter count.

mod common;

use common::{assert_close, formula_fill, formula_input, zoo_fixture, ZooFixture};
use ferrovision_models::{build, vgg, ModelOptions};
use ferrovision_nn::{CallCtx, Network, NetworkExt};

/// Builds `arch` for the fixture `fixture`'s input and classes, fills it, runs it and compares
/// the logits (and, where the fixture has `aux_logits`, the extra outputs in order); checks the
/// trainable parameter count against torchvision's and, where the fixture records it, that the
/// smallest input torchvision accepts is ours too. Returns the fixture and the filled network.
fn check(
    arch: &str,
    fixture: &str,
    opts: impl Fn(ModelOptions) -> ModelOptions,
) -> (ZooFixture, Box<dyn Network>) {
    let f = zoo_fixture(fixture);
    let net = build(
        arch,
        &opts(ModelOptions::new(&f.input_shape[1..], f.classes)),
    )
    .unwrap();
    formula_fill(net.as_ref()).unwrap();
    let params: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
    if let Some(want) = f.json["torchvision_params"].as_u64() {
        assert_eq!(
            params as u64, want,
            "{arch}: trainable parameters vs torchvision"
        );
    }
    let x = formula_input(&f.input_shape).unwrap();
    let y = net.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_close(arch, &y[0].to_vec::<f32>().unwrap(), &f.logits, 1e-4);
    if let Some(aux) = f.json["aux_logits"].as_array() {
        assert_eq!(y.len(), 1 + aux.len(), "{arch}: number of outputs");
        for (i, want) in aux.iter().enumerate() {
            let want: Vec<f32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let what = format!("{arch} aux output {}", i + 1);
            assert_close(&what, &y[1 + i].to_vec::<f32>().unwrap(), &want, 1e-4);
        }
    } else {
        assert_eq!(y.len(), 1, "{arch}: number of outputs");
    }
    for (key, aux) in [("min_size", false), ("aux_min_size", true)] {
        let Some(min) = f.json[key].as_u64() else {
            continue;
        };
        let min = min as usize;
        // The plain minimum is the feature extractor's (built headless: VGG's top alone is
        // 100 M weights); the auxiliary heads' needs the top.
        let at = |side: usize| {
            let o = ModelOptions::new(&[f.input_shape[1], side, side], f.classes);
            build(arch, &o.include_top(aux).aux_logits(aux))
        };
        assert!(
            at(min).is_ok(),
            "{arch}: {min}x{min} (torchvision's minimum) rejected"
        );
        let e = at(min - 1).err().expect("below the minimum");
        assert!(
            e.to_string().contains(&format!("at least {min}x{min}")),
            "{arch}: {e}"
        );
    }
    (f, net)
}

/// Sum of the sizes of `net`'s weights (trainable or not) whose name satisfies `keep`.
fn numel(net: &dyn Network, keep: impl Fn(&str) -> bool) -> u64 {
    net.named_weights()
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(_, p)| p.numel() as u64)
        .sum()
}

/// Keras applications has the same VGG (its Flatten at 224x224 feeds the same 25088-input dense
/// layer as torchvision's adaptive 7x7 pooling): every count is equal.
fn check_keras_same(f: &ZooFixture, net: &dyn Network) {
    let ours = numel(net, |_| true);
    assert_eq!(f.json["keras_params_total"].as_u64(), Some(ours));
    assert_eq!(f.json["keras_params_trainable"].as_u64(), Some(ours));
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

#[test]
fn vgg16_matches_torchvision_and_keras() {
    let (f, net) = check("vgg16", "vgg16", |o| o);
    check_keras_same(&f, net.as_ref());
}

#[test]
fn vgg19_matches_torchvision_and_keras() {
    let (f, net) = check("vgg19", "vgg19", |o| o);
    check_keras_same(&f, net.as_ref());
}

#[test]
fn vgg_bn_match_torchvision() {
    check("vgg16_bn", "vgg16_bn", |o| o);
    check("vgg19_bn", "vgg19_bn", |o| o);
}

#[test]
fn vgg16_fcn_score_map_equals_vgg16_logits() {
    // VGG-16 with formula weights, converted into the fully-convolutional net: at 224x224 its
    // 1x1 score map is VGG-16's logits (the dense layers became 7x7 and 1x1 convolutions).
    let opts = ModelOptions::new(&[3, 224, 224], 10);
    let vgg16 = build("vgg16", &opts).unwrap();
    formula_fill(vgg16.as_ref()).unwrap();
    let fcn = build("vgg16_fcn", &opts).unwrap();
    vgg::fcn_from_vgg(vgg16.as_ref(), fcn.as_ref()).unwrap();
    let x = formula_input(&[1, 3, 224, 224]).unwrap();
    let want = vgg16
        .forward(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    let got = fcn.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_eq!(got[0].shape(), &[1, 10, 1, 1]);
    assert_close(
        "vgg16_fcn",
        &got[0].to_vec::<f32>().unwrap(),
        &want[0].to_vec::<f32>().unwrap(),
        1e-4,
    );
}

#[test]
fn googlenet_and_aux_heads_match_torchvision() {
    // torchvision's default (aux heads on): logits, aux1 and aux2 at 112x112.
    let (f, _) = check("googlenet", "googlenet", |o| o.aux_logits(true));
    let plain = build(
        "googlenet",
        &ModelOptions::new(&f.input_shape[1..], f.classes),
    )
    .unwrap();
    let n: usize = plain
        .trainable_weights()
        .iter()
        .map(|(_, p)| p.numel())
        .sum();
    assert_eq!(Some(n as u64), f.json["torchvision_params_no_aux"].as_u64());
}

#[test]
fn inception_v3_with_aux_matches_torchvision_and_keras_counts() {
    // torchvision's default (AuxLogits on) at 299x299.
    let (f, net) = check("inception_v3", "inception_v3", |o| o.aux_logits(true));
    // Keras' InceptionV3: no aux head, and batch norms without gamma (scale=False); the same
    // convolutions, betas, moving statistics and classifier.
    let not_aux = |n: &str| !n.starts_with("AuxLogits/");
    let trainable: u64 = net
        .trainable_weights()
        .iter()
        .filter(|(n, _)| not_aux(n))
        .map(|(_, p)| p.numel() as u64)
        .sum();
    let gammas = numel(net.as_ref(), |n| not_aux(n) && n.ends_with("/gamma"));
    let stats = numel(net.as_ref(), |n| {
        not_aux(n) && (n.ends_with("/moving_mean") || n.ends_with("/moving_variance"))
    });
    let keras_trainable = f.json["keras_params_trainable"].as_u64().unwrap();
    let keras_total = f.json["keras_params_total"].as_u64().unwrap();
    assert_eq!(trainable - gammas, keras_trainable);
    assert_eq!(keras_total - keras_trainable, stats);
    assert_eq!(stats, 2 * gammas);
}

#[test]
fn inception_v3_at_its_minimum_size_matches_torchvision() {
    check("inception_v3", "inception_v3_75", |o| o);
}
