//! The separable window ops behind pooling ([`super::pool`]) and resizing
//! ([`super::resize`]): their planning and recording; the engine that runs them is the
//! backend's (`Backend::pool` / `pool_backward`, on the CPU `backend/cpu/separable/`).
//!
//! Every pooling and resize op is *separable*: the window of an output element is a product of
//! one window per axis. Average pooling divides by a product of per-axis counts (PyTorch's
//! divisor is `(hend-hstart)*(wend-wstart)` with each factor clipped per axis), so it is a
//! product of per-axis linear maps; max over a box is the max over each axis in turn. An op is
//! therefore planned as one [`Taps`] per spatial axis (for each output position, the input
//! positions it reads and their weights for linear maps) over the `(n, c)` planes of the input
//! ([`Spatial`]), gathered in a [`SepPlan`]. Linear maps (average pooling, resize) record the
//! transposed map as their gradient; max pooling saves the argmax per output and scatters the
//! output gradient through it.

use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::{Error, Result, Tensor};

// ---------------------------------------------------------------------------------------------
// Taps: the per-axis description of a separable pass
// ---------------------------------------------------------------------------------------------

/// Window `o*s - pad + j*d, j < k` shared by the outputs `lo..hi` (all in range, weight `w`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine {
    pub(crate) k: usize,
    pub(crate) s: usize,
    pub(crate) d: usize,
    pub(crate) pad: usize,
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    pub(crate) w: f32,
}

/// One axis of a separable op: for each output position `o`, the input positions it reads
/// (ascending for pooling) and their weights (used by linear maps; max ignores them).
#[derive(Debug, Clone)]
pub(crate) struct Taps {
    pub(crate) len_in: usize,
    pub(crate) len_out: usize,
    pub(crate) off: Vec<usize>,
    pub(crate) idx: Vec<usize>,
    pub(crate) w: Vec<f32>,
    /// Every output reads this many taps (0 when counts differ): fixed-size inner loops.
    pub(crate) fixed: usize,
    /// `f > 0` when output `o` copies input `o / f` (integer-factor nearest upsampling).
    pub(crate) repeat: usize,
    pub(crate) affine: Option<Affine>,
}

impl Taps {
    /// Builds taps by calling `f(o, &mut taps)` for every output position; `f` pushes
    /// `(input position, weight)` pairs.
    pub(crate) fn build(
        len_in: usize,
        len_out: usize,
        mut f: impl FnMut(usize, &mut Vec<(usize, f32)>),
    ) -> Taps {
        let mut off = Vec::with_capacity(len_out + 1);
        let mut idx = Vec::new();
        let mut w = Vec::new();
        let mut buf = Vec::new();
        off.push(0);
        for o in 0..len_out {
            buf.clear();
            f(o, &mut buf);
            for &(i, wt) in &buf {
                debug_assert!(i < len_in);
                idx.push(i);
                w.push(wt);
            }
            off.push(idx.len());
        }
        let fixed = match off.get(1) {
            Some(&k) if (0..len_out).all(|o| off[o + 1] - off[o] == k) => k,
            _ => 0,
        };
        let f = len_out / len_in.max(1);
        let repeat = if fixed == 1
            && f > 1
            && len_out == f * len_in
            && idx.iter().enumerate().all(|(o, &i)| i == o / f)
            && w.iter().all(|&v| v == 1.0)
        {
            f
        } else {
            0
        };
        Taps {
            len_in,
            len_out,
            off,
            idx,
            w,
            fixed,
            repeat,
            affine: None,
        }
    }

    /// True when the single output reads the whole axis (a global reduction).
    pub(crate) fn whole(&self) -> bool {
        self.len_out == 1 && self.idx.len() == self.len_in
    }

    #[inline(always)]
    pub(crate) fn taps(&self, o: usize) -> (&[usize], &[f32]) {
        let r = self.off[o]..self.off[o + 1];
        (&self.idx[r.clone()], &self.w[r])
    }

