//! CIFAR-10 / CIFAR-100 binary batches (label byte(s) + planar 32x32 RGB per record).

use crate::fsutil::read;
use crate::image::Image;
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::path::Path;

/// Reads a CIFAR-10 (`label_bytes = 1`) or CIFAR-100 (`label_bytes = 2`, fine label used)
/// binary batch: records of label byte(s) + 1024 R + 1024 G + 1024 B bytes.
pub fn cifar_binary(path: impl AsRef<Path>, label_bytes: usize) -> Result<Vec<ImageSample>> {
    let path = path.as_ref();
    let data = read(path)?;
    let rec = label_bytes + 3072;
    if label_bytes == 0 || label_bytes > 2 || data.len() % rec != 0 || data.is_empty() {
        return Err(Error::parse(
            path,
            None,
            format!(
                "size {} is not a multiple of the {rec}-byte CIFAR record",
                data.len()
            ),
        ));
    }
    Ok(data
        .chunks_exact(rec)
        .enumerate()
        .map(|(i, r)| {
            let px = &r[label_bytes..];
            let mut img = Image::new(32, 32, 3, 0u8);
            for p in 0..1024 {
                img.data[p * 3] = px[p];
                img.data[p * 3 + 1] = px[1024 + p];
                img.data[p * 3 + 2] = px[2048 + p];
            }
            let mut s = ImageSample::from_image(img);
            s.label = Some(r[label_bytes - 1] as i64);
            s.file_name = format!("{}#{i}", path.display());
            s
        })
        .collect())
}
