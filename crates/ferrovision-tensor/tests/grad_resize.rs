//! Resize: hand-computed cases, comparison with a naive per-pixel reference of PyTorch's
//! formulas (values and gradients), finite-difference gradient checks, and argument errors.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::resize::ResizeMode;
use ferrovision_tensor::rng::Rng;
use ferrovision_tensor::{Result, Tensor};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    GradCheck::default().run(f, inputs).unwrap();
}

/// A one-input argument list for [`check`].
fn one(x: &Tensor) -> [Tensor; 1] {
    [x.clone()]
}

fn vals(x: &Tensor) -> Vec<f32> {
    x.to_vec::<f32>().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Naive reference: for every output pixel, PyTorch's source-index formulas (in f32) and the
// weighted sum over the 1, 2x2 or 4x4 input pixels it reads.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Mode {
    Nearest,
    Linear(bool),
    Cubic(bool),
}

/// (input index, weight) pairs that output `o` reads along one axis.
fn axis_taps(o: usize, len_in: usize, len_out: usize, mode: Mode) -> Vec<(usize, f32)> {
    if len_in == len_out {
        return vec![(o, 1.0)];
    }
    let scale = |align: bool| -> f32 {
        if align {
            if len_out > 1 {
                (len_in - 1) as f32 / (len_out - 1) as f32
            } else {
                0.0
            }
        } else {
            len_in as f32 / len_out as f32
        }
    };
    match mode {
        Mode::Nearest => {
            let s = len_in as f32 / len_out as f32;
            vec![(((o as f32 * s).floor() as usize).min(len_in - 1), 1.0)]
        }
        Mode::Linear(align) => {
            let sc = scale(align);
            let real = if align {
                sc * o as f32
            } else {
                (sc * (o as f32 + 0.5) - 0.5).max(0.0)
            };
            let i0 = (real.floor() as usize).min(len_in - 1);
            let i1 = (i0 + 1).min(len_in - 1);
            let l1 = real - i0 as f32;
            vec![(i0, 1.0 - l1), (i1, l1)]
        }
        Mode::Cubic(align) => {
            let sc = scale(align);
            let real = if align {
                sc * o as f32
            } else {
                sc * (o as f32 + 0.5) - 0.5
            };
            let i0 = real.floor() as i64;
            let t = real - i0 as f32;
            let a = -0.75f32;
            // Keys' cubic convolution kernel at distances 1+t, t, 1-t, 2-t.
            let near = |x: f32| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
            let far = |x: f32| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
            let w = [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)];
            (0..4)
                .map(|j| {
                    let i = (i0 - 1 + j as i64).clamp(0, len_in as i64 - 1) as usize;
                    (i, w[j])
                })
                .collect()
        }
    }
}

/// Resizes every (h, w) plane and returns the values and the gradient of `sum(y * g)`.
fn reference(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    mode: Mode,
    g: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0; planes * oh * ow];
    let mut gx = vec![0.0; planes * h * w];
    for p in 0..planes {
        for i in 0..oh {
            let th = axis_taps(i, h, oh, mode);
            for j in 0..ow {
                let tw = axis_taps(j, w, ow, mode);
                let o = (p * oh + i) * ow + j;
                let mut acc = 0.0;
                for &(hi, wh) in &th {
                    for &(wi, ww) in &tw {
                        let q = (p * h + hi) * w + wi;
                        acc += wh * ww * x[q];
                        gx[q] += wh * ww * g[o];
                    }
                }
                y[o] = acc;
            }
        }
    }
    (y, gx)
}

/// Runs the op under test for `mode` on a rank-3 (1-D) or rank-4 (2-D) tensor.
fn run(x: &Tensor, size: &[usize], mode: Mode) -> Result<Tensor> {
    match (size.len(), mode) {
        (1, Mode::Nearest) => x.upsample_nearest1d(size),
        (1, Mode::Linear(a)) => x.upsample_linear1d(size, a),
        (2, Mode::Nearest) => x.upsample_nearest2d(size),
        (2, Mode::Linear(a)) => x.upsample_bilinear2d(size, a),
        (2, Mode::Cubic(a)) => x.upsample_bicubic2d(size, a),
        _ => unreachable!(),
    }
}

