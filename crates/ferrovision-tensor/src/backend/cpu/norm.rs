//! CPU normalisation kernels behind [`Backend::norm`](super::super::Backend::norm) and
//! `norm_backward`: batch norm (training and inference, running statistics updated in place),
//! layer norm, group norm and instance norm, each one fused forward and one fused backward pass
//! (PyTorch semantics: biased variance for normalising, `1/sqrt(var + eps)`).
//!
//! All kernels work on "segments": contiguous runs of one channel of one sample (batch, group
//! and instance norm, `[N, C, S]` with `S` = the product of the spatial dims) or one row (layer
//! norm). Per-segment partial sums are computed in parallel (16 f32 lanes flushed into f64),
//! combined per channel or group in f64, and the elementwise passes run in parallel over
//! segments. The op file (`ops/norm.rs`) validates, densifies the input, records and saves.

use crate::autograd::Op;
use crate::ops::axis::{sum1_f64, sum2_f64, sum_f64};
use crate::parallel::prelude::*;
use crate::storage::pool;
use crate::{Result, Tensor};

/// The statistics a normalisation's forward computes and its backward reuses (with the read
/// affine weight and which affine parameters exist).
pub enum NormStats {
    /// Group and instance norm: per (sample, group).
    Group(GroupStats),
    /// Batch norm: per channel.
    Channel(ChannelStats),
    /// Layer norm: per row.
    Row(RowStats),
}

impl NormStats {
    /// Whether the op had an affine `(weight, bias)`.
    pub(crate) fn affine(&self) -> (bool, bool) {
        match self {
            NormStats::Group(s) => (s.has_w, s.has_b),
            NormStats::Channel(s) => (s.has_w, s.has_b),
            NormStats::Row(s) => (s.has_w, s.has_b),
        }
    }
}

/// Reads an optional f32 affine parameter (validated by the op method).
fn param(t: Option<&Tensor>) -> Result<Option<Vec<f32>>> {
    t.map(|t| t.to_vec::<f32>()).transpose()
}

/// `[N, C, S]` of a (validated) `[N, C, ...]` tensor.
fn ncs(x: &Tensor) -> (usize, usize, usize) {
    let sh = x.shape();
    (sh[0], sh[1], sh[2..].iter().product())
}

/// The forward of a normalisation `op` of the dense, validated `x`: the output and the
/// statistics its backward reuses. `running` are batch norm's `[mean, var]`.
pub(super) fn forward(
    op: &Op,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running: Option<[&Tensor; 2]>,
) -> Result<(Tensor, NormStats)> {
    match *op {
        Op::BatchNorm {
            training,
            momentum,
            eps,
            keras,
        } => {
            let Some([rm, rv]) = running else {
                return Err(super::not_in_family(
                    op,
                    "batch norm with running statistics",
                ));
            };
            let update = training.then_some(RunningUpdate { momentum, keras });
            batch_norm(x, rm, rv, weight, bias, update, eps)
        }
        Op::LayerNorm {
            ref normalized_shape,
            eps,
        } => layer_norm(x, normalized_shape, weight, bias, eps),
        Op::GroupNorm { groups, eps } => group_norm(op.name(), x, groups, weight, bias, eps),
        Op::InstanceNorm { eps } => {
            let groups = ncs(x).1.max(1);
            group_norm(op.name(), x, groups, weight, bias, eps)
        }
        _ => Err(super::not_in_family(op, "normalisation")),
    }
}

/// The gradients `[dx, dweight, dbias]` of a normalisation for the dense output gradient `g`
/// (`dx` only where `need_dx`, the others where the op had them).
pub(super) fn backward(
    op: &Op,
    x: &Tensor,
    stats: NormStats,
    g: &Tensor,
    need_dx: bool,
) -> Result<[Option<Tensor>; 3]> {
    match (op, stats) {
        (Op::BatchNorm { training, .. }, NormStats::Channel(st)) => {
            batch_norm_grad(*training, x, st, g, need_dx)
        }
        (
            Op::LayerNorm {
                normalized_shape, ..
            },
            NormStats::Row(st),
        ) => layer_norm_grad(normalized_shape, x, st, g, need_dx),
        (Op::GroupNorm { .. } | Op::InstanceNorm { .. }, NormStats::Group(st)) => {
            group_norm_grad(op.name(), x, st, g, need_dx)
        }
        _ => Err(super::not_in_family(op, "normalisation")),
    }
}

