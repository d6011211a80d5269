//! Shared helpers of the fixture tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference/fixtures/vision")
}

pub fn load(name: &str) -> Value {
    let p = fixture_dir().join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

pub fn boxes(v: &Value) -> Vec<[f32; 4]> {
    f32s(v)
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// `|a - b| <= atol * max(1, max|ref|) + rtol * |b|` elementwise, with a message naming the case.
pub fn assert_close(case: &str, what: &str, got: &[f32], want: &[f32], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{case} {what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = atol * scale + rtol * (w as f64).abs();
        assert!(
            ((g - w) as f64).abs() <= tol,
            "{case} {what}[{i}]: got {g}, want {w} (tol {tol:e})"
        );
    }
}

/// The shared data directory (`FERROVISION_DATA`, or `shared/data` found walking up from the
/// crate), or None when absent.
pub fn data_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FERROVISION_DATA") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared/data");
        if cand.is_dir() {
            return Some(cand);
        }
        if !dir.pop() {
            return None;
        }
    }
}
