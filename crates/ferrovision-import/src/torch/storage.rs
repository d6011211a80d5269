//! Element types of PyTorch storages, and turning a tensor reference (storage, offset, sizes,
//! strides) plus the storage's raw bytes into an engine [`Tensor`].
//!
//! A PyTorch tensor is a strided view of a flat storage (`torch/_utils.py`,
//! `_rebuild_tensor`): element `(i0, i1, ...)` is storage element
//! `offset + i0 * stride0 + i1 * stride1 + ...`. Several tensors may share one storage (a
//! transposed or sliced view saved next to its base), so the reader gathers each tensor's
//! elements in row-major order into a new contiguous tensor. Before reading anything it checks
//! that the view's last element lies inside the storage and that the storage's bytes are in
//! the file, with overflow-checked arithmetic; the output never has more elements than its
//! storage holds (an expanded, stride-0 view of a small storage is refused rather than
//! allocated from a size the file chose).
//!
//! Element types map onto the engine's dtypes: f32, f16, bf16, i64, i32, u8 and bool are kept
//! as they are; f64 becomes f32 (the engine has no f64; values round to nearest) and i16/i8
//! become i32 (exact). Complex, quantized, float8 and unsigned 16/32/64-bit storages are
//! recognised (so files that hold them are read up to that tensor) but refused by name.

use ferrovision_tensor::{Element, Tensor};
use half::{bf16, f16};

/// The element type of a storage or tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    /// A type the engine has no counterpart for: its `torch` dtype name and element size.
    Unsupported(&'static str, usize),
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
            Elem::Unsupported(_, s) => s,
        }
    }
}

/// `(storage class, dtype name, element type)` of every storage type PyTorch pickles.
const TYPES: &[(&str, &str, Elem)] = &[
    ("FloatStorage", "float32", Elem::F32),
    ("DoubleStorage", "float64", Elem::F64),
    ("HalfStorage", "float16", Elem::F16),
    ("BFloat16Storage", "bfloat16", Elem::BF16),
    ("LongStorage", "int64", Elem::I64),
    ("IntStorage", "int32", Elem::I32),
    ("ShortStorage", "int16", Elem::I16),
    ("CharStorage", "int8", Elem::I8),
    ("ByteStorage", "uint8", Elem::U8),
    ("BoolStorage", "bool", Elem::Bool),
    (
        "ComplexFloatStorage",
        "complex64",
        Elem::Unsupported("complex64", 8),
    ),
    (
        "ComplexDoubleStorage",
        "complex128",
        Elem::Unsupported("complex128", 16),
    ),
    ("QInt8Storage", "qint8", Elem::Unsupported("qint8", 1)),
    ("QUInt8Storage", "quint8", Elem::Unsupported("quint8", 1)),
    ("QInt32Storage", "qint32", Elem::Unsupported("qint32", 4)),
    (
        "QUInt4x2Storage",
        "quint4x2",
        Elem::Unsupported("quint4x2", 1),
    ),
    (
        "QUInt2x4Storage",
        "quint2x4",
        Elem::Unsupported("quint2x4", 1),
    ),
    ("", "complex32", Elem::Unsupported("complex32", 4)),
    ("", "uint16", Elem::Unsupported("uint16", 2)),
    ("", "uint32", Elem::Unsupported("uint32", 4)),
    ("", "uint64", Elem::Unsupported("uint64", 8)),
    ("", "float8_e4m3fn", Elem::Unsupported("float8_e4m3fn", 1)),
    ("", "float8_e5m2", Elem::Unsupported("float8_e5m2", 1)),
    (
        "",
        "float8_e4m3fnuz",
        Elem::Unsupported("float8_e4m3fnuz", 1),
    ),
    (
        "",
        "float8_e5m2fnuz",
        Elem::Unsupported("float8_e5m2fnuz", 1),
    ),
];

/// The element type of `torch.<class>` (`FloatStorage`, ...).
pub fn elem_by_storage_class(class: &str) -> Option<Elem> {
    TYPES
        .iter()
        .find(|(c, _, _)| !c.is_empty() && *c == class)
        .map(|t| t.2)
}

