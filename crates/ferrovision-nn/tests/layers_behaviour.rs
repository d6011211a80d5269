//! Layer behaviour beyond the numeric fixtures: `output_shape` with unknown dims, config
//! round trips, clear errors for bad configs and inputs, batch-norm freezing, activity
//! regularization, Lambda layers, a custom layer with its own weights and extra loss, and
//! regularizer penalties and gradients.

use ferrovision_nn::layer::{shape_of, CallCtx, Layer, Shape};
use ferrovision_nn::layers::*;
use ferrovision_nn::tensor::gradcheck::GradCheck;
use ferrovision_nn::tensor::rng::Rng;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{
    Activation, Error, Initializer, Network, NetworkExt, Param, Regularizer, Sequential,
};
use serde_json::{json, Value};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, &mut Rng::new(seed)).unwrap()
}

fn sym(dims: &[Option<usize>]) -> Shape {
    dims.to_vec()
}

/// Builds `layer` for symbolic `shapes`, runs it on `inputs` and checks that `output_shape`
/// agrees with the real output: compatible for the symbolic shapes (unknown stays unknown,
/// known sizes match), exact for the concrete ones.
fn check_shapes(mut layer: Box<dyn Layer>, shapes: &[Shape], inputs: &[Tensor]) {
    let name = layer.class_name();
    layer
        .build(shapes)
        .unwrap_or_else(|e| panic!("{name}: build: {e}"));
    let predicted = layer
        .output_shape(shapes)
        .unwrap_or_else(|e| panic!("{name}: output_shape: {e}"));
    let y = layer
        .call(inputs, &mut CallCtx::new(true))
        .unwrap_or_else(|e| panic!("{name}: call: {e}"));
    assert_eq!(
        predicted.len(),
        y.rank(),
        "{name}: rank of {predicted:?} vs {:?}",
        y.shape()
    );
    for (i, (p, &d)) in predicted.iter().zip(y.shape()).enumerate() {
        // A dim is unknown exactly when it depends on an unknown input size.
        assert!(
            p.is_none_or(|p| p == d),
            "{name}: axis {i}: {predicted:?} vs {:?}",
            y.shape()
        );
    }
    let concrete: Vec<Shape> = inputs.iter().map(shape_of).collect();
    assert_eq!(
        layer.output_shape(&concrete).unwrap(),
        shape_of(&y),
        "{name}: concrete output_shape"
    );
}

