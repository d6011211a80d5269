//! PyTorch-style explicit padding (`padding_explicit`, saved as `"padding": [p, ...]`) of the
//! convolutions and poolings: shapes and values against hand-computed small cases (where
//! TensorFlow `same` would give different numbers), config round trips (a Keras string still
//! loads) and clear errors. The torchvision ResNet fixture in ferrovision-models checks the same
//! padding against PyTorch on a real network.

use ferrovision_nn::layers::*;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Error, Initializer, Layer, Network, NetworkExt, Sequential};
use serde_json::{json, Value};

/// `[1, 1, h, w]` holding `1, 2, ..., h*w` (times `scale`) row-major.
fn ramp(h: usize, w: usize, scale: f32) -> Tensor {
    let v: Vec<f32> = (1..=h * w).map(|i| i as f32 * scale).collect();
    Tensor::from_vec(v, &[1, 1, h, w]).unwrap()
}

fn run(model: Sequential, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let y = model.predict_batch(x).unwrap();
    (y.shape().to_vec(), y.to_vec::<f32>().unwrap())
}

fn err_text<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conv2d_explicit_padding_values() {
    let ones3 = || {
        Conv2D::new(1, 3)
            .use_bias(false)
            .kernel_initializer(Initializer::Ones)
    };
    // Pad 1, stride 1 on 1..9: each output is the sum of the 3x3 neighbourhood.
    let m = Sequential::new(&[1, 3, 3])
        .add(ones3().padding_explicit(1))
        .build()
        .unwrap();
    let (shape, y) = run(m, &ramp(3, 3, 1.0));
    assert_eq!(shape, [1, 1, 3, 3]);
    assert_eq!(y, [12., 21., 16., 27., 45., 33., 24., 39., 28.]);

    // Pad 1, stride 2 on a 4x4 ramp: windows centred on (0,0), (0,2), (2,0), (2,2). TF `same`
    // would pad (0, 1) and give 54 for the first window.
    let m = Sequential::new(&[1, 4, 4])
        .add(ones3().padding_explicit(1).strides(2))
        .build()
        .unwrap();
    let (shape, y) = run(m, &ramp(4, 4, 1.0));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [14., 30., 57., 99.]);

    // Per-axis amounts: no padding along H, 1 along W.
    let m = Sequential::new(&[1, 4, 4])
        .add(ones3().padding_explicit([0, 1]))
        .build()
        .unwrap();
    assert_eq!(m.output_shapes()[0], vec![None, Some(1), Some(2), Some(4)]);
    let (shape, y) = run(m, &ramp(4, 4, 1.0));
    assert_eq!(shape, [1, 1, 2, 4]);
    assert_eq!(y[0], 1. + 2. + 5. + 6. + 9. + 10.);
}

#[test]
fn conv1d_depthwise_separable_explicit_padding() {
    let m = Sequential::new(&[1, 4])
        .add(
            Conv1D::new(1, 3)
                .use_bias(false)
                .kernel_initializer(Initializer::Ones)
                .padding_explicit(2),
        )
        .build()
        .unwrap();
    let x = Tensor::from_vec(vec![1f32, 2., 3., 4.], &[1, 1, 4]).unwrap();
    let (shape, y) = run(m, &x);
    assert_eq!(shape, [1, 1, 6]);
    assert_eq!(y, [1., 3., 6., 9., 7., 4.]);

    // Two channels (1..9 and 10x that), each convolved with its own ones kernel.
    let mut v: Vec<f32> = (1..=9).map(|i| i as f32).collect();
    v.extend((1..=9).map(|i| 10.0 * i as f32));
    let x = Tensor::from_vec(v, &[1, 2, 3, 3]).unwrap();
    let m = Sequential::new(&[2, 3, 3])
        .add(
            DepthwiseConv2D::new(3)
                .use_bias(false)
                .depthwise_initializer(Initializer::Ones)
                .padding_explicit(1),
        )
        .build()
        .unwrap();
    let (shape, y) = run(m, &x);
    assert_eq!(shape, [1, 2, 3, 3]);
    assert_eq!((y[0], y[4], y[9], y[13]), (12., 45., 120., 450.));

    // Separable: the depthwise step pads, the pointwise step sums the two channels.
    let m = Sequential::new(&[2, 3, 3])
        .add(
            SeparableConv2D::new(1, 3)
                .use_bias(false)
                .depthwise_initializer(Initializer::Ones)
                .pointwise_initializer(Initializer::Ones)
                .padding_explicit(1)
                .strides(2),
        )
        .build()
        .unwrap();
    let (shape, y) = run(m, &x);
    assert_eq!(shape, [1, 1, 2, 2]);
    // Windows centred on (0,0), (0,2), (2,0), (2,2) of the 3x3 ramp, times 1 + 10.
    assert_eq!(y, [12. * 11., 16. * 11., 24. * 11., 28. * 11.]);
}

