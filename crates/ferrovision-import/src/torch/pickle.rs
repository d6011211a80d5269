//! A restricted unpickler: the pickle virtual machine for the opcodes `torch.save` emits
//! (protocols 0 to 5), which builds plain values and *tensor references* and never runs code.
//!
//! A pickle is a program for a stack machine (PEP 307 for protocol 2, PEP 3154 for protocol 4,
//! PEP 574 for 5; the opcode table is CPython's `Lib/pickletools.py`). Ordinary pickles import
//! any global (`GLOBAL module name`) and call it (`REDUCE`), which is how a crafted `.pt` file
//! runs `os.system`. Here `GLOBAL`/`STACK_GLOBAL` resolve only an allowlist (kept, with what
//! each entry means, in [`super::globals`]) — what `torch.save(state_dict)` emits, found by
//! disassembling files PyTorch 2.15 writes:
//!
//! * `collections.OrderedDict` (state dicts, and the empty backward-hooks dict of every tensor);
//! * `torch._utils._rebuild_tensor`, `_rebuild_tensor_v2`, `_rebuild_tensor_v3` (tensors),
//!   `_rebuild_parameter`, `_rebuild_parameter_with_state` (`nn.Parameter`);
//! * the `torch.*Storage` classes (`FloatStorage`, ..., `torch.storage.UntypedStorage`) and the
//!   `torch.<dtype>` objects (`torch.float32`, ...) that name element types;
//! * `torch.Size` (a tuple) and `_codecs.encode` (how protocol 2 spells a `bytes` object).
//!
//! Each of those is *interpreted*, not called: a rebuild yields a `TensorRef` (storage key,
//! dtype, offset, sizes, strides) that the reader later fills from the file's raw storage bytes,
//! under checks. Any other global is an error naming it; opcodes that reach outside the pickle
//! (`EXT1/2/4`, out-of-band buffers) or that no protocol defines are errors naming them.
//!
//! Robustness: every length is checked against the bytes left before it is used, the memo is a
//! map (a huge `LONG_BINPUT` index allocates nothing), and containers live in an arena
//! ([`Pickle::objs`]) addressed by index, so the machine itself never recurses and a container
//! that contains itself is harmless here (consumers bound their walk depth).

use super::globals::{self, resolve_global, tuple_items, Global, StorageRef, TensorRef};
use std::collections::HashMap;
use std::rc::Rc;

/// A pickled value. Containers, storages and tensors are [`Obj`]s in the arena.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond `i64`: its little-endian two's-complement bytes (`LONG1`/`LONG4`).
    BigInt(Rc<[u8]>),
    // Floats and bytes are decoded faithfully (they show in error messages through `Debug`),
    // though no reader needs their values: weights are tensors.
    #[allow(dead_code)]
    Float(f64),
    Str(Rc<str>),
    #[allow(dead_code)]
    Bytes(Rc<[u8]>),
    /// Index of an object in [`Pickle::objs`].
    Obj(usize),
    /// An allowlisted global.
    Global(Global),
}

/// A compound object.
#[derive(Debug)]
pub enum Obj {
    Tuple(Vec<Value>),
    /// Lists, and sets (order kept).
    List(Vec<Value>),
    /// Dicts and `OrderedDict`s: pairs in insertion order (a repeated key is resolved by the
    /// consumer: the last value wins, as in Python).
    Dict(Vec<(Value, Value)>),
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// The result of one pickle program.
#[derive(Debug)]
pub struct Pickle {
    /// The value `STOP` returned.
    pub root: Value,
    /// Every container, storage and tensor it built.
    pub objs: Vec<Obj>,
    /// Byte offset just after the `STOP` opcode.
    pub end: usize,
}

/// What went wrong, and at which byte of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub offset: usize,
    pub msg: String,
}

type Res<T> = std::result::Result<T, PickleError>;

/// Runs the pickle starting at `data[start..]` up to its `STOP`.
pub fn unpickle(data: &[u8], start: usize) -> Res<Pickle> {
    let mut vm = Vm {
        data,
        pos: start,
        op_pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objs: Vec::new(),
    };
    let root = vm.run()?;
    Ok(Pickle {
        root,
        objs: vm.objs,
        end: vm.pos,
    })
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run (errors point at it).
    op_pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objs: Vec<Obj>,
}

