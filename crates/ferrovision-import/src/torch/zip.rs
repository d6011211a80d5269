//! The `torch.save` zip format (PyTorch 1.6 and later; `torch/serialization.py`, `_save` and
//! `_load`; the archive is written by `caffe2/serialize/inline_container.cc`).
//!
//! The archive holds one top folder `<prefix>/` (the file's stem, or `archive`) with
//! `data.pkl` (the pickled object, whose tensors refer to storages by persistent id
//! `('storage', torch.FloatStorage, '<key>', 'cpu', numel)`), one record `data/<key>` per
//! storage holding its raw bytes, `byteorder` (`little` or `big`; absent in files older than
//! PyTorch 1.10, meaning little), and `version` / `.format_version` / `.storage_alignment`
//! bookkeeping that the reader does not need.
//!
//! **Why a small reader of its own and not the `zip` crate:** PyTorch stores every record
//! uncompressed (method 0, the data 64-byte aligned through padding in the local header's
//! extra field), so reading one needs only the end-of-central-directory record, the central
//! directory and the local header (APPNOTE.TXT sections 4.3.7, 4.3.12, 4.3.16, and the zip64
//! records of 4.3.14/4.3.15 for archives over 4 GiB). That is ~200 lines with no new
//! dependency, against a crate whose lean configuration still pulls several; archives re-packed
//! by other tools with deflate are read through `flate2` (already in the workspace), and every
//! record's CRC-32 is checked, so a corrupted storage is an error, not wrong weights.

use super::pickle::{self, Obj};
use super::{assemble, format_err, pickle_err, StorageBytes};
use crate::{ImportedWeights, Result, SourceFormat};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// One record of the central directory.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    method: u16,
    crc: u32,
    comp_size: u64,
    size: u64,
    local_offset: u64,
}

/// A zip archive over the bytes of the whole file.
struct Archive<'a> {
    data: &'a [u8],
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..at.checked_add(2)?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le64(d: &[u8], at: usize) -> Option<u64> {
    let b = d.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

fn at(v: u64) -> std::result::Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("zip offset {v} exceeds the address space"))
}

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

