//! ONNX initializers: the constant tensors (weights) of an ONNX model, read from its protobuf
//! with `ferrovision_io::protobuf` (no protobuf dependency, nothing generated).
//!
//! Format reference: `onnx/onnx.proto` (<https://github.com/onnx/onnx/blob/main/onnx/onnx.proto>)
//! and the external-data doc (`docs/ExternalData.md` there). Only the fields on the path to the
//! weights are decoded: `ModelProto.graph` (7) → `GraphProto.initializer` (5, in file order) and
//! `GraphProto.sparse_initializer` (15, refused) → `TensorProto`:
//!
//! | field | number | use |
//! |---|---|---|
//! | `dims` | 1 | shape (packed or unpacked int64) |
//! | `data_type` | 2 | element type (`TensorProto.DataType`) |
//! | `float_data` | 4 | FLOAT |
//! | `int32_data` | 5 | INT32, INT16, INT8, UINT16, UINT8, BOOL, and FLOAT16/BFLOAT16 bit patterns |
//! | `int64_data` | 7 | INT64 |
//! | `name` | 8 | the tensor's name |
//! | `raw_data` | 9 | any type, little-endian |
//! | `double_data` | 10 | DOUBLE |
//! | `uint64_data` | 11 | UINT32 |
//! | `external_data` | 13 | `location` / `offset` / `length` of the bytes in another file |
//! | `data_location` | 14 | 1 = EXTERNAL |
//!
//! Element types become ferrovision dtypes as documented in `docs/import.md` (DOUBLE becomes
//! f32; small integers widen). Strings, complex, UINT64, 8-bit and 4-bit float types are
//! refused with an error naming the tensor. External data must name a relative path inside the
//! model's folder (no `..`, no absolute path, no symlink out of it), and the range must lie
//! inside that file. Initializers of subgraphs (`If`/`Loop` bodies) are not read.

use crate::raw::{self, RawType};
use crate::{Error, ImportedWeights, Result, SourceFormat};
use ferrovision_io::protobuf::{WireError, WireReader, WIRE_LEN};
use ferrovision_tensor::Tensor;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Reads the initializers of the ONNX model at `path`, under their ONNX names, in graph order.
pub fn read(path: &Path) -> Result<ImportedWeights> {
    let bytes = ferrovision_io::read(path)?;
    let wire = |e: WireError| Error::format(path, format!("not a valid ONNX model: {e}"));
    let mut graph = None;
    let mut model = WireReader::new(&bytes, "ModelProto");
    while let Some((field, w)) = model.key().map_err(wire)? {
        if field == 7 && w == WIRE_LEN {
            graph = Some(model.bytes().map_err(wire)?);
        } else {
            model.skip(w).map_err(wire)?;
        }
    }
    let graph = graph.ok_or_else(|| Error::format(path, "ONNX model without a graph"))?;
    let mut tensors = Vec::new();
    let mut g = WireReader::new(graph, "GraphProto");
    while let Some((field, w)) = g.key().map_err(wire)? {
        match (field, w) {
            (5, WIRE_LEN) => {
                let index = tensors.len();
                let proto = parse_tensor(g.bytes().map_err(wire)?)
                    .map_err(|e| Error::format(path, format!("initializer #{index}: {e}")))?;
                let t = proto.to_tensor(path).map_err(|e| {
                    Error::format(path, format!("initializer '{}': {e}", proto.name))
                })?;
                tensors.push((proto.name.to_string(), t));
            }
            (15, WIRE_LEN) => {
                return Err(Error::format(
                    path,
                    "sparse initializers (GraphProto.sparse_initializer) are not supported",
                ))
            }
            _ => g.skip(w).map_err(wire)?,
        }
    }
    Ok(ImportedWeights {
        path: path.to_path_buf(),
        format: SourceFormat::Onnx,
        tensors,
    })
}

/// The fields of one `TensorProto` that locate its values.
#[derive(Default)]
struct TensorProto<'a> {
    name: &'a str,
    dims: Vec<u64>,
    data_type: u64,
    raw: Option<&'a [u8]>,
    /// float_data / double_data as little-endian bytes.
    fixed: Vec<u8>,
    /// int32_data / int64_data / uint64_data.
    varints: Vec<u64>,
    external: bool,
    location: Option<&'a str>,
    offset: Option<&'a str>,
    length: Option<&'a str>,
}

fn parse_tensor(buf: &[u8]) -> std::result::Result<TensorProto<'_>, WireError> {
    let mut t = TensorProto::default();
    let mut p = WireReader::new(buf, "TensorProto");
    while let Some((field, w)) = p.key()? {
        match field {
            1 => p.repeated_varint(w, &mut t.dims)?,
            2 if w == 0 => t.data_type = p.varint()?,
            4 => p.repeated_fixed::<4>(w, &mut t.fixed)?,
            5 | 7 | 11 => p.repeated_varint(w, &mut t.varints)?,
            8 if w == WIRE_LEN => t.name = p.string()?,
            9 if w == WIRE_LEN => t.raw = Some(p.bytes()?),
            10 => p.repeated_fixed::<8>(w, &mut t.fixed)?,
            13 if w == WIRE_LEN => {
                let mut e = WireReader::new(p.bytes()?, "StringStringEntryProto");
                let (mut key, mut value) = ("", "");
                while let Some((f, ew)) = e.key()? {
                    match (f, ew) {
                        (1, WIRE_LEN) => key = e.string()?,
                        (2, WIRE_LEN) => value = e.string()?,
                        _ => e.skip(ew)?,
                    }
                }
                match key {
                    "location" => t.location = Some(value),
                    "offset" => t.offset = Some(value),
                    "length" => t.length = Some(value),
                    _ => {}
                }
            }
            14 if w == 0 => t.external = p.varint()? == 1,
            _ => p.skip(w)?,
        }
    }
    Ok(t)
}

