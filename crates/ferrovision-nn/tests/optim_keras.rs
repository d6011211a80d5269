//! Optimizers against Keras 3 (TensorFlow backend, float64): fixtures from
//! `reference/make_nn_optim_fixtures.py`. Each case rebuilds the optimizer from Keras' own
//! serialised config, applies the same gradient sequence (the bias has no gradient on one step)
//! and compares the learning rate, the weights after every step and the final slots.

use ferrovision_nn::optim::{optimizer_by_name, optimizer_from_config, Optimizer};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Param;
use serde_json::Value;
use std::path::PathBuf;

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference/fixtures/nn_optim.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

struct Setup {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    w0: Vec<Vec<f32>>,
    /// grads[step][weight]
    grads: Vec<Vec<Option<Vec<f32>>>>,
    rtol: f64,
    atol: f64,
}

fn setup(fx: &Value) -> Setup {
    let names: Vec<String> = fx["weight_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let shapes = fx["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    let w0 = names
        .iter()
        .map(|n| floats(&fx["initial_weights"][n]))
        .collect();
    let grads = fx["grads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            names
                .iter()
                .map(|n| (!step[n].is_null()).then(|| floats(&step[n])))
                .collect()
        })
        .collect();
    Setup {
        names,
        shapes,
        w0,
        grads,
        rtol: fx["rtol"].as_f64().unwrap(),
        atol: fx["atol"].as_f64().unwrap(),
    }
}

fn params(s: &Setup) -> Vec<(String, Param)> {
    s.names
        .iter()
        .zip(&s.shapes)
        .zip(&s.w0)
        .map(|((n, shape), w)| {
            let local = n.rsplit('/').next().unwrap();
            let t = Tensor::from_vec(w.clone(), shape).unwrap();
            (n.clone(), Param::new(local, t, true))
        })
        .collect()
}

fn set_grads(s: &Setup, params: &[(String, Param)], step: usize) {
    for ((_, p), (g, shape)) in params.iter().zip(s.grads[step].iter().zip(&s.shapes)) {
        let g = g
            .as_ref()
            .map(|g| Tensor::from_vec(g.clone(), shape).unwrap());
        p.value().set_grad(g).unwrap();
    }
}

thread_local! {
    /// Largest |got - want| / (atol + rtol |want|) seen, for the report.
    static WORST: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn check_close(what: &str, got: &[f32], want: &[f32], rtol: f64, atol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, want {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let r = (g - w).abs() / (atol + rtol * w.abs());
        WORST.with(|c| c.set(c.get().max(r)));
        // NaN fails too.
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        if !ok {
            return Err(format!(
                "{what}[{i}]: got {g}, want {w} (diff {:e})",
                (g - w).abs()
            ));
        }
    }
    Ok(())
}

/// Runs one fixture case with `opt`; returns the first mismatch.
fn run_case(s: &Setup, case: &Value, opt: &mut dyn Optimizer) -> Result<(), String> {
    let name = case["name"].as_str().unwrap();
    let ps = params(s);
    let lrs = case["learning_rates"].as_array().unwrap();
    for step in 0..s.grads.len() {
        let want_lr = lrs[step].as_f64().unwrap();
        let lr = opt.learning_rate();
        if (lr - want_lr).abs() > 1e-6 * want_lr.abs() + 1e-12 {
            return Err(format!(
                "{name} step {step}: learning rate {lr}, Keras {want_lr}"
            ));
        }
        set_grads(s, &ps, step);
        opt.step(&ps)
            .map_err(|e| format!("{name} step {step}: {e}"))?;
        for (n, p) in &ps {
            let want = floats(&case["weights"][step][n]);
            check_close(
                &format!("{name} step {step} {n}"),
                &p.to_vec().unwrap(),
                &want,
                s.rtol,
                s.atol,
            )?;
        }
    }
    if opt.iterations() != s.grads.len() as u64 {
        return Err(format!("{name}: iterations {}", opt.iterations()));
    }
    let state = opt.state();
    let slots = case["slots"].as_object().unwrap();
    let mut got_names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    let mut want_names: Vec<&str> = slots.keys().map(String::as_str).collect();
    got_names.sort();
    want_names.sort();
    if got_names != want_names {
        return Err(format!("{name}: slots {got_names:?}, Keras {want_names:?}"));
    }
    for (n, t) in &state {
        check_close(
            &format!("{name} slot {n}"),
            &t.to_vec::<f32>().unwrap(),
            &floats(&slots[n]),
            s.rtol,
            s.atol,
        )?;
    }
    Ok(())
}

#[test]
fn optimizers_match_keras() {
    let fx = fixture();
    assert!(fx["keras_version"].as_str().unwrap().starts_with("3."));
    let s = setup(&fx);
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "fixture has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut opt = match optimizer_from_config(&case["config"]) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: from Keras config: {e}"));
                continue;
            }
        };
        if let Err(e) = run_case(&s, case, opt.as_mut()) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} cases: worst error is {:.3} of the tolerance",
        cases.len(),
        WORST.with(|c| c.get())
    );
}