#[test]
fn output_shapes_with_unknown_dims() {
    let img = sym(&[None, Some(3), None, None]);
    let x = randn(&[2, 3, 9, 8], 1);
    let b = |l: Box<dyn Layer>| l;
    let cases: Vec<Box<dyn Layer>> = vec![
        b(Box::new(Conv2D::new(4, 3).strides(2))),
        b(Box::new(
            Conv2D::new(4, [3, 2])
                .padding(PaddingMode::Same)
                .strides([2, 3]),
        )),
        b(Box::new(Conv2D::new(6, 3).groups(3).dilation_rate(2))),
        b(Box::new(Conv2DTranspose::new(2, 3).strides(2))),
        b(Box::new(
            Conv2DTranspose::new(2, 4)
                .strides(2)
                .padding(PaddingMode::Same),
        )),
        b(Box::new(
            Conv2DTranspose::new(2, 3).strides(2).output_padding(1),
        )),
        b(Box::new(
            DepthwiseConv2D::new(3)
                .depth_multiplier(2)
                .padding(PaddingMode::Same),
        )),
        b(Box::new(SeparableConv2D::new(5, 3).strides(2))),
        b(Box::new(MaxPooling2D::new(2))),
        b(Box::new(
            MaxPooling2D::new(3).strides(2).padding(PaddingMode::Same),
        )),
        b(Box::new(
            AveragePooling2D::new([2, 3]).padding(PaddingMode::Same),
        )),
        b(Box::new(GlobalAveragePooling2D::new())),
        b(Box::new(GlobalMaxPooling2D::new().keepdims(true))),
        b(Box::new(UpSampling2D::new([2, 3]))),
        b(Box::new(
            UpSampling2D::new(2).interpolation(Interpolation::Bilinear),
        )),
        b(Box::new(ZeroPadding2D::asymmetric([(1, 2), (3, 0)]))),
        b(Box::new(Cropping2D::new([1, 2]))),
        b(Box::new(Flatten::new())),
        b(Box::new(Reshape::new(&[3, -1]))),
        b(Box::new(Permute::new(&[2, 3, 1]))),
        b(Box::new(Dropout::new(0.5))),
        b(Box::new(SpatialDropout2D::new(0.5))),
        b(Box::new(BatchNormalization::new())),
        b(Box::new(LayerNormalization::new().axis(&[1]))),
        b(Box::new(ActivationLayer::new(Activation::Softmax))),
        b(Box::new(Lambda::new(|x| Ok(x.sum(&[1], false)?)))),
    ];
    for l in cases {
        check_shapes(l, std::slice::from_ref(&img), std::slice::from_ref(&x));
    }
    // 1-d and 3-d families.
    let seq = sym(&[None, Some(2), None]);
    let xs = randn(&[3, 2, 11], 2);
    let cases: Vec<Box<dyn Layer>> = vec![
        Box::new(
            Conv1D::new(3, 3)
                .padding(PaddingMode::Causal)
                .dilation_rate(2),
        ),
        Box::new(
            Conv1DTranspose::new(3, 3)
                .strides(2)
                .padding(PaddingMode::Same),
        ),
        Box::new(MaxPooling1D::new(3).strides(2).padding(PaddingMode::Same)),
        Box::new(AveragePooling1D::new(2)),
        Box::new(GlobalMaxPooling1D::new()),
        Box::new(ZeroPadding1D::new(2)),
        Box::new(Cropping1D::asymmetric([(1, 3)])),
        Box::new(SpatialDropout1D::new(0.3)),
        Box::new(LayerNormalization::new().axis(&[1])),
    ];
    for l in cases {
        check_shapes(l, std::slice::from_ref(&seq), std::slice::from_ref(&xs));
    }
    let vol = sym(&[None, Some(2), None, Some(5), None]);
    let xv = randn(&[1, 2, 4, 5, 6], 3);
    let cases: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv3D::new(2, 3).padding(PaddingMode::Same).strides(2)),
        Box::new(Conv3DTranspose::new(2, 2).strides(2)),
        Box::new(MaxPooling3D::new(2)),
        Box::new(
            AveragePooling3D::new(2)
                .strides(1)
                .padding(PaddingMode::Same),
        ),
        Box::new(GlobalAveragePooling3D::new()),
        Box::new(ZeroPadding3D::new([1, 0, 2])),
        Box::new(Cropping3D::new(1)),
        Box::new(SpatialDropout3D::new(0.2)),
    ];
    for l in cases {
        check_shapes(l, std::slice::from_ref(&vol), std::slice::from_ref(&xv));
    }
    // Dense on the last axis of a sequence with an unknown length.
    check_shapes(
        Box::new(Dense::new(5)),
        &[sym(&[None, None, Some(2)])],
        &[randn(&[3, 7, 2], 6)],
    );
    // Merges with an unknown batch and a broadcast axis.
    let a = randn(&[2, 3, 4], 4);
    let c = randn(&[2, 1, 4], 5);
    let sa = sym(&[None, Some(3), Some(4)]);
    let sc = sym(&[None, Some(1), Some(4)]);
    for l in [
        Box::new(Add::new()) as Box<dyn Layer>,
        Box::new(Subtract::new()),
        Box::new(Multiply::new()),
        Box::new(Average::new()),
        Box::new(Maximum::new()),
        Box::new(Minimum::new()),
    ] {
        check_shapes(l, &[sa.clone(), sc.clone()], &[a.clone(), c.clone()]);
    }
    check_shapes(
        Box::new(Concatenate::new(1)),
        &[sa.clone(), sc.clone()],
        &[a.clone(), c.clone()],
    );
    // Flatten / Reshape with everything known resolve every size.
    let l = Reshape::new(&[-1, 2]);
    assert_eq!(
        l.output_shape(&[sym(&[None, Some(3), Some(4)])]).unwrap(),
        sym(&[None, Some(6), Some(2)])
    );
    assert_eq!(
        Flatten::new()
            .output_shape(&[sym(&[None, Some(3), None])])
            .unwrap(),
        sym(&[None, None])
    );
}

