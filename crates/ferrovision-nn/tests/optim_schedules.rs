//! Learning-rate schedules against Keras 3 schedule objects (and PyTorch `StepLR` for step
//! decay): fixtures from `reference/make_nn_optim_fixtures.py`.

use ferrovision_nn::optim::{LearningRateSchedule as S, Optimizer, Sgd};
use serde_json::{json, Value};
use std::path::PathBuf;

fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/nn_optim_schedules.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn schedules_match_keras() {
    let fx = fixture();
    let steps: Vec<u64> = fx["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 14);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // Keras' serialised form (with "module", "registered_name", "name") parses.
        let sched = S::from_json(&case["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = S::from_json(&sched.to_json()).unwrap();
        assert_eq!(again, sched, "{name}: JSON round trip");
        for (i, &step) in steps.iter().enumerate() {
            let want = case["values"][i].as_f64().unwrap();
            let got = sched.value(step);
            // Both sides compute in float64.
            assert!(
                (got - want).abs() <= 1e-10 * want.abs() + 1e-15,
                "{name} at step {step}: got {got}, want {want}"
            );
        }
    }
}

#[test]
fn builders_equal_parsed_schedules() {
    let fx = fixture();
    let find = |n: &str| {
        let c = fx["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap();
        S::from_json(&c["config"]).unwrap()
    };
    assert_eq!(find("step_decay"), S::step_decay(0.1, 30, 0.3));
    assert_eq!(
        find("exponential_staircase"),
        S::exponential_decay(0.1, 10.0, 0.5, true)
    );
    assert_eq!(
        find("piecewise"),
        S::piecewise_constant(vec![10.0, 50.0, 100.0], vec![1.0, 0.5, 0.1, 0.01])
    );
    assert_eq!(find("cosine_alpha"), S::cosine_decay(0.1, 100.0, 0.05));
    assert_eq!(
        find("cosine_warmup"),
        S::cosine_decay_with_warmup(0.0, 90.0, 0.1, 0.2, 10.0)
    );
    assert_eq!(find("burn_in_constant"), S::linear_burn_in(10, 4.0, 0.1));
    assert_eq!(
        find("burn_in_exponential"),
        S::linear_burn_in(20, 2.0, S::exponential_decay(0.1, 10.0, 0.5, true))
    );
}

#[test]
fn optimizer_uses_schedule_at_its_step_and_set_learning_rate_replaces_it() {
    use ferrovision_nn::tensor::Tensor;
    use ferrovision_nn::Param;
    let sched = S::step_decay(0.1, 2, 0.5);
    let mut opt = Sgd::new().lr(sched.clone());
    let p = Param::new("w", Tensor::from_vec(vec![1.0f32], &[1]).unwrap(), true);
    let ps = vec![("w".to_string(), p.clone())];
    let mut w = 1.0f64;
    for step in 0..5u64 {
        assert_eq!(opt.learning_rate(), sched.value(step));
        p.value()
            .set_grad(Some(Tensor::from_vec(vec![1.0f32], &[1]).unwrap()))
            .unwrap();
        opt.step(&ps).unwrap();
        w -= sched.value(step);
        assert!((p.to_vec().unwrap()[0] as f64 - w).abs() < 1e-6);
    }
    opt.set_learning_rate(0.01);
    assert_eq!(opt.learning_rate(), 0.01);
    assert_eq!(opt.config()["config"]["learning_rate"], json!(0.01));
}

#[test]
fn bad_schedules_are_clear_errors() {
    for (cfg, needle) in [
        (
            json!({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_rate": 0.5}}),
            "missing 'decay_steps'",
        ),
        (
            json!({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5}}),
            "'decay_steps' must be > 0",
        ),
        (
            json!({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [1, 2], "values": [1.0, 0.5]}}),
            "one more value than boundaries",
        ),
        (
            json!({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [5, 2], "values": [1.0, 0.5, 0.1]}}),
            "must increase",
        ),
        (
            json!({"class_name": "StepDecay", "config": {"initial_learning_rate": 0.1, "step_size": 2.5}}),
            "'step_size' must be a non-negative integer",
        ),
        (
            json!({"class_name": "CosineDecay", "config": {"initial_learning_rate": "big", "decay_steps": 10}}),
            "'initial_learning_rate' must be a number",
        ),
        (
            json!({"class_name": "LinearBurnIn", "config": {"burn_in": 10}}),
            "missing 'schedule'",
        ),
        (
            json!({"class_name": "Warmup", "config": {}}),
            "unknown learning-rate schedule 'Warmup'",
        ),
        (
            json!("fast"),
            "learning rate must be a number or a schedule",
        ),
    ] {
        let err = S::from_json(&cfg).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{cfg}: error '{err}' lacks '{needle}'"
        );
    }
}

/// One schedule of every class, with the JSON today's format writes for it (written by hand:
/// saved models and checkpoints hold exactly this).
fn every_schedule_with_its_json() -> Vec<(S, Value)> {
    vec![
        (S::Constant(0.01), json!(0.01)),
        (
            S::step_decay(0.1, 30, 0.3),
            json!({"class_name": "StepDecay", "config":
                {"initial_learning_rate": 0.1, "step_size": 30, "gamma": 0.3}}),
        ),
        (
            S::exponential_decay(0.1, 10.0, 0.5, true),
            json!({"class_name": "ExponentialDecay", "config":
                {"initial_learning_rate": 0.1, "decay_steps": 10.0, "decay_rate": 0.5, "staircase": true}}),
        ),
        (
            S::piecewise_constant(vec![10.0, 50.0], vec![1.0, 0.5, 0.1]),
            json!({"class_name": "PiecewiseConstantDecay", "config":
                {"boundaries": [10.0, 50.0], "values": [1.0, 0.5, 0.1]}}),
        ),
        (
            S::cosine_decay(0.1, 100.0, 0.05),
            json!({"class_name": "CosineDecay", "config":
                {"initial_learning_rate": 0.1, "decay_steps": 100.0, "alpha": 0.05,
                 "warmup_target": null, "warmup_steps": 0.0}}),
        ),
        (
            S::cosine_decay_with_warmup(0.0, 90.0, 0.1, 0.2, 10.0),
            json!({"class_name": "CosineDecay", "config":
                {"initial_learning_rate": 0.0, "decay_steps": 90.0, "alpha": 0.1,
                 "warmup_target": 0.2, "warmup_steps": 10.0}}),
        ),
        (
            S::PolynomialDecay {
                initial_learning_rate: 0.1,
                decay_steps: 50.0,
                end_learning_rate: 0.001,
                power: 2.0,
                cycle: true,
            },
            json!({"class_name": "PolynomialDecay", "config":
                {"initial_learning_rate": 0.1, "decay_steps": 50.0, "end_learning_rate": 0.001,
                 "power": 2.0, "cycle": true}}),
        ),
        (
            S::InverseTimeDecay {
                initial_learning_rate: 0.1,
                decay_steps: 5.0,
                decay_rate: 0.5,
                staircase: false,
            },
            json!({"class_name": "InverseTimeDecay", "config":
                {"initial_learning_rate": 0.1, "decay_steps": 5.0, "decay_rate": 0.5, "staircase": false}}),
        ),
        (
            S::linear_burn_in(10, 4.0, 0.1),
            json!({"class_name": "LinearBurnIn", "config":
                {"burn_in": 10, "power": 4.0, "schedule": 0.1}}),
        ),
        (
            S::linear_burn_in(20, 2.0, S::exponential_decay(0.1, 10.0, 0.5, true)),
            json!({"class_name": "LinearBurnIn", "config": {"burn_in": 20, "power": 2.0, "schedule":
                {"class_name": "ExponentialDecay", "config":
                    {"initial_learning_rate": 0.1, "decay_steps": 10.0, "decay_rate": 0.5, "staircase": true}}}}),
        ),
    ]
}

#[test]
fn every_schedule_round_trips_in_the_saved_json_format() {
    for (sched, saved) in every_schedule_with_its_json() {
        // Written exactly as before, so files written by either version read the same.
        assert_eq!(sched.to_json(), saved, "{sched:?} writes its saved form");
        assert_eq!(S::from_json(&saved).unwrap(), sched, "{saved} loads");
        assert_eq!(S::from_json(&sched.to_json()).unwrap(), sched);
        // Through serde (how optimizer configs embed it) too.
        let text = serde_json::to_string(&sched).unwrap();
        assert_eq!(serde_json::from_str::<S>(&text).unwrap(), sched, "{text}");
    }
}

#[test]
fn saved_schedules_with_defaults_nulls_and_extra_keys_load() {
    // Absent keys and `null` take Keras' defaults; Keras' extra keys are ignored.
    let cases = [
        (
            json!({"class_name": "StepDecay", "config": {"initial_learning_rate": 0.1, "step_size": 30.0}}),
            S::step_decay(0.1, 30, 0.1),
        ),
        (
            json!({"module": "keras.optimizers.schedules", "class_name": "PolynomialDecay",
                   "registered_name": null, "config": {"initial_learning_rate": 0.1,
                   "decay_steps": 50, "power": null, "name": "PolynomialDecay"}}),
            S::PolynomialDecay {
                initial_learning_rate: 0.1,
                decay_steps: 50.0,
                end_learning_rate: 0.0001,
                power: 1.0,
                cycle: false,
            },
        ),
        (
            json!({"class_name": "LinearBurnIn", "config": {"burn_in": 5, "schedule":
                {"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 100}}}}),
            S::linear_burn_in(5, 4.0, S::cosine_decay(0.1, 100.0, 0.0)),
        ),
        (
            json!({"class_name": "Constant", "config": {"learning_rate": 0.5}}),
            S::Constant(0.5),
        ),
    ];
    for (saved, want) in cases {
        assert_eq!(S::from_json(&saved).unwrap(), want, "{saved}");
    }
}

#[test]
fn schedule_errors_name_the_class_and_key() {
    for (cfg, want) in [
        (
            json!({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_rate": 0.5}}),
            "learning-rate schedule 'ExponentialDecay': missing 'decay_steps' (a number)",
        ),
        (
            json!({"class_name": "StepDecay", "config": {"initial_learning_rate": 0.1}}),
            "learning-rate schedule 'StepDecay': missing 'step_size' (a non-negative integer)",
        ),
        (
            json!({"class_name": "Nope", "config": {}}),
            "unknown learning-rate schedule 'Nope' (known: Constant, StepDecay, ExponentialDecay, \
             PiecewiseConstantDecay, CosineDecay, PolynomialDecay, InverseTimeDecay, LinearBurnIn)",
        ),
        (
            json!({"class_name": "ExponentialDecay", "config":
                {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": "yes"}}),
            "learning-rate schedule 'ExponentialDecay': 'staircase' must be true or false, got \"yes\"",
        ),
        (
            json!({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [1, "x"], "values": [1, 2, 3]}}),
            "learning-rate schedule 'PiecewiseConstantDecay': 'boundaries' must be a list of numbers, got [1,\"x\"]",
        ),
        (
            json!({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "warmup_target": "hi"}}),
            "learning-rate schedule 'CosineDecay': 'warmup_target' must be a number or null, got \"hi\"",
        ),
        (
            json!({"class_name": "StepDecay", "config": 3}),
            "learning-rate schedule 'StepDecay': 'config' must be an object, got 3",
        ),
    ] {
        let err = S::from_json(&cfg).unwrap_err().to_string();
        assert_eq!(err, want, "{cfg}");
    }
    // A bad nested schedule names both levels.
    let err = S::from_json(&json!({"class_name": "LinearBurnIn", "config": {"burn_in": 3,
        "schedule": {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_rate": 0.5}}}}))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("learning-rate schedule 'LinearBurnIn': 'schedule'")
            && err.contains("learning-rate schedule 'ExponentialDecay': missing 'decay_steps'"),
        "{err}"
    );
    // Through serde (an optimizer config) the same text comes out.
    let err = serde_json::from_value::<S>(json!({"class_name": "Nope"}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown learning-rate schedule 'Nope' (known: "),
        "{err}"
    );
}
