//! Test-only pieces shared by the callback tests: a tiny deterministic model (plain SGD, MSE)
//! and data, fixture paths, and a capturing writer.

#![allow(dead_code)]

use ferrovision_nn::layers::Dense;
use ferrovision_nn::losses::MeanSquaredError;
use ferrovision_nn::optim::Sgd;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{NetworkExt, Sequential};
use ferrovision_train::{Compile, Model};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Dense(2 -> 1) with fixed weights, compiled with plain SGD (`lr`) and MSE.
pub fn tiny_model(lr: f64) -> Model {
    let net = Sequential::new(&[2])
        .add(Dense::new(1).named("dense"))
        .build()
        .unwrap();
    net.set_weights(&[
        Tensor::from_vec(vec![0.1f32, -0.1], &[2, 1]).unwrap(),
        Tensor::from_vec(vec![0.0f32], &[1]).unwrap(),
    ])
    .unwrap();
    let mut m = Model::new(net);
    m.compile(Compile::new(Sgd::new().lr(lr), MeanSquaredError::new()))
        .unwrap();
    m
}

/// Dense(1 -> 1) whose kernel is set by the tests (to mark epochs).
pub fn marker_model() -> Model {
    let net = Sequential::new(&[1])
        .add(Dense::new(1).named("dense"))
        .build()
        .unwrap();
    let mut m = Model::new(net);
    m.compile(Compile::new(Sgd::new().lr(0.1), MeanSquaredError::new()))
        .unwrap();
    m
}

pub fn set_marker(model: &Model, v: f32) {
    model
        .network()
        .set_weights(&[
            Tensor::from_vec(vec![v], &[1, 1]).unwrap(),
            Tensor::from_vec(vec![0.0f32], &[1]).unwrap(),
        ])
        .unwrap();
}

pub fn marker(model: &Model) -> f32 {
    model.network().get_weights().unwrap()[0]
        .to_vec::<f32>()
        .unwrap()[0]
}

/// 16 samples of y = 1*x0 - 2*x1 + 0.5 (x in a fixed grid), shapes [16, 2] and [16, 1].
pub fn linear_data() -> (Tensor, Tensor) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..16 {
        let a = (i % 4) as f32 * 0.5 - 0.75;
        let b = (i / 4) as f32 * 0.5 - 0.75;
        x.extend([a, b]);
        y.push(a - 2.0 * b + 0.5);
    }
    (
        Tensor::from_vec(x, &[16, 2]).unwrap(),
        Tensor::from_vec(y, &[16, 1]).unwrap(),
    )
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("reference/fixtures").join(name)
}

pub fn load_json(name: &str) -> Value {
    let p = fixture(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fresh empty temporary folder (removed first if left over).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovision-cb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `Write` whose bytes the test reads afterwards.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