/// Non-default settings of every registered class, rebuilt from `config()`.
#[test]
fn configs_round_trip() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(
            Conv2D::new(8, [3, 5])
                .strides([2, 1])
                .padding(PaddingMode::Same)
                .dilation_rate([1, 2])
                .groups(2)
                .activation(Activation::LeakyRelu(0.1))
                .use_bias(false)
                .kernel_initializer(Initializer::HeNormal)
                .bias_initializer(Initializer::Constant(0.5))
                .kernel_regularizer(Regularizer::l2(1e-4))
                .bias_regularizer(Regularizer::l1(1e-3))
                .activity_regularizer(Regularizer::l1_l2(1e-5, 1e-6))
                .named("c2"),
        ),
        Box::new(
            Conv1D::new(4, 5)
                .padding(PaddingMode::Causal)
                .dilation_rate(3),
        ),
        Box::new(Conv3D::new(2, [1, 2, 3]).strides(2)),
        Box::new(
            Conv2DTranspose::new(3, 4)
                .strides(2)
                .padding(PaddingMode::Same)
                .output_padding(1)
                .activation(Activation::Sigmoid),
        ),
        Box::new(Conv1DTranspose::new(3, 2).dilation_rate(2)),
        Box::new(
            Conv3DTranspose::new(1, 2).kernel_initializer(Initializer::Orthogonal { gain: 2.0 }),
        ),
        Box::new(
            DepthwiseConv2D::new(3)
                .depth_multiplier(3)
                .strides(2)
                .depthwise_initializer(Initializer::LecunUniform)
                .depthwise_regularizer(Regularizer::l2(0.1)),
        ),
        Box::new(
            SeparableConv2D::new(6, 3)
                .depth_multiplier(2)
                .pointwise_initializer(Initializer::TruncatedNormal {
                    mean: 0.1,
                    stddev: 0.2,
                })
                .pointwise_regularizer(Regularizer::l1(0.2))
                .activation(Activation::Elu(0.5)),
        ),
        Box::new(
            MaxPooling2D::new([2, 3])
                .strides(1)
                .padding(PaddingMode::Same),
        ),
        Box::new(AveragePooling1D::new(4)),
        Box::new(MaxPooling3D::new(2)),
        Box::new(GlobalAveragePooling2D::new().keepdims(true)),
        Box::new(GlobalMaxPooling3D::new()),
        Box::new(AdaptiveAveragePooling2D::new([7, 5])),
        Box::new(MaxPooling1D::new(3).strides(2).ceil_mode(true)),
        Box::new(UpSampling2D::new([2, 4]).interpolation(Interpolation::Bilinear)),
        Box::new(ZeroPadding2D::asymmetric([(1, 2), (3, 4)])),
        Box::new(Cropping3D::asymmetric([(1, 0), (0, 2), (3, 3)])),
        Box::new(Flatten::new().named("flat")),
        Box::new(Reshape::new(&[2, -1, 3])),
        Box::new(Permute::new(&[3, 1, 2])),
        Box::new(Dropout::new(0.25)),
        Box::new(SpatialDropout2D::new(0.1)),
        Box::new(
            BatchNormalization::new()
                .axis(-1)
                .momentum(0.9)
                .epsilon(1e-5)
                .center(false)
                .gamma_regularizer(Regularizer::l2(0.01))
                .moving_variance_initializer(Initializer::Constant(2.0)),
        ),
        Box::new(
            LayerNormalization::new()
                .axis(&[1, 2])
                .epsilon(1e-6)
                .scale(false),
        ),
        Box::new(ActivationLayer::new(Activation::HardSilu)),
        Box::new(Add::new().named("plus")),
        Box::new(Subtract::new()),
        Box::new(Multiply::new()),
        Box::new(Average::new()),
        Box::new(Maximum::new()),
        Box::new(Minimum::new()),
        Box::new(Concatenate::new(-2)),
        Box::new(Dense::new(7).activation(Activation::Gelu)),
    ];
    for l in layers {
        let cfg = l.config();
        let again = layer_from_config(l.class_name(), &cfg)
            .unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
        assert_eq!(again.class_name(), l.class_name());
        assert_eq!(again.config(), cfg, "{}", l.class_name());
    }
    // Every activation variant survives a config round trip through the Activation layer.
    for a in [
        Activation::Linear,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu(0.3),
        Activation::Elu(0.7),
        Activation::Selu,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Sigmoid,
        Activation::HardSigmoid,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Silu,
        Activation::HardSilu,
        Activation::Softmax,
        Activation::LogSoftmax,
        Activation::Exponential,
    ] {
        let cfg = ActivationLayer::new(a).config();
        let l = ActivationLayer::from_config(&cfg).unwrap();
        assert_eq!(l.activation(), a);
    }
}

/// A whole Sequential CNN rebuilt from its config computes the same function.
#[test]
fn sequential_config_rebuilds_same_model() {
    let model = Sequential::new(&[3, 12, 12])
        .add(
            Conv2D::new(4, 3)
                .padding(PaddingMode::Same)
                .activation(Activation::Relu),
        )
        .add(BatchNormalization::new())
        .add(DepthwiseConv2D::new(3).depth_multiplier(2))
        .add(MaxPooling2D::new(2))
        .add(SeparableConv2D::new(6, 3).padding(PaddingMode::Same))
        .add(
            Conv2DTranspose::new(4, 3)
                .strides(2)
                .padding(PaddingMode::Same),
        )
        .add(UpSampling2D::new(2).interpolation(Interpolation::Bilinear))
        .add(ZeroPadding2D::new(1))
        .add(Cropping2D::new(2))
        .add(LayerNormalization::new().axis(&[1]))
        .add(SpatialDropout2D::new(0.2))
        .add(GlobalAveragePooling2D::new())
        .add(Dense::new(5))
        .add(ActivationLayer::new(Activation::Softmax))
        .build()
        .unwrap();
    let cfg = Network::config(&model).unwrap();
    let text = serde_json::to_string(&cfg).unwrap();
    let rebuilt = Sequential::from_config(&serde_json::from_str::<Value>(&text).unwrap()).unwrap();
    rebuilt.set_weights(&model.get_weights().unwrap()).unwrap();
    let names: Vec<String> = model.named_weights().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"batch_normalization/moving_variance".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"separable_conv2d/pointwise_kernel".to_string()),
        "{names:?}"
    );
    let x = randn(&[2, 3, 12, 12], 9);
    let a = model.predict_batch(&x).unwrap().to_vec::<f32>().unwrap();
    let b = rebuilt.predict_batch(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    assert_eq!(
        model.output_shapes(),
        vec![sym(&[None, Some(5)])],
        "declared output shape"
    );
}