/// Below this many elements, kernels stay on one thread.
const PAR_MIN: usize = 1 << 15;
/// Elements per rayon task, roughly.
const PAR_GRAIN: usize = 1 << 14;

/// `f(i)` for every segment `i < count` (each `seg_len` elements of work), in parallel when the
/// total is worth it. Results are in segment order, so sums over them are deterministic.
fn map_segs<T: Send>(count: usize, seg_len: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if count > 1 && count * seg_len >= PAR_MIN && crate::parallel::num_threads() > 1 {
        (0..count)
            .into_par_iter()
            .with_min_len((PAR_GRAIN / seg_len.max(1)).max(1))
            .map(f)
            .collect()
    } else {
        (0..count).map(f).collect()
    }
}

/// Runs `f(i, segment)` over the consecutive `seg_len`-long segments of `out`, in parallel when
/// worth it.
fn apply_segs(out: &mut [f32], seg_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if seg_len == 0 || out.is_empty() {
        return;
    }
    if out.len() >= PAR_MIN && out.len() > seg_len && crate::parallel::num_threads() > 1 {
        out.par_chunks_mut(seg_len)
            .with_min_len((PAR_GRAIN / seg_len).max(1))
            .enumerate()
            .for_each(|(i, s)| f(i, s));
    } else {
        out.chunks_mut(seg_len)
            .enumerate()
            .for_each(|(i, s)| f(i, s));
    }
}

/// Per-(sample, group) mean and inverse std of a group norm, with its affine weight.
pub struct GroupStats {
    stats: Vec<(f32, f32)>,
    w: Option<Vec<f32>>,
    groups: usize,
    has_w: bool,
    has_b: bool,
}

/// Per-channel mean and inverse std of a batch norm, with its affine weight.
pub struct ChannelStats {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    w: Option<Vec<f32>>,
    has_w: bool,
    has_b: bool,
}

/// Per-row mean and inverse std of a layer norm, with its affine weight.
pub struct RowStats {
    stats: Vec<(f32, f32)>,
    w: Option<Vec<f32>>,
    has_w: bool,
    has_b: bool,
}

/// Below this many values per (sample, channel), batch norm works on whole rows (one sample,
/// `C · S` values) with per-position coefficient vectors instead of per-segment loops.
const SHORT_SEG: usize = 32;

/// `Σ_rows body(row, acc)`: each row adds into a `width`-long f32 accumulator. Chunks of at
/// most 256 rows run in parallel when worth it and are combined in f64, in order.
fn column_sums(
    rows: usize,
    width: usize,
    work_per_row: usize,
    body: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f64> {
    let per = (PAR_GRAIN / work_per_row.max(1)).clamp(1, 256);
    let chunks = rows.div_ceil(per);
    let run = |j: usize| -> Vec<f32> {
        let mut acc = vec![0.0f32; width];
        for r in j * per..((j + 1) * per).min(rows) {
            body(r, &mut acc);
        }
        acc
    };
    let parts: Vec<Vec<f32>> =
        if rows * work_per_row >= PAR_MIN && chunks > 1 && crate::parallel::num_threads() > 1 {
            (0..chunks).into_par_iter().map(run).collect()
        } else {
            (0..chunks).map(run).collect()
        };
    let mut out = vec![0.0f64; width];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v as f64;
        }
    }
    out
}

/// Sums each run of `s` consecutive values: `[c · s]` → `[c]`.
fn fold_channels(v: &[f64], s: usize) -> Vec<f64> {
    v.chunks(s.max(1)).map(|ch| ch.iter().sum()).collect()
}

