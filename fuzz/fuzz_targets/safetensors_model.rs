//! Saved models: the safetensors container, then the stored architecture (rebuilt within the
//! file's weight budget), compile config, weights, optimizer state and metadata.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = ferrovision_fuzz::scratch_file("model.safetensors", data);
    let _ = ferrovision_train::Model::load(&path);
});