/// Name of an opcode the machine refuses, for the error message.
fn refused_opcode(op: u8) -> Option<&'static str> {
    Some(match op {
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

impl<'a> Vm<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> Res<T> {
        Err(PickleError {
            offset: self.op_pos,
            msg: msg.into(),
        })
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let data: &'a [u8] = self.data;
        match self.pos.checked_add(n) {
            Some(end) if end <= data.len() => {
                let s = &data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.err(format!(
                "truncated: needs {n} bytes, {} left",
                data.len().saturating_sub(self.pos)
            )),
        }
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Res<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Res<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Res<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length read as u64, checked to fit in the bytes left.
    fn take_len(&mut self, n: u64) -> Res<&'a [u8]> {
        match usize::try_from(n) {
            Ok(n) => self.take(n),
            Err(_) => self.err(format!("length {n} exceeds the file")),
        }
    }

    /// A text line without its `\n` (protocol 0 arguments).
    fn line(&mut self) -> Res<&'a str> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos.min(data.len())..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("truncated: a text argument has no end of line");
        };
        let s = &rest[..n];
        self.pos += n + 1;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s),
            Err(_) => self.err("a text argument is not UTF-8"),
        }
    }

    fn utf8(&self, b: &[u8]) -> Res<Value> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => self.err("a unicode string is not valid UTF-8"),
        }
    }

    fn pop(&mut self) -> Res<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        Ok(self.stack.pop().expect("length checked"))
    }

    fn top(&self) -> Res<&Value> {
        match self.stack.last() {
            Some(v) if self.stack.len() > self.marks.last().copied().unwrap_or(0) => Ok(v),
            _ => self.err("stack underflow"),
        }
    }

    /// The values above the last mark, removing the mark.
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        Ok(self.stack.split_off(m))
    }

    fn new_obj(&mut self, o: Obj) -> Value {
        self.objs.push(o);
        Value::Obj(self.objs.len() - 1)
    }

    fn obj_mut(&mut self, v: &Value, what: &str) -> Res<&mut Obj> {
        match v {
            Value::Obj(i) => Ok(&mut self.objs[*i]),
            other => Err(PickleError {
                offset: self.op_pos,
                msg: format!("{what} on a {}", kind(other)),
            }),
        }
    }

    fn memo_get(&self, i: u32) -> Res<Value> {
        match self.memo.get(&i) {
            Some(v) => Ok(v.clone()),
            None => self.err(format!("memo index {i} was never stored")),
        }
    }

    fn memo_put(&mut self, i: u32) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Res<()> {
        match resolve_global(module, name) {
            Ok(g) => {
                self.stack.push(Value::Global(g));
                Ok(())
            }
            Err(msg) => self.err(msg),
        }
    }

    /// A protocol-0 decimal integer (`INT`, `LONG` with its `L`), of any size.
    fn int_line(&self, s: &str) -> Res<Value> {
        let s = s.trim_end_matches('L');
        if let Ok(v) = s.parse::<i64>() {
            return Ok(Value::Int(v));
        }
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return self.err(format!("bad integer '{s}'"));
        }
        // Magnitude in base 256, little-endian: multiply by 10 and add, digit by digit.
        let mut mag: Vec<u8> = vec![0];
        for c in digits.bytes() {
            let mut carry = (c - b'0') as u32;
            for b in mag.iter_mut() {
                let v = *b as u32 * 10 + carry;
                *b = v as u8;
                carry = v >> 8;
            }
            if carry > 0 {
                mag.push(carry as u8);
            }
        }
        mag.push(0); // room for the sign bit
        if neg {
            // Two's complement: invert and add one.
            let mut carry = 1u16;
            for b in mag.iter_mut() {
                let v = (!*b) as u16 + carry;
                *b = v as u8;
                carry = v >> 8;
            }
        }
        Ok(self.long_bytes(&mag))
    }

    fn memo_index_line(&mut self) -> Res<u32> {
        let s = self.line()?;
        match s.parse::<u32>() {
            Ok(v) => Ok(v),
            Err(_) => self.err(format!("bad memo index '{s}'")),
        }
    }

    /// A quoted protocol-0 string (`'abc'`); escapes are not decoded (torch never writes them).
    fn quoted(&self, s: &str) -> Res<Value> {
        let b = s.as_bytes();
        if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
            let inner = &s[1..s.len() - 1];
            if inner.contains('\\') {
                return self.err("escaped protocol-0 STRING is not supported");
            }
            return Ok(Value::Str(inner.into()));
        }
        self.err("a STRING argument is not quoted")
    }

    fn long_bytes(&self, b: &[u8]) -> Value {
        // Drop redundant sign-extension bytes (a number has one canonical form).
        let mut b = b;
        while b.len() > 1 {
            let (last, prev) = (b[b.len() - 1], b[b.len() - 2]);
            if (last == 0 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0) {
                b = &b[..b.len() - 1];
            } else {
                break;
            }
        }
        if b.is_empty() {
            return Value::Int(0);
        }
        if b.len() <= 8 {
            let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
            let mut a = [fill; 8];
            a[..b.len()].copy_from_slice(b);
            return Value::Int(i64::from_le_bytes(a));
        }
        Value::BigInt(b.into())
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("pickle protocol {p} is newer than 5"));
                    }
                }
                0x95 => {
                    // FRAME: a length prefix for buffering; the content follows inline.
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'I' => {
                    let s = self.line()?;
                    let v = match s {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => self.int_line(s)?,
                    };
                    self.stack.push(v);
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'L' => {
                    let s = self.line()?;
                    let v = self.int_line(s)?;
                    self.stack.push(v);
                }
                0x8a => {
                    let n = self.u8()? as u64;
                    let b = self.take_len(n)?;
                    let v = self.long_bytes(b);
                    self.stack.push(v);
                }
                0x8b => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return self.err("LONG4 with a negative length");
                    }
                    let b = self.take_len(n as u64)?;
                    let v = self.long_bytes(b);
                    self.stack.push(v);
                }
                b'F' => {
                    let s = self.line()?;
                    match s.parse::<f64>() {
                        Ok(v) => self.stack.push(Value::Float(v)),
                        Err(_) => return self.err(format!("bad float '{s}'")),
                    }
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'S' => {
                    let s = self.line()?;
                    let v = self.quoted(s)?;
                    self.stack.push(v);
                }
                b'V' => {
                    let s = self.line()?;
                    if s.contains('\\') {
                        return self.err("escaped protocol-0 UNICODE is not supported");
                    }
                    self.stack.push(Value::Str(s.into()));
                }
                // Python 2 byte strings: decoded as Latin-1 text, as PyTorch's loader does.
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()? as u64
                    } else {
                        self.u8()? as u64
                    };
                    let b = self.take_len(n)?;
                    let s: String = b.iter().map(|&c| c as char).collect();
                    self.stack.push(Value::Str(s.into()));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.take_len(n)?;
                    let v = self.utf8(b)?;
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.take_len(n)?;
                    self.stack.push(Value::Bytes(b.into()));
                }
                b')' => {
                    let v = self.new_obj(Obj::Tuple(Vec::new()));
                    self.stack.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.new_obj(Obj::Tuple(items));
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.new_obj(Obj::Tuple(items));
                    self.stack.push(v);
                }
                b']' | 0x8f => {
                    let v = self.new_obj(Obj::List(Vec::new()));
                    self.stack.push(v);
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_obj(Obj::List(items));
                    self.stack.push(v);
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?.clone();
                    match self.obj_mut(&list, "APPEND")? {
                        Obj::List(l) => l.push(item),
                        _ => return self.err("APPEND on something that is not a list"),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let list = self.top()?.clone();
                    match self.obj_mut(&list, "APPENDS")? {
                        Obj::List(l) => l.extend(items),
                        _ => return self.err("APPENDS on something that is not a list or set"),
                    }
                }
                b'}' => {
                    let v = self.new_obj(Obj::Dict(Vec::new()));
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.dict_from(items)?;
                    self.stack.push(v);
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?.clone();
                    match self.obj_mut(&dict, "SETITEM")? {
                        Obj::Dict(d) => d.push((key, value)),
                        _ => return self.err("SETITEM on something that is not a dict"),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if !items.len().is_multiple_of(2) {
                        return self.err("SETITEMS with an odd number of items");
                    }
                    let dict = self.top()?.clone();
                    let Obj::Dict(d) = self.obj_mut(&dict, "SETITEMS")? else {
                        return self.err("SETITEMS on something that is not a dict");
                    };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() == self.marks.last().copied().unwrap_or(usize::MAX) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'p' => {
                    let i = self.memo_index_line()?;
                    self.memo_put(i)?;
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(i)?;
                }
                b'g' => {
                    let i = self.memo_index_line()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (&module, &name) else {
                        return self.err("STACK_GLOBAL needs two strings");
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.global(&m, &n)?;
                }
                b'i' => {
                    // INST module name: class instantiation with the items above the mark.
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = match resolve_global(module, name) {
                        Ok(g) => g,
                        Err(msg) => return self.err(msg),
                    };
                    let args = self.pop_mark()?;
                    let v = self.call(g, args)?;
                    self.stack.push(v);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.err("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = self.call_value(cls, items)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let args = self.tuple_items(&args, "REDUCE arguments")?;
                    let v = self.call_value(f, args)?;
                    self.stack.push(v);
                }
                0x81 | 0x92 => {
                    // NEWOBJ cls args / NEWOBJ_EX cls args kwargs
                    if op == 0x92 {
                        let kwargs = self.pop()?;
                        let empty = match &kwargs {
                            Value::Obj(i) => matches!(&self.objs[*i], Obj::Dict(d) if d.is_empty()),
                            _ => false,
                        };
                        if !empty {
                            return self.err("NEWOBJ_EX with keyword arguments");
                        }
                    }
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = self.tuple_items(&args, "NEWOBJ arguments")?;
                    let v = self.call_value(cls, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: sets an object's state. The allowlisted objects that get one (the
                    // `_metadata` of a state dict, a tensor subclass' state) keep no state here.
                    self.pop()?;
                    let target = self.top()?.clone();
                    match self.obj_mut(&target, "BUILD")? {
                        Obj::Dict(_) | Obj::Tensor(_) => {}
                        _ => return self.err("BUILD on something that is not a dict or tensor"),
                    }
                }
                b'P' => {
                    let s = self.line()?;
                    let pid = Value::Str(s.into());
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                other => {
                    return match refused_opcode(other) {
                        Some(name) => self.err(format!(
                            "opcode {name} (0x{other:02x}) is not supported: it reaches outside the file"
                        )),
                        None => self.err(format!("0x{other:02x} is not a pickle opcode")),
                    }
                }
            }
        }
    }

    fn dict_from(&mut self, items: Vec<Value>) -> Res<Value> {
        if !items.len().is_multiple_of(2) {
            return self.err("DICT with an odd number of items");
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(self.new_obj(Obj::Dict(pairs)))
    }

    fn tuple_items(&self, v: &Value, what: &str) -> Res<Vec<Value>> {
        tuple_items(&self.objs, v, what).or_else(|m| self.err(m))
    }

    fn call_value(&mut self, f: Value, args: Vec<Value>) -> Res<Value> {
        match f {
            Value::Global(g) => self.call(g, args),
            other => self.err(format!("calling a {}", kind(&other))),
        }
    }

    fn call(&mut self, g: Global, args: Vec<Value>) -> Res<Value> {
        let r = globals::call(&mut self.objs, g, args);
        r.or_else(|m| self.err(m))
    }

    fn persistent_load(&mut self, pid: Value) -> Res<Value> {
        let r = globals::persistent_load(&mut self.objs, pid);
        r.or_else(|m| self.err(m))
    }
}

/// A short name of a value's kind, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Obj(_) => "object",
        Value::Global(_) => "global",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: &[u8]) -> Res<Pickle> {
        unpickle(b, 0)
    }

    #[test]
    fn plain_values_and_containers() {
        // {'a': [1, 2.5, None, True], 'b': (300, -1)} with protocol 2 opcodes.
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(',
        ];
        p.extend([b'K', 1, b'G']);
        p.extend(2.5f64.to_be_bytes());
        p.extend([b'N', 0x88, b'e', b'X', 1, 0, 0, 0, b'b', b'M']);
        p.extend(300u16.to_le_bytes());
        p.extend([b'J']);
        p.extend((-1i32).to_le_bytes());
        p.extend([0x86, b'u', b'.']);
        let pk = run(&p).unwrap();
        let Value::Obj(root) = pk.root else { panic!() };
        let Obj::Dict(d) = &pk.objs[root] else {
            panic!()
        };
        assert_eq!(d.len(), 2);
        let Value::Obj(l) = d[0].1 else { panic!() };
        let Obj::List(l) = &pk.objs[l] else { panic!() };
        assert!(
            matches!(l[..], [Value::Int(1), Value::Float(f), Value::None, Value::Bool(true)] if f == 2.5)
        );
        let Value::Obj(t) = d[1].1 else { panic!() };
        let Obj::Tuple(t) = &pk.objs[t] else { panic!() };
        assert!(matches!(t[..], [Value::Int(300), Value::Int(-1)]));
        assert_eq!(pk.end, p.len());
    }

    #[test]
    fn refuses_globals_outside_the_allowlist() {
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("posix", "system"),
            ("torch", "load"),
        ] {
            let mut b = vec![0x80, 2];
            b.extend(format!("c{m}\n{n}\n)R.").bytes());
            let e = run(&b).unwrap_err();
            assert!(e.msg.contains(&format!("'{m}.{n}'")), "{e:?}");
        }
    }

    #[test]
    fn stack_global_and_memoize_and_frame() {
        // Protocol 4: FRAME, SHORT_BINUNICODE x2, STACK_GLOBAL OrderedDict, MEMOIZE, ), R, STOP
        let mut b = vec![0x80, 4, 0x95];
        b.extend(30u64.to_le_bytes());
        for s in ["collections", "OrderedDict"] {
            b.push(0x8c);
            b.push(s.len() as u8);
            b.extend(s.as_bytes());
        }
        b.extend([0x93, 0x94, b')', b'R', 0x94, b'.']);
        let pk = run(&b).unwrap();
        assert!(matches!(pk.objs[pk.root_index()], Obj::Dict(_)));
    }

    #[test]
    fn big_memo_index_and_missing_memo_and_truncation() {
        // LONG_BINPUT 0xffffffff allocates nothing; LONG_BINGET of an unset index is an error.
        let mut b = vec![0x80, 2, b'N', b'r', 0xff, 0xff, 0xff, 0xff, b'j'];
        b.extend(7u32.to_le_bytes());
        b.push(b'.');
        let e = run(&b).unwrap_err();
        assert!(e.msg.contains("memo index 7"), "{e:?}");
        // BINUNICODE claiming 4 GiB.
        let b = [0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(run(&b).unwrap_err().msg.contains("truncated"));
        // BINUNICODE8 claiming 2^63.
        let mut b = vec![0x80, 4, 0x8d];
        b.extend((1u64 << 63).to_le_bytes());
        assert!(run(&b).is_err());
        // No STOP.
        assert!(run(&[0x80, 2, b'N']).is_err());
        assert!(run(&[]).is_err());
    }

    #[test]
    fn refuses_unknown_and_external_opcodes() {
        let e = run(&[0x80, 2, 0xff, b'.']).unwrap_err();
        assert!(e.msg.contains("0xff is not a pickle opcode"), "{e:?}");
        assert_eq!(e.offset, 2);
        let e = run(&[0x80, 2, 0x82, 1, b'.']).unwrap_err();
        assert!(e.msg.contains("EXT1"), "{e:?}");
    }

    #[test]
    fn self_containing_list_is_harmless() {
        // l = []; l.append(l)
        let b = [0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.'];
        let pk = run(&b).unwrap();
        let Obj::List(l) = &pk.objs[pk.root_index()] else {
            panic!()
        };
        assert!(matches!(l[..], [Value::Obj(0)]));
    }

    #[test]
    fn protocol_0_and_1_text_opcodes() {
        // pickle.dumps({'a': [1, 2.5, 'x', None, True, 10**20]}, protocol=0) and protocol=1
        let p0 = b"(dp0\nVa\np1\n(lp2\nI1\naF2.5\naVx\np3\naNaI01\naL100000000000000000000L\nas.";
        let p1 = b"}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03NI01\nL100000000000000000000L\nes.";
        for p in [&p0[..], &p1[..]] {
            let pk = run(p).unwrap();
            let Obj::Dict(d) = &pk.objs[pk.root_index()] else {
                panic!()
            };
            assert!(matches!(&d[0].0, Value::Str(k) if &**k == "a"));
            let Value::Obj(l) = d[0].1 else { panic!() };
            let Obj::List(l) = &pk.objs[l] else { panic!() };
            assert!(matches!(
                &l[..],
                [Value::Int(1), Value::Float(f), Value::Str(x), Value::None, Value::Bool(true), Value::BigInt(big)]
                    if *f == 2.5 && &**x == "x" && **big == [0x00, 0x00, 0x10, 0x63, 0x2d, 0x5e, 0xc7, 0x6b, 0x05]
            ));
        }
        // Negative big numbers are two's complement: -(2**64) = 0x..ff 00*8.
        let pk = run(b"L-18446744073709551616L\n.").unwrap();
        assert!(matches!(pk.root, Value::BigInt(ref b) if **b == [0, 0, 0, 0, 0, 0, 0, 0, 0xff]));
        // Python 2 byte strings (SHORT_BINSTRING) read as Latin-1 text.
        let pk = run(b"U\x02\xe9t.").unwrap();
        assert!(matches!(pk.root, Value::Str(ref s) if &**s == "\u{e9}t"));
    }

    #[test]
    fn legacy_magic_number_is_a_big_int() {
        // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
        let b = [
            0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ];
        let pk = run(&b).unwrap();
        assert!(matches!(pk.root, Value::BigInt(ref v) if v.len() == 10));
    }

    impl Pickle {
        fn root_index(&self) -> usize {
            match self.root {
                Value::Obj(i) => i,
                _ => panic!("root is not an object"),
            }
        }
    }
}
