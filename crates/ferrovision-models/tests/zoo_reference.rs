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
