//! Convolutions (1-d, 2-d, 3-d) and transposed convolutions, NCHW with PyTorch weight layouts.
//!
//! Algorithms, chosen per shape:
//! - **pointwise** (1×1, stride 1, no padding): a plain GEMM on the NCHW data, no im2col;
//! - **depthwise** 2-d (`groups == Cin`, `Cout = mult·Cin`): a direct kernel per channel plane;
//! - **general**: im2col + GEMM with bias (+ReLU) fused in the GEMM epilogue, one GEMM per group.
//!   Images are gathered into one column matrix until it has at least
//!   [`min_gemm_columns`] output positions: per-image GEMMs (parallel over the batch, output
//!   written straight into NCHW) for large feature maps, one GEMM over several images (with a
//!   small scatter to NCHW) for small ones.
//!
//! Backward: input gradient by `Wᵀ · grad` then col2im, weight gradient by `grad · colᵀ`
//! accumulated over the batch (one partial sum per thread), bias gradient by a reduction.
//! A transposed convolution is the input-gradient path of a convolution (its bias initialises
//! the col2im target), and its backward is the forward convolution.
//!
//! 1-d convolutions run as 2-d ones with a height of 1.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved};
use crate::kernels::depthwise;
use crate::kernels::gemm::{sgemm, Activation, Bias, Epilogue};
use crate::kernels::im2col::{self, Gather, Window};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Error, Result, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Options

/// Spatial padding of a convolution.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Padding {
    /// No padding: only windows that fit the input.
    #[default]
    Valid,
    /// TensorFlow/Keras `SAME`: output size `ceil(in / stride)`, the padding split evenly with
    /// any odd element after.
    Same,
    /// `(before, after)` per spatial dim; a single entry applies to every dim.
    Explicit(Vec<(usize, usize)>),
}

/// Options of [`Tensor::conv1d`], [`Tensor::conv2d`] and [`Tensor::conv3d`].
///
/// Empty `stride` / `dilation` mean 1 in every spatial dim and a single value applies to every
/// dim. Build with `ConvOpts::new().stride(&[2]).pad(1)` and so on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvOpts {
    pub stride: Vec<usize>,
    pub padding: Padding,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts {
            stride: Vec::new(),
            padding: Padding::Valid,
            dilation: Vec::new(),
            groups: 1,
        }
    }
}

impl ConvOpts {
    /// Stride 1, no padding, no dilation, one group.
    pub fn new() -> Self {
        Self::default()
    }
    /// Stride per spatial dim (one value: every dim).
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }
    /// Padding mode.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    /// Symmetric explicit padding `p` in every spatial dim.
    pub fn pad(self, p: usize) -> Self {
        self.padding(Padding::Explicit(vec![(p, p)]))
    }
    /// Dilation per spatial dim (one value: every dim).
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = dilation.to_vec();
        self
    }
    /// Number of groups (`Cin` and `Cout` must be multiples).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// Options of [`Tensor::conv_transpose1d`] / [`Tensor::conv_transpose2d`], with PyTorch
/// semantics: the output size is
/// `(in - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1`.
///
/// Empty vectors mean the default (stride 1, padding 0, output padding 0, dilation 1) and a single
/// value applies to every spatial dim.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTransposeOpts {
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
    pub output_padding: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
}

impl Default for ConvTransposeOpts {
    fn default() -> Self {
        ConvTransposeOpts {
            stride: Vec::new(),
            padding: Vec::new(),
            output_padding: Vec::new(),
            dilation: Vec::new(),
            groups: 1,
        }
    }
}

impl ConvTransposeOpts {
    /// Stride 1, no padding, no dilation, one group.
    pub fn new() -> Self {
        Self::default()
    }
    /// Stride per spatial dim (one value: every dim).
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = stride.to_vec();
        self
    }
    /// Symmetric padding per spatial dim, removed from both ends of the output.
    pub fn padding(mut self, padding: &[usize]) -> Self {
        self.padding = padding.to_vec();
        self
    }
    /// Symmetric padding `p` in every spatial dim.
    pub fn pad(self, p: usize) -> Self {
        self.padding(&[p])
    }
    /// Extra size added at the end of each output dim (must be below the stride or the
    /// dilation).
    pub fn output_padding(mut self, output_padding: &[usize]) -> Self {
        self.output_padding = output_padding.to_vec();
        self
    }
    /// Dilation per spatial dim (one value: every dim).
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = dilation.to_vec();
        self
    }
    /// Number of groups (`Cin` and `Cout` must be multiples).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

static MIN_GEMM_COLUMNS: AtomicUsize = AtomicUsize::new(256);

/// Tuning: a general convolution batches images into one GEMM until it has at least this many
/// columns (output positions); 1 gives one GEMM per image.
pub fn min_gemm_columns() -> usize {
    MIN_GEMM_COLUMNS.load(Ordering::Relaxed)
}

