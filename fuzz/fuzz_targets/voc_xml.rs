//! Pascal VOC XML annotations.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ferrovision_data::annotations::voc::parse_voc_xml(text, "fuzz.xml");
    }
});