fn compare(x: &Tensor, size: &[usize], mode: Mode, seed: u64) {
    let s = x.shape();
    let planes = s[0] * s[1];
    let (hw, ohw) = if size.len() == 1 {
        ((1, s[2]), (1, size[0]))
    } else {
        ((s[2], s[3]), (size[0], size[1]))
    };
    let xv = x.detach().requires_grad_(true);
    let y = run(&xv, size, mode).unwrap();
    let g = uniform(y.shape(), -1.0, 1.0, seed);
    let (want, want_g) = reference(&vals(x), planes, hw, ohw, mode, &vals(&g));
    let ctx = format!("{mode:?} {s:?} -> {size:?}");
    assert_eq!(&y.shape()[2..], size, "{ctx}");
    assert_close(&vals(&y), &want, 1e-5, 1e-5);
    y.backward_with(&g).unwrap();
    assert_close(&vals(&xv.grad().unwrap()), &want_g, 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases (values checked against PyTorch)
// ---------------------------------------------------------------------------------------------

#[test]
fn known_small_cases() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap();
    assert_eq!(
        vals(&x.upsample_nearest2d(&[3, 3]).unwrap()),
        [1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0]
    );
    assert_eq!(
        vals(&x.upsample_nearest2d_scale(2).unwrap()),
        [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
    );
    assert_close(
        &vals(&x.upsample_bilinear2d(&[4, 4], false).unwrap()),
        &[
            1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
        ],
        1e-6,
        1e-6,
    );
    let third = 1.0 / 3.0;
    assert_close(
        &vals(&x.upsample_bilinear2d(&[4, 4], true).unwrap()),
        &[
            1.0,
            1.0 + third,
            1.0 + 2.0 * third,
            2.0,
            1.0 + 2.0 * third,
            2.0,
            2.0 + third,
            2.0 + 2.0 * third,
            2.0 + third,
            2.0 + 2.0 * third,
            3.0,
            3.0 + third,
            3.0,
            3.0 + third,
            3.0 + 2.0 * third,
            4.0,
        ],
        1e-6,
        1e-6,
    );
    // Bicubic overshoots the input range at the borders (PyTorch values).
    assert_close(
        &vals(&x.upsample_bicubic2d(&[3, 3], false).unwrap()),
        &[
            0.7395836, 1.3263891, 1.9131949, 1.9131947, 2.5, 3.0868058, 3.086_806, 3.6736112,
            4.2604165,
        ],
        1e-6,
        1e-6,
    );
    assert_close(
        &vals(&x.upsample_bicubic2d(&[3, 3], true).unwrap()),
        &[1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0],
        1e-6,
        1e-6,
    );
    // Downsampling without antialiasing reads 2x2 pixels.
    let g = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
    assert_eq!(
        vals(&g.upsample_bilinear2d(&[2, 2], false).unwrap()),
        [2.5, 4.5, 10.5, 12.5]
    );
    assert_eq!(
        vals(&g.upsample_bilinear2d(&[2, 2], true).unwrap()),
        [0.0, 3.0, 12.0, 15.0]
    );
    assert_eq!(
        vals(&g.upsample_nearest2d(&[2, 2]).unwrap()),
        [0.0, 2.0, 8.0, 10.0]
    );
    // Same size is the identity in every mode.
    for mode in [
        ResizeMode::Nearest,
        ResizeMode::Bilinear {
            align_corners: false,
        },
        ResizeMode::Bicubic {
            align_corners: true,
        },
    ] {
        assert_eq!(vals(&g.resize(&[4, 4], mode).unwrap()), vals(&g));
    }
    // 1-D: linear with align_corners, nearest.
    let l = Tensor::from_vec(vec![0.0f32, 3.0, 6.0], &[1, 1, 3]).unwrap();
    assert_close(
        &vals(&l.upsample_linear1d(&[5], true).unwrap()),
        &[0.0, 1.5, 3.0, 4.5, 6.0],
        1e-6,
        1e-6,
    );
    assert_eq!(
        vals(&l.upsample_nearest1d(&[7]).unwrap()),
        [0.0, 0.0, 0.0, 3.0, 3.0, 6.0, 6.0]
    );
}

#[test]
fn nearest_gradient_sums_copies() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2])
        .unwrap()
        .requires_grad_(true);
    let y = x.upsample_nearest2d(&[3, 3]).unwrap();
    y.backward_with(&Tensor::ones(&[1, 1, 3, 3])).unwrap();
    // Pixel (0,0) is copied to a 2x2 block, (0,1) and (1,0) to 2 pixels, (1,1) to one.
    assert_eq!(vals(&x.grad().unwrap()), [4.0, 2.0, 2.0, 1.0]);
}