/// Repeats each per-channel value `s` times: `[c]` → `[c · s]`.
fn expand_channels<T: Copy>(v: &[T], s: usize) -> Vec<T> {
    v.iter().flat_map(|&x| std::iter::repeat_n(x, s)).collect()
}

/// Per-channel mean and biased variance of `[n, c, s]` data, in f64.
fn channel_stats(xs: &[f32], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let m = (n * s) as f64;
    let mut mean = vec![0.0f64; c];
    let mut var = vec![0.0f64; c];
    if s >= SHORT_SEG {
        // One read of memory: per-segment mean and squared deviations (the segment is in cache
        // for the second loop), merged per channel with Chan's parallel-variance formula.
        let segs = map_segs(n * c, s, |i| {
            let seg = &xs[i * s..][..s];
            let mu = sum_f64(seg) / s as f64;
            let a = mu as f32;
            let m2 = sum1_f64(seg, |v| (v - a) * (v - a)) - s as f64 * (mu - a as f64).powi(2);
            (mu, m2.max(0.0))
        });
        let mut count = vec![0.0f64; c];
        for (i, &(mu, m2)) in segs.iter().enumerate() {
            let ch = i % c;
            let nb = s as f64;
            let na = count[ch];
            let tot = na + nb;
            let delta = mu - mean[ch];
            mean[ch] += delta * nb / tot;
            var[ch] += m2 + delta * delta * na * nb / tot;
            count[ch] = tot;
        }
    } else {
        // Short segments: two passes over whole rows with per-position accumulators.
        let len = c * s;
        let sums = column_sums(n, len, len, |r, acc| {
            for (a, &x) in acc.iter_mut().zip(&xs[r * len..][..len]) {
                *a += x;
            }
        });
        mean = fold_channels(&sums, s).into_iter().map(|v| v / m).collect();
        let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
        let me = expand_channels(&mean32, s);
        let devs = column_sums(n, len, len, |r, acc| {
            for ((a, &x), &mu) in acc.iter_mut().zip(&xs[r * len..][..len]).zip(&me) {
                *a += (x - mu) * (x - mu);
            }
        });
        var = fold_channels(&devs, s);
        // Correct for rounding the mean to f32 before taking deviations.
        for ch in 0..c {
            let d = mean[ch] - mean32[ch] as f64;
            var[ch] -= m * d * d;
        }
    }
    for v in var.iter_mut() {
        *v = (*v / m).max(0.0);
    }
    (mean, var)
}

/// Per-channel `(Σ dy, Σ dy·(x − mean)·invstd)` of `[n, c, s]` data.
fn channel_grad_sums(
    xs: &[f32],
    gs: &[f32],
    (n, c, s): (usize, usize, usize),
    mean: &[f32],
    invstd: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    if s >= SHORT_SEG {
        let sums = seg_grad_sums(xs, gs, n * c, s, |i| (mean[i % c], invstd[i % c]));
        return sum_over_batch(&sums, c);
    }
    let len = c * s;
    let me = expand_channels(mean, s);
    let acc = column_sums(n, 2 * len, 2 * len, |r, acc| {
        let (ady, adx) = acc.split_at_mut(len);
        let x = &xs[r * len..][..len];
        let g = &gs[r * len..][..len];
        for ((((a, b), &xv), &gv), &mu) in ady.iter_mut().zip(adx).zip(x).zip(g).zip(&me) {
            *a += gv;
            *b += gv * (xv - mu);
        }
    });
    let (ady, adx) = acc.split_at(len);
    let sdy = fold_channels(ady, s)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let sdyx = fold_channels(adx, s)
        .into_iter()
        .zip(invstd)
        .map(|(v, &k)| (v * k as f64) as f32)
        .collect();
    (sdy, sdyx)
}