#[test]
fn pooling_explicit_padding_values() {
    // Max pool 3/2 pad 1 on a negative 4x4 ramp: padding never wins (zeros would).
    let m = Sequential::new(&[1, 4, 4])
        .add(MaxPooling2D::new(3).strides(2).padding_explicit(1))
        .build()
        .unwrap();
    let (shape, y) = run(m, &ramp(4, 4, -1.0));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [-1., -2., -5., -6.]);

    // Average pool 2/2 pad 1 on [[1, 2], [3, 4]]: every window holds one value and three
    // padded zeros, which count in the divisor (PyTorch's default).
    let m = Sequential::new(&[1, 2, 2])
        .add(AveragePooling2D::new(2).padding_explicit(1))
        .build()
        .unwrap();
    let (shape, y) = run(m, &ramp(2, 2, 1.0));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [0.25, 0.5, 0.75, 1.0]);

    let x = Tensor::from_vec(vec![3f32, 6., 9.], &[1, 1, 3]).unwrap();
    let m = Sequential::new(&[1, 3])
        .add(AveragePooling1D::new(3).strides(1).padding_explicit(1))
        .build()
        .unwrap();
    assert_eq!(run(m, &x), (vec![1, 1, 3], vec![3., 6., 5.]));
    let m = Sequential::new(&[1, 3])
        .add(MaxPooling1D::new(2).padding_explicit(1))
        .build()
        .unwrap();
    assert_eq!(run(m, &x), (vec![1, 1, 2], vec![3., 9.]));
}

#[test]
fn explicit_padding_config_round_trip() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2D::new(2, 3).padding_explicit([1, 2])),
        Box::new(Conv1D::new(2, 5).padding_explicit(2)),
        Box::new(Conv3D::new(2, 3).padding_explicit(1)),
        Box::new(DepthwiseConv2D::new(3).padding_explicit(1)),
        Box::new(SeparableConv2D::new(4, 3).padding_explicit([0, 1])),
        Box::new(MaxPooling2D::new(3).strides(2).padding_explicit(1)),
        Box::new(AveragePooling1D::new(4).padding_explicit(2)),
    ];
    for l in layers {
        let cfg = l.config();
        assert!(cfg["padding"].is_array(), "{}: {cfg}", l.class_name());
        let again = layer_from_config(l.class_name(), &cfg).unwrap();
        assert_eq!(again.config(), cfg, "{}", l.class_name());
    }
    assert_eq!(
        Conv2D::new(2, 3).padding_explicit([1, 2]).config()["padding"],
        json!([1, 2])
    );
    // One number reads as that amount on every axis; Keras names still load.
    let c = layer_from_config(
        "Conv2D",
        &json!({"filters": 2, "kernel_size": 3, "padding": 1}),
    );
    assert_eq!(c.unwrap().config()["padding"], json!([1, 1]));
    let c = layer_from_config(
        "Conv2D",
        &json!({"filters": 2, "kernel_size": 3, "padding": "SAME"}),
    );
    assert_eq!(c.unwrap().config()["padding"], json!("same"));
    let c = layer_from_config("MaxPooling2D", &json!({"pool_size": 2}));
    assert_eq!(c.unwrap().config()["padding"], json!("valid"));

    // A saved model with explicit padding rebuilds the same function.
    let model = Sequential::new(&[2, 8, 8])
        .add(Conv2D::new(3, 3).strides(2).padding_explicit(1))
        .add(MaxPooling2D::new(3).strides(2).padding_explicit(1))
        .add(AveragePooling2D::new(2).strides(1).padding_explicit([1, 0]))
        .build()
        .unwrap();
    let text = serde_json::to_string(&Network::config(&model).unwrap()).unwrap();
    let rebuilt = Sequential::from_config(&serde_json::from_str::<Value>(&text).unwrap()).unwrap();
    rebuilt.set_weights(&model.get_weights().unwrap()).unwrap();
    let x = Tensor::from_vec(
        (0..128).map(|i| (i as f32 * 0.37).sin()).collect(),
        &[1, 2, 8, 8],
    )
    .unwrap();
    let a = model.predict_batch(&x).unwrap();
    let b = rebuilt.predict_batch(&x).unwrap();
    assert_eq!(a.shape(), &[1, 3, 3, 1]);
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

#[test]
fn bad_explicit_padding_is_a_clear_error() {
    // PyTorch's rule: pooling padding at most half the window, error naming the layer.
    let msg = err_text(
        Sequential::new(&[1, 8, 8])
            .add(MaxPooling2D::new(3).padding_explicit(2).named("pool"))
            .build(),
    );
    assert!(
        msg.contains("'pool'") && msg.contains("at most half"),
        "{msg}"
    );
    let msg = err_text(layer_from_config(
        "AveragePooling2D",
        &json!({"name": "avg", "pool_size": [2, 4], "padding": [1, 3]}),
    ));
    assert!(
        msg.contains("'avg'") && msg.contains("at most half"),
        "{msg}"
    );
    // Wrong number of amounts or a bad type: the error names the key.
    for bad in [json!([1, 2, 3]), json!("bogus"), json!([-1, 1])] {
        let msg = err_text(layer_from_config(
            "Conv2D",
            &json!({"filters": 1, "kernel_size": 3, "padding": bad}),
        ));
        assert!(msg.contains("padding"), "{bad}: {msg}");
    }
    // A padded input still smaller than the window.
    let msg = err_text(
        Sequential::new(&[1, 2, 2])
            .add(Conv2D::new(1, 5).padding_explicit(1).named("c5"))
            .build(),
    );
    assert!(
        msg.contains("'c5'") && msg.contains("smaller than"),
        "{msg}"
    );
}
