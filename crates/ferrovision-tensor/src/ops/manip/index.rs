//! Index ops: `gather`, `scatter`, `scatter_add`, `index_select` and `one_hot`.
//!
//! The op methods validate (shapes, dtypes, devices; the index values are range-checked where
//! they are read) and record; gather/scatter and their gradients run through
//! [`Backend::index_op`](crate::backend::Backend::index_op) / `index_op_backward`, index
//! selection is an index-map copy (`Backend::map_copy`, adjoint `map_accumulate`).

use super::{identity, record_float};
use crate::autograd::{GradCtx, Op, Saved};
use crate::backend::{self, Backend};
use crate::shape::normalize_axis;
use crate::storage::pool;
use crate::{DType, Error, Result, Tensor};

/// Index values as i64 (I64, I32 and U8 indices are accepted).
pub(crate) fn index_values(op: &'static str, index: &Tensor) -> Result<Vec<i64>> {
    index.check_cpu(op)?;
    match index.dtype() {
        DType::I64 => index.to_vec::<i64>(),
        DType::I32 => Ok(index.to_vec::<i32>()?.into_iter().map(i64::from).collect()),
        DType::U8 => Ok(index.to_vec::<u8>()?.into_iter().map(i64::from).collect()),
        d => Err(Error::dtype(op, d, "an integer index tensor (i64)")),
    }
}

/// Errors with [`Error::IndexOutOfRange`] on the first index outside `0..size`.
pub(crate) fn check_range(op: &'static str, idx: &[i64], size: usize) -> Result<()> {
    // Branch-free scan (vectorises); negative values wrap to huge u64.
    let bad = idx
        .iter()
        .fold(false, |acc, &v| acc | (v as u64 >= size as u64));
    if !bad {
        return Ok(());
    }
    match idx.iter().find(|&&v| v < 0 || v as u64 >= size as u64) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, size }),
        None => Ok(()),
    }
}

/// Checks the operands of gather/scatter (all but the index values); the resolved axis and
/// the backend of the input's device.
fn check_index_op(
    op: &'static str,
    input: &Tensor,
    axis: isize,
    index: &Tensor,
    src: Option<&Tensor>,
) -> Result<(usize, &'static dyn Backend)> {
    let b = backend::for_device(input.device(), op)?;
    let ax = normalize_axis(op, axis, input.rank())?;
    let mismatch = |other: &Tensor, detail: String| Error::ShapeMismatch {
        op,
        lhs: input.shape().to_vec(),
        rhs: other.shape().to_vec(),
        detail,
    };
    if index.rank() != input.rank() {
        return Err(mismatch(
            index,
            "the index must have the same rank as the input".into(),
        ));
    }
    for d in 0..input.rank() {
        if d != ax && index.shape()[d] > input.shape()[d] {
            return Err(mismatch(
                index,
                format!(
                    "index size {} exceeds the input size {} at dimension {d}",
                    index.shape()[d],
                    input.shape()[d]
                ),
            ));
        }
    }
    if let Some(src) = src {
        crate::ops::same_device(op, input, src)?;
        if src.dtype() != input.dtype() {
            return Err(Error::dtype(
                op,
                src.dtype(),
                format!("{:?} (the input's dtype) for src", input.dtype()),
            ));
        }
        if src.rank() != index.rank() || src.shape().iter().zip(index.shape()).any(|(s, i)| i > s) {
            return Err(Error::ShapeMismatch {
                op,
                lhs: index.shape().to_vec(),
                rhs: src.shape().to_vec(),
                detail: "src must have the index's rank and be at least as large in every \
                         dimension"
                    .into(),
            });
        }
    }
    Ok((ax, b))
}

