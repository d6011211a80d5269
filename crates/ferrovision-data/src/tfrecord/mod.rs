//! The TFRecord file format and `tf.train.Example`.
//!
//! A record file is a sequence of records, each framed as
//!
//! ```text
//! u64 length (little endian) | u32 masked_crc32c(length bytes) | data[length] | u32 masked_crc32c(data)
//! ```
//!
//! The framing and CRC32C are `ferrovision_io::record`'s (the CRC functions are re-exported
//! here); this module adds atomic and compressed record files and `tf.train.Example`.
//! [`RecordWriter`] works on raw record bytes and can flush after every record
//! ([`RecordWriter::set_flush_each`]) for live files.
//! [`Example`] encodes and decodes the `tf.train.Example` protobuf by hand (the message is
//! small and fixed, so no protobuf dependency or build script is needed).
//!
//! Files may be GZIP- or ZLIB-compressed as a whole, like TensorFlow's
//! `TFRecordWriter(options=TFRecordOptions(compression_type=...))` writes them: the framing
//! above is the *uncompressed* stream. [`Compression`] picks the format; readers stream through
//! flate2's decoders (a file is never loaded whole) and can detect the format from the first
//! bytes ([`ReadCompression::Auto`]).
//!
//! Files: `compression.rs` (formats and detection), `writer.rs`, `reader.rs`, `example.rs`
//! (the protobuf); framing and CRC32C are `ferrovision_io::record`'s.

mod compression;
mod example;
mod reader;
mod writer;

pub use compression::{Compression, ReadCompression};
pub use example::{Example, Feature};
pub use reader::{read_records, read_records_with, FileInput, RecordReader};
pub use writer::RecordWriter;

use crate::{Error, Result};
pub use ferrovision_io::record::{crc32c, crc32c_append, crc32c_portable, mask_crc, masked_crc32c};
use std::path::Path;

/// Writes examples to an uncompressed TFRecord file atomically.
pub fn write_examples(path: impl AsRef<Path>, examples: &[Example]) -> Result<()> {
    write_examples_with(path, examples, Compression::None)
}

/// Writes examples to a TFRecord file atomically, compressed as given.
pub fn write_examples_with(
    path: impl AsRef<Path>,
    examples: &[Example],
    compression: Compression,
) -> Result<()> {
    let mut w = RecordWriter::create_compressed(path, compression)?;
    for e in examples {
        w.write_record(&e.encode())?;
    }
    w.finish().map(|_| ())
}

/// Reads every example of an uncompressed TFRecord file.
pub fn read_examples(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    read_examples_with(path, Compression::None)
}

/// Reads every example of a TFRecord file with the given (or detected) compression.
pub fn read_examples_with(
    path: impl AsRef<Path>,
    compression: impl Into<ReadCompression>,
) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let mut out = Vec::new();
    let mut r = RecordReader::open_with(path, compression)?;
    let mut buf = Vec::new();
    loop {
        let off = r.offset();
        if !r.read_into(&mut buf)? {
            break;
        }
        out.push(Example::decode(&buf).map_err(|e| Error::Record {
            path: path.to_path_buf(),
            offset: off,
            msg: e.to_string(),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_negative_int64_roundtrip() {
        let ex = Example::new().with("x", Feature::Int64(vec![-1, i64::MIN, i64::MAX, 0, 300]));
        let back = Example::decode(&ex.encode()).unwrap();
        assert_eq!(back, ex);
    }
}
