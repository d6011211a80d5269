//! `--data` specifications and loading them: `builtin`, `mnist:<dir>`, `fashion-mnist:<dir>`,
//! `cifar10:<dir>` and `folder:<dir>`.
//!
//! Every source loads one split into memory as [`Labelled`] images: `[N, C, H, W]` f32 in
//! `[0, 1]`, `[N]` i64 labels and the class names. The IDX sources give 1x28x28 grey digits;
//! image-file sources (CIFAR-10's JPEG tars, image folders) are decoded by worker threads and
//! resized to the requested shape (the model's, when evaluating) or to their first image's size.
//! Files of class-per-folder sources are listed class-interleaved (first image of every class,
//! then the second, ...), so `--limit N` takes a class-balanced slice instead of one class.

use crate::builtin;
use crate::error::{io_err, CliError, Context, Result};
use ferrovision_data::fsutil::read;
use ferrovision_data::image::decode_rgb8;
use ferrovision_data::sources::{cifar_binary, image_folder_index, tar_index, tar_read, TarEntry};
use ferrovision_data::{Dataset, Filter, Image};
use ferrovision_nn::datasets::mnist::{
    load_fashion_mnist, load_mnist, Split, FASHION_MNIST_CLASSES, MNIST_CLASSES,
};
use ferrovision_nn::tensor::Tensor;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// The data sources `--data` accepts, for error messages.
const SOURCES: &str = "builtin, mnist:<dir>, fashion-mnist:<dir>, cifar10:<dir> or folder:<dir>";

/// CIFAR-10's classes in label order (alphabetical, so the JPEG tars' folders sort the same).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    /// The MNIST slice embedded in the binary.
    Builtin,
    /// MNIST IDX files in a directory.
    Mnist(PathBuf),
    /// Fashion-MNIST IDX files in a directory.
    FashionMnist(PathBuf),
    /// CIFAR-10 in a directory: the binary batches (`data_batch_1.bin` ... `test_batch.bin`) or
    /// the JPEG tars `cifar10-train.tar` / `cifar10-test.tar`.
    Cifar10(PathBuf),
    /// Images in `<dir>/train/<class>/` and `<dir>/test/<class>/` (or `val/`).
    Folder(PathBuf),
}

impl FromStr for DataSpec {
    type Err = CliError;