/// `out = f(x, g, coef[channel])` over `[n, c, s]` data (`g` is `x` when absent), per segment
/// for long segments and per row with expanded coefficients for short ones.
fn channel_map(
    xs: &[f32],
    gs: Option<&[f32]>,
    (_n, c, s): (usize, usize, usize),
    coef: &[[f32; 4]],
    f: impl Fn(f32, f32, &[f32; 4]) -> f32 + Sync + Send,
) -> Vec<f32> {
    let gs = gs.unwrap_or(xs);
    let mut out = pool::take_uninit(xs.len());
    if s >= SHORT_SEG {
        apply_segs(&mut out, s, |i, o| {
            let k = &coef[i % c];
            let x = &xs[i * s..][..s];
            let g = &gs[i * s..][..s];
            for ((o, &xv), &gv) in o.iter_mut().zip(x).zip(g) {
                *o = f(xv, gv, k);
            }
        });
    } else {
        let len = c * s;
        let ce = expand_channels(coef, s);
        apply_segs(&mut out, len, |r, o| {
            let x = &xs[r * len..][..len];
            let g = &gs[r * len..][..len];
            for (((o, &xv), &gv), k) in o.iter_mut().zip(x).zip(g).zip(&ce) {
                *o = f(xv, gv, k);
            }
        });
    }
    out
}

/// Per-(sample, channel) `(Σ dy, Σ dy·(x − mean)·invstd)` over `[n, c, s]` segments, where
/// `stat(i)` gives the `(mean, invstd)` that applies to segment `i`.
fn seg_grad_sums(
    xs: &[f32],
    gs: &[f32],
    count: usize,
    s: usize,
    stat: impl Fn(usize) -> (f32, f32) + Sync + Send,
) -> Vec<(f64, f64)> {
    map_segs(count, s, |i| {
        let (mu, inv) = stat(i);
        let x = &xs[i * s..][..s];
        let g = &gs[i * s..][..s];
        let sdy = sum_f64(g);
        let sdyx = sum2_f64(g, x, |g, x| g * (x - mu)) * inv as f64;
        (sdy, sdyx)
    })
}

/// Mean and `1/sqrt(var + eps)` of each `len`-long row (two passes; the row is in cache).
fn row_stats(xs: &[f32], rows: usize, len: usize, eps: f32) -> Vec<(f32, f32)> {
    map_segs(rows, len, |r| {
        let row = &xs[r * len..][..len];
        if len == 0 {
            return (0.0, 1.0 / eps.sqrt());
        }
        let mu = sum_f64(row) / len as f64;
        let a = mu as f32;
        let m2 = sum1_f64(row, |v| (v - a) * (v - a)) - len as f64 * (mu - a as f64).powi(2);
        let var = (m2 / len as f64).max(0.0);
        (a, (1.0 / (var + eps as f64).sqrt()) as f32)
    })
}

/// Output `y = (x − mean)·scale + shift` per segment, with `(mean, scale, shift)` per segment.
fn affine_segments(
    xs: &[f32],
    s: usize,
    coef: impl Fn(usize) -> (f32, f32, f32) + Sync + Send,
) -> Vec<f32> {
    let mut out = pool::take_uninit(xs.len());
    apply_segs(&mut out, s, |i, o| {
        let (mu, scale, shift) = coef(i);
        for (y, &x) in o.iter_mut().zip(&xs[i * s..][..s]) {
            *y = (x - mu) * scale + shift;
        }
    });
    out
}

/// Sums per-(sample, channel) partials over samples: `v[n*c + ch]` → `out[ch]`.
fn sum_over_batch(v: &[(f64, f64)], c: usize) -> (Vec<f32>, Vec<f32>) {
    let mut a = vec![0.0f64; c];
    let mut b = vec![0.0f64; c];
    for (i, &(x, y)) in v.iter().enumerate() {
        a[i % c] += x;
        b[i % c] += y;
    }
    (
        a.into_iter().map(|v| v as f32).collect(),
        b.into_iter().map(|v| v as f32).collect(),
    )
}

