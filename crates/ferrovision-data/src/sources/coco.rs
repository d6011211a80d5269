//! COCO detection datasets: images with their boxes and contiguous labels from an instances
//! JSON file, read by the workspace's one COCO parser ([`crate::annotations::coco`]).

use crate::annotations::coco::read_coco_instances;
#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::read;
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// One image of a COCO file with its annotations (boxes in pixels `[x0, y0, x1, y1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImage {
    /// Image file name.
    pub file_name: String,
    /// Width and height from the JSON.
    pub size: (usize, usize),
    /// Boxes converted from COCO `[x, y, w, h]`.
    pub boxes: Vec<[f32; 4]>,
    /// Contiguous class indices (position of the category id in the sorted category list).
    pub labels: Vec<i64>,
}

impl crate::element::DataElement for CocoImage {}

/// Parses a COCO detection JSON (with [`crate::annotations::coco`]). Returns the images (with
/// their annotations) and the category names in label order. Besides the parser's checks, every
/// image needs `file_name`, `width` and `height`, every category a `name`, and every box must be
/// non-empty and inside its image. Errors name the file and the JSON field (e.g.
/// `annotations[3].bbox`).
pub fn parse_coco(path: impl AsRef<Path>) -> Result<(Vec<CocoImage>, Vec<String>)> {
    let path = path.as_ref();
    let file = read_coco_instances(path)?;
    let field = |f: String| Error::parse(path, None, f);
    let mut cats: Vec<(i64, String)> = Vec::with_capacity(file.categories.len());
    for (i, c) in file.categories.into_iter().enumerate() {
        let name = c
            .name
            .ok_or_else(|| field(format!("categories[{i}].name: expected a string")))?;
        cats.push((c.id, name));
    }
    // Ids are unique (checked by the parser): sorting by id gives the label order.
    cats.sort();
    let cat_idx: HashMap<i64, i64> = cats
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i as i64))
        .collect();
    let mut images: Vec<CocoImage> = Vec::with_capacity(file.images.len());
    let mut by_id: HashMap<i64, usize> = HashMap::with_capacity(file.images.len());
    for (i, im) in file.images.into_iter().enumerate() {
        let need = |f: &str| field(format!("images[{i}].{f}: expected an integer"));
        let file_name = im
            .file_name
            .ok_or_else(|| field(format!("images[{i}].file_name: expected a string")))?;
        let w = im.width.ok_or_else(|| need("width"))?;
        let h = im.height.ok_or_else(|| need("height"))?;
        by_id.insert(im.id, images.len());
        images.push(CocoImage {
            file_name,
            size: (w as usize, h as usize),
            boxes: vec![],
            labels: vec![],
        });
    }
    for (i, a) in file.annotations.iter().enumerate() {
        // The parser checked that both ids name entries of the file.
        let (Some(&k), Some(&label)) = (by_id.get(&a.image_id), cat_idx.get(&a.category_id)) else {
            return Err(field(format!(
                "annotations[{i}]: image {} or category {} not found",
                a.image_id, a.category_id
            )));
        };
        let bb = a.bbox;
        let (w, h) = images[k].size;
        let b = [
            bb[0] as f32,
            bb[1] as f32,
            (bb[0] + bb[2]) as f32,
            (bb[1] + bb[3]) as f32,
        ];
        if !(bb[2] > 0.0
            && bb[3] > 0.0
            && b[0] >= 0.0
            && b[1] >= 0.0
            && b[2] <= w as f32 + 0.5
            && b[3] <= h as f32 + 0.5)
        {
            return Err(field(format!(
                "annotations[{i}].bbox: {bb:?} is empty or outside the {w}x{h} image"
            )));
        }
        images[k]
            .boxes
            .push([b[0], b[1], b[2].min(w as f32), b[3].min(h as f32)]);
        images[k].labels.push(label);
    }
    Ok((images, cats.into_iter().map(|c| c.1).collect()))
}

#[cfg(feature = "image")]
/// A COCO detection dataset (images from `images_dir`) and its category names.
pub fn coco(
    json: impl AsRef<Path>,
    images_dir: impl AsRef<Path>,
    workers: usize,
) -> Result<(Dataset<ImageSample>, Vec<String>)> {
    let json = json.as_ref().to_path_buf();
    let (imgs, cats) = parse_coco(&json)?;
    let dir = images_dir.as_ref().to_path_buf();
    let ds = Dataset::from_vec(imgs).par_map(
        workers,
        true,
        move |c: CocoImage| -> Result<ImageSample> {
            let p = dir.join(&c.file_name);
            if !p.exists() {
                return Err(Error::MissingFile {
                    path: json.clone(),
                    missing: p,
                });
            }
            let image = decode_rgb8(&read(&p)?, &p)?;
            Ok(ImageSample {
                image,
                boxes: c.boxes,
                box_labels: c.labels,
                weight: 1.0,
                file_name: p.display().to_string(),
                ..Default::default()
            })
        },
    );
    Ok((ds, cats))
}