    fn from_str(s: &str) -> Result<Self> {
        if s == "builtin" {
            return Ok(DataSpec::Builtin);
        }
        let (kind, dir) = s
            .split_once(':')
            .ok_or_else(|| CliError::new(format!("'{s}' is not a data source; use {SOURCES}")))?;
        if dir.is_empty() {
            return Err(CliError::new(format!(
                "'{s}' names no directory; write {kind}:<dir>, e.g. {kind}:/data/{kind}"
            )));
        }
        match kind {
            "mnist" => Ok(DataSpec::Mnist(dir.into())),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DataSpec::FashionMnist(dir.into())),
            "cifar10" | "cifar-10" => Ok(DataSpec::Cifar10(dir.into())),
            "folder" => Ok(DataSpec::Folder(dir.into())),
            _ => Err(CliError::new(format!(
                "unknown dataset '{kind}' in '{s}'; use {SOURCES}"
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
            DataSpec::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DataSpec::Folder(d) => write!(f, "folder:{}", d.display()),
        }
    }
}

/// One split of a labelled image dataset, in memory (plain vectors, so the input pipeline takes
/// the pixels over without a copy).
#[derive(Debug, Clone)]
pub struct Labelled {
    /// `N` images of `shape`, CHW order, f32 in `[0, 1]`.
    pub pixels: Vec<f32>,
    /// Per-image shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// `N` class indices.
    pub labels: Vec<i64>,
    /// Class names; a label indexes this list.
    pub classes: Vec<String>,
}

impl Labelled {
    /// Images `[N, C, H, W]` and labels `[N]` as tensors.
    fn from_tensors(x: Tensor, y: Tensor, classes: Vec<String>) -> Result<Self> {
        let s = x.shape().to_vec();
        if s.len() != 4 || y.shape() != [s[0]] {
            return Err(CliError::new(format!(
                "images of shape {s:?} with labels of shape {:?}; expected [N, C, H, W] and [N]",
                y.shape()
            )));
        }
        Ok(Labelled {
            pixels: x.contiguous()?.to_vec::<f32>()?,
            shape: [s[1], s[2], s[3]],
            labels: y.to_vec::<i64>()?,
            classes,
        })
    }

    /// Per-image shape `[C, H, W]`.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True without images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How to load a split.
#[derive(Debug, Clone, Default)]
pub struct LoadOpts {
    /// Keep only the first `n` images.
    pub limit: Option<usize>,
    /// The `[C, H, W]` the images must have (image files are converted and resized to it;
    /// in-memory sources must already have it).
    pub shape: Option<[usize; 3]>,
    /// Threads that decode image files.
    pub workers: usize,
}

impl DataSpec {
    /// Loads one split.
    pub fn load(&self, split: Split, opts: &LoadOpts) -> Result<Labelled> {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (x, y, classes) = match self {
            DataSpec::Builtin => {
                let (x, y) = take(builtin::digits(split)?, opts.limit)?;
                (x, y, names(&MNIST_CLASSES))
            }
            DataSpec::Mnist(d) => {
                let (x, y) = take(load_mnist(d, split)?, opts.limit)?;
                (x, y, names(&MNIST_CLASSES))
            }
            DataSpec::FashionMnist(d) => {
                let (x, y) = take(load_fashion_mnist(d, split)?, opts.limit)?;
                (x, y, names(&FASHION_MNIST_CLASSES))
            }
            DataSpec::Cifar10(d) => return load_cifar10(d, split, opts),
            DataSpec::Folder(d) => return load_folder(d, split, opts),
        };
        let data = Labelled::from_tensors(x, y, classes)?;
        if let Some(want) = opts.shape {
            if data.image_shape() != want {
                return Err(CliError::new(format!(
                    "{self} holds {} images; the model takes {}",
                    shape_str(data.image_shape()),
                    shape_str(want)
                )));
            }
        }
        Ok(data)
    }
}

/// `CxHxW`.
pub fn shape_str(s: [usize; 3]) -> String {
    format!("{}x{}x{}", s[0], s[1], s[2])
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

/// One image file of a class-per-folder source: a file on disk or an entry of a tar.
#[derive(Debug, Clone)]
enum ImageRef {
    File(PathBuf),
    Tar(Arc<(PathBuf, std::fs::File)>, TarEntry),
}

impl ferrovision_data::DataElement for ImageRef {}

impl ImageRef {
    fn decode(&self) -> ferrovision_data::Result<Image<u8>> {
        match self {
            ImageRef::File(p) => decode_rgb8(&read(p)?, p),
            ImageRef::Tar(tar, e) => {
                let bytes = tar_read(&tar.1, &tar.0, e)?;
                decode_rgb8(&bytes, format!("{}:{}", tar.0.display(), e.name))
            }
        }
    }
}

/// Orders `(item, label)` pairs class-interleaved: the first of every class, then the second,
/// ... (stable within a class), so any prefix is class-balanced.
fn interleave<T>(items: Vec<(T, i64)>) -> Vec<(T, i64)> {
    let mut seen = std::collections::HashMap::<i64, usize>::new();
    let mut keyed: Vec<(usize, i64, T)> = items
        .into_iter()
        .map(|(t, l)| {
            let k = seen.entry(l).or_default();
            *k += 1;
            (*k, l, t)
        })
        .collect();
    keyed.sort_by_key(|&(k, l, _)| (k, l));
    keyed.into_iter().map(|(_, l, t)| (t, l)).collect()
}

/// Decodes `items` (after `opts.limit`) with `opts.workers` threads, converts them to
/// `opts.shape` (or the first image's shape) and stacks them.
fn decode_all(
    items: Vec<(ImageRef, i64)>,
    classes: Vec<String>,
    opts: &LoadOpts,
    what: &str,
) -> Result<Labelled> {
    let mut items = interleave(items);
    if let Some(n) = opts.limit {
        if n == 0 {
            return Err(CliError::new("--limit must be at least 1"));
        }
        items.truncate(n);
    }
    if items.is_empty() {
        return Err(CliError::new(format!("{what} holds no images")));
    }
    let shape = match opts.shape {
        Some(s) => s,
        None => {
            let first = items[0].0.decode()?;
            [3, first.height, first.width]
        }
    };
    let labels: Vec<i64> = items.iter().map(|(_, l)| *l).collect();
    let n = items.len();
    let decoded = Dataset::from_vec(items.into_iter().map(|(r, _)| r).collect())
        .par_map(opts.workers.max(1), true, move |r: ImageRef| {
            to_chw_u8(r.decode()?, shape)
        })
        .collect_vec()
        .context(what)?;
    let mut pixels = Vec::with_capacity(n * shape.iter().product::<usize>());
    for d in decoded {
        pixels.extend(d.iter().map(|&v| v as f32 / 255.0));
    }
    Ok(Labelled {
        pixels,
        shape,
        labels,
        classes,
    })
}

/// An RGB image as `[C, H, W]` f32 in `[0, 1]`: grey when `C = 1`, resized (bilinear) to
/// `H x W` when its size differs.
pub fn to_chw(img: Image<u8>, shape: [usize; 3]) -> ferrovision_data::Result<Vec<f32>> {
    Ok(to_chw_u8(img, shape)?
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect())
}

/// [`to_chw`] before scaling: 8-bit values (a quarter of the memory while a split decodes).
fn to_chw_u8(img: Image<u8>, [c, h, w]: [usize; 3]) -> ferrovision_data::Result<Vec<u8>> {
    let img = match c {
        1 => img.to_grey()?,
        3 => img,
        _ => {
            return Err(ferrovision_data::Error::invalid(
                "image",
                format!("models taking {c} channels cannot read RGB images (use 1 or 3)"),
            ))
        }
    };
    let img = if (img.height, img.width) != (h, w) {
        img.resize(w, h, Filter::Bilinear)?
    } else {
        img
    };
    let mut out = vec![0u8; c * h * w];
    for (i, &v) in img.data.iter().enumerate() {
        // HWC -> CHW.
        out[(i % c) * h * w + i / c] = v;
    }
    Ok(out)
}

/// `folder:<dir>`: `<dir>/train/<class>/*` and `<dir>/test/<class>/*` (or `val/`); the
/// classes are the training split's folder names, sorted.
fn load_folder(dir: &Path, split: Split, opts: &LoadOpts) -> Result<Labelled> {
    let layout = || {
        format!(
            "folder:{0} expects one folder per split with one sub-folder per class: \
             {0}/train/<class>/<image> and {0}/test/<class>/<image> (or val/)",
            dir.display()
        )
    };
    if !dir.is_dir() {
        return Err(
            CliError::new(format!("{}: no such directory", dir.display())).context(layout()),
        );
    }
    let train_dir = dir.join("train");
    let split_dir = match split {
        Split::Train => train_dir.clone(),
        Split::Test => ["test", "val"]
            .iter()
            .map(|s| dir.join(s))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| dir.join("test")),
    };
    if !split_dir.is_dir() {
        return Err(CliError::new(layout()));
    }
    // Labels come from the training split's classes, so both splits number them alike.
    let class_dir = if train_dir.is_dir() {
        &train_dir
    } else {
        &split_dir
    };
    let classes = image_folder_index(class_dir)?.classes;
    let idx = image_folder_index(&split_dir)?;
    let mut items = Vec::with_capacity(idx.items.len());
    for (path, l) in idx.items {
        let name = &idx.classes[l as usize];
        let label = classes.iter().position(|c| c == name).ok_or_else(|| {
            CliError::new(format!(
                "{}: class '{name}' is not among the training classes ({})",
                split_dir.display(),
                classes.join(", ")
            ))
        })?;
        items.push((ImageRef::File(path), label as i64));
    }
    decode_all(items, classes, opts, &split_dir.display().to_string())
}

/// `cifar10:<dir>`: the binary batches (`data_batch_{1..5}.bin`, `test_batch.bin`, also inside
/// `cifar-10-batches-bin/`) or the JPEG tars (`cifar10-train.tar`, `cifar10-test.tar`, entries
/// `<split>/<class>/<n>.jpg`).
fn load_cifar10(dir: &Path, split: Split, opts: &LoadOpts) -> Result<Labelled> {
    let classes: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    let tar = dir.join(match split {
        Split::Train => "cifar10-train.tar",
        Split::Test => "cifar10-test.tar",
    });
    if tar.is_file() {
        let entries = tar_index(&tar)?;
        let file = std::fs::File::open(&tar).map_err(|e| io_err(&tar, e))?;
        let shared = Arc::new((tar.clone(), file));
        let mut items = Vec::new();
        for e in entries {
            let p = Path::new(&e.name);
            let is_image = p
                .extension()
                .is_some_and(|x| ["jpg", "jpeg", "png"].contains(&x.to_string_lossy().as_ref()));
            if !is_image {
                continue;
            }
            let class = p
                .parent()
                .and_then(|d| d.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = classes.iter().position(|c| *c == class).ok_or_else(|| {
                CliError::new(format!(
                    "{}: entry {} is in folder '{class}', not a CIFAR-10 class",
                    tar.display(),
                    e.name
                ))
            })?;
            items.push((ImageRef::Tar(shared.clone(), e), label as i64));
        }
        return decode_all(items, classes, opts, &tar.display().to_string());
    }
    let bin_dir = if dir.join("cifar-10-batches-bin").is_dir() {
        dir.join("cifar-10-batches-bin")
    } else {
        dir.to_path_buf()
    };
    let files: Vec<PathBuf> = match split {
        Split::Train => (1..=5)
            .map(|i| bin_dir.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test => vec![bin_dir.join("test_batch.bin")],
    };
    if !files[0].is_file() {
        return Err(CliError::new(format!(
            "cifar10:{}: found neither the binary batches ({}) nor {}",
            dir.display(),
            files[0].display(),
            tar.display()
        )));
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files.iter().filter(|f| f.is_file()) {
        for s in cifar_binary(f, 1)? {
            if opts.limit.is_some_and(|n| images.len() >= n) {
                break;
            }
            labels.push(s.label.unwrap_or(0));
            images.push(s.image);
        }
    }
    if opts.limit == Some(0) {
        return Err(CliError::new("--limit must be at least 1"));
    }
    let shape = opts.shape.unwrap_or([3, 32, 32]);
    let n = images.len();
    let mut pixels = Vec::with_capacity(n * shape.iter().product::<usize>());
    for img in images {
        pixels.extend(to_chw(img, shape)?);
    }
    Ok(Labelled {
        pixels,
        shape,
        labels,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_takes_one_of_each_class_in_turn() {
        let items = vec![
            ("a0", 0),
            ("a1", 0),
            ("a2", 0),
            ("b0", 1),
            ("c0", 2),
            ("c1", 2),
        ];
        let out: Vec<&str> = interleave(items).into_iter().map(|(t, _)| t).collect();
        assert_eq!(out, ["a0", "b0", "c0", "a1", "c1", "a2"]);
    }

    #[test]
    fn rgb_to_chw_grey_and_resize() {
        let img = Image::from_vec(2, 1, 3, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let chw = to_chw(img.clone(), [3, 1, 2]).unwrap();
        assert_eq!(chw, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let grey = to_chw(img.clone(), [1, 1, 2]).unwrap();
        assert_eq!(grey.len(), 2);
        assert!(
            grey[0] > grey[1],
            "red is brighter than blue in BT.601 luma"
        );
        assert_eq!(to_chw(img.clone(), [3, 4, 4]).unwrap().len(), 48);
        assert!(to_chw(img, [2, 1, 2]).is_err());
    }
}
