//! Loss API: clear errors (shape mismatches name the loss and both shapes, out-of-range class
//! indices name the value), config round trips, names and aliases, closure losses.

use ferrovision_nn::losses::{
    loss_by_name, loss_from_config, BinaryCrossentropy, CategoricalCrossentropy, FnLoss, Huber,
    KLDivergence, MeanAbsoluteError, MeanSquaredError, SparseCategoricalCrossentropy,
};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Loss;
use serde_json::json;

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

fn err(r: ferrovision_nn::Result<Tensor>) -> String {
    r.expect_err("expected an error").to_string()
}

fn cfg_err(v: &serde_json::Value) -> String {
    match loss_from_config(v) {
        Ok(_) => panic!("config {v} should be rejected"),
        Err(e) => e.to_string(),
    }
}

fn contains_all(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' should mention '{p}'");
    }
}

#[test]
fn shape_mismatches_name_loss_and_shapes() {
    let a = Tensor::zeros(&[4, 3]);
    let b = Tensor::zeros(&[4, 2]);
    let losses: Vec<Box<dyn Loss>> = vec![
        Box::new(MeanSquaredError::new()),
        Box::new(MeanAbsoluteError::new()),
        Box::new(Huber::default()),
        Box::new(BinaryCrossentropy::new().from_logits(true)),
        Box::new(CategoricalCrossentropy::new()),
        Box::new(KLDivergence::new()),
    ];
    for l in &losses {
        let m = err(l.call(&a, &b, None));
        contains_all(&m, &[&l.name(), "[4, 3]", "[4, 2]"]);
    }
    let scce = SparseCategoricalCrossentropy::new().from_logits(true);
    let m = err(scce.call(&Tensor::zeros(&[5]), &Tensor::zeros(&[4, 3]), None));
    contains_all(
        &m,
        &["sparse_categorical_crossentropy", "[5]", "[4, 3]", "[4]"],
    );
    // Spatial: targets must be [N, H, W] for [N, C, H, W] scores.
    let m = err(scce.call(
        &Tensor::zeros_dtype(&[2, 4, 4], ferrovision_nn::tensor::DType::I64),
        &Tensor::zeros(&[2, 3, 4, 5]),
        None,
    ));
    contains_all(&m, &["[2, 4, 4]", "[2, 3, 4, 5]", "[2, 4, 5]"]);
    // Sample weights with the wrong length.
    let m = err(MeanSquaredError::new().call(&a, &a, Some(&Tensor::ones(&[3]))));
    contains_all(&m, &["mean_squared_error", "sample_weight", "[3]", "[4]"]);
    // Predictions must be f32.
    let ints = Tensor::zeros_dtype(&[4, 3], ferrovision_nn::tensor::DType::I64);
    contains_all(
        &err(MeanSquaredError::new().call(&a, &ints, None)),
        &["f32"],
    );
}

#[test]
fn class_index_errors() {
    let logits = Tensor::zeros(&[3, 5]);
    let scce = SparseCategoricalCrossentropy::new().from_logits(true);
    let m = err(scce.call(
        &Tensor::from_vec(vec![0i64, 7, 1], &[3]).unwrap(),
        &logits,
        None,
    ));
    contains_all(
        &m,
        &[
            "sparse_categorical_crossentropy",
            "element 1",
            "class 7",
            "5 classes",
        ],
    );
    let m = err(scce.call(
        &Tensor::from_vec(vec![0i64, -1, 1], &[3]).unwrap(),
        &logits,
        None,
    ));
    contains_all(&m, &["class -1", "out of range"]);
    // With ignore_class = -1 the same targets are fine, and 255 is still out of range.
    let ig = scce.clone().ignore_class(Some(-1));
    assert!(ig
        .call(
            &Tensor::from_vec(vec![0i64, -1, 1], &[3]).unwrap(),
            &logits,
            None
        )
        .is_ok());
    let m = err(ig.call(
        &Tensor::from_vec(vec![255i64, -1, 1], &[3]).unwrap(),
        &logits,
        None,
    ));
    contains_all(&m, &["class 255", "ignore_class is -1"]);
    // Float targets must be whole numbers.
    let m = err(scce.call(&t(vec![0.0, 1.5, 2.0], &[3]), &logits, None));
    contains_all(&m, &["element 1", "1.5"]);
    // Class weights must have one entry per class.
    let m = err(scce.clone().class_weights(vec![1.0, 2.0]).call(
        &Tensor::from_vec(vec![0i64, 1, 1], &[3]).unwrap(),
        &logits,
        None,
    ));
    contains_all(&m, &["2 class weights", "5 classes"]);
    let m = err(CategoricalCrossentropy::new()
        .class_weights(vec![1.0; 4])
        .call(&logits, &logits, None));
    contains_all(&m, &["4 class weights", "5 classes"]);
}

#[test]
fn bad_hyper_parameters() {
    let a = Tensor::zeros(&[2, 2]);
    contains_all(
        &err(Huber::new(0.0).call(&a, &a, None)),
        &["delta", "positive"],
    );
    contains_all(
        &err(BinaryCrossentropy::new()
            .label_smoothing(1.5)
            .call(&a, &a, None)),
        &["label_smoothing", "1.5"],
    );
    let bad = json!({"class_name": "Huber", "config": {"delta": -1.0}});
    assert!(cfg_err(&bad).contains("delta"));
    let sum = json!({"class_name": "MeanSquaredError", "config": {"reduction": "sum"}});
    assert!(cfg_err(&sum).contains("sum_over_batch_size"));
    let unknown = json!({"class_name": "Hinge", "config": {}});
    assert!(cfg_err(&unknown).contains("Hinge"));
    assert!(loss_from_config(&json!({"config": {}})).is_err());
    assert!(loss_by_name("hinge").is_err());
}

