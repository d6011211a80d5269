//! Weight gradients of stride-1 convolutions with planes of ≥ 1024 outputs, which take the
//! shifted-GEMM path (`backend/cpu/conv_shifted.rs`, no im2col): against a double-precision
//! direct sum over the same inputs, for several kernels, paddings (asymmetric too), batch sizes
//! spanning several chunks and thread ranges, 1-d, and a transposed convolution (whose weight
//! gradient runs the same code with the roles of input and output gradient swapped); plus
//! finite differences on one small case.

mod common;
use common::{assert_close, uniform};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::conv::{ConvOpts, ConvTransposeOpts, Padding};
use ferrovision_tensor::Tensor;

/// `∂ Σ conv(x, w)·probe / ∂w` by the direct formula in f64: `x` `[n, cin, ih, iw]`, `probe`
/// `[n, cout, oh, ow]`, padding before `(pt, pl)`, kernel `(kh, kw)`.
#[allow(clippy::too_many_arguments)]
fn direct_weight_grad(
    x: &[f32],
    probe: &[f32],
    [n, cin, ih, iw]: [usize; 4],
    [cout, oh, ow]: [usize; 3],
    [kh, kw]: [usize; 2],
    [pt, pl]: [usize; 2],
) -> Vec<f32> {
    let mut dw = vec![0.0f64; cout * cin * kh * kw];
    for b in 0..n {
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let mut s = 0.0f64;
                        for y in 0..oh {
                            let iy = (y + ky) as isize - pt as isize;
                            if iy < 0 || iy >= ih as isize {
                                continue;
                            }
                            for xx in 0..ow {
                                let ix = (xx + kx) as isize - pl as isize;
                                if ix < 0 || ix >= iw as isize {
                                    continue;
                                }
                                let g = probe[((b * cout + co) * oh + y) * ow + xx] as f64;
                                let v = x[((b * cin + ci) * ih + iy as usize) * iw + ix as usize];
                                s += g * v as f64;
                            }
                        }
                        dw[((co * cin + ci) * kh + ky) * kw + kx] += s;
                    }
                }
            }
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}

