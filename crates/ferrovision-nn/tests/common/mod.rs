//! Test-only optimizer and loss so the model core is tested on its own.
#![allow(dead_code)]

use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Loss, Optimizer, Param, Result};
use serde_json::{json, Value};
use std::collections::HashMap;

/// SGD with momentum (PyTorch form), state keyed by weight name.
pub struct TestSgd {
    pub lr: f64,
    pub momentum: f32,
    pub velocity: HashMap<String, Vec<f32>>,
    pub iterations: u64,
}

impl TestSgd {
    pub fn new(lr: f64, momentum: f32) -> Self {
        TestSgd {
            lr,
            momentum,
            velocity: HashMap::new(),
            iterations: 0,
        }
    }
}

impl Optimizer for TestSgd {
    fn step(&mut self, params: &[(String, Param)]) -> Result<()> {
        for (name, p) in params {
            let Some(g) = p.grad() else { continue };
            let g = g.to_vec::<f32>()?;
            let v = self
                .velocity
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; g.len()]);
            let (lr, m) = (self.lr as f32, self.momentum);
            p.value().with_f32_mut("test_sgd", |w| {
                for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(&g) {
                    *v = m * *v + g;
                    *w -= lr * *v;
                }
            })?;
        }
        self.iterations += 1;
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn iterations(&self) -> u64 {
        self.iterations
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self
            .velocity
            .iter()
            .map(|(n, v)| {
                (
                    format!("{n}/velocity"),
                    Tensor::from_vec(v.clone(), &[v.len()]).unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    fn load_state(&mut self, iterations: u64, state: &[(String, Tensor)]) -> Result<()> {
        self.iterations = iterations;
        self.velocity.clear();
        for (n, t) in state {
            let name = n.strip_suffix("/velocity").unwrap().to_string();
            self.velocity.insert(name, t.to_vec::<f32>()?);
        }
        Ok(())
    }
    fn config(&self) -> Value {
        json!({"name": "test_sgd", "lr": self.lr, "momentum": self.momentum})
    }
}

/// Mean squared error over all elements.
pub struct TestMse;

impl Loss for TestMse {
    fn name(&self) -> String {
        "mse".into()
    }
    fn call(&self, y_true: &Tensor, y_pred: &Tensor, _w: Option<&Tensor>) -> Result<Tensor> {
        Ok(y_pred.sub(y_true)?.square()?.mean_all()?)
    }
}

/// Tests that depend on the process-wide random stream (`manual_seed` then draws) hold this
/// lock so tests running in parallel threads do not draw in between.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh temporary folder for one test.
pub fn tmp_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovision-nn-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
