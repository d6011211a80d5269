//! What the allowlisted globals of a PyTorch pickle mean: the allowlist itself
//! ([`resolve_global`]), the interpretation of calls to them ([`call`]: `OrderedDict()`, the
//! tensor and parameter rebuilds of `torch/_utils.py`, `torch.Size`, `_codecs.encode`), and of
//! the persistent ids that name storages ([`persistent_load`], as `torch/serialization.py`
//! writes them). Nothing here calls anything outside this file: a rebuild becomes a
//! [`TensorRef`] to storage bytes that the reader fills in later.

use super::pickle::{Obj, Value};
use super::storage::{elem_by_dtype_name, elem_by_storage_class, Elem};
use std::rc::Rc;

type R<T> = std::result::Result<T, String>;

/// The globals a pickle may name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    /// `_rebuild_tensor(storage, offset, size, stride)`.
    RebuildTensor,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    RebuildTensorV2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`.
    RebuildTensorV3,
    /// `_rebuild_parameter(data, requires_grad, hooks)`.
    RebuildParameter,
    /// `_rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// `torch.FloatStorage` and friends: a storage of one element type.
    TypedStorage(Elem),
    /// `torch.storage.UntypedStorage`: bytes; the tensor's dtype comes from `_rebuild_tensor_v3`.
    UntypedStorage,
    /// `torch.float32` and friends.
    Dtype(Elem),
    /// `torch.Size`.
    TorchSize,
    /// `_codecs.encode(text, "latin1")`.
    CodecsEncode,
}

/// A storage named by a persistent id `('storage', type, key, location, numel[, view])`.
#[derive(Debug, Clone)]
pub struct StorageRef {
    /// The record key (`data/<key>` in a zip, a position in the legacy storage list).
    pub key: Rc<str>,
    /// The element type; `None` for an untyped (byte) storage.
    pub elem: Option<Elem>,
    /// Element count (bytes for an untyped storage).
    pub numel: u64,
    /// Pre-0.4 legacy files: this storage is elements `[offset, offset + size)` of storage
    /// `root` (`view_metadata = (root, offset, size)`).
    pub view: Option<(Rc<str>, u64, u64)>,
}

/// A tensor as a rebuild call describes it; its data is read from the storage afterwards.
#[derive(Debug, Clone)]
pub struct TensorRef {
    /// Arena index of its [`Obj::Storage`].
    pub storage: usize,
    /// Element type of the tensor.
    pub elem: Elem,
    /// Offset into the storage, in elements.
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Resolves `module.name` against the allowlist.
pub fn resolve_global(module: &str, name: &str) -> std::result::Result<Global, String> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Some(Global::RebuildParameterWithState)
        }
        ("torch" | "torch.storage", "UntypedStorage") => Some(Global::UntypedStorage),
        ("torch", "Size") => Some(Global::TorchSize),
        ("_codecs", "encode") => Some(Global::CodecsEncode),
        ("torch", n) => elem_by_storage_class(n)
            .map(Global::TypedStorage)
            .or_else(|| elem_by_dtype_name(n).map(Global::Dtype)),
        _ => None,
    };
    g.ok_or_else(|| {
        format!(
            "refusing the global '{module}.{name}': only PyTorch tensor rebuilds are allowed \
             (nothing in a pickle is executed; save the state_dict, not the module or other \
             Python objects)"
        )
    })
}

impl Global {
    /// The Python name, for messages.
    fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensorV3 => "torch._utils._rebuild_tensor_v3".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildParameterWithState => {
                "torch._utils._rebuild_parameter_with_state".into()
            }
            Global::TypedStorage(e) => format!("torch storage class of {e:?}"),
            Global::UntypedStorage => "torch.storage.UntypedStorage".into(),
            Global::Dtype(e) => format!("torch dtype {e:?}"),
            Global::TorchSize => "torch.Size".into(),
            Global::CodecsEncode => "_codecs.encode".into(),
        }
    }
}

/// The items of a tuple value.
pub(super) fn tuple_items(objs: &[Obj], v: &Value, what: &str) -> R<Vec<Value>> {
    match v {
        Value::Obj(i) => match &objs[*i] {
            Obj::Tuple(t) => Ok(t.clone()),
            _ => Err(format!("{what} are not a tuple")),
        },
        _ => Err(format!("{what} are not a tuple")),
    }
}

/// Interprets a call of an allowlisted global; new objects go to `objs`.
pub(super) fn call(objs: &mut Vec<Obj>, g: Global, args: Vec<Value>) -> R<Value> {
    Interp { objs }.call(g, args)
}

/// Interprets a persistent id `('storage', storage_type, key, location, numel[, view])`.
pub(super) fn persistent_load(objs: &mut Vec<Obj>, pid: Value) -> R<Value> {
    Interp { objs }.persistent_load(pid)
}

struct Interp<'o> {
    objs: &'o mut Vec<Obj>,
}