/// `TensorProto.DataType` → how the bytes are stored and which typed field holds them
/// (`'f'` float_data, `'i'` int32_data, `'l'` int64_data, `'d'` double_data, `'u'` uint64_data).
fn data_type(code: u64) -> std::result::Result<(RawType, char), String> {
    Ok(match code {
        1 => (RawType::F32, 'f'),
        2 => (RawType::U8, 'i'),
        3 => (RawType::I8, 'i'),
        4 => (RawType::U16, 'i'),
        5 => (RawType::I16, 'i'),
        6 => (RawType::I32, 'i'),
        7 => (RawType::I64, 'l'),
        9 => (RawType::Bool, 'i'),
        10 => (RawType::F16, 'i'),
        11 => (RawType::F64, 'd'),
        12 => (RawType::U32, 'u'),
        16 => (RawType::BF16, 'i'),
        0 => return Err("data_type is UNDEFINED (0)".into()),
        8 => return Err("STRING tensors are not supported".into()),
        13 => return Err("UINT64 tensors are not supported".into()),
        14 | 15 => return Err("complex tensors are not supported".into()),
        c => {
            return Err(format!(
                "data_type {c} (8-bit/4-bit or unknown) is not supported"
            ))
        }
    })
}

impl TensorProto<'_> {
    fn to_tensor(&self, model: &Path) -> std::result::Result<Tensor, String> {
        let (ty, field) = data_type(self.data_type)?;
        let dims: Vec<i64> = self.dims.iter().map(|&d| d as i64).collect();
        let (shape, n) = raw::numel(&dims)?;
        let want = raw::byte_len(ty, n)?;
        if self.external {
            let bytes = self.read_external(model, want)?;
            return raw::tensor(ty, &bytes, &shape);
        }
        if let Some(r) = self.raw {
            return raw::tensor(ty, r, &shape);
        }
        match field {
            'f' | 'd' => raw::tensor(ty, &self.fixed, &shape),
            _ => {
                if self.varints.len() != n {
                    return Err(format!(
                        "{} values for shape {shape:?} ({n} expected)",
                        self.varints.len()
                    ));
                }
                // Typed fields hold each element in a varint; re-encode them as the
                // little-endian bytes of the element type (int32_data holds the bit pattern
                // of FLOAT16/BFLOAT16 and the value of the small integer types).
                let mut bytes = Vec::with_capacity(want);
                for &v in &self.varints {
                    match ty.size() {
                        8 => bytes.extend_from_slice(&v.to_le_bytes()),
                        4 => bytes.extend_from_slice(&(v as u32).to_le_bytes()),
                        2 => bytes.extend_from_slice(&(v as u16).to_le_bytes()),
                        _ => bytes.push(v as u8),
                    }
                }
                raw::tensor(ty, &bytes, &shape)
            }
        }
    }

    /// The `want` bytes of an external-data tensor, from the file its `location` names
    /// relative to the model's folder.
    fn read_external(&self, model: &Path, want: usize) -> std::result::Result<Vec<u8>, String> {
        let loc = self.location.ok_or("external data without a 'location'")?;
        let rel = Path::new(loc);
        if loc.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!(
                "external data location '{loc}' is not a plain relative path inside the model's folder"
            ));
        }
        let dir = model.parent().unwrap_or(Path::new("."));
        let file = dir.join(rel);
        // Symlinks could still lead out of the folder: compare the resolved paths.
        let real_dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let real = file
            .canonicalize()
            .map_err(|e| format!("external data '{}': {e}", file.display()))?;
        if !real.starts_with(&real_dir) {
            return Err(format!(
                "external data '{}' resolves outside the model's folder",
                file.display()
            ));
        }
        let parse = |what: &str, v: Option<&str>| -> std::result::Result<Option<u64>, String> {
            v.map(|s| {
                s.parse::<u64>()
                    .map_err(|_| format!("external data {what} '{s}' is not a number"))
            })
            .transpose()
        };
        let offset = parse("offset", self.offset)?.unwrap_or(0);
        let length = parse("length", self.length)?;
        if let Some(len) = length {
            if len != want as u64 {
                return Err(format!(
                    "external data length {len} for {want} bytes of tensor data"
                ));
            }
        }
        let mut f = std::fs::File::open(&real).map_err(|e| format!("{}: {e}", file.display()))?;
        let size = f
            .metadata()
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        let end = offset.checked_add(want as u64);
        if end.is_none_or(|e| e > size) {
            return Err(format!(
                "external data range {offset}+{want} runs past the end of '{}' ({size} bytes)",
                file.display()
            ));
        }
        let mut buf = vec![0u8; want];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(buf)
    }
}
