//! Whole-file GZIP / ZLIB compression of record files (TensorFlow's `compression_type`) and
//! its detection from the first bytes.

use crate::{Error, Result};
use ferrovision_io::record::masked_crc32c;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Whole-file compression of a record file (TensorFlow's `compression_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Plain framing (TensorFlow's `""` / `None`).
    #[default]
    None,
    /// A gzip stream (RFC 1952), TensorFlow's `"GZIP"`.
    Gzip,
    /// A zlib stream (RFC 1950), TensorFlow's `"ZLIB"`.
    Zlib,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "GZIP",
            Compression::Zlib => "ZLIB",
        })
    }
}

impl Compression {
    /// TensorFlow's name: `""`, `"GZIP"` or `"ZLIB"`.
    pub fn tf_name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "GZIP",
            Compression::Zlib => "ZLIB",
        }
    }

    /// Parses TensorFlow's `compression_type` (`""`, `"NONE"`, `"GZIP"`, `"ZLIB"`; any case).
    pub fn from_tf_name(name: &str) -> Result<Compression> {
        match name.to_ascii_uppercase().as_str() {
            "" | "NONE" => Ok(Compression::None),
            "GZIP" => Ok(Compression::Gzip),
            "ZLIB" => Ok(Compression::Zlib),
            _ => Err(Error::invalid(
                "Compression",
                format!("unknown compression type '{name}' (expected \"\", GZIP or ZLIB)"),
            )),
        }
    }

    /// The compression a file name suggests: `.gz`/`.gzip` is GZIP, `.zz`/`.zlib` is ZLIB,
    /// anything else none. Meant for choosing what a writer produces from its output name;
    /// readers should rather use [`ReadCompression::Auto`], which looks at the content.
    pub fn from_extension(path: impl AsRef<Path>) -> Compression {
        let ext = path
            .as_ref()
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("gz" | "gzip") => Compression::Gzip,
            Some("zz" | "zlib") => Compression::Zlib,
            _ => Compression::None,
        }
    }

    /// Guesses the format from the first (up to) 12 bytes of a file.
    ///
    /// A valid length CRC in bytes 8..12 means plain framing (a compressed stream matches it
    /// with probability 2^-32); otherwise the gzip magic `1f 8b` means GZIP, and a valid zlib
    /// header (deflate method, window <= 32 KiB, no preset dictionary, header check a multiple
    /// of 31) means ZLIB. Anything else is taken as plain framing, so the reader reports what
    /// is wrong with its first record.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.len() >= 12
            && masked_crc32c(&head[..8]) == u32::from_le_bytes(head[8..12].try_into().unwrap())
        {
            return Compression::None;
        }
        if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
            return Compression::Gzip;
        }
        if head.len() >= 2 {
            let (cmf, flg) = (head[0], head[1]);
            let deflate = cmf & 0x0f == 8 && cmf >> 4 <= 7;
            let check = (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
            let no_dict = flg & 0x20 == 0;
            if deflate && check && no_dict {
                return Compression::Zlib;
            }
        }
        Compression::None
    }

    /// Reads the first bytes of `path` and [`sniff`](Self::sniff)s its format.
    pub fn detect(path: impl AsRef<Path>) -> Result<Compression> {
        let path = path.as_ref();
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = [0u8; 12];
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(Compression::sniff(&head[..n]))
    }
}

/// What a reader expects: a known [`Compression`] (what TensorFlow requires) or detection
/// from the file's first bytes ([`Compression::sniff`]). `Compression` converts into it, so
/// `RecordReader::open_with(p, Compression::Gzip)` and `open_with(p, ReadCompression::Auto)`
/// both work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadCompression {
    /// The file is known to use this compression.
    Known(Compression),
    /// Detect per file from its first bytes.
    Auto,
}

impl Default for ReadCompression {
    fn default() -> Self {
        ReadCompression::Known(Compression::None)
    }
}

impl From<Compression> for ReadCompression {
    fn from(c: Compression) -> Self {
        ReadCompression::Known(c)
    }
}

impl ReadCompression {
    /// The compression of `path`: the known one, or the detected one for `Auto`.
    pub fn resolve(self, path: impl AsRef<Path>) -> Result<Compression> {
        match self {
            ReadCompression::Known(c) => Ok(c),
            ReadCompression::Auto => Compression::detect(path),
        }
    }
}

/// flate2 level used when none is given: zlib's default (6), which TensorFlow also uses.
pub(super) const DEFAULT_LEVEL: u32 = 6;
