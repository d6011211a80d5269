//! Finite-difference gradient checks through the layers whose forward pass is composed in this
//! crate (cropping by `narrow`, explicit `SAME` padding for pooling, transposed axes for
//! normalization, chained convolutions, merges, ...): gradients with respect to the inputs with
//! the engine's `GradCheck`, and with respect to every trainable weight by central differences
//! of `sum(layer(x) * w)` while perturbing the weight in place.

use ferrovision_nn::layer::{shape_of, CallCtx, Layer};
use ferrovision_nn::layers::*;
use ferrovision_nn::tensor::gradcheck::GradCheck;
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::tensor::{no_grad, Tensor};
use ferrovision_nn::{Activation, Regularizer};

/// Distinct values spread over [-1, 1) in random order (no near-ties for max-based layers).
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let mut v: Vec<f32> = (0..n).map(|i| -1.0 + 2.0 * i as f32 / n as f32).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    Tensor::from_vec(v, shape).unwrap()
}

fn call(
    layer: &dyn Layer,
    xs: &[Tensor],
    training: bool,
) -> ferrovision_nn::tensor::Result<Tensor> {
    let mut ctx = CallCtx::new(training);
    let y = layer.call(xs, &mut ctx).map_err(|e| match e {
        ferrovision_nn::Error::Tensor(t) => t,
        other => panic!("{}: {other}", layer.name()),
    })?;
    // Extra losses (activity regularization) join the objective, like in training.
    let mut total = y;
    for l in ctx.take_losses() {
        total = total.add(&l)?;
    }
    Ok(total)
}

/// Builds `layer` for `inputs` and checks input and weight gradients.
fn check(mut layer: impl Layer, inputs: &[Tensor], training: bool, eps: f32) {
    let shapes: Vec<_> = inputs.iter().map(shape_of).collect();
    layer.build(&shapes).unwrap();
    let gc = GradCheck {
        eps,
        ..GradCheck::default()
    };
    let name = layer.class_name();
    gc.run(|xs| call(&layer, xs, training), inputs)
        .unwrap_or_else(|e| panic!("{name}: input gradient: {e}"));

    if !layer.weights().iter().any(|p| p.trainable()) {
        return;
    }
    // Weight gradients: analytic from backward, numeric by perturbing the weight in place.
    let y = call(&layer, inputs, training).unwrap();
    let mut rng = Rng::new(11);
    let cot: Vec<f32> = (0..y.numel()).map(|_| rng.normal() as f32).collect();
    let cot_t = Tensor::from_vec(cot.clone(), y.shape()).unwrap();
    for p in layer.weights() {
        p.zero_grad();
    }
    y.backward_with(&cot_t).unwrap();
    let loss = |layer: &dyn Layer| -> f64 {
        let y = no_grad(|| call(layer, inputs, training)).unwrap();
        y.to_vec::<f32>()
            .unwrap()
            .iter()
            .zip(&cot)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    for p in layer.weights().into_iter().filter(|p| p.trainable()) {
        let analytic = p
            .grad()
            .unwrap_or_else(|| panic!("{name}: weight '{}' got no gradient", p.name()))
            .to_vec::<f32>()
            .unwrap();
        let base = p.to_vec().unwrap();
        let picks: Vec<usize> = if base.len() <= 24 {
            (0..base.len()).collect()
        } else {
            (0..24)
                .map(|_| rng.below(base.len() as u64) as usize)
                .collect()
        };
        for j in picks {
            let mut v = base.clone();
            v[j] = base[j] + eps;
            p.assign(&v).unwrap();
            let plus = loss(&layer);
            v[j] = base[j] - eps;
            p.assign(&v).unwrap();
            let minus = loss(&layer);
            p.assign(&base).unwrap();
            let numeric = (plus - minus) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            let tol = gc.atol + gc.rtol * a.abs().max(numeric.abs());
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: weight '{}'[{j}]: analytic {a} vs numeric {numeric}",
                p.name()
            );
        }
    }
}

#[test]
fn grad_convolutions() {
    let x1 = distinct(&[2, 3, 8], 1);
    check(
        Conv1D::new(2, 3)
            .padding(PaddingMode::Causal)
            .dilation_rate(2),
        &[x1],
        true,
        1e-2,
    );
    let x = distinct(&[2, 3, 6, 5], 2);
    check(
        Conv2D::new(4, 3)
            .strides(2)
            .padding(PaddingMode::Same)
            .groups(1)
            .activity_regularizer(Regularizer::l2(0.01)),
        std::slice::from_ref(&x),
        true,
        1e-2,
    );
    check(
        Conv2D::new(4, [3, 2])
            .groups(2)
            .activation(Activation::Tanh),
        &[distinct(&[2, 4, 5, 5], 3)],
        false,
        1e-2,
    );
    check(
        Conv3D::new(2, 2).padding(PaddingMode::Same),
        &[distinct(&[1, 2, 3, 4, 3], 4)],
        false,
        1e-2,
    );
}