    /// Window of a max (`avg = None`) or average (`avg = Some(count_include_pad)`) pooling
    /// axis; `None` when the axis is the identity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn pool(
        len: usize,
        out: usize,
        k: usize,
        s: usize,
        p: usize,
        d: usize,
        avg: Option<bool>,
    ) -> Option<Taps> {
        if k == 1 && s == 1 && p == 0 && out == len {
            return None;
        }
        let (li, pi) = (len as i64, p as i64);
        let mut t = Taps::build(len, out, |o, v| {
            let st = (o * s) as i64 - pi;
            match avg {
                None => {
                    for j in 0..k {
                        let q = st + (j * d) as i64;
                        if q >= 0 && q < li {
                            v.push((q as usize, 1.0));
                        }
                    }
                }
                Some(include_pad) => {
                    let end = (st + k as i64).min(li + pi);
                    let pool_size = end - st;
                    let (lo, hi) = (st.max(0), end.min(li));
                    let count = hi - lo;
                    if count > 0 {
                        let div = if include_pad { pool_size } else { count };
                        let w = 1.0 / div as f32;
                        for q in lo..hi {
                            v.push((q as usize, w));
                        }
                    }
                }
            }
        });
        // The run of outputs whose window is whole (same weight): fast path of the width pass.
        let full = |o: usize| -> bool {
            let st = (o * s) as i64 - pi;
            st >= 0 && st + (((k - 1) * d) as i64) < li
        };
        let lo = (0..out).find(|&o| full(o));
        if let Some(lo) = lo {
            let hi = (lo..out).find(|&o| !full(o)).unwrap_or(out);
            let w = t.w[t.off[lo]];
            t.affine = Some(Affine {
                k,
                s,
                d,
                pad: p,
                lo,
                hi,
                w,
            });
        }
        Some(t)
    }

    /// PyTorch adaptive bins `floor(o*len/out) .. ceil((o+1)*len/out)`, weight `1/count`;
    /// `None` when the axis is the identity.
    pub(crate) fn adaptive(len: usize, out: usize) -> Option<Taps> {
        if len == out {
            return None;
        }
        Some(Taps::build(len, out, |o, v| {
            let start = o * len / out;
            let end = ((o + 1) * len).div_ceil(out);
            let w = 1.0 / (end - start) as f32;
            for q in start..end {
                v.push((q, w));
            }
        }))
    }
}

