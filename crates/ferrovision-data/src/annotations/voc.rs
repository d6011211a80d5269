//! Pascal VOC annotation XML, parsed once for the whole workspace: the VOC dataset source
//! ([`crate::sources::voc`]) turns it into training samples, and `ferrovision-vision`'s VOC
//! evaluation reads ground truth with it.
//!
//! `<filename>` and `<size>` are optional (the image id, the file's stem, and 0 stand in);
//! every object needs `<name>` and a `<bndbox>` with finite `xmin ≤ xmax`, `ymin ≤ ymax`;
//! `<difficult>` is 0/1 (absent: 0). Coordinates are kept as written (VOC's devkit reads them
//! as 1-based inclusive pixel indices, many tools write 0-based values). Errors name the file,
//! the line and the object.

use crate::{Error, Result};
use std::path::Path;

/// One annotated object.
#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    /// Class name.
    pub class: String,
    /// `[xmin, ymin, xmax, ymax]` in pixels, as written.
    pub bbox: [f64; 4],
    /// Marked difficult: ignored by the evaluation.
    pub difficult: bool,
}

/// One annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocAnnotation {
    /// The image id: the annotation file's stem (`raccoon-1`).
    pub image_id: String,
    /// `<filename>` (the image file name), or the id when absent.
    pub filename: String,
    /// `<size><width>`, 0 when absent.
    pub width: u32,
    /// `<size><height>`, 0 when absent.
    pub height: u32,
    /// The objects.
    pub objects: Vec<VocObject>,
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn text_of(n: roxmltree::Node, tag: &str) -> Option<String> {
    child(n, tag)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
}

/// Parses one VOC annotation XML document; `file` names it in errors and gives the image id.
pub fn parse_voc_xml(text: &str, file: impl AsRef<Path>) -> Result<VocAnnotation> {
    let file = file.as_ref();
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        Error::parse(
            file,
            Some(e.pos().row as usize),
            format!("malformed XML (invalid XML: {e})"),
        )
    })?;
    let root = doc.root_element();
    let line = |n: roxmltree::Node| Some(doc.text_pos_at(n.range().start).row as usize);
    if !root.has_tag_name("annotation") {
        return Err(Error::parse(
            file,
            line(root),
            format!("expected <annotation>, got <{}>", root.tag_name().name()),
        ));
    }
    let image_id = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let filename = text_of(root, "filename").unwrap_or_else(|| image_id.clone());
    let size = child(root, "size");
    let dim = |tag: &str| -> Result<u32> {
        match size.and_then(|s| text_of(s, tag)) {
            None => Ok(0),
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                .map(|v| v as u32)
                .ok_or_else(|| {
                    Error::parse(
                        file,
                        size.and_then(&line),
                        format!("<size><{tag}> '{t}' is not a size"),
                    )
                }),
        }
    };
    let (width, height) = (dim("width")?, dim("height")?);
    let mut objects = Vec::new();
    for (i, o) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let err = |msg: String| Error::parse(file, line(o), format!("<object> {i}: {msg}"));
        let class = text_of(o, "name")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("missing <name>".into()))?;
        let difficult = match text_of(o, "difficult").as_deref() {
            None | Some("") | Some("0") => false,
            Some("1") => true,
            Some(t) => return Err(err(format!("<difficult> must be 0 or 1, got '{t}'"))),
        };
        let bb = child(o, "bndbox").ok_or_else(|| err("missing <bndbox>".into()))?;
        let mut bbox = [0.0; 4];
        for (k, tag) in ["xmin", "ymin", "xmax", "ymax"].iter().enumerate() {
            let t = text_of(bb, tag).ok_or_else(|| err(format!("missing <bndbox><{tag}>")))?;
            bbox[k] = t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(format!("<{tag}> '{t}' is not a number")))?;
        }
        if bbox[2] < bbox[0] || bbox[3] < bbox[1] {
            return Err(err(format!("box {bbox:?} has xmax < xmin or ymax < ymin")));
        }
        objects.push(VocObject {
            class,
            bbox,
            difficult,
        });
    }
    Ok(VocAnnotation {
        image_id,
        filename,
        width,
        height,
        objects,
    })
}
