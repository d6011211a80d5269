//! TF.js reader against a manifest written by `tensorflowjs.write_weights` and the real face-api
//! manifests (expected tensors: reference/make_import_tfjs_fixtures.py, read with
//! `tensorflowjs.read_weights`).

mod common;

use common::*;
use ferrovision_import::{tfjs, Error, SourceFormat};
use std::path::Path;

#[test]
fn small_manifest_matches_tensorflowjs() {
    let w = tfjs::read(&fixture("tfjs_small/weights_manifest.json")).unwrap();
    assert_eq!(w.format, SourceFormat::Tfjs);
    assert_matches_safetensors(&w, &fixture("tfjs_small.safetensors"));
    assert_eq!(w.get("scalar").unwrap().shape(), &[] as &[usize]);
}

#[test]
fn model_json_reads_its_weights_manifest() {
    let w = tfjs::read(&fixture("tfjs_small/model.json")).unwrap();
    assert_matches_safetensors(&w, &fixture("tfjs_small.safetensors"));
}

#[test]
fn real_face_api_manifests_match_tensorflowjs() {
    for model in ["face_expression_model", "tiny_face_detector_model"] {
        let rel = format!("models/face_api/{model}-weights_manifest.json");
        let Some(p) = model_cache_file(&rel) else {
            continue;
        };
        let w = tfjs::read(&p).unwrap();
        assert_matches_summary(&w, &fixture(&format!("tfjs_{model}.json")));
    }
}

/// A copy of the small fixture in a scratch folder, for damaging.
fn copy_small(test: &str) -> std::path::PathBuf {
    let d = scratch_dir(test);
    for e in std::fs::read_dir(fixture("tfjs_small")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

fn format_msg(e: Error, manifest: &Path) -> String {
    match e {
        Error::Format { path, msg } => {
            assert_eq!(path, manifest);
            msg
        }
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn short_and_long_shards_are_errors_naming_the_shard() {
    let d = copy_small("tfjs-shards");
    let m = d.join("weights_manifest.json");
    let shard = d.join("group2-shard2of2.bin");
    let good = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &good[..good.len() - 1]).unwrap();
    let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
    assert!(
        msg.contains("group 1") && msg.contains("group2-shard2of2.bin"),
        "{msg}"
    );
    assert!(msg.contains("1 bytes short"), "{msg}");
    let mut long = good.clone();
    long.push(0);
    std::fs::write(&shard, &long).unwrap();
    let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
    assert!(
        msg.contains("group2-shard2of2.bin") && msg.contains("too long"),
        "{msg}"
    );
    // 64 bytes added to the first shard: the weights now end inside shard 5, which is named.
    std::fs::write(&shard, &good).unwrap();
    let first = d.join("group1-shard1of6.bin");
    let mut b = std::fs::read(&first).unwrap();
    b.extend_from_slice(&[0; 64]);
    std::fs::write(&first, &b).unwrap();
    let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
    assert!(
        msg.contains("group1-shard5of6.bin")
            && msg.contains("53 bytes before its end (and more shards follow)"),
        "{msg}"
    );
}

#[test]
fn shard_paths_must_stay_in_the_manifest_folder() {
    let d = copy_small("tfjs-paths");
    let m = d.join("weights_manifest.json");
    for bad in ["../outside.bin", "/etc/passwd", ""] {
        let json = format!(r#"[{{"paths": ["{bad}"], "weights": []}}]"#);
        std::fs::write(&m, json).unwrap();
        let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
        assert!(msg.contains("shard path"), "{bad}: {msg}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", d.join("link.bin")).unwrap();
        std::fs::write(&m, r#"[{"paths": ["link.bin"], "weights": []}]"#).unwrap();
        let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
        assert!(msg.contains("outside"), "{msg}");
    }
}

#[test]
fn bad_entries_are_errors_naming_the_weight() {
    let d = scratch_dir("tfjs-entries");
    std::fs::write(d.join("s.bin"), [0u8; 8]).unwrap();
    let m = d.join("m.json");
    let cases = [
        (
            r#"{"name": "w", "shape": [2], "dtype": "string"}"#,
            "dtype 'string'",
        ),
        (
            r#"{"name": "w", "shape": [-1], "dtype": "float32"}"#,
            "negative",
        ),
        (
            r#"{"name": "w", "shape": [4611686018427387904, 4], "dtype": "float32"}"#,
            "overflow",
        ),
        (
            r#"{"name": "w", "shape": [8], "dtype": "float32", "quantization": {"dtype": "uint8"}}"#,
            "'scale'",
        ),
        (
            r#"{"name": "w", "shape": [2], "dtype": "int32", "quantization": {"dtype": "float16"}}"#,
            "float16 quantization of a int32",
        ),
        (
            r#"{"name": "w", "shape": [3], "dtype": "float32"}"#,
            "short",
        ),
    ];
    for (entry, want) in cases {
        std::fs::write(
            &m,
            format!(r#"[{{"paths": ["s.bin"], "weights": [{entry}]}}]"#),
        )
        .unwrap();
        let msg = format_msg(tfjs::read(&m).unwrap_err(), &m);
        assert!(msg.contains(want), "{entry}: {msg}");
        if want != "short" {
            assert!(msg.contains("weight 'w'"), "{msg}");
        }
    }
    std::fs::write(&m, r#"{"modelTopology": {}}"#).unwrap();
    assert!(format_msg(tfjs::read(&m).unwrap_err(), &m).contains("weightsManifest"));
}

#[test]
fn quantised_int32_weights_round_like_the_reference() {
    // tensorflowjs.quantization.dequantize_weights: round(q * scale + min) for int32.
    let d = scratch_dir("tfjs-qint");
    std::fs::write(d.join("s.bin"), [0u8, 1, 2, 3, 255]).unwrap();
    let m = d.join("m.json");
    std::fs::write(
        &m,
        r#"[{"paths": ["s.bin"], "weights": [{"name": "ids", "shape": [5], "dtype": "int32",
            "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}]}]"#,
    )
    .unwrap();
    let w = tfjs::read(&m).unwrap();
    // q*0.5 - 1 = -1, -0.5, 0, 0.5, 126.5 -> numpy rounds half to even.
    assert_eq!(w.tensors[0].1.to_vec::<i32>().unwrap(), [-1, 0, 0, 0, 126]);
}

#[test]
fn damaged_manifests_and_shards_give_errors_not_panics() {
    let d = copy_small("tfjs-damage");
    let m = d.join("weights_manifest.json");
    let bytes = std::fs::read(&m).unwrap();
    let errors = assert_no_panic_on_damage(&bytes, &m, 200, 400, |p| tfjs::read(p).is_ok());
    assert!(
        errors >= 200 - 1,
        "only {errors} damaged manifests were refused"
    );
    std::fs::write(&m, &bytes).unwrap();
    let shard = d.join("group1-shard3of6.bin");
    let sb = std::fs::read(&shard).unwrap();
    let errors = assert_no_panic_on_damage(&sb, &shard, 64, 64, |_| tfjs::read(&m).is_ok());
    assert_eq!(
        errors, 64,
        "every truncated shard is refused, flipped bytes are values"
    );
}