#[test]
fn grad_transposed_and_separable() {
    let x = distinct(&[2, 3, 3, 4], 5);
    // Cropped (same, odd excess) and extended (valid, kernel < stride) outputs.
    check(
        Conv2DTranspose::new(2, 4)
            .strides(2)
            .padding(PaddingMode::Same),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        Conv2DTranspose::new(2, 2).strides(3),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        Conv1DTranspose::new(2, 3)
            .strides(2)
            .padding(PaddingMode::Same)
            .output_padding(1),
        &[distinct(&[2, 3, 4], 6)],
        false,
        1e-2,
    );
    check(
        DepthwiseConv2D::new(3)
            .depth_multiplier(2)
            .padding(PaddingMode::Same)
            .strides(2),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        SeparableConv2D::new(4, 3)
            .depth_multiplier(2)
            .padding(PaddingMode::Same),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
}

#[test]
fn grad_pooling_and_resampling() {
    let x = distinct(&[2, 2, 6, 5], 7);
    // p2 s1 'same' pads asymmetrically (explicit pad path); p3 s1 symmetrically (engine).
    for (k, s) in [(2, 1), (3, 1), (3, 2)] {
        check(
            MaxPooling2D::new(k).strides(s).padding(PaddingMode::Same),
            std::slice::from_ref(&x),
            false,
            1e-3,
        );
        check(
            AveragePooling2D::new(k)
                .strides(s)
                .padding(PaddingMode::Same),
            std::slice::from_ref(&x),
            false,
            1e-2,
        );
    }
    check(
        MaxPooling1D::new(2).strides(1).padding(PaddingMode::Same),
        &[distinct(&[2, 2, 5], 8)],
        false,
        1e-3,
    );
    check(
        AveragePooling3D::new(2)
            .strides(1)
            .padding(PaddingMode::Same),
        &[distinct(&[1, 2, 3, 3, 3], 9)],
        false,
        1e-2,
    );
    check(
        GlobalAveragePooling2D::new(),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        GlobalMaxPooling2D::new().keepdims(true),
        std::slice::from_ref(&x),
        false,
        1e-3,
    );
    check(
        GlobalMaxPooling1D::new(),
        &[distinct(&[2, 3, 5], 10)],
        false,
        1e-3,
    );
    check(
        GlobalAveragePooling3D::new().keepdims(true),
        &[distinct(&[1, 2, 3, 2, 2], 11)],
        false,
        1e-2,
    );
    check(
        UpSampling2D::new([2, 3]).interpolation(Interpolation::Bilinear),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(UpSampling2D::new(2), std::slice::from_ref(&x), false, 1e-2);
}

#[test]
fn grad_shape_layers() {
    let x = distinct(&[2, 3, 4, 5], 12);
    check(
        ZeroPadding2D::asymmetric([(1, 2), (0, 3)]),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        Cropping2D::asymmetric([(1, 0), (2, 1)]),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        Cropping3D::new(1),
        &[distinct(&[1, 2, 3, 4, 3], 13)],
        false,
        1e-2,
    );
    check(Flatten::new(), std::slice::from_ref(&x), false, 1e-2);
    check(
        Reshape::new(&[-1, 6]),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        Permute::new(&[3, 1, 2]),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    check(
        ActivationLayer::new(Activation::Softmax),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
}

#[test]
fn grad_normalization() {
    let x = distinct(&[4, 3, 2, 3], 14).mul_scalar(2.0).unwrap();
    check(
        BatchNormalization::new(),
        std::slice::from_ref(&x),
        true,
        1e-2,
    );
    check(
        BatchNormalization::new(),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
    // Last-axis batch norm runs on a transposed view.
    check(
        BatchNormalization::new().axis(-1),
        &[distinct(&[3, 4, 5], 15).mul_scalar(2.0).unwrap()],
        true,
        1e-2,
    );
    check(
        LayerNormalization::new(),
        &[distinct(&[3, 4, 5], 16)],
        false,
        1e-2,
    );
    // Non-trailing axes go through a permutation.
    check(
        LayerNormalization::new().axis(&[1]),
        &[distinct(&[3, 4, 5], 17)],
        false,
        1e-2,
    );
    check(
        LayerNormalization::new().axis(&[1, 3]),
        std::slice::from_ref(&x),
        false,
        1e-2,
    );
}

#[test]
fn grad_merges() {
    let a = distinct(&[2, 3, 4], 18);
    let b = distinct(&[2, 3, 4], 19);
    let c = distinct(&[2, 1, 4], 20);
    let three = [a.clone(), b.clone(), c.clone()];
    check(Add::new(), &three, false, 1e-2);
    check(Multiply::new(), &three, false, 1e-2);
    check(Average::new(), &three, false, 1e-2);
    check(Maximum::new(), &[a.clone(), b.clone()], false, 1e-3);
    check(Minimum::new(), &[a.clone(), b.clone()], false, 1e-3);
    check(Subtract::new(), &[a.clone(), c.clone()], false, 1e-2);
    check(
        Concatenate::new(1),
        &[a.clone(), distinct(&[2, 2, 4], 21)],
        false,
        1e-2,
    );
    check(
        Concatenate::new(-1),
        &[a, distinct(&[2, 3, 1], 22)],
        false,
        1e-2,
    );
}
