//! MobileNet v1 (Howard et al. 2017) exactly as Keras applications' `MobileNet` builds it, as a
//! functional graph of public layers (torchvision has no v1, so Keras is the reference).
//!
//! A 3x3/2 conv stem, then 13 depthwise-separable blocks (3x3 depthwise conv + BN + ReLU6,
//! 1x1 pointwise conv + BN + ReLU6) with 64, 128, 128, 256, 256, 512 (x6), 1024, 1024 output
//! channels, the blocks 2, 4, 6 and 12 strided. The width multiplier `alpha` scales every
//! channel count (`int(channels * alpha)`, as Keras truncates). Batch norm has Keras' defaults
//! (`eps = 1e-3`, momentum 0.99); convolutions have no bias (batch norm follows).
//!
//! Padding is TensorFlow's, as Keras does it: the stem and the stride-1 depthwise convs use
//! `same`; a strided depthwise conv is preceded by `ZeroPadding2D(((0, 1), (0, 1)))` and uses
//! `valid` (on odd sizes this differs from `same`, which would pad the top/left too). The top
//! is Keras': global average pool kept as `[N, C, 1, 1]`, dropout 1e-3, a 1x1 conv with bias to
//! `classes`, reshaped to `[N, classes]` (logits: no softmax). Images of at least 32x32, as
//! Keras requires.
//!
//! Layer names are Keras': `conv1`, `conv1_bn`, `conv1_relu`; block `i` (1..=13):
//! `conv_pad_{i}` (strided blocks), `conv_dw_{i}`, `conv_dw_{i}_bn`, `conv_dw_{i}_relu`,
//! `conv_pw_{i}`, `conv_pw_{i}_bn`, `conv_pw_{i}_relu`; top: `global_average_pooling2d`,
//! `dropout`, `conv_preds`, `reshape_2`. Weights are `<layer>/<weight>` in the stored layout
//! (`docs/nn.md`); Keras' `conv_dw_{i}/depthwise_kernel` is our `conv_dw_{i}/kernel`
//! ([`ferrovision_nn::layout::from_keras`] converts the layout). Freezing the prefix `conv_dw_1`
//! freezes only that layer: prefixes are whole path segments.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, BatchNormalization, Conv2D, DepthwiseConv2D, Dropout, GlobalAveragePooling2D,
    PaddingMode, Reshape, ZeroPadding2D,
};
use ferrovision_nn::{Activation, Error, Graph, Network, NodeId, Result};

/// `(pointwise channels, stride)` of blocks 1..=13.
const BLOCKS: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// Batch norm with Keras' defaults, then ReLU6 (`{name}_relu`), after the layer `name`.
fn bn_relu6(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
    let y = g.apply(
        BatchNormalization::new()
            .momentum(0.99)
            .epsilon(1e-3)
            .named(&format!("{name}_bn")),
        &[x],
    )?;
    g.apply(
        ActivationLayer::new(Activation::Relu6).named(&format!("{name}_relu")),
        &[y],
    )
}

/// MobileNet v1 with width multiplier `opts.alpha` (Keras applications' `MobileNet` with
/// `depth_multiplier = 1`): see the module header.
pub fn mobilenet_v1(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    let name = "mobilenet_v1";
    opts.check_image(name, 32)?;
    let alpha = opts.alpha;
    // Keras' int(channels * alpha); the narrowest layer (32 channels) must keep one.
    let width = |c: usize| (c as f64 * alpha) as usize;
    if !(alpha.is_finite() && alpha > 0.0) || width(32) == 0 {
        return Err(Error::config(format!(
            "{name}: alpha must be positive and leave the 32-channel stem a channel, got {alpha}"
        )));
    }
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = g.apply(
        Conv2D::new(width(32), 3)
            .strides(2)
            .padding(PaddingMode::Same)
            .use_bias(false)
            .named("conv1"),
        &[input],
    )?;
    let mut x = bn_relu6(&mut g, x, "conv1")?;
    for (i, &(channels, stride)) in BLOCKS.iter().enumerate() {
        let id = i + 1;
        let padding = if stride == 1 {
            PaddingMode::Same
        } else {
            x = g.apply(
                ZeroPadding2D::asymmetric([(0, 1), (0, 1)]).named(&format!("conv_pad_{id}")),
                &[x],
            )?;
            PaddingMode::Valid
        };
        let dw = format!("conv_dw_{id}");
        x = g.apply(
            DepthwiseConv2D::new(3)
                .strides(stride)
                .padding(padding)
                .use_bias(false)
                .named(&dw),
            &[x],
        )?;
        x = bn_relu6(&mut g, x, &dw)?;
        let pw = format!("conv_pw_{id}");
        x = g.apply(
            Conv2D::new(width(channels), 1).use_bias(false).named(&pw),
            &[x],
        )?;
        x = bn_relu6(&mut g, x, &pw)?;
    }
    let out = if opts.include_top {
        let x = g.apply(
            GlobalAveragePooling2D::new()
                .keepdims(true)
                .named("global_average_pooling2d"),
            &[x],
        )?;
        let x = g.apply(Dropout::new(1e-3).named("dropout"), &[x])?;
        let x = g.apply(Conv2D::new(opts.classes, 1).named("conv_preds"), &[x])?;
        g.apply(
            Reshape::new(&[opts.classes as isize]).named("reshape_2"),
            &[x],
        )?
    } else {
        crate::head::pool_features(&mut g, x, opts.pooling)?
    };
    Ok(Box::new(g.build(name, &[input], &[out])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pooling;
    use ferrovision_nn::NetworkExt;

    #[test]
    fn mobilenet_v1_shapes_names_and_limits() {
        let net = mobilenet_v1(&ModelOptions::new(&[3, 224, 224], 1000)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(1000)]);
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        for key in [
            "conv1/kernel",
            "conv1_bn/gamma",
            "conv_dw_1/kernel",
            "conv_dw_13_bn/moving_variance",
            "conv_pw_13/kernel",
            "conv_preds/kernel",
            "conv_preds/bias",
        ] {
            assert!(names.contains(&key.to_string()), "{key} missing");
        }
        let headless = ModelOptions::new(&[3, 64, 64], 10)
            .include_top(false)
            .alpha(0.5);
        let net = mobilenet_v1(&headless).unwrap();
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(512), Some(2), Some(2)]
        );
        let net = mobilenet_v1(&headless.clone().pooling(Pooling::Avg)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(512)]);
        let e = mobilenet_v1(&ModelOptions::new(&[3, 31, 64], 10))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 32x32"), "{e}");
        assert!(mobilenet_v1(&headless.clone().alpha(0.01)).is_err());
        assert!(mobilenet_v1(&headless.alpha(-1.0)).is_err());
    }
}
