//! Dataset sources on disk: file globs, text lines, CSV, TFRecord, image folders (also inside a
//! tar), CIFAR binary batches, Pascal VOC XML, COCO JSON, YOLO txt and segmentation pairs.
//!
//! Annotated sources are split in two: an *index* (cheap: which files, read when the dataset is
//! built) and a *loader* that reads and decodes one sample (run lazily, in parallel by
//! `par_map`). Every error names the file and, where there is one, the line or field.

#[cfg(feature = "image")]
use crate::annotations::voc::parse_voc_xml;
use crate::dataset::Dataset;
use crate::fsutil::{read, read_to_string};
use crate::image::Image;
#[cfg(feature = "image")]
use crate::image::{decode, decode_rgb8};
use crate::sample::ImageSample;
use crate::tfrecord::{Example, ReadCompression, RecordReader};
use crate::{Error, Result};
use ferrovision_tensor::rng::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Files, text, CSV, TFRecord
// ---------------------------------------------------------------------------------------------

fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    // Iterative `*`/`?` matcher with backtracking to the last star.
    let (mut p, mut i, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Paths matching a glob (`*` and `?` in any component, `**` for any depth), sorted; with
/// `shuffle_seed` the order is shuffled reproducibly.
pub fn glob(pattern: &str, shuffle_seed: Option<u64>) -> Result<Vec<PathBuf>> {
    let comps: Vec<&str> = pattern.split('/').collect();
    let (root, rest) = if pattern.starts_with('/') {
        (PathBuf::from("/"), &comps[1..])
    } else {
        (PathBuf::from("."), &comps[..])
    };
    let mut out = Vec::new();
    glob_walk(&root, rest, pattern.starts_with('/'), &mut out)?;
    out.sort();
    out.dedup();
    if let Some(seed) = shuffle_seed {
        let mut rng = Rng::new(seed);
        for i in (1..out.len()).rev() {
            out.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    Ok(out)
}

fn glob_walk(dir: &Path, comps: &[&str], absolute: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let Some((first, rest)) = comps.split_first() else {
        return Ok(());
    };
    let join = |name: &str| {
        if !absolute && dir == Path::new(".") {
            PathBuf::from(name)
        } else {
            dir.join(name)
        }
    };
    if *first == "**" {
        glob_walk(dir, rest, absolute, out)?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    glob_walk(
                        &join(&e.file_name().to_string_lossy()),
                        comps,
                        absolute,
                        out,
                    )?;
                }
            }
        }
        return Ok(());
    }
    if !first.contains(['*', '?']) {
        let p = join(first);
        if rest.is_empty() {
            if p.exists() {
                out.push(p);
            }
        } else if p.is_dir() {
            glob_walk(&p, rest, absolute, out)?;
        }
        return Ok(());
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(_) => return Ok(()),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !wildcard(first.as_bytes(), name.as_bytes()) {
            continue;
        }
        let p = join(&name);
        if rest.is_empty() {
            out.push(p);
        } else if p.is_dir() {
            glob_walk(&p, rest, absolute, out)?;
        }
    }
    Ok(())
}

/// `tf.data.Dataset.list_files`: matching paths as a dataset (shuffled with a seed if given).
pub fn list_files(pattern: &str, shuffle_seed: Option<u64>) -> Result<Dataset<PathBuf>> {
    let files = glob(pattern, shuffle_seed)?;
    if files.is_empty() {
        return Err(Error::invalid(
            "list_files",
            format!("no file matches '{pattern}'"),
        ));
    }
    Ok(Dataset::from_vec(files))
}

/// The lines of text files, in order (`\n` or `\r\n`), streamed.
pub fn text_lines(paths: Vec<PathBuf>) -> Dataset<String> {
    use std::io::BufRead;
    let paths = Arc::new(paths);
    Dataset::from_factory("text_lines", move || {
        let paths = paths.clone();
        Ok(paths
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|p| {
                let f = match std::fs::File::open(&p) {
                    Ok(f) => f,
                    Err(e) => {
                        return Box::new(std::iter::once(Err(Error::io(&p, e))))
                            as Box<dyn Iterator<Item = Result<String>> + Send>
                    }
                };
                let p2 = p.clone();
                Box::new(
                    std::io::BufReader::new(f)
                        .lines()
                        .enumerate()
                        .map(move |(i, l)| {
                            l.map_err(|e| {
                                Error::parse(&p2, Some(i + 1), format!("cannot read line: {e}"))
                            })
                            .map(|s| s.trim_end_matches('\r').to_string())
                        }),
                )
            }))
    })
}

/// A column type of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColType {
    /// 64-bit integer.
    Int,
    /// 32-bit float.
    Float,
    /// Text.
    Str,
}