/// The element type of `torch.<name>` (`float32`, ...).
pub fn elem_by_dtype_name(name: &str) -> Option<Elem> {
    TYPES.iter().find(|(_, d, _)| *d == name).map(|t| t.2)
}

/// Builds the contiguous tensor of the strided view `(offset, size, stride)` of a storage of
/// `elem`s whose bytes are `bytes` (exactly the storage: `bytes.len()` is a multiple of the
/// element size), in `big_endian` or little-endian byte order. Errors say what is wrong.
pub fn materialize(
    elem: Elem,
    bytes: &[u8],
    big_endian: bool,
    offset: u64,
    size: &[u64],
    stride: &[u64],
) -> std::result::Result<Tensor, String> {
    if let Elem::Unsupported(name, _) = elem {
        return Err(format!("dtype torch.{name} is not supported"));
    }
    if size.len() != stride.len() {
        return Err(format!("{} sizes but {} strides", size.len(), stride.len()));
    }
    let es = elem.size();
    let count = (bytes.len() / es) as u64;
    let too_big = || format!("sizes {size:?} with strides {stride:?} overflow");
    let mut numel: u64 = 1;
    for &s in size {
        numel = numel.checked_mul(s).ok_or_else(too_big)?;
    }
    if numel > 0 {
        let mut last = offset;
        for (&s, &st) in size.iter().zip(stride) {
            last = (s - 1)
                .checked_mul(st)
                .and_then(|d| last.checked_add(d))
                .ok_or_else(too_big)?;
        }
        if last >= count {
            return Err(format!(
                "the view (offset {offset}, sizes {size:?}, strides {stride:?}) reaches element \
                 {last} of a storage of {count} elements"
            ));
        }
        if numel > count {
            return Err(format!(
                "the view has {numel} elements but its storage only {count} (expanded views are \
                 not supported)"
            ));
        }
    }
    // numel <= count <= bytes.len(), so these conversions and the allocation are bounded by
    // the file's size.
    let shape: Vec<usize> = size.iter().map(|&s| s as usize).collect();
    let strides: Vec<usize> = stride.iter().map(|&s| s as usize).collect();
    let index = StridedIndex::new(offset as usize, &shape, &strides, numel as usize);
    let t = match elem {
        Elem::F32 => build(bytes, es, index, &shape, |b| {
            f32::from_bits(word32(b, big_endian))
        }),
        Elem::F64 => build(bytes, es, index, &shape, |b| {
            f64::from_bits(word64(b, big_endian)) as f32
        }),
        Elem::F16 => build(bytes, es, index, &shape, |b| {
            f16::from_bits(word16(b, big_endian))
        }),
        Elem::BF16 => build(bytes, es, index, &shape, |b| {
            bf16::from_bits(word16(b, big_endian))
        }),
        Elem::I64 => build(bytes, es, index, &shape, |b| word64(b, big_endian) as i64),
        Elem::I32 => build(bytes, es, index, &shape, |b| word32(b, big_endian) as i32),
        Elem::I16 => build(bytes, es, index, &shape, |b| {
            word16(b, big_endian) as i16 as i32
        }),
        Elem::I8 => build(bytes, es, index, &shape, |b| b[0] as i8 as i32),
        Elem::U8 => build(bytes, es, index, &shape, |b| b[0]),
        Elem::Bool => build(bytes, es, index, &shape, |b| b[0] != 0),
        Elem::Unsupported(..) => unreachable!("refused above"),
    };
    t.map_err(|e| e.to_string())
}