#[test]
fn configs_round_trip() {
    let losses: Vec<Box<dyn Loss>> = vec![
        Box::new(MeanSquaredError::new().named("my_mse")),
        Box::new(MeanAbsoluteError::new()),
        Box::new(Huber::new(0.3)),
        Box::new(
            BinaryCrossentropy::new()
                .from_logits(true)
                .label_smoothing(0.1),
        ),
        Box::new(
            CategoricalCrossentropy::new()
                .label_smoothing(0.05)
                .class_weights(vec![0.1, 2.0]),
        ),
        Box::new(
            SparseCategoricalCrossentropy::new()
                .from_logits(true)
                .ignore_class(Some(255))
                .class_weights(vec![1.0, 0.5])
                .label_smoothing(0.2),
        ),
        Box::new(KLDivergence::new()),
    ];
    for l in &losses {
        let c = l.config();
        let again = loss_from_config(&c).unwrap();
        assert_eq!(again.config(), c);
        assert_eq!(again.name(), l.name());
    }
    // Hyper-parameters are written in their short decimal form.
    assert_eq!(Huber::new(0.3).config()["config"]["delta"], json!(0.3));
    // Restored losses compute the same values.
    let x = Tensor::from_vec(vec![0.3f32, -1.0, 2.0, 0.5], &[2, 2]).unwrap();
    let y = Tensor::from_vec(vec![1i64, 0], &[2]).unwrap();
    let l = SparseCategoricalCrossentropy::new()
        .from_logits(true)
        .label_smoothing(0.2);
    let r = loss_from_config(&l.config()).unwrap();
    assert_eq!(
        l.call(&y, &x, None).unwrap().item().unwrap(),
        r.call(&y, &x, None).unwrap().item().unwrap()
    );
}

#[test]
fn names_and_aliases() {
    for (alias, name) in [
        ("mse", "mean_squared_error"),
        ("mae", "mean_absolute_error"),
        ("huber", "huber_loss"),
        ("bce", "binary_crossentropy"),
        ("categorical_crossentropy", "categorical_crossentropy"),
        ("scce", "sparse_categorical_crossentropy"),
        ("kld", "kl_divergence"),
        ("KLDivergence", "kl_divergence"),
    ] {
        assert_eq!(loss_by_name(alias).unwrap().name(), name, "{alias}");
    }
    // Keras defaults: probabilities, not logits.
    assert_eq!(
        loss_by_name("scce").unwrap().config()["config"]["from_logits"],
        json!(false)
    );
}

#[test]
fn closure_losses() {
    let yt = t(vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0], &[3, 2]);
    let yp = t(vec![1.0, 1.0, 1.0, 3.0, 2.0, 5.0], &[3, 2]);
    let sw = t(vec![1.0, 2.0, 0.5], &[3]);
    // Per-sample values [N]: sum |e| per sample = [2, 2, 3].
    let l1 = FnLoss::new("l1_sum", |t: &Tensor, p: &Tensor| {
        Ok(p.sub(t)?.abs()?.sum(&[1], false)?)
    });
    assert_eq!(l1.name(), "l1_sum");
    let v = l1.call(&yt, &yp, None).unwrap().item().unwrap();
    assert!((v - 7.0 / 3.0).abs() < 1e-6, "{v}");
    // Weighted: (2·1 + 2·2 + 3·0.5) / 3.
    let v = l1.call(&yt, &yp, Some(&sw)).unwrap().item().unwrap();
    assert!((v - 7.5 / 3.0).abs() < 1e-6, "{v}");
    // A scalar result is scaled by the mean weight (Keras broadcasts it over the weights).
    let s = FnLoss::new("scalar", |_t: &Tensor, _p: &Tensor| Ok(Tensor::scalar(3.0)));
    let v = s.call(&yt, &yp, Some(&sw)).unwrap().item().unwrap();
    assert!((v - 3.5).abs() < 1e-6, "{v}");
    // Wrong output shape: clear error.
    let bad = FnLoss::new("bad", |_t: &Tensor, _p: &Tensor| Ok(Tensor::zeros(&[2])));
    contains_all(&err(bad.call(&yt, &yp, None)), &["bad", "[2]", "[3, 2]"]);
    // Closures have no config and cannot be restored.
    assert!(l1.config().is_null());
    let m = cfg_err(&l1.config());
    contains_all(&m, &["closure", "cannot be restored"]);
}

#[test]
fn ignore_everything_gives_zero_loss_and_gradient() {
    let logits = Tensor::from_vec(vec![1.0f32, -2.0, 0.5, 3.0], &[2, 2])
        .unwrap()
        .requires_grad_(true);
    let y = Tensor::from_vec(vec![-1i64, -1], &[2]).unwrap();
    let sw = t(vec![2.0, 3.0], &[2]);
    let l = SparseCategoricalCrossentropy::new()
        .from_logits(true)
        .ignore_class(Some(-1));
    for w in [None, Some(&sw)] {
        let v = l.call(&y, &logits, w).unwrap();
        assert_eq!(v.item().unwrap(), 0.0);
        v.backward().unwrap();
        let g = logits.grad().unwrap().to_vec::<f32>().unwrap();
        assert!(g.iter().all(|&x| x == 0.0), "{g:?}");
        logits.zero_grad();
    }
}