/// A parsed CSV value.
#[derive(Debug, Clone, PartialEq)]
pub enum CsvValue {
    /// Integer column.
    Int(i64),
    /// Float column.
    Float(f32),
    /// Text column.
    Str(String),
}

/// One CSV row with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// Line number in the file.
    pub line: usize,
    /// Values, one per column.
    pub values: Vec<CsvValue>,
}

impl crate::element::DataElement for CsvRow {}

/// Splits one CSV line (RFC 4180 quoting, `""` for a quote inside a quoted field).
pub fn split_csv_line(line: &str, delim: char) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(ch) = chars.next() {
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(ch);
            }
        } else if ch == '"' && cur.is_empty() && !was_quoted {
            quoted = true;
            was_quoted = true;
        } else if ch == delim {
            out.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else if was_quoted {
            return Err(format!(
                "text after closing quote in field {}",
                out.len() + 1
            ));
        } else {
            cur.push(ch);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// A CSV file with typed columns (`header`: skip the first line). Rows with a wrong field count
/// or an unparsable value are errors naming the file, line and column.
pub fn csv(
    path: impl AsRef<Path>,
    columns: Vec<ColType>,
    header: bool,
    delim: char,
) -> Dataset<CsvRow> {
    let path = path.as_ref().to_path_buf();
    let lines = text_lines(vec![path.clone()]);
    let columns = Arc::new(columns);
    let skip = if header { 1 } else { 0 };
    lines
        .enumerate()
        .skip(skip)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(i, l)| -> Result<CsvRow> {
            let line = i as usize + 1;
            let fields =
                split_csv_line(&l, delim).map_err(|m| Error::parse(&path, Some(line), m))?;
            if fields.len() != columns.len() {
                return Err(Error::parse(
                    &path,
                    Some(line),
                    format!("expected {} fields, found {}", columns.len(), fields.len()),
                ));
            }
            let mut values = Vec::with_capacity(fields.len());
            for (k, (f, t)) in fields.iter().zip(columns.iter()).enumerate() {
                let s = f.trim();
                values.push(match t {
                    ColType::Int => CsvValue::Int(s.parse().map_err(|_| {
                        Error::parse(
                            &path,
                            Some(line),
                            format!("column {}: '{s}' is not an integer", k + 1),
                        )
                    })?),
                    ColType::Float => CsvValue::Float(s.parse().map_err(|_| {
                        Error::parse(
                            &path,
                            Some(line),
                            format!("column {}: '{s}' is not a number", k + 1),
                        )
                    })?),
                    ColType::Str => CsvValue::Str(f.clone()),
                });
            }
            Ok(CsvRow { line, values })
        })
}

/// The raw records of uncompressed TFRecord files, streamed (CRC-checked).
pub fn tfrecord(paths: Vec<PathBuf>) -> Dataset<Vec<u8>> {
    tfrecord_with(paths, crate::tfrecord::Compression::None)
}

/// The raw records of TFRecord files compressed as given (`Compression::Gzip`, ...) or
/// detected per file (`ReadCompression::Auto`), streamed through the decoder (CRC-checked).
pub fn tfrecord_with(
    paths: Vec<PathBuf>,
    compression: impl Into<ReadCompression>,
) -> Dataset<Vec<u8>> {
    let paths = Arc::new(paths);
    let compression = compression.into();
    Dataset::from_factory("tfrecord", move || {
        let paths: Vec<PathBuf> = paths.iter().cloned().collect();
        Ok(paths
            .into_iter()
            .flat_map(move |p| match RecordReader::open_with(&p, compression) {
                Ok(r) => Box::new(r) as Box<dyn Iterator<Item = Result<Vec<u8>>> + Send>,
                Err(e) => Box::new(std::iter::once(Err(e))),
            }))
    })
}

/// The `tf.train.Example`s of uncompressed TFRecord files.
pub fn tfrecord_examples(paths: Vec<PathBuf>) -> Dataset<Example> {
    tfrecord(paths).map(|r| Example::decode(&r))
}

/// The `tf.train.Example`s of TFRecord files compressed as given or detected per file.
pub fn tfrecord_examples_with(
    paths: Vec<PathBuf>,
    compression: impl Into<ReadCompression>,
) -> Dataset<Example> {
    tfrecord_with(paths, compression).map(|r| Example::decode(&r))
}

// ---------------------------------------------------------------------------------------------
// Image folders and tars
// ---------------------------------------------------------------------------------------------

const IMAGE_EXT: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "gif", "webp"];

