//! im2col / col2im for n-d convolutions (one channel plane at a time), with a specialised 2-d
//! path.
//!
//! For one input channel, `im2col` writes `prod(kernel)` rows of `prod(out)` values: row
//! `(k_0, .., k_{d-1})` (row-major), column `(o_0, .., o_{d-1})` holds
//! `x[o_i * stride_i + k_i * dilation_i - pad_i]`, or 0 where that falls in the padding. Rows are
//! `ld` apart in the destination, so several images can sit side by side in one column matrix
//! (image `j` at column offset `j * prod(out)`). `col2im` is its adjoint: it adds every column
//! value back onto the input position it was read from.

/// Window geometry of an n-d convolution over one channel plane.
///
/// `out` is given (not derived) so callers can crop or extend it; positions outside the input
/// read as 0 (im2col) and are dropped (col2im).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Input spatial sizes.
    pub input: Vec<usize>,
    /// Output spatial sizes.
    pub out: Vec<usize>,
    /// Kernel sizes.
    pub kernel: Vec<usize>,
    /// Strides (>= 1).
    pub stride: Vec<usize>,
    /// Padding before each dim (padding after only shapes `out`).
    pub pad: Vec<usize>,
    /// Dilations (>= 1).
    pub dilation: Vec<usize>,
}

impl Window {
    /// Number of spatial dims.
    pub fn rank(&self) -> usize {
        self.input.len()
    }
    /// Elements of one input plane.
    pub fn in_numel(&self) -> usize {
        self.input.iter().product()
    }
    /// Elements of one output plane (columns per image).
    pub fn out_numel(&self) -> usize {
        self.out.iter().product()
    }
    /// Kernel taps (rows per channel).
    pub fn kernel_numel(&self) -> usize {
        self.kernel.iter().product()
    }
}

/// Output positions `[lo, hi)` of one dim whose input index `o * stride + off` lies in
/// `0..input`.
#[inline]
fn valid_range(input: usize, out: usize, stride: usize, off: isize) -> (usize, usize) {
    let (i, s) = (input as isize, stride as isize);
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let hi = if i - 1 - off < 0 {
        0
    } else {
        (i - 1 - off) / s + 1
    };
    let hi = hi.clamp(0, out as isize);
    let lo = lo.min(hi);
    (lo as usize, hi as usize)
}

/// im2col of one channel plane `x` (`prod(input)` values) into `kernel_numel()` rows of
/// `out_numel()` values, `ld` apart, starting at `dst[0]`.
pub fn im2col(x: &[f32], w: &Window, dst: &mut [f32], ld: usize) {
    if w.rank() == 2 {
        im2col_2d(x, w, dst, ld)
    } else {
        im2col_nd(x, w, dst, ld)
    }
}

/// col2im of one channel plane: adds the `kernel_numel()` rows of `src` (`ld` apart) onto `dx`.
pub fn col2im(src: &[f32], ld: usize, w: &Window, dx: &mut [f32]) {
    if w.rank() == 2 {
        #[cfg(target_arch = "x86_64")]
        if super::isa() == super::Isa::Avx512 {
            // SAFETY: the CPU supports these features (checked by `isa`).
            unsafe { col2im_2d_avx512(src, ld, w, dx) };
            return;
        }
        col2im_2d(src, ld, w, dx)
    } else {
        col2im_nd(src, ld, w, dx)
    }
}

