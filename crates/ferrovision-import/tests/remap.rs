//! [`load_into`] against PyTorch names: a tiny conv/bn/fc net saved by PyTorch
//! (`reference/make_import_torch_fixtures.py`) must give PyTorch's output once loaded from a
//! checkpoint (prefix found automatically), and the zoo's ResNet-18 must take every key of
//! torchvision's `resnet18(num_classes=10).state_dict()` (its key list is a fixture; the values
//! are generated here, each tensor tagged so a weight loaded from the wrong key shows). Missing,
//! extra and mis-shaped tensors are errors naming them, and nothing is assigned then.

use ferrovision_import::remap::{load_into, KeyRemapper, Naming};
use ferrovision_import::{torch, Error, ImportedWeights, SourceFormat};
use ferrovision_io::safetensors::load_safetensors;
use ferrovision_models::{resnet, ModelOptions};
use ferrovision_nn::layers::{
    ActivationLayer, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D,
};
use ferrovision_nn::{Activation, CallCtx, Graph, Network, NetworkExt};
use ferrovision_tensor::Tensor;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/import")
        .join(name)
}

/// ferrovision's twin of the fixture script's `Tiny`: conv 3->4 3x3 pad 1, BN, ReLU, global
/// average pool, fc 4->3.
fn tiny() -> Box<dyn Network> {
    let mut g = Graph::new();
    let x = g.input("input", &[Some(3), Some(8), Some(8)]);
    let y = g
        .apply(Conv2D::new(4, 3).padding_explicit(1).named("conv"), &[x])
        .unwrap();
    let y = g
        .apply(BatchNormalization::new().epsilon(1e-5).named("bn"), &[y])
        .unwrap();
    let y = g
        .apply(ActivationLayer::new(Activation::Relu).named("relu"), &[y])
        .unwrap();
    let y = g
        .apply(GlobalAveragePooling2D::new().named("pool"), &[y])
        .unwrap();
    let y = g.apply(Dense::new(3).named("fc"), &[y]).unwrap();
    Box::new(g.build("tiny", &[x], &[y]).unwrap())
}

#[test]
fn checkpoint_loads_into_a_twin_net_and_gives_pytorchs_output() {
    let net = tiny();
    let w = torch::read(&fixture("torch_checkpoint_zip.pt")).unwrap();
    // The checkpoint also holds optimizer momentum buffers: only `state_dict.` counts.
    load_into(net.as_ref(), &w, &Naming::torch()).unwrap();
    let want = load_safetensors(&fixture("torch_expected.safetensors")).unwrap();
    let x = want.get("tiny/input").unwrap().clone();
    let y = want.get("tiny/output").unwrap().to_vec::<f32>().unwrap();
    let out = net.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_eq!(out[0].shape(), &[2, 3]);
    let got = out[0].to_vec::<f32>().unwrap();
    let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&y).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * scale,
            "output[{i}]: ours {g}, PyTorch {w}"
        );
    }
    // The same file with the prefix given, and with a rename rule doing the prefix's job.
    let explicit = Naming {
        prefix: Some("state_dict.".into()),
        ..Naming::torch()
    };
    load_into(tiny().as_ref(), &w, &explicit).unwrap();
    let by_rule = Naming {
        prefix: Some(String::new()),
        remap: KeyRemapper::new().rule("state_dict.*", "$1").unwrap(),
        ..Naming::torch()
    };
    let e = load_into(tiny().as_ref(), &w, &by_rule)
        .unwrap_err()
        .to_string();
    // ... which leaves the optimizer's tensors as extras.
    assert!(
        e.contains("extra: tensor 'optimizer.state.0.momentum_buffer'"),
        "{e}"
    );
}

#[test]
fn extra_tensors_are_errors_and_nothing_is_assigned() {
    let net = tiny();
    let before = net.get_weights().unwrap();
    let w = torch::read(&fixture("torch_state_zip.pt")).unwrap();
    let e = load_into(net.as_ref(), &w, &Naming::torch()).unwrap_err();
    assert!(matches!(e, Error::Mapping { .. }));
    let msg = e.to_string();
    for extra in ["'half' (shape [2, 3])", "'view_t' (shape [4, 3])", "'bool'"] {
        assert!(msg.contains(&format!("extra: tensor {extra}")), "{msg}");
    }
    assert!(!msg.contains("num_batches_tracked"), "{msg}");
    assert!(msg.contains("torch_state_zip.pt"), "{msg}");
    let after = net.get_weights().unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.to_vec::<f32>().unwrap(), a.to_vec::<f32>().unwrap());
    }
}

