//! Convolutions (1-d, 2-d, 3-d) and transposed convolutions, NCHW with PyTorch weight layouts:
//! options, validation, the geometry plan ([`Geom`]: sizes, the lifted window, and the im2col
//! offset table for short rows), op records and gradient rules.
//!
//! The computation runs on the device's backend (`Backend::conv`, `conv_backward`,
//! `conv_transpose`, `conv_transpose_backward`); the CPU algorithms (pointwise GEMM, direct
//! depthwise, im2col + GEMM with fused epilogue; col2im and `grad · colᵀ` backward) are described
//! in `backend/cpu/conv.rs`. A transposed convolution is planned as the forward convolution it
//! transposes. 1-d convolutions run as 2-d ones with a height of 1.

use crate::autograd::{is_recorded, record_rule, GradCtx, Op, Saved};
use crate::backend;
use crate::kernels::im2col::{Gather, Window};
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

/// The algorithm of 3×3 stride-1 convolutions (2-d, one group, padding ≤ 2) and of one-group
/// convolutions on maps with at most half as many positions as the kernel has taps (the dense
/// form, `backend/cpu/conv_dense.rs`): the forward pass and the input gradient. Others always
/// use their one algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Winograd where the shape rule says it is faster (the default).
    Auto,
    /// Always Winograd F(4×4, 3×3) where it applies.
    Winograd,
    /// Always im2col + GEMM.
    Im2col,
    /// Always Winograd in the tiled layout (benchmarks; `Winograd` picks the layout by shape).
    WinogradTiled,
    /// Always Winograd in the whole-batch layout for small maps and wide layers (benchmarks).
    WinogradWide,
    /// The dense form of small-map convolutions wherever it fits (any batch size), else as
    /// `Auto` (tests, benchmarks).
    Dense,
}

/// 0: not set yet (read `FERROVISION_CONV_ALGO`), then 1 + the `ConvAlgo` discriminant.
static CONV_ALGO: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The algorithm choice for 3×3 stride-1 convolutions: [`set_conv_algo`], else the
/// `FERROVISION_CONV_ALGO` variable (`auto`, `winograd`, `im2col`, `winograd-tiled`,
/// `winograd-wide`, `dense`), else [`ConvAlgo::Auto`].
/// The choice depends on shapes only, so a run is reproducible; Winograd's results differ from
/// im2col's by rounding (about 4e-6 of `Σ|w·x|`, see `kernels/winograd.rs`), the dense form's
/// by the order of its sums.
pub fn conv_algo() -> ConvAlgo {
    let decode = |discriminant: u8| match discriminant {
        1 => ConvAlgo::Winograd,
        2 => ConvAlgo::Im2col,
        3 => ConvAlgo::WinogradTiled,
        4 => ConvAlgo::WinogradWide,
        5 => ConvAlgo::Dense,
        _ => ConvAlgo::Auto,
    };
    match CONV_ALGO.load(Ordering::Relaxed) {
        0 => {
            let algo = match std::env::var("FERROVISION_CONV_ALGO").as_deref() {
                Ok("winograd") => ConvAlgo::Winograd,
                Ok("im2col") => ConvAlgo::Im2col,
                Ok("winograd-tiled") => ConvAlgo::WinogradTiled,
                Ok("winograd-wide") => ConvAlgo::WinogradWide,
                Ok("dense") => ConvAlgo::Dense,
                _ => ConvAlgo::Auto,
            };
            let _ =
                CONV_ALGO.compare_exchange(0, 1 + algo as u8, Ordering::Relaxed, Ordering::Relaxed);
            decode(CONV_ALGO.load(Ordering::Relaxed) - 1)
        }
        v => decode(v - 1),
    }
}

