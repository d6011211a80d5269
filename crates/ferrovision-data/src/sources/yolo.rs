//! YOLO datasets: `class cx cy w h` label files (normalised) next to an image folder.

#[cfg(feature = "image")]
use super::folder::is_image;
#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::{read, read_to_string};
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::path::Path;
#[cfg(feature = "image")]
use std::path::PathBuf;

/// Parses a YOLO label file (`class cx cy w h` per line, normalised to [0, 1]) into pixel boxes.
pub fn parse_yolo(
    text: &str,
    path: &Path,
    width: usize,
    height: usize,
) -> Result<(Vec<[f32; 4]>, Vec<i64>)> {
    let mut boxes = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() != 5 {
            return Err(Error::parse(
                path,
                Some(i + 1),
                format!("expected 'class cx cy w h', found {} fields", f.len()),
            ));
        }
        let cls: i64 = f[0].parse().map_err(|_| {
            Error::parse(
                path,
                Some(i + 1),
                format!("class '{}' is not an integer", f[0]),
            )
        })?;
        let mut v = [0f32; 4];
        for k in 0..4 {
            v[k] = f[k + 1].parse().map_err(|_| {
                Error::parse(path, Some(i + 1), format!("'{}' is not a number", f[k + 1]))
            })?;
        }
        let [cx, cy, w, h] = v;
        if !(w > 0.0
            && h > 0.0
            && cx - w / 2.0 >= -1e-3
            && cy - h / 2.0 >= -1e-3
            && cx + w / 2.0 <= 1.0 + 1e-3
            && cy + h / 2.0 <= 1.0 + 1e-3)
        {
            return Err(Error::parse(
                path,
                Some(i + 1),
                format!("box {v:?} is empty or outside the unit square"),
            ));
        }
        let (wf, hf) = (width as f32, height as f32);
        boxes.push([
            ((cx - w / 2.0) * wf).max(0.0),
            ((cy - h / 2.0) * hf).max(0.0),
            ((cx + w / 2.0) * wf).min(wf),
            ((cy + h / 2.0) * hf).min(hf),
        ]);
        labels.push(cls);
    }
    Ok((boxes, labels))
}

#[cfg(feature = "image")]
/// A YOLO dataset: every image in `images_dir` with `labels_dir/<stem>.txt` (missing label file
/// = no objects, as in YOLO tools).
pub fn yolo(
    images_dir: impl AsRef<Path>,
    labels_dir: impl AsRef<Path>,
    workers: usize,
) -> Result<Dataset<ImageSample>> {
    let dir = images_dir.as_ref();
    let mut imgs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_image(p))
        .collect();
    imgs.sort();
    let labels = labels_dir.as_ref().to_path_buf();
    Ok(
        Dataset::from_vec(imgs).par_map(workers, true, move |p: PathBuf| -> Result<ImageSample> {
            let image = decode_rgb8(&read(&p)?, &p)?;
            let lp = labels
                .join(p.file_stem().unwrap_or_default())
                .with_extension("txt");
            let (boxes, box_labels) = if lp.exists() {
                parse_yolo(&read_to_string(&lp)?, &lp, image.width, image.height)?
            } else {
                (vec![], vec![])
            };
            Ok(ImageSample {
                image,
                boxes,
                box_labels,
                weight: 1.0,
                file_name: p.display().to_string(),
                ..Default::default()
            })
        }),
    )
}
