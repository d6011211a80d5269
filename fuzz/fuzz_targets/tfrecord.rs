//! TFRecord files (framing and CRCs; plain, GZIP or ZLIB, chosen by the first byte) and the
//! tf.train.Example protobufs inside.
#![no_main]
use ferrovision_data::tfrecord::{read_records_with, Compression, Example};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let compression = match kind % 3 {
        0 => Compression::None,
        1 => Compression::Gzip,
        _ => Compression::Zlib,
    };
    let path = ferrovision_fuzz::scratch_file("data.tfrecord", bytes);
    if let Ok(records) = read_records_with(&path, compression) {
        for r in records {
            let _ = Example::decode(&r);
        }
    }
    let _ = Example::decode(bytes);
});