/// Sets [`min_gemm_columns`] (for benchmarks; the default suits the packed GEMM).
pub fn set_min_gemm_columns(columns: usize) {
    MIN_GEMM_COLUMNS.store(columns.max(1), Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Geometry

/// A convolution in "forward" orientation: input `[n, cin, win.input]`, output
/// `[n, cout, win.out]`, weight `[cout, cin/groups, win.kernel]`. 1-d problems are lifted to 2-d.
#[derive(Debug, Clone)]
struct Geom {
    n: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    win: Window,
    /// Offset table for im2col/col2im on small feature maps.
    gather: Option<Arc<Gather>>,
}

/// Output rows shorter than this use the offset-table im2col ([`Gather`]) instead of the
/// row-wise kernels.
const GATHER_MAX_ROW: usize = 16;

impl Geom {
    fn new(n: usize, cin: usize, cout: usize, groups: usize, win: Window) -> Geom {
        let mut g = Geom {
            n,
            cin,
            cout,
            groups,
            win,
            gather: None,
        };
        let row = g.win.out[g.win.rank() - 1];
        if row < GATHER_MAX_ROW && !g.depthwise() && !g.pointwise() {
            g.gather = Gather::new(&g.win).map(Arc::new);
        }
        g
    }
    fn kk(&self) -> usize {
        self.win.kernel_numel()
    }
    fn p_in(&self) -> usize {
        self.win.in_numel()
    }
    fn p_out(&self) -> usize {
        self.win.out_numel()
    }
    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of one group's column matrix.
    fn kg(&self) -> usize {
        self.cin_g() * self.kk()
    }
    /// 1×1, stride 1, unpadded: the input is already the column matrix.
    fn pointwise(&self) -> bool {
        let w = &self.win;
        w.kernel.iter().all(|&k| k == 1)
            && w.stride.iter().all(|&s| s == 1)
            && w.pad.iter().all(|&p| p == 0)
            && w.input == w.out
    }
    /// One input channel per group in 2-d: the direct depthwise kernel.
    fn depthwise(&self) -> bool {
        self.groups > 1 && self.cin_g() == 1 && self.win.rank() == 2
    }
    fn plane(&self) -> depthwise::Plane {
        let w = &self.win;
        depthwise::Plane {
            ih: w.input[0],
            iw: w.input[1],
            oh: w.out[0],
            ow: w.out[1],
            kh: w.kernel[0],
            kw: w.kernel[1],
            sh: w.stride[0],
            sw: w.stride[1],
            ph: w.pad[0],
            pw: w.pad[1],
            dh: w.dilation[0],
            dw: w.dilation[1],
        }
    }
    /// Images per GEMM for the general path.
    fn images_per_gemm(&self) -> usize {
        let p = self.p_out().max(1);
        min_gemm_columns().div_ceil(p).clamp(1, self.n.max(1))
    }
}

/// Lifts 1-d windows to 2-d (height 1) so they share the specialised 2-d kernels.
fn lift(mut w: Window) -> Window {
    if w.rank() == 1 {
        w.input.insert(0, 1);
        w.out.insert(0, 1);
        w.kernel.insert(0, 1);
        w.stride.insert(0, 1);
        w.pad.insert(0, 0);
        w.dilation.insert(0, 1);
    }
    w
}

/// Resolves a per-dim option: empty = `default`, one value = every dim, else one per dim, all
/// >= `min`.
fn per_dim(
    op: &'static str,
    what: &str,
    v: &[usize],
    d: usize,
    default: usize,
    min: usize,
) -> Result<Vec<usize>> {
    let out = match v.len() {
        0 => vec![default; d],
        1 => vec![v[0]; d],
        n if n == d => v.to_vec(),
        n => {
            return Err(Error::invalid(
                op,
                format!("{what} has {n} values {v:?}, expected 1 or {d} (one per spatial dim)"),
            ))
        }
    };
    if let Some(bad) = out.iter().find(|&&x| x < min) {
        return Err(Error::invalid(
            op,
            format!("{what} {v:?} has value {bad}, each must be >= {min}"),
        ));
    }
    Ok(out)
}

fn spatial_names(d: usize) -> &'static str {
    match d {
        1 => "L",
        2 => "H, W",
        _ => "D, H, W",
    }
}

/// Checks ranks, dtypes, device and the bias of a convolution-like op.
fn check_common(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    d: usize,
    weight_desc: &str,
) -> Result<()> {
    x.expect_f32(op)?;
    w.expect_f32(op)?;
    super::same_device(op, x, w)?;
    if x.rank() != d + 2 {
        return Err(Error::bad_shape(
            op,
            x.shape(),
            format!("an input of shape [N, C, {}]", spatial_names(d)),
        ));
    }
    if w.rank() != d + 2 {
        return Err(Error::bad_shape(
            op,
            w.shape(),
            format!("a weight of shape {weight_desc} with {d} kernel dims"),
        ));
    }
    if let Some(b) = bias {
        b.expect_f32(op)?;
        super::same_device(op, x, b)?;
    }
    if x.shape()[2..].contains(&0) {
        return Err(Error::bad_shape(
            op,
            x.shape(),
            "non-empty spatial dimensions",
        ));
    }
    if w.shape()[2..].contains(&0) {
        return Err(Error::bad_shape(
            op,
            w.shape(),
            "non-empty kernel dimensions",
        ));
    }
    Ok(())
}

fn check_bias(op: &'static str, bias: Option<&Tensor>, c: usize, w: &Tensor) -> Result<()> {
    if let Some(b) = bias {
        if b.shape() != [c] {
            return Err(Error::bad_shape(
                op,
                b.shape(),
                format!("a bias of shape [{c}] for weight {:?}", w.shape()),
            ));
        }
    }
    Ok(())
}

/// Geometry of a convolution, and its output shape.
fn conv_geom(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &ConvOpts,
    d: usize,
) -> Result<(Geom, Vec<usize>)> {
    check_common(op, x, w, bias, d, "[Cout, Cin/groups, k...]")?;
    let (xs, ws) = (x.shape(), w.shape());
    let groups = opts.groups;
    let (n, cin, cout) = (xs[0], xs[1], ws[0]);
    if groups == 0 || cin % groups != 0 || cout % groups != 0 || cin == 0 || cout == 0 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
            detail: format!(
                "{groups} groups need input channels ({cin}) and output channels ({cout}) to be \
                 positive multiples of the group count"
            ),
        });
    }
    if ws[1] != cin / groups {
        return Err(Error::ShapeMismatch {
            op,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
            detail: format!(
                "the input has {cin} channels, so the weight needs {} input channels per group \
                 ({groups} groups), got {}",
                cin / groups,
                ws[1]
            ),
        });
    }
    check_bias(op, bias, cout, w)?;
    let stride = per_dim(op, "stride", &opts.stride, d, 1, 1)?;
    let dilation = per_dim(op, "dilation", &opts.dilation, d, 1, 1)?;
    let input = xs[2..].to_vec();
    let kernel = ws[2..].to_vec();
    let eff = (0..d)
        .map(|i| {
            dilation[i]
                .checked_mul(kernel[i] - 1)
                .and_then(|e| e.checked_add(1))
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| Error::invalid(op, format!("dilation {dilation:?} is too large")))?;
    let pads: Vec<(usize, usize)> = match &opts.padding {
        Padding::Valid => vec![(0, 0); d],
        Padding::Same => (0..d)
            .map(|i| {
                let out = input[i].div_ceil(stride[i]);
                let total = ((out - 1) * stride[i] + eff[i]).saturating_sub(input[i]);
                (total / 2, total - total / 2)
            })
            .collect(),
        Padding::Explicit(p) => match p.len() {
            1 => vec![p[0]; d],
            l if l == d => p.clone(),
            l => {
                return Err(Error::invalid(
                    op,
                    format!("explicit padding has {l} entries {p:?}, expected 1 or {d}"),
                ))
            }
        },
    };
    let mut out = Vec::with_capacity(d);
    for i in 0..d {
        let padded = input[i]
            .checked_add(pads[i].0)
            .and_then(|p| p.checked_add(pads[i].1))
            .ok_or_else(|| {
                Error::invalid(op, format!("padding {:?} is too large", opts.padding))
            })?;
        if padded < eff[i] {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {kernel:?} (dilated size {}) is larger than the padded input size {} \
                     in spatial dim {i} (input {xs:?}, weight {ws:?}, padding {:?})",
                    eff[i], padded, opts.padding
                ),
            ));
        }
        out.push((padded - eff[i]) / stride[i] + 1);
    }
    let mut out_shape = vec![n, cout];
    out_shape.extend_from_slice(&out);
    super::view::check_numel(op, &out_shape)?;
    let win = lift(Window {
        input,
        out,
        kernel,
        stride,
        pad: pads.iter().map(|p| p.0).collect(),
        dilation,
    });
    Ok((Geom::new(n, cin, cout, groups, win), out_shape))
}

