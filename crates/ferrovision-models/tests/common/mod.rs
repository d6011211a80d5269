//! Shared by the zoo's reference tests: the deterministic "formula" weights of
//! `reference/zoo/formula_weights.py` (see that file for the definition and why), and loading a
//! reference output fixture.
#![allow(dead_code)]

use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Network, NetworkExt};

/// FNV-1a, 32 bits, of `s`'s UTF-8 bytes.
pub fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// SplitMix64's output function (wrapping arithmetic).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The formula tensor called `name` (our name) of `shape` (our layout), as float32 values.
pub fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let seed = fnv1a32(name) as u64;
    let last = name.rsplit('/').next().unwrap_or(name);
    let fan_in = match shape.len() {
        2 => shape[0],
        r if r > 2 => n / shape[0],
        _ => n,
    } as f64;
    (0..n)
        .map(|i| {
            let u = (splitmix64(seed.wrapping_add(i as u64)) >> 11) as f64 * (0.5f64).powi(53);
            let s = (2.0 * std::f64::consts::PI * u).sin();
            let v = if name == "input" {
                s
            } else {
                match last {
                    "gamma" => 1.0 + 0.2 * s,
                    "beta" | "bias" | "moving_mean" => 0.1 * s,
                    "moving_variance" => 1.0 + 0.25 * s,
                    _ => s * (4.0 / fan_in).sqrt(),
                }
            };
            v as f32
        })
        .collect()
}

/// Fills every weight of `net` (trainable or not) with the formula of its name.
pub fn formula_fill(net: &dyn Network) {
    for (name, p) in net.named_weights() {
        p.assign(&formula(&name, &p.shape())).unwrap();
    }
}

/// The formula input batch `[batch, c, h, w]`.
pub fn formula_input(shape: &[usize]) -> Tensor {
    Tensor::from_vec(formula("input", shape), shape).unwrap()
}

/// Asserts `got` equals `want` within `rtol` of the largest |want|, naming `what`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rtol * scale,
            "{what}[{i}]: ours {g}, reference {w} (max |ref| {scale})"
        );
    }
}

/// A zoo reference fixture: `reference/fixtures/zoo/<name>.json`.
pub struct ZooFixture {
    /// Input batch shape `[N, C, H, W]`.
    pub input_shape: Vec<usize>,
    /// Number of classes the reference model was built with.
    pub classes: usize,
    /// The reference outputs, flattened.
    pub logits: Vec<f32>,
    /// The whole JSON record (parameter counts, versions...).
    pub json: serde_json::Value,
}

/// Reads the zoo fixture `name`.
pub fn zoo_fixture(name: &str) -> ZooFixture {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reference/fixtures/zoo")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let usizes = |k: &str| -> Vec<usize> {
        json[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    ZooFixture {
        input_shape: usizes("input_shape"),
        classes: json["classes"].as_u64().unwrap() as usize,
        logits: json["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect(),
        json,
    }
}
