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
            format!(
                "legacy protocol version {:?}, expected {PROTOCOL_VERSION}",
                proto.root
            ),
        ));
    }
    let sys_info =
        pickle::unpickle(data, proto.end).map_err(|e| pickle_err(path, "sys_info", e))?;
    let main =
        pickle::unpickle(data, sys_info.end).map_err(|e| pickle_err(path, "the main pickle", e))?;
    let keys_pk = pickle::unpickle(data, main.end)
        .map_err(|e| pickle_err(path, "the storage key list", e))?;
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
                format_err(
                    path,
                    format!("truncated before the size of storage '{key}'"),
                )
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

#[cfg(test)]
mod tests {
    use super::super::read_bytes;
    use std::path::Path;

    /// A legacy stream holding `{"w": tensor}` over one FloatStorage '0' of `numel` elements
    /// (declared `count` in the data section, followed by `data`), the tensor being
    /// `(offset, sizes, strides)`, optionally through a legacy storage view.
    fn stream(
        numel: u8,
        view: Option<(u8, u8)>,
        tensor: (u8, u8),
        count: u64,
        data: &[f32],
    ) -> Vec<u8> {
        let mut b = vec![0x80, 2, 0x8a, 10];
        b.extend([
            0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ]);
        b.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']); // 1001
        b.extend([0x80, 2, b'}', b'.']); // sys_info (contents unused)
        b.extend([0x80, 2, b'}', b'X', 1, 0, 0, 0, b'w']);
        b.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        b.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
        b.push(numel);
        match view {
            None => b.push(b'N'),
            Some((off, size)) => b.extend([b'X', 1, 0, 0, 0, b'v', b'K', off, b'K', size, 0x87]),
        }
        b.extend([
            b't', b'Q', b'K', tensor.0, b'K', tensor.1, 0x85, b'K', 1, 0x85, 0x89,
        ]);
        b.extend(b"ccollections\nOrderedDict\n)Rt");
        b.extend([b'R', b's', b'.']);
        b.extend([0x80, 2, b']', b'X', 1, 0, 0, 0, b'0', b'a', b'.']);
        b.extend(count.to_le_bytes());
        b.extend(data.iter().flat_map(|x| x.to_le_bytes()));
        b
    }

    fn read(b: &[u8]) -> Result<Vec<f32>, String> {
        read_bytes(Path::new("crafted.pt"), b)
            .map(|w| w.tensors[0].1.to_vec::<f32>().unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_hand_built_stream() {
        // tensor = storage[1..3]
        assert_eq!(
            read(&stream(4, None, (1, 2), 4, &[1., 2., 3., 4.])),
            Ok(vec![2., 3.])
        );
        // legacy storage view: elements [2, 4) of the root storage, tensor = view[1..2]
        assert_eq!(
            read(&stream(4, Some((2, 2)), (1, 1), 4, &[1., 2., 3., 4.])),
            Ok(vec![4.])
        );
    }

    #[test]
    fn wrong_counts_short_data_and_bad_views_are_errors() {
        let e = read(&stream(4, None, (0, 4), 3, &[1., 2., 3.])).unwrap_err();
        assert!(
            e.contains("crafted.pt") && e.contains("holds 3 elements, its tensor record says 4"),
            "{e}"
        );
        let e = read(&stream(4, None, (0, 4), 4, &[1., 2., 3.])).unwrap_err();
        assert!(e.contains("runs past the end of the file"), "{e}");
        let e = read(&stream(4, None, (0, 4), u64::MAX, &[])).unwrap_err();
        assert!(e.contains("holds 18446744073709551615 elements"), "{e}");
        let e = read(&stream(4, None, (2, 4), 4, &[1., 2., 3., 4.])).unwrap_err();
        assert!(
            e.contains("tensor 'w'") && e.contains("reaches element 5 of a storage of 4"),
            "{e}"
        );
        let e = read(&stream(4, Some((3, 2)), (0, 1), 4, &[1., 2., 3., 4.])).unwrap_err();
        assert!(e.contains("storage view 'v'"), "{e}");
    }
}