impl Interp<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(msg.into())
    }

    fn new_obj(&mut self, o: Obj) -> Value {
        self.objs.push(o);
        Value::Obj(self.objs.len() - 1)
    }

    fn tuple_items(&self, v: &Value, what: &str) -> R<Vec<Value>> {
        tuple_items(self.objs, v, what)
    }

    fn int_arg(&self, v: &Value, what: &str) -> R<u64> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            _ => self.err(format!("{what} must be a non-negative integer")),
        }
    }

    fn ints(&self, v: &Value, what: &str) -> R<Vec<u64>> {
        let items = self.tuple_items(v, what)?;
        items.iter().map(|x| self.int_arg(x, what)).collect()
    }

    /// Interprets a call of an allowlisted global.
    fn call(&mut self, g: Global, args: Vec<Value>) -> R<Value> {
        match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return self.err("OrderedDict() with arguments");
                }
                Ok(self.new_obj(Obj::Dict(Vec::new())))
            }
            Global::RebuildTensor | Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let (min, max) = match g {
                    Global::RebuildTensor => (4, 4),
                    Global::RebuildTensorV2 => (6, 7),
                    _ => (7, 8),
                };
                if args.len() < min || args.len() > max {
                    return self.err(format!(
                        "{} takes {min} to {max} arguments, got {}",
                        g.name(),
                        args.len()
                    ));
                }
                let storage = match &args[0] {
                    Value::Obj(i) if matches!(self.objs[*i], Obj::Storage(_)) => *i,
                    _ => {
                        return self
                            .err(format!("{}: the first argument is not a storage", g.name()))
                    }
                };
                let Obj::Storage(s) = &self.objs[storage] else {
                    unreachable!("matched above")
                };
                let elem = if g == Global::RebuildTensorV3 {
                    match &args[6] {
                        Value::Global(Global::Dtype(e)) => *e,
                        _ => return self.err("_rebuild_tensor_v3: the dtype is not a torch dtype"),
                    }
                } else {
                    match s.elem {
                        Some(e) => e,
                        None => {
                            return self.err(format!(
                                "{} of an untyped storage (no dtype given)",
                                g.name()
                            ))
                        }
                    }
                };
                let offset = self.int_arg(&args[1], "storage offset")?;
                let size = self.ints(&args[2], "tensor sizes")?;
                let stride = self.ints(&args[3], "tensor strides")?;
                Ok(self.new_obj(Obj::Tensor(TensorRef {
                    storage,
                    elem,
                    offset,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let n = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != n {
                    return self.err(format!(
                        "{} takes {n} arguments, got {}",
                        g.name(),
                        args.len()
                    ));
                }
                match &args[0] {
                    Value::Obj(i) if matches!(self.objs[*i], Obj::Tensor(_)) => Ok(args[0].clone()),
                    _ => self.err("a parameter whose data is not a tensor"),
                }
            }
            Global::TorchSize => match args.as_slice() {
                [t] => {
                    let items = self.tuple_items(t, "torch.Size items")?;
                    Ok(self.new_obj(Obj::Tuple(items)))
                }
                _ => self.err("torch.Size takes one tuple"),
            },
            Global::CodecsEncode => match args.as_slice() {
                [Value::Str(s), Value::Str(enc)] if &**enc == "latin1" || &**enc == "latin-1" => {
                    let mut out = Vec::with_capacity(s.len());
                    for c in s.chars() {
                        match u8::try_from(c as u32) {
                            Ok(b) => out.push(b),
                            Err(_) => return self.err("_codecs.encode: text is not Latin-1"),
                        }
                    }
                    Ok(Value::Bytes(out.into()))
                }
                _ => self.err("_codecs.encode takes a text and 'latin1'"),
            },
            Global::TypedStorage(_) | Global::UntypedStorage | Global::Dtype(_) => {
                self.err(format!("{} is not callable in a weights file", g.name()))
            }
        }
    }

    /// A persistent id: `('storage', storage_type, key, location, numel[, view_metadata])`.
    fn persistent_load(&mut self, pid: Value) -> R<Value> {
        let items = match &pid {
            Value::Obj(i) => match &self.objs[*i] {
                Obj::Tuple(t) => t.clone(),
                _ => return self.err("a persistent id that is not a tuple"),
            },
            _ => return self.err("a persistent id that is not a tuple"),
        };
        match items.first() {
            Some(Value::Str(s)) if &**s == "storage" => {}
            Some(Value::Str(s)) => {
                return self.err(format!(
                    "persistent id of type '{s}' (only storages are supported)"
                ))
            }
            _ => return self.err("a persistent id without a type name"),
        }
        if items.len() < 5 || items.len() > 6 {
            return self.err(format!(
                "a storage persistent id has {} fields, expected 5 or 6",
                items.len()
            ));
        }
        let elem = match &items[1] {
            Value::Global(Global::TypedStorage(e)) => Some(*e),
            Value::Global(Global::UntypedStorage) => None,
            _ => return self.err("a storage persistent id without a storage class"),
        };
        let key = self.key(&items[2])?;
        let numel = self.int_arg(&items[4], "storage size")?;
        // Legacy storage views (pre-0.4): `key` is the root storage holding the data and
        // `(view_key, offset, size)` the elements of it this storage covers.
        let view = match items.get(5) {
            None | Some(Value::None) => None,
            Some(v) => {
                let t = self.tuple_items(v, "storage view metadata")?;
                if t.len() != 3 {
                    return self.err("storage view metadata is not (key, offset, size)");
                }
                let view_key = self.key(&t[0])?;
                let off = self.int_arg(&t[1], "storage view offset")?;
                let size = self.int_arg(&t[2], "storage view size")?;
                Some((view_key, off, size))
            }
        };
        let storage = StorageRef {
            key,
            elem,
            numel,
            view,
        };
        Ok(self.new_obj(Obj::Storage(storage)))
    }

    fn key(&self, v: &Value) -> R<Rc<str>> {
        match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string().into()),
            _ => self.err("a storage key that is not a string"),
        }
    }
}
