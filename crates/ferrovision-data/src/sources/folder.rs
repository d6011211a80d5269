//! Image folders: `root/<class>/<image>`, class indices from the sorted folder names.

#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::read;
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

const IMAGE_EXT: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "gif", "webp"];

pub(super) fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
}

/// An image-folder index: one sub-folder per class (sorted names give the class indices).
#[derive(Debug, Clone)]
pub struct FolderIndex {
    /// Class names; the index in this list is the label.
    pub classes: Vec<String>,
    /// `(file, label)` pairs, sorted by class then file name.
    pub items: Vec<(PathBuf, i64)>,
}

/// Indexes `root/<class>/<image>`.
pub fn image_folder_index(root: impl AsRef<Path>) -> Result<FolderIndex> {
    let root = root.as_ref();
    let rd = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut classes: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    let mut items = Vec::new();
    for (i, c) in classes.iter().enumerate() {
        let dir = root.join(c);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_image(p))
            .collect();
        files.sort();
        items.extend(files.into_iter().map(|f| (f, i as i64)));
    }
    if classes.is_empty() {
        return Err(Error::invalid(
            "image_folder",
            format!("{} has no class sub-folders", root.display()),
        ));
    }
    Ok(FolderIndex { classes, items })
}

#[cfg(feature = "image")]
/// Reads and decodes one labelled image file.
pub fn load_labelled(path: &Path, label: i64) -> Result<ImageSample> {
    let bytes = read(path)?;
    let mut s = ImageSample::from_image(decode_rgb8(&bytes, path)?);
    s.label = Some(label);
    s.file_name = path.display().to_string();
    Ok(s)
}

#[cfg(feature = "image")]
/// An image-folder dataset decoded by `workers` threads, with its class index.
pub fn image_folder(
    root: impl AsRef<Path>,
    workers: usize,
) -> Result<(Dataset<ImageSample>, Vec<String>)> {
    let idx = image_folder_index(root)?;
    let ds = Dataset::from_vec(idx.items)
        .par_map(workers, true, |(p, l): (PathBuf, i64)| load_labelled(&p, l));
    Ok((ds, idx.classes))
}
