//! PyTorch `torch.save` files, read in pure Rust without executing anything.
//!
//! Two containers (`torch/serialization.py`): the zip archive of PyTorch 1.6 and later
//! (`zip.rs`) and the legacy stream before it (`legacy.rs`); [`read`] tells them apart by their
//! first bytes (`PK\x03\x04`, or a pickle's `PROTO` opcode `0x80`). Both hold a pickle that a
//! restricted unpickler (`pickle.rs`) runs: it only knows the globals tensor rebuilds need
//! (`torch/_utils.py`; the allowlist and what each entry means are in `globals.rs`), so a
//! crafted file is an error naming the global it wanted (`os.system`, `builtins.eval`, a
//! module class) instead of code execution. Tensors then get their data from the storages' raw
//! bytes (`storage.rs`).
//!
//! **What comes back.** Every tensor of the pickled object, under a name that joins the path
//! to it with `.`: dict keys (strings, or integers written in decimal), list and tuple
//! indices. A plain state dict gives its own keys (`conv1.weight`); a checkpoint
//! `{"epoch": 3, "state_dict": {...}, "optimizer": {...}}` gives `state_dict.conv1.weight`,
//! `optimizer.state.0.momentum_buffer`, ... — nothing is guessed or dropped here, and
//! [`crate::remap::load_into`] picks the state dict out of a checkpoint. Non-tensor values
//! (numbers, strings, `_metadata`) are skipped; a file that is a single tensor gives one
//! tensor named `tensor`. Order is the file's.
//!
//! **Dtypes.** f32, f16, bf16, i64 (e.g. `num_batches_tracked`), i32, u8 and bool stay as
//! they are; f64 becomes f32 and i16/i8 become i32 (the engine has no f64/i16/i8); complex,
//! quantized, float8 and unsigned 16-64-bit tensors are refused by name. Views come back
//! contiguous, each with its own copy of the elements it covers. Device locations (`cuda:0`)
//! are ignored: everything lands on the CPU.

mod globals;
mod legacy;
mod pickle;
mod storage;
mod zip;

use crate::{Error, ImportedWeights, Result};
use pickle::{Obj, Pickle, PickleError, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// How deep containers may nest (state dicts nest 1-3 levels; this bound stops a container
/// that contains itself).
const MAX_DEPTH: usize = 64;

/// Reads a `torch.save` file (zip or legacy format) into its tensors.
///
/// ```no_run
/// let w = ferrovision_import::torch::read(std::path::Path::new("resnet18.pth"))?;
/// for (name, t) in &w.tensors {
///     println!("{name}: {:?} {:?}", t.shape(), t.dtype());
/// }
/// # Ok::<(), ferrovision_import::Error>(())
/// ```
pub fn read(path: &Path) -> Result<ImportedWeights> {
    let data = std::fs::read(path).map_err(|e| ferrovision_io::Error::io(path, e))?;
    read_bytes(path, &data)
}

/// Reads a `torch.save` file already in memory; `path` only names it in errors.
pub fn read_bytes(path: &Path, data: &[u8]) -> Result<ImportedWeights> {
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        zip::read(path, data)
    } else if data.first() == Some(&0x80) {
        legacy::read(path, data)
    } else if data.get(257..262) == Some(b"ustar") {
        Err(format_err(
            path,
            "a tar-based torch file (PyTorch < 0.4) is not supported: re-save it with a newer PyTorch",
        ))
    } else {
        Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            msg: "not a torch.save file (neither a zip archive nor a pickle)".into(),
        })
    }
}

/// The raw bytes of one storage and their byte order.
pub(crate) struct StorageBytes<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub big_endian: bool,
}

pub(crate) fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(path, msg)
}

pub(crate) fn pickle_err(path: &Path, what: &str, e: PickleError) -> Error {
    Error::format(path, format!("{what}, byte {}: {}", e.offset, e.msg))
}

