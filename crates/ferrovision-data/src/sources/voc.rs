//! Pascal VOC datasets: one annotation XML per image (parsed by
//! [`crate::annotations::voc`]), images decoded lazily, boxes checked against the image.

#[cfg(feature = "image")]
use crate::annotations::voc::parse_voc_xml;
#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::fsutil::{read, read_to_string};
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
#[cfg(feature = "image")]
use crate::{Error, Result};
use std::path::Path;
#[cfg(feature = "image")]
use std::path::PathBuf;
#[cfg(feature = "image")]
use std::sync::Arc;

// Only the image-decoding VOC loader uses it.
#[cfg(feature = "image")]
fn class_id(classes: &mut Vec<String>, name: &str, fixed: bool) -> Option<i64> {
    if let Some(i) = classes.iter().position(|c| c == name) {
        return Some(i as i64);
    }
    if fixed {
        return None;
    }
    classes.push(name.to_string());
    Some(classes.len() as i64 - 1)
}

// Only the image-decoding VOC loader uses it.
#[cfg(feature = "image")]
fn check_boxes(s: &ImageSample, ann: &Path) -> Result<()> {
    s.validate().map_err(|e| match e {
        Error::Parse { msg, .. } => Error::parse(ann, None, msg),
        other => other,
    })
}

#[cfg(feature = "image")]
/// Loads one VOC sample: reads the XML, the image it names (from `images_dir`), checks sizes
/// and boxes. `classes` fixed: unknown names are errors.
pub fn load_voc(xml_path: &Path, images_dir: &Path, classes: &[String]) -> Result<ImageSample> {
    let xml = read_to_string(xml_path)?;
    let ann = parse_voc_xml(&xml, xml_path)?;
    let (w, h) = (ann.width as usize, ann.height as usize);
    let img_path = images_dir.join(&ann.filename);
    if !img_path.exists() {
        return Err(Error::MissingFile {
            path: xml_path.to_path_buf(),
            missing: img_path,
        });
    }
    let image = decode_rgb8(&read(&img_path)?, &img_path)?;
    if (image.width, image.height) != (w, h) && w != 0 && h != 0 {
        return Err(Error::parse(
            xml_path,
            None,
            format!(
                "<size> says {w}x{h} but {} is {}x{}",
                img_path.display(),
                image.width,
                image.height
            ),
        ));
    }
    let mut cl = classes.to_vec();
    let mut labels = Vec::new();
    for o in &ann.objects {
        let n = &o.class;
        labels.push(class_id(&mut cl, n, true).ok_or_else(|| {
            Error::parse(
                xml_path,
                None,
                format!("unknown class '{n}' (known: {classes:?})"),
            )
        })?);
    }
    // Samples hold f32 pixel positions.
    let boxes = ann
        .objects
        .iter()
        .map(|o| o.bbox.map(|v| v as f32))
        .collect();
    let s = ImageSample {
        image,
        boxes,
        box_labels: labels,
        weight: 1.0,
        file_name: img_path.display().to_string(),
        ..Default::default()
    };
    check_boxes(&s, xml_path)?;
    Ok(s)
}

#[cfg(feature = "image")]
/// A VOC dataset: every `*.xml` in `annotations_dir`, images from `images_dir`.
pub fn voc(
    annotations_dir: impl AsRef<Path>,
    images_dir: impl AsRef<Path>,
    classes: Vec<String>,
    workers: usize,
) -> Result<Dataset<ImageSample>> {
    let ann = annotations_dir.as_ref();
    let mut xmls: Vec<PathBuf> = std::fs::read_dir(ann)
        .map_err(|e| Error::io(ann, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    xmls.sort_by_key(|p| natural_key(p));
    let images = images_dir.as_ref().to_path_buf();
    let classes = Arc::new(classes);
    Ok(
        Dataset::from_vec(xmls).par_map(workers, true, move |p: PathBuf| {
            load_voc(&p, &images, &classes)
        }),
    )
}

/// Sort key that orders `raccoon-2` before `raccoon-10`.
pub fn natural_key(p: &Path) -> (String, u64, String) {
    let s = p
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits_start = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
    let digits: String = s[digits_start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (
        s[..digits_start].to_string(),
        digits.parse().unwrap_or(0),
        s,
    )
}
