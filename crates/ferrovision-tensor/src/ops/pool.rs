//! Pooling over 1, 2 or 3 spatial dims (NCL, NCHW, NCDHW, or unbatched CL/CHW/CDHW): max and
//! average pooling with stride, padding, dilation and ceil mode, max pooling with indices and
//! unpooling, adaptive pooling and global pooling. Semantics follow PyTorch.
//!
//! The ops validate their options, build per-axis [`Taps`] and run them through the backend
//! with [`super::separable`] (see there for how the ops are planned); max unpooling validates
//! its indices and runs `Backend::max_unpool`.

use super::separable::{separable_linear, separable_max, MaxOut, SepPlan, Spatial, Taps};
use crate::autograd::{record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::{DType, Error, Result, Tensor};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// Window options of max and average pooling, like the arguments of `torch.nn.MaxPool2d` /
/// `AvgPool2d`.
///
/// Each list holds one value (used for every spatial dim) or one value per spatial dim.
///
/// ```
/// use ferrovision_tensor::{ops::pool::PoolOpts, Tensor};
/// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
/// let y = x.max_pool2d(&PoolOpts::new(&[2])).unwrap();
/// assert_eq!(y.to_vec::<f32>().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
/// let y = x.avg_pool2d(&PoolOpts::new(&[3]).stride(&[2]).padding(&[1]).count_include_pad(false)).unwrap();
/// assert_eq!(y.shape(), &[1, 1, 2, 2]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOpts {
    /// Window size.
    pub kernel: Vec<usize>,
    /// Step between windows; empty means the kernel size.
    pub stride: Vec<usize>,
    /// Implicit padding on both sides of each dim; empty means 0. Must be at most half the
    /// kernel size (PyTorch's rule). Max pooling pads with -inf, average pooling with zeros.
    pub padding: Vec<usize>,
    /// Spacing between window elements (max pooling only; average pooling needs 1); empty
    /// means 1.
    pub dilation: Vec<usize>,
    /// Use ceiling instead of floor to compute the output size. As in PyTorch, a last window
    /// is only kept if it starts inside the input or the left padding.
    pub ceil_mode: bool,
    /// Average pooling: count padded zeros in the divisor (PyTorch default `true`). Windows
    /// that hang past the right padding in ceil mode never count the part beyond it.
    pub count_include_pad: bool,
}

impl PoolOpts {
    /// Options with the given kernel size (one value for every dim, or one per dim), stride
    /// equal to the kernel, no padding, dilation 1, floor mode, `count_include_pad = true`.
    pub fn new(kernel: &[usize]) -> Self {
        PoolOpts {
            kernel: kernel.to_vec(),
            stride: Vec::new(),
            padding: Vec::new(),
            dilation: Vec::new(),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }

    /// Sets the symmetric padding.
    pub fn padding(mut self, padding: &[usize]) -> Self {
        self.padding = padding.to_vec();
        self
    }

    /// Sets the dilation (max pooling only).
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = dilation.to_vec();
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets whether average pooling counts padding in its divisor.
    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }
}

/// Expands an option list to the three internal axes (D, H, W); leading unused axes get `unused`.
fn per_axis(
    op: &'static str,
    what: &str,
    v: &[usize],
    sp: usize,
    default: usize,
    unused: usize,
) -> Result<[usize; 3]> {
    let mut out = [unused; 3];
    let vals: Vec<usize> = match v.len() {
        0 => vec![default; sp],
        1 => vec![v[0]; sp],
        n if n == sp => v.to_vec(),
        n => {
            return Err(Error::invalid(
                op,
                format!("{what} has {n} values {v:?}; expected 1 or {sp}"),
            ))
        }
    };
    out[3 - sp..].copy_from_slice(&vals);
    Ok(out)
}