/// Decodes the elements at `index`'s storage positions (`width`: the storage's element size,
/// which differs from `T`'s for f64 -> f32 and i8/i16 -> i32).
fn build<T: Element>(
    bytes: &[u8],
    width: usize,
    index: StridedIndex,
    shape: &[usize],
    decode: impl Fn(&[u8]) -> T,
) -> ferrovision_tensor::Result<Tensor> {
    let out: Vec<T> = if index.numel == 0 {
        // An empty view's offset is never checked against the storage: touch nothing.
        Vec::new()
    } else if index.is_contiguous() {
        // The common case (every tensor of a plain state dict): one run of the storage.
        let start = index.offset * width;
        bytes[start..start + index.numel * width]
            .chunks_exact(width)
            .map(&decode)
            .collect()
    } else {
        let mut out = Vec::with_capacity(index.numel);
        for pos in index {
            out.push(decode(&bytes[pos * width..(pos + 1) * width]));
        }
        out
    };
    Tensor::from_vec(out, shape)
}

fn word16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn word32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn word64(b: &[u8], be: bool) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    if be {
        u64::from_be_bytes(a)
    } else {
        u64::from_le_bytes(a)
    }
}

/// Storage positions of a strided view in row-major order (an odometer over the indices).
struct StridedIndex {
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
    idx: Vec<usize>,
    numel: usize,
    done: usize,
}

impl StridedIndex {
    fn new(offset: usize, shape: &[usize], strides: &[usize], numel: usize) -> Self {
        StridedIndex {
            offset,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            idx: vec![0; shape.len()],
            numel,
            done: 0,
        }
    }
}

impl StridedIndex {
    /// True when the positions are `offset, offset + 1, ...` (row-major strides; axes of size
    /// one may have any stride).
    fn is_contiguous(&self) -> bool {
        let mut want = 1;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != want {
                return false;
            }
            want *= n;
        }
        true
    }
}

impl Iterator for StridedIndex {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.done == self.numel {
            return None;
        }
        let pos = self.offset
            + self
                .idx
                .iter()
                .zip(&self.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        self.done += 1;
        for d in (0..self.shape.len()).rev() {
            self.idx[d] += 1;
            if self.idx[d] < self.shape[d] {
                break;
            }
            self.idx[d] = 0;
        }
        Some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn strided_offset_view_is_gathered_row_major() {
        // storage 0..6 as [2, 3]; the view base[:, 1:].t() = offset 1, sizes [2, 2], strides [1, 3]
        let b = f32_bytes(&[0., 1., 2., 3., 4., 5.]);
        let t = materialize(Elem::F32, &b, false, 1, &[2, 2], &[1, 3]).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1., 4., 2., 5.]);
        // Big-endian f64 -> f32, and 0-d.
        let b: Vec<u8> = 1.5f64.to_be_bytes().to_vec();
        let t = materialize(Elem::F64, &b, true, 0, &[], &[]).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.5]);
        // Empty tensors need no storage.
        let t = materialize(Elem::F32, &[], false, 0, &[0, 3], &[3, 1]).unwrap();
        assert_eq!(t.shape(), &[0, 3]);
        // ... whatever offset they claim.
        let t = materialize(Elem::F32, &[], false, 1 << 40, &[0], &[1]).unwrap();
        assert_eq!(t.shape(), &[0]);
        // i8 -> i32 keeps the sign.
        let t = materialize(Elem::I8, &[0xff, 2], false, 0, &[2], &[1]).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![-1, 2]);
    }

    #[test]
    fn views_outside_their_storage_are_errors() {
        let b = f32_bytes(&[0.; 6]);
        let e = materialize(Elem::F32, &b, false, 1, &[2, 3], &[3, 1]).unwrap_err();
        assert!(e.contains("reaches element 6 of a storage of 6"), "{e}");
        let e = materialize(Elem::F32, &b, false, 0, &[u64::MAX, 2], &[1, 1]).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        let e = materialize(Elem::F32, &b, false, 0, &[3], &[1 << 63]).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        let e = materialize(Elem::F32, &b, false, 0, &[2], &[1, 1]).unwrap_err();
        assert!(e.contains("1 sizes but 2 strides"), "{e}");
        let e = materialize(Elem::F32, &b, false, 0, &[1000, 1000], &[0, 0]).unwrap_err();
        assert!(e.contains("expanded"), "{e}");
        let e = materialize(Elem::Unsupported("complex64", 8), &b, false, 0, &[], &[]).unwrap_err();
        assert!(e.contains("torch.complex64"), "{e}");
    }
}
