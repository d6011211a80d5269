//! The TFRecord file format and `tf.train.Example`.
//!
//! A record file is a sequence of records, each framed as
//!
//! ```text
//! u64 length (little endian) | u32 masked_crc32c(length bytes) | data[length] | u32 masked_crc32c(data)
//! ```
//!
//! The framing and CRC32C are `ferrovision_io::record`'s (the CRC functions are re-exported
//! here); this module adds atomic and compressed record files and `tf.train.Example`.
//! [`RecordWriter`] works on raw record bytes and can flush after every record
//! ([`RecordWriter::set_flush_each`]) for live files.
//! [`Example`] encodes and decodes the `tf.train.Example` protobuf by hand (the message is
//! small and fixed, so no protobuf dependency or build script is needed).
//!
//! Files may be GZIP- or ZLIB-compressed as a whole, like TensorFlow's
//! `TFRecordWriter(options=TFRecordOptions(compression_type=...))` writes them: the framing
//! above is the *uncompressed* stream. [`Compression`] picks the format; readers stream through
//! flate2's decoders (a file is never loaded whole) and can detect the format from the first
//! bytes ([`ReadCompression::Auto`]).

use crate::fsutil::AtomicFile;
use crate::{Error, Result};
pub use ferrovision_io::record::{crc32c, crc32c_append, crc32c_portable, mask_crc, masked_crc32c};
use ferrovision_io::record::{footer_ok, write_frame, RecordHeader};
use flate2::bufread::{MultiGzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------------

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
const DEFAULT_LEVEL: u32 = 6;

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

enum Sink<W: Write> {
    Atomic(AtomicFile),
    // The encoders write into the temporary file; `finish` ends the stream, then renames.
    AtomicGzip(GzEncoder<AtomicFile>),
    AtomicZlib(ZlibEncoder<AtomicFile>),
    Plain(W),
}

/// Writes framed records (TFRecord / TensorBoard event file framing) of raw bytes.
///
/// `RecordWriter::create` writes to a temporary file that `finish` renames, so readers never see
/// a partial file. `RecordWriter::create_compressed` does the same through a GZIP or ZLIB
/// encoder. `RecordWriter::create_live` writes the final file directly and is meant for
/// files read while they grow (TensorBoard event files); combine it with `set_flush_each(true)`.
pub struct RecordWriter<W: Write = BufWriter<File>> {
    sink: Sink<W>,
    path: PathBuf,
    flush_each: bool,
    records: u64,
    bytes: u64,
}

impl RecordWriter<BufWriter<File>> {
    /// Creates `path` atomically: records go to a temporary file renamed by [`finish`](Self::finish).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_compressed(path, Compression::None)
    }

    /// Creates `path` atomically with the records compressed as a whole (zlib level 6, as
    /// TensorFlow's default), readable by `TFRecordDataset(compression_type=...)`.
    pub fn create_compressed(path: impl AsRef<Path>, compression: Compression) -> Result<Self> {
        Self::create_compressed_level(path, compression, DEFAULT_LEVEL)
    }

    /// [`create_compressed`](Self::create_compressed) with a compression level from 0 (stored)
    /// to 9 (smallest); the level is ignored for [`Compression::None`].
    pub fn create_compressed_level(
        path: impl AsRef<Path>,
        compression: Compression,
        level: u32,
    ) -> Result<Self> {
        if level > 9 {
            return Err(Error::invalid(
                "RecordWriter",
                format!("compression level {level} is not in 0..=9"),
            ));
        }
        let file = AtomicFile::create(path.as_ref())?;
        let lvl = flate2::Compression::new(level);
        let sink = match compression {
            Compression::None => Sink::Atomic(file),
            Compression::Gzip => Sink::AtomicGzip(GzEncoder::new(file, lvl)),
            Compression::Zlib => Sink::AtomicZlib(ZlibEncoder::new(file, lvl)),
        };
        Ok(RecordWriter {
            sink,
            path: path.as_ref().to_path_buf(),
            flush_each: false,
            records: 0,
            bytes: 0,
        })
    }

    /// Creates (or truncates) `path` and writes it in place, for files read while written.
    pub fn create_live(path: impl AsRef<Path>) -> Result<Self> {
        let f = File::create(path.as_ref()).map_err(|e| Error::io(path.as_ref(), e))?;
        Ok(RecordWriter {
            sink: Sink::Plain(BufWriter::new(f)),
            path: path.as_ref().to_path_buf(),
            flush_each: false,
            records: 0,
            bytes: 0,
        })
    }
}

