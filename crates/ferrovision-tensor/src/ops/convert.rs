//! Copies that change the dtype or make a strided view contiguous, with their gradients; both
//! compute through the backend (`Backend::to_dtype`, `Backend::contiguous`).

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::{DType, Result, Tensor};

impl Tensor {
    /// Converts to another dtype (a new tensor; floats to ints truncate toward zero).
    /// Conversion between float dtypes is differentiable.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        self.check_cpu("to_dtype")?;
        let op = Op::ToDtype {
            from: self.dtype(),
            to: dtype,
        };
        let out = crate::backend::for_device(self.device(), "to_dtype")?.to_dtype(&op, self)?;
        if self.dtype().is_float() && dtype.is_float() {
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