/// Output length of one pooled axis (PyTorch's `pooling_output_shape`), validating the window.
#[allow(clippy::too_many_arguments)]
fn pool_out_len(
    op: &'static str,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    ceil: bool,
) -> Result<usize> {
    if len == 0 {
        return Err(Error::invalid(op, "spatial sizes must be non-zero"));
    }
    if k == 0 || s == 0 || d == 0 {
        return Err(Error::invalid(
            op,
            format!("kernel {k}, stride {s} and dilation {d} must all be positive"),
        ));
    }
    if p > k / 2 {
        return Err(Error::invalid(
            op,
            format!("padding {p} must be at most half the kernel size {k}"),
        ));
    }
    let too_large = || {
        Error::invalid(
            op,
            format!("kernel {k}, dilation {d} or stride {s} is too large"),
        )
    };
    let eff = d
        .checked_mul(k - 1)
        .and_then(|e| i64::try_from(e).ok())
        .and_then(|e| e.checked_add(1))
        .ok_or_else(too_large)?;
    let (len_i, s_i, p_i) = match (i64::try_from(len), i64::try_from(s), i64::try_from(p)) {
        (Ok(l), Ok(s), Ok(p)) if l.checked_add(2 * p).is_some() && s.checked_add(p).is_some() => {
            (l, s, p)
        }
        _ => return Err(too_large()),
    };
    let num = len_i + 2 * p_i - eff + if ceil { s_i - 1 } else { 0 };
    let mut out = num.div_euclid(s_i) + 1;
    if ceil && (out - 1) * s_i >= len_i + p_i {
        out -= 1;
    }
    if out < 1 {
        return Err(Error::invalid(
            op,
            format!(
                "input size {len} is too small for kernel {k} (dilation {d}, padding {p}, stride {s}): output size would be {out}"
            ),
        ));
    }
    Ok(out as usize)
}

// ---------------------------------------------------------------------------------------------
// Public ops
// ---------------------------------------------------------------------------------------------

/// Per-axis taps of a max or average pooling with `opts` over `dims`.
fn pool_taps(
    op: &'static str,
    sp: usize,
    dims: [usize; 3],
    opts: &PoolOpts,
    avg: Option<bool>,
) -> Result<[Option<Taps>; 3]> {
    if opts.kernel.is_empty() {
        return Err(Error::invalid(op, "kernel size is empty"));
    }
    let k = per_axis(op, "kernel", &opts.kernel, sp, 1, 1)?;
    let s = if opts.stride.is_empty() {
        k
    } else {
        per_axis(op, "stride", &opts.stride, sp, 1, 1)?
    };
    let p = per_axis(op, "padding", &opts.padding, sp, 0, 0)?;
    let d = per_axis(op, "dilation", &opts.dilation, sp, 1, 1)?;
    if avg.is_some() && d.iter().any(|&v| v != 1) {
        return Err(Error::invalid(
            op,
            format!("average pooling has no dilation (got {:?})", opts.dilation),
        ));
    }
    let mut taps: [Option<Taps>; 3] = [None, None, None];
    for a in 3 - sp..3 {
        let out = pool_out_len(op, dims[a], k[a], s[a], p[a], d[a], opts.ceil_mode)?;
        taps[a] = Taps::pool(dims[a], out, k[a], s[a], p[a], d[a], avg);
    }
    Ok(taps)
}

/// The op record of a max (`max`) or average pooling with `opts`, resolved per spatial dim.
fn pool_record(op: &'static str, sp: usize, opts: &PoolOpts, max: bool) -> Result<Op> {
    let spatial = |what, v: &[usize], default| -> Result<Vec<usize>> {
        Ok(per_axis(op, what, v, sp, default, default)?[3 - sp..].to_vec())
    };
    let kernel = spatial("kernel", &opts.kernel, 1)?;
    let stride = if opts.stride.is_empty() {
        kernel.clone()
    } else {
        spatial("stride", &opts.stride, 1)?
    };
    let padding = spatial("padding", &opts.padding, 0)?;
    Ok(if max {
        Op::MaxPool {
            kernel,
            stride,
            padding,
            dilation: spatial("dilation", &opts.dilation, 1)?,
            ceil_mode: opts.ceil_mode,
        }
    } else {
        Op::AvgPool {
            kernel,
            stride,
            padding,
            ceil_mode: opts.ceil_mode,
            count_include_pad: opts.count_include_pad,
        }
    })
}

