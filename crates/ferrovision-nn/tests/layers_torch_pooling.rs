//! The PyTorch-only pooling options the torchvision architectures need: max/average pooling
//! `ceil_mode` (GoogLeNet's pools) and `AdaptiveAveragePooling2D` (VGG's `AdaptiveAvgPool2d`,
//! GoogLeNet's auxiliary heads). Values are hand-computed on small ramps (the same numbers
//! PyTorch gives: `max_pool2d(..., ceil_mode=True)`, `avg_pool2d(..., ceil_mode=True)`,
//! `adaptive_avg_pool2d`); shapes, config round trips (old configs without `ceil_mode` still
//! load) and errors. The zoo's GoogLeNet and VGG fixtures check both against torchvision on
//! whole networks.

use ferrovision_nn::layers::*;
use ferrovision_nn::tensor::Tensor;
use ferrovision_nn::{Error, Layer, Sequential};
use serde_json::json;

/// `[1, 1, h, w]` holding `1, 2, ..., h*w` row-major.
fn ramp(h: usize, w: usize) -> Tensor {
    let v: Vec<f32> = (1..=h * w).map(|i| i as f32).collect();
    Tensor::from_vec(v, &[1, 1, h, w]).unwrap()
}

fn run(layer: impl Layer + 'static, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let s = x.shape();
    let model = Sequential::new(&s[1..]).add(layer).build().unwrap();
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
fn ceil_mode_keeps_the_last_partial_window() {
    // 3x3/2 on 4x4: floor mode gives one window, ceil mode a second one over rows/cols 2..4.
    let (shape, y) = run(MaxPooling2D::new(3).strides(2).ceil_mode(true), &ramp(4, 4));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [11., 12., 15., 16.]);
    let (shape, _) = run(MaxPooling2D::new(3).strides(2), &ramp(4, 4));
    assert_eq!(shape, [1, 1, 1, 1]);

    // With padding 1: windows start at -1, 1 and 3 (the last one only holds row/col 3).
    let (shape, y) = run(
        MaxPooling2D::new(3)
            .strides(2)
            .padding_explicit(1)
            .ceil_mode(true),
        &ramp(4, 4),
    );
    assert_eq!(shape, [1, 1, 3, 3]);
    assert_eq!(y, [6., 8., 8., 14., 16., 16., 14., 16., 16.]);

    // Average: a partial window divides by its real elements only (PyTorch).
    let (shape, y) = run(AveragePooling2D::new(2).ceil_mode(true), &ramp(3, 3));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [3., 4.5, 7.5, 9.]);

    // A window smaller than the kernel still pools in ceil mode (PyTorch: 2x2 with 3x3/2).
    let (shape, y) = run(MaxPooling2D::new(3).strides(2).ceil_mode(true), &ramp(2, 2));
    assert_eq!(shape, [1, 1, 1, 1]);
    assert_eq!(y, [4.]);
}

#[test]
fn ceil_mode_shapes_and_errors() {
    let sym = |v: &[usize]| v.iter().map(|&d| Some(d)).collect::<Vec<_>>();
    // 2/2 pad 1 on 5: ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start in the
    // right padding (6 >= 5 + 1), so PyTorch drops it: 3.
    let l = MaxPooling1D::new(2).padding_explicit(1).ceil_mode(true);
    assert_eq!(
        l.output_shape(&[vec![None, Some(1), Some(5)]]).unwrap(),
        [None, Some(1), Some(3)]
    );
    // Unknown sizes stay unknown.
    assert_eq!(
        l.output_shape(&[vec![None, Some(1), None]]).unwrap(),
        [None, Some(1), None]
    );
    // 1 pixel cannot hold a 3x3/2 window even in ceil mode.
    let msg = err_text(
        MaxPooling2D::new(3)
            .strides(2)
            .ceil_mode(true)
            .named("pool")
            .output_shape(&[sym(&[1, 1, 1, 1])]),
    );
    assert!(msg.contains("pool") && msg.contains("too small"), "{msg}");
    // `same` already covers every input: ceil mode with it is a configuration error.
    let msg = err_text(
        MaxPooling2D::new(2)
            .padding(PaddingMode::Same)
            .ceil_mode(true)
            .output_shape(&[sym(&[1, 1, 4, 4])]),
    );
    assert!(msg.contains("ceil_mode"), "{msg}");
}

#[test]
fn ceil_mode_config_round_trip() {
    let l = MaxPooling2D::new(3)
        .strides(2)
        .padding_explicit(1)
        .ceil_mode(true);
    let cfg = l.config();
    assert_eq!(cfg["ceil_mode"], json!(true));
    let again = layer_from_config("MaxPooling2D", &cfg).unwrap();
    assert_eq!(again.config(), cfg);
    // Floor mode is not written, so configs saved before the option (and Keras') are unchanged
    // and still load.
    let cfg = AveragePooling2D::new(2).config();
    assert!(cfg.get("ceil_mode").is_none(), "{cfg}");
    let old = layer_from_config("AveragePooling2D", &json!({"pool_size": 2})).unwrap();
    assert_eq!(old.config(), cfg);
}

#[test]
fn adaptive_average_pooling_bins() {
    // Sizes that divide: plain 2x2 means.
    let (shape, y) = run(AdaptiveAveragePooling2D::new(2), &ramp(4, 4));
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(y, [3.5, 5.5, 11.5, 13.5]);
    // 5 -> 3: overlapping bins {0,1}, {1,2,3}, {3,4}.
    let (shape, y) = run(AdaptiveAveragePooling2D::new([1, 3]), &ramp(1, 5));
    assert_eq!(shape, [1, 1, 1, 3]);
    assert_eq!(y, [1.5, 3., 4.5]);
    // Larger output than input (VGG's 7x7 on a 1x1 map): the cell is replicated.
    let (shape, y) = run(AdaptiveAveragePooling2D::new(7), &ramp(1, 1));
    assert_eq!(shape, [1, 1, 7, 7]);
    assert_eq!(y, vec![1.0; 49]);
}

#[test]
fn adaptive_average_pooling_config_and_errors() {
    let l = AdaptiveAveragePooling2D::new([7, 5]).named("avgpool");
    let cfg = l.config();
    assert_eq!(cfg["output_size"], json!([7, 5]));
    let again = layer_from_config("AdaptiveAveragePooling2D", &cfg).unwrap();
    assert_eq!(again.config(), cfg);
    // Keras' single number reads as both sizes.
    let c = layer_from_config("AdaptiveAveragePooling2D", &json!({"output_size": 4})).unwrap();
    assert_eq!(c.config()["output_size"], json!([4, 4]));
    let msg = err_text(layer_from_config(
        "AdaptiveAveragePooling2D",
        &json!({"output_size": [0, 2]}),
    ));
    assert!(msg.contains("output_size"), "{msg}");
    let msg = err_text(
        AdaptiveAveragePooling2D::new(2)
            .named("ap")
            .output_shape(&[vec![None, Some(3), Some(4)]]),
    );
    assert!(msg.contains("ap"), "{msg}");
}