/// `∂ Σ y·probe / ∂w` by autograd, for `y` computed from `w` (requires grad), with a fresh
/// uniform `probe` of `y`'s shape: (the gradient, the probe).
fn weight_grad_by_autograd(w: &Tensor, y: &Tensor, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let probe = uniform(y.shape(), -1.0, 1.0, seed);
    y.mul(&probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad = w.grad().expect("weight gradient").to_vec::<f32>().unwrap();
    (grad, probe.to_vec::<f32>().unwrap())
}

#[test]
fn shifted_weight_gradients_match_the_direct_sum() {
    // (x shape, cout, kernel, padding before, padding after)
    type Case = ([usize; 4], usize, [usize; 2], [usize; 2], [usize; 2]);
    let cases: &[Case] = &[
        ([3, 3, 32, 32], 5, [3, 3], [1, 1], [1, 1]),
        ([9, 4, 32, 32], 6, [3, 3], [1, 1], [1, 1]),
        ([2, 3, 40, 28], 4, [5, 5], [2, 2], [2, 2]),
        ([2, 2, 34, 36], 3, [3, 3], [0, 0], [0, 0]),
        ([2, 3, 36, 32], 2, [3, 2], [2, 0], [0, 1]),
        ([3, 2, 32, 32], 3, [1, 1], [1, 1], [1, 1]),
        ([1, 2, 1, 1100], 3, [1, 5], [0, 2], [0, 2]),
    ];
    for (i, &(xs, cout, k, before, after)) in cases.iter().enumerate() {
        let [n, cin, ih, iw] = xs;
        let x = uniform(&xs, -1.0, 1.0, 100 + i as u64);
        let w = uniform(&[cout, cin, k[0], k[1]], -0.5, 0.5, 200 + i as u64).requires_grad_(true);
        let opts = ConvOpts::new().padding(Padding::Explicit(vec![
            (before[0], after[0]),
            (before[1], after[1]),
        ]));
        let y = x.conv2d(&w, None, &opts).unwrap();
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        assert!(oh * ow >= 1024, "case {i} must take the shifted path");
        let (got, probe) = weight_grad_by_autograd(&w, &y, 300 + i as u64);
        let want = direct_weight_grad(
            &x.to_vec::<f32>().unwrap(),
            &probe,
            [n, cin, ih, iw],
            [cout, oh, ow],
            k,
            before,
        );
        assert_close(&got, &want, 1e-4, 1e-4);
    }
}

#[test]
fn shifted_weight_gradient_of_conv1d_and_transposed_conv() {
    // conv1d: [n, cin, len] lifted to a 1-row plane.
    let x = uniform(&[2, 3, 1100], -1.0, 1.0, 1);
    let w = uniform(&[4, 3, 7], -0.5, 0.5, 2).requires_grad_(true);
    let y = x.conv1d(&w, None, &ConvOpts::new().pad(3)).unwrap();
    let (got, probe) = weight_grad_by_autograd(&w, &y, 3);
    let want = direct_weight_grad(
        &x.to_vec::<f32>().unwrap(),
        &probe,
        [2, 3, 1, 1100],
        [4, 1, 1100],
        [1, 7],
        [0, 3],
    );
    assert_close(&got, &want, 1e-4, 1e-4);

    // A stride-1 transposed convolution with weight [cin, cout, 3, 3] and padding 1 is the
    // input-gradient path of a convolution from its output ([n, cout, 32, 32]) to its input
    // ([n, cin, 32, 32]): its weight gradient is that convolution's, with the transposed
    // convolution's output gradient (`probe`) as the convolution input.
    let x = uniform(&[3, 4, 32, 32], -1.0, 1.0, 4);
    let w = uniform(&[4, 5, 3, 3], -0.5, 0.5, 5).requires_grad_(true);
    let y = x
        .conv_transpose2d(&w, None, &ConvTransposeOpts::new().pad(1))
        .unwrap();
    assert_eq!(y.shape(), &[3, 5, 32, 32]);
    let (got, probe) = weight_grad_by_autograd(&w, &y, 6);
    let want = direct_weight_grad(
        &probe,
        &x.to_vec::<f32>().unwrap(),
        [3, 5, 32, 32],
        [4, 32, 32],
        [3, 3],
        [1, 1],
    );
    assert_close(&got, &want, 1e-4, 1e-4);
}

#[test]
fn shifted_weight_gradient_passes_finite_differences() {
    let x = uniform(&[2, 2, 32, 32], -1.0, 1.0, 7);
    let w = uniform(&[2, 2, 3, 3], -0.5, 0.5, 8);
    let opts = ConvOpts::new().pad(1);
    GradCheck::default()
        .run(|t| t[0].conv2d(&t[1], None, &opts), &[x, w])
        .unwrap();
}

/// The path must not need a contiguous input: a transposed (strided) view as the input.
#[test]
fn shifted_weight_gradient_of_a_permuted_input() {
    let base = uniform(&[32, 32, 2, 3], -1.0, 1.0, 9);
    let x: Tensor = base.permute(&[2, 3, 0, 1]).unwrap();
    let w = uniform(&[2, 3, 3, 3], -0.5, 0.5, 10).requires_grad_(true);
    let y = x.conv2d(&w, None, &ConvOpts::new().pad(1)).unwrap();
    let (got, probe) = weight_grad_by_autograd(&w, &y, 11);
    let want = direct_weight_grad(
        &x.to_vec::<f32>().unwrap(),
        &probe,
        [2, 3, 32, 32],
        [2, 32, 32],
        [3, 3],
        [1, 1],
    );
    assert_close(&got, &want, 1e-4, 1e-4);
}
