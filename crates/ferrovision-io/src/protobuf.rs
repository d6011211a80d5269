//! Protocol-buffers wire format, read and written by hand (no protobuf dependency or build
//! script): the messages ferrovision needs (`tf.train.Example` in `ferrovision-data`, ONNX
//! `ModelProto` in `ferrovision-import`) are small and fixed, so each caller walks its fields
//! with a [`WireReader`] and keeps only what it knows.
//!
//! Encoding (<https://protobuf.dev/programming-guides/encoding/>): a message is a sequence of
//! `key value` pairs, `key = field_number << 3 | wire_type`, both varints (little-endian base
//! 128, at most 10 bytes). Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited (varint
//! length, then that many bytes: strings, bytes, sub-messages and packed repeated scalars),
//! 5 fixed 32-bit; groups (3, 4) are deprecated and refused. Unknown fields are skipped.
//!
//! Every length is checked against the bytes left before it is used, so a corrupt or
//! truncated message is a [`WireError`] (naming the message and byte offset), never a panic
//! or an allocation of an unchecked size.

use std::fmt;

/// A malformed protobuf message: what was being read, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The message (or field) being read, e.g. `"TensorProto"`.
    pub what: &'static str,
    /// Byte offset inside that message.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} at byte {}", self.what, self.msg, self.pos)
    }
}

impl std::error::Error for WireError {}

/// Wire type of varints (`int32`, `int64`, `uint64`, `bool`, enums).
pub const WIRE_VARINT: u32 = 0;
/// Wire type of fixed 64-bit values (`double`, `fixed64`).
pub const WIRE_I64: u32 = 1;
/// Wire type of length-delimited values (strings, bytes, messages, packed lists).
pub const WIRE_LEN: u32 = 2;
/// Wire type of fixed 32-bit values (`float`, `fixed32`).
pub const WIRE_I32: u32 = 5;

/// A cursor over one protobuf message.
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> WireReader<'a> {
    /// A reader of the message `buf`; `what` names it in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        WireReader { buf, pos: 0, what }
    }

    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// An error at the current position.
    pub fn fail(&self, msg: impl Into<String>) -> WireError {
        WireError {
            what: self.what,
            pos: self.pos,
            msg: msg.into(),
        }
    }

    /// The next varint.
    pub fn varint(&mut self) -> Result<u64, WireError> {
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

    /// The next field key as `(field number, wire type)`, or `None` at the end of the message.
    pub fn key(&mut self) -> Result<Option<(u32, u32)>, WireError> {
        if self.at_end() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u32::MAX as u64 {
            return Err(self.fail(format!("invalid field number {field}")));
        }
        Ok(Some((field as u32, (k & 7) as u32)))
    }

    /// The next length-delimited value (checked against the bytes left).
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if len > left {
            return Err(self.fail(format!(
                "length {len} runs past the end of the message ({left} bytes left)"
            )));
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }

    /// The next `N` bytes of a fixed-width value.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        match self.buf.get(self.pos..self.pos + N) {
            Some(s) => {
                let mut v = [0u8; N];
                v.copy_from_slice(s);
                self.pos += N;
                Ok(v)
            }
            None => Err(self.fail("truncated fixed-width field")),
        }
    }

    /// Skips a value of wire type `wire`.
    pub fn skip(&mut self, wire: u32) -> Result<(), WireError> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_I64 => self.fixed::<8>().map(|_| ()),
            WIRE_LEN => self.bytes().map(|_| ()),
            WIRE_I32 => self.fixed::<4>().map(|_| ()),
            w => Err(self.fail(format!("unsupported wire type {w}"))),
        }
    }

    /// A UTF-8 string field.
    pub fn string(&mut self) -> Result<&'a str, WireError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.fail("string field is not UTF-8"))
    }

    /// A repeated varint field, packed (wire type 2) or one unpacked element (wire type 0),
    /// appended to `out`.
    pub fn repeated_varint(&mut self, wire: u32, out: &mut Vec<u64>) -> Result<(), WireError> {
        match wire {
            WIRE_VARINT => out.push(self.varint()?),
            WIRE_LEN => {
                let mut p = WireReader::new(self.bytes()?, self.what);
                while !p.at_end() {
                    out.push(p.varint()?);
                }
            }
            w => return Err(self.fail(format!("wire type {w} for a repeated varint field"))),
        }
        Ok(())
    }

    /// A repeated fixed-width field of `N`-byte elements, packed (wire type 2) or one unpacked
    /// element (wire type 1 or 5), appended to `out` as raw little-endian bytes.
    pub fn repeated_fixed<const N: usize>(
        &mut self,
        wire: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let unpacked = if N == 8 { WIRE_I64 } else { WIRE_I32 };
        if wire == unpacked {
            out.extend_from_slice(&self.fixed::<N>()?);
        } else if wire == WIRE_LEN {
            let b = self.bytes()?;
            if b.len() % N != 0 {
                return Err(self.fail(format!(
                    "packed list of {} bytes is not a multiple of {N}",
                    b.len()
                )));
            }
            out.extend_from_slice(b);
        } else {
            return Err(self.fail(format!("wire type {wire} for a repeated {N}-byte field")));
        }
        Ok(())
    }
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The encoded length of `v` as a varint.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends a field key.
pub fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

