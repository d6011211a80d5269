//! Metric API: the accuracy chosen for `"accuracy"`, names, configs, closures, errors.

use ferrovision_nn::losses::MeanAbsoluteError;
use ferrovision_nn::metrics::{
    accuracy_for_loss, metric_by_name, metric_from_config, Accuracy, AccuracyKind, Mean,
    MeanMetricWrapper, MeanSquaredError, Precision, Psnr, Recall, TopKCategoricalAccuracy,
};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::Metric;
use serde_json::json;

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

fn labels(v: Vec<i64>) -> Tensor {
    let n = v.len();
    Tensor::from_vec(v, &[n]).unwrap()
}

#[test]
fn accuracy_for_each_loss() {
    // Binary: one probability per sample, threshold 0.5.
    let mut m = accuracy_for_loss("binary_crossentropy");
    assert_eq!(m.name(), "accuracy");
    m.update(
        &t(vec![1.0, 0.0, 1.0], &[3, 1]),
        &t(vec![0.7, 0.6, 0.2], &[3, 1]),
        None,
    )
    .unwrap();
    assert!((m.result() - 1.0 / 3.0).abs() < 1e-12);
    // Sparse: integer labels against scores.
    let scores = t(vec![0.1, 0.8, 0.1, 0.6, 0.3, 0.1], &[2, 3]);
    let mut m = accuracy_for_loss("sparse_categorical_crossentropy");
    m.update(&labels(vec![1, 1]), &scores, None).unwrap();
    assert_eq!(m.result(), 0.5);
    // Categorical: one-hot targets.
    let mut m = accuracy_for_loss("categorical_crossentropy");
    m.update(&t(vec![0., 1., 0., 1., 0., 0.], &[2, 3]), &scores, None)
        .unwrap();
    assert_eq!(m.result(), 1.0);
}

#[test]
fn auto_accuracy_follows_keras_shape_rule() {
    let cases = [
        (
            vec![4, 1],
            vec![4, 1],
            AccuracyKind::Binary { threshold: 0.5 },
        ),
        (vec![4], vec![4, 3], AccuracyKind::Sparse),
        (vec![4, 1], vec![4, 3], AccuracyKind::Sparse),
        (vec![4, 3], vec![4, 3], AccuracyKind::Categorical),
        (vec![2, 5, 5], vec![2, 3, 5, 5], AccuracyKind::Sparse),
    ];
    for (ts, ps, want) in cases {
        let mut a = Accuracy::auto();
        assert_eq!(a.resolved_kind(), None);
        a.update(&Tensor::zeros(&ts), &Tensor::zeros(&ps), None)
            .unwrap();
        assert_eq!(a.resolved_kind(), Some(want), "{ts:?} {ps:?}");
        // A fresh copy decides again.
        let f = a.fresh();
        assert_eq!(f.name(), "accuracy");
    }
    // Unknown losses get the automatic choice.
    let mut m = accuracy_for_loss("mean_squared_error");
    m.update(&labels(vec![2]), &t(vec![0.0, 0.0, 1.0], &[1, 3]), None)
        .unwrap();
    assert_eq!(m.result(), 1.0);
}

#[test]
fn names_match_keras() {
    for (name, logged) in [
        ("accuracy", "accuracy"),
        ("acc", "acc"),
        ("binary_accuracy", "binary_accuracy"),
        ("categorical_accuracy", "categorical_accuracy"),
        ("sparse_categorical_accuracy", "sparse_categorical_accuracy"),
        ("top_k_categorical_accuracy", "top_k_categorical_accuracy"),
        (
            "sparse_top_k_categorical_accuracy",
            "sparse_top_k_categorical_accuracy",
        ),
        ("precision", "precision"),
        ("recall", "recall"),
        ("mean", "mean"),
        ("mse", "mean_squared_error"),
        ("psnr", "psnr"),
        ("mae", "mean_absolute_error"),
        ("binary_crossentropy", "binary_crossentropy"),
    ] {
        assert_eq!(metric_by_name(name).unwrap().name(), logged, "{name}");
    }
    assert!(metric_by_name("f1").is_err());
    assert_eq!(
        TopKCategoricalAccuracy::sparse(5)
            .named("top_5_accuracy")
            .name(),
        "top_5_accuracy"
    );
}

