//! Streaming metrics against Keras 3 (`update_state` then `result()` after each of several
//! batches, with and without sample weights), at rtol 1e-5 / atol 1e-6. Fixtures:
//! `reference/fixtures/nn_metrics.json` from `reference/make_nn_losses_fixtures.py`. Each
//! case also checks the metric's name, that `fresh()` restarts from scratch and that `reset()`
//! forgets everything.

#[path = "losses_support/mod.rs"]
mod losses_support;

use ferrovision_nn::metrics::metric_from_config;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Metric;
use losses_support::{close, fixture, tensor};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

fn feed(m: &mut dyn Metric, batch: &serde_json::Value) -> ferrovision_nn::Result<()> {
    let y_pred = tensor(&batch["y_pred"]).unwrap();
    // `Mean` cases have no targets (the values are y_pred).
    let y_true = tensor(&batch["y_true"]).unwrap_or_else(|| Tensor::zeros(y_pred.shape()));
    let sw = tensor(&batch["sample_weight"]);
    m.update(&y_true, &y_pred, sw.as_ref())
}

#[test]
fn metrics_match_keras() {
    let fx = fixture("nn_metrics.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let cfg = &case["metric"];
        let mut m = metric_from_config(cfg).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            m.name(),
            cfg["config"]["name"].as_str().unwrap(),
            "{id}: name"
        );
        let want: Vec<f64> = case["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let batches = case["batches"].as_array().unwrap();
        for (b, (batch, want)) in batches.iter().zip(&want).enumerate() {
            if let Err(e) = feed(m.as_mut(), batch) {
                failures.push(format!("{id} batch {b}: error {e}"));
                break;
            }
            let got = m.result();
            if !close(got, *want, RTOL, ATOL) {
                failures.push(format!("{id} after batch {b}: {got} vs keras {want}"));
            }
        }
        // A fresh copy fed only the last batch equals a reset metric fed the same batch.
        let last = batches.last().unwrap();
        let mut fresh = m.fresh();
        feed(fresh.as_mut(), last).unwrap();
        m.reset();
        feed(m.as_mut(), last).unwrap();
        assert_eq!(
            fresh.result().to_bits(),
            m.result().to_bits(),
            "{id}: fresh vs reset"
        );
        if batches.len() > 1 {
            // Only the single batch counts after reset (differs from the streamed result).
            let mut again = metric_from_config(cfg).unwrap();
            feed(again.as_mut(), last).unwrap();
            assert_eq!(
                again.result().to_bits(),
                m.result().to_bits(),
                "{id}: reset"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
