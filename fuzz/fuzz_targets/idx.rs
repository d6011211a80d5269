//! IDX files (MNIST format), raw and gzip (single and multi-member).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrovision_nn::datasets::idx::parse_idx(data, std::path::Path::new("fuzz.idx"));
});