#[test]
fn configs_round_trip() {
    let configs = vec![
        Accuracy::binary_threshold(0.3).config(),
        Accuracy::categorical().config(),
        Accuracy::sparse().named("acc").config(),
        Accuracy::auto().config(),
        TopKCategoricalAccuracy::new(3).config(),
        TopKCategoricalAccuracy::sparse(2).named("top2").config(),
        Precision::new().threshold(0.7).class_id(Some(2)).config(),
        Recall::new().config(),
        Mean::new().named("m").config(),
        MeanSquaredError::new().config(),
        Psnr::new(255.0).config(),
        MeanMetricWrapper::from_loss(MeanAbsoluteError::new()).config(),
    ];
    for c in configs {
        let m = metric_from_config(&c).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(m.name(), c["config"]["name"].as_str().unwrap(), "{c}");
    }
    // Keras-style list of one threshold.
    let c = json!({"class_name": "Precision", "config": {"thresholds": [0.2]}});
    assert_eq!(metric_from_config(&c).unwrap().name(), "precision");
    let closure = MeanMetricWrapper::from_fn("f", |_t: &Tensor, p: &Tensor| Ok(p.clone()));
    assert!(closure.config().is_null());
    assert!(metric_from_config(&closure.config()).is_err());
    assert!(metric_from_config(&json!({"class_name": "F1Score", "config": {}})).is_err());
    assert!(metric_from_config(&json!({"class_name": "PSNR", "config": {"max_val": 0}})).is_err());
}

#[test]
fn streaming_by_hand() {
    // Mean: 1·2 + 3·0 then a scalar with weight 2 → (2 + 0 + 10) / (1 + 0 + 2).
    let mut m = Mean::new();
    m.update_values(&t(vec![2.0, 3.0], &[2]), Some(&t(vec![1.0, 0.0], &[2])))
        .unwrap();
    m.update_value(5.0, 2.0);
    assert_eq!(m.result(), 4.0);
    m.reset();
    assert_eq!(m.result(), 0.0);
    // Closure wrapper: per-sample means of |y_pred| weighted.
    let mut w = MeanMetricWrapper::from_fn("abs", |_t: &Tensor, p: &Tensor| Ok(p.abs()?));
    let p = t(vec![1.0, -3.0, 2.0, 2.0], &[2, 2]);
    w.update(&p, &p, Some(&t(vec![3.0, 1.0], &[2]))).unwrap();
    assert_eq!(w.result(), (2.0 * 3.0 + 2.0) / 4.0);
    // PSNR of identical images is +inf; max_val scales it by 20·log10.
    let img = t(vec![0.5; 12], &[1, 3, 2, 2]);
    let mut ps = Psnr::new(1.0);
    ps.update(&img, &img, None).unwrap();
    assert_eq!(ps.result(), f64::INFINITY);
    let other = t(vec![0.6; 12], &[1, 3, 2, 2]);
    let mut a = Psnr::new(1.0);
    let mut b = Psnr::new(255.0);
    a.update(&img, &other, None).unwrap();
    b.update(&img, &other, None).unwrap();
    assert!((b.result() - a.result() - 20.0 * 255f64.log10()).abs() < 1e-9);
    // Precision/recall with nothing predicted positive: 0, like Keras.
    let mut pr = Precision::new();
    pr.update(
        &t(vec![1.0, 0.0], &[2, 1]),
        &t(vec![0.1, 0.2], &[2, 1]),
        None,
    )
    .unwrap();
    assert_eq!(pr.result(), 0.0);
    let mut rc = Recall::new();
    rc.update(
        &t(vec![1.0, 1.0], &[2, 1]),
        &t(vec![0.9, 0.2], &[2, 1]),
        None,
    )
    .unwrap();
    assert_eq!(rc.result(), 0.5);
}

fn err(r: ferrovision_nn::Result<()>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn clear_errors() {
    let mut a = Accuracy::binary();
    let m = err(a.update(&Tensor::zeros(&[4, 2]), &Tensor::zeros(&[4, 3]), None));
    assert!(
        m.contains("binary_accuracy") && m.contains("[4, 2]") && m.contains("[4, 3]"),
        "{m}"
    );
    let m = err(a.update(
        &Tensor::zeros(&[4, 1]),
        &Tensor::zeros(&[4, 1]),
        Some(&Tensor::ones(&[3])),
    ));
    assert!(
        m.contains("sample_weight") && m.contains("[3]") && m.contains("[4]"),
        "{m}"
    );
    let mut s = Accuracy::sparse();
    let m = err(s.update(&Tensor::zeros(&[3]), &Tensor::zeros(&[4, 5]), None));
    assert!(
        m.contains("[3]") && m.contains("[4, 5]") && m.contains("[4]"),
        "{m}"
    );
    let mut p = Precision::new().class_id(Some(3));
    let m = err(p.update(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[2, 3]), None));
    assert!(m.contains("class_id 3") && m.contains("3 classes"), "{m}");
    let mut k = TopKCategoricalAccuracy::new(0);
    assert!(
        err(k.update(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[2, 3]), None)).contains("k must")
    );
    let mut mse = MeanSquaredError::new();
    let m = err(mse.update(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[2, 4]), None));
    assert!(
        m.contains("mean_squared_error") && m.contains("[2, 3]"),
        "{m}"
    );
}
