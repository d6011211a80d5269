//! The legacy `torch.save` stream (PyTorch before 1.6, and `_use_new_zipfile_serialization=False`
//! since; `torch/serialization.py`, `_legacy_save` / `_legacy_load`).
//!
//! The file is five pickles back to back, then the raw storages:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c` (a 10-byte `LONG1`);
//! 2. the protocol version `1001`;
//! 3. `sys_info`: `{"protocol_version", "little_endian", "type_sizes"}` (informational);
//! 4. the object itself, whose tensors refer to storages by persistent id
//!    `('storage', torch.FloatStorage, '<key>', 'cpu', numel, view_metadata)`;
//! 5. the list of storage keys, in the order the storages follow;
//!
//! then for each key: its element count as 8 bytes little-endian, then `count * element size`
//! bytes of data, little-endian whatever the writing machine (`THPStorage_writeFileRaw` swaps
//! on big-endian hosts). PyTorch's loader checks that each count equals the persistent id's
//! numel, and so does this reader; counts are checked against the bytes left before use.
//! (The older tar-based format of PyTorch < 0.4 is recognised and refused by [`super::read_bytes`].)

use super::pickle::{self, Obj, Value};
use super::{assemble, format_err, pickle_err, StorageBytes};
use crate::{ImportedWeights, Result, SourceFormat};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// `0x1950a86a20f9469cfc6c` as little-endian bytes.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The legacy protocol version PyTorch writes and reads.
const PROTOCOL_VERSION: i64 = 1001;

/// Reads a legacy `torch.save` stream whose bytes are `data`.
pub(super) fn read(path: &Path, data: &[u8]) -> Result<ImportedWeights> {
    let magic = pickle::unpickle(data, 0).map_err(|e| pickle_err(path, "magic number", e))?;
    if !matches!(&magic.root, Value::BigInt(b) if **b == MAGIC) {
        return Err(format_err(
            path,
            "a pickle that does not start with torch's magic number: not a torch.save file",
        ));
    }
    let proto =
        pickle::unpickle(data, magic.end).map_err(|e| pickle_err(path, "protocol version", e))?;
    if !matches!(proto.root, Value::Int(PROTOCOL_VERSION)) {
        return Err(format_err(
            path,
            format!("legacy protocol version {:?}, expected {PROTOCOL_VERSION}", proto.root),
        ));
    }
    let sys_info = pickle::unpickle(data, proto.end).map_err(|e| pickle_err(path, "sys_info", e))?;
    let main = pickle::unpickle(data, sys_info.end)
        .map_err(|e| pickle_err(path, "the main pickle", e))?;
    let keys_pk =
        pickle::unpickle(data, main.end).map_err(|e| pickle_err(path, "the storage key list", e))?;
    let keys: Vec<String> = match &keys_pk.root {
        Value::Obj(i) => match &keys_pk.objs[*i] {
            Obj::List(l) => l
                .iter()
                .map(|k| match k {
                    Value::Str(s) => Ok(s.to_string()),
                    Value::Int(i) => Ok(i.to_string()),
                    _ => Err(format_err(path, "a storage key that is not a string")),
                })
                .collect::<Result<_>>()?,
            _ => return Err(format_err(path, "the storage key list is not a list")),
        },
        _ => return Err(format_err(path, "the storage key list is not a list")),
    };
    // Element size of every storage the main pickle names.
    let mut sizes: HashMap<&str, (usize, u64)> = HashMap::new();
    for o in &main.objs {
        if let Obj::Storage(s) = o {
            let es = s.elem.map_or(1, |e| e.size());
            sizes.entry(&s.key).or_insert((es, s.numel));
        }
    }
    let mut storages: HashMap<String, StorageBytes> = HashMap::new();
    let mut pos = keys_pk.end;
    for key in keys {
        let &(es, numel) = sizes.get(key.as_str()).ok_or_else(|| {
            format_err(
                path,
                format!("storage '{key}' is listed but no tensor of the pickle uses it"),
            )
        })?;
        let count = data
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                format_err(path, format!("truncated before the size of storage '{key}'"))
            })?;
        pos += 8;
        if count != numel {
            return Err(format_err(
                path,
                format!("storage '{key}' holds {count} elements, its tensor record says {numel}"),
            ));
        }
        let end = count
            .checked_mul(es as u64)
            .and_then(|n| (pos as u64).checked_add(n))
            .filter(|&end| end <= data.len() as u64)
            .ok_or_else(|| {
                format_err(
                    path,
                    format!(
                        "storage '{key}' ({count} elements of {es} bytes at byte {pos}) runs past \
                         the end of the file ({} bytes)",
                        data.len()
                    ),
                )
            })? as usize;
        storages.insert(
            key,
            StorageBytes {
                bytes: Cow::Borrowed(&data[pos..end]),
                big_endian: false,
            },
        );
        pos = end;
    }
    let tensors = assemble(path, &main, &storages)?;
    Ok(ImportedWeights {
        path: path.to_path_buf(),
        format: SourceFormat::TorchLegacy,
        tensors,
    })
}
