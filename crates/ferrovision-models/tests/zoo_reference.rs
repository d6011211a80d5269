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
    formula_fill(vgg16.as_ref());
    let fcn = build("vgg16_fcn", &opts).unwrap();
    vgg::fcn_from_vgg(vgg16.as_ref(), fcn.as_ref()).unwrap();
    let x = formula_input(&[1, 3, 224, 224]);
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
