//! `tf.train.Example` encoded and decoded by hand (the message is small and fixed, so no
//! protobuf dependency or build script is needed); the wire format itself is
//! `ferrovision_io::protobuf`.

use crate::{Error, Result};
use ferrovision_io::protobuf::{put_key, put_len_delimited, put_varint, varint_len, WireReader};
use std::collections::BTreeMap;

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
        let mut p = WireReader::new(buf, "Example");
        while let Some((field, wire)) = p.key()? {
            if field == 1 && wire == 2 {
                let features = p.bytes()?;
                let mut fp = WireReader::new(features, "Features");
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

pub(super) fn decode_entry(buf: &[u8]) -> Result<(String, Feature)> {
    let mut p = WireReader::new(buf, "Features.feature entry");
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

pub(super) fn decode_feature(buf: &[u8]) -> Result<Feature> {
    let mut p = WireReader::new(buf, "Feature");
    let mut out = Feature::Bytes(Vec::new());
    while let Some((f, w)) = p.key()? {
        if w != 2 {
            p.skip(w)?;
            continue;
        }
        let list = p.bytes()?;
        let mut lp = WireReader::new(list, "Feature list");
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
                            let mut pp = WireReader::new(packed, "packed int64 list");
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
