//! Segmentation pairs: an image and its class-index mask PNG, listed in a pair file
//! (CamVid's `train.txt`) or given directly.

#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::read;
use crate::fsutil::read_to_string;
#[cfg(feature = "image")]
use crate::image::{decode, decode_rgb8};
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

#[cfg(feature = "image")]
/// Loads an image and its class-index PNG (one channel, 8-bit), checking that sizes match.
pub fn load_seg_pair(image: &Path, mask: &Path) -> Result<ImageSample> {
    let img = decode_rgb8(&read(image)?, image)?;
    let m = decode(&read(mask)?, mask)?.into_u8();
    let m = if m.channels == 1 {
        m
    } else {
        return Err(Error::image(
            mask,
            format!("class-index mask must have 1 channel, has {}", m.channels),
        ));
    };
    if (m.width, m.height) != (img.width, img.height) {
        return Err(Error::image(
            mask,
            format!(
                "mask is {}x{}, image {} is {}x{}",
                m.width,
                m.height,
                image.display(),
                img.width,
                img.height
            ),
        ));
    }
    Ok(ImageSample {
        image: img,
        label_map: Some(m),
        weight: 1.0,
        file_name: image.display().to_string(),
        ..Default::default()
    })
}

/// Reads a pair list (`image mask` per line, like CamVid's `train.txt`), resolving each path
/// against `root` after stripping `strip_prefix`. Missing files are errors naming the list line.
pub fn seg_pair_list(
    list: impl AsRef<Path>,
    root: impl AsRef<Path>,
    strip_prefix: &str,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let list = list.as_ref();
    let text = read_to_string(list)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() != 2 {
            return Err(Error::parse(
                list,
                Some(i + 1),
                format!("expected 'image mask', found {} fields", f.len()),
            ));
        }
        let res = |s: &str| {
            root.as_ref().join(
                s.strip_prefix(strip_prefix)
                    .unwrap_or(s)
                    .trim_start_matches('/'),
            )
        };
        let (a, b) = (res(f[0]), res(f[1]));
        for p in [&a, &b] {
            if !p.exists() {
                return Err(Error::MissingFile {
                    path: list.to_path_buf(),
                    missing: p.clone(),
                });
            }
        }
        out.push((a, b));
    }
    Ok(out)
}

/// A segmentation dataset from `(image, mask)` pairs, decoded by `workers` threads.
#[cfg(feature = "image")]
pub fn seg_pairs(pairs: Vec<(PathBuf, PathBuf)>, workers: usize) -> Dataset<ImageSample> {
    Dataset::from_vec(pairs).par_map(workers, true, |(a, b): (PathBuf, PathBuf)| {
        load_seg_pair(&a, &b)
    })
}
