//! `--data` specifications: `builtin`, `mnist:<dir>`, `fashion-mnist:<dir>`.

use crate::builtin;
use crate::error::{CliError, Result};
use ferrovision_nn::datasets::mnist::{
    load_fashion_mnist, load_mnist, Split, FASHION_MNIST_CLASSES, MNIST_CLASSES,
};
use ferrovision_nn::tensor::Tensor;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    /// The MNIST slice embedded in the binary.
    Builtin,
    /// MNIST IDX files in a directory.
    Mnist(PathBuf),
    /// Fashion-MNIST IDX files in a directory.
    FashionMnist(PathBuf),
}

impl FromStr for DataSpec {
    type Err = CliError;

    fn from_str(s: &str) -> Result<Self> {
        if s == "builtin" {
            return Ok(DataSpec::Builtin);
        }
        let (kind, dir) = s.split_once(':').ok_or_else(|| {
            CliError::new(format!(
                "'{s}' is not a data source; use builtin, mnist:<dir> or fashion-mnist:<dir>"
            ))
        })?;
        if dir.is_empty() {
            return Err(CliError::new(format!(
                "'{s}' names no directory; write {kind}:<dir>, e.g. {kind}:/data/{kind}"
            )));
        }
        match kind {
            "mnist" => Ok(DataSpec::Mnist(dir.into())),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DataSpec::FashionMnist(dir.into())),
            _ => Err(CliError::new(format!(
                "unknown dataset '{kind}' in '{s}'; use builtin, mnist:<dir> or fashion-mnist:<dir>"
            ))),
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Builtin => write!(f, "builtin"),
            DataSpec::Mnist(d) => write!(f, "mnist:{}", d.display()),
            DataSpec::FashionMnist(d) => write!(f, "fashion-mnist:{}", d.display()),
        }
    }
}

impl DataSpec {
    /// One split: images `[N, 1, 28, 28]` in `[0, 1]`, labels `[N]` i64.
    pub fn load(&self, split: Split) -> Result<(Tensor, Tensor)> {
        match self {
            DataSpec::Builtin => builtin::digits(split),
            DataSpec::Mnist(d) => Ok(load_mnist(d, split)?),
            DataSpec::FashionMnist(d) => Ok(load_fashion_mnist(d, split)?),
        }
    }

    /// The class names of this dataset.
    pub fn class_names(&self) -> &'static [&'static str; 10] {
        match self {
            DataSpec::FashionMnist(_) => &FASHION_MNIST_CLASSES,
            _ => &MNIST_CLASSES,
        }
    }
}

/// The first `n` samples of (images, labels), or all of them when `n` is `None` or larger.
pub fn take(data: (Tensor, Tensor), n: Option<usize>) -> Result<(Tensor, Tensor)> {
    let (x, y) = data;
    match n {
        Some(n) if n < x.shape()[0] => {
            if n == 0 {
                return Err(CliError::new("--limit must be at least 1"));
            }
            Ok((
                x.narrow(0, 0, n)?.contiguous()?,
                y.narrow(0, 0, n)?.contiguous()?,
            ))
        }
        _ => Ok((x, y)),
    }
}