impl<'a> Archive<'a> {
    fn parse(data: &'a [u8]) -> std::result::Result<Self, String> {
        let short = || "zip: truncated central directory".to_string();
        // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
        if data.len() < 22 {
            return Err("zip: too short for an end-of-central-directory record".into());
        }
        let lowest = data.len().saturating_sub(22 + 0xffff);
        let eocd = (lowest..=data.len() - 22)
            .rev()
            .find(|&i| le32(data, i) == Some(EOCD_SIG))
            .ok_or("zip: no end-of-central-directory record (truncated file?)")?;
        let mut total = le16(data, eocd + 10).ok_or_else(short)? as u64;
        let mut cd_size = le32(data, eocd + 12).ok_or_else(short)? as u64;
        let mut cd_offset = le32(data, eocd + 16).ok_or_else(short)? as u64;
        if total == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            let loc = eocd
                .checked_sub(20)
                .filter(|&l| le32(data, l) == Some(ZIP64_LOCATOR_SIG))
                .ok_or("zip: zip64 sizes without a zip64 locator")?;
            let z = at(le64(data, loc + 8).ok_or_else(short)?)?;
            if le32(data, z) != Some(ZIP64_EOCD_SIG) {
                return Err("zip: the zip64 locator points at no zip64 record".into());
            }
            total = le64(data, z + 32).ok_or_else(short)?;
            cd_size = le64(data, z + 40).ok_or_else(short)?;
            cd_offset = le64(data, z + 48).ok_or_else(short)?;
        }
        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                format!(
                    "zip: the central directory ({cd_size} bytes at {cd_offset}) lies beyond \
                     the file's {} bytes",
                    data.len()
                )
            })?;
        let (mut pos, cd_end) = (at(cd_offset)?, at(cd_end)?);
        let mut entries = Vec::new();
        let mut by_name = HashMap::new();
        for i in 0..total {
            if pos + 46 > cd_end || le32(data, pos) != Some(CENTRAL_SIG) {
                return Err(format!("zip: central directory entry {i} is damaged"));
            }
            let flags = le16(data, pos + 8).ok_or_else(short)?;
            let method = le16(data, pos + 10).ok_or_else(short)?;
            let crc = le32(data, pos + 16).ok_or_else(short)?;
            let mut comp_size = le32(data, pos + 20).ok_or_else(short)? as u64;
            let mut size = le32(data, pos + 24).ok_or_else(short)? as u64;
            let name_len = le16(data, pos + 28).ok_or_else(short)? as usize;
            let extra_len = le16(data, pos + 30).ok_or_else(short)? as usize;
            let comment_len = le16(data, pos + 32).ok_or_else(short)? as usize;
            let mut local_offset = le32(data, pos + 42).ok_or_else(short)? as u64;
            let name_end = pos + 46 + name_len;
            let next = name_end + extra_len + comment_len;
            if next > cd_end {
                return Err(format!("zip: central directory entry {i} is truncated"));
            }
            let name = String::from_utf8_lossy(&data[pos + 46..name_end]).into_owned();
            if flags & 1 != 0 {
                return Err(format!("zip: record '{name}' is encrypted"));
            }
            // zip64 extended information: the 8-byte values of the fields saturated above.
            let mut e = name_end;
            while e + 4 <= name_end + extra_len {
                let id = le16(data, e).ok_or_else(short)?;
                let len = le16(data, e + 2).ok_or_else(short)? as usize;
                if id == 1 {
                    let mut f = e + 4;
                    for field in [&mut size, &mut comp_size, &mut local_offset] {
                        if *field == 0xffff_ffff {
                            if f + 8 > e + 4 + len {
                                return Err(format!("zip: record '{name}': short zip64 field"));
                            }
                            *field = le64(data, f).ok_or_else(short)?;
                            f += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            by_name.entry(name.clone()).or_insert(entries.len());
            entries.push(Entry {
                name,
                method,
                crc,
                comp_size,
                size,
                local_offset,
            });
            pos = next;
        }
        Ok(Archive {
            data,
            entries,
            by_name,
        })
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The record's bytes (borrowed when stored), CRC-checked.
    fn read(&self, e: &Entry) -> std::result::Result<Cow<'a, [u8]>, String> {
        let data: &'a [u8] = self.data;
        let lo = at(e.local_offset)?;
        if le32(data, lo) != Some(LOCAL_SIG) {
            return Err(format!("zip: record '{}' has no local header", e.name));
        }
        let n = le16(data, lo + 26).ok_or("zip: truncated local header")? as usize;
        let x = le16(data, lo + 28).ok_or("zip: truncated local header")? as usize;
        let start = lo + 30 + n + x;
        let end = (start as u64)
            .checked_add(e.comp_size)
            .filter(|&end| end <= data.len() as u64)
            .ok_or_else(|| {
                format!(
                    "zip: record '{}' ({} bytes at {start}) lies beyond the file's {} bytes",
                    e.name,
                    e.comp_size,
                    data.len()
                )
            })? as usize;
        let raw = &data[start..end];
        let out: Cow<'a, [u8]> = match e.method {
            0 => {
                if e.size != e.comp_size {
                    return Err(format!("zip: stored record '{}' has two sizes", e.name));
                }
                Cow::Borrowed(raw)
            }
            8 => {
                // Deflate expands at most ~1032:1; a larger claimed size is a lie.
                if e.size > e.comp_size.saturating_mul(1032).saturating_add(1024) {
                    return Err(format!(
                        "zip: record '{}' claims {} bytes from {} compressed",
                        e.name, e.size, e.comp_size
                    ));
                }
                let mut v = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .take(e.size.saturating_add(1))
                    .read_to_end(&mut v)
                    .map_err(|err| format!("zip: record '{}': {err}", e.name))?;
                if v.len() as u64 != e.size {
                    return Err(format!(
                        "zip: record '{}' inflates to {} bytes, its header says {}",
                        e.name,
                        v.len(),
                        e.size
                    ));
                }
                Cow::Owned(v)
            }
            m => {
                let name = &e.name;
                return Err(format!(
                    "zip: record '{name}' uses compression method {m} (only stored and deflate)"
                ));
            }
        };
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        if crc.sum() != e.crc {
            return Err(format!(
                "zip: record '{}' fails its CRC-32 check (corrupted data)",
                e.name
            ));
        }
        Ok(out)
    }
}

/// Reads a `torch.save` zip archive whose bytes are `data`.
pub(super) fn read(path: &Path, data: &[u8]) -> Result<ImportedWeights> {
    let zip = Archive::parse(data).map_err(|m| format_err(path, m))?;
    let pkls: Vec<&Entry> = zip
        .entries
        .iter()
        .filter(|e| e.name.ends_with("/data.pkl") && e.name.matches('/').count() == 1)
        .collect();
    let pkl = match pkls.as_slice() {
        [one] => *one,
        [] => {
            return Err(format_err(
                path,
                "a zip archive without a '<name>/data.pkl' record: not written by torch.save",
            ))
        }
        _ => {
            return Err(format_err(
                path,
                "a zip archive with several data.pkl records",
            ))
        }
    };
    let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
    let big_endian = match zip.get(&format!("{prefix}byteorder")) {
        None => false,
        Some(e) => match zip.read(e).map_err(|m| format_err(path, m))?.trim_ascii() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(format_err(
                    path,
                    format!("byteorder record says '{}'", String::from_utf8_lossy(other)),
                ))
            }
        },
    };
    let pkl_bytes = zip.read(pkl).map_err(|m| format_err(path, m))?;
    let pk = pickle::unpickle(&pkl_bytes, 0).map_err(|e| pickle_err(path, &pkl.name, e))?;
    let mut storages: HashMap<String, StorageBytes> = HashMap::new();
    for o in &pk.objs {
        let Obj::Storage(s) = o else { continue };
        if storages.contains_key(&*s.key) {
            continue;
        }
        let name = format!("{prefix}data/{}", s.key);
        let e = zip.get(&name).ok_or_else(|| {
            format_err(
                path,
                format!(
                    "the pickle refers to storage '{}' but '{name}' is missing",
                    s.key
                ),
            )
        })?;
        let bytes = zip.read(e).map_err(|m| format_err(path, m))?;
        storages.insert(s.key.to_string(), StorageBytes { bytes, big_endian });
    }
    let tensors = assemble(path, &pk, &storages)?;
    Ok(ImportedWeights {
        path: path.to_path_buf(),
        format: SourceFormat::TorchZip,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_archive_whose_central_directory_is_out_of_bounds() {
        // A bare end-of-central-directory record claiming one entry at offset 1000.
        let mut b = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0];
        b.extend(46u32.to_le_bytes());
        b.extend(1000u32.to_le_bytes());
        b.extend([0, 0]);
        let e = Archive::parse(&b).err().unwrap();
        assert!(e.contains("beyond"), "{e}");
        // zip64 markers without a locator.
        let mut b = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        b.extend([0xff; 8]);
        b.extend([0, 0]);
        assert!(Archive::parse(&b).err().unwrap().contains("zip64"));
    }
}
