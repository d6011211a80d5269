//! COCO instances (ground truth) and results (detections) JSON, parsed once for the whole
//! workspace: the COCO dataset source ([`crate::sources::coco`], [`crate::sources::parse_coco`])
//! builds training samples from [`CocoInstances`], and `ferrovision-vision`'s COCO evaluation
//! builds its ground truth and detections from [`CocoInstances`] and [`CocoDetectionEntry`].
//!
//! The parser checks the file's structure and nothing a user decides: the three top-level
//! arrays, the type of every field it reads, unique image / category / annotation ids, that
//! every annotation names an image and a category of the file, and boxes `[x, y, w, h]` of
//! four finite numbers with `w, h >= 0`. Everything else is kept for the user to require:
//! annotation `id` (pycocotools needs it, training data often lacks it), image `file_name`,
//! `width`, `height`, category `name`, `area`, and `segmentation` (kept as the raw JSON value:
//! polygons `[[x, y, ...], ...]` or an RLE object `{size, counts}`, moved out of the parsed
//! document, not copied). Integer fields accept integral floats (`3.0`), as some exporters
//! write them.
//!
//! Errors are [`Error::Parse`] naming the file and the entry, with the field as a path:
//! `annotations[12].bbox: must have 4 numbers, got 3`; an annotation that has an id names it,
//! `annotations[12] (id 7).image_id: ...`; detections are `detection 3`.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::Path;

/// One entry of `images`.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImageEntry {
    /// Image id (unique in the file).
    pub id: i64,
    /// `file_name`, if given.
    pub file_name: Option<String>,
    /// `width` in pixels, if given.
    pub width: Option<u32>,
    /// `height` in pixels, if given.
    pub height: Option<u32>,
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoCategoryEntry {
    /// Category id (unique in the file).
    pub id: i64,
    /// `name`, if given.
    pub name: Option<String>,
}

/// One entry of `annotations`.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoAnnotationEntry {
    /// Annotation id (unique in the file when given).
    pub id: Option<i64>,
    /// Id of an image of the file.
    pub image_id: i64,
    /// Id of a category of the file.
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels (finite, `w, h >= 0`).
    pub bbox: [f64; 4],
    /// `area`, if given (finite).
    pub area: Option<f64>,
    /// `iscrowd` (0/1 or false/true; absent: false).
    pub iscrowd: bool,
    /// `segmentation` as written: polygons or an RLE object (not checked here).
    pub segmentation: Option<Value>,
}

/// A COCO instances (ground truth) file, entries in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoInstances {
    /// `images`.
    pub images: Vec<CocoImageEntry>,
    /// `categories`.
    pub categories: Vec<CocoCategoryEntry>,
    /// `annotations`.
    pub annotations: Vec<CocoAnnotationEntry>,
}

/// One detection of a COCO results file (a JSON list of these).
#[derive(Debug, Clone, PartialEq)]
pub struct CocoDetectionEntry {
    /// Image id (not checked against any ground truth here).
    pub image_id: i64,
    /// Category id (not checked against any ground truth here).
    pub category_id: i64,
    /// `[x, y, w, h]`; `None` when absent, `null` or `[]` (mask-only results).
    pub bbox: Option<[f64; 4]>,
    /// `score` (finite).
    pub score: f64,
    /// `segmentation` as written, if given.
    pub segmentation: Option<Value>,
}

/// Where a value is, for errors: the file and the entry (`annotations[3] (id 7)`). The entry
/// text is only built when an error is reported (parsing formats nothing per entry).
struct At<'a> {
    file: &'a Path,
    /// `"top level"`, `"images"`, `"categories"`, `"annotations"` or `"detection"`.
    list: &'static str,
    index: usize,
    id: Option<i64>,
}

impl<'a> At<'a> {
    fn top(file: &'a Path) -> Self {
        Self::entry(file, "top level", 0)
    }

    fn entry(file: &'a Path, list: &'static str, index: usize) -> Self {
        At {
            file,
            list,
            index,
            id: None,
        }
    }

    fn name(&self) -> String {
        let mut s = match self.list {
            "top level" => return self.list.to_string(),
            "detection" => format!("detection {}", self.index),
            l => format!("{l}[{}]", self.index),
        };
        if let Some(id) = self.id {
            s += &format!(" (id {id})");
        }
        s
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::parse(self.file, None, format!("{}: {msg}", self.name()))
    }

