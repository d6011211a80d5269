//! Padding, flipping and repetition, each planned as per-dimension index maps for
//! [`Backend::map_copy`](crate::backend::Backend::map_copy); their gradients are the inverse
//! map (flip, constant-pad crop) or the adjoint `Backend::map_accumulate`.

use super::{identity, record_float, PadMode, NONE};
use crate::autograd::{GradCtx, Op, Saved};
use crate::backend;
use crate::shape::{normalize_axes, Layout};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Pads the last `pads.len()` dimensions; `pads[k] = (before, after)` for dimension
    /// `rank - pads.len() + k` (natural order: `&[(top, bottom), (left, right)]` pads H and W of
    /// NCHW). See [`PadMode`] for the fill; reflect/replicate follow PyTorch.
    pub fn pad(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad";
        let b = backend::for_device(self.device(), OP)?;
        let rank = self.rank();
        if pads.len() > rank {
            return Err(Error::bad_shape(
                OP,
                self.shape(),
                format!(
                    "rank >= {} for {} (before, after) pairs",
                    pads.len(),
                    pads.len()
                ),
            ));
        }
        let first = rank - pads.len();
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        for (k, &(pb, pa)) in pads.iter().enumerate() {
            let d = first + k;
            let n = self.shape()[d];
            if n.checked_add(pb).and_then(|v| v.checked_add(pa)).is_none() {
                return Err(Error::invalid(
                    "pad",
                    format!("pads {pads:?} are too large"),
                ));
            }
            let src = |i: usize| i as isize - pb as isize;
            maps[d] = match mode {
                PadMode::Constant(_) => (0..pb + n + pa)
                    .map(|i| if i >= pb && i < pb + n { i - pb } else { NONE })
                    .collect(),
                PadMode::Reflect => {
                    if (pb > 0 || pa > 0) && (pb >= n || pa >= n) {
                        return Err(Error::invalid(
                            OP,
                            format!(
                                "reflect padding ({pb}, {pa}) must be smaller than the size {n} \
                                 of dimension {d} (shape {:?})",
                                self.shape()
                            ),
                        ));
                    }
                    let last = n as isize - 1;
                    (0..pb + n + pa)
                        .map(|i| {
                            let s = src(i);
                            (if s < 0 {
                                -s
                            } else if s > last {
                                2 * last - s
                            } else {
                                s
                            }) as usize
                        })
                        .collect()
                }
                PadMode::Replicate => {
                    if n == 0 && (pb > 0 || pa > 0) {
                        return Err(Error::invalid(
                            OP,
                            format!(
                                "replicate padding of the empty dimension {d} (shape {:?})",
                                self.shape()
                            ),
                        ));
                    }
                    (0..pb + n + pa)
                        .map(|i| src(i).clamp(0, n as isize - 1) as usize)
                        .collect()
                }
            };
        }
        let fill = match mode {
            PadMode::Constant(v) => v as f64,
            _ => 0.0,
        };
        let rec = Op::Pad {
            pads: pads.to_vec(),
            mode,
        };
        let out = b.map_copy(&rec, self, self.layout(), &maps, fill)?;
        Ok(record_float(
            out,
            rec,
            &[self],
            pad_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// Reverses the order of elements along each of `axes` (a copy), like `torch.flip`.
    pub fn flip(&self, axes: &[isize]) -> Result<Tensor> {
        const OP: &str = "flip";
        let b = backend::for_device(self.device(), OP)?;
        let axes = normalize_axes(OP, axes, self.rank())?;
        let mut maps: Vec<Vec<usize>> = self.shape().iter().map(|&n| identity(n)).collect();
        for &d in &axes {
            maps[d].reverse();
        }
        let rec = Op::Flip { dims: axes };
        let out = b.map_copy(&rec, self, self.layout(), &maps, 0.0)?;
        Ok(record_float(
            out,
            rec,
            &[self],
            flip_grad,
            Saved::with_state(vec![], maps),
        ))
    }

    /// Tiles the tensor `reps[d]` times along each dimension, like `torch.Tensor.repeat`:
    /// `reps.len()` must be at least the rank; extra leading entries add new dimensions.
    pub fn repeat(&self, reps: &[usize]) -> Result<Tensor> {
        const OP: &str = "repeat";
        let b = backend::for_device(self.device(), OP)?;
        if reps.len() < self.rank() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} repetitions for a tensor of rank {} (shape {:?}); give at least one per \
                     dimension",
                    reps.len(),
                    self.rank(),
                    self.shape()
                ),
            ));
        }
        let extra = reps.len() - self.rank();
        let l = self.layout();
        let mut shape = vec![1; extra];
        shape.extend_from_slice(&l.shape);
        let mut strides = vec![0; extra];
        strides.extend_from_slice(&l.strides);
        let layout = Layout {
            shape: shape.clone(),
            strides,
            offset: l.offset,
        };
        let out_shape: Option<Vec<usize>> = shape
            .iter()
            .zip(reps)
            .map(|(&n, &r)| n.checked_mul(r))
            .collect();
        match out_shape {
            Some(s) => crate::ops::view::check_numel(OP, &s)?,
            None => {
                return Err(Error::invalid(
                    OP,
                    format!("{reps:?} repetitions overflow the size"),
                ))
            }
        };
        let mut maps = Vec::with_capacity(reps.len());
        for (&n, &r) in shape.iter().zip(reps) {
            let len = n.checked_mul(r).ok_or_else(|| {
                Error::invalid(OP, format!("{reps:?} repetitions overflow the size"))
            })?;
            maps.push((0..len).map(|i| i % n).collect::<Vec<usize>>());
        }
        let rec = Op::Repeat {
            reps: reps.to_vec(),
        };
        let out = b.map_copy(&rec, self, &layout, &maps, 0.0)?;
        Ok(record_float(
            out,
            rec,
            &[self],
            repeat_grad,
            Saved::with_state(vec![], (maps, shape)),
        ))
    }

    /// Like [`Tensor::repeat`], but a `reps` shorter than the rank is padded with leading 1s
    /// (`torch.tile` / `numpy.tile`).
    pub fn tile(&self, reps: &[usize]) -> Result<Tensor> {
        if reps.len() >= self.rank() {
            return self.repeat(reps);
        }
        let mut full = vec![1; self.rank() - reps.len()];
        full.extend_from_slice(reps);
        self.repeat(&full)
    }
}