/// The tensors of `pk`, named by their paths, with data from `storages` (by key).
pub(crate) fn assemble(
    path: &Path,
    pk: &Pickle,
    storages: &HashMap<String, StorageBytes>,
) -> Result<Vec<(String, ferrovision_tensor::Tensor)>> {
    let mut found = Vec::new();
    let mut walk = Walk {
        pk,
        budget: 2 * pk.objs.len() + 1024,
    };
    walk.flatten(&pk.root, "", 0, &mut found)
        .map_err(|m| format_err(path, m))?;
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(found.len());
    for (name, idx) in found {
        let name = if name.is_empty() {
            "tensor".to_string()
        } else {
            name
        };
        if seen.insert(name.clone(), ()).is_some() {
            return Err(format_err(path, format!("two tensors are named '{name}'")));
        }
        let t = tensor(pk, idx, storages)
            .map_err(|m| format_err(path, format!("tensor '{name}': {m}")))?;
        out.push((name, t));
    }
    Ok(out)
}

/// One tensor's data, checked against its storage.
fn tensor(
    pk: &Pickle,
    idx: usize,
    storages: &HashMap<String, StorageBytes>,
) -> std::result::Result<ferrovision_tensor::Tensor, String> {
    let Obj::Tensor(t) = &pk.objs[idx] else {
        unreachable!("flatten returns tensors only")
    };
    let Obj::Storage(s) = &pk.objs[t.storage] else {
        unreachable!("rebuilds take storages only")
    };
    let sb = storages
        .get(&*s.key)
        .ok_or_else(|| format!("its storage '{}' is missing from the file", s.key))?;
    let storage_es = s.elem.map_or(1, |e| e.size()) as u64;
    if let Some(e) = s.elem {
        if e != t.elem {
            return Err(format!(
                "a {:?} tensor on a {e:?} storage '{}'",
                t.elem, s.key
            ));
        }
    }
    let want = s
        .numel
        .checked_mul(storage_es)
        .ok_or_else(|| format!("storage '{}' size overflows", s.key))?;
    if sb.bytes.len() as u64 != want {
        return Err(format!(
            "storage '{}' holds {} bytes, the pickle says {} x {storage_es}",
            s.key,
            sb.bytes.len(),
            s.numel
        ));
    }
    let mut region: &[u8] = &sb.bytes;
    if let Some((view_key, off, size)) = &s.view {
        let range = off
            .checked_add(*size)
            .filter(|&end| end <= s.numel)
            .ok_or_else(|| {
                format!(
                    "storage view '{view_key}' (elements {off}..+{size}) exceeds storage '{}' of {}",
                    s.key, s.numel
                )
            })?;
        region = &region[(off * storage_es) as usize..(range * storage_es) as usize];
    }
    let es = t.elem.size();
    if !region.len().is_multiple_of(es) {
        return Err(format!(
            "storage '{}' of {} bytes is not a whole number of {es}-byte elements",
            s.key,
            region.len()
        ));
    }
    storage::materialize(t.elem, region, sb.big_endian, t.offset, &t.size, &t.stride)
}

/// A bounded walk over the object graph.
struct Walk<'p> {
    pk: &'p Pickle,
    /// Objects left to visit: shared sub-objects referenced over and over (a pickle can build
    /// a graph that is exponentially large as a tree) stop here.
    budget: usize,
}

