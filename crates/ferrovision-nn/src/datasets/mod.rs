//! Readers for standard datasets stored on disk.
//!
//! - [`idx`]: the IDX binary format (raw or gzipped) that MNIST-style datasets use.
//! - [`mnist`]: MNIST and Fashion-MNIST from a directory of IDX files, as tensors ready for a
//!   channels-first model (`[N, 1, 28, 28]` images in `[0, 1]`, `[N]` int64 labels).

pub mod idx;
pub mod mnist;
