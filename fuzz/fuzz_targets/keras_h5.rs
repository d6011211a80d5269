//! Keras HDF5 weight files (`.h5` / `.weights.h5`, Keras 2 and 3 layouts).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = ferrovision_fuzz::scratch_file("model.h5", data);
    let _ = ferrovision_import::keras_h5::read(&path);
});