    /// An error about one field: `entry.key: msg`.
    fn field_err(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        Error::parse(self.file, None, format!("{}.{key}: {msg}", self.name()))
    }

    fn obj<'v>(&self, v: &'v Value) -> Result<&'v Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.err(format!("expected an object, got {}", kind(v))))
    }

    /// The field, `None` when absent or `null`.
    fn opt<'v>(&self, o: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        o.get(key).filter(|v| !v.is_null())
    }

    fn req<'v>(&self, o: &'v Map<String, Value>, key: &str) -> Result<&'v Value> {
        o.get(key)
            .ok_or_else(|| self.err(format!("missing field '{key}'")))
    }

    fn int_of(&self, key: &str, f: &Value) -> Result<i64> {
        if let Some(i) = f.as_i64() {
            return Ok(i);
        }
        match f.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
            _ => Err(self.field_err(key, format!("must be an integer, got {f}"))),
        }
    }

    fn int(&self, o: &Map<String, Value>, key: &str) -> Result<i64> {
        self.int_of(key, self.req(o, key)?)
    }

    fn opt_int(&self, o: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
        self.opt(o, key).map(|f| self.int_of(key, f)).transpose()
    }

    fn opt_dim(&self, o: &Map<String, Value>, key: &str) -> Result<Option<u32>> {
        self.opt_int(o, key)?
            .map(|x| {
                u32::try_from(x).map_err(|_| {
                    self.field_err(
                        key,
                        format!("must be a non-negative 32-bit integer, got {x}"),
                    )
                })
            })
            .transpose()
    }

    fn num_of(&self, key: &str, f: &Value) -> Result<f64> {
        match f.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(self.field_err(key, format!("must be a finite number, got {f}"))),
        }
    }

    fn opt_str(&self, o: &Map<String, Value>, key: &str) -> Result<Option<String>> {
        self.opt(o, key)
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.field_err(key, format!("must be a string, got {f}")))
            })
            .transpose()
    }

    /// 0/1 or false/true; absent is false.
    fn opt_flag(&self, o: &Map<String, Value>, key: &str) -> Result<bool> {
        match self.opt(o, key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(f) => match f.as_i64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(self.field_err(key, format!("must be 0, 1, true or false, got {f}"))),
            },
        }
    }

    /// `[x, y, w, h]`: four finite numbers, `w, h >= 0`.
    fn bbox_of(&self, key: &str, f: &Value) -> Result<[f64; 4]> {
        let a = f
            .as_array()
            .ok_or_else(|| self.field_err(key, format!("must be an array, got {}", kind(f))))?;
        if a.len() != 4 {
            return Err(self.field_err(key, format!("must have 4 numbers, got {}", a.len())));
        }
        let mut b = [0.0; 4];
        for (o, x) in b.iter_mut().zip(a) {
            *o = x
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.field_err(key, format!("must hold finite numbers, got {f}")))?;
        }
        if b[2] < 0.0 || b[3] < 0.0 {
            return Err(self.field_err(
                key,
                format!("{b:?} has negative width or height (COCO boxes are [x, y, w, h])"),
            ));
        }
        Ok(b)
    }

    /// The array field `key`, taken out of `v` (entries are moved, not copied).
    fn take_array(&self, o: &mut Map<String, Value>, key: &str) -> Result<Vec<Value>> {
        match o.get_mut(key) {
            None => Err(self.err(format!("missing field '{key}'"))),
            Some(Value::Array(a)) => Ok(std::mem::take(a)),
            Some(f) => Err(self.field_err(key, format!("must be an array, got {}", kind(f)))),
        }
    }
}

/// `"an object"`, `"a number"`, ... for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses JSON text, naming the file and the line of a syntax error.
fn parse_json(text: &str, file: &Path) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::parse(
            file,
            Some(e.line()),
            format!("malformed JSON (invalid JSON: {e})"),
        )
    })
}

