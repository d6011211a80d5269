//! # ferrovision-io
//!
//! The file layer every other ferrovision crate builds on (it depends only on the tensor
//! engine):
//!
//! - [`fsutil`]: atomic writes ([`AtomicFile`], [`write_atomic`]: a temporary file in the same
//!   folder, synced, then renamed), so a crash never leaves a half-written file under its final
//!   name; reads that name the file in their error.
//! - [`record`]: TFRecord record framing (`u64 length | masked CRC32C | data | masked CRC32C`)
//!   and CRC32C, shared by TFRecord datasets (`ferrovision-data`, which adds compression and
//!   `tf.train.Example`) and TensorBoard event files (`ferrovision-train`).
//! - [`pyfmt`]: Python-compatible number formatting (`repr(float)`, `'{:.Nf}'`, `'{:.Ne}'`) for
//!   logs, checkpoint names and pycocotools-identical summaries.
//! - [`protobuf`]: the protocol-buffers wire format by hand ([`protobuf::WireReader`] and the
//!   `put_*` encoders), shared by `tf.train.Example` (`ferrovision-data`) and ONNX models
//!   (`ferrovision-import`).
//! - [`safetensors`]: named f32 tensors plus string metadata in one safetensors file (weights,
//!   model files, checkpoints).

pub mod crash;
mod error;
pub mod fsutil;
pub mod protobuf;
pub mod pyfmt;
pub mod record;
pub mod safetensors;

pub use self::safetensors::{load_safetensors, save_safetensors, SafetensorsFile};
pub use error::{Error, Result};
pub use fsutil::{read, read_to_string, write_atomic, AtomicFile};
pub use record::{FramedWriter, RecordHeader};
