//! ONNX initializer reader against a model written with `onnx.helper` (every storage form,
//! external data) and the real face-detector models (expected tensors:
//! reference/make_import_onnx_fixtures.py, read with `onnx.numpy_helper`).

mod common;

use common::*;
use ferrovision_import::{onnx, Error, SourceFormat};
use ferrovision_io::protobuf::{put_key, put_len_delimited, put_varint};
use std::path::{Path, PathBuf};

#[test]
fn small_model_matches_onnx_numpy_helper() {
    let w = onnx::read(&fixture("onnx_small/model.onnx")).unwrap();
    assert_eq!(w.format, SourceFormat::Onnx);
    assert_matches_safetensors(&w, &fixture("onnx_small.safetensors"));
}

fn face_detector(name: &str) -> Option<PathBuf> {
    let p = data_dir()?.join("face-detector").join(name);
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} is missing", p.display());
        None
    }
}

#[test]
fn real_face_detectors_match_onnx_numpy_helper() {
    for name in ["version-RFB-320", "version-slim-320"] {
        let Some(p) = face_detector(&format!("{name}.onnx")) else {
            continue;
        };
        let w = onnx::read(&p).unwrap();
        assert_matches_summary(&w, &fixture(&format!("onnx_{name}.json")));
    }
}

/// A model whose graph holds exactly one initializer with the given TensorProto body.
fn model_with(tensor: &[u8]) -> Vec<u8> {
    let mut graph = Vec::new();
    put_len_delimited(&mut graph, 5, tensor);
    let mut model = Vec::new();
    put_key(&mut model, 1, 0);
    put_varint(&mut model, 8);
    put_len_delimited(&mut model, 7, &graph);
    model
}

/// A TensorProto body: name "t", `dims`, `data_type`, then `extra` fields.
fn tensor_proto(dims: &[u64], data_type: u64, extra: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        put_key(&mut t, 1, 0);
        put_varint(&mut t, d);
    }
    put_key(&mut t, 2, 0);
    put_varint(&mut t, data_type);
    put_len_delimited(&mut t, 8, b"t");
    t.extend_from_slice(extra);
    t
}

fn external(location: &str, offset: &str, length: &str) -> Vec<u8> {
    let mut t = Vec::new();
    for (k, v) in [
        ("location", location),
        ("offset", offset),
        ("length", length),
    ] {
        let mut e = Vec::new();
        put_len_delimited(&mut e, 1, k.as_bytes());
        put_len_delimited(&mut e, 2, v.as_bytes());
        put_len_delimited(&mut t, 13, &e);
    }
    put_key(&mut t, 14, 0);
    put_varint(&mut t, 1);
    t
}

fn read_err(dir: &Path, model: &[u8]) -> String {
    let p = dir.join("m.onnx");
    std::fs::write(&p, model).unwrap();
    match onnx::read(&p).unwrap_err() {
        Error::Format { path, msg } => {
            assert_eq!(path, p);
            msg
        }
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn bad_tensors_are_errors_naming_the_initializer() {
    let d = scratch_dir("onnx-bad");
    std::fs::write(d.join("w.bin"), [0u8; 16]).unwrap();
    let mut raw8 = Vec::new();
    put_len_delimited(&mut raw8, 9, &[0; 8]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tensor_proto(&[3], 1, &raw8), "8 bytes for shape [3]"),
        (tensor_proto(&[1 << 62, 1 << 62], 1, &raw8), "overflows"),
        (tensor_proto(&[u64::MAX], 1, &raw8), "negative"),
        (tensor_proto(&[2], 8, &raw8), "STRING"),
        (tensor_proto(&[2], 0, &raw8), "UNDEFINED"),
        (tensor_proto(&[2], 1, &[]), "0 bytes for shape [2]"),
        (
            tensor_proto(&[4], 1, &external("../w.bin", "0", "16")),
            "not a plain relative",
        ),
        (
            tensor_proto(&[4], 1, &external("/etc/hostname", "0", "16")),
            "not a plain relative",
        ),
        (
            tensor_proto(&[4], 1, &external("w.bin", "8", "16")),
            "runs past the end",
        ),
        (
            tensor_proto(&[4], 1, &external("w.bin", "18446744073709551615", "16")),
            "runs past the end",
        ),
        (
            tensor_proto(&[4], 1, &external("w.bin", "x", "16")),
            "offset 'x'",
        ),
        (
            tensor_proto(&[4], 1, &external("w.bin", "0", "12")),
            "length 12",
        ),
        (
            tensor_proto(&[4], 1, &external("nope.bin", "0", "16")),
            "nope.bin",
        ),
    ];
    for (t, want) in cases {
        let msg = read_err(&d, &model_with(&t));
        assert!(
            msg.contains("initializer 't'") && msg.contains(want),
            "{want}: {msg}"
        );
    }
    // Typed-field counts are checked too.
    let mut ints = Vec::new();
    put_key(&mut ints, 7, 0);
    put_varint(&mut ints, 5);
    let msg = read_err(&d, &model_with(&tensor_proto(&[2], 7, &ints)));
    assert!(msg.contains("1 values for shape [2]"), "{msg}");
    // A good external tensor reads.
    let p = d.join("ok.onnx");
    std::fs::write(
        &p,
        model_with(&tensor_proto(&[2], 1, &external("w.bin", "8", "8"))),
    )
    .unwrap();
    assert_eq!(
        onnx::read(&p).unwrap().tensors[0]
            .1
            .to_vec::<f32>()
            .unwrap(),
        [0.0, 0.0]
    );
    // Not a model at all.
    assert!(read_err(&d, b"\x0a\xff\xff\xff\xff\x0f").contains("not a valid ONNX model"));
    assert!(read_err(&d, &[]).contains("without a graph"));
}

#[cfg(unix)]
#[test]
fn external_data_symlinked_out_of_the_folder_is_refused() {
    let d = scratch_dir("onnx-symlink");
    std::os::unix::fs::symlink("/etc/hostname", d.join("w.bin")).unwrap();
    let msg = read_err(
        &d,
        &model_with(&tensor_proto(&[1], 2, &external("w.bin", "0", "1"))),
    );
    assert!(msg.contains("outside the model's folder"), "{msg}");
}

#[test]
fn damaged_models_give_errors_not_panics() {
    let d = scratch_dir("onnx-damage");
    std::fs::copy(fixture("onnx_small/weights.bin"), d.join("weights.bin")).unwrap();
    let bytes = std::fs::read(fixture("onnx_small/model.onnx")).unwrap();
    let errors = assert_no_panic_on_damage(&bytes, &d.join("model.onnx"), 250, 1000, |p| {
        onnx::read(p).is_ok()
    });
    assert!(errors >= 240, "only {errors} damaged models were refused");
    if let Some(p) = face_detector("version-slim-320.onnx") {
        let bytes = std::fs::read(p).unwrap();
        assert_no_panic_on_damage(&bytes, &d.join("slim.onnx"), 100, 300, |p| {
            onnx::read(p).is_ok()
        });
    }
}