/// Per-axis adaptive taps for `output_size` (one value per spatial dim).
fn adaptive_taps(
    op: &'static str,
    sp: usize,
    dims: [usize; 3],
    output_size: &[usize],
) -> Result<[Option<Taps>; 3]> {
    if output_size.len() != sp {
        return Err(Error::invalid(
            op,
            format!("output_size {output_size:?} must have {sp} value(s), one per spatial dim"),
        ));
    }
    if output_size.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("output_size {output_size:?} must be positive"),
        ));
    }
    let mut taps: [Option<Taps>; 3] = [None, None, None];
    for (i, a) in (3 - sp..3).enumerate() {
        if dims[a] == 0 {
            return Err(Error::invalid(
                op,
                format!("spatial input dims {:?} must be non-empty", &dims[3 - sp..]),
            ));
        }
        taps[a] = Taps::adaptive(dims[a], output_size[i]);
    }
    Ok(taps)
}

impl Tensor {
    fn max_pool_nd(
        &self,
        op: &'static str,
        sp: usize,
        opts: &PoolOpts,
        want_idx: bool,
    ) -> Result<MaxOut> {
        let s = Spatial::of(self, op, sp)?;
        let taps = pool_taps(op, sp, s.dims, opts, None)?;
        let rec = pool_record(op, sp, opts, true)?;
        separable_max(self, op, sp, taps, want_idx, rec)
    }

    fn avg_pool_nd(&self, op: &'static str, sp: usize, opts: &PoolOpts) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        let taps = pool_taps(op, sp, s.dims, opts, Some(opts.count_include_pad))?;
        let rec = pool_record(op, sp, opts, false)?;
        separable_linear(self, op, sp, taps, rec)
    }

    fn with_indices(&self, m: MaxOut) -> Result<(Tensor, Tensor)> {
        let i = m.indices.expect("indices were requested");
        Ok((m.values, i))
    }