fn err_text<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_are_clear_errors() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Conv2D", json!({"kernel_size": 3}), "'filters'"),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": [3, 3, 3]}),
            "'kernel_size'",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "padding": "full"}),
            "unknown padding 'full'",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "groups": 3}),
            "groups",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "padding": "causal"}),
            "causal",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "strides": 0}),
            "strides must be positive",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "activation": "swishy"}),
            "unknown activation 'swishy'",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "kernel_initializer": "magic"}),
            "unknown initializer 'magic'",
        ),
        ("Conv2D", json!([1, 2]), "must be a JSON object"),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "kernel_regularizer": {"l2": "big"}}),
            "'l2' must be a finite number >= 0",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "bias_regularizer": 0.1}),
            "bad regularizer config",
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": 3, "bias_initializer": {"name": "constant", "value": "a"}}),
            "'value' must be a finite number",
        ),
        (
            "Conv2DTranspose",
            json!({"filters": 2, "kernel_size": 3, "padding": "causal"}),
            "'valid' or 'same'",
        ),
        (
            "Conv2DTranspose",
            json!({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2}),
            "output_padding",
        ),
        (
            "DepthwiseConv2D",
            json!({"kernel_size": 3, "depth_multiplier": 0}),
            "depth_multiplier",
        ),
        (
            "MaxPooling2D",
            json!({"pool_size": [2, 0]}),
            "pool_size must be positive",
        ),
        (
            "UpSampling2D",
            json!({"size": 2, "interpolation": "lanczos"}),
            "unknown interpolation",
        ),
        (
            "ZeroPadding2D",
            json!({"padding": [[1, 2, 3], 1]}),
            "'padding'",
        ),
        ("Cropping2D", json!({"cropping": "a"}), "'cropping'"),
        (
            "Reshape",
            json!({"target_shape": [-1, -1]}),
            "at most one -1",
        ),
        ("Reshape", json!({"target_shape": 4}), "'target_shape'"),
        ("Permute", json!({"dims": [1, 1]}), "permutation"),
        ("Dropout", json!({"rate": 1.5}), "rate must be in [0, 1]"),
        ("Dropout", json!({}), "'rate'"),
        ("BatchNormalization", json!({"momentum": 2.0}), "momentum"),
        ("BatchNormalization", json!({"epsilon": -1.0}), "epsilon"),
        ("BatchNormalization", json!({"center": "yes"}), "'center'"),
        ("LayerNormalization", json!({"axis": "last"}), "'axis'"),
        ("Activation", json!({}), "'activation'"),
        ("Concatenate", json!({"axis": 1.5}), "'axis'"),
        ("Lambda", json!({"name": "f"}), "cannot be rebuilt"),
        (
            "NoSuchLayer",
            json!({}),
            "unknown layer class 'NoSuchLayer'",
        ),
    ];
    for (class, cfg, needle) in cases {
        let msg = err_text(layer_from_config(class, &cfg));
        assert!(
            msg.contains(needle),
            "{class} {cfg}: '{msg}' lacks '{needle}'"
        );
    }
}

