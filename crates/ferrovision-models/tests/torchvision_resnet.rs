//! The zoo's ResNet against torchvision: `reference/make_resnet_fixtures.py` (torch 2.15.0,
//! torchvision 0.29.2) saved a seeded torchvision `resnet18` truncated after `layer2[0]` (stem,
//! `layer1`, the stride-2 block with its downsample projection), with randomised batch-norm
//! statistics, its input and its eval-mode output. This test builds the same prefix from the
//! zoo's [`resnet::stem`] and [`resnet::basic_block`], loads every weight by the PyTorch key
//! [`to_torch_name`] gives its name (through [`from_torch`]), and requires torchvision's output:
//! names, layouts and padding (7x7/2 pad 3, 3x3/2 max pool pad 1, 3x3 pad 1, 1x1 pad 0 on the
//! even sizes 32 -> 16 -> 8 -> 4, where TensorFlow `same` would differ) must all be right.

use ferrovision_io::safetensors::{load_safetensors, SafetensorsFile};
use ferrovision_models::{resnet, ModelOptions};
use ferrovision_nn::layout::{from_torch, to_torch_name};
use ferrovision_nn::{CallCtx, Graph, Network, NetworkExt};
use std::collections::HashSet;
use std::path::PathBuf;

fn fixture() -> SafetensorsFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/models/resnet18_prefix.safetensors");
    load_safetensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies every weight of `net` from the fixture tensor named by its PyTorch key; returns the
/// keys used.
fn load_torch_weights(net: &dyn Network, file: &SafetensorsFile) -> HashSet<String> {
    let mut used = HashSet::new();
    for (name, p) in net.named_weights() {
        let key = to_torch_name(&name);
        let t = file
            .get(&key)
            .unwrap_or_else(|| panic!("fixture has no '{key}' for weight '{name}'"));
        let (layer, weight) = name.rsplit_once('/').unwrap();
        let class = net.get_layer(layer).unwrap().class_name();
        let t = from_torch(class, weight, t).unwrap();
        assert_eq!(t.shape(), p.shape().as_slice(), "shape of {name} ({key})");
        p.assign(&t.to_vec::<f32>().unwrap()).unwrap();
        used.insert(key);
    }
    used
}

#[test]
fn resnet18_prefix_matches_torchvision() {
    let file = fixture();
    let x = file.get("input").unwrap().clone();
    let want = file.get("output").unwrap().to_vec::<f32>().unwrap();

    let mut g = Graph::new();
    let input = g.input("input", &[Some(3), Some(32), Some(32)]);
    let mut y = resnet::stem(&mut g, input).unwrap();
    y = resnet::basic_block(&mut g, y, "layer1/0", 64, 1).unwrap();
    y = resnet::basic_block(&mut g, y, "layer1/1", 64, 1).unwrap();
    y = resnet::basic_block(&mut g, y, "layer2/0", 128, 2).unwrap();
    let net = g.build("resnet18_prefix", &[input], &[y]).unwrap();

    let used = load_torch_weights(&net, &file);
    // Every torch tensor was consumed: no weight of torchvision's prefix is missing from ours.
    let torch_keys: HashSet<String> = file
        .tensors
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "input" && n != "output")
        .collect();
    assert_eq!(used, torch_keys);

    let out = net.forward(&[x], &mut CallCtx::new(false)).unwrap();
    assert_eq!(out[0].shape(), &[2, 128, 4, 4]);
    let got = out[0].to_vec::<f32>().unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "output[{i}]: ours {g}, torchvision {w} (max |ref| {scale})"
        );
    }
}

#[test]
fn full_resnet18_takes_the_torchvision_names_of_the_prefix() {
    // The whole zoo ResNet-18 uses the same names: every fixture key is one of its weights'
    // PyTorch keys, with the same shape.
    let file = fixture();
    let net = resnet::resnet18(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
    let ours: Vec<(String, Vec<usize>)> = net
        .named_weights()
        .iter()
        .map(|(n, p)| (to_torch_name(n), p.shape()))
        .collect();
    for (key, t) in &file.tensors {
        if key == "input" || key == "output" {
            continue;
        }
        let found = ours.iter().find(|(k, _)| k == key);
        assert_eq!(
            found.map(|(_, s)| s.as_slice()),
            Some(t.shape()),
            "torchvision key {key}"
        );
    }
}
