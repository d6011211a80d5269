//! COCO detection datasets: images with their boxes and contiguous labels from an instances
//! JSON file.

#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::read;
use crate::fsutil::read_to_string;
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
use std::collections::BTreeMap;
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

/// Parses a COCO detection JSON. Returns the images (with their annotations) and the category
/// names in label order. Errors name the file and the JSON field (e.g. `annotations[3].bbox`).
pub fn parse_coco(path: impl AsRef<Path>) -> Result<(Vec<CocoImage>, Vec<String>)> {
    let path = path.as_ref();
    let text = read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::parse(path, Some(e.line()), format!("malformed JSON: {e}")))?;
    let field = |f: String| Error::parse(path, None, f);
    let arr = |k: &str| {
        v.get(k)
            .and_then(|a| a.as_array())
            .ok_or_else(|| field(format!("missing array '{k}'")))
    };
    let mut cats: Vec<(i64, String)> = Vec::new();
    for (i, c) in arr("categories")?.iter().enumerate() {
        let id = c
            .get("id")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| field(format!("categories[{i}].id: expected an integer")))?;
        let name = c
            .get("name")
            .and_then(|x| x.as_str())
            .ok_or_else(|| field(format!("categories[{i}].name: expected a string")))?;
        cats.push((id, name.to_string()));
    }
    cats.sort();
    let cat_idx: BTreeMap<i64, i64> = cats
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i as i64))
        .collect();
    let mut images: Vec<CocoImage> = Vec::new();
    let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, im) in arr("images")?.iter().enumerate() {
        let id = im
            .get("id")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| field(format!("images[{i}].id: expected an integer")))?;
        let file = im
            .get("file_name")
            .and_then(|x| x.as_str())
            .ok_or_else(|| field(format!("images[{i}].file_name: expected a string")))?;
        let w = im
            .get("width")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| field(format!("images[{i}].width: expected an integer")))?;
        let h = im
            .get("height")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| field(format!("images[{i}].height: expected an integer")))?;
        by_id.insert(id, images.len());
        images.push(CocoImage {
            file_name: file.to_string(),
            size: (w as usize, h as usize),
            boxes: vec![],
            labels: vec![],
        });
    }
    for (i, a) in arr("annotations")?.iter().enumerate() {
        let img = a
            .get("image_id")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| field(format!("annotations[{i}].image_id: expected an integer")))?;
        let k = *by_id
            .get(&img)
            .ok_or_else(|| field(format!("annotations[{i}].image_id: no image with id {img}")))?;
        let cat = a
            .get("category_id")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| field(format!("annotations[{i}].category_id: expected an integer")))?;
        let label = *cat_idx.get(&cat).ok_or_else(|| {
            field(format!(
                "annotations[{i}].category_id: unknown category {cat}"
            ))
        })?;
        let bb: Vec<f64> = a
            .get("bbox")
            .and_then(|x| x.as_array())
            .map(|b| b.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        if bb.len() != 4 {
            return Err(field(format!(
                "annotations[{i}].bbox: expected [x, y, w, h]"
            )));
        }
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
