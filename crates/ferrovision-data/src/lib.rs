//! # ferrovision-data
//!
//! ferrovision's input pipeline: what `tf.data` and `tf.image` give TensorFlow users.
//!
//! - [`tfrecord`]: TFRecord framing (masked CRC32C), `tf.train.Example`.
//!
//! Design notes and usage are in `docs/data.md`.

mod error;
pub mod fsutil;
pub mod tfrecord;

pub use error::{Error, Result};