// ---------------------------------------------------------------------------------------------
// Random sizes against the reference
// ---------------------------------------------------------------------------------------------

#[test]
fn matches_reference_on_random_sizes() {
    let mut rng = Rng::new(21);
    for case in 0..80 {
        let two_d = case % 4 != 0;
        let n = 1 + rng.below(2) as usize;
        let c = 1 + rng.below(3) as usize;
        let mut modes = vec![Mode::Nearest, Mode::Linear(false), Mode::Linear(true)];
        if two_d {
            modes.extend([Mode::Cubic(false), Mode::Cubic(true)]);
            let (h, w) = (1 + rng.below(9) as usize, 1 + rng.below(9) as usize);
            let size = [1 + rng.below(20) as usize, 1 + rng.below(20) as usize];
            let x = uniform(&[n, c, h, w], -1.0, 1.0, case);
            for m in modes {
                compare(&x, &size, m, case + 1000);
            }
        } else {
            let l = 1 + rng.below(9) as usize;
            let size = [1 + rng.below(20) as usize];
            let x = uniform(&[n, c, l], -1.0, 1.0, case);
            for m in modes {
                compare(&x, &size, m, case + 1000);
            }
        }
    }
    // Large ratios, where the f32 source index decides which pixel is picked.
    for (l, out) in [(3, 100), (7, 250), (13, 1000), (25, 999), (100, 33)] {
        compare(&uniform(&[1, 1, l], -1.0, 1.0, 1), &[out], Mode::Nearest, 2);
    }
    // Big enough to run the planes in parallel.
    let x = uniform(&[4, 8, 19, 23], -1.0, 1.0, 3);
    compare(&x, &[40, 45], Mode::Linear(false), 4);
    compare(&x, &[9, 12], Mode::Cubic(true), 5);
    compare(&x, &[38, 46], Mode::Nearest, 6);
}