/// The gradient rule of `pad`: the interior of `g` (constant padding) or `g` added back along
/// the reflect/replicate maps.
fn pad_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::Pad { pads, mode } = op else {
        return Err(ctx.unexpected());
    };
    let mode = *mode;
    let b = backend::for_device(g.device(), op.name())?;
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    let in_shape = ctx.input_shape(0);
    let first = in_shape.len() - pads.len();
    let grad = match mode {
        PadMode::Constant(_) => {
            // The gradient is the interior of g: a crop.
            let mut crop: Vec<Vec<usize>> = in_shape.iter().map(|&n| identity(n)).collect();
            for (k, &(pb, _)) in pads.iter().enumerate() {
                let d = first + k;
                crop[d] = (pb..pb + in_shape[d]).collect();
            }
            b.map_copy(op, g, g.layout(), &crop, 0.0)?
        }
        _ => b.map_accumulate(op, g, &maps, in_shape)?,
    };
    Ok(vec![Some(grad)])
}

/// The gradient rule of `flip`: `g` flipped back.
fn flip_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let maps = ctx.take_state::<Vec<Vec<usize>>>()?;
    let b = backend::for_device(g.device(), op.name())?;
    Ok(vec![Some(b.map_copy(op, g, g.layout(), &maps, 0.0)?)])
}

/// The gradient rule of `repeat`: `g` summed over the repetitions.
fn repeat_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let state = ctx.take_state::<(Vec<Vec<usize>>, Vec<usize>)>()?;
    let (maps, shape) = (&state.0, &state.1);
    let in_shape = ctx.input_shape(0);
    Ok(vec![Some(
        backend::for_device(g.device(), op.name())?
            .map_accumulate(op, g, maps, shape)?
            .reshape(in_shape)?,
    )])
}