/// Geometry of a transposed convolution (as the convolution whose input gradient it is), and
/// its output shape.
fn conv_t_geom(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &ConvTransposeOpts,
    d: usize,
) -> Result<(Geom, Vec<usize>)> {
    check_common(op, x, w, bias, d, "[Cin, Cout/groups, k...]")?;
    let (xs, ws) = (x.shape(), w.shape());
    let groups = opts.groups;
    let (n, cin) = (xs[0], xs[1]);
    if groups == 0 || cin == 0 || cin % groups != 0 || ws[1] == 0 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
            detail: format!(
                "{groups} groups need the input channels ({cin}) to be a positive multiple of \
                 the group count and at least one output channel per group"
            ),
        });
    }
    if ws[0] != cin {
        return Err(Error::ShapeMismatch {
            op,
            lhs: xs.to_vec(),
            rhs: ws.to_vec(),
            detail: format!(
                "the input has {cin} channels but the weight's first dim is {}",
                ws[0]
            ),
        });
    }
    let cout = ws[1] * groups;
    check_bias(op, bias, cout, w)?;
    let stride = per_dim(op, "stride", &opts.stride, d, 1, 1)?;
    let padding = per_dim(op, "padding", &opts.padding, d, 0, 0)?;
    let out_pad = per_dim(op, "output_padding", &opts.output_padding, d, 0, 0)?;
    let dilation = per_dim(op, "dilation", &opts.dilation, d, 1, 1)?;
    let input = xs[2..].to_vec();
    let kernel = ws[2..].to_vec();
    let mut out = Vec::with_capacity(d);
    for i in 0..d {
        if out_pad[i] >= stride[i] && out_pad[i] >= dilation[i] {
            return Err(Error::invalid(
                op,
                format!(
                    "output_padding {:?} must be smaller than the stride {:?} or the dilation {:?}",
                    out_pad, stride, dilation
                ),
            ));
        }
        let full = input[i]
            .checked_sub(1)
            .and_then(|l| l.checked_mul(stride[i]))
            .and_then(|l| l.checked_add(dilation[i].checked_mul(kernel[i] - 1)?))
            .and_then(|l| l.checked_add(out_pad[i] + 1))
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!(
                        "input {xs:?} with weight {ws:?}, stride {stride:?} and dilation \
                         {dilation:?} has no valid output size"
                    ),
                )
            })?;
        if full <= padding[i].saturating_mul(2) {
            return Err(Error::invalid(
                op,
                format!(
                    "padding {padding:?} removes the whole output in spatial dim {i} (input {xs:?}, \
                     weight {ws:?}, stride {stride:?}, dilation {dilation:?})"
                ),
            ));
        }
        out.push(full - 2 * padding[i]);
    }
    let mut out_shape = vec![n, cout];
    out_shape.extend_from_slice(&out);
    super::view::check_numel(op, &out_shape)?;
    // The convolution whose input gradient this is maps the output back to the input.
    let win = lift(Window {
        input: out,
        out: input,
        kernel,
        stride,
        pad: padding,
        dilation,
    });
    Ok((Geom::new(n, cout, cin, groups, win), out_shape))
}

