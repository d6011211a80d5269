//! Copies that change the dtype or make a strided view contiguous, with their gradients.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::shape::Layout;
use crate::storage::Buffer;
use crate::{DType, Element, Result, Tensor};

impl Tensor {
    /// Converts to another dtype (a new tensor; floats to ints truncate toward zero).
    /// Conversion between float dtypes is differentiable.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        self.check_cpu("to_dtype")?;
        let n = self.numel();
        let shape = self.shape().to_vec();
        let out = {
            let guard = self.0.storage.read();
            let l = &self.0.layout;
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
        if self.dtype().is_float() && dtype.is_float() {
            let src_dtype = self.dtype();
            let op = Op::ToDtype {
                from: src_dtype,
                to: dtype,
            };
            return Ok(record_rule(out, op, &[self], grad, Saved::none()));
        }
        Ok(out)
    }

    /// A contiguous copy when the layout is strided, `self` otherwise.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous()
            && self.0.layout.offset == 0
            && self.storage().read().len() == self.numel()
        {
            return Ok(self.clone());
        }
        let out = crate::backend::for_device(self.device(), "contiguous")?
            .contiguous("contiguous", self)?;
        Ok(record_rule(
            out,
            Op::Contiguous,
            &[self],
            grad,
            Saved::none(),
        ))
    }
}

/// The gradient rule of the copies: the gradient converted back (`to_dtype`) or passed on.
fn grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    match op {
        Op::ToDtype { from, .. } => Ok(vec![Some(g.to_dtype(*from)?)]),
        Op::Contiguous => Ok(vec![Some(g.clone())]),
        _ => Err(ctx.unexpected()),
    }
}
