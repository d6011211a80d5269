//! TF.js layers models: a manifest (`model.json`) and its weight shard (float32 or
//! uint8-quantised), both from one fuzz input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (manifest, shard) = ferrovision_fuzz::split2(data);
    ferrovision_fuzz::scratch_file("group1-shard1of1.bin", shard);
    let path = ferrovision_fuzz::scratch_file("model.json", manifest);
    let _ = ferrovision_import::tfjs::read(&path);
});
