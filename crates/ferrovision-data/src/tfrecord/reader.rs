//! [`RecordReader`]: framed records streamed from a (possibly compressed) file, with CRC checks
//! and errors naming the file and record.

use super::compression::*;
use crate::{Error, Result};
use ferrovision_io::record::{footer_ok, RecordHeader};
use flate2::bufread::{MultiGzDecoder, ZlibDecoder};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A zlib decoder that also rejects bytes after the end of the stream (flate2 stops at the
/// stream's end and would silently ignore them).
pub(super) struct StrictZlib(ZlibDecoder<BufReader<File>>);

impl Read for StrictZlib {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let rest = self.0.get_mut().fill_buf()?.len();
            if rest > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "unexpected data after the end of the zlib stream (at least {rest} bytes)"
                    ),
                ));
            }
        }
        Ok(n)
    }
}

pub(super) enum Input {
    Plain(BufReader<File>),
    // The outer buffer turns the reader's small header/footer reads into large decoder calls.
    Gzip(BufReader<MultiGzDecoder<BufReader<File>>>),
    Zlib(BufReader<StrictZlib>),
}

/// The byte stream of a record file opened by [`RecordReader::open_with`]: the file itself, or
/// its content decompressed on the fly.
pub struct FileInput(Input);

impl FileInput {
    /// Opens `path`, decoding it with `compression`.
    pub fn open(path: impl AsRef<Path>, compression: Compression) -> Result<FileInput> {
        let path = path.as_ref();
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let file = BufReader::with_capacity(1 << 16, f);
        Ok(FileInput(match compression {
            Compression::None => Input::Plain(file),
            Compression::Gzip => {
                Input::Gzip(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
            }
            Compression::Zlib => Input::Zlib(BufReader::with_capacity(
                1 << 16,
                StrictZlib(ZlibDecoder::new(file)),
            )),
        }))
    }

    /// The compression this input decodes.
    pub fn compression(&self) -> Compression {
        match self.0 {
            Input::Plain(_) => Compression::None,
            Input::Gzip(_) => Compression::Gzip,
            Input::Zlib(_) => Compression::Zlib,
        }
    }
}

impl Read for FileInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Input::Plain(r) => r.read(buf),
            Input::Gzip(r) => r.read(buf),
            Input::Zlib(r) => r.read(buf),
        }
    }
}

/// Reads framed records and checks both CRCs. Errors name the file and the byte offset of the
/// record whose framing is wrong; for compressed files offsets are in the uncompressed stream,
/// and a truncated or corrupt compressed stream is [`Error::Compressed`].
pub struct RecordReader<R: Read = FileInput> {
    input: R,
    path: PathBuf,
    offset: u64,
    verify: bool,
    done: bool,
    compression: Compression,
}

impl RecordReader<FileInput> {
    /// Opens an uncompressed record file (TensorFlow's default).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Compression::None)
    }

    /// Opens a record file that uses `compression`, a [`Compression`] or
    /// [`ReadCompression::Auto`] (detected from the first bytes).
    pub fn open_with(
        path: impl AsRef<Path>,
        compression: impl Into<ReadCompression>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let c = compression.into().resolve(path)?;
        let mut r = Self::from_reader(FileInput::open(path, c)?, path);
        r.compression = c;
        Ok(r)
    }
}

impl<R: Read> RecordReader<R> {
    /// Reads records from any reader (`path` is only used in error messages).
    pub fn from_reader(input: R, path: impl AsRef<Path>) -> Self {
        RecordReader {
            input,
            path: path.as_ref().to_path_buf(),
            offset: 0,
            verify: true,
            done: false,
            compression: Compression::None,
        }
    }

    /// The compression of the underlying file ([`Compression::None`] for `from_reader`).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Turns CRC checking on (default) or off.
    pub fn set_verify(&mut self, on: bool) {
        self.verify = on;
    }

    /// Byte offset of the next record (in the uncompressed stream).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn err(&self, offset: u64, msg: impl Into<String>) -> Error {
        Error::Record {
            path: self.path.clone(),
            offset,
            msg: msg.into(),
        }
    }

    /// Reads exactly `buf.len()` bytes; returns how many were read before end of file.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.input.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        Ok(n)
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        if self.compression == Compression::None {
            return Error::io(&self.path, e);
        }
        // Decoder errors (bad header, corrupt deflate data, checksum, early end) say what is
        // wrong with the compressed stream; `offset` is the record being read when it failed.
        let msg = match e.kind() {
            std::io::ErrorKind::UnexpectedEof => format!("truncated stream ({e})"),
            _ => e.to_string(),
        };
        Error::Compressed {
            path: self.path.clone(),
            compression: self.compression,
            offset: self.offset,
            msg,
        }
    }

    /// Reads the next record into `buf` (replacing its contents). Returns `Ok(false)` at a clean
    /// end of file.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let start = self.offset;
        // Any error below ends the stream: framing cannot be resynchronised reliably (and a
        // decoder may repeat its error forever). Only a complete record clears `done`.
        self.done = true;
        let mut header = [0u8; 12];
        let n = self.read_full(&mut header)?;
        if n == 0 {
            return Ok(false);
        }
        if n < 12 {
            return Err(self.err(start, format!("truncated record header ({n} of 12 bytes)")));
        }
        let RecordHeader { len, crc_ok } = RecordHeader::parse(&header);
        if self.verify && !crc_ok {
            let hint = if start == 0 && self.compression == Compression::None {
                match Compression::sniff(&header) {
                    Compression::None => "",
                    // A common mistake: reading a compressed file as plain framing.
                    Compression::Gzip => " (the file starts like a GZIP stream: open it with Compression::Gzip or ReadCompression::Auto)",
                    Compression::Zlib => " (the file starts like a ZLIB stream: open it with Compression::Zlib or ReadCompression::Auto)",
                }
            } else {
                ""
            };
            return Err(self.err(
                start,
                format!("corrupted record: length CRC mismatch{hint}"),
            ));
        }
        if len > (1 << 40) {
            return Err(self.err(start, format!("implausible record length {len}")));
        }
        let len = len as usize;
        buf.clear();
        // Grow in steps so a corrupted length with a good CRC cannot allocate terabytes at once.
        let mut got = 0usize;
        while got < len {
            let step = (len - got).min(1 << 24);
            buf.resize(got + step, 0);
            let k = self.read_full(&mut buf[got..got + step])?;
            got += k;
            if k < step {
                return Err(self.err(
                    start,
                    format!("truncated record: {got} of {len} data bytes"),
                ));
            }
        }
        let mut footer = [0u8; 4];
        let k = self.read_full(&mut footer)?;
        if k < 4 {
            return Err(self.err(start, "truncated record: missing data CRC"));
        }
        if self.verify && !footer_ok(buf, footer) {
            return Err(self.err(start, "corrupted record: data CRC mismatch"));
        }
        self.offset = start + 16 + len as u64;
        self.done = false;
        Ok(true)
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match self.read_into(&mut buf) {
            Ok(true) => Some(Ok(buf)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Reads every record of an uncompressed file.
pub fn read_records(path: impl AsRef<Path>) -> Result<Vec<Vec<u8>>> {
    RecordReader::open(path)?.collect()
}

/// Reads every record of a file with the given (or detected) compression.
pub fn read_records_with(
    path: impl AsRef<Path>,
    compression: impl Into<ReadCompression>,
) -> Result<Vec<Vec<u8>>> {
    RecordReader::open_with(path, compression)?.collect()
}
