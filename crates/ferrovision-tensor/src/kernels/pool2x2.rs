//! Max pooling over 2×2 windows with stride 2 and no padding (LeNet's, VGG's and U-Net's pooling
//! layer): one pass that reads two input rows per output row, where the separable engine runs a
//! width pass, then a height pass through a scratch plane.
//!
//! Each window is scanned in row-major order, `(y, x)`, `(y, x+1)`, `(y+1, x)`, `(y+1, x+1)`, and
//! a candidate replaces the running maximum when it is larger or NaN: PyTorch's rule (the first
//! maximum wins a tie, the last NaN wins), and bit for bit what the separable engine computes,
//! values and indices (tested against it). The loops read the two rows with stride-2 loads that
//! the compiler turns into shuffles, compiled per ISA by [`crate::multiversion!`].

/// Geometry of one call: `planes` input planes of `h × w`, outputs `oh × ow` with
/// `2·oh ≤ h` and `2·ow ≤ w` (a floor-mode pool; odd trailing rows/columns are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2x2 {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// One candidate step of the window scan: `(v, i)` replaces `(m, mi)` when larger or NaN.
#[inline(always)]
fn step(m: &mut f32, mi: &mut i32, v: f32, i: i32) {
    let take = (v > *m) | v.is_nan();
    *m = if take { v } else { *m };
    *mi = if take { i } else { *mi };
}

/// Running NaN-propagating max without indices: `v` replaces `m` when larger or NaN (also the
/// separable engine's max).
#[inline(always)]
pub(crate) fn max_nan(m: f32, v: f32) -> f32 {
    if (v > m) | v.is_nan() {
        v
    } else {
        m
    }
}

#[inline(always)]
fn forward_body(x: &[f32], g: Pool2x2, out: &mut [f32], mut idx: Option<&mut [i32]>) {
    let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    for p in 0..g.planes {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        for oy in 0..g.oh {
            let top = 2 * oy * g.w;
            let r0 = &xp[top..top + 2 * g.ow];
            let r1 = &xp[top + g.w..top + g.w + 2 * g.ow];
            let o = p * out_plane + oy * g.ow;
            let orow = &mut out[o..o + g.ow];
            let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            match idx.as_deref_mut() {
                Some(idx) => {
                    let (base, below) = (top as i32, g.w as i32);
                    let irow = &mut idx[o..o + g.ow];
                    for (k, (((a, b), m), mi)) in
                        pairs.zip(orow.iter_mut()).zip(irow.iter_mut()).enumerate()
                    {
                        let i = base + 2 * k as i32;
                        let (mut v, mut vi) = (a[0], i);
                        step(&mut v, &mut vi, a[1], i + 1);
                        step(&mut v, &mut vi, b[0], i + below);
                        step(&mut v, &mut vi, b[1], i + below + 1);
                        *m = v;
                        *mi = vi;
                    }
                }
                None => {
                    for ((a, b), m) in pairs.zip(orow.iter_mut()) {
                        *m = max_nan(max_nan(max_nan(a[0], a[1]), b[0]), b[1]);
                    }
                }
            }
        }
    }
}

crate::multiversion! {
    /// Max over every 2×2 stride-2 window of `g.planes` planes of `x` into `out`
    /// (`g.planes · oh · ow` values); with `idx`, also each maximum's flat index in its input
    /// plane (`y · w + x`).
    pub fn max_pool_2x2(x: &[f32], g: Pool2x2, out: &mut [f32], idx: Option<&mut [i32]>) {
        forward_body(x, g, out, idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{set_isa_override, test_values, Isa, ISA_TEST_LOCK};

    /// The window scan written out plainly: the reference the kernel must equal bit for bit.
    fn reference(x: &[f32], g: Pool2x2) -> (Vec<f32>, Vec<i32>) {
        let mut out = Vec::new();
        let mut idx = Vec::new();
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (mut m, mut mi) = (f32::NAN, -1);
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let i = (2 * oy + dy) * g.w + 2 * ox + dx;
                        let v = x[p * g.h * g.w + i];
                        if mi < 0 || v > m || v.is_nan() {
                            m = v;
                            mi = i as i32;
                        }
                    }
                    out.push(m);
                    idx.push(mi);
                }
            }
        }
        (out, idx)
    }

    #[test]
    fn every_isa_equals_the_plain_scan_with_ties_and_nans() {
        let _lock = ISA_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for (planes, h, w) in [(3, 28, 28), (2, 7, 9), (5, 2, 2), (1, 24, 66), (4, 13, 34)] {
            let g = Pool2x2 {
                planes,
                h,
                w,
                oh: h / 2,
                ow: w / 2,
            };
            // Quantised values make ties common; a few NaNs test the NaN rule.
            let mut x: Vec<f32> = test_values(planes * h * w, (h * w) as u64)
                .iter()
                .map(|v| (v * 4.0).round())
                .collect();
            for i in (0..x.len()).step_by(29) {
                x[i] = f32::NAN;
            }
            let (want, want_idx) = reference(&x, g);
            for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
                set_isa_override(Some(isa));
                let n = planes * g.oh * g.ow;
                let (mut out, mut idx) = (vec![0.0; n], vec![0; n]);
                max_pool_2x2(&x, g, &mut out, Some(&mut idx));
                let mut plain = vec![0.0; n];
                max_pool_2x2(&x, g, &mut plain, None);
                set_isa_override(None);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&want), "{isa:?} {planes}x{h}x{w} values");
                assert_eq!(
                    bits(&plain),
                    bits(&want),
                    "{isa:?} {planes}x{h}x{w} untracked"
                );
                assert_eq!(idx, want_idx, "{isa:?} {planes}x{h}x{w} indices");
            }
        }
    }
}
