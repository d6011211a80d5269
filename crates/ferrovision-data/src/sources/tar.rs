//! Tar archives (ustar/GNU): a header-only index, positioned reads of one entry, and image
//! folders stored inside a tar.

#[cfg(feature = "image")]
use super::folder::is_image;
#[cfg(feature = "image")]
use crate::dataset::Dataset;
#[cfg(feature = "image")]
use crate::image::decode_rgb8;
#[cfg(feature = "image")]
use crate::sample::ImageSample;
use crate::{Error, Result};
#[cfg(feature = "image")]
use std::collections::BTreeMap;
use std::path::Path;
#[cfg(feature = "image")]
use std::sync::Arc;

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
