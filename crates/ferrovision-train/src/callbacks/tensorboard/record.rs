//! TFRecord framing, CRC32C and the few protobuf messages of a TensorBoard event file.
//!
//! The record framing and CRC32C are `ferrovision_io::record`'s.
//!
//! Record layout: `u64 length (LE) | u32 masked CRC32C of the length bytes | data |
//! u32 masked CRC32C of data`. Protobuf messages (tensorflow/core/util/event.proto,
//! summary.proto) are encoded by hand, proto3-style: fields in number order, scalar fields at
//! their default value omitted, except members of a `oneof`.

/// A protobuf message being encoded.
#[derive(Default)]
pub(crate) struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    /// `double` field (wire type 1), omitted at 0.
    fn double(&mut self, field: u32, v: f64) {
        if v.to_bits() != 0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// `float` field (wire type 5), always written (used in a oneof).
    fn float_always(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// `int32`/`int64` field (varint, negative values as 10-byte two's complement), omitted at 0.
    fn int(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    /// Length-delimited field (string, bytes, sub-message).
    fn bytes_always(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// `string`/`bytes` field, omitted when empty.
    fn bytes(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.bytes_always(field, b);
        }
    }

    /// `repeated double` (packed), omitted when empty.
    fn packed_doubles(&mut self, field: u32, v: &[f64]) {
        if !v.is_empty() {
            self.key(field, 2);
            self.varint(8 * v.len() as u64);
            for x in v {
                self.0.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `HistogramProto` contents.
pub(crate) struct HistoFields<'a> {
    pub min: f64,
    pub max: f64,
    pub num: f64,
    pub sum: f64,
    pub sum_squares: f64,
    pub bucket_limit: &'a [f64],
    pub bucket: &'a [f64],
}

/// What one `Summary.Value` holds (the `value` oneof).
pub(crate) enum ValueKind<'a> {
    Simple(f32),
    Histo(HistoFields<'a>),
    Image {
        height: i32,
        width: i32,
        colorspace: i32,
        png: &'a [u8],
    },
}

/// `Summary.Value { tag = 1; oneof value { simple_value = 2; image = 4; histo = 5; } }`.
pub(crate) fn summary_value(tag: &str, kind: &ValueKind) -> Vec<u8> {
    let mut v = Proto::default();
    v.bytes(1, tag.as_bytes());
    match kind {
        ValueKind::Simple(x) => v.float_always(2, *x),
        ValueKind::Image {
            height,
            width,
            colorspace,
            png,
        } => {
            let mut im = Proto::default();
            im.int(1, *height as i64);
            im.int(2, *width as i64);
            im.int(3, *colorspace as i64);
            im.bytes(4, png);
            v.bytes_always(4, &im.into_bytes());
        }
        ValueKind::Histo(h) => {
            let mut p = Proto::default();
            p.double(1, h.min);
            p.double(2, h.max);
            p.double(3, h.num);
            p.double(4, h.sum);
            p.double(5, h.sum_squares);
            p.packed_doubles(6, h.bucket_limit);
            p.packed_doubles(7, h.bucket);
            v.bytes_always(5, &p.into_bytes());
        }
    }
    v.into_bytes()
}

/// `Event { wall_time = 1; step = 2; oneof what { file_version = 3; summary = 5; } }` where
/// `Summary { repeated Value value = 1; }`.
pub(crate) enum EventWhat<'a> {
    FileVersion(&'a str),
    /// Encoded `Summary.Value`s.
    Summary(&'a [Vec<u8>]),
}

/// An encoded `Event`.
pub(crate) fn event(wall_time: f64, step: i64, what: &EventWhat) -> Vec<u8> {
    let mut e = Proto::default();
    e.double(1, wall_time);
    e.int(2, step);
    match what {
        EventWhat::FileVersion(v) => e.bytes_always(3, v.as_bytes()),
        EventWhat::Summary(values) => {
            let mut s = Proto::default();
            for v in *values {
                s.bytes_always(1, v);
            }
            e.bytes_always(5, &s.into_bytes());
        }
    }
    e.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints() {
        let mut p = Proto::default();
        p.int(2, 300);
        assert_eq!(p.into_bytes(), [0x10, 0xac, 0x02]);
        let mut p = Proto::default();
        p.int(1, -1);
        assert_eq!(
            p.into_bytes(),
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