// ---------------------------------------------------------------------------------------------
// Kernels (no autodiff)

/// A pool buffer returned on drop.
type PoolBuf = crate::storage::pool::PooledVec<f32>;

/// Work (elements) below which a plane loop stays on one thread.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// im2col of `nb` consecutive images into a `[cin·kk, nb·p_out]` matrix with row stride `ld`.
fn im2col_images(xs: &[f32], nb: usize, g: &Geom, col: &mut [f32], ld: usize, par: bool) {
    let (kk, p, p_in, cin) = (g.kk(), g.p_out(), g.p_in(), g.cin);
    let col = &mut col[..cin * kk * ld];
    let body = |c: usize, block: &mut [f32]| {
        for j in 0..nb {
            let plane = &xs[(j * cin + c) * p_in..][..p_in];
            match &g.gather {
                Some(t) => t.im2col(plane, &mut block[j * p..], ld),
                None => im2col::im2col(plane, &g.win, &mut block[j * p..], ld),
            }
        }
    };
    if par && col.len() >= PAR_MIN_ELEMS && cin > 1 {
        col.par_chunks_mut(kk * ld)
            .enumerate()
            .for_each(|(c, b)| body(c, b));
    } else {
        col.chunks_mut(kk * ld)
            .enumerate()
            .for_each(|(c, b)| body(c, b));
    }
}

/// col2im of a `[cin·kk, nb·p_out]` matrix into `nb` images, each plane first set to its
/// channel's `init` value (or 0).
#[allow(clippy::too_many_arguments)]
fn col2im_images(
    dcol: &[f32],
    nb: usize,
    g: &Geom,
    dx: &mut [f32],
    ld: usize,
    par: bool,
    init: Option<&[f32]>,
) {
    let (kk, p, p_in, cin) = (g.kk(), g.p_out(), g.p_in(), g.cin);
    let dx = &mut dx[..nb * cin * p_in];
    let body = |idx: usize, plane: &mut [f32]| {
        let (j, c) = (idx / cin, idx % cin);
        plane.fill(init.map_or(0.0, |b| b[c]));
        let src = &dcol[c * kk * ld + j * p..];
        match &g.gather {
            Some(t) => t.col2im(src, ld, plane),
            None => im2col::col2im(src, ld, &g.win, plane),
        }
    };
    if par && dx.len() >= PAR_MIN_ELEMS && nb * cin > 1 {
        dx.par_chunks_mut(p_in)
            .enumerate()
            .for_each(|(i, pl)| body(i, pl));
    } else {
        dx.chunks_mut(p_in)
            .enumerate()
            .for_each(|(i, pl)| body(i, pl));
    }
}

/// `out[group rows] = act(W_g · col_g + bias)` for every group; `col` has `ld` columns.
#[allow(clippy::too_many_arguments)]
fn group_gemms(
    g: &Geom,
    w: &[f32],
    col: &[f32],
    ld: usize,
    out: &mut [f32],
    bias: Option<&[f32]>,
    act: Activation,
    par: bool,
) {
    let (cout_g, kg) = (g.cout_g(), g.kg());
    let one = |gi: usize, o: &mut [f32]| {
        let epi = Epilogue {
            bias: bias.map_or(Bias::None, |b| Bias::PerRow(&b[gi * cout_g..][..cout_g])),
            act,
        };
        sgemm(
            cout_g,
            ld,
            kg,
            &w[gi * cout_g * kg..],
            kg,
            1,
            &col[gi * kg * ld..],
            ld,
            1,
            o,
            ld,
            false,
            epi,
        );
    };
    let out = &mut out[..g.cout * ld];
    if par && g.groups > 1 {
        out.par_chunks_mut(cout_g * ld)
            .enumerate()
            .for_each(|(gi, o)| one(gi, o));
    } else {
        out.chunks_mut(cout_g * ld)
            .enumerate()
            .for_each(|(gi, o)| one(gi, o));
    }
}

/// Forward of `nb` images into `y` (`[nb, cout, p_out]`).
#[allow(clippy::too_many_arguments)]
fn forward_images(
    xs: &[f32],
    nb: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    g: &Geom,
    y: &mut [f32],
    par: bool,
) {
    let p = g.p_out();
    let ld = nb * p;
    if nb == 1 && g.pointwise() {
        group_gemms(g, w, xs, p, y, bias, act, par);
        return;
    }
    let mut col = PoolBuf::take(g.cin * g.kk() * ld);
    im2col_images(xs, nb, g, &mut col.0, ld, par);
    if nb == 1 {
        group_gemms(g, w, &col.0, ld, y, bias, act, par);
        return;
    }
    let mut tmp = PoolBuf::take(g.cout * ld);
    group_gemms(g, w, &col.0, ld, &mut tmp.0, bias, act, par);
    // [cout, nb·p] -> [nb, cout, p]
    for (j, img) in y.chunks_mut(g.cout * p).enumerate() {
        for (co, row) in img.chunks_mut(p).enumerate() {
            row.copy_from_slice(&tmp.0[co * ld + j * p..][..p]);
        }
    }
}

