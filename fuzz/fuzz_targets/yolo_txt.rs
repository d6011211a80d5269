//! YOLO label files (`class cx cy w h` per line).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let (w, h) = (size as usize, (size as usize).wrapping_mul(3) % 257);
        let _ = ferrovision_data::sources::parse_yolo(text, "fuzz.txt".as_ref(), w, h);
    }
});