#[test]
fn wrong_inputs_are_clear_errors() {
    // Wrong rank at build time and at call time, naming the layer.
    let mut conv = Conv2D::new(4, 3).named("c");
    let msg = err_text(conv.build(&[sym(&[None, Some(3), Some(8)])]));
    assert!(msg.contains("layer 'c'") && msg.contains("rank-4"), "{msg}");
    conv.build(&[sym(&[None, Some(3), None, None])]).unwrap();
    let msg = err_text(conv.call(&[randn(&[2, 3, 8], 1)], &mut CallCtx::new(false)));
    assert!(msg.contains("layer 'c'") && msg.contains("rank-4"), "{msg}");
    // Channels other than those built for.
    let msg = err_text(conv.call(&[randn(&[1, 4, 8, 8], 1)], &mut CallCtx::new(false)));
    assert!(msg.contains("3 input channels"), "{msg}");
    // A valid window larger than the input.
    let msg = err_text(conv.call(&[randn(&[1, 3, 2, 8], 1)], &mut CallCtx::new(false)));
    assert!(msg.contains("smaller than"), "{msg}");
    // Unknown channels cannot create weights.
    let msg = err_text(Conv2D::new(2, 3).build(&[sym(&[None, None, Some(4), Some(4)])]));
    assert!(msg.contains("channel"), "{msg}");
    // Calling before build.
    let msg =
        err_text(Conv2D::new(2, 3).call(&[randn(&[1, 3, 4, 4], 1)], &mut CallCtx::new(false)));
    assert!(msg.contains("before build"), "{msg}");
    // Pooling / upsampling / padding on the wrong rank.
    for l in [
        Box::new(MaxPooling2D::new(2).named("p")) as Box<dyn Layer>,
        Box::new(GlobalAveragePooling2D::new().named("p")),
        Box::new(UpSampling2D::new(2).named("p")),
        Box::new(ZeroPadding2D::new(1).named("p")),
        Box::new(Cropping2D::new(1).named("p")),
        Box::new(SpatialDropout2D::new(0.5).named("p")),
        Box::new(DepthwiseConv2D::new(3).named("p")),
    ] {
        let msg = err_text(l.output_shape(&[sym(&[None, Some(3), Some(8)])]));
        assert!(
            msg.contains("layer 'p'") && msg.contains("rank-4"),
            "{}: {msg}",
            l.class_name()
        );
        let msg = err_text(l.call(&[randn(&[2, 3, 8], 1)], &mut CallCtx::new(false)));
        assert!(msg.contains("layer 'p'"), "{}: {msg}", l.class_name());
    }
    let msg = err_text(Cropping2D::new(3).named("k").output_shape(&[sym(&[
        None,
        Some(1),
        Some(6),
        Some(9),
    ])]));
    assert!(msg.contains("removes all 6"), "{msg}");
    let mut ct = Conv2DTranspose::new(2, 2)
        .padding(PaddingMode::Same)
        .output_padding(0)
        .named("t");
    ct.build(&[sym(&[None, Some(1), None, None])]).unwrap();
    let msg = err_text(ct.call(&[randn(&[1, 1, 1, 3], 1)], &mut CallCtx::new(false)));
    assert!(msg.contains("empty output"), "{msg}");
    let msg = err_text(Reshape::new(&[5, -1]).output_shape(&[sym(&[None, Some(3), Some(4)])]));
    assert!(msg.contains("cannot reshape 12"), "{msg}");
    let msg =
        err_text(Permute::new(&[2, 1]).output_shape(&[sym(&[None, Some(3), Some(4), Some(5)])]));
    assert!(msg.contains("rank-3"), "{msg}");
    let msg = err_text(Add::new().output_shape(&[sym(&[None, Some(3)]), sym(&[None, Some(4)])]));
    assert!(msg.contains("cannot be broadcast"), "{msg}");
    let msg = err_text(Add::new().call(
        &[randn(&[2, 3], 1), randn(&[2, 4], 1)],
        &mut CallCtx::new(false),
    ));
    assert!(msg.contains("cannot be broadcast"), "{msg}");
    let msg = err_text(Subtract::new().output_shape(&vec![sym(&[None, Some(3)]); 3]));
    assert!(msg.contains("exactly 2 inputs"), "{msg}");
    let msg = err_text(Concatenate::new(1).output_shape(&[
        sym(&[None, Some(3), Some(4)]),
        sym(&[None, Some(3), Some(5)]),
    ]));
    assert!(msg.contains("every axis but 1"), "{msg}");
    let msg = err_text(Concatenate::new(0).output_shape(&vec![sym(&[None, Some(3)]); 2]));
    assert!(msg.contains("not a non-batch axis"), "{msg}");
    let mut bn = BatchNormalization::new().named("bn");
    let msg = err_text(bn.build(&[sym(&[None, None, Some(3)])]));
    assert!(msg.contains("known size on axis 1"), "{msg}");
    bn.build(&[sym(&[None, Some(3), None])]).unwrap();
    let msg = err_text(bn.call(&[randn(&[2, 4, 5], 1)], &mut CallCtx::new(true)));
    assert!(msg.contains("built for size 3"), "{msg}");
    let mut ln = LayerNormalization::new().axis(&[3]).named("ln");
    let msg = err_text(ln.build(&[sym(&[None, Some(3), Some(4)])]));
    assert!(msg.contains("axis 3"), "{msg}");
    let mut d = Dropout::new(-0.1);
    let msg = err_text(d.build(&[sym(&[None, Some(3)])]));
    assert!(msg.contains("rate"), "{msg}");
    // Errors surface through Sequential::build too.
    let msg = err_text(
        Sequential::new(&[1, 28, 28])
            .add(Conv2D::new(4, 5))
            .add(MaxPooling2D::new(2))
            .add(Conv2D::new(8, 13).named("too_big"))
            .build(),
    );
    assert!(
        msg.contains("too_big") && msg.contains("smaller than"),
        "{msg}"
    );
}