/// Parses a COCO instances (ground truth) document; `file` names it in errors.
pub fn parse_coco_instances(text: &str, file: impl AsRef<Path>) -> Result<CocoInstances> {
    let file = file.as_ref();
    let mut v = parse_json(text, file)?;
    let top = At::top(file);
    let o = match &mut v {
        Value::Object(o) => o,
        other => return Err(top.err(format!("expected an object, got {}", kind(other)))),
    };
    let (raw_images, raw_categories, raw_annotations) = (
        top.take_array(o, "images")?,
        top.take_array(o, "categories")?,
        top.take_array(o, "annotations")?,
    );

    let mut images = Vec::with_capacity(raw_images.len());
    let mut image_ids = HashSet::with_capacity(raw_images.len());
    for (i, im) in raw_images.iter().enumerate() {
        let at = At::entry(file, "images", i);
        let o = at.obj(im)?;
        let id = at.int(o, "id")?;
        if !image_ids.insert(id) {
            return Err(at.field_err("id", format!("duplicate image id {id}")));
        }
        images.push(CocoImageEntry {
            id,
            file_name: at.opt_str(o, "file_name")?,
            width: at.opt_dim(o, "width")?,
            height: at.opt_dim(o, "height")?,
        });
    }

    let mut categories = Vec::with_capacity(raw_categories.len());
    let mut category_ids = HashSet::with_capacity(raw_categories.len());
    for (i, c) in raw_categories.iter().enumerate() {
        let at = At::entry(file, "categories", i);
        let o = at.obj(c)?;
        let id = at.int(o, "id")?;
        if !category_ids.insert(id) {
            return Err(at.field_err("id", format!("duplicate category id {id}")));
        }
        categories.push(CocoCategoryEntry {
            id,
            name: at.opt_str(o, "name")?,
        });
    }

    let mut annotations = Vec::with_capacity(raw_annotations.len());
    let mut annotation_ids = HashSet::with_capacity(raw_annotations.len());
    for (i, mut a) in raw_annotations.into_iter().enumerate() {
        let mut at = At::entry(file, "annotations", i);
        let o = match &mut a {
            Value::Object(o) => o,
            other => return Err(at.err(format!("expected an object, got {}", kind(other)))),
        };
        let id = at.opt_int(o, "id")?;
        if let Some(id) = id {
            at.id = Some(id);
            if !annotation_ids.insert(id) {
                return Err(at.field_err("id", format!("duplicate annotation id {id}")));
            }
        }
        let image_id = at.int(o, "image_id")?;
        if !image_ids.contains(&image_id) {
            return Err(at.field_err(
                "image_id",
                format!("image_id {image_id} is not in 'images'"),
            ));
        }
        let category_id = at.int(o, "category_id")?;
        if !category_ids.contains(&category_id) {
            return Err(at.field_err(
                "category_id",
                format!("category_id {category_id} is not in 'categories'"),
            ));
        }
        let bbox = at.bbox_of("bbox", at.req(o, "bbox")?)?;
        let area = at
            .opt(o, "area")
            .map(|f| at.num_of("area", f))
            .transpose()?;
        let iscrowd = at.opt_flag(o, "iscrowd")?;
        let segmentation = o.remove("segmentation").filter(|s| !s.is_null());
        annotations.push(CocoAnnotationEntry {
            id,
            image_id,
            category_id,
            bbox,
            area,
            iscrowd,
            segmentation,
        });
    }
    Ok(CocoInstances {
        images,
        categories,
        annotations,
    })
}

/// Reads and parses a COCO instances file.
pub fn read_coco_instances(path: impl AsRef<Path>) -> Result<CocoInstances> {
    let path = path.as_ref();
    parse_coco_instances(&crate::fsutil::read_to_string(path)?, path)
}

