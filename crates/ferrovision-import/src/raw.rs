//! Little-endian element bytes to tensors, shared by the readers whose files store tensors as
//! raw bytes (TF.js shards, ONNX `raw_data` / external data).
//!
//! The sizes come from untrusted files: element counts are computed with checked
//! multiplication and compared with the bytes actually present *before* anything is allocated,
//! so a forged shape is an error, never an overflow or a huge allocation.

use ferrovision_tensor::Tensor;
use half::{bf16, f16};

/// An element type as a file stores it, and what it becomes in a ferrovision tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawType {
    /// f32 tensor.
    F32,
    /// Converted to an f32 tensor (ferrovision has no f64 tensors; weights are f32).
    F64,
    /// f16 tensor.
    F16,
    /// bf16 tensor.
    BF16,
    /// i64 tensor.
    I64,
    /// Widened to an i64 tensor.
    U32,
    /// i32 tensor.
    I32,
    /// Widened to an i32 tensor.
    I16,
    /// Widened to an i32 tensor.
    U16,
    /// Widened to an i32 tensor.
    I8,
    /// u8 tensor.
    U8,
    /// bool tensor (one byte each, non-zero is true).
    Bool,
}

impl RawType {
    /// Bytes per element in the file.
    pub(crate) fn size(self) -> usize {
        match self {
            RawType::F64 | RawType::I64 => 8,
            RawType::F32 | RawType::I32 | RawType::U32 => 4,
            RawType::F16 | RawType::BF16 | RawType::I16 | RawType::U16 => 2,
            RawType::I8 | RawType::U8 | RawType::Bool => 1,
        }
    }
}

/// The element count of `dims`, or an error message when a dimension is negative or the
/// product overflows.
pub(crate) fn numel(dims: &[i64]) -> Result<(Vec<usize>, usize), String> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut n = 1usize;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("negative dimension in shape {dims:?}"))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| format!("the element count of shape {dims:?} overflows"))?;
        shape.push(d);
    }
    Ok((shape, n))
}

/// The byte size of `n` elements of `ty`, or an error message on overflow.
pub(crate) fn byte_len(ty: RawType, n: usize) -> Result<usize, String> {
    n.checked_mul(ty.size())
        .ok_or_else(|| format!("{n} elements of {ty:?} overflow the address space"))
}

fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// A tensor of `shape` from little-endian `bytes` of element type `ty`; `bytes` must hold
/// exactly `numel(shape)` elements (the message says how many it holds otherwise).
pub(crate) fn tensor(ty: RawType, bytes: &[u8], shape: &[usize]) -> Result<Tensor, String> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("the element count of shape {shape:?} overflows"))?;
    let want = byte_len(ty, n)?;
    if bytes.len() != want {
        return Err(format!(
            "{} bytes for shape {shape:?} of {ty:?} ({want} bytes expected)",
            bytes.len()
        ));
    }
    let t = match ty {
        RawType::F32 => {
            Tensor::from_vec(chunks::<4>(bytes).map(f32::from_le_bytes).collect(), shape)
        }
        RawType::F64 => Tensor::from_vec(
            chunks::<8>(bytes)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            shape,
        ),
        RawType::F16 => {
            Tensor::from_vec(chunks::<2>(bytes).map(f16::from_le_bytes).collect(), shape)
        }
        RawType::BF16 => {
            Tensor::from_vec(chunks::<2>(bytes).map(bf16::from_le_bytes).collect(), shape)
        }
        RawType::I64 => {
            Tensor::from_vec(chunks::<8>(bytes).map(i64::from_le_bytes).collect(), shape)
        }
        RawType::U32 => Tensor::from_vec(
            chunks::<4>(bytes)
                .map(|b| u32::from_le_bytes(b) as i64)
                .collect(),
            shape,
        ),
        RawType::I32 => {
            Tensor::from_vec(chunks::<4>(bytes).map(i32::from_le_bytes).collect(), shape)
        }
        RawType::I16 => Tensor::from_vec(
            chunks::<2>(bytes)
                .map(|b| i16::from_le_bytes(b) as i32)
                .collect(),
            shape,
        ),
        RawType::U16 => Tensor::from_vec(
            chunks::<2>(bytes)
                .map(|b| u16::from_le_bytes(b) as i32)
                .collect(),
            shape,
        ),
        RawType::I8 => Tensor::from_vec(bytes.iter().map(|&b| b as i8 as i32).collect(), shape),
        RawType::U8 => Tensor::from_vec(bytes.to_vec(), shape),
        RawType::Bool => Tensor::from_vec(bytes.iter().map(|&b| b != 0).collect(), shape),
    };
    t.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_allocating() {
        assert!(numel(&[-1, 3]).is_err());
        assert!(numel(&[i64::MAX, i64::MAX]).is_err());
        assert_eq!(numel(&[2, 3]).unwrap(), (vec![2, 3], 6));
        let e = tensor(RawType::F32, &[0; 7], &[2]).unwrap_err();
        assert!(
            e.contains("7 bytes") && e.contains("8 bytes expected"),
            "{e}"
        );
        assert!(tensor(RawType::F32, &[], &[usize::MAX, 2]).is_err());
        assert!(tensor(RawType::F64, &[], &[usize::MAX / 4]).is_err());
    }

    #[test]
    fn widening_and_conversion() {
        let t = tensor(RawType::I8, &[0xFF, 0x05], &[2]).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), [-1, 5]);
        let t = tensor(RawType::F64, &2.5f64.to_le_bytes(), &[]).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), [2.5]);
        let t = tensor(RawType::U32, &u32::MAX.to_le_bytes(), &[1]).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap(), [u32::MAX as i64]);
    }
}