#[test]
fn batch_norm_training_inference_and_freezing() {
    let mut bn = BatchNormalization::new().momentum(0.5);
    bn.build(&[sym(&[None, Some(2), None])]).unwrap();
    let x = Tensor::from_vec(
        vec![1.0f32, 3.0, 10.0, 20.0, 5.0, 7.0, 30.0, 40.0],
        &[2, 2, 2],
    )
    .unwrap();
    let mm = bn.moving_mean().unwrap().clone();
    let mv = bn.moving_variance().unwrap().clone();
    // Inference leaves the statistics alone.
    bn.call(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    assert_eq!(mm.to_vec().unwrap(), vec![0.0, 0.0]);
    // Training: channel 0 holds {1, 3, 5, 7}: mean 4, biased var 5; channel 1 {10, 20, 30, 40}:
    // mean 25, biased var 125. moving = 0.5 * old + 0.5 * batch.
    let y = bn
        .call(std::slice::from_ref(&x), &mut CallCtx::new(true))
        .unwrap();
    assert_eq!(mm.to_vec().unwrap(), vec![2.0, 12.5]);
    assert_eq!(mv.to_vec().unwrap(), vec![3.0, 63.0]);
    let y0 = y.to_vec::<f32>().unwrap()[0];
    assert!(
        (y0 - (1.0 - 4.0) / (5.0f32 + 1e-3).sqrt()).abs() < 1e-5,
        "{y0}"
    );
    // Frozen: training mode behaves like inference and does not update.
    bn.set_trainable(false);
    assert!(!bn.is_trainable());
    assert!(bn.weights().iter().all(|p| !p.trainable()));
    let frozen = bn
        .call(std::slice::from_ref(&x), &mut CallCtx::new(true))
        .unwrap();
    let infer = bn
        .call(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    assert_eq!(
        frozen.to_vec::<f32>().unwrap(),
        infer.to_vec::<f32>().unwrap()
    );
    assert_eq!(mm.to_vec().unwrap(), vec![2.0, 12.5]);
    let f0 = frozen.to_vec::<f32>().unwrap()[0];
    assert!(
        (f0 - (1.0 - 2.0) / (3.0f32 + 1e-3).sqrt()).abs() < 1e-5,
        "{f0}"
    );
    // Unfreezing makes gamma/beta trainable again but never the moving statistics.
    bn.set_trainable(true);
    let flags: Vec<(String, bool)> = bn
        .weights()
        .iter()
        .map(|p| (p.name().to_string(), p.trainable()))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("gamma".into(), true),
            ("beta".into(), true),
            ("moving_mean".into(), false),
            ("moving_variance".into(), false)
        ]
    );
    // Frozen through the model API as well.
    let mut model = Sequential::new(&[2, 3])
        .add(BatchNormalization::new().named("bn"))
        .build()
        .unwrap();
    model.set_layer_trainable("bn", false).unwrap();
    assert!(model.trainable_weights().is_empty());
    let before = model.get_weights().unwrap()[2].to_vec::<f32>().unwrap();
    let mut ctx = CallCtx::new(true);
    model.forward(&[randn(&[4, 2, 3], 3)], &mut ctx).unwrap();
    assert_eq!(
        model.get_weights().unwrap()[2].to_vec::<f32>().unwrap(),
        before
    );
}

#[test]
fn activity_regularizer_only_in_training() {
    let mut conv = Conv2D::new(2, 3).activity_regularizer(Regularizer::l1(0.5));
    conv.build(&[sym(&[None, Some(1), None, None])]).unwrap();
    let x = randn(&[4, 1, 5, 5], 5);
    let mut ctx = CallCtx::new(false);
    conv.call(std::slice::from_ref(&x), &mut ctx).unwrap();
    assert!(ctx.losses().is_empty());
    let mut ctx = CallCtx::new(true);
    let y = conv.call(std::slice::from_ref(&x), &mut ctx).unwrap();
    let want: f64 = y
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.abs() as f64)
        .sum::<f64>()
        * 0.5
        / 4.0;
    let got = ctx.losses()[0].item().unwrap();
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
}

#[test]
fn lambda_layers() {
    // Output shape by probing: the sum over channels keeps unknown spatial sizes unknown.
    let l = Lambda::new(|x| Ok(x.sum(&[1], false)?.mul_scalar(2.0)?)).named("sum2");
    assert_eq!(
        l.output_shape(&[sym(&[None, Some(3), None, Some(4)])])
            .unwrap(),
        sym(&[None, None, Some(4)])
    );
    let x = Tensor::ones(&[2, 3, 2, 4]);
    let y = l.call(&[x], &mut CallCtx::new(false)).unwrap();
    assert_eq!(y.shape(), &[2, 2, 4]);
    assert!(y.to_vec::<f32>().unwrap().iter().all(|&v| v == 6.0));
    // An explicit shape function wins; a failing closure is a clear error.
    let l = Lambda::new(|x| Ok(x.clone())).output_shape_fn(|s| Ok(s.clone()));
    assert_eq!(
        l.output_shape(&[sym(&[None, Some(7)])]).unwrap(),
        sym(&[None, Some(7)])
    );
    let bad = Lambda::new(|x| Ok(x.reshape(&[5])?)).named("bad");
    let msg = err_text(bad.output_shape(&[sym(&[None, Some(3)])]));
    assert!(
        msg.contains("layer 'bad'") && msg.contains("output_shape_fn"),
        "{msg}"
    );
    // Gradients flow through the closure.
    let w = Tensor::from_vec(vec![1.0f32, -2.0], &[1, 2]).unwrap();
    GradCheck::default()
        .run(
            |xs| {
                let sq = Lambda::new(|x| Ok(x.square()?));
                sq.call(xs, &mut CallCtx::new(true)).map_err(|e| match e {
                    Error::Tensor(t) => t,
                    e => panic!("{e}"),
                })
            },
            &[w],
        )
        .unwrap();
    // In a Sequential, the architecture cannot be rebuilt, with a message saying why.
    let model = Sequential::new(&[3])
        .add(Lambda::new(|x| Ok(x.relu()?)))
        .build()
        .unwrap();
    let cfg = Network::config(&model).unwrap();
    let msg = err_text(Sequential::from_config(&cfg));
    assert!(
        msg.contains("Lambda") && msg.contains("cannot be rebuilt"),
        "{msg}"
    );
}

/// A custom layer written against the public trait: its own weight, an extra loss through
/// `ctx.add_loss`, registration for configs.
struct ScaleShift {
    name: String,
    penalty: f32,
    alpha: Option<Param>,
}