/// Fused layer-norm backward: `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` with `g = dy·w` per row,
/// plus `(Σ_rows dy·x̂, Σ_rows dy)` for the affine parameters.
#[allow(clippy::type_complexity)]
fn layer_norm_backward(
    xs: &[f32],
    gs: &[f32],
    rows: usize,
    d: usize,
    stats: &[(f32, f32)],
    w: Option<&[f32]>,
    need_dx: bool,
) -> (Option<Vec<f32>>, (Vec<f32>, Vec<f32>)) {
    if rows == 0 || d == 0 {
        let dx = need_dx.then(|| pool::take_zeroed(xs.len()));
        return (dx, (vec![0.0; d], vec![0.0; d]));
    }
    // Rows per task: enough work per task, and f32 partial sums over at most 256 rows.
    let rows_per = (PAR_GRAIN / d).clamp(1, 256);
    let mut dx = pool::take_uninit(if need_dx { xs.len() } else { 0 });
    let chunk_body = |first: usize, nrows: usize, dxc: Option<&mut [f32]>| -> Vec<f32> {
        // partial[0..d] = Σ dy·x̂, partial[d..2d] = Σ dy
        let mut partial = vec![0.0f32; 2 * d];
        let mut dxc = dxc;
        for j in 0..nrows {
            let r = first + j;
            let (mu, inv) = stats[r];
            let xr = &xs[r * d..][..d];
            let gr = &gs[r * d..][..d];
            let (pw, pb) = partial.split_at_mut(d);
            for (((a, bb), &xv), &gv) in pw.iter_mut().zip(pb.iter_mut()).zip(xr).zip(gr) {
                *a += gv * (xv - mu) * inv;
                *bb += gv;
            }
            if let Some(dxc) = dxc.as_deref_mut() {
                let o = &mut dxc[j * d..][..d];
                let (ma, mb) = match w {
                    Some(w) => {
                        let mut a = 0.0f64;
                        let mut bb = 0.0f64;
                        for ((ch_x, ch_g), ch_w) in
                            xr.chunks(4096).zip(gr.chunks(4096)).zip(w.chunks(4096))
                        {
                            let mut la = [0.0f32; 16];
                            let mut lb = [0.0f32; 16];
                            let mut ix = ch_x.chunks_exact(16);
                            let mut ig = ch_g.chunks_exact(16);
                            let mut iw = ch_w.chunks_exact(16);
                            for ((vx, vg), vw) in (&mut ix).zip(&mut ig).zip(&mut iw) {
                                for l in 0..16 {
                                    let gw = vg[l] * vw[l];
                                    la[l] += gw;
                                    lb[l] += gw * (vx[l] - mu);
                                }
                            }
                            let (mut ta, mut tb) = (0.0f32, 0.0f32);
                            for l in 0..16 {
                                ta += la[l];
                                tb += lb[l];
                            }
                            for ((&xv, &gv), &wv) in ix
                                .remainder()
                                .iter()
                                .zip(ig.remainder())
                                .zip(iw.remainder())
                            {
                                ta += gv * wv;
                                tb += gv * wv * (xv - mu);
                            }
                            a += ta as f64;
                            bb += tb as f64;
                        }
                        (a, bb)
                    }
                    None => (sum_f64(gr), sum2_f64(gr, xr, |g, x| g * (x - mu))),
                };
                let a = (ma / d as f64) as f32;
                let bq = (mb * inv as f64 / d as f64) as f32 * inv;
                match w {
                    Some(w) => {
                        for (((o, &xv), &gv), &wv) in o.iter_mut().zip(xr).zip(gr).zip(w) {
                            *o = inv * (gv * wv - a - (xv - mu) * bq);
                        }
                    }
                    None => {
                        for ((o, &xv), &gv) in o.iter_mut().zip(xr).zip(gr) {
                            *o = inv * (gv - a - (xv - mu) * bq);
                        }
                    }
                }
            }
        }
        partial
    };
    let nchunks = rows.div_ceil(rows_per);
    let parallel = rows * d >= PAR_MIN && nchunks > 1 && crate::parallel::num_threads() > 1;
    let partials: Vec<Vec<f32>> = if need_dx {
        if parallel {
            dx.par_chunks_mut(rows_per * d)
                .enumerate()
                .map(|(j, o)| chunk_body(j * rows_per, o.len() / d, Some(o)))
                .collect()
        } else {
            dx.chunks_mut(rows_per * d)
                .enumerate()
                .map(|(j, o)| chunk_body(j * rows_per, o.len() / d, Some(o)))
                .collect()
        }
    } else {
        let body = |j: usize| chunk_body(j * rows_per, rows_per.min(rows - j * rows_per), None);
        if parallel {
            (0..nchunks).into_par_iter().map(body).collect()
        } else {
            (0..nchunks).map(body).collect()
        }
    };
    let mut acc = vec![0.0f64; 2 * d];
    for p in &partials {
        for (a, &v) in acc.iter_mut().zip(p) {
            *a += v as f64;
        }
    }
    let (dw, db) = acc.split_at(d);
    (
        need_dx.then_some(dx),
        (
            dw.iter().map(|&v| v as f32).collect(),
            db.iter().map(|&v| v as f32).collect(),
        ),
    )
}

