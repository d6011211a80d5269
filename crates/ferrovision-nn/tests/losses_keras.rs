//! Every loss and option against Keras 3 (TensorFlow backend, float64): the loss value and its
//! gradient with respect to `y_pred` (`tf.GradientTape`), at rtol 1e-5 / atol 1e-6. Fixtures:
//! `reference/fixtures/nn_losses.json` from `reference/make_nn_losses_fixtures.py`. Each case
//! also checks that the loss' `config()` is the fixture's config and that it round-trips.

mod losses_support;

use ferrovision_nn::losses::loss_from_config;
use losses_support::{close, fixture, tensor, values};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

#[test]
fn losses_match_keras() {
    let fx = fixture("nn_losses.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let loss = loss_from_config(&case["loss"]).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            loss.config(),
            case["loss"],
            "{id}: config differs from the fixture's"
        );
        let again = loss_from_config(&loss.config()).unwrap();
        assert_eq!(again.config(), loss.config(), "{id}: config round trip");
        let y_true = tensor(&case["y_true"]).unwrap();
        let y_pred = tensor(&case["y_pred"]).unwrap().requires_grad_(true);
        let sw = tensor(&case["sample_weight"]);
        let l = match loss.call(&y_true, &y_pred, sw.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{id}: error {e}"));
                continue;
            }
        };
        assert_eq!(l.shape(), &[] as &[usize], "{id}: loss must be a scalar");
        let want = case["value"].as_f64().unwrap();
        let got = l.item().unwrap();
        if !close(got, want, RTOL, ATOL) {
            failures.push(format!("{id}: value {got} vs keras {want}"));
        }
        l.backward().unwrap();
        let g = y_pred.grad().map(|g| g.to_f64_vec().unwrap());
        let gw = values(&case["grad"]);
        let g = g.unwrap_or_else(|| vec![0.0; gw.len()]);
        assert_eq!(g.len(), gw.len(), "{id}: gradient size");
        let worst = g
            .iter()
            .zip(&gw)
            .enumerate()
            .find(|(_, (a, b))| !close(**a, **b, RTOL, ATOL));
        if let Some((i, (a, b))) = worst {
            failures.push(format!("{id}: grad[{i}] {a} vs keras {b}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
