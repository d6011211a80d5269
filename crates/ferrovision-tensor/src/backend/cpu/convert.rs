//! CPU kernel of [`Backend::to_dtype`](super::super::Backend::to_dtype): an elementwise dtype
//! conversion through f64 (`Element::from_f64(to_f64)`: floats to ints truncate toward zero),
//! read through the input's layout, into a new contiguous buffer.

use crate::autograd::Op;
use crate::shape::Layout;
use crate::storage::Buffer;
use crate::{DType, Element, Error, Result, Tensor};

/// Converts `x` to the dtype of `op` (`ToDtype { to, .. }`).
pub(super) fn to_dtype(op: &Op, x: &Tensor) -> Result<Tensor> {
    let Op::ToDtype { to: dtype, .. } = *op else {
        return Err(Error::invalid(op.name(), "not a dtype conversion"));
    };
    let n = x.numel();
    let shape = x.shape().to_vec();
    let out = {
        let guard = x.storage().read();
        let l = x.layout();
        fn conv<S: Element, D: Element>(s: &[S], l: &Layout) -> Vec<D> {
            l.offsets().map(|o| D::from_f64(s[o].to_f64())).collect()
        }
        macro_rules! to {
            ($s:expr) => {
                match dtype {
                    DType::F32 => Buffer::F32(conv::<_, f32>($s, l)),
                    DType::F16 => Buffer::F16(conv::<_, half::f16>($s, l)),
                    DType::BF16 => Buffer::BF16(conv::<_, half::bf16>($s, l)),
                    DType::I64 => Buffer::I64(conv::<_, i64>($s, l)),
                    DType::I32 => Buffer::I32(conv::<_, i32>($s, l)),
                    DType::U8 => Buffer::U8(conv::<_, u8>($s, l)),
                    DType::Bool => Buffer::Bool(conv::<_, bool>($s, l)),
                }
            };
        }
        let buf = match &*guard {
            Buffer::F32(s) => to!(s),
            Buffer::F16(s) => to!(s),
            Buffer::BF16(s) => to!(s),
            Buffer::I64(s) => to!(s),
            Buffer::I32(s) => to!(s),
            Buffer::U8(s) => to!(s),
            Buffer::Bool(s) => to!(s),
        };
        debug_assert_eq!(buf.len(), n);
        Tensor::from_buffer(buf, &shape)
    };
    Ok(out)
}