/// Convolution forward: `y = act(conv(x, w) + bias)`, `[n, cout, p_out]`.
fn conv_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, act: Activation, g: &Geom) -> Vec<f32> {
    let (p_in, p_out) = (g.p_in(), g.p_out());
    let mut y = pool::take_uninit(g.n * g.cout * p_out);
    if y.is_empty() {
        return y;
    }
    if g.depthwise() {
        let plane = g.plane();
        let (kk, mult) = (g.kk(), g.cout_g());
        let body = |idx: usize, out: &mut [f32]| {
            let (n, co) = (idx / g.cout, idx % g.cout);
            let ci = co / mult;
            depthwise::forward(
                &x[(n * g.cin + ci) * p_in..][..p_in],
                &w[co * kk..][..kk],
                bias.map_or(0.0, |b| b[co]),
                act == Activation::Relu,
                &plane,
                out,
            );
        };
        if y.len() >= PAR_MIN_ELEMS {
            y.par_chunks_mut(p_out)
                .enumerate()
                .for_each(|(i, o)| body(i, o));
        } else {
            y.chunks_mut(p_out)
                .enumerate()
                .for_each(|(i, o)| body(i, o));
        }
        return y;
    }
    let cb = g.images_per_gemm();
    let nchunks = g.n.div_ceil(cb);
    let threads = crate::parallel::num_threads();
    let inner_par = nchunks < threads;
    let task = |ci: usize, ychunk: &mut [f32]| {
        let n0 = ci * cb;
        let nb = ychunk.len() / (g.cout * p_out);
        let xs = &x[n0 * g.cin * p_in..(n0 + nb) * g.cin * p_in];
        forward_images(xs, nb, w, bias, act, g, ychunk, inner_par);
    };
    let chunk_len = cb * g.cout * p_out;
    if nchunks > 1 && threads > 1 {
        y.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| task(i, c));
    } else {
        y.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| task(i, c));
    }
    y
}

/// Per-channel sums of a `[n, c, p]` tensor (bias gradients).
fn channel_sums(gd: &[f32], n: usize, c: usize, p: usize) -> Vec<f32> {
    let sum_channel = |ch: usize| -> f32 {
        let mut acc = [0.0f32; 8];
        let mut tail = 0.0f32;
        for i in 0..n {
            let row = &gd[(i * c + ch) * p..][..p];
            let mut it = row.chunks_exact(8);
            for chunk in &mut it {
                for l in 0..8 {
                    acc[l] += chunk[l];
                }
            }
            tail += it.remainder().iter().sum::<f32>();
        }
        acc.iter().sum::<f32>() + tail
    };
    if n * c * p >= PAR_MIN_ELEMS {
        (0..c).into_par_iter().map(sum_channel).collect()
    } else {
        (0..c).map(sum_channel).collect()
    }
}

/// Backward of `nb` images starting at image `n0`: the input gradient into `dx` (`[nb, cin,
/// p_in]`, initialised with `init` per channel) and/or the weight gradient added into (or, when
/// `first`, written to) `dw`.
#[allow(clippy::too_many_arguments)]
fn backward_images(
    x: Option<&[f32]>,
    w: &[f32],
    gout: &[f32],
    g: &Geom,
    n0: usize,
    nb: usize,
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    first: bool,
    init: Option<&[f32]>,
    par: bool,
    bufs: &mut [PoolBuf; 3],
) {
    let (p, p_in) = (g.p_out(), g.p_in());
    let (cout_g, cin_g, kg) = (g.cout_g(), g.cin_g(), g.kg());
    let ld = nb * p;
    let [gch, dcol, col] = bufs;
    // The output gradient as a [cout, nb·p] matrix.
    let gsrc: &[f32] = if nb == 1 {
        &gout[n0 * g.cout * p..][..g.cout * p]
    } else {
        for j in 0..nb {
            for co in 0..g.cout {
                gch.0[co * ld + j * p..][..p]
                    .copy_from_slice(&gout[((n0 + j) * g.cout + co) * p..][..p]);
            }
        }
        &gch.0
    };
    if let Some(dx) = dx {
        if nb == 1 && g.pointwise() {
            for gi in 0..g.groups {
                let epi = Epilogue {
                    bias: init.map_or(Bias::None, |b| Bias::PerRow(&b[gi * cin_g..][..cin_g])),
                    act: Activation::None,
                };
                sgemm(
                    cin_g,
                    p,
                    cout_g,
                    &w[gi * cout_g * cin_g..],
                    1,
                    cin_g,
                    &gsrc[gi * cout_g * p..],
                    p,
                    1,
                    &mut dx[gi * cin_g * p..],
                    p,
                    false,
                    epi,
                );
            }
        } else {
            for gi in 0..g.groups {
                sgemm(
                    kg,
                    ld,
                    cout_g,
                    &w[gi * cout_g * kg..],
                    1,
                    kg,
                    &gsrc[gi * cout_g * ld..],
                    ld,
                    1,
                    &mut dcol.0[gi * kg * ld..],
                    ld,
                    false,
                    Epilogue::default(),
                );
            }
            col2im_images(&dcol.0, nb, g, dx, ld, par, init);
        }
    }
    if let Some(dw) = dw {
        let x = x.expect("the input is needed for the weight gradient");
        let xs = &x[n0 * g.cin * p_in..][..nb * g.cin * p_in];
        let colref: &[f32] = if nb == 1 && g.pointwise() {
            xs
        } else {
            im2col_images(xs, nb, g, &mut col.0, ld, par);
            &col.0
        };
        for gi in 0..g.groups {
            sgemm(
                cout_g,
                kg,
                ld,
                &gsrc[gi * cout_g * ld..],
                ld,
                1,
                &colref[gi * kg * ld..],
                1,
                ld,
                &mut dw[gi * cout_g * kg..],
                kg,
                !first,
                Epilogue::default(),
            );
        }
    }
}