impl Tensor {
    /// Picks values along `axis` at `index` (an i64 tensor of the same rank, no larger than
    /// `self` outside `axis`), like `torch.gather`: `out[i][j] = self[index[i][j]][j]` for
    /// `axis = 0`. The output has the index's shape.
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let (ax, b) = check_index_op(OP, self, axis, index, None)?;
        let rec = Op::Gather { axis: ax };
        let out = b.index_op(&rec, self, index, None)?;
        let saved = index.detach();
        Ok(record_float(
            out,
            rec,
            &[self, index],
            gather_grad,
            Saved::tensors(vec![saved]),
        ))
    }

    /// Out-of-place `torch.scatter`: a copy of `self` where `out[index[i][j]][j] = src[i][j]`
    /// (for `axis = 0`). `index` and `src` have `self`'s rank; `src` is at least as large as
    /// `index`. When several elements go to one place, the last one in row-major order wins.
    /// Gradients flow to `self` (where not overwritten) and to the winning `src` elements.
    pub fn scatter(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_impl("scatter", axis, index, src, false)
    }

    /// Out-of-place `torch.scatter_add`: a copy of `self` with `src[i][j]` added at
    /// `[index[i][j]][j]` (for `axis = 0`). Gradients flow to `self` and `src`.
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_impl("scatter_add", axis, index, src, true)
    }

    fn scatter_impl(
        &self,
        op: &'static str,
        axis: isize,
        index: &Tensor,
        src: &Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        let (ax, b) = check_index_op(op, self, axis, index, Some(src))?;
        let rec = if accumulate {
            Op::ScatterAdd { axis: ax }
        } else {
            Op::Scatter { axis: ax }
        };
        let out = b.index_op(&rec, self, index, Some(src))?;
        let saved = index.detach();
        Ok(record_float(
            out,
            rec,
            &[self, index, src],
            scatter_grad,
            Saved::tensors(vec![saved]),
        ))
    }

    /// The slices of `axis` listed in `index` (a 1-D i64 tensor; repeats allowed), like
    /// `torch.index_select`. The gradient adds back into the selected slices (`index_add`).
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        let b = backend::for_device(self.device(), OP)?;
        let ax = normalize_axis(OP, axis, self.rank())?;
        if index.rank() > 1 {
            return Err(Error::bad_shape(OP, index.shape(), "a 1-D index"));
        }
        let idx = index_values(OP, index)?;
        check_range(OP, &idx, self.shape()[ax])?;
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        maps[ax] = idx.iter().map(|&v| v as usize).collect();
        let rec = Op::IndexSelect { axis: ax };
        let out = b.map_copy(&rec, self, self.layout(), &maps, 0.0)?;
        Ok(record_float(
            out,
            rec,
            &[self, index],
            index_select_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// One-hot encoding of integer class ids (i64/i32/u8) as f32: shape `self.shape() + [C]`
    /// with a 1 at each id. Ids must lie in `0..num_classes`.
    pub fn one_hot(&self, num_classes: usize) -> Result<Tensor> {
        const OP: &str = "one_hot";
        if num_classes == 0 {
            return Err(Error::invalid(OP, "num_classes must be positive"));
        }
        let idx = index_values(OP, self)?;
        check_range(OP, &idx, num_classes)?;
        crate::ops::view::check_numel(OP, &[idx.len(), num_classes])?;
        let mut out = pool::take_zeroed(idx.len() * num_classes);
        for (row, &v) in out.chunks_mut(num_classes).zip(&idx) {
            row[v as usize] = 1.0;
        }
        let mut shape = self.shape().to_vec();
        shape.push(num_classes);
        Ok(Tensor::from_f32(out, &shape))
    }
}

/// The gradient rule of `gather`: `g` scattered (added) back to the gathered positions.
fn gather_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Gather { .. } = *op else {
        return Err(ctx.unexpected());
    };
    let saved = ctx.saved(0)?;
    let [gs, _] = backend::for_device(g.device(), op.name())?.index_op_backward(
        op,
        g,
        saved,
        ctx.input_shape(0),
        &[],
        [true, false],
    )?;
    Ok(vec![gs, None])
}

/// The gradient rule of `scatter` / `scatter_add`: `g` passes to `self` (minus the
/// overwritten positions for `scatter`) and is gathered at the index for `src`.
fn scatter_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let (Op::Scatter { .. } | Op::ScatterAdd { .. }) = *op else {
        return Err(ctx.unexpected());
    };
    let saved = ctx.saved(0)?;
    let needs = [ctx.needs(0), ctx.needs(2)];
    let [gin, gsrc] = backend::for_device(g.device(), op.name())?.index_op_backward(
        op,
        g,
        saved,
        ctx.input_shape(0),
        ctx.input_shape(2),
        needs,
    )?;
    Ok(vec![gin, None, gsrc])
}

/// The gradient rule of `index_select`: `g` added back along the selection maps.
fn index_select_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    let in_shape = ctx.input_shape(0);
    let gx = backend::for_device(g.device(), op.name())?.map_accumulate(op, g, &maps, in_shape)?;
    Ok(vec![Some(gx), None])
}