impl ScaleShift {
    fn new(penalty: f32) -> Self {
        ScaleShift {
            name: String::new(),
            penalty,
            alpha: None,
        }
    }
}

impl Layer for ScaleShift {
    fn class_name(&self) -> &'static str {
        "ScaleShift"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn build(&mut self, input_shapes: &[Shape]) -> ferrovision_nn::Result<()> {
        if self.alpha.is_none() {
            let c = input_shapes[0][1].ok_or_else(|| Error::layer(&self.name, "needs channels"))?;
            let v = Initializer::Constant(1.5).init_global(&[1, c, 1, 1], c, c)?;
            self.alpha = Some(Param::new("alpha", v, true));
        }
        Ok(())
    }
    fn output_shape(&self, input_shapes: &[Shape]) -> ferrovision_nn::Result<Shape> {
        Ok(input_shapes[0].clone())
    }
    fn call(&self, inputs: &[Tensor], ctx: &mut CallCtx) -> ferrovision_nn::Result<Tensor> {
        let a = self.alpha.as_ref().unwrap().value();
        if ctx.training {
            ctx.add_loss(a.square()?.sum_all()?.mul_scalar(self.penalty)?);
        }
        Ok(inputs[0].mul(&a)?)
    }
    fn weights(&self) -> Vec<Param> {
        self.alpha.iter().cloned().collect()
    }
    fn config(&self) -> Value {
        json!({"name": self.name, "penalty": self.penalty})
    }
}

fn scale_shift_from_config(cfg: &Value) -> ferrovision_nn::Result<Box<dyn Layer>> {
    let mut l = ScaleShift::new(cfg["penalty"].as_f64().unwrap_or(0.0) as f32);
    l.name = cfg["name"].as_str().unwrap_or("").to_string();
    Ok(Box::new(l))
}

#[test]
fn custom_layer_with_weights_and_extra_loss() {
    let model = Sequential::new(&[2, 4, 4])
        .add(Conv2D::new(3, 3).padding(PaddingMode::Same))
        .add(ScaleShift::new(0.25))
        .add(GlobalAveragePooling2D::new())
        .build()
        .unwrap();
    let names: Vec<String> = model.named_weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        vec!["conv2d/kernel", "conv2d/bias", "scale_shift/alpha"]
    );
    let x = randn(&[2, 2, 4, 4], 8);
    let mut ctx = CallCtx::new(true);
    let y = model
        .forward(std::slice::from_ref(&x), &mut ctx)
        .unwrap()
        .remove(0);
    let losses = ctx.take_losses();
    assert_eq!(losses.len(), 1);
    // 0.25 * 3 channels * 1.5^2
    assert!((losses[0].item().unwrap() - 0.25 * 3.0 * 2.25).abs() < 1e-6);
    // The extra loss and the output both reach the custom weight: d/dalpha of
    // sum(y) + 0.25 * sum(alpha^2) = sum over pixels of the conv output / 16 + 0.5 * alpha.
    let total = y.sum_all().unwrap().add(&losses[0]).unwrap();
    total.backward().unwrap();
    let alpha = model.named_weights().pop().unwrap().1;
    let g = alpha.grad().unwrap().to_vec::<f32>().unwrap();
    let inner = Sequential::new(&[2, 4, 4])
        .add(Conv2D::new(3, 3).padding(PaddingMode::Same))
        .build()
        .unwrap();
    inner
        .set_weights(&model.get_weights().unwrap()[..2])
        .unwrap();
    let conv_out = inner.predict_batch(&x).unwrap();
    let per_channel = conv_out
        .sum(&[0, 2, 3], false)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for c in 0..3 {
        let want = per_channel[c] / 16.0 + 0.5 * 1.5;
        assert!(
            (g[c] - want).abs() < 1e-4,
            "channel {c}: {} vs {want}",
            g[c]
        );
    }
    // Registered, the custom layer round-trips through a saved architecture.
    register_layer("ScaleShift", scale_shift_from_config);
    let cfg = Network::config(&model).unwrap();
    let rebuilt = Sequential::from_config(&cfg).unwrap();
    assert_eq!(rebuilt.count_params(), model.count_params());
}