impl Walk<'_> {
    /// Appends `(dotted path, tensor object index)` for every tensor under `v`.
    fn flatten(
        &mut self,
        v: &Value,
        name: &str,
        depth: usize,
        out: &mut Vec<(String, usize)>,
    ) -> std::result::Result<(), String> {
        let Value::Obj(i) = v else { return Ok(()) };
        if depth > MAX_DEPTH {
            return Err(format!(
                "'{name}': containers nest deeper than {MAX_DEPTH} levels (or contain themselves)"
            ));
        }
        if self.budget == 0 {
            return Err("the pickled object graph is too large when expanded".into());
        }
        self.budget -= 1;
        let join = |k: &str| {
            if name.is_empty() {
                k.to_string()
            } else {
                format!("{name}.{k}")
            }
        };
        match &self.pk.objs[*i] {
            Obj::Tensor(_) => out.push((name.to_string(), *i)),
            Obj::Storage(_) => {}
            Obj::Tuple(items) | Obj::List(items) => {
                for (k, item) in items.iter().enumerate() {
                    self.flatten(item, &join(&k.to_string()), depth + 1, out)?;
                }
            }
            Obj::Dict(pairs) => {
                // Python semantics: a repeated key keeps its first position and its last value.
                let mut order: Vec<(Option<String>, &Value, &Value)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for (k, val) in pairs {
                    let key = match k {
                        Value::Str(s) => Some(s.to_string()),
                        Value::Int(n) => Some(n.to_string()),
                        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
                        Value::None => Some("None".to_string()),
                        _ => None,
                    };
                    match key.as_ref().and_then(|k| index.get(k)) {
                        Some(&at) => order[at].2 = val,
                        None => {
                            if let Some(k) = &key {
                                index.insert(k.clone(), order.len());
                            }
                            order.push((key, k, val));
                        }
                    }
                }
                for (key, k, val) in order {
                    match key {
                        Some(key) => self.flatten(val, &join(&key), depth + 1, out)?,
                        None => {
                            let mut inner = Vec::new();
                            self.flatten(val, &join("?"), depth + 1, &mut inner)?;
                            if !inner.is_empty() {
                                return Err(format!(
                                    "'{}': a dict key of type {} holds tensors",
                                    join("?"),
                                    pickle::kind(k)
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten_err(pickle: &[u8]) -> String {
        let pk = pickle::unpickle(pickle, 0).unwrap();
        assemble(Path::new("x.pt"), &pk, &HashMap::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 100 000 nested lists: [[[...]]].
        let n = 100_000;
        let mut b = vec![0x80, 2];
        b.extend(std::iter::repeat_n(b']', n));
        b.extend(std::iter::repeat_n(b'a', n - 1));
        b.push(b'.');
        let e = flatten_err(&b);
        assert!(e.contains("nest deeper than 64 levels"), "{e}");
        // A list that contains itself.
        let e = flatten_err(&[0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.']);
        assert!(e.contains("nest deeper than 64 levels"), "{e}");
    }

    #[test]
    fn shared_sub_objects_cannot_blow_up_the_walk() {
        // l0 = []; l_{k+1} = [l_k, l_k] for 60 levels: 2^60 paths over 61 objects.
        let mut b = vec![0x80, 2, b']'];
        for _ in 0..60 {
            // DUP, then make the tuple (l, l) and wrap it in a list: [ (l, l) ] would add a
            // level; a 2-tuple of the same object is enough.
            b.extend([b'2', 0x86]);
        }
        b.push(b'.');
        let e = flatten_err(&b);
        assert!(e.contains("too large when expanded"), "{e}");
    }

    #[test]
    fn rebuild_tensor_v3_reads_an_untyped_storage_with_the_given_dtype() {
        // _rebuild_tensor_v3(pid(('storage', UntypedStorage, '0', 'cpu', 8)), 0, (2,), (1,),
        //                    False, OrderedDict(), torch.float32)
        let mut b = vec![0x80, 2];
        b.extend(b"ctorch._utils\n_rebuild_tensor_v3\n((X\x07\x00\x00\x00storage");
        b.extend(b"ctorch.storage\nUntypedStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x08tQ");
        b.extend(b"K\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rctorch\nfloat32\ntR.");
        let pk = pickle::unpickle(&b, 0).unwrap();
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let storages = HashMap::from([(
            "0".to_string(),
            StorageBytes {
                bytes: Cow::Owned(bytes),
                big_endian: false,
            },
        )]);
        let t = assemble(Path::new("x.pt"), &pk, &storages).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "tensor");
        assert_eq!(t[0].1.to_vec::<f32>().unwrap(), vec![1.5, -2.0]);
    }
}