/// Output dims of a separable op.
pub(crate) fn out_dims(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> [usize; 3] {
    let mut o = dims;
    for a in 0..3 {
        if let Some(t) = &taps[a] {
            o[a] = t.len_out;
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/// Leading (batch/channel) dims of a pooled or resized tensor and its spatial dims, padded to
/// three internal axes (D, H, W) with leading ones.
pub(crate) struct Spatial {
    pub(crate) lead: Vec<usize>,
    pub(crate) planes: usize,
    pub(crate) dims: [usize; 3],
    pub(crate) sp: usize,
}

impl Spatial {
    /// Accepts `(N, C, *spatial)` or unbatched `(C, *spatial)` with `sp` spatial dims.
    pub(crate) fn of(x: &Tensor, op: &'static str, sp: usize) -> Result<Spatial> {
        x.expect_f32(op)?;
        let r = x.rank();
        if r != sp + 2 && r != sp + 1 {
            let names = ["L", "H, W", "D, H, W"][sp - 1];
            return Err(Error::bad_shape(
                op,
                x.shape(),
                format!("rank {} (N, C, {names}) or {} (C, {names})", sp + 2, sp + 1),
            ));
        }
        let lead = x.shape()[..r - sp].to_vec();
        let mut dims = [1; 3];
        dims[3 - sp..].copy_from_slice(&x.shape()[r - sp..]);
        if dims.iter().product::<usize>() > i32::MAX as usize {
            return Err(Error::bad_shape(
                op,
                x.shape(),
                "fewer than 2^31 elements per plane",
            ));
        }
        Ok(Spatial {
            planes: lead.iter().product(),
            lead,
            dims,
            sp,
        })
    }

    pub(crate) fn shape_with(&self, dims: &[usize; 3]) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend_from_slice(&dims[3 - self.sp..]);
        s
    }
}

/// `Some(weight)` when the op reduces each whole plane to one value with one weight per
/// element (global pooling): those run as plain plane reductions.
pub(crate) fn whole_plane(dims: [usize; 3], taps: &[Option<Taps>; 3]) -> Option<f32> {
    let mut scale = 1.0f32;
    for a in 0..3 {
        match &taps[a] {
            Some(t) if t.whole() => {
                let w0 = t.w[0];
                if t.w.iter().any(|&w| w != w0) {
                    return None;
                }
                scale *= w0;
            }
            None if dims[a] == 1 => {}
            _ => return None,
        }
    }
    Some(scale)
}

/// A planned separable op over the `(n, c)` planes of a tensor (pooling, resizing, unpooling),
/// made by the op files and run by a [`Backend`](crate::backend::Backend).
#[derive(Debug)]
pub struct SepPlan {
    pub(crate) planes: usize,
    /// Input spatial dims, padded to (D, H, W) with leading ones.
    pub(crate) dims: [usize; 3],
    pub(crate) in_plane: usize,
    pub(crate) out_plane: usize,
    /// One pass per non-identity axis (all `None` for unpooling).
    pub(crate) taps: [Option<Taps>; 3],
    pub(crate) in_shape: Vec<usize>,
    pub(crate) out_shape: Vec<usize>,
}

impl SepPlan {
    /// The plan of `taps` over the planes of `s` (output dims from the taps).
    pub(crate) fn new(s: &Spatial, taps: [Option<Taps>; 3]) -> SepPlan {
        let odims = out_dims(s.dims, &taps);
        SepPlan::with_out(s, odims, taps)
    }

    /// The plan over the planes of `s` with output dims `odims`.
    pub(crate) fn with_out(s: &Spatial, odims: [usize; 3], taps: [Option<Taps>; 3]) -> SepPlan {
        SepPlan {
            planes: s.planes,
            dims: s.dims,
            in_plane: s.dims.iter().product(),
            out_plane: odims.iter().product(),
            taps,
            in_shape: s.shape_with(&s.dims),
            out_shape: s.shape_with(&odims),
        }
    }
}

/// Saved argmax indices of max pooling (flat per plane), recycled through the storage pool when
/// dropped.
pub type IdxBuf = crate::storage::pool::PooledVec<i32>;

/// Runs a separable linear map over the last `sp` dims of `x` (validated by [`Spatial::of`])
/// through the backend and records its gradient (the transposed map).
pub(crate) fn separable_linear(
    x: &Tensor,
    op: &'static str,
    sp: usize,
    taps: [Option<Taps>; 3],
    rec: Op,
) -> Result<Tensor> {
    let s = Spatial::of(x, op, sp)?;
    let plan = SepPlan::new(&s, taps);
    let (out, _) = backend::for_device(x.device(), op)?.pool(&rec, &plan, x, false)?;
    Ok(record_rule(
        out,
        rec,
        &[x],
        linear_grad,
        Saved::with_state(vec![], plan),
    ))
}

/// The gradient rule of the separable linear maps (average pooling, resizing): the transposed
/// per-axis passes over the output gradient.
fn linear_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let plan = ctx.take_state::<SepPlan>()?;
    let gx = backend::for_device(g.device(), op.name())?.pool_backward(op, &plan, g, None)?;
    Ok(vec![Some(gx)])
}

/// Output of [`separable_max`]: values (with gradient) and, when asked, the `I64` flat indices.
pub(crate) struct MaxOut {
    pub(crate) values: Tensor,
    pub(crate) indices: Option<Tensor>,
}

/// Max over separable windows of the last `sp` dims of `x`, recording the gradient (scatter
/// through the saved argmax indices). `want_idx` returns the indices too.
pub(crate) fn separable_max(
    x: &Tensor,
    op: &'static str,
    sp: usize,
    taps: [Option<Taps>; 3],
    want_idx: bool,
    rec: Op,
) -> Result<MaxOut> {
    let s = Spatial::of(x, op, sp)?;
    let plan = SepPlan::new(&s, taps);
    let needs_grad = crate::autograd::is_recorded(&[x]);
    // The argmax is tracked only when the indices or a gradient are asked for.
    let track = want_idx || needs_grad;
    let (values, idx) = backend::for_device(x.device(), op)?.pool(&rec, &plan, x, track)?;
    let indices = match (&idx, want_idx) {
        (Some(idx), true) => {
            let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            Some(Tensor::from_vec(v, &plan.out_shape)?)
        }
        _ => None,
    };
    if !needs_grad {
        return Ok(MaxOut { values, indices });
    }
    let idx =
        idx.ok_or_else(|| Error::invalid(op, "internal error: the backend kept no argmax"))?;
    let values = record_rule(
        values,
        rec,
        &[x],
        max_grad,
        Saved::with_state(vec![], (plan, idx)),
    );
    Ok(MaxOut { values, indices })
}

/// The gradient rule of max pooling: the output gradient scattered to the saved argmax
/// positions.
fn max_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let saved = ctx.take_state::<(SepPlan, IdxBuf)>()?;
    let gx = backend::for_device(g.device(), op.name())?.pool_backward(
        op,
        &saved.0,
        g,
        Some(&saved.1),
    )?;
    Ok(vec![Some(gx)])
}