/// Convolution backward: the input gradient (`need_dx`, planes initialised with `init` per input
/// channel) and the weight gradient (`x` given). `gout` is `[n, cout, p_out]`.
fn conv_backward(
    x: Option<&[f32]>,
    w: &[f32],
    gout: &[f32],
    g: &Geom,
    need_dx: bool,
    init: Option<&[f32]>,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (p_in, p_out, kk) = (g.p_in(), g.p_out(), g.kk());
    let need_dw = x.is_some();
    if !need_dx && !need_dw {
        return (None, None);
    }
    let wlen = g.cout * g.kg();
    let mut dx = need_dx.then(|| pool::take_uninit(g.n * g.cin * p_in));
    if g.n == 0 || p_out == 0 {
        if let Some(dx) = &mut dx {
            for (i, pl) in dx.chunks_mut(p_in.max(1)).enumerate() {
                pl.fill(init.map_or(0.0, |b| b[i % g.cin]));
            }
        }
        return (dx, need_dw.then(|| pool::take_zeroed(wlen)));
    }
    if g.depthwise() {
        let plane = g.plane();
        let mult = g.cout_g();
        if let Some(dx) = &mut dx {
            let body = |idx: usize, pl: &mut [f32]| {
                let (n, ci) = (idx / g.cin, idx % g.cin);
                pl.fill(init.map_or(0.0, |b| b[ci]));
                for co in ci * mult..(ci + 1) * mult {
                    depthwise::backward_data(
                        &gout[(n * g.cout + co) * p_out..][..p_out],
                        &w[co * kk..][..kk],
                        &plane,
                        pl,
                    );
                }
            };
            if dx.len() >= PAR_MIN_ELEMS {
                dx.par_chunks_mut(p_in)
                    .enumerate()
                    .for_each(|(i, pl)| body(i, pl));
            } else {
                dx.chunks_mut(p_in)
                    .enumerate()
                    .for_each(|(i, pl)| body(i, pl));
            }
        }
        let dw = x.map(|x| {
            let mut dw = pool::take_uninit(wlen);
            let body = |co: usize, acc: &mut [f32]| {
                acc.fill(0.0);
                let ci = co / mult;
                for n in 0..g.n {
                    depthwise::backward_weight(
                        &gout[(n * g.cout + co) * p_out..][..p_out],
                        &x[(n * g.cin + ci) * p_in..][..p_in],
                        &plane,
                        acc,
                    );
                }
            };
            if g.n * g.cout * p_out >= PAR_MIN_ELEMS {
                dw.par_chunks_mut(kk)
                    .enumerate()
                    .for_each(|(co, a)| body(co, a));
            } else {
                dw.chunks_mut(kk)
                    .enumerate()
                    .for_each(|(co, a)| body(co, a));
            }
            dw
        });
        return (dx, dw);
    }

    let cb = g.images_per_gemm();
    let nchunks = g.n.div_ceil(cb);
    let threads = crate::parallel::num_threads();
    let t = nchunks.min(threads).max(1);
    let inner_par = t < threads;
    // Range r handles chunks [r·nchunks/t, (r+1)·nchunks/t), accumulating its own weight
    // gradient; the partial sums are added at the end.
    let ranges: Vec<(usize, usize)> = (0..t)
        .map(|r| {
            let (c0, c1) = (r * nchunks / t, (r + 1) * nchunks / t);
            (c0 * cb, (c1 * cb).min(g.n))
        })
        .collect();
    let mut dws: Vec<Vec<f32>> = if need_dw {
        (0..t).map(|_| pool::take_uninit(wlen)).collect()
    } else {
        Vec::new()
    };
    let mut dx_parts: Vec<Option<&mut [f32]>> = Vec::with_capacity(t);
    match &mut dx {
        Some(dx) => {
            let mut rest: &mut [f32] = dx;
            for &(i0, i1) in &ranges {
                let (head, tail) = rest.split_at_mut((i1 - i0) * g.cin * p_in);
                dx_parts.push(Some(head));
                rest = tail;
            }
        }
        None => dx_parts.extend((0..t).map(|_| None)),
    }
    let mut dw_parts: Vec<Option<&mut [f32]>> = dws.iter_mut().map(|v| Some(&mut v[..])).collect();
    dw_parts.resize_with(t, || None);
    type Job<'a> = (
        (usize, usize),
        (Option<&'a mut [f32]>, Option<&'a mut [f32]>),
    );
    let run = |((i0, i1), (mut dxp, mut dwp)): Job<'_>| {
        let ld_max = cb.min(i1 - i0) * p_out;
        let big = g.cin * kk * ld_max;
        let mut bufs = [
            PoolBuf::take(if cb > 1 { g.cout * ld_max } else { 0 }),
            PoolBuf::take(if need_dx { big } else { 0 }),
            PoolBuf::take(if need_dw { big } else { 0 }),
        ];
        let mut n0 = i0;
        while n0 < i1 {
            let nb = cb.min(i1 - n0);
            let dxi = dxp
                .as_deref_mut()
                .map(|d| &mut d[(n0 - i0) * g.cin * p_in..][..nb * g.cin * p_in]);
            backward_images(
                x,
                w,
                gout,
                g,
                n0,
                nb,
                dxi,
                dwp.as_deref_mut(),
                n0 == i0,
                init,
                inner_par,
                &mut bufs,
            );
            n0 += nb;
        }
    };
    let jobs: Vec<_> = ranges
        .into_iter()
        .zip(dx_parts.into_iter().zip(dw_parts))
        .collect();
    if t > 1 {
        jobs.into_par_iter().for_each(run);
    } else {
        jobs.into_iter().for_each(run);
    }
    let dw = if need_dw {
        let mut it = dws.into_iter();
        let mut total = it.next().expect("at least one partial sum");
        for part in it {
            for (a, b) in total.iter_mut().zip(&part) {
                *a += b;
            }
            pool::give_back(part);
        }
        Some(total)
    } else {
        None
    };
    (dx, dw)
}

