//! The IDX file format (LeCun's MNIST format), raw or gzipped.
//!
//! An IDX file is a 4-byte magic number `00 00 TT NN` (`TT` the element type, `NN` the number
//! of dimensions), `NN` big-endian `u32` dimension sizes, then the elements in row-major order
//! (big-endian for multi-byte types). Reading checks every part of that against the file's
//! length, so a truncated, padded or mislabelled file is a [`Error::Format`] naming the file and
//! what was expected, never a panic or a silently short array.

use crate::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Element type of an IDX file (the magic number's third byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned byte (MNIST pixels and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian `i16`.
    I16,
    /// `0x0C`: big-endian `i32`.
    I32,
    /// `0x0D`: big-endian `f32`.
    F32,
    /// `0x0E`: big-endian `f64`.
    F64,
}

impl IdxType {
    /// The type code stored in the magic number.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type of a code, if it is one the format defines.
    pub fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size_of(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// The contents of an IDX file: element type, dimensions and the raw element bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Element type.
    pub dtype: IdxType,
    /// Dimension sizes, outermost first (`[60000, 28, 28]` for MNIST training images).
    pub dims: Vec<usize>,
    /// The elements as stored (big-endian for multi-byte types), `dims.product() * size_of`.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// The magic number this array's header carries (`0x00000803` for MNIST images).
    pub fn magic(&self) -> u32 {
        ((self.dtype.code() as u32) << 8) | self.dims.len() as u32
    }

    /// Serializes to IDX bytes (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.dims.len() + self.data.len());
        out.extend_from_slice(&self.magic().to_be_bytes());
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads an IDX file, raw or gzipped (recognized by its content, whatever the file name; a gzip
/// file may hold several members, as `cat a.gz b.gz` makes, and nothing after them).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 2];
    let n = read_full(&mut reader, &mut head).map_err(|e| Error::io(path, e))?;
    let chained = head[..n].chain(reader);
    if n == 2 && head == GZIP_MAGIC {
        parse_stream(MultiGzDecoder::new(chained), path, None)
    } else {
        parse_stream(chained, path, Some(len))
    }
}

/// Parses IDX bytes held in memory (raw or gzipped, e.g. from `include_bytes!`). `name` is
/// used in error messages only.
pub fn parse_idx(bytes: &[u8], name: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse_stream(MultiGzDecoder::new(bytes), name, None)
    } else {
        parse_stream(bytes, name, Some(bytes.len() as u64))
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Parses an IDX stream. `raw_len` is the stream's total length when it is a plain file (so the
/// size can be checked before allocating); `None` for a gzip stream, whose read errors mean the
/// compressed data is damaged.
fn parse_stream(mut r: impl Read, path: &Path, raw_len: Option<u64>) -> Result<IdxArray> {
    let gz = raw_len.is_none();
    let read_err = |e: io::Error| -> Error {
        if gz {
            Error::format(path, format!("the gzip data is corrupt or truncated ({e})"))
        } else {
            Error::io(path, e)
        }
    };
    let what = if gz { "decompressed data" } else { "file" };

    let mut magic = [0u8; 4];
    let n = read_full(&mut r, &mut magic).map_err(read_err)?;
    if n < 4 {
        return Err(Error::format(
            path,
            format!(
                "the {what} is {n} bytes long; an IDX file starts with a 4-byte magic number \
                 (0x00000803 for images, 0x00000801 for labels)"
            ),
        ));
    }
    let type_code = magic[2];
    let ndim = magic[3] as usize;
    let dtype = match (magic[0], magic[1], IdxType::from_code(type_code)) {
        (0, 0, Some(t)) if ndim > 0 => t,
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "bad magic number 0x{:08X}: not an IDX file (expected 0x00000803 for images \
                     or 0x00000801 for labels: two zero bytes, a type code such as 0x08 for \
                     unsigned bytes, and the number of dimensions)",
                    u32::from_be_bytes(magic),
                ),
            ))
        }
    };

    let mut dim_bytes = vec![0u8; 4 * ndim];
    let n = read_full(&mut r, &mut dim_bytes).map_err(read_err)?;
    if n < dim_bytes.len() {
        return Err(Error::format(
            path,
            format!(
                "truncated header: the magic number 0x{:08X} announces {ndim} dimension sizes \
                 ({} bytes after the magic number), but the {what} ends after {n}",
                u32::from_be_bytes(magic),
                4 * ndim
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data_len = dims
        .iter()
        .try_fold(dtype.size_of(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::format(
                path,
                format!("the dimensions {dims:?} are too large to address"),
            )
        })?;
    let header_len = 4 + 4 * ndim;
    let describe = || {
        format!(
            "the header declares dimensions {dims:?} of {}-byte elements = {data_len} data bytes",
            dtype.size_of()
        )
    };

    if let Some(total) = raw_len {
        let expected = header_len as u64 + data_len as u64;
        if total < expected {
            return Err(Error::format(
                path,
                format!(
                    "truncated: {}, {expected} bytes in all with the {header_len}-byte header, \
                     but the file is {total} bytes long",
                    describe()
                ),
            ));
        }
        if total > expected {
            return Err(Error::format(
                path,
                format!(
                    "{} unexpected bytes after the data: {}, {expected} bytes in all with the \
                     {header_len}-byte header, but the file is {total} bytes long",
                    total - expected,
                    describe()
                ),
            ));
        }
    }

    // Grow the buffer as data arrives (a damaged gzip header cannot make us allocate a huge
    // block up front); plain files were already checked against their length.
    let mut data = Vec::with_capacity(if gz { data_len.min(1 << 26) } else { data_len });
    (&mut r)
        .take(data_len as u64)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() < data_len {
        return Err(Error::format(
            path,
            format!(
                "truncated: {}, but the {what} holds only {} data bytes after the header",
                describe(),
                data.len()
            ),
        ));
    }
    // Reading to the end also makes the gzip decoder verify its CRC and length trailer.
    let extra = io::copy(&mut r, &mut io::sink()).map_err(read_err)?;
    if extra > 0 {
        return Err(Error::format(
            path,
            format!(
                "{extra} unexpected bytes after the data: {} and nothing after them",
                describe()
            ),
        ));
    }
    Ok(IdxArray { dtype, dims, data })
}
