//! The model API end to end: a nested two-output model (with a custom multi-output layer)
//! inside a functional model, trained with `fit` on both outputs, one of them with a custom
//! loss; both custom classes registered with serde configs, so the saved model loads back
//! with identical predictions and compile state. An unregistered loss class fails to load
//! with an error naming it.

mod common;
// The custom two-output layer and model the nn crate's model-API tests use.
#[path = "../../ferrovision-nn/tests/model_api_support/mod.rs"]
mod model_api_support;

use common::{serial, tmp_dir};
use ferrovision_nn::layers::Dense;
use ferrovision_nn::losses::{register_loss, MeanSquaredError};
use ferrovision_nn::optim::Adam;
use ferrovision_nn::registry::{from_config, to_config};
use ferrovision_nn::tensor::rng::{manual_seed, Rng};
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Error, Functional, Graph, Loss, Result};
use ferrovision_train::{ArrayData, Compile, FitOptions, Model};
use model_api_support::{register_split, two_output_inner};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Mean squared error times a constant, saved under `class`.
struct ScaledMse {
    class: &'static str,
    cfg: ScaledMseConfig,
}

#[derive(Serialize, Deserialize, Clone)]
struct ScaledMseConfig {
    name: String,
    scale: f32,
}

impl Loss for ScaledMse {
    fn name(&self) -> String {
        self.cfg.name.clone()
    }
    fn call(&self, y_true: &Tensor, y_pred: &Tensor, sw: Option<&Tensor>) -> Result<Tensor> {
        if sw.is_some() {
            return Err(Error::config("ScaledMse: no sample weights"));
        }
        Ok(y_pred
            .sub(y_true)?
            .square()?
            .mean_all()?
            .mul_scalar(self.cfg.scale)?)
    }
    fn config(&self) -> Value {
        json!({"class_name": self.class, "config": to_config(&self.cfg)})
    }
}

fn register_scaled_mse() {
    register_loss("ScaledMse", |v: &Value| {
        let cfg: ScaledMseConfig = from_config("loss", "ScaledMse", v)?;
        Ok(Box::new(ScaledMse {
            class: "ScaledMse",
            cfg,
        }))
    });
}

/// `outer(x, y) = (inner(x, y)[0], head(inner(x, y)[1]))`.
fn outer() -> Functional {
    let mut g = Graph::new();
    let x = g.input("x", &[Some(4)]);
    let y = g.input("y", &[Some(2)]);
    let inner = g.apply_multi(two_output_inner(), &[x, y]).unwrap();
    let head = g.apply(Dense::new(1).named("head"), &[inner[1]]).unwrap();
    g.build("outer", &[x, y], &[inner[0], head]).unwrap()
}

/// Inputs and targets: t0 = x[:, :2] * 0.5 + y, t1 = sum(x) (both learnable by the model).
fn data(n: usize) -> (Vec<Tensor>, Vec<Tensor>) {
    let mut rng = Rng::new(11);
    let x = Tensor::randn(&[n, 4], 0.0, 1.0, &mut rng).unwrap();
    let y = Tensor::randn(&[n, 2], 0.0, 1.0, &mut rng).unwrap();
    let t0 = x
        .narrow(1, 0, 2)
        .unwrap()
        .mul_scalar(0.5)
        .unwrap()
        .add(&y)
        .unwrap();
    let t1 = x.sum(&[1], true).unwrap();
    (vec![x, y], vec![t0, t1])
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch_size: 16,
        verbose: 0,
        ..FitOptions::default()
    }
}

#[test]
fn nested_two_output_model_with_custom_layer_and_loss_fits_saves_and_loads() {
    let _guard = serial();
    manual_seed(21);
    register_split();
    register_scaled_mse();
    let (xs, ts) = data(128);
    let mut model = Model::new(outer());
    let loss = ScaledMse {
        class: "ScaledMse",
        cfg: ScaledMseConfig {
            name: "scaled_mse".into(),
            scale: 2.0,
        },
    };
    model
        .compile(Compile::new(Adam::new().lr(0.02), loss).loss(MeanSquaredError::new()))
        .unwrap();
    let h = model
        .fit_arrays(xs.clone(), ts.clone(), quiet(30), vec![])
        .unwrap();
    let (first, last) = (&h.logs[0], h.last().unwrap());
    for key in ["loss", "inner_0_loss", "head_loss"] {
        let (a, b) = (first.get(key).unwrap(), last.get(key).unwrap());
        assert!(b < 0.2 * a, "{key}: {a} -> {b}");
    }
    // The total is the sum of the per-output losses (the custom one scaled by 2).
    let (l, l0, l1) = (
        last.get("loss").unwrap(),
        last.get("inner_0_loss").unwrap(),
        last.get("head_loss").unwrap(),
    );
    assert!(
        (l - (l0 + l1)).abs() < 0.05 * l.max(1e-3),
        "{l} vs {l0} + {l1}"
    );

    let path = tmp_dir("nested_two_output").join("model.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::load(&path).unwrap();
    let before = model.predict_arrays(xs.clone(), 50).unwrap();
    let after = loaded.predict_arrays(xs.clone(), 50).unwrap();
    assert_eq!(before.len(), 2);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    }
    // The custom loss came back with its config: evaluation logs are identical.
    let eval = |m: &mut Model| {
        m.evaluate_source(&mut ArrayData::new(xs.clone(), ts.clone(), 32).unwrap())
            .unwrap()
    };
    assert_eq!(eval(&mut model), eval(&mut loaded));
    assert_eq!(
        loaded.network().output_names(),
        ["inner_0".to_string(), "head".to_string()]
    );
}

#[test]
fn an_unregistered_loss_class_fails_to_load_naming_it() {
    let _guard = serial();
    manual_seed(22);
    register_split();
    let mut model = Model::new(outer());
    let loss = ScaledMse {
        class: "NeverRegisteredLoss",
        cfg: ScaledMseConfig {
            name: "n".into(),
            scale: 1.0,
        },
    };
    model
        .compile(Compile::new(Adam::new(), loss).loss(MeanSquaredError::new()))
        .unwrap();
    let path = tmp_dir("unregistered_loss").join("model.safetensors");
    model.save(&path).unwrap();
    let err = Model::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("unknown loss class 'NeverRegisteredLoss'"),
        "{err}"
    );
}