/// Batch norm of `[N, C, ...]` with batch (`training`, updating the running statistics in
/// place) or running statistics.
#[allow(clippy::too_many_arguments)]
/// How training updates the running statistics ([`Op::BatchNorm`]).
#[derive(Clone, Copy)]
struct RunningUpdate {
    momentum: f32,
    keras: bool,
}

fn batch_norm(
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    update: Option<RunningUpdate>,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    const OP: &str = "batch_norm";
    let (n, c, s) = ncs(x);
    let w = param(weight)?;
    let b = param(bias)?;
    let m = n * s;
    let shape = x.shape().to_vec();
    let (mean, invstd): (Vec<f32>, Vec<f32>) = if let Some(update) = update {
        let (mu, var) = x.with_f32(OP, |xs| channel_stats(xs, n, c, s))?;
        let mom = update.momentum as f64;
        // (weight of the old value, weight of the batch's, factor on the biased variance)
        let (keep, take, var_factor) = if update.keras {
            (mom, 1.0 - mom, 1.0)
        } else {
            (1.0 - mom, mom, m as f64 / (m - 1) as f64)
        };
        running_mean.with_f32_mut(OP, |rm| {
            for (r, &v) in rm.iter_mut().zip(&mu) {
                *r = (keep * *r as f64 + take * v) as f32;
            }
        })?;
        running_var.with_f32_mut(OP, |rv| {
            for (r, &v) in rv.iter_mut().zip(&var) {
                *r = (keep * *r as f64 + take * v * var_factor) as f32;
            }
        })?;
        (
            mu.iter().map(|&v| v as f32).collect(),
            var.iter()
                .map(|&v| (1.0 / (v + eps as f64).sqrt()) as f32)
                .collect(),
        )
    } else {
        (
            running_mean.to_vec::<f32>()?,
            running_var
                .to_vec::<f32>()?
                .iter()
                .map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32)
                .collect(),
        )
    };
    let coef: Vec<[f32; 4]> = (0..c)
        .map(|ch| {
            let g = w.as_ref().map_or(1.0, |w| w[ch]);
            let sh = b.as_ref().map_or(0.0, |b| b[ch]);
            [mean[ch], g * invstd[ch], sh, 0.0]
        })
        .collect();
    let out = x.with_f32(OP, |xs| {
        channel_map(xs, None, (n, c, s), &coef, |x, _, k| {
            (x - k[0]) * k[1] + k[2]
        })
    })?;
    let out = Tensor::from_f32(out, &shape);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Ok((
        out,
        NormStats::Channel(ChannelStats {
            mean,
            invstd,
            w,
            has_w,
            has_b,
        }),
    ))
}

