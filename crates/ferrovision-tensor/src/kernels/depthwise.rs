//! Direct 2-d depthwise convolution kernels, one channel plane at a time: forward, gradient of
//! the input and gradient of the filter. Loops run over contiguous output rows so that stride-1
//! windows vectorise.

/// Geometry of one 2-d plane (input `ih×iw`, output `oh×ow`, kernel `kh×kw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    pub ih: usize,
    pub iw: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// Padding before (top, left).
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
}

/// Output positions `[lo, hi)` whose input index `o * stride + off` lies in `0..input`.
#[inline(always)]
fn valid_range(input: usize, out: usize, stride: usize, off: isize) -> (usize, usize) {
    let (i, s) = (input as isize, stride as isize);
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let hi = if i - 1 - off < 0 {
        0
    } else {
        (i - 1 - off) / s + 1
    };
    let hi = hi.clamp(0, out as isize);
    (lo.min(hi) as usize, hi as usize)
}

/// Calls `f(oy, iy, kx_tap_index, xlo, xhi, ix0)` for every (output row, kernel tap) pair that
/// touches the input.
#[inline(always)]
fn for_each_tap(g: &Plane, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
    for ky in 0..g.kh {
        let offy = (ky * g.dh) as isize - g.ph as isize;
        let (ylo, yhi) = valid_range(g.ih, g.oh, g.sh, offy);
        for kx in 0..g.kw {
            let offx = (kx * g.dw) as isize - g.pw as isize;
            let (xlo, xhi) = valid_range(g.iw, g.ow, g.sw, offx);
            if xlo == xhi {
                continue;
            }
            let ix0 = ((xlo * g.sw) as isize + offx) as usize;
            for oy in ylo..yhi {
                let iy = ((oy * g.sh) as isize + offy) as usize;
                f(oy, iy, ky * g.kw + kx, xlo, xhi, ix0);
            }
        }
    }
}

#[inline(always)]
fn forward_body(x: &[f32], w: &[f32], bias: f32, relu: bool, g: &Plane, out: &mut [f32]) {
    let out = &mut out[..g.oh * g.ow];
    out.fill(bias);
    let sw = g.sw;
    for_each_tap(g, |oy, iy, t, xlo, xhi, ix0| {
        let wv = w[t];
        let src = &x[iy * g.iw..][..g.iw];
        let dst = &mut out[oy * g.ow + xlo..oy * g.ow + xhi];
        if sw == 1 {
            for (o, &v) in dst.iter_mut().zip(&src[ix0..ix0 + (xhi - xlo)]) {
                *o += wv * v;
            }
        } else {
            for (j, o) in dst.iter_mut().enumerate() {
                *o += wv * src[ix0 + j * sw];
            }
        }
    });
    if relu {
        for o in out.iter_mut() {
            *o = o.max(0.0);
        }
    }
}

#[inline(always)]
fn backward_data_body(gout: &[f32], w: &[f32], g: &Plane, dx: &mut [f32]) {
    let sw = g.sw;
    for_each_tap(g, |oy, iy, t, xlo, xhi, ix0| {
        let wv = w[t];
        let src = &gout[oy * g.ow + xlo..oy * g.ow + xhi];
        let dst = &mut dx[iy * g.iw..][..g.iw];
        if sw == 1 {
            for (o, &v) in dst[ix0..ix0 + (xhi - xlo)].iter_mut().zip(src) {
                *o += wv * v;
            }
        } else {
            for (j, &v) in src.iter().enumerate() {
                dst[ix0 + j * sw] += wv * v;
            }
        }
    });
}

