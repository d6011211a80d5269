//! ONNX models (protobuf; initializers in float32 and the other stored types).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = ferrovision_fuzz::scratch_file("model.onnx", data);
    let _ = ferrovision_import::onnx::read(&path);
});