/// Appends a length-delimited field.
pub fn put_len_delimited(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_fail() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut r = WireReader::new(&b, "t");
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.at_end());
        }
        let e = WireReader::new(&[0x80; 11], "t").varint().unwrap_err();
        assert!(e.msg.contains("longer than 10"), "{e}");
        let e = WireReader::new(&[0x80], "t").varint().unwrap_err();
        assert!(e.msg.contains("truncated"), "{e}");
    }

    #[test]
    fn lengths_past_the_end_are_errors() {
        let mut b = Vec::new();
        put_key(&mut b, 3, WIRE_LEN);
        put_varint(&mut b, u64::MAX);
        let mut r = WireReader::new(&b, "Msg");
        assert_eq!(r.key().unwrap(), Some((3, WIRE_LEN)));
        let e = r.bytes().unwrap_err();
        assert_eq!(e.what, "Msg");
        assert!(e.to_string().contains("runs past the end"), "{e}");
        assert!(WireReader::new(&[0x00], "t").key().is_err(), "field 0");
        assert!(WireReader::new(&[0x0B], "t").skip(3).is_err(), "groups");
    }

    #[test]
    fn packed_and_unpacked_repeated_fields() {
        let mut b = Vec::new();
        put_key(&mut b, 1, WIRE_VARINT);
        put_varint(&mut b, 5);
        let mut packed = Vec::new();
        put_varint(&mut packed, 300);
        put_varint(&mut packed, 1);
        put_len_delimited(&mut b, 1, &packed);
        put_len_delimited(&mut b, 2, &1.5f32.to_le_bytes());
        put_key(&mut b, 2, WIRE_I32);
        b.extend_from_slice(&2.5f32.to_le_bytes());
        put_len_delimited(&mut b, 2, &[0, 0, 0]);
        let mut r = WireReader::new(&b, "t");
        let (mut ints, mut floats) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (f, w) = r.key().unwrap().unwrap();
            assert_eq!(f, 1);
            r.repeated_varint(w, &mut ints).unwrap();
        }
        for _ in 0..2 {
            let (_, w) = r.key().unwrap().unwrap();
            r.repeated_fixed::<4>(w, &mut floats).unwrap();
        }
        assert_eq!(ints, [5, 300, 1]);
        let f: Vec<f32> = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(f, [1.5, 2.5]);
        let (_, w) = r.key().unwrap().unwrap();
        assert!(r.repeated_fixed::<4>(w, &mut floats).is_err(), "3 bytes");
    }
}