#[inline(always)]
fn backward_weight_body(gout: &[f32], x: &[f32], g: &Plane, dw: &mut [f32]) {
    let sw = g.sw;
    for_each_tap(g, |oy, iy, t, xlo, xhi, ix0| {
        let go = &gout[oy * g.ow + xlo..oy * g.ow + xhi];
        let src = &x[iy * g.iw..][..g.iw];
        let mut acc = [0.0f32; 8];
        if sw == 1 {
            let s = &src[ix0..ix0 + go.len()];
            let mut a = go.chunks_exact(8);
            let mut b = s.chunks_exact(8);
            for (ca, cb) in (&mut a).zip(&mut b) {
                for i in 0..8 {
                    acc[i] += ca[i] * cb[i];
                }
            }
            for (&p, &q) in a.remainder().iter().zip(b.remainder()) {
                acc[0] += p * q;
            }
        } else {
            for (j, &v) in go.iter().enumerate() {
                acc[j & 7] += v * src[ix0 + j * sw];
            }
        }
        dw[t] += acc.iter().sum::<f32>();
    });
}

macro_rules! dispatch {
    ($body:ident, $avx:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
        unsafe fn $avx($($arg: $ty),*) {
            $body($($arg),*)
        }
    };
}

dispatch!(forward_body, forward_avx512, (x: &[f32], w: &[f32], bias: f32, relu: bool, g: &Plane, out: &mut [f32]));
dispatch!(backward_data_body, backward_data_avx512, (gout: &[f32], w: &[f32], g: &Plane, dx: &mut [f32]));
dispatch!(backward_weight_body, backward_weight_avx512, (gout: &[f32], x: &[f32], g: &Plane, dw: &mut [f32]));

#[inline]
fn use_avx512() -> bool {
    cfg!(target_arch = "x86_64") && super::isa() == super::Isa::Avx512
}

/// `out[oy, ox] = act(bias + sum_{ky,kx} w[ky, kx] * x[oy*sh + ky*dh - ph, ox*sw + kx*dw - pw])`
/// over one plane (`w` has `kh*kw` taps; positions in the padding read as 0).
pub fn forward(x: &[f32], w: &[f32], bias: f32, relu: bool, g: &Plane, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: the CPU supports these features (checked by `isa`).
        return unsafe { forward_avx512(x, w, bias, relu, g, out) };
    }
    forward_body(x, w, bias, relu, g, out)
}

/// Adds the input gradient of one plane, given the output gradient `gout`, onto `dx`.
pub fn backward_data(gout: &[f32], w: &[f32], g: &Plane, dx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: the CPU supports these features (checked by `isa`).
        return unsafe { backward_data_avx512(gout, w, g, dx) };
    }
    backward_data_body(gout, w, g, dx)
}

/// Adds the filter gradient (`kh*kw` taps) of one plane onto `dw`.
pub fn backward_weight(gout: &[f32], x: &[f32], g: &Plane, dw: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: the CPU supports these features (checked by `isa`).
        return unsafe { backward_weight_avx512(gout, x, g, dw) };
    }
    backward_weight_body(gout, x, g, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_matches_definition_and_simd_matches_scalar() {
        let g = Plane {
            ih: 6,
            iw: 7,
            oh: 3,
            ow: 4,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 1,
            dh: 1,
            dw: 2,
        };
        let x: Vec<f32> = (0..42).map(|i| (i % 9) as f32 - 4.0).collect();
        let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let mut want = vec![0.0; 12];
        for oy in 0..3 {
            for ox in 0..4 {
                let mut s = 0.25f32;
                for ky in 0..3 {
                    for kx in 0..2 {
                        let iy = (oy * 2 + ky) as isize - 1;
                        let ix = (ox * 2 + kx * 2) as isize - 1;
                        if (0..6).contains(&iy) && (0..7).contains(&ix) {
                            s += w[ky * 2 + kx] * x[iy as usize * 7 + ix as usize];
                        }
                    }
                }
                want[oy * 4 + ox] = s;
            }
        }
        let mut a = vec![0.0; 12];
        forward(&x, &w, 0.25, false, &g, &mut a);
        let mut b = vec![0.0; 12];
        forward_body(&x, &w, 0.25, false, &g, &mut b);
        assert_eq!(a, want);
        assert_eq!(b, want);
    }
}
