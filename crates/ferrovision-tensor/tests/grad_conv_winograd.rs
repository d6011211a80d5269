//! 3×3 stride-1 convolutions through the public op with Winograd forced on: values and all
//! three gradients agree with im2col + GEMM, and finite differences check the Winograd input
//! and weight gradients. (The kernel's own tests bound its error against a double-precision direct
//! convolution.) The algorithm setting is process-wide, so the tests take turns.

mod common;
use common::{assert_close, check_cached_filters_follow_weight_updates, uniform, with_algo};
use ferrovision_tensor::gradcheck::GradCheck;
use ferrovision_tensor::ops::conv::{ConvAlgo, ConvOpts, Padding};
use ferrovision_tensor::{Result, Tensor};

/// Output and the gradients of x, w, b of `sum(conv(x, w, b) · probe)`.
fn run(x: &Tensor, w: &Tensor, b: &Tensor, opts: &ConvOpts, relu: bool) -> Result<[Vec<f32>; 4]> {
    let (x, w, b) = (
        x.detach().requires_grad_(true),
        w.detach().requires_grad_(true),
        b.detach().requires_grad_(true),
    );
    let y = if relu {
        x.conv2d_relu(&w, Some(&b), opts)?
    } else {
        x.conv2d(&w, Some(&b), opts)?
    };
    let probe = uniform(y.shape(), -1.0, 1.0, 99);
    y.mul(&probe)?.sum_all()?.backward()?;
    let grad = |t: &Tensor| t.grad().expect("gradient").to_vec::<f32>();
    Ok([y.to_vec::<f32>()?, grad(&x)?, grad(&w)?, grad(&b)?])
}

#[test]
fn winograd_matches_im2col_values_and_gradients() {
    let cases: &[(&[usize], usize, Padding)] = &[
        (&[2, 8, 16, 16], 8, Padding::Explicit(vec![(1, 1)])),
        (&[3, 5, 9, 13], 7, Padding::Explicit(vec![(1, 1)])),
        (&[1, 4, 11, 6], 3, Padding::Valid),
        (&[2, 3, 8, 10], 5, Padding::Explicit(vec![(2, 2)])),
        (&[2, 6, 7, 7], 4, Padding::Same),
        (
            &[1, 16, 33, 20],
            16,
            Padding::Explicit(vec![(1, 0), (0, 2)]),
        ),
        // Channel counts past one 16-lane group, as the shape rule's weight gradients have.
        (&[3, 33, 8, 12], 40, Padding::Same),
    ];
    for (i, (shape, cout, padding)) in cases.iter().enumerate() {
        let x = uniform(shape, -1.0, 1.0, 10 + i as u64);
        let w = uniform(&[*cout, shape[1], 3, 3], -0.5, 0.5, 20 + i as u64);
        let b = uniform(&[*cout], -0.5, 0.5, 30 + i as u64);
        let opts = ConvOpts::new().padding(padding.clone());
        for relu in [false, true] {
            let i2c = with_algo(ConvAlgo::Im2col, || run(&x, &w, &b, &opts, relu)).unwrap();
            for algo in [
                ConvAlgo::Winograd,
                ConvAlgo::WinogradTiled,
                ConvAlgo::WinogradWide,
            ] {
                let wino = with_algo(algo, || run(&x, &w, &b, &opts, relu)).unwrap();
                for (got, want) in wino.iter().zip(&i2c) {
                    assert_close(got, want, 1e-4, 1e-4);
                }
            }
        }
    }
}

#[test]
fn winograd_input_and_weight_gradients_pass_finite_differences() {
    let x = uniform(&[2, 3, 7, 9], -1.0, 1.0, 1);
    let w = uniform(&[4, 3, 3, 3], -1.0, 1.0, 2);
    for algo in [ConvAlgo::WinogradTiled, ConvAlgo::WinogradWide] {
        with_algo(algo, || {
            for pad in [0, 1, 2] {
                let opts = ConvOpts::new().pad(pad);
                GradCheck::default()
                    .run(|t| t[0].conv2d(&t[1], None, &opts), &[x.clone(), w.clone()])
                    .unwrap();
            }
        });
    }
}

/// Inference caches the transformed filters; an in-place weight update (an optimizer step)
/// must not be answered from the cache. Shapes where the shape rule takes each layout with
/// cached filters (ResNet-18's 4 px and ResNet-50's 28 px stages).
#[test]
fn cached_inference_filters_follow_in_place_weight_updates() {
    check_cached_filters_follow_weight_updates([16, 128, 4, 4], 40, 1e-4);
    check_cached_filters_follow_weight_updates([1, 96, 28, 28], 50, 1e-4);
}