    /// 1-D max pooling of `(N, C, L)` (or `(C, L)`) like `torch.nn.functional.max_pool1d`.
    pub fn max_pool1d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool1d", 1, opts, false)?.values)
    }

    /// 2-D max pooling of `(N, C, H, W)` (or `(C, H, W)`) like `torch.nn.functional.max_pool2d`:
    /// padding counts as -inf, ties pick the first element in row-major order.
    pub fn max_pool2d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool2d", 2, opts, false)?.values)
    }

    /// 3-D max pooling of `(N, C, D, H, W)` (or `(C, D, H, W)`).
    pub fn max_pool3d(&self, opts: &PoolOpts) -> Result<Tensor> {
        Ok(self.max_pool_nd("max_pool3d", 3, opts, false)?.values)
    }

    /// [`Tensor::max_pool1d`] and the `I64` index of each maximum within its length-`L` row.
    pub fn max_pool1d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool1d_with_indices", 1, opts, true)?;
        self.with_indices(m)
    }

    /// [`Tensor::max_pool2d`] and the `I64` flat index (`h * W + w`) of each maximum within its
    /// `(n, c)` plane, like PyTorch's `return_indices=True`; feed them to
    /// [`Tensor::max_unpool2d`].
    pub fn max_pool2d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool2d_with_indices", 2, opts, true)?;
        self.with_indices(m)
    }

    /// [`Tensor::max_pool3d`] and the `I64` flat index (`(d * H + h) * W + w`) of each maximum.
    pub fn max_pool3d_with_indices(&self, opts: &PoolOpts) -> Result<(Tensor, Tensor)> {
        let m = self.max_pool_nd("max_pool3d_with_indices", 3, opts, true)?;
        self.with_indices(m)
    }

    /// 1-D average pooling of `(N, C, L)` (or `(C, L)`) like
    /// `torch.nn.functional.avg_pool1d`.
    pub fn avg_pool1d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool1d", 1, opts)
    }

    /// 2-D average pooling of `(N, C, H, W)` (or `(C, H, W)`) like
    /// `torch.nn.functional.avg_pool2d` (without `divisor_override`).
    pub fn avg_pool2d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool2d", 2, opts)
    }

    /// 3-D average pooling of `(N, C, D, H, W)` (or `(C, D, H, W)`).
    pub fn avg_pool3d(&self, opts: &PoolOpts) -> Result<Tensor> {
        self.avg_pool_nd("avg_pool3d", 3, opts)
    }

    /// Adaptive average pooling to length `output_size[0]`: output `i` averages input
    /// `floor(i*L/out) .. ceil((i+1)*L/out)`.
    pub fn adaptive_avg_pool1d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool1d", 1, output_size)
    }

    /// Adaptive average pooling to `output_size = [H_out, W_out]` (PyTorch bins
    /// `floor(i*in/out) .. ceil((i+1)*in/out)` per dim).
    pub fn adaptive_avg_pool2d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool2d", 2, output_size)
    }

    /// Adaptive average pooling to `output_size = [D_out, H_out, W_out]`.
    pub fn adaptive_avg_pool3d(&self, output_size: &[usize]) -> Result<Tensor> {
        self.adaptive_avg_nd("adaptive_avg_pool3d", 3, output_size)
    }

    /// Adaptive max pooling to length `output_size[0]` (same bins as the average version).
    pub fn adaptive_max_pool1d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool1d", 1, output_size, false)?
            .values)
    }

    /// Adaptive max pooling to `output_size = [H_out, W_out]`.
    pub fn adaptive_max_pool2d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool2d", 2, output_size, false)?
            .values)
    }

    /// Adaptive max pooling to `output_size = [D_out, H_out, W_out]`.
    pub fn adaptive_max_pool3d(&self, output_size: &[usize]) -> Result<Tensor> {
        Ok(self
            .adaptive_max_nd("adaptive_max_pool3d", 3, output_size, false)?
            .values)
    }

    /// [`Tensor::adaptive_max_pool2d`] and the `I64` flat index of each maximum in its plane.
    pub fn adaptive_max_pool2d_with_indices(
        &self,
        output_size: &[usize],
    ) -> Result<(Tensor, Tensor)> {
        let m = self.adaptive_max_nd("adaptive_max_pool2d_with_indices", 2, output_size, true)?;
        self.with_indices(m)
    }

    fn adaptive_avg_nd(
        &self,
        op: &'static str,
        sp: usize,
        output_size: &[usize],
    ) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        super::view::check_numel(op, &[&s.lead[..], output_size].concat())?;
        let taps = adaptive_taps(op, sp, s.dims, output_size)?;
        let rec = Op::AdaptiveAvgPool {
            output_size: output_size.to_vec(),
        };
        separable_linear(self, op, sp, taps, rec)
    }

    fn adaptive_max_nd(
        &self,
        op: &'static str,
        sp: usize,
        output_size: &[usize],
        want_idx: bool,
    ) -> Result<MaxOut> {
        let s = Spatial::of(self, op, sp)?;
        super::view::check_numel(op, &[&s.lead[..], output_size].concat())?;
        let taps = adaptive_taps(op, sp, s.dims, output_size)?;
        let rec = Op::AdaptiveMaxPool {
            output_size: output_size.to_vec(),
        };
        separable_max(self, op, sp, taps, want_idx, rec)
    }

    /// Mean over the spatial dims of `(N, C, H, W)`, giving `(N, C)` (`(C, H, W)` gives `(C)`).
    /// For a `(N, C, 1, 1)` result use `adaptive_avg_pool2d(&[1, 1])`.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        let op = "global_avg_pool2d";
        let s = Spatial::of(self, op, 2)?;
        let y = self.adaptive_avg_nd(op, 2, &[1, 1])?;
        y.reshape(&s.lead)
    }

    /// Max over the spatial dims of `(N, C, H, W)`, giving `(N, C)`; the gradient goes to the
    /// first maximum. For a `(N, C, 1, 1)` result use `adaptive_max_pool2d(&[1, 1])`.
    pub fn global_max_pool2d(&self) -> Result<Tensor> {
        let op = "global_max_pool2d";
        let s = Spatial::of(self, op, 2)?;
        let y = self.adaptive_max_nd(op, 2, &[1, 1], false)?.values;
        y.reshape(&s.lead)
    }

    fn max_unpool_nd(
        &self,
        op: &'static str,
        sp: usize,
        indices: &Tensor,
        output_size: &[usize],
    ) -> Result<Tensor> {
        let s = Spatial::of(self, op, sp)?;
        if indices.shape() != self.shape() {
            return Err(Error::shape_mismatch(op, self.shape(), indices.shape()));
        }
        if !matches!(indices.dtype(), DType::I64 | DType::I32) {
            return Err(Error::dtype(op, indices.dtype(), "I64 or I32 indices"));
        }
        indices.check_cpu(op)?;
        // Accept the spatial size alone or a full shape (like `F.max_unpool2d`'s output_size).
        let spatial: &[usize] = if output_size.len() == sp {
            output_size
        } else if output_size.len() == self.rank() && output_size[..self.rank() - sp] == s.lead[..]
        {
            &output_size[self.rank() - sp..]
        } else {
            return Err(Error::invalid(
                op,
                format!(
                    "output_size {output_size:?} must list the {sp} spatial size(s) (input shape {:?})",
                    self.shape()
                ),
            ));
        };
        let mut odims = [1; 3];
        odims[3 - sp..].copy_from_slice(spatial);
        let out_plane = super::view::check_numel(op, &odims)?;
        super::view::check_numel(op, &[out_plane, s.lead.iter().product()])?;
        let idx: Vec<i64> = match indices.dtype() {
            DType::I64 => indices.to_vec::<i64>()?,
            _ => indices
                .to_vec::<i32>()?
                .into_iter()
                .map(i64::from)
                .collect(),
        };
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= out_plane) {
            return Err(Error::IndexOutOfRange {
                op,
                index: bad,
                size: out_plane,
            });
        }
        let plan = SepPlan::with_out(&s, odims, [None, None, None]);
        let rec = Op::MaxUnpool {
            output_size: output_size.to_vec(),
        };
        let out = backend::for_device(self.device(), op)?.max_unpool(&rec, &plan, self, &idx)?;
        Ok(record_rule(
            out,
            rec,
            &[self],
            unpool_grad,
            Saved::with_state(vec![], (plan, idx)),
        ))
    }

    /// Inverse of max pooling, like `torch.nn.functional.max_unpool1d`: zeros of length
    /// `output_size[0]` with each input value written at its index.
    pub fn max_unpool1d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool1d", 1, indices, output_size)
    }

    /// Inverse of max pooling, like `torch.nn.functional.max_unpool2d`: a `(N, C, H, W)` tensor
    /// of zeros (`output_size = [H, W]`, or the full shape) with each input value written at its
    /// flat plane index from [`Tensor::max_pool2d_with_indices`]. With repeated indices (from
    /// overlapping windows) the last value is kept (PyTorch leaves this unspecified); the
    /// gradient of every input is the output gradient at its index, as in PyTorch.
    pub fn max_unpool2d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool2d", 2, indices, output_size)
    }

    /// Inverse of 3-D max pooling (`output_size = [D, H, W]`).
    pub fn max_unpool3d(&self, indices: &Tensor, output_size: &[usize]) -> Result<Tensor> {
        self.max_unpool_nd("max_unpool3d", 3, indices, output_size)
    }
}

/// The gradient rule of max unpooling: the output gradient gathered at the indices.
fn unpool_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let saved = ctx.take_state::<(SepPlan, Vec<i64>)>()?;
    let gx = backend::for_device(g.device(), op.name())?
        .max_unpool_backward(op, &saved.0, g, &saved.1)?;
    Ok(vec![Some(gx)])
}
