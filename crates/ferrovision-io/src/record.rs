//! TFRecord record framing and CRC32C, shared by TFRecord files and TensorBoard event files.
//!
//! A record file is a sequence of records, each framed as
//!
//! ```text
//! u64 length (little endian) | u32 masked_crc32c(length bytes) | data[length] | u32 masked_crc32c(data)
//! ```
//!
//! This module writes and checks that framing on plain byte streams ([`write_frame`],
//! [`RecordHeader`], [`footer_ok`], [`FramedWriter`]); `ferrovision-data`'s `tfrecord` module
//! adds whole-file compression, atomic record files and `tf.train.Example` on top of it.
//!
//! CRC32C uses the SSE4.2 `crc32` instruction when the CPU has it and a slicing-by-8 table
//! otherwise (both give the same values; a test compares them).

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli)
// ---------------------------------------------------------------------------------------------

const POLY: u32 = 0x82F6_3B78; // reflected Castagnoli polynomial

/// Slicing-by-8 tables, built at compile time.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

fn crc32c_update_sw(mut crc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xFF) as usize]
            ^ TABLES[2][((hi >> 8) & 0xFF) as usize]
            ^ TABLES[1][((hi >> 16) & 0xFF) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ TABLES[0][((crc ^ b as u32) & 0xFF) as usize];
    }
    crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_update_hw(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = crc as u64;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let v = u64::from_le_bytes(ch.try_into().unwrap());
        c = _mm_crc32_u64(c, v);
    }
    let mut c = c as u32;
    for &b in chunks.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    c
}

/// CRC32C of `data` (the Castagnoli CRC that TFRecord uses). Uses the SSE4.2 instruction when
/// the CPU has it, a slicing-by-8 table otherwise.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// Continues a CRC32C over more bytes: `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the feature was detected at run time.
            return !unsafe { crc32c_update_hw(!crc, data) };
        }
    }
    !crc32c_update_sw(!crc, data)
}

/// CRC32C computed with the portable table path only (tests compare it with the SSE4.2 path).
pub fn crc32c_portable(data: &[u8]) -> u32 {
    !crc32c_update_sw(!0, data)
}

/// The masked CRC that TFRecord stores: rotating and adding a constant keeps a CRC of data that
/// itself holds CRCs from being trivially zero.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask_crc(crc32c(data))
}

/// Applies the TFRecord mask to a CRC.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// Bytes before a record's data: the length and its masked CRC.
pub const HEADER_LEN: usize = 12;

/// Bytes after a record's data: the data's masked CRC.
pub const FOOTER_LEN: usize = 4;

/// Writes one framed record (header, data, footer) to `out`.
pub fn write_frame<W: Write + ?Sized>(out: &mut W, data: &[u8]) -> std::io::Result<()> {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&(data.len() as u64).to_le_bytes());
    let lcrc = masked_crc32c(&header[..8]);
    header[8..].copy_from_slice(&lcrc.to_le_bytes());
    out.write_all(&header)?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The data length the header announces.
    pub len: u64,
    /// Whether the stored CRC matches the length bytes (a corrupted or non-record file if not).
    pub crc_ok: bool,
}

impl RecordHeader {
    /// Decodes the 12 header bytes of a record.
    pub fn parse(header: &[u8; HEADER_LEN]) -> RecordHeader {
        let len_bytes: [u8; 8] = header[..8].try_into().expect("8 bytes");
        let crc_bytes: [u8; 4] = header[8..].try_into().expect("4 bytes");
        RecordHeader {
            len: u64::from_le_bytes(len_bytes),
            crc_ok: masked_crc32c(&len_bytes) == u32::from_le_bytes(crc_bytes),
        }
    }
}

/// True when `footer` holds the masked CRC of `data`.
pub fn footer_ok(data: &[u8], footer: [u8; FOOTER_LEN]) -> bool {
    masked_crc32c(data) == u32::from_le_bytes(footer)
}

/// Writes framed records into any writer (a TensorBoard event file written in place, a socket,
/// a buffer); errors name `path`. For atomic and compressed record files use
/// `ferrovision_data::tfrecord::RecordWriter`, which frames through [`write_frame`] as well.
pub struct FramedWriter<W: Write> {
    out: W,
    path: PathBuf,
    flush_each: bool,
    records: u64,
}

impl<W: Write> FramedWriter<W> {
    /// Frames records into `out` (`path` is only used in error messages).
    pub fn new(out: W, path: impl AsRef<Path>) -> Self {
        FramedWriter {
            out,
            path: path.as_ref().to_path_buf(),
            flush_each: false,
            records: 0,
        }
    }

    /// When true, flushes after every record, so a reader sees each record at once.
    pub fn set_flush_each(&mut self, on: bool) {
        self.flush_each = on;
    }

    /// Number of records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends one record.
    pub fn write_record(&mut self, data: &[u8]) -> Result<()> {
        write_frame(&mut self.out, data)
            .and_then(|_| {
                if self.flush_each {
                    self.out.flush()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Error::io(&self.path, e))?;
        self.records += 1;
        Ok(())
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 (iSCSI) B.4 test vectors.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let dec: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn hw_and_portable_agree_on_odd_lengths() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [0, 1, 7, 8, 9, 15, 17, 63, 64, 65, 999, 1000] {
            assert_eq!(crc32c(&data[..n]), crc32c_portable(&data[..n]), "n={n}");
        }
        assert_eq!(
            crc32c_append(crc32c(&data[..100]), &data[100..]),
            crc32c(&data)
        );
    }

    #[test]
    fn frame_roundtrip_and_corruption() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 5 + FOOTER_LEN);
        let h = RecordHeader::parse(buf[..HEADER_LEN].try_into().unwrap());
        assert_eq!(
            h,
            RecordHeader {
                len: 5,
                crc_ok: true
            }
        );
        let footer: [u8; 4] = buf[HEADER_LEN + 5..].try_into().unwrap();
        assert!(footer_ok(b"hello", footer));
        assert!(!footer_ok(b"hellp", footer));
        buf[0] ^= 1;
        assert!(!RecordHeader::parse(buf[..HEADER_LEN].try_into().unwrap()).crc_ok);
    }
}
