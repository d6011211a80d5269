//! PyTorch checkpoints: the zip format and the legacy pickle format, through the restricted
//! unpickler (tensor rebuilds only; anything else is an error, never executed).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrovision_import::torch::read_bytes(std::path::Path::new("fuzz.pth"), data);
});