/// Our own config round-trips: rebuild from `config()` and run the case again.
#[test]
fn config_round_trip_reproduces_keras() {
    let fx = fixture();
    let s = setup(&fx);
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let opt = optimizer_from_config(&case["config"]).unwrap();
        let cfg = opt.config();
        let mut again = optimizer_from_config(&cfg)
            .unwrap_or_else(|e| panic!("{name}: rebuilding from {cfg}: {e}"));
        assert_eq!(again.config(), cfg, "{name}");
        run_case(&s, case, again.as_mut()).unwrap();
    }
}

/// `optimizer_by_name` gives Keras' defaults: the `*_default` cases were made with
/// `keras.optimizers.X()`.
#[test]
fn named_optimizers_have_keras_defaults() {
    let fx = fixture();
    let s = setup(&fx);
    let cases = fx["cases"].as_array().unwrap();
    for (case_name, name) in [
        ("sgd_default", "sgd"),
        ("adagrad_default", "adagrad"),
        ("adadelta_default", "adadelta"),
        ("rmsprop_default", "rmsprop"),
        ("adam_default", "adam"),
        ("nadam_default", "nadam"),
        ("adamw_default", "adamw"),
    ] {
        let case = cases
            .iter()
            .find(|c| c["name"] == case_name)
            .unwrap_or_else(|| panic!("no case {case_name}"));
        let mut opt = optimizer_by_name(name, None).unwrap();
        run_case(&s, case, opt.as_mut()).unwrap();
    }
    // The builder equivalents of the option cases.
    use ferrovision_nn::optim::{Adam, LearningRateSchedule, RmsProp, Sgd};
    let by_builder: Vec<(&str, Box<dyn Optimizer>)> = vec![
        (
            "sgd_nesterov",
            Box::new(Sgd::new().lr(0.1).momentum(0.9).nesterov(true)),
        ),
        (
            "rmsprop_centered_momentum",
            Box::new(
                RmsProp::new()
                    .lr(0.01)
                    .momentum(0.5)
                    .centered(true)
                    .epsilon(1e-5),
            ),
        ),
        (
            "adam_cosine_warmup",
            Box::new(
                Adam::new().lr(LearningRateSchedule::cosine_decay_with_warmup(
                    0.01, 4.0, 0.1, 0.1, 2.0,
                )),
            ),
        ),
        (
            "adam_weight_decay",
            Box::new(Adam::new().lr(0.05).weight_decay(0.1)),
        ),
        (
            "sgd_global_clipnorm",
            Box::new(Sgd::new().lr(0.1).global_clipnorm(2.0)),
        ),
    ];
    for (case_name, mut opt) in by_builder {
        let case = cases.iter().find(|c| c["name"] == case_name).unwrap();
        run_case(&s, case, opt.as_mut()).unwrap();
    }
}

/// A wrong formula must fail this harness: perturb the Keras config and expect mismatches.
#[test]
fn harness_detects_a_different_optimizer() {
    let fx = fixture();
    let s = setup(&fx);
    let cases = fx["cases"].as_array().unwrap();
    for (case_name, key, value) in [
        ("adam", "epsilon", 1e-3),
        ("sgd_nesterov", "momentum", 0.8),
        ("adam_clipnorm", "clipnorm", 1.2),
        ("rmsprop_centered", "rho", 0.85),
        ("nadam", "beta_1", 0.9),
    ] {
        let case = cases.iter().find(|c| c["name"] == case_name).unwrap();
        let mut cfg = case["config"].clone();
        cfg["config"][key] = serde_json::json!(value);
        let mut opt = optimizer_from_config(&cfg).unwrap();
        assert!(
            run_case(&s, case, opt.as_mut()).is_err(),
            "{case_name} with {key}={value} still matched"
        );
    }
}