impl<W: Write> RecordWriter<W> {
    /// Writes records into any writer (`path` is only used in error messages).
    pub fn from_writer(w: W, path: impl AsRef<Path>) -> Self {
        RecordWriter {
            sink: Sink::Plain(w),
            path: path.as_ref().to_path_buf(),
            flush_each: false,
            records: 0,
            bytes: 0,
        }
    }

    /// When true, the writer flushes after every record (so a reader sees each record at once).
    /// On a compressed writer every flush is a deflate sync flush, which costs compression.
    pub fn set_flush_each(&mut self, on: bool) {
        self.flush_each = on;
    }

    /// Number of records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn out(&mut self) -> &mut dyn Write {
        match &mut self.sink {
            Sink::Atomic(a) => a,
            Sink::AtomicGzip(e) => e,
            Sink::AtomicZlib(e) => e,
            Sink::Plain(w) => w,
        }
    }

    /// Appends one record.
    pub fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let flush = self.flush_each;
        let path = self.path.clone();
        let out = self.out();
        write_frame(out, data)
            .and_then(|_| if flush { out.flush() } else { Ok(()) })
            .map_err(|e| Error::io(&path, e))?;
        self.records += 1;
        self.bytes += 16 + data.len() as u64;
        Ok(())
    }

    /// Flushes buffered records to the underlying file/writer.
    pub fn flush(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.out().flush().map_err(|e| Error::io(&path, e))
    }

    /// Number of uncompressed bytes written so far (framing included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes (ending the compressed stream, if any) and, for atomic files, renames the
    /// temporary file to its final name. Returns the underlying writer for `from_writer`
    /// writers (`None` otherwise).
    pub fn finish(self) -> Result<Option<W>> {
        let path = self.path.clone();
        match self.sink {
            Sink::Atomic(a) => Ok(a.commit().map(|_| None)?),
            Sink::AtomicGzip(e) => e
                .finish()
                .map_err(|e| Error::io(&path, e))?
                .commit()
                .map(|_| None)
                .map_err(Error::from),
            Sink::AtomicZlib(e) => e
                .finish()
                .map_err(|e| Error::io(&path, e))?
                .commit()
                .map(|_| None)
                .map_err(Error::from),
            Sink::Plain(mut w) => {
                w.flush().map_err(|e| Error::io(&path, e))?;
                Ok(Some(w))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// A zlib decoder that also rejects bytes after the end of the stream (flate2 stops at the
/// stream's end and would silently ignore them).
struct StrictZlib(ZlibDecoder<BufReader<File>>);

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

enum Input {
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

// ---------------------------------------------------------------------------------------------
// tf.train.Example
// ---------------------------------------------------------------------------------------------

/// One feature of an [`Example`]: a list of byte strings, floats or 64-bit integers.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// `BytesList`
    Bytes(Vec<Vec<u8>>),
    /// `FloatList`
    Float(Vec<f32>),
    /// `Int64List`
    Int64(Vec<i64>),
}

/// A `tf.train.Example`: named features. Keys are kept sorted so encoding is deterministic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Example {
    /// The features by name.
    pub features: BTreeMap<String, Feature>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, ((field << 3) | wire) as u64);
}

fn put_len_delimited(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

impl Feature {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut list = Vec::new();
        let field = match self {
            Feature::Bytes(v) => {
                for b in v {
                    put_len_delimited(&mut list, 1, b);
                }
                1
            }
            Feature::Float(v) => {
                // Packed, as TensorFlow writes it.
                if !v.is_empty() {
                    put_key(&mut list, 1, 2);
                    put_varint(&mut list, (v.len() * 4) as u64);
                    for x in v {
                        list.extend_from_slice(&x.to_le_bytes());
                    }
                }
                2
            }
            Feature::Int64(v) => {
                if !v.is_empty() {
                    let body: usize = v.iter().map(|&x| varint_len(x as u64)).sum();
                    put_key(&mut list, 1, 2);
                    put_varint(&mut list, body as u64);
                    for &x in v {
                        put_varint(&mut list, x as u64);
                    }
                }
                3
            }
        };
        put_len_delimited(out, field, &list);
    }
}

impl Example {
    /// An empty example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a feature; returns `self` for chaining.
    pub fn with(mut self, key: impl Into<String>, f: Feature) -> Self {
        self.features.insert(key.into(), f);
        self
    }

    /// The feature named `key`.
    pub fn get(&self, key: &str) -> Option<&Feature> {
        self.features.get(key)
    }

    /// The bytes list named `key`, or an error naming the key and what it holds.
    pub fn bytes(&self, key: &str) -> Result<&[Vec<u8>]> {
        match self.features.get(key) {
            Some(Feature::Bytes(v)) => Ok(v),
            other => Err(Self::wrong(key, "bytes_list", other)),
        }
    }

    /// The float list named `key`.
    pub fn floats(&self, key: &str) -> Result<&[f32]> {
        match self.features.get(key) {
            Some(Feature::Float(v)) => Ok(v),
            other => Err(Self::wrong(key, "float_list", other)),
        }
    }

    /// The int64 list named `key`.
    pub fn int64s(&self, key: &str) -> Result<&[i64]> {
        match self.features.get(key) {
            Some(Feature::Int64(v)) => Ok(v),
            other => Err(Self::wrong(key, "int64_list", other)),
        }
    }

    fn wrong(key: &str, want: &str, got: Option<&Feature>) -> Error {
        let got = match got {
            None => "nothing",
            Some(Feature::Bytes(_)) => "a bytes_list",
            Some(Feature::Float(_)) => "a float_list",
            Some(Feature::Int64(_)) => "an int64_list",
        };
        Error::Proto(format!("feature '{key}': expected {want}, found {got}"))
    }

    /// Serialises to protobuf wire format.
    pub fn encode(&self) -> Vec<u8> {
        let mut features = Vec::new();
        for (k, f) in &self.features {
            let mut entry = Vec::new();
            put_len_delimited(&mut entry, 1, k.as_bytes());
            let mut fb = Vec::new();
            f.encode(&mut fb);
            put_len_delimited(&mut entry, 2, &fb);
            put_len_delimited(&mut features, 1, &entry);
        }
        let mut out = Vec::with_capacity(features.len() + 8);
        put_len_delimited(&mut out, 1, &features);
        out
    }

    /// Parses protobuf wire format (packed and unpacked lists; unknown fields skipped).
    pub fn decode(buf: &[u8]) -> Result<Example> {
        let mut ex = Example::new();
        let mut p = Parser::new(buf, "Example");
        while let Some((field, wire)) = p.key()? {
            if field == 1 && wire == 2 {
                let features = p.bytes()?;
                let mut fp = Parser::new(features, "Features");
                while let Some((ff, fw)) = fp.key()? {
                    if ff == 1 && fw == 2 {
                        let (k, v) = decode_entry(fp.bytes()?)?;
                        ex.features.insert(k, v);
                    } else {
                        fp.skip(fw)?;
                    }
                }
            } else {
                p.skip(wire)?;
            }
        }
        Ok(ex)
    }
}

fn decode_entry(buf: &[u8]) -> Result<(String, Feature)> {
    let mut p = Parser::new(buf, "Features.feature entry");
    let mut key = String::new();
    let mut feat = Feature::Bytes(Vec::new());
    let mut have_value = false;
    while let Some((f, w)) = p.key()? {
        match (f, w) {
            (1, 2) => {
                key = String::from_utf8(p.bytes()?.to_vec())
                    .map_err(|_| Error::Proto("feature key is not UTF-8".into()))?
            }
            (2, 2) => {
                feat = decode_feature(p.bytes()?)?;
                have_value = true;
            }
            _ => p.skip(w)?,
        }
    }
    if !have_value {
        // An absent value is an empty Feature in protobuf semantics; TF treats it as empty.
        feat = Feature::Bytes(Vec::new());
    }
    Ok((key, feat))
}

fn decode_feature(buf: &[u8]) -> Result<Feature> {
    let mut p = Parser::new(buf, "Feature");
    let mut out = Feature::Bytes(Vec::new());
    while let Some((f, w)) = p.key()? {
        if w != 2 {
            p.skip(w)?;
            continue;
        }
        let list = p.bytes()?;
        let mut lp = Parser::new(list, "Feature list");
        out = match f {
            1 => {
                let mut v = Vec::new();
                while let Some((lf, lw)) = lp.key()? {
                    if lf == 1 && lw == 2 {
                        v.push(lp.bytes()?.to_vec());
                    } else {
                        lp.skip(lw)?;
                    }
                }
                Feature::Bytes(v)
            }
            2 => {
                let mut v = Vec::new();
                while let Some((lf, lw)) = lp.key()? {
                    match (lf, lw) {
                        (1, 2) => {
                            let packed = lp.bytes()?;
                            if packed.len() % 4 != 0 {
                                return Err(Error::Proto(format!(
                                    "packed float list of {} bytes is not a multiple of 4",
                                    packed.len()
                                )));
                            }
                            v.extend(
                                packed
                                    .chunks_exact(4)
                                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
                            );
                        }
                        (1, 5) => v.push(f32::from_le_bytes(lp.fixed::<4>()?)),
                        _ => lp.skip(lw)?,
                    }
                }
                Feature::Float(v)
            }
            3 => {
                let mut v = Vec::new();
                while let Some((lf, lw)) = lp.key()? {
                    match (lf, lw) {
                        (1, 2) => {
                            let packed = lp.bytes()?;
                            let mut pp = Parser::new(packed, "packed int64 list");
                            while !pp.at_end() {
                                v.push(pp.varint()? as i64);
                            }
                        }
                        (1, 0) => v.push(lp.varint()? as i64),
                        _ => lp.skip(lw)?,
                    }
                }
                Feature::Int64(v)
            }
            _ => continue,
        };
    }
    Ok(out)
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Parser { buf, pos: 0, what }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn fail(&self, msg: &str) -> Error {
        Error::Proto(format!("{}: {msg} at byte {}", self.what, self.pos))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.fail("truncated varint"));
            };
            self.pos += 1;
            v |= ((b & 0x7F) as u64) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.fail("varint longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<Option<(u32, u32)>> {
        if self.at_end() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = (k >> 3) as u32;
        if field == 0 {
            return Err(self.fail("field number 0"));
        }
        Ok(Some((field, (k & 7) as u32)))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let end = (self.pos as u64).checked_add(len);
        match end {
            Some(e) if e <= self.buf.len() as u64 => {
                let s = &self.buf[self.pos..e as usize];
                self.pos = e as usize;
                Ok(s)
            }
            _ => Err(self.fail(&format!("length {len} runs past the end of the message"))),
        }
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.pos + N > self.buf.len() {
            return Err(self.fail("truncated fixed-width field"));
        }
        let v = self.buf[self.pos..self.pos + N].try_into().unwrap();
        self.pos += N;
        Ok(v)
    }

    fn skip(&mut self, wire: u32) -> Result<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.fixed::<8>().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.fixed::<4>().map(|_| ()),
            w => Err(self.fail(&format!("unsupported wire type {w}"))),
        }
    }
}