fn is_image(p: &Path) -> bool {
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

impl crate::element::DataElement for TarEntry {}

/// One regular file inside a tar archive.
#[derive(Debug, Clone, PartialEq)]
pub struct TarEntry {
    /// Path inside the archive.
    pub name: String,
    /// Byte offset of the file data in the archive.
    pub offset: u64,
    /// File size.
    pub size: u64,
}

fn octal(field: &[u8]) -> Option<u64> {
    // GNU base-256 for large sizes: high bit of the first byte set.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = (field[0] & 0x7F) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)? + b as u64;
        }
        return Some(v);
    }
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Lists the regular files of a (ustar/GNU) tar archive by walking its headers; file data is
/// skipped with seeks, so listing a large archive reads only its headers.
pub fn tar_index(path: impl AsRef<Path>) -> Result<Vec<TarEntry>> {
    use std::io::{Read, Seek, SeekFrom};
    let path = path.as_ref();
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| Error::io(path, e))?);
    let len = f
        .get_ref()
        .metadata()
        .map_err(|e| Error::io(path, e))?
        .len();
    let mut out = Vec::new();
    let mut off = 0u64;
    let mut long_name: Option<String> = None;
    let mut h = [0u8; 512];
    let rec = |off: u64, m: &str| Error::Record {
        path: path.to_path_buf(),
        offset: off,
        msg: format!("tar: {m}"),
    };
    while off + 512 <= len {
        f.seek(SeekFrom::Start(off))
            .map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut h).map_err(|e| Error::io(path, e))?;
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        if octal(&h[148..156]) != Some(sum) {
            return Err(rec(
                off,
                "header checksum mismatch (not a tar file, or corrupted)",
            ));
        }
        let size = octal(&h[124..136]).ok_or_else(|| rec(off, "bad size field"))?;
        let data = off + 512;
        if data + size > len {
            return Err(rec(
                off,
                &format!("truncated: entry of {size} bytes runs past the end"),
            ));
        }
        let typ = h[156];
        let mut name = cstr(&h[0..100]);
        if &h[257..262] == b"ustar" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        match typ {
            b'L' => {
                let mut buf = vec![0u8; size as usize];
                f.seek(SeekFrom::Start(data))
                    .map_err(|e| Error::io(path, e))?;
                f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
                long_name = Some(cstr(&buf));
            }
            b'0' | 0 => {
                let name = long_name.take().unwrap_or(name);
                out.push(TarEntry {
                    name,
                    offset: data,
                    size,
                });
            }
            _ => {
                long_name = None;
            }
        }
        off = data + size.div_ceil(512) * 512;
    }
    Ok(out)
}

/// Reads one entry's bytes (positioned read; safe to call from many threads).
pub fn tar_read(file: &std::fs::File, path: &Path, e: &TarEntry) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; e.size as usize];
    file.read_exact_at(&mut buf, e.offset)
        .map_err(|err| Error::io(path, err))?;
    Ok(buf)
}

#[cfg(feature = "image")]
/// An image-folder dataset stored in a tar (`[prefix/]<class>/<image>`, like the CIFAR-10
/// tars): classes are the parent folder names, sorted. Images are decoded lazily by `workers`.
pub fn tar_image_folder(
    path: impl AsRef<Path>,
    workers: usize,
) -> Result<(Dataset<ImageSample>, Vec<String>)> {
    let path = path.as_ref().to_path_buf();
    let entries: Vec<TarEntry> = tar_index(&path)?
        .into_iter()
        .filter(|e| is_image(Path::new(&e.name)))
        .collect();
    let class_of = |e: &TarEntry| -> String {
        let p = Path::new(&e.name);
        p.parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut classes: Vec<String> = entries.iter().map(class_of).collect();
    classes.sort();
    classes.dedup();
    let ids: BTreeMap<String, i64> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i as i64))
        .collect();
    let items: Vec<(TarEntry, i64)> = entries
        .into_iter()
        .map(|e| {
            let l = ids[&class_of(&e)];
            (e, l)
        })
        .collect();
    let file = Arc::new(std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?);
    let ds = Dataset::from_vec(items).par_map(
        workers,
        true,
        move |(e, l): (TarEntry, i64)| -> Result<ImageSample> {
            let bytes = tar_read(&file, &path, &e)?;
            let where_ = format!("{}:{}", path.display(), e.name);
            let mut s = ImageSample::from_image(decode_rgb8(&bytes, &where_)?);
            s.label = Some(l);
            s.file_name = where_;
            Ok(s)
        },
    );
    Ok((ds, classes))
}

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

// ---------------------------------------------------------------------------------------------
// Detection annotations
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Segmentation pairs
// ---------------------------------------------------------------------------------------------

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