/// torchvision's resnet18 keys and shapes, each tensor filled with `1000 * k + (j % 1000)`
/// (`k`: the key's index, `j`: the element's).
fn torchvision_resnet18() -> ImportedWeights {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("resnet18_torchvision_keys.json")).unwrap(),
    )
    .unwrap();
    let mut tensors = Vec::new();
    for (k, entry) in json["keys"].as_array().unwrap().iter().enumerate() {
        let name = entry[0].as_str().unwrap().to_string();
        let shape: Vec<usize> = entry[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: usize = shape.iter().product();
        let t = if name.ends_with("num_batches_tracked") {
            Tensor::from_vec(vec![0i64; n], &shape).unwrap()
        } else {
            let v: Vec<f32> = (0..n).map(|j| (1000 * k + j % 1000) as f32).collect();
            Tensor::from_vec(v, &shape).unwrap()
        };
        tensors.push((name, t));
    }
    ImportedWeights {
        path: PathBuf::from("resnet18_torchvision.pth"),
        format: SourceFormat::TorchZip,
        tensors,
    }
}

#[test]
fn zoo_resnet18_takes_every_torchvision_key() {
    let net = resnet::resnet18(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    let src = torchvision_resnet18();
    load_into(net.as_ref(), &src, &Naming::torch()).unwrap();
    // Every weight holds the values of the torchvision key of the same meaning.
    let tag = |key: &str| src.tensors.iter().position(|(n, _)| n == key).unwrap() as f32 * 1000.0;
    let named = net.named_weights();
    for (name, torch_key) in [
        ("conv1/kernel", "conv1.weight"),
        ("bn1/gamma", "bn1.weight"),
        ("bn1/beta", "bn1.bias"),
        ("bn1/moving_mean", "bn1.running_mean"),
        ("bn1/moving_variance", "bn1.running_var"),
        (
            "layer2/0/downsample/0/kernel",
            "layer2.0.downsample.0.weight",
        ),
        (
            "layer2/0/downsample/1/moving_variance",
            "layer2.0.downsample.1.running_var",
        ),
        ("layer4/1/conv2/kernel", "layer4.1.conv2.weight"),
        ("fc/bias", "fc.bias"),
    ] {
        let p = &named.iter().find(|(n, _)| n == name).unwrap().1;
        let want = src.get(torch_key).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(p.to_vec().unwrap(), want, "{name} <- {torch_key}");
        assert_eq!(p.to_vec().unwrap()[0], tag(torch_key));
    }
    // fc.weight [10, 512] is transposed into the Dense kernel [512, 10].
    let fc = &named.iter().find(|(n, _)| n == "fc/kernel").unwrap().1;
    assert_eq!(fc.shape(), vec![512, 10]);
    let k = fc.to_vec().unwrap();
    let w = src.get("fc.weight").unwrap().to_vec::<f32>().unwrap();
    for i in 0..512 {
        for o in 0..10 {
            assert_eq!(k[i * 10 + o], w[o * 512 + i]);
        }
    }
}

#[test]
fn missing_and_misshaped_tensors_are_named_with_both_shapes() {
    let net = resnet::resnet18(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    let before = net.get_weights().unwrap();
    let mut src = torchvision_resnet18();
    src.tensors.retain(|(n, _)| n != "layer4.1.bn2.running_var");
    for (n, t) in src.tensors.iter_mut() {
        if n == "fc.weight" {
            *t = Tensor::zeros(&[10, 256]);
        }
        if n == "conv1.weight" {
            *t = Tensor::zeros(&[64, 3, 3, 3]);
        }
    }
    src.tensors
        .push(("extra.weight".into(), Tensor::zeros(&[2])));
    let msg = load_into(net.as_ref(), &src, &Naming::torch())
        .unwrap_err()
        .to_string();
    println!("{msg}");
    for part in [
        "missing: no tensor 'layer4.1.bn2.running_var' for the network's weight \
         'layer4/1/bn2/moving_variance' (shape [512])",
        "mis-shaped: tensor 'fc.weight' has shape [10, 256] ([256, 10] in ferrovision's layout), \
         the network's weight 'fc/kernel' has shape [512, 10]",
        "mis-shaped: tensor 'conv1.weight' has shape [64, 3, 3, 3], the network's weight \
         'conv1/kernel' has shape [64, 3, 7, 7]",
        "extra: tensor 'extra.weight' (shape [2])",
        "4 problem(s)",
    ] {
        assert!(msg.contains(part), "{part}\nnot in: {msg}");
    }
    let after = net.get_weights().unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.to_vec::<f32>().unwrap(), a.to_vec::<f32>().unwrap());
    }
}

#[test]
fn dataparallel_prefix_is_found_and_renames_apply() {
    let net = resnet::resnet18(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    let mut src = torchvision_resnet18();
    for (n, _) in src.tensors.iter_mut() {
        *n = format!("module.{}", n.replace("fc.", "classifier."));
    }
    let naming = Naming {
        remap: KeyRemapper::new().rule("classifier.*", "fc.$1").unwrap(),
        ..Naming::torch()
    };
    load_into(net.as_ref(), &src, &naming).unwrap();
    // Without the rule, the classifier is both missing and extra.
    let msg = load_into(net.as_ref(), &src, &Naming::torch())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing: no tensor 'module.fc.weight'"),
        "{msg}"
    );
    assert!(
        msg.contains("extra: tensor 'module.classifier.weight'"),
        "{msg}"
    );
}