/// The 2-d im2col (any stride, padding, dilation).
pub fn im2col_2d(x: &[f32], w: &Window, dst: &mut [f32], ld: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::isa() == super::Isa::Avx512 {
        // SAFETY: the CPU supports these features (checked by `isa`).
        unsafe { im2col_2d_avx512(x, w, dst, ld) };
        return;
    }
    im2col_2d_body(x, w, dst, ld)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn im2col_2d_avx512(x: &[f32], w: &Window, dst: &mut [f32], ld: usize) {
    im2col_2d_body(x, w, dst, ld)
}

#[inline(always)]
fn im2col_2d_body(x: &[f32], w: &Window, dst: &mut [f32], ld: usize) {
    let (ih, iw) = (w.input[0], w.input[1]);
    let (oh, ow) = (w.out[0], w.out[1]);
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let (sh, sw) = (w.stride[0], w.stride[1]);
    let p = oh * ow;
    if p == 0 {
        return;
    }
    // Stride 1 with input rows as long as output rows: the valid part of a tap's row is one
    // shifted copy of the input, except for the padding columns at the row ends.
    let bulk = sh == 1 && sw == 1 && ow == iw;
    for ky in 0..kh {
        let offy = (ky * w.dilation[0]) as isize - w.pad[0] as isize;
        let (ylo, yhi) = valid_range(ih, oh, sh, offy);
        for kx in 0..kw {
            let offx = (kx * w.dilation[1]) as isize - w.pad[1] as isize;
            let (xlo, xhi) = valid_range(iw, ow, sw, offx);
            let row = &mut dst[(ky * kw + kx) * ld..][..p];
            row[..ylo * ow].fill(0.0);
            row[yhi * ow..].fill(0.0);
            if xlo == xhi || ylo == yhi {
                row[ylo * ow..yhi * ow].fill(0.0);
                continue;
            }
            let ix0 = ((xlo * sw) as isize + offx) as usize;
            if bulk {
                let (q0, q1) = (ylo * ow + xlo, (yhi - 1) * ow + xhi);
                let s0 = ((ylo as isize + offy) * iw as isize) as usize + ix0;
                row[q0..q1].copy_from_slice(&x[s0..s0 + (q1 - q0)]);
                row[ylo * ow..q0].fill(0.0);
                row[q1..yhi * ow].fill(0.0);
                if xlo > 0 || xhi < ow {
                    for oy in ylo..yhi {
                        let r = &mut row[oy * ow..][..ow];
                        r[..xlo].fill(0.0);
                        r[xhi..].fill(0.0);
                    }
                }
                continue;
            }
            let len = xhi - xlo;
            if sw == 2 {
                for oy in ylo..yhi {
                    let iy = ((oy * sh) as isize + offy) as usize;
                    let src = &x[iy * iw..][..iw];
                    let out = &mut row[oy * ow..][..ow];
                    out[..xlo].fill(0.0);
                    out[xhi..].fill(0.0);
                    let out = &mut out[xlo..xhi];
                    let src = &src[ix0..ix0 + 2 * len - 1];
                    // An indexed loop over an exact-length source vectorises (as permutes); the
                    // iterator form does not.
                    #[allow(clippy::needless_range_loop)]
                    for j in 0..len {
                        out[j] = src[2 * j];
                    }
                }
                continue;
            }
            for oy in ylo..yhi {
                let iy = ((oy * sh) as isize + offy) as usize;
                let src = &x[iy * iw..][..iw];
                let out = &mut row[oy * ow..][..ow];
                out[..xlo].fill(0.0);
                out[xhi..].fill(0.0);
                if sw == 1 {
                    out[xlo..xhi].copy_from_slice(&src[ix0..ix0 + len]);
                } else {
                    for (j, o) in out[xlo..xhi].iter_mut().enumerate() {
                        *o = src[ix0 + j * sw];
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn col2im_2d_body(src: &[f32], ld: usize, w: &Window, dx: &mut [f32]) {
    let (ih, iw) = (w.input[0], w.input[1]);
    let (oh, ow) = (w.out[0], w.out[1]);
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let (sh, sw) = (w.stride[0], w.stride[1]);
    let p = oh * ow;
    if p == 0 {
        return;
    }
    for ky in 0..kh {
        let offy = (ky * w.dilation[0]) as isize - w.pad[0] as isize;
        let (ylo, yhi) = valid_range(ih, oh, sh, offy);
        for kx in 0..kw {
            let offx = (kx * w.dilation[1]) as isize - w.pad[1] as isize;
            let (xlo, xhi) = valid_range(iw, ow, sw, offx);
            if xlo == xhi {
                continue;
            }
            let row = &src[(ky * kw + kx) * ld..][..p];
            let ix0 = ((xlo * sw) as isize + offx) as usize;
            let len = xhi - xlo;
            for oy in ylo..yhi {
                let iy = ((oy * sh) as isize + offy) as usize;
                let d = &mut dx[iy * iw..][..iw];
                let s = &row[oy * ow + xlo..][..len];
                if sw == 1 {
                    for (o, &v) in d[ix0..ix0 + len].iter_mut().zip(s) {
                        *o += v;
                    }
                } else {
                    for (j, &v) in s.iter().enumerate() {
                        d[ix0 + j * sw] += v;
                    }
                }
            }
        }
    }
}

/// The 2-d col2im (portable path).
pub fn col2im_2d(src: &[f32], ld: usize, w: &Window, dx: &mut [f32]) {
    col2im_2d_body(src, ld, w, dx)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn col2im_2d_avx512(src: &[f32], ld: usize, w: &Window, dx: &mut [f32]) {
    col2im_2d_body(src, ld, w, dx)
}

/// Per-dim data of one kernel tap: input offset of output position 0 and the valid range.
struct Tap {
    off: Vec<isize>,
    lo: Vec<usize>,
    hi: Vec<usize>,
}

fn tap(w: &Window, kidx: &[usize]) -> Tap {
    let d = w.rank();
    let mut t = Tap {
        off: vec![0; d],
        lo: vec![0; d],
        hi: vec![0; d],
    };
    for (i, &k) in kidx.iter().enumerate() {
        t.off[i] = (k * w.dilation[i]) as isize - w.pad[i] as isize;
        let (lo, hi) = valid_range(w.input[i], w.out[i], w.stride[i], t.off[i]);
        t.lo[i] = lo;
        t.hi[i] = hi;
    }
    t
}

/// Advances a row-major multi-index; false when it wrapped around.
fn next_index(idx: &mut [usize], shape: &[usize]) -> bool {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < shape[d] {
            return true;
        }
        idx[d] = 0;
    }
    false
}

/// Visits every output row (all dims but the last) of one kernel tap: `f(out_row_start,
/// Some(input_row_start))` where the row lies inside the input, `None` where it is padding.
fn for_each_row(w: &Window, t: &Tap, mut f: impl FnMut(usize, Option<usize>)) {
    let d = w.rank();
    let last = d - 1;
    let mut in_strides = vec![1usize; d];
    for i in (0..last).rev() {
        in_strides[i] = in_strides[i + 1] * w.input[i + 1];
    }
    let outer_shape = &w.out[..last];
    let outer: usize = outer_shape.iter().product();
    let row_len = w.out[last];
    let mut oidx = vec![0usize; last];
    for q in 0..outer {
        let mut base = Some(0usize);
        for i in 0..last {
            if oidx[i] < t.lo[i] || oidx[i] >= t.hi[i] {
                base = None;
                break;
            }
            let ii = ((oidx[i] * w.stride[i]) as isize + t.off[i]) as usize;
            base = base.map(|b| b + ii * in_strides[i]);
        }
        f(q * row_len, base);
        next_index(&mut oidx, outer_shape);
    }
}

/// The generic n-d im2col (any rank >= 1).
pub fn im2col_nd(x: &[f32], w: &Window, dst: &mut [f32], ld: usize) {
    let d = w.rank();
    let p = w.out_numel();
    if p == 0 {
        return;
    }
    let last = d - 1;
    let (ow, sw) = (w.out[last], w.stride[last]);
    let mut kidx = vec![0usize; d];
    for r in 0..w.kernel_numel() {
        let t = tap(w, &kidx);
        let (xlo, xhi) = (t.lo[last], t.hi[last]);
        let ix0 = ((xlo * sw) as isize + t.off[last]) as usize;
        let row = &mut dst[r * ld..][..p];
        for_each_row(w, &t, |o, base| {
            let out = &mut row[o..o + ow];
            match base {
                Some(b) if xlo < xhi => {
                    out[..xlo].fill(0.0);
                    out[xhi..].fill(0.0);
                    for (j, v) in out[xlo..xhi].iter_mut().enumerate() {
                        *v = x[b + ix0 + j * sw];
                    }
                }
                _ => out.fill(0.0),
            }
        });
        next_index(&mut kidx, &w.kernel);
    }
}

/// The generic n-d col2im (any rank >= 1).
pub fn col2im_nd(src: &[f32], ld: usize, w: &Window, dx: &mut [f32]) {
    let d = w.rank();
    let p = w.out_numel();
    if p == 0 {
        return;
    }
    let last = d - 1;
    let sw = w.stride[last];
    let mut kidx = vec![0usize; d];
    for r in 0..w.kernel_numel() {
        let t = tap(w, &kidx);
        let (xlo, xhi) = (t.lo[last], t.hi[last]);
        if xlo < xhi {
            let ix0 = ((xlo * sw) as isize + t.off[last]) as usize;
            let row = &src[r * ld..][..p];
            for_each_row(w, &t, |o, base| {
                if let Some(b) = base {
                    for (j, &v) in row[o + xlo..o + xhi].iter().enumerate() {
                        dx[b + ix0 + j * sw] += v;
                    }
                }
            });
        }
        next_index(&mut kidx, &w.kernel);
    }
}

/// im2col / col2im through a precomputed table of input offsets, one per (kernel tap, output
/// position). For small feature maps (short output rows) this beats the row-wise kernels, whose
/// cost is per row; the table is shared by every channel and image of a convolution.
#[derive(Debug, Clone)]
pub struct Gather {
    /// `kernel_numel() × out_numel()` input offsets, `u32::MAX` in the padding.
    offsets: Vec<u32>,
    p: usize,
    /// A 2-d window whose input and output rows fit one 16-lane vector: copied row by row
    /// with masked AVX-512 loads, lane permutes and stores instead of the table.
    short: Option<ShortRows>,
}

/// A short-row window with its per-`kx` lane maps (see [`lane_map`]) and their inverses.
#[derive(Debug, Clone)]
struct ShortRows {
    w: Window,
    fwd: Vec<([i32; 16], u16)>,
    inv: Vec<([i32; 16], u16)>,
}

impl ShortRows {
    fn new(w: &Window) -> ShortRows {
        let fwd: Vec<_> = (0..w.kernel[1]).map(|kx| lane_map(w, kx)).collect();
        // Input lane `ix0 + j * sw` takes output lane `xlo + j`.
        let inv = fwd
            .iter()
            .map(|(f, m)| {
                let mut inv = [0i32; 16];
                let mut im = 0u16;
                for l in 0..16 {
                    if m & (1 << l) != 0 {
                        inv[f[l] as usize] = l as i32;
                        im |= 1 << f[l];
                    }
                }
                (inv, im)
            })
            .collect();
        ShortRows {
            w: w.clone(),
            fwd,
            inv,
        }
    }
}

impl Gather {
    /// The table of a window, or `None` when an input plane is too large to index with `u32`.
    pub fn new(w: &Window) -> Option<Gather> {
        if w.in_numel() >= u32::MAX as usize {
            return None;
        }
        let d = w.rank();
        let p = w.out_numel();
        let mut offsets = Vec::with_capacity(w.kernel_numel() * p);
        let mut kidx = vec![0usize; d];
        for _ in 0..w.kernel_numel() {
            let mut oidx = vec![0usize; d];
            for _ in 0..p {
                let mut off = 0usize;
                let mut inside = true;
                for i in 0..d {
                    let pos = (oidx[i] * w.stride[i] + kidx[i] * w.dilation[i]) as isize
                        - w.pad[i] as isize;
                    if pos < 0 || pos >= w.input[i] as isize {
                        inside = false;
                        break;
                    }
                    off = off * w.input[i] + pos as usize;
                }
                offsets.push(if inside { off as u32 } else { u32::MAX });
                next_index(&mut oidx, &w.out);
            }
            next_index(&mut kidx, &w.kernel);
        }
        let short = (d == 2 && (1..=16).contains(&w.out[1]) && w.input[1] <= 16 && p > 0)
            .then(|| ShortRows::new(w));
        Some(Gather { offsets, p, short })
    }

    /// im2col of one channel plane (same layout as [`im2col`]).
    pub fn im2col(&self, x: &[f32], dst: &mut [f32], ld: usize) {
        if self.p == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(sr) = &self.short {
            let rows = self.offsets.len() / self.p;
            if super::isa() == super::Isa::Avx512
                && x.len() >= sr.w.in_numel()
                && dst.len() >= (rows - 1) * ld + self.p
            {
                // SAFETY: AVX-512 is available (checked by `isa`); lengths checked above.
                unsafe { im2col_short_rows_avx512(x, sr, dst, ld) };
                return;
            }
        }
        for (r, offs) in self.offsets.chunks_exact(self.p).enumerate() {
            for (o, &i) in dst[r * ld..][..self.p].iter_mut().zip(offs) {
                *o = x.get(i as usize).copied().unwrap_or(0.0);
            }
        }
    }

    /// col2im of one channel plane (same layout as [`col2im`]), adding onto `dx`.
    pub fn col2im(&self, src: &[f32], ld: usize, dx: &mut [f32]) {
        if self.p == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(sr) = &self.short {
            let rows = self.offsets.len() / self.p;
            if super::isa() == super::Isa::Avx512
                && dx.len() >= sr.w.in_numel()
                && src.len() >= (rows - 1) * ld + self.p
            {
                // SAFETY: AVX-512 is available (checked by `isa`); lengths checked above.
                unsafe { col2im_short_rows_avx512(src, ld, sr, dx) };
                return;
            }
        }
        for (r, offs) in self.offsets.chunks_exact(self.p).enumerate() {
            for (&v, &i) in src[r * ld..][..self.p].iter().zip(offs) {
                if let Some(d) = dx.get_mut(i as usize) {
                    *d += v;
                }
            }
        }
    }
}

/// The low `n` (<= 16) lanes.
#[inline(always)]
fn low_mask(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// Per-tap lane map of a short-row window: output lane `l` in `xlo..xhi` takes input lane
/// `ix0 + (l - xlo) * sw` of its input row; other lanes are padding (masked off).
fn lane_map(w: &Window, kx: usize) -> ([i32; 16], u16) {
    let (iw, ow, sw) = (w.input[1], w.out[1], w.stride[1]);
    let offx = (kx * w.dilation[1]) as isize - w.pad[1] as isize;
    let (xlo, xhi) = valid_range(iw, ow, sw, offx);
    let mut idx = [0i32; 16];
    let mut m = 0u16;
    for (l, slot) in idx.iter_mut().enumerate().take(xhi).skip(xlo) {
        *slot = ((l * sw) as isize + offx) as i32;
        m |= 1 << l;
    }
    (idx, m)
}

/// im2col of a 2-d window whose input and output rows are at most 16 wide: each output row of
/// a tap is one masked load of its input row, one lane permute and one masked store. Requires
/// `x.len() >= in_numel()` and `dst` holding `kernel_numel()` rows of `out_numel()` values `ld`
/// apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn im2col_short_rows_avx512(x: &[f32], sr: &ShortRows, dst: &mut [f32], ld: usize) {
    use std::arch::x86_64::*;
    let w = &sr.w;
    let (ih, iw) = (w.input[0], w.input[1]);
    let (oh, ow) = (w.out[0], w.out[1]);
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let sh = w.stride[0];
    let p = oh * ow;
    let (in_mask, row_mask) = (low_mask(iw), low_mask(ow));
    let zero = _mm512_setzero_ps();
    for ky in 0..kh {
        let offy = (ky * w.dilation[0]) as isize - w.pad[0] as isize;
        let (ylo, yhi) = valid_range(ih, oh, sh, offy);
        for kx in 0..kw {
            let (idx, m) = sr.fwd[kx];
            let row = &mut dst[(ky * kw + kx) * ld..][..p];
            // SAFETY: stores cover `row[oy * ow..][..ow]`; loads cover input row `iy < ih`
            // (`valid_range`), `iw` lanes, inside `x`.
            unsafe {
                let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
                for oy in 0..oh {
                    let out = row.as_mut_ptr().add(oy * ow);
                    if oy < ylo || oy >= yhi || m == 0 {
                        _mm512_mask_storeu_ps(out, row_mask, zero);
                        continue;
                    }
                    let iy = ((oy * sh) as isize + offy) as usize;
                    let v = _mm512_maskz_loadu_ps(in_mask, x.as_ptr().add(iy * iw));
                    _mm512_mask_storeu_ps(out, row_mask, _mm512_maskz_permutexvar_ps(m, idx, v));
                }
            }
        }
    }
}

/// col2im (adding onto `dx`) of the windows [`im2col_short_rows_avx512`] handles, one input row
/// at a time in a register: every tap's contribution is permuted into place and added, then the
/// row is stored once. Requires `dx.len() >= in_numel()` and `src` holding `kernel_numel()` rows
/// of `out_numel()` values `ld` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
unsafe fn col2im_short_rows_avx512(src: &[f32], ld: usize, sr: &ShortRows, dx: &mut [f32]) {
    use std::arch::x86_64::*;
    let w = &sr.w;
    let (ih, iw) = (w.input[0], w.input[1]);
    let (oh, ow) = (w.out[0], w.out[1]);
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let sh = w.stride[0];
    let p = oh * ow;
    let (in_mask, row_mask) = (low_mask(iw), low_mask(ow));
    for iy in 0..ih {
        // SAFETY: loads cover `src` row `r` at `oy * ow`, `ow` lanes, with `oy < oh`; the
        // load and store of `dx` cover input row `iy < ih`, `iw` lanes.
        unsafe {
            let d = dx.as_mut_ptr().add(iy * iw);
            let mut acc = _mm512_maskz_loadu_ps(in_mask, d);
            for ky in 0..kh {
                let offy = (ky * w.dilation[0]) as isize - w.pad[0] as isize;
                let t = iy as isize - offy;
                if t < 0 || t % sh as isize != 0 || (t / sh as isize) as usize >= oh {
                    continue;
                }
                let oy = (t / sh as isize) as usize;
                for (kx, (inv, im)) in sr.inv.iter().enumerate() {
                    if *im == 0 {
                        continue;
                    }
                    let row = &src[(ky * kw + kx) * ld..][..p];
                    let s = _mm512_maskz_loadu_ps(row_mask, row.as_ptr().add(oy * ow));
                    let idx = _mm512_loadu_si512(inv.as_ptr() as *const _);
                    acc = _mm512_mask_add_ps(acc, *im, acc, _mm512_permutexvar_ps(idx, s));
                }
            }
            _mm512_mask_storeu_ps(d, in_mask, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win2(
        input: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
    ) -> Window {
        let out = (0..2)
            .map(|i| (input[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1)
            .collect();
        Window {
            input: input.to_vec(),
            out,
            kernel: k.to_vec(),
            stride: s.to_vec(),
            pad: p.to_vec(),
            dilation: d.to_vec(),
        }
    }

    /// Direct definition of im2col, for comparison.
    fn reference(x: &[f32], w: &Window) -> Vec<f32> {
        let p = w.out_numel();
        let mut out = vec![0.0; w.kernel_numel() * p];
        let mut kidx = vec![0; w.rank()];
        for r in 0..w.kernel_numel() {
            let mut oidx = vec![0; w.rank()];
            for c in 0..p {
                let mut off = 0usize;
                let mut inside = true;
                for i in 0..w.rank() {
                    let ii = (oidx[i] * w.stride[i] + kidx[i] * w.dilation[i]) as isize
                        - w.pad[i] as isize;
                    if ii < 0 || ii >= w.input[i] as isize {
                        inside = false;
                    }
                    off = off * w.input[i] + ii.max(0) as usize;
                }
                out[r * p + c] = if inside { x[off] } else { 0.0 };
                next_index(&mut oidx, &w.out);
            }
            next_index(&mut kidx, &w.kernel);
        }
        out
    }

    fn data(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32) - 50.0).collect()
    }

    #[test]
    fn im2col_2d_and_nd_match_reference() {
        for w in [
            win2([5, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
            win2([7, 5], [3, 2], [2, 3], [2, 0], [1, 2]),
            win2([4, 4], [1, 1], [1, 1], [0, 0], [1, 1]),
            win2([3, 3], [3, 3], [1, 1], [3, 3], [2, 2]),
            win2([8, 9], [3, 3], [2, 2], [1, 1], [1, 1]),
            win2([6, 6], [3, 3], [1, 1], [2, 2], [2, 2]),
            win2([9, 7], [2, 4], [2, 1], [0, 2], [1, 1]),
        ] {
            let x = data(w.in_numel());
            let want = reference(&x, &w);
            let p = w.out_numel();
            // Put the image at column offset 2 of a wider matrix to exercise `ld`.
            let ld = p + 3;
            type Im2col = fn(&[f32], &Window, &mut [f32], usize);
            let body: Im2col = |x, w, d, ld| im2col_2d_body(x, w, d, ld);
            let gathered: Im2col = |x, w, d, ld| Gather::new(w).unwrap().im2col(x, d, ld);
            for f in [im2col_2d, im2col_nd, body, gathered] {
                let mut dst = vec![f32::NAN; w.kernel_numel() * ld];
                f(&x, &w, &mut dst[2..], ld);
                for r in 0..w.kernel_numel() {
                    assert_eq!(&dst[r * ld + 2..r * ld + 2 + p], &want[r * p..(r + 1) * p]);
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint() {
        // <im2col(x), c> == <x, col2im(c)> for every x and c.
        let w3 = Window {
            input: vec![4, 5, 3],
            out: vec![3, 2, 2],
            kernel: vec![2, 3, 2],
            stride: vec![1, 2, 1],
            pad: vec![1, 1, 0],
            dilation: vec![1, 1, 2],
        };
        for w in [
            win2([7, 5], [3, 2], [2, 3], [2, 0], [1, 2]),
            win2([6, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
            win2([6, 6], [3, 3], [1, 1], [2, 2], [2, 2]),
            win2([5, 7], [2, 4], [1, 1], [0, 2], [1, 1]),
            win2([9, 16], [3, 3], [2, 2], [1, 1], [1, 1]),
            win2([4, 4], [1, 1], [2, 2], [0, 0], [1, 1]),
            win2([12, 12], [5, 5], [1, 1], [0, 0], [1, 1]),
            w3,
        ] {
            let x = data(w.in_numel());
            let n = w.kernel_numel() * w.out_numel();
            let c: Vec<f32> = (0..n).map(|i| ((i * 13 % 17) as f32) - 8.0).collect();
            let mut col = vec![0.0; n];
            im2col(&x, &w, &mut col, w.out_numel());
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            type Col2im = fn(&[f32], usize, &Window, &mut [f32]);
            let gathered: Col2im = |s, ld, w, dx| Gather::new(w).unwrap().col2im(s, ld, dx);
            let mut fns: Vec<Col2im> = vec![col2im_nd, col2im, gathered];
            if w.rank() == 2 {
                fns.push(col2im_2d);
            }
            for f in fns {
                let mut dx = vec![0.0; w.in_numel()];
                f(&c, w.out_numel(), &w, &mut dx);
                let rhs: f64 = dx.iter().zip(&x).map(|(a, b)| (a * b) as f64).sum();
                assert_eq!(lhs, rhs);
            }
        }
    }
}
