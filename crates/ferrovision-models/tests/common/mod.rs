//! Shared by the zoo's reference tests: the deterministic "formula" weights of
//! `reference/zoo/formula_weights.py` (see that file for the definition and why), and loading a
//! reference output fixture.
#![allow(dead_code)]

pub use ferrovision_models::formula::{formula_fill, formula_input};

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
