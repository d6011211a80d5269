//! # ferrovision-data
//!
//! ferrovision's input pipeline: what `tf.data` and `tf.image` give TensorFlow users.
//!
//! - [`Dataset`]: a lazy, composable dataset (sources, parallel `map`, `shuffle`, `batch`,
//!   `prefetch`, `cache`, `interleave`, `shard`, `ignore_errors`, per-stage [`StatsReport`]).
//! - [`image`]: decode/encode, resize, crop, pad, flip, colour, normalise.
//! - [`sample`]: [`ImageSample`] (decoded image + pixel targets) and [`Sample`] (tensors).
//! - [`augment`]: seeded augmentation that keeps boxes, label maps and masks aligned.
//! - [`fused`]: fused crop/resize/flip + colour jitter straight into f32 `[C, H, W]` slots.
//! - [`annotations`]: annotation formats (Pascal VOC XML) parsed once for sources and evaluation.
//! - [`tfrecord`]: TFRecord files: GZIP/ZLIB compression and `tf.train.Example` on top of
//!   `ferrovision-io`'s record framing (masked CRC32C).
//!
//! Design notes and usage are in `docs/data.md`.

pub mod annotations;
pub mod augment;
mod background;
pub mod dataset;
pub mod element;
mod error;
pub mod fused;
pub mod image;
pub mod sample;
pub mod sources;
pub mod stats;
pub mod tfrecord;
#[cfg(feature = "video")]
pub mod video;
pub mod viz;

pub use augment::{Affine, Augment, Op};
pub use background::MAX_WORKERS;
pub use dataset::{mix_seed, Dataset, DatasetIter};
pub use element::{Batchable, Cacheable, DataElement, PaddedBatchable, Unbatchable};
pub use error::{Error, Result};
/// Atomic writes and file reads (moved to `ferrovision-io`; re-exported for existing users).
pub use ferrovision_io::fsutil;
pub use image::{DynImage, Filter, Image, Normalize};
pub use sample::{ImageSample, Sample, SamplePad};
pub use stats::{StageRow, StatsReport};