#[test]
fn scale_helpers_and_resize_enum() {
    let x = uniform(&[2, 3, 5, 7], -1.0, 1.0, 7);
    assert_eq!(
        vals(&x.upsample_nearest2d_scale(3).unwrap()),
        vals(&x.upsample_nearest2d(&[15, 21]).unwrap())
    );
    assert_eq!(
        vals(&x.upsample_bilinear2d_scale(2, true).unwrap()),
        vals(&x.upsample_bilinear2d(&[10, 14], true).unwrap())
    );
    assert_eq!(
        vals(&x.resize(&[4, 9], ResizeMode::Nearest).unwrap()),
        vals(&x.upsample_nearest2d(&[4, 9]).unwrap())
    );
    let m = ResizeMode::Bilinear {
        align_corners: false,
    };
    assert_eq!(
        vals(&x.resize(&[4, 9], m).unwrap()),
        vals(&x.upsample_bilinear2d(&[4, 9], false).unwrap())
    );
    // Unbatched (C, H, W).
    let u = x.narrow(0, 0, 1).unwrap().squeeze(0).unwrap();
    let y = u.upsample_bilinear2d(&[8, 8], false).unwrap();
    assert_eq!(y.shape(), &[3, 8, 8]);
    assert_eq!(
        vals(&y),
        vals(
            &x.narrow(0, 0, 1)
                .unwrap()
                .upsample_bilinear2d(&[8, 8], false)
                .unwrap()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradient checks
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_nearest() {
    let x1 = uniform(&[2, 2, 5], -1.0, 1.0, 8);
    for out in [[3], [5], [11], [10]] {
        check(|x| x[0].upsample_nearest1d(&out), &one(&x1));
    }
    let x2 = uniform(&[2, 2, 5, 4], -1.0, 1.0, 9);
    for out in [[3, 7], [10, 8], [2, 2], [11, 3]] {
        check(|x| x[0].upsample_nearest2d(&out), &one(&x2));
    }
    check(|x| x[0].upsample_nearest2d_scale(3), &[x2]);
}

#[test]
fn grad_linear_and_bilinear() {
    let x1 = uniform(&[2, 2, 5], -1.0, 1.0, 10);
    let x2 = uniform(&[2, 2, 5, 4], -1.0, 1.0, 11);
    for align in [false, true] {
        for out in [[3], [9], [1]] {
            check(|x| x[0].upsample_linear1d(&out, align), &one(&x1));
        }
        for out in [[3, 7], [11, 9], [2, 2], [1, 6]] {
            check(|x| x[0].upsample_bilinear2d(&out, align), &one(&x2));
        }
        check(|x| x[0].upsample_bilinear2d_scale(2, align), &one(&x2));
        check(
            |x| {
                x[0].resize(
                    &[7, 3],
                    ResizeMode::Bilinear {
                        align_corners: align,
                    },
                )
            },
            &one(&x2),
        );
    }
}

#[test]
fn grad_bicubic() {
    let x2 = uniform(&[2, 2, 5, 4], -1.0, 1.0, 12);
    for align in [false, true] {
        for out in [[3, 7], [11, 9], [2, 2], [1, 6]] {
            check(|x| x[0].upsample_bicubic2d(&out, align), &one(&x2));
        }
        check(
            |x| {
                x[0].resize(
                    &[7, 3],
                    ResizeMode::Bicubic {
                        align_corners: align,
                    },
                )
            },
            &one(&x2),
        );
    }
}

#[test]
fn grad_non_contiguous_input() {
    // (N, H, W, C) permuted to NCHW inside the function, and a strided slice.
    let x = uniform(&[2, 5, 4, 3], -1.0, 1.0, 13);
    check(
        |x| {
            x[0].permute(&[0, 3, 1, 2])?
                .upsample_bilinear2d(&[7, 9], false)
        },
        &one(&x),
    );
    check(
        |x| x[0].permute(&[0, 3, 1, 2])?.upsample_nearest2d(&[3, 8]),
        &one(&x),
    );
    check(
        |x| {
            x[0].permute(&[0, 3, 1, 2])?
                .slice(3, 0, 4, 2)?
                .upsample_bicubic2d(&[6, 5], true)
        },
        &[x],
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_name_the_op() {
    let x = Tensor::zeros(&[1, 2, 4, 4]);
    let e = x.upsample_nearest1d(&[8]).unwrap_err().to_string();
    assert!(
        e.starts_with("upsample_nearest1d:") && e.contains("[1, 2, 4, 4]"),
        "{e}"
    );
    let e = x.upsample_bilinear2d(&[8], false).unwrap_err().to_string();
    assert!(
        e.starts_with("upsample_bilinear2d:") && e.contains("[8]"),
        "{e}"
    );
    let e = x
        .upsample_bicubic2d(&[0, 8], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("positive"), "{e}");
    let e = x.upsample_nearest2d_scale(0).unwrap_err().to_string();
    assert!(e.contains("scale factor"), "{e}");
    let e = Tensor::zeros(&[1, 2, 0, 4])
        .resize(&[3, 3], ResizeMode::Nearest)
        .unwrap_err()
        .to_string();
    assert!(e.contains("positive"), "{e}");
}
