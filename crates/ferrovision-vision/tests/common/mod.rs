//! Shared helpers of the fixture tests.
#![allow(dead_code)]

use ferrovision_vision::coco::CocoEval;
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

/// A COCO evaluation equals pycocotools' recorded numbers for case `name` (fixture entry `e`):
/// the 12 stats, per-category AP and the precision/recall arrays (count and sum of the valid
/// entries) to 1e-6, and the printed summary character for character.
pub fn assert_matches_pycocotools(name: &str, ev: &CocoEval, e: &Value) {
    for (i, (g, w)) in ev.stats.iter().zip(f64s(&e["stats"])).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6,
            "{name} stat {i}: {g} vs pycocotools {w}"
        );
    }
    let ap = ev.per_category_ap();
    for (k, w) in f64s(&e["per_category_ap"]).iter().enumerate() {
        assert!(
            (ap[k].2 - w).abs() <= 1e-6,
            "{name} category {k}: {} vs {w}",
            ap[k].2
        );
    }
    let valid: Vec<f64> = ev.precision.iter().copied().filter(|&v| v > -1.0).collect();
    assert_eq!(
        valid.len() as u64,
        e["precision_valid"].as_u64().unwrap(),
        "{name}"
    );
    let s: f64 = valid.iter().sum();
    let ws = e["precision_sum"].as_f64().unwrap();
    assert!(
        (s - ws).abs() <= 1e-6 * ws.abs().max(1.0),
        "{name} precision sum {s} vs {ws}"
    );
    let rv: Vec<f64> = ev.recall.iter().copied().filter(|&v| v > -1.0).collect();
    assert_eq!(
        rv.len() as u64,
        e["recall_valid"].as_u64().unwrap(),
        "{name}"
    );
    let s: f64 = rv.iter().sum();
    let ws = e["recall_sum"].as_f64().unwrap();
    assert!(
        (s - ws).abs() <= 1e-6 * ws.abs().max(1.0),
        "{name} recall sum {s} vs {ws}"
    );
    assert_eq!(
        ev.summary_text(),
        e["summary"].as_str().unwrap(),
        "{name} summary"
    );
}