/// Sets the process-wide [`conv_algo`] (benchmarks, tests, or to make results bit-identical to
/// a run that used im2col).
pub fn set_conv_algo(algo: ConvAlgo) {
    CONV_ALGO.store(1 + algo as u8, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Geometry

/// A convolution in "forward" orientation: input `[n, cin, win.input]`, output
/// `[n, cout, win.out]`, weight `[cout, cin/groups, win.kernel]`. 1-d problems are lifted to 2-d.
#[derive(Debug, Clone)]
pub struct Geom {
    pub(crate) n: usize,
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) groups: usize,
    pub(crate) win: Window,
    /// Offset table for im2col/col2im on small feature maps.
    pub(crate) gather: Option<Arc<Gather>>,
}

/// Output rows shorter than this use the offset-table im2col ([`Gather`]) instead of the
/// row-wise kernels.
const GATHER_MAX_ROW: usize = 16;

impl Geom {
    pub(crate) fn new(n: usize, cin: usize, cout: usize, groups: usize, win: Window) -> Geom {
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
    pub(crate) fn kk(&self) -> usize {
        self.win.kernel_numel()
    }
    pub(crate) fn p_in(&self) -> usize {
        self.win.in_numel()
    }
    pub(crate) fn p_out(&self) -> usize {
        self.win.out_numel()
    }
    pub(crate) fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    pub(crate) fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of one group's column matrix.
    pub(crate) fn kg(&self) -> usize {
        self.cin_g() * self.kk()
    }
    /// 1×1, stride 1, unpadded: the input is already the column matrix.
    pub(crate) fn pointwise(&self) -> bool {
        let w = &self.win;
        w.kernel.iter().all(|&k| k == 1)
            && w.stride.iter().all(|&s| s == 1)
            && w.pad.iter().all(|&p| p == 0)
            && w.input == w.out
    }
    /// One input channel per group in 2-d: the direct depthwise kernel.
    pub(crate) fn depthwise(&self) -> bool {
        self.groups > 1 && self.cin_g() == 1 && self.win.rank() == 2
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
// Autodiff wrappers

/// The op record of a convolution with `spatial` spatial dims: per-dim (before, after) padding
/// recovered from the window. The window may run a 1-d convolution as a 2-d one of height 1;
/// the record keeps the operands' own dims (the last `spatial` of the window).
fn conv_record(geom: &Geom, relu: bool, spatial: usize) -> Op {
    let w = &geom.win;
    let first = w.rank().saturating_sub(spatial);
    let padding = (first..w.rank())
        .map(|i| {
            let span = (w.out[i] - 1) * w.stride[i] + w.dilation[i] * (w.kernel[i] - 1) + 1;
            (w.pad[i], span.saturating_sub(w.input[i] + w.pad[i]))
        })
        .collect();
    Op::Conv {
        stride: w.stride[first..].to_vec(),
        padding,
        dilation: w.dilation[first..].to_vec(),
        groups: geom.groups,
        relu,
    }
}

/// The op record of a transposed convolution with `spatial` spatial dims, whose geometry is that
/// of the forward convolution it transposes (`win.out` is the transposed conv's input size).
fn conv_t_record(geom: &Geom, spatial: usize) -> Op {
    let w = &geom.win;
    let first = w.rank().saturating_sub(spatial);
    let output_padding = (first..w.rank())
        .map(|i| {
            let full = (w.out[i] - 1) * w.stride[i] + w.dilation[i] * (w.kernel[i] - 1) + 1;
            (w.input[i] + 2 * w.pad[i]).saturating_sub(full)
        })
        .collect();
    Op::ConvTranspose {
        stride: w.stride[first..].to_vec(),
        padding: w.pad[first..].to_vec(),
        output_padding,
        dilation: w.dilation[first..].to_vec(),
        groups: geom.groups,
    }
}

/// The op method of the convolutions: runs the planned convolution on the device's backend
/// (bias and ReLU fused) and records the rule.
fn conv_op(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    geom: Geom,
    out_shape: Vec<usize>,
    relu: bool,
) -> Result<Tensor> {
    let y =
        backend::for_device(x.device(), op)?.conv(op, &geom, x, w, bias, None, relu, &out_shape)?;
    let mut inputs = vec![x, w];
    if let Some(b) = bias {
        inputs.push(b);
    }
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let rec = conv_record(&geom, relu, w.rank().saturating_sub(2));
    let mut tensors = vec![x.detach(), w.detach()];
    if relu {
        tensors.push(y.detach());
    }
    let saved = Saved::with_state(tensors, geom);
    Ok(record_rule(y, rec, &inputs, conv_grad, saved))
}

/// The op method of the transposed convolutions: runs the planned transposed convolution on the
/// device's backend and records the rule.
fn conv_t_op(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    geom: Geom,
    out_shape: Vec<usize>,
) -> Result<Tensor> {
    let y =
        backend::for_device(x.device(), op)?.conv_transpose(op, &geom, x, w, bias, &out_shape)?;
    let mut inputs = vec![x, w];
    if let Some(b) = bias {
        inputs.push(b);
    }
    if !is_recorded(&inputs) {
        return Ok(y);
    }
    let rec = conv_t_record(&geom, w.rank().saturating_sub(2));
    let saved = Saved::with_state(vec![x.detach(), w.detach()], geom);
    Ok(record_rule(y, rec, &inputs, conv_t_grad, saved))
}

/// The convolution of `w.rank() - 2` spatial dims (1 to 3) with the ReLU fused when `relu`:
/// how a traced plan replays a recorded [`Op::Conv`] (also after folding a batch norm into it).
pub(crate) fn conv_nd(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &ConvOpts,
    relu: bool,
) -> Result<Tensor> {
    let d = w.rank().saturating_sub(2);
    let op = match (d, relu) {
        (1, _) => "conv1d",
        (2, false) => "conv2d",
        (2, true) => "conv2d_relu",
        _ => "conv3d",
    };
    let (g, shape) = conv_geom(op, x, w, bias, opts, d)?;
    conv_op(op, x, w, bias, g, shape, relu)
}

/// `act(conv(x, w) + bias + residual)` for a `residual` of the output's shape, in one pass
/// where the algorithm allows (the GEMM epilogue): what traced plans turn a convolution
/// followed by a residual add (and ReLU) into. Inference only: it records no gradient, and
/// operands that need one are refused.
pub(crate) fn conv_nd_residual(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    residual: &Tensor,
    opts: &ConvOpts,
    relu: bool,
) -> Result<Tensor> {
    let op = "conv_residual";
    let mut inputs = vec![x, w, residual];
    if let Some(b) = bias {
        inputs.push(b);
    }
    if is_recorded(&inputs) {
        return Err(Error::invalid(
            op,
            "inference only: an operand requires a gradient (use separate conv and add ops)",
        ));
    }
    let d = w.rank().saturating_sub(2);
    let (g, shape) = conv_geom(op, x, w, bias, opts, d)?;
    if residual.shape() != shape.as_slice() {
        return Err(Error::shape_mismatch(op, &shape, residual.shape()));
    }
    residual.expect_f32(op)?;
    backend::for_device(x.device(), op)?.conv(op, &g, x, w, bias, Some(residual), relu, &shape)
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
        conv_op("conv1d", self, weight, bias, g, shape, false)
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
        conv_op("conv2d", self, weight, bias, g, shape, false)
    }

    /// `relu(conv2d(x, w) + bias)` with the bias and the ReLU fused into the kernel's epilogue.
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvOpts,
    ) -> Result<Tensor> {
        let (g, shape) = conv_geom("conv2d_relu", self, weight, bias, opts, 2)?;
        conv_op("conv2d_relu", self, weight, bias, g, shape, true)
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
        conv_op("conv3d", self, weight, bias, g, shape, false)
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
/// geometry (through the fused ReLU's mask), the bias gradient the channel sums of `dy`, all
/// computed by the device's backend.
fn conv_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let geom = ctx.take_state::<Geom>()?;
    let relu = matches!(op, Op::Conv { relu: true, .. });
    let op = op.name();
    let (sx, sw) = (ctx.saved(0)?, ctx.saved(1)?);
    let saved_y = if relu { Some(ctx.saved(2)?) } else { None };
    let needs = [ctx.needs(0), ctx.needs(1), ctx.needs(2)];
    let has_bias = ctx.num_inputs() == 3;
    let [dx, dw, db] =
        backend::for_device(g.device(), op)?.conv_backward(op, &geom, g, sx, sw, saved_y, needs)?;
    let mut grads = vec![dx, dw];
    if has_bias {
        grads.push(db);
    }
    Ok(grads)
}

/// The gradient rule of the transposed convolutions: `dx` is the forward convolution of
/// `dy`, `dW` the weight gradient of that convolution, the bias gradient the channel sums, all
/// computed by the device's backend.
fn conv_t_grad(op: &Op, ctx: &mut GradCtx<'_>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let geom = ctx.take_state::<Geom>()?;
    let op = op.name();
    let (sx, sw) = (ctx.saved(0)?, ctx.saved(1)?);
    let needs = [ctx.needs(0), ctx.needs(1), ctx.needs(2)];
    let has_bias = ctx.num_inputs() == 3;
    let [dx, dw, db] = backend::for_device(g.device(), op)?
        .conv_transpose_backward(op, &geom, g, sx, sw, needs)?;
    let mut grads = vec![dx, dw];
    if has_bias {
        grads.push(db);
    }
    Ok(grads)
}
