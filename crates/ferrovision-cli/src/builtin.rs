//! The digits dataset compiled into the binary: a class-balanced slice of real MNIST (6000
//! training and 1000 test images; see `data/README.md` for how it was made and its licence,
//! CC BY-SA 3.0).

use crate::error::Result;
use ferrovision_nn::datasets::mnist::{decode_pair, Split};
use ferrovision_nn::tensor::Tensor;
use std::path::Path;

const TRAIN_IMAGES: &[u8] = include_bytes!("../data/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../data/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../data/test-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../data/test-labels-idx1-ubyte.gz");

/// Number of embedded training images.
pub const TRAIN_LEN: usize = 6000;
/// Number of embedded test images.
pub const TEST_LEN: usize = 1000;

/// Decodes one split of the embedded digits: images `[N, 1, 28, 28]` f32 in `[0, 1]`, labels
/// `[N]` i64.
pub fn digits(split: Split) -> Result<(Tensor, Tensor)> {
    let (images, labels, name) = match split {
        Split::Train => (TRAIN_IMAGES, TRAIN_LABELS, "train"),
        Split::Test => (TEST_IMAGES, TEST_LABELS, "test"),
    };
    let img_name = format!("<builtin>/{name}-images-idx3-ubyte.gz");
    let lab_name = format!("<builtin>/{name}-labels-idx1-ubyte.gz");
    Ok(decode_pair(
        images,
        Path::new(&img_name),
        labels,
        Path::new(&lab_name),
    )?)
}

/// The licence line printed by `demo` and `--help`.
pub const LICENCE: &str =
    "built-in digits: a 7000-image slice of MNIST (Yann LeCun, Corinna Cortes, \
Christopher J. C. Burges), CC BY-SA 3.0";