/// Layer norm over the trailing `normalized_shape` of `x`.
fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    const OP: &str = "layer_norm";
    let w = param(weight)?;
    let b = param(bias)?;
    let d: usize = normalized_shape.iter().product();
    let rows = x.numel().checked_div(d).unwrap_or(0);
    let shape = x.shape().to_vec();
    let stats = x.with_f32(OP, |xs| row_stats(xs, rows, d, eps))?;
    let mut out = pool::take_uninit(x.numel());
    x.with_f32(OP, |xs| {
        apply_segs(&mut out, d, |i, o| {
            let (mu, inv) = stats[i];
            let xr = &xs[i * d..][..d];
            match (&w, &b) {
                (Some(w), Some(b)) => {
                    for (((y, &xv), &wv), &bv) in o.iter_mut().zip(xr).zip(w).zip(b) {
                        *y = (xv - mu) * inv * wv + bv;
                    }
                }
                (Some(w), None) => {
                    for ((y, &xv), &wv) in o.iter_mut().zip(xr).zip(w) {
                        *y = (xv - mu) * inv * wv;
                    }
                }
                (None, Some(b)) => {
                    for ((y, &xv), &bv) in o.iter_mut().zip(xr).zip(b) {
                        *y = (xv - mu) * inv + bv;
                    }
                }
                (None, None) => {
                    for (y, &xv) in o.iter_mut().zip(xr) {
                        *y = (xv - mu) * inv;
                    }
                }
            }
        })
    })?;
    let out = Tensor::from_f32(out, &shape);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Ok((
        out,
        NormStats::Row(RowStats {
            stats,
            w,
            has_w,
            has_b,
        }),
    ))
}

/// Group-wise normalisation of `[N, C, S]` with `groups` groups of `C / groups` adjacent
/// channels and optional per-channel affine parameters (group and instance norm).
fn group_norm(
    op: &'static str,
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    let (n, c, s) = ncs(x);
    let w = param(weight)?;
    let b = param(bias)?;
    let cg = c / groups;
    let len = cg * s;
    let shape = x.shape().to_vec();
    let stats = x.with_f32(op, |xs| row_stats(xs, n * groups, len, eps))?;
    let out = x.with_f32(op, |xs| {
        affine_segments(xs, s, |i| {
            let ch = i % c;
            let (mu, inv) = stats[(i / c) * groups + ch / cg];
            let g = w.as_ref().map_or(1.0, |w| w[ch]);
            (mu, g * inv, b.as_ref().map_or(0.0, |b| b[ch]))
        })
    })?;
    let out = Tensor::from_f32(out, &shape);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Ok((
        out,
        NormStats::Group(GroupStats {
            stats,
            w,
            groups,
            has_w,
            has_b,
        }),
    ))
}

/// The gradients of `group_norm` / `instance_norm` from the dense input and per-(sample,
/// group) statistics.
fn group_norm_grad(
    op: &'static str,
    x: &Tensor,
    st: GroupStats,
    gd: &Tensor,
    need_dx: bool,
) -> Result<[Option<Tensor>; 3]> {
    let GroupStats {
        stats,
        w,
        groups,
        has_w,
        has_b,
    } = st;
    let shape = x.shape().to_vec();
    let (n, c) = (shape[0], shape[1]);
    let s: usize = shape[2..].iter().product();
    let cg = c / groups;
    let len = cg * s;
    let (dx, dw, db) = x.with_f32(op, |xs| {
        gd.with_f32(op, |gs| {
            let stat = |i: usize| stats[(i / c) * groups + (i % c) / cg];
            let sums = seg_grad_sums(xs, gs, n * c, s, stat);
            let dx = need_dx.then(|| {
                // Per (sample, group): A = mean(dy·γ), B = mean(dy·γ·x̂).
                let l = len.max(1) as f64;
                let ab: Vec<(f32, f32)> = (0..n * groups)
                    .map(|r| {
                        let (mut a, mut bb) = (0.0f64, 0.0f64);
                        for k in 0..cg {
                            let ch = (r % groups) * cg + k;
                            let gm = w.as_ref().map_or(1.0, |w| w[ch]) as f64;
                            let (sdy, sdyx) = sums[(r / groups) * c + ch];
                            a += gm * sdy;
                            bb += gm * sdyx;
                        }
                        ((a / l) as f32, (bb / l) as f32)
                    })
                    .collect();
                let mut dx = pool::take_uninit(xs.len());
                apply_segs(&mut dx, s, |i, o| {
                    let ch = i % c;
                    let r = (i / c) * groups + ch / cg;
                    let (mu, inv) = stats[r];
                    let (a, bb) = ab[r];
                    let gm = w.as_ref().map_or(1.0, |w| w[ch]);
                    let x = &xs[i * s..][..s];
                    let g = &gs[i * s..][..s];
                    for ((d, &xv), &gv) in o.iter_mut().zip(x).zip(g) {
                        *d = inv * (gv * gm - a - (xv - mu) * inv * bb);
                    }
                });
                Tensor::from_f32(dx, &shape)
            });
            let (sdy, sdyx) = sum_over_batch(&sums, c);
            let dw = has_w.then(|| Tensor::from_f32(sdyx, &[c]));
            let db = has_b.then(|| Tensor::from_f32(sdy, &[c]));
            (dx, dw, db)
        })
    })??;
    Ok([dx, dw, db])
}

