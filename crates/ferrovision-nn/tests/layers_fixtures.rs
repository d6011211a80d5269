//! Every built-in layer against Keras 3 (TensorFlow backend, float64): the fixtures in
//! `reference/fixtures/nn_layers.json` come from `reference/make_nn_layers_fixtures.py`, which
//! runs the real Keras layer on the same inputs and weights (converted to Keras' channels-last
//! layouts and back).
//!
//! For each case the layer is rebuilt from the stored config with `layer_from_config`, built
//! for the input shapes with an unknown batch size, given the stored weights and called. The
//! test checks the output values (rtol 1e-4 plus an atol of 1e-5 scaled by the reference's
//! magnitude), that `output_shape` predicts the real shape (both for the symbolic and the
//! concrete input shapes), the weights after the call (batch-norm moving statistics), the
//! activity-regularization loss, and that `config()` round-trips.

use ferrovision_nn::layer::{shape_of, CallCtx, Shape};
use ferrovision_nn::layers::layer_from_config;
use ferrovision_nn::tensor::Tensor;
use serde_json::Value;
use std::path::PathBuf;

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference/fixtures/nn_layers.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, &shape).unwrap()
}

/// `None` on success, else a description of the worst element.
fn compare(got: &[f32], want: &[f32]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, expected {}", got.len(), want.len()));
    }
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * scale + 1e-4 * w.abs();
        if (g - w).abs() > tol || g.is_nan() {
            return Some(format!(
                "element {i}: got {g}, expected {w} (tol {tol:.2e})"
            ));
        }
    }
    None
}

fn run_case(c: &Value) -> Result<(), String> {
    let class = c["class"].as_str().unwrap();
    let cfg = &c["config"];
    let mut layer = layer_from_config(class, cfg).map_err(|e| format!("from_config: {e}"))?;
    let inputs: Vec<Tensor> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
    // Unknown batch size, like a model input.
    let symbolic: Vec<Shape> = inputs
        .iter()
        .map(|x| {
            let mut s = shape_of(x);
            s[0] = None;
            s
        })
        .collect();
    layer.build(&symbolic).map_err(|e| format!("build: {e}"))?;
    let weights = c["weights"].as_object().unwrap();
    let params = layer.weights();
    if params.len() != weights.len() {
        return Err(format!(
            "layer has weights {:?}, fixture has {:?}",
            params
                .iter()
                .map(|p| p.name().to_string())
                .collect::<Vec<_>>(),
            weights.keys().collect::<Vec<_>>()
        ));
    }
    for p in &params {
        let w = weights
            .get(p.name())
            .ok_or_else(|| format!("fixture has no weight '{}'", p.name()))?;
        let t = tensor(w);
        if t.shape() != p.shape().as_slice() {
            return Err(format!(
                "weight '{}' has shape {:?}, fixture {:?}",
                p.name(),
                p.shape(),
                t.shape()
            ));
        }
        p.assign(&t.to_vec::<f32>().unwrap()).unwrap();
    }
    let training = c["training"].as_bool().unwrap();
    let mut ctx = CallCtx::new(training);
    let y = layer
        .call(&inputs, &mut ctx)
        .map_err(|e| format!("call: {e}"))?;
    let want = tensor(&c["output"]);
    if y.shape() != want.shape() {
        return Err(format!(
            "output shape {:?}, expected {:?}",
            y.shape(),
            want.shape()
        ));
    }
    if let Some(msg) = compare(&y.to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap()) {
        return Err(format!("output: {msg}"));
    }
    // output_shape: exact for concrete inputs, compatible (None = any) for symbolic ones.
    let concrete: Vec<Shape> = inputs.iter().map(shape_of).collect();
    let exact = layer
        .output_shape(&concrete)
        .map_err(|e| format!("output_shape: {e}"))?;
    if exact != shape_of(&y) {
        return Err(format!("output_shape {exact:?} != real {:?}", y.shape()));
    }
    let sym = layer
        .output_shape(&symbolic)
        .map_err(|e| format!("output_shape: {e}"))?;
    let compatible = sym.len() == y.rank()
        && sym[0].is_none()
        && sym
            .iter()
            .zip(y.shape())
            .all(|(s, &d)| s.is_none_or(|s| s == d));
    if !compatible {
        return Err(format!(
            "symbolic output_shape {sym:?} does not fit the real {:?} (batch must be None)",
            y.shape()
        ));
    }
    if let Some(after) = c.get("weights_after").and_then(|v| v.as_object()) {
        for (name, v) in after {
            let p = params
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| format!("no weight '{name}'"))?;
            if let Some(msg) = compare(&p.to_vec().unwrap(), &tensor(v).to_vec::<f32>().unwrap()) {
                return Err(format!("weight '{name}' after the call: {msg}"));
            }
        }
    }
    if let Some(want) = c.get("activity_loss").and_then(|v| v.as_f64()) {
        let losses = ctx.losses();
        if losses.len() != 1 {
            return Err(format!("expected 1 activity loss, got {}", losses.len()));
        }
        let got = losses[0].item().unwrap();
        if (got - want).abs() > 1e-4 * want.abs() + 1e-6 {
            return Err(format!("activity loss {got}, expected {want}"));
        }
    } else if !ctx.losses().is_empty() {
        return Err("unexpected extra losses".into());
    }
    // config() round-trips through from_config.
    let cfg1 = layer.config();
    let again = layer_from_config(class, &cfg1).map_err(|e| format!("round trip: {e}"))?;
    if again.config() != cfg1 {
        return Err(format!(
            "config does not round-trip:\n{cfg1}\n{}",
            again.config()
        ));
    }
    Ok(())
}

#[test]
fn keras_layer_fixtures() {
    let doc = fixture();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "fixture has only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for c in cases {
        classes.insert(c["class"].as_str().unwrap().to_string());
        if let Err(msg) = run_case(c) {
            failures.push(format!("{}: {msg}", c["name"].as_str().unwrap()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!(
        "{} cases over {} classes passed",
        cases.len(),
        classes.len()
    );
}

/// Regularizer penalties against Keras' `L1L2(l1, l2)(w)`.
#[test]
fn keras_regularizer_penalties() {
    let doc = fixture();
    let r = &doc["regularizers"];
    let w = tensor(&r["w"]);
    for c in r["cases"].as_array().unwrap() {
        let (l1, l2) = (c["l1"].as_f64().unwrap(), c["l2"].as_f64().unwrap());
        let want = c["penalty"].as_f64().unwrap();
        let got = ferrovision_nn::Regularizer::l1_l2(l1 as f32, l2 as f32)
            .penalty(&w)
            .unwrap()
            .item()
            .unwrap();
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "l1={l1} l2={l2}: penalty {got}, Keras {want}"
        );
    }
}
