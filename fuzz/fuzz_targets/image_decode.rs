//! The image decoders' front end (format sniffing, PNG, JPEG with the truncation check, BMP,
//! GIF) and the conversion every pipeline applies next.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = ferrovision_data::image::decode(data, "fuzz.img") {
        let _ = img.into_u8().into_rgb();
    }
});
