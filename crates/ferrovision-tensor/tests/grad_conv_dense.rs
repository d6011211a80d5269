//! The dense form of small-map convolutions (`backend/cpu/conv_dense.rs`) through the public
//! ops: values and all three gradients agree with im2col + GEMM over 1-, 2- and 3-d windows
//! with padding, strides, dilation and both GEMM orientations, finite differences check the
//! dense input gradient, and cached matrices follow in-place weight updates. The algorithm
//! setting is process-wide, so the tests take turns.

mod common;
use common::{assert_close, check_cached_filters_follow_weight_updates, uniform, with_algo};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::conv::{ConvAlgo, ConvOpts, Padding};
use ferrovision_tensor::{Result, Tensor};

/// A convolution of the input's rank (1-3 spatial dims), with the ReLU fused or not.
fn conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: &ConvOpts, relu: bool) -> Result<Tensor> {
    let y = match x.rank() {
        3 => x.conv1d(w, b, opts)?,
        4 if relu => return x.conv2d_relu(w, b, opts),
        4 => x.conv2d(w, b, opts)?,
        _ => x.conv3d(w, b, opts)?,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// Output and the gradients of x, w, b of `sum(conv(x, w, b) · probe)`.
fn run(x: &Tensor, w: &Tensor, b: &Tensor, opts: &ConvOpts, relu: bool) -> Result<[Vec<f32>; 4]> {
    let (x, w, b) = (
        x.detach().requires_grad_(true),
        w.detach().requires_grad_(true),
        b.detach().requires_grad_(true),
    );
    let y = conv(&x, &w, Some(&b), opts, relu)?;
    let probe = uniform(y.shape(), -1.0, 1.0, 99);
    y.mul(&probe)?.sum_all()?.backward()?;
    let grad = |t: &Tensor| t.grad().expect("gradient").to_vec::<f32>();
    Ok([y.to_vec::<f32>()?, grad(&x)?, grad(&w)?, grad(&b)?])
}

/// (input shape, output channels, kernel, options): every case has at most half as many input
/// positions as kernel taps, so the dense form fits.
fn cases() -> Vec<(Vec<usize>, usize, Vec<usize>, ConvOpts)> {
    let pad = |p| ConvOpts::new().pad(p);
    vec![
        // ResNet-18's 2×2 stage in small: 3×3 pad 1 on a 2×2 map.
        (vec![2, 8, 2, 2], 6, vec![3, 3], pad(1)),
        // A 1×1 map: only the centre tap reads the input.
        (vec![3, 5, 1, 1], 4, vec![3, 3], pad(1)),
        (
            vec![2, 4, 1, 2],
            3,
            vec![3, 3],
            ConvOpts::new().padding(Padding::Same),
        ),
        // Stride 2: 2×2 -> 1×1.
        (vec![2, 4, 2, 2], 3, vec![3, 3], pad(1).stride(&[2])),
        // Dilation 2 with padding 2.
        (vec![2, 3, 2, 2], 5, vec![3, 3], pad(2).dilation(&[2])),
        // Asymmetric padding: 2×2 -> 1×2.
        (
            vec![1, 4, 2, 2],
            3,
            vec![3, 3],
            ConvOpts::new().padding(Padding::Explicit(vec![(1, 0), (0, 2)])),
        ),
        // 5×5 on 3×3.
        (vec![2, 3, 3, 3], 4, vec![5, 5], pad(2)),
        // Channels past the GEMM's register tiles; image counts for each forward orientation
        // (`Y = X·D` below 8 and from 32 images, `Yᵀ = Dᵀ·Xᵀ` between).
        (vec![3, 33, 2, 2], 40, vec![3, 3], pad(1)),
        (vec![9, 17, 2, 2], 20, vec![3, 3], pad(1)),
        (vec![33, 8, 2, 2], 5, vec![3, 3], pad(1)),
        // 1-d and 3-d windows.
        (vec![2, 4, 2], 3, vec![5], pad(2)),
        (vec![2, 3, 2, 2, 2], 4, vec![3, 3, 3], pad(1)),
    ]
}

#[test]
fn dense_matches_im2col_values_and_gradients() {
    for (i, (shape, cout, kernel, opts)) in cases().into_iter().enumerate() {
        let x = uniform(&shape, -1.0, 1.0, 10 + i as u64);
        let mut wshape = vec![cout, shape[1]];
        wshape.extend(&kernel);
        let w = uniform(&wshape, -0.5, 0.5, 20 + i as u64);
        let b = uniform(&[cout], -0.5, 0.5, 30 + i as u64);
        for relu in [false, true] {
            let i2c = with_algo(ConvAlgo::Im2col, || run(&x, &w, &b, &opts, relu)).unwrap();
            let dense = with_algo(ConvAlgo::Dense, || run(&x, &w, &b, &opts, relu)).unwrap();
            for (got, want) in dense.iter().zip(&i2c) {
                assert_close(got, want, 1e-5, 1e-5);
            }
            // Inference (gradients off) takes the cached matrix: the same values again.
            let infer = with_algo(ConvAlgo::Dense, || {
                ferrovision_tensor::no_grad(|| conv(&x, &w, Some(&b), &opts, relu))
            })
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
            assert_close(&infer, &i2c[0], 1e-5, 1e-5);
        }
    }
}

#[test]
fn dense_input_gradient_passes_finite_differences() {
    with_algo(ConvAlgo::Dense, || {
        for (i, (shape, cout, kernel, opts)) in cases().into_iter().enumerate() {
            if shape[1] > 8 || shape[0] > 4 {
                continue; // the large cases above cost many evaluations and add no path
            }
            let x = uniform(&shape, -1.0, 1.0, 40 + i as u64);
            let mut wshape = vec![cout, shape[1]];
            wshape.extend(&kernel);
            let w = uniform(&wshape, -1.0, 1.0, 50 + i as u64);
            GradCheck::default()
                .run(|t| conv(&t[0], &t[1], None, &opts, false), &[x, w])
                .unwrap();
        }
    });
}

/// The matrix is cached under the weight's storage version; an in-place update (an optimizer
/// step) must build it again. Shapes the shape rule gives the dense form in inference.
#[test]
fn cached_dense_matrices_follow_in_place_weight_updates() {
    check_cached_filters_follow_weight_updates([16, 64, 2, 2], 60, 1e-5);
    check_cached_filters_follow_weight_updates([2, 32, 1, 1], 70, 1e-5);
}