/// The gradients of `batch_norm` from the dense input and per-channel statistics (batch
/// statistics in training, running ones in inference).
fn batch_norm_grad(
    training: bool,
    x: &Tensor,
    st: ChannelStats,
    gd: &Tensor,
    need_dx: bool,
) -> Result<[Option<Tensor>; 3]> {
    const OP: &str = "batch_norm";
    let ChannelStats {
        mean,
        invstd,
        w,
        has_w,
        has_b,
    } = st;
    let shape = x.shape().to_vec();
    let (n, c) = (shape[0], shape[1]);
    let s: usize = shape[2..].iter().product();
    let m = n * s;
    let (dx, dw, db) = x.with_f32(OP, |xs| {
        gd.with_f32(OP, |gs| {
            let (sdy, sdyx) = channel_grad_sums(xs, gs, (n, c, s), &mean, &invstd);
            let dx = need_dx.then(|| {
                // Training: dx = γσ⁻¹ (dy − Σdy/M − x̂ Σ(dy x̂)/M); inference: γσ⁻¹ dy.
                let mf = m as f32;
                let coef: Vec<[f32; 4]> = (0..c)
                    .map(|ch| {
                        let k = w.as_ref().map_or(1.0, |w| w[ch]) * invstd[ch];
                        if training {
                            [k, sdy[ch] / mf, sdyx[ch] * invstd[ch] / mf, mean[ch]]
                        } else {
                            [k, 0.0, 0.0, mean[ch]]
                        }
                    })
                    .collect();
                let dx = if training {
                    channel_map(xs, Some(gs), (n, c, s), &coef, |x, g, k| {
                        k[0] * (g - k[1] - (x - k[3]) * k[2])
                    })
                } else {
                    channel_map(xs, Some(gs), (n, c, s), &coef, |_, g, k| k[0] * g)
                };
                Tensor::from_f32(dx, &shape)
            });
            let dw = has_w.then(|| Tensor::from_f32(sdyx, &[c]));
            let db = has_b.then(|| Tensor::from_f32(sdy, &[c]));
            (dx, dw, db)
        })
    })??;
    Ok([dx, dw, db])
}

/// The gradients of `layer_norm` from the dense input and per-row statistics.
fn layer_norm_grad(
    nshape: &[usize],
    x: &Tensor,
    st: RowStats,
    gd: &Tensor,
    need_dx: bool,
) -> Result<[Option<Tensor>; 3]> {
    const OP: &str = "layer_norm";
    let RowStats {
        stats,
        w,
        has_w,
        has_b,
    } = st;
    let shape = x.shape().to_vec();
    let d: usize = nshape.iter().product();
    let rows = x.numel().checked_div(d).unwrap_or(0);
    let (dx, partials) = x.with_f32(OP, |xs| {
        gd.with_f32(OP, |gs| {
            layer_norm_backward(xs, gs, rows, d, &stats, w.as_deref(), need_dx)
        })
    })??;
    let dx = dx.map(|v| Tensor::from_f32(v, &shape));
    let dw = has_w.then(|| Tensor::from_f32(partials.0, nshape));
    let db = has_b.then(|| Tensor::from_f32(partials.1, nshape));
    Ok([dx, dw, db])
}
