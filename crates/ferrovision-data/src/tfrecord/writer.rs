//! [`RecordWriter`]: framed records (`ferrovision-io`'s framing) into a file or any writer,
//! optionally compressed, written atomically.

use super::compression::*;
use crate::fsutil::AtomicFile;
use crate::{Error, Result};
use ferrovision_io::record::write_frame;
use flate2::write::{GzEncoder, ZlibEncoder};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(super) enum Sink<W: Write> {
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
