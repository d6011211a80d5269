//! Shared by the TFRecord tests: fixture paths, JSON/hex helpers, the examples this crate writes
//! for TensorFlow and the check of TensorFlow's parse of them.
#![allow(dead_code)]

use ferrovision_data::tfrecord::{Example, Feature};
use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reference/fixtures/tfrecord")
}

/// `name` inside a per-test-binary scratch folder `dir`.
pub fn tmp_in(dir: &str, name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

/// The examples this crate writes for TensorFlow to read (see from_rust_parsed_by_tf.json).
pub fn rust_examples() -> Vec<Example> {
    (0..4i64)
        .map(|i| {
            Example::new()
                .with("label", Feature::Int64(vec![i * 3 - 2]))
                .with(
                    "scores",
                    Feature::Float(
                        vec![i as f32 * 0.25, -7.5e-8, f32::MAX, -0.0][..(i as usize + 1)].to_vec(),
                    ),
                )
                .with("ids", Feature::Int64(vec![-(1i64 << 50), i, i64::MAX]))
                .with(
                    "blob",
                    Feature::Bytes(vec![vec![0u8, 255, i as u8, 10, 13], b"hello".to_vec()]),
                )
        })
        .collect()
}

/// Checks that TensorFlow parsed our file (as recorded in `name`) into `rust_examples()`.
pub fn check_parsed_by_tf(name: &str) {
    let parsed = json(name);
    let recs = parsed["records"].as_array().unwrap();
    let exs = rust_examples();
    assert_eq!(recs.len(), exs.len());
    for (ex, r) in exs.iter().zip(recs) {
        assert_eq!(ex.int64s("label").unwrap(), &[r["label"].as_i64().unwrap()]);
        let bits: Vec<u64> = ex
            .floats("scores")
            .unwrap()
            .iter()
            .map(|f| f.to_bits() as u64)
            .collect();
        let tf_bits: Vec<u64> = r["scores_f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(bits, tf_bits);
        let ids: Vec<i64> = r["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(ex.int64s("ids").unwrap(), ids.as_slice());
        let blobs: Vec<Vec<u8>> = r["blob_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| hex(v.as_str().unwrap()))
            .collect();
        assert_eq!(ex.bytes("blob").unwrap(), blobs.as_slice());
    }
}
