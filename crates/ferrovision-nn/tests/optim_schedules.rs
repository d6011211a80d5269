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
