//! TFRecord files as datasets of raw records or decoded `tf.train.Example`s (streamed,
//! CRC-checked, optionally compressed).

use crate::dataset::Dataset;
use crate::tfrecord::{Example, ReadCompression, RecordReader};
use crate::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// The raw records of uncompressed TFRecord files, streamed (CRC-checked).
pub fn tfrecord(paths: Vec<PathBuf>) -> Dataset<Vec<u8>> {
    tfrecord_with(paths, crate::tfrecord::Compression::None)
}

/// The raw records of TFRecord files compressed as given (`Compression::Gzip`, ...) or
/// detected per file (`ReadCompression::Auto`), streamed through the decoder (CRC-checked).
pub fn tfrecord_with(
    paths: Vec<PathBuf>,
    compression: impl Into<ReadCompression>,
) -> Dataset<Vec<u8>> {
    let paths = Arc::new(paths);
    let compression = compression.into();
    Dataset::from_factory("tfrecord", move || {
        let paths: Vec<PathBuf> = paths.iter().cloned().collect();
        Ok(paths
            .into_iter()
            .flat_map(move |p| match RecordReader::open_with(&p, compression) {
                Ok(r) => Box::new(r) as Box<dyn Iterator<Item = Result<Vec<u8>>> + Send>,
                Err(e) => Box::new(std::iter::once(Err(e))),
            }))
    })
}

/// The `tf.train.Example`s of uncompressed TFRecord files.
pub fn tfrecord_examples(paths: Vec<PathBuf>) -> Dataset<Example> {
    tfrecord(paths).map(|r| Example::decode(&r))
}

/// The `tf.train.Example`s of TFRecord files compressed as given or detected per file.
pub fn tfrecord_examples_with(
    paths: Vec<PathBuf>,
    compression: impl Into<ReadCompression>,
) -> Dataset<Example> {
    tfrecord_with(paths, compression).map(|r| Example::decode(&r))
}