#[test]
fn regularizer_penalty_and_gradient() {
    let w = Tensor::from_vec(vec![0.5f32, -1.5, 2.0, -0.25, 1.0, 0.0], &[2, 3]).unwrap();
    let vals = w.to_vec::<f32>().unwrap();
    let (l1, l2) = (0.03f32, 0.2f32);
    let r = Regularizer::l1_l2(l1, l2);
    let want: f64 = vals
        .iter()
        .map(|&v| l1 as f64 * v.abs() as f64 + l2 as f64 * (v as f64).powi(2))
        .sum();
    let got = r.penalty(&w).unwrap().item().unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Analytic gradient: l1 * sign(w) + 2 * l2 * w (away from 0, where |w| has no derivative).
    let leaf = w.detach().requires_grad_(true);
    r.penalty(&leaf).unwrap().backward().unwrap();
    let g = leaf.grad().unwrap().to_vec::<f32>().unwrap();
    for (i, (&v, &gv)) in vals.iter().zip(&g).enumerate().take(5) {
        let want = l1 * v.signum() + 2.0 * l2 * v;
        assert!((gv - want).abs() < 1e-6, "element {i}: {gv} vs {want}");
    }
    let away_from_zero = Tensor::from_vec(vec![0.5f32, -1.5, 2.0, -0.25], &[4]).unwrap();
    GradCheck::default()
        .run(
            |xs| {
                r.penalty(&xs[0]).map_err(|e| match e {
                    Error::Tensor(t) => t,
                    e => panic!("{e}"),
                })
            },
            &[away_from_zero],
        )
        .unwrap();
    assert_eq!(
        Regularizer::l1(0.0).penalty(&w).unwrap().item().unwrap(),
        0.0
    );
    // Kernel and bias regularizers reach the model's regularization loss; frozen weights don't.
    let mut model = Sequential::new(&[1, 5, 5])
        .add(
            Conv2D::new(2, 3)
                .kernel_regularizer(Regularizer::l2(0.1))
                .bias_regularizer(Regularizer::l1(0.2))
                .bias_initializer(Initializer::Constant(-0.5))
                .named("c"),
        )
        .add(Flatten::new())
        .add(
            Dense::new(2)
                .kernel_regularizer(Regularizer::l1(0.05))
                .named("d"),
        )
        .build()
        .unwrap();
    let ws = model.named_weights();
    let sum = |name: &str, f: &dyn Fn(f32) -> f64| -> f64 {
        let p = &ws.iter().find(|(n, _)| n == name).unwrap().1;
        p.to_vec().unwrap().iter().map(|&v| f(v)).sum()
    };
    let want = 0.1 * sum("c/kernel", &|v| (v as f64).powi(2))
        + 0.2 * sum("c/bias", &|v| v.abs() as f64)
        + 0.05 * sum("d/kernel", &|v| v.abs() as f64);
    let got = model
        .regularization_loss()
        .unwrap()
        .unwrap()
        .item()
        .unwrap();
    assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    model.set_layer_trainable("c", false).unwrap();
    let want_frozen = 0.05 * sum("d/kernel", &|v| v.abs() as f64);
    let got = model
        .regularization_loss()
        .unwrap()
        .unwrap()
        .item()
        .unwrap();
    assert!(
        (got - want_frozen).abs() < 1e-5 * want_frozen,
        "{got} vs {want_frozen}"
    );
}

#[test]
fn dense_layers_and_fused_paths_agree() {
    // Conv2D with a ReLU runs the fused kernel; it must equal relu(conv) of the linear layer
    // with the same weights.
    let mut fused = Conv2D::new(3, 3).activation(Activation::Relu);
    let mut plain = Conv2D::new(3, 3);
    let s = [sym(&[None, Some(2), None, None])];
    fused.build(&s).unwrap();
    plain.build(&s).unwrap();
    for (a, b) in fused.weights().iter().zip(plain.weights()) {
        b.assign(&a.to_vec().unwrap()).unwrap();
    }
    let x = randn(&[2, 2, 6, 6], 12);
    let y1 = fused
        .call(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap();
    let y2 = plain
        .call(std::slice::from_ref(&x), &mut CallCtx::new(false))
        .unwrap()
        .relu()
        .unwrap();
    let (a, b) = (y1.to_vec::<f32>().unwrap(), y2.to_vec::<f32>().unwrap());
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} vs {v}");
    }
}

/// The config keys of the weighted layers are the Keras names saved models and Keras configs
/// use (`depthwise_*` in the depthwise layers); the lists are written out here so a rename in
/// the shared option code cannot go unnoticed.
#[test]
fn weighted_layer_config_keys_are_the_keras_names() {
    let common = [
        "name",
        "activation",
        "use_bias",
        "bias_initializer",
        "bias_regularizer",
        "activity_regularizer",
    ];
    let window = ["kernel_size", "strides", "padding", "dilation_rate"];
    let kernel = ["kernel_initializer", "kernel_regularizer"];
    let depthwise = [
        "depthwise_initializer",
        "depthwise_regularizer",
        "depth_multiplier",
    ];
    let cases: Vec<(Box<dyn Layer>, Vec<&str>)> = vec![
        (Box::new(Dense::new(2)), [&["units"][..], &kernel].concat()),
        (
            Box::new(Conv2D::new(2, 3)),
            [&["filters", "groups"][..], &window, &kernel].concat(),
        ),
        (
            Box::new(Conv2DTranspose::new(2, 3)),
            [&["filters", "output_padding"][..], &window, &kernel].concat(),
        ),
        (
            Box::new(DepthwiseConv2D::new(3)),
            [&window[..], &depthwise].concat(),
        ),
        (
            Box::new(SeparableConv2D::new(2, 3)),
            [
                &["filters", "pointwise_initializer", "pointwise_regularizer"][..],
                &window,
                &depthwise,
            ]
            .concat(),
        ),
    ];
    for (layer, extra) in cases {
        let cfg = layer.config();
        let mut got: Vec<&str> = cfg
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut want: Vec<&str> = common.iter().copied().chain(extra).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{}", layer.class_name());
    }
}