/// Writes examples to an uncompressed TFRecord file atomically.
pub fn write_examples(path: impl AsRef<Path>, examples: &[Example]) -> Result<()> {
    write_examples_with(path, examples, Compression::None)
}

/// Writes examples to a TFRecord file atomically, compressed as given.
pub fn write_examples_with(
    path: impl AsRef<Path>,
    examples: &[Example],
    compression: Compression,
) -> Result<()> {
    let mut w = RecordWriter::create_compressed(path, compression)?;
    for e in examples {
        w.write_record(&e.encode())?;
    }
    w.finish().map(|_| ())
}

/// Reads every example of an uncompressed TFRecord file.
pub fn read_examples(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    read_examples_with(path, Compression::None)
}

/// Reads every example of a TFRecord file with the given (or detected) compression.
pub fn read_examples_with(
    path: impl AsRef<Path>,
    compression: impl Into<ReadCompression>,
) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let mut out = Vec::new();
    let mut r = RecordReader::open_with(path, compression)?;
    let mut buf = Vec::new();
    loop {
        let off = r.offset();
        if !r.read_into(&mut buf)? {
            break;
        }
        out.push(Example::decode(&buf).map_err(|e| Error::Record {
            path: path.to_path_buf(),
            offset: off,
            msg: e.to_string(),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_negative_int64_roundtrip() {
        let ex = Example::new().with("x", Feature::Int64(vec![-1, i64::MIN, i64::MAX, 0, 300]));
        let back = Example::decode(&ex.encode()).unwrap();
        assert_eq!(back, ex);
    }
}