// ---------------------------------------------------------------------------------------------
// Autodiff wrappers

fn with_opt<R>(
    t: Option<&Tensor>,
    op: &'static str,
    f: impl FnOnce(Option<&[f32]>) -> R,
) -> Result<R> {
    match t {
        Some(t) => t.with_f32(op, |s| f(Some(s))),
        None => Ok(f(None)),
    }
}

/// Zeroes the gradient where the (ReLU) output is not positive.
fn relu_mask(g: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    match y {
        Some(y) => {
            super::unary::zip_map_f32(g, y, "relu backward", |g, y| if y > 0.0 { g } else { 0.0 })
        }
        None => Ok(g.clone()),
    }
}

/// The op record of a convolution: per-dim (before, after) padding recovered from the window.
fn conv_record(geom: &Geom, relu: bool) -> Op {
    let w = &geom.win;
    let padding = (0..w.rank())
        .map(|i| {
            let span = (w.out[i] - 1) * w.stride[i] + w.dilation[i] * (w.kernel[i] - 1) + 1;
            (w.pad[i], span.saturating_sub(w.input[i] + w.pad[i]))
        })
        .collect();
    Op::Conv {
        stride: w.stride.clone(),
        padding,
        dilation: w.dilation.clone(),
        groups: geom.groups,
        relu,
    }
}

/// The op record of a transposed convolution, whose geometry is that of the forward
/// convolution it transposes (`win.out` is the transposed conv's input size).
fn conv_t_record(geom: &Geom) -> Op {
    let w = &geom.win;
    let output_padding = (0..w.rank())
        .map(|i| {
            let full = (w.out[i] - 1) * w.stride[i] + w.dilation[i] * (w.kernel[i] - 1) + 1;
            (w.input[i] + 2 * w.pad[i]).saturating_sub(full)
        })
        .collect();
    Op::ConvTranspose {
        stride: w.stride.clone(),
        padding: w.pad.clone(),
        output_padding,
        dilation: w.dilation.clone(),
        groups: geom.groups,
    }
}

fn conv_op(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    geom: Geom,
    out_shape: Vec<usize>,
    act: Activation,
) -> Result<Tensor> {
    let y = x.with_f32(op, |xs| {
        w.with_f32(op, |ws| {
            with_opt(bias, op, |bs| conv_forward(xs, ws, bs, act, &geom))
        })
    })???;
    let y = Tensor::from_f32(y, &out_shape);
    let mut inputs = vec![x, w];
    if let Some(b) = bias {
        inputs.push(b);
    }
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let rec = conv_record(&geom, act == Activation::Relu);
    let mut tensors = vec![x.detach(), w.detach()];
    if act == Activation::Relu {
        tensors.push(y.detach());
    }
    let saved = Saved::with_state(tensors, geom);
    Ok(record_rule(y, rec, &inputs, conv_grad, saved))
}

fn conv_t_op(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    geom: Geom,
    out_shape: Vec<usize>,
) -> Result<Tensor> {
    let y = x.with_f32(op, |xs| {
        w.with_f32(op, |ws| {
            with_opt(bias, op, |bs| {
                conv_backward(None, ws, xs, &geom, true, bs).0
            })
        })
    })???;
    let y = Tensor::from_f32(y.expect("input gradient requested"), &out_shape);
    let mut inputs = vec![x, w];
    if let Some(b) = bias {
        inputs.push(b);
    }
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let rec = conv_t_record(&geom);
    let saved = Saved::with_state(vec![x.detach(), w.detach()], geom);
    Ok(record_rule(y, rec, &inputs, conv_t_grad, saved))
}

