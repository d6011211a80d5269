//! Shared helpers of the loss and metric tests: reading the Keras fixtures.

#![allow(dead_code)]

use ferrovision_nn::tensor::Tensor;
use serde_json::Value;
use std::path::PathBuf;

/// Parsed JSON of `reference/fixtures/<name>` (written by `reference/make_nn_losses_fixtures.py`).
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tensor from `{"shape", "dtype", "data"}` (`None` for JSON null).
pub fn tensor(v: &Value) -> Option<Tensor> {
    if v.is_null() {
        return None;
    }
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"].as_array().expect("data");
    Some(
        match v["dtype"].as_str().unwrap() {
            "i64" => Tensor::from_vec(data.iter().map(|x| x.as_i64().unwrap()).collect(), &shape),
            "f32" => Tensor::from_vec(
                data.iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect::<Vec<f32>>(),
                &shape,
            ),
            d => panic!("unknown dtype {d}"),
        }
        .unwrap(),
    )
}

/// f64 values of a fixture tensor.
pub fn values(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `|a - b| <= atol + rtol * |b|`.
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= atol + rtol * b.abs() || (a.is_infinite() && a == b)
}