/// Parses a COCO results document (a JSON list of `{image_id, category_id, bbox, score}`, with
/// an optional `segmentation`); `file` names it in errors.
pub fn parse_coco_detections(
    text: &str,
    file: impl AsRef<Path>,
) -> Result<Vec<CocoDetectionEntry>> {
    let file = file.as_ref();
    let v = parse_json(text, file)?;
    let list = match v {
        Value::Array(l) => l,
        other => {
            return Err(At::top(file).err(format!(
                "expected a JSON list of detections, got {}",
                kind(&other)
            )))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, mut d) in list.into_iter().enumerate() {
        let at = At::entry(file, "detection", i);
        let o = match &mut d {
            Value::Object(o) => o,
            other => return Err(at.err(format!("expected an object, got {}", kind(other)))),
        };
        let image_id = at.int(o, "image_id")?;
        let category_id = at.int(o, "category_id")?;
        // pycocotools treats a missing, null or empty box as "no box" (mask-only results).
        let bbox = match at.opt(o, "bbox") {
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(f) => Some(at.bbox_of("bbox", f)?),
            None => None,
        };
        let score = at.num_of("score", at.req(o, "score")?)?;
        let segmentation = o.remove("segmentation").filter(|s| !s.is_null());
        out.push(CocoDetectionEntry {
            image_id,
            category_id,
            bbox,
            score,
            segmentation,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_coco_instances(text, "gt.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn optional_fields_and_raw_segmentation() {
        let c = parse_coco_instances(
            r#"{"images":[{"id":1,"file_name":"a.jpg","width":4,"height":3},{"id":2.0}],
                "categories":[{"id":5,"name":"cat"},{"id":6}],
                "annotations":[{"image_id":1,"category_id":5,"bbox":[0,0,2,1]},
                  {"id":9,"image_id":2,"category_id":6,"bbox":[1,1,0,0],"area":3.5,"iscrowd":1,
                   "segmentation":{"size":[3,4],"counts":"abc"}}]}"#,
            "gt.json",
        )
        .unwrap();
        assert_eq!(c.images[0].file_name.as_deref(), Some("a.jpg"));
        assert_eq!((c.images[0].width, c.images[0].height), (Some(4), Some(3)));
        assert_eq!(c.images[1].id, 2);
        assert_eq!(c.images[1].width, None);
        assert_eq!(c.categories[1].name, None);
        let (a, b) = (&c.annotations[0], &c.annotations[1]);
        assert_eq!(
            (a.id, a.area, a.iscrowd, &a.segmentation),
            (None, None, false, &None)
        );
        assert_eq!((b.id, b.area, b.iscrowd), (Some(9), Some(3.5), true));
        assert_eq!(b.segmentation.as_ref().unwrap()["counts"], "abc");
    }

    #[test]
    fn errors_name_file_entry_and_field() {
        let head = r#"{"images":[{"id":1}],"categories":[{"id":1}],"annotations":["#;
        let ann = |a: &str| err(&format!("{head}{a}]}}"));
        let e = ann(r#"{"image_id":1,"category_id":1,"bbox":[0,0,1]}"#);
        assert!(
            e.starts_with("gt.json: annotations[0].bbox: must have 4 numbers"),
            "{e}"
        );
        let e = ann(r#"{"id":7,"image_id":3,"category_id":1,"bbox":[0,0,1,1]}"#);
        assert!(
            e.contains("annotations[0] (id 7).image_id: image_id 3 is not in"),
            "{e}"
        );
        let e = ann(r#"{"image_id":1,"category_id":2,"bbox":[0,0,1,1]}"#);
        assert!(e.contains("annotations[0].category_id"), "{e}");
        let e = ann(r#"{"image_id":1,"category_id":1,"bbox":[0,0,-1,1]}"#);
        assert!(
            e.contains("annotations[0].bbox") && e.contains("negative width"),
            "{e}"
        );
        let e = ann(r#"{"image_id":1,"category_id":1,"bbox":[0,0,1,1],"iscrowd":2}"#);
        assert!(e.contains("annotations[0].iscrowd"), "{e}");
        let e = ann(
            r#"{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]},{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}"#,
        );
        assert!(
            e.contains("annotations[1] (id 1).id: duplicate annotation id 1"),
            "{e}"
        );
        let e = err(r#"{"images":[{"id":1,"width":-3}],"categories":[],"annotations":[]}"#);
        assert!(e.contains("images[0].width: must be a non-negative"), "{e}");
        let e = err(r#"{"images":[],"categories":[]}"#);
        assert!(e.contains("top level: missing field 'annotations'"), "{e}");
        let e = err("{\"images\":\n[1,,]}");
        assert!(e.starts_with("gt.json:2: malformed JSON"), "{e}");
    }

    #[test]
    fn detections_box_is_optional_when_empty() {
        let d = parse_coco_detections(
            r#"[{"image_id":1,"category_id":2,"bbox":[1,2,3,4],"score":0.5},
                {"image_id":1,"category_id":2,"bbox":[],"score":0.25,"segmentation":[[0,0,1,0,1,1]]}]"#,
            "dt.json",
        )
        .unwrap();
        assert_eq!(d[0].bbox, Some([1.0, 2.0, 3.0, 4.0]));
        assert_eq!((d[1].bbox, d[1].score), (None, 0.25));
        assert!(d[1].segmentation.is_some());
        let e = parse_coco_detections(
            r#"[{"image_id":1,"category_id":2,"bbox":[0,0,1,1]}]"#,
            "dt.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("dt.json: detection 0: missing field 'score'"),
            "{e}"
        );
        let e = parse_coco_detections(r#"{"a":1}"#, "dt.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a JSON list"), "{e}");
    }
}