impl Tensor {
    /// 1-d convolution (cross-correlation, like PyTorch): input `[N, Cin, L]`, weight
    /// `[Cout, Cin/groups, k]`, bias `[Cout]`; output `[N, Cout, L_out]`.
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_geom("conv1d", self, weight, bias, opts, 1)?;
        conv_op("conv1d", self, weight, bias, g, shape, Activation::None)
    }

    /// 2-d convolution: input `[N, Cin, H, W]`, weight `[Cout, Cin/groups, kh, kw]`, bias
    /// `[Cout]`; output `[N, Cout, H_out, W_out]`.
    ///
    /// ```
    /// use ferrovision_tensor::{ops::conv::ConvOpts, Tensor};
    /// let x = Tensor::ones(&[1, 1, 4, 4]);
    /// let w = Tensor::ones(&[2, 1, 3, 3]);
    /// let y = x.conv2d(&w, None, &ConvOpts::new().pad(1).stride(&[2])).unwrap();
    /// assert_eq!(y.shape(), &[1, 2, 2, 2]);
    /// assert_eq!(y.to_vec::<f32>().unwrap()[..4], [4.0, 6.0, 6.0, 9.0]);
    /// ```
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_geom("conv2d", self, weight, bias, opts, 2)?;
        conv_op("conv2d", self, weight, bias, g, shape, Activation::None)
    }

    /// `relu(conv2d(x, w) + bias)` with the bias and the ReLU fused into the kernel's epilogue.
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_geom("conv2d_relu", self, weight, bias, opts, 2)?;
        conv_op(
            "conv2d_relu",
            self,
            weight,
            bias,
            g,
            shape,
            Activation::Relu,
        )
    }

    /// 3-d convolution: input `[N, Cin, D, H, W]`, weight `[Cout, Cin/groups, kd, kh, kw]`, bias
    /// `[Cout]`; output `[N, Cout, D_out, H_out, W_out]`.
    pub fn conv3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_geom("conv3d", self, weight, bias, opts, 3)?;
        conv_op("conv3d", self, weight, bias, g, shape, Activation::None)
    }

    /// 1-d transposed convolution (PyTorch semantics): input `[N, Cin, L]`, weight
    /// `[Cin, Cout/groups, k]`, bias `[Cout]`; output `[N, Cout, L_out]`.
    pub fn conv_transpose1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_t_geom("conv_transpose1d", self, weight, bias, opts, 1)?;
        conv_t_op("conv_transpose1d", self, weight, bias, g, shape)
    }

    /// 2-d transposed convolution (PyTorch semantics): input `[N, Cin, H, W]`, weight
    /// `[Cin, Cout/groups, kh, kw]`, bias `[Cout]`; output `[N, Cout, H_out, W_out]`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_t_geom("conv_transpose2d", self, weight, bias, opts, 2)?;
        conv_t_op("conv_transpose2d", self, weight, bias, g, shape)
    }

    /// 3-d transposed convolution (PyTorch semantics): input `[N, Cin, D, H, W]`, weight
    /// `[Cin, Cout/groups, kd, kh, kw]`, bias `[Cout]`.
    pub fn conv_transpose3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTransposeOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_t_geom("conv_transpose3d", self, weight, bias, opts, 3)?;
        conv_t_op("conv_transpose3d", self, weight, bias, g, shape)
    }
}

/// The gradient rule of the convolutions: `dx` and `dW` from the saved input, weight and
/// geometry (through the fused ReLU's mask), the bias gradient the channel sums of `dy`.
fn conv_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let geom = ctx.take_state::<Geom>()?;
    let relu = matches!(op, Op::Conv { relu: true, .. });
    let op = op.name();
    let (sx, sw) = (ctx.saved(0)?, ctx.saved(1)?);
    let saved_y = if relu { Some(ctx.saved(2)?) } else { None };
    let (rx, rw, rb) = (ctx.needs(0), ctx.needs(1), ctx.needs(2));
    let has_bias = ctx.num_inputs() == 3;
    let g = relu_mask(g, saved_y)?;
    let (dx, dw, db) = g.with_f32(op, |gd| -> Result<_> {
        let (dx, dw) = with_opt(rw.then_some(sx), op, |xs| {
            sw.with_f32(op, |ws| conv_backward(xs, ws, gd, &geom, rx, None))
        })??;
        let db = rb.then(|| channel_sums(gd, geom.n, geom.cout, geom.p_out()));
        Ok((dx, dw, db))
    })??;
    let mut grads = vec![
        dx.map(|v| Tensor::from_f32(v, sx.shape())),
        dw.map(|v| Tensor::from_f32(v, sw.shape())),
    ];
    if has_bias {
        grads.push(db.map(|v| {
            let len = v.len();
            Tensor::from_f32(v, &[len])
        }));
    }
    Ok(grads)
}

/// The gradient rule of the transposed convolutions: `dx` is the forward convolution of
/// `dy`, `dW` the weight gradient of that convolution, the bias gradient the channel sums.
fn conv_t_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let geom = ctx.take_state::<Geom>()?;
    let op = op.name();
    let (sx, sw) = (ctx.saved(0)?, ctx.saved(1)?);
    let (rx, rw, rb) = (ctx.needs(0), ctx.needs(1), ctx.needs(2));
    let has_bias = ctx.num_inputs() == 3;
    let (dx, dw, db) = g.with_f32(op, |gd| -> Result<_> {
        let dx = if rx {
            Some(sw.with_f32(op, |ws| conv_forward(gd, ws, None, Activation::None, &geom))?)
        } else {
            None
        };
        let dw = if rw {
            sx.with_f32(op, |xs| {
                conv_backward(Some(gd), &[], xs, &geom, false, None).1
            })?
        } else {
            None
        };
        let db = rb.then(|| channel_sums(gd, geom.n, geom.cin, geom.p_in()));
        Ok((dx, dw, db))
    })??;
    let mut grads = vec![
        dx.map(|v| Tensor::from_f32(v, sx.shape())),
        dw.map(|v| Tensor::from_f32(v, sw.shape())),
    ];
    if has_bias {
        grads.push(db.map(|v| {
            let len = v.len();
            Tensor::from_f32(v, &[len])
        }));
    }
    Ok(grads)
}
