//! Residual networks (He et al. 2016) as functional graphs of public layers: ResNet-18 in
//! torchvision's layout and the CIFAR ResNet-20.
//!
//! A basic block is `conv3x3(stride) - BN - ReLU - conv3x3 - BN`, added to the block's input
//! (or to a strided 1x1 conv + BN projection of it when the shape changes), then ReLU.
//! Convolutions have no bias (batch norm follows); batch norm uses PyTorch's defaults
//! (`eps = 1e-5`, running statistics updated with weight 0.1, i.e. Keras momentum 0.9).
//!
//! Names follow torchvision with `/` for `.`: `conv1`, `bn1`, `layer1/0/conv1`,
//! `layer1/0/bn2`, `layer2/0/downsample/0` (the projection conv), `layer2/0/downsample/1`
//! (its BN), `fc`; a weight is `<layer>/<weight>` (`kernel` for torchvision's `weight` of a
//! conv, `gamma`/`beta`/`moving_mean`/`moving_variance` for a BN's
//! `weight`/`bias`/`running_mean`/`running_var`). Weight-free layers (ReLU, add, pooling) get
//! names in the same scope (`layer1/0/relu`, `layer1/0/add`).
//!
//! Padding is PyTorch's: every `k x k` convolution pads `k / 2` on both sides (stem 7x7/2 pad
//! 3, 3x3 pad 1, 1x1 downsample pad 0) and the stem's 3x3/2 max pool pads 1 (implicitly, no
//! padded copy), so torchvision weights give torchvision's outputs exactly; the test
//! `tests/torchvision_resnet.rs` checks this against a torchvision reference. [`stem`] and
//! [`basic_block`] are public so truncated or custom residual nets reuse the same layers and
//! names.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D, MaxPooling2D,
};
use ferrovision_nn::{Activation, Graph, Initializer, Network, NodeId, Result};

/// Conv (no bias, He-normal, PyTorch padding `kernel / 2`) + batch norm, named `conv` and `bn`.
fn conv_bn(
    g: &mut Graph,
    x: NodeId,
    (conv, bn): (&str, &str),
    filters: usize,
    kernel: usize,
    stride: usize,
) -> Result<NodeId> {
    let y = g.apply(
        Conv2D::new(filters, kernel)
            .strides(stride)
            .padding_explicit(kernel / 2)
            .use_bias(false)
            .kernel_initializer(Initializer::HeNormal)
            .named(conv),
        &[x],
    )?;
    g.apply(
        BatchNormalization::new()
            .momentum(0.9)
            .epsilon(1e-5)
            .named(bn),
        &[y],
    )
}

fn relu(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
    g.apply(ActivationLayer::new(Activation::Relu).named(name), &[x])
}

/// One basic block scoped `scope` (e.g. `layer2/0`) on `x`, `filters` output channels, the
/// first convolution (and the projection shortcut, added when the stride or the channel count
/// changes) with `stride`. Returns the block's output node.
pub fn basic_block(
    g: &mut Graph,
    x: NodeId,
    scope: &str,
    filters: usize,
    stride: usize,
) -> Result<NodeId> {
    let cin = g.shape(x).and_then(|s| s[1]);
    let n = |l: &str| format!("{scope}/{l}");
    let y = conv_bn(g, x, (&n("conv1"), &n("bn1")), filters, 3, stride)?;
    let y = relu(g, y, &n("relu"))?;
    let y = conv_bn(g, y, (&n("conv2"), &n("bn2")), filters, 3, 1)?;
    let shortcut = if stride != 1 || cin != Some(filters) {
        let d = |i: usize| format!("{scope}/downsample/{i}");
        conv_bn(g, x, (&d(0), &d(1)), filters, 1, stride)?
    } else {
        x
    };
    let sum = g.apply(Add::new().named(&n("add")), &[y, shortcut])?;
    relu(g, sum, &n("relu_out"))
}

/// `blocks` basic blocks per stage, stage `i` named `layer{i+1}`, the first block of every
/// stage but the first with stride 2.
fn stages(g: &mut Graph, mut x: NodeId, widths: &[usize], blocks: usize) -> Result<NodeId> {
    for (i, &w) in widths.iter().enumerate() {
        for b in 0..blocks {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            x = basic_block(g, x, &format!("layer{}/{b}", i + 1), w, stride)?;
        }
    }
    Ok(x)
}

/// The ImageNet ResNet stem on `x`: 7x7/2 conv with 64 filters (pad 3) `conv1`, BN `bn1`, ReLU
/// `relu`, 3x3/2 max pool (pad 1) `maxpool`. Returns the pool's output node.
pub fn stem(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let x = conv_bn(g, x, ("conv1", "bn1"), 64, 7, 2)?;
    let x = relu(g, x, "relu")?;
    g.apply(
        MaxPooling2D::new(3)
            .strides(2)
            .padding_explicit(1)
            .named("maxpool"),
        &[x],
    )
}

/// ResNet-18: 7x7/2 conv stem, 3x3/2 max pool, stages of 2 basic blocks with 64, 128, 256 and
/// 512 channels, global average pool, dense `classes`. Needs images of at least 16x16.
pub fn resnet18(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    opts.check_image("resnet18", 16)?;
    opts.check_no_alpha("resnet18")?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = stem(&mut g, input)?;
    let x = stages(&mut g, x, &[64, 128, 256, 512], 2)?;
    finish(g, "resnet18", input, x, opts)
}

/// The CIFAR ResNet-20 of He et al. (2016, section 4.2): 3x3 conv stem (pad 1) with 16 channels, 3
/// stages of 3 basic blocks with 16, 32 and 64 channels, global average pool, dense `classes`
/// (projection shortcuts where the shape changes). Needs images of at least 8x8.
pub fn resnet20(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    opts.check_image("resnet20", 8)?;
    opts.check_no_alpha("resnet20")?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = conv_bn(&mut g, input, ("conv1", "bn1"), 16, 3, 1)?;
    let x = relu(&mut g, x, "relu")?;
    let x = stages(&mut g, x, &[16, 32, 64], 3)?;
    finish(g, "resnet20", input, x, opts)
}

/// The top (global average pool + dense classifier `fc`) or the headless end
/// ([`crate::head::pool_features`]); builds the graph.
fn finish(
    mut g: Graph,
    name: &str,
    input: NodeId,
    x: NodeId,
    opts: &ModelOptions,
) -> Result<Box<dyn Network>> {
    let out = if opts.include_top {
        let x = g.apply(GlobalAveragePooling2D::new().named("avgpool"), &[x])?;
        g.apply(Dense::new(opts.classes).named("fc"), &[x])?
    } else {
        crate::head::pool_features(&mut g, x, opts.pooling)?
    };
    Ok(Box::new(g.build(name, &[input], &[out])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovision_nn::NetworkExt;

    #[test]
    fn resnet18_has_torchvision_parameter_count_and_names() {
        let net = resnet18(&ModelOptions::new(&[3, 224, 224], 1000)).unwrap();
        let weights = net.named_weights();
        // torchvision's resnet18: 11 689 512 parameters, plus 2 x 9 600 BN running statistics
        // (which PyTorch keeps as buffers).
        let trainable: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
        assert_eq!(trainable, 11_689_512);
        let names: Vec<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
        for key in [
            "conv1/kernel",
            "bn1/gamma",
            "layer1/0/conv1/kernel",
            "layer1/1/bn2/moving_variance",
            "layer2/0/downsample/0/kernel",
            "layer4/1/conv2/kernel",
            "fc/kernel",
            "fc/bias",
        ] {
            assert!(names.contains(&key), "{key} missing from {names:?}");
        }
    }

    #[test]
    fn resnet20_is_the_paper_size() {
        // He et al. report 0.27 M parameters for ResNet-20 (option A shortcuts); the two 1x1
        // projections add 16*32 + 32*64 weights and their BN.
        let net = resnet20(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        let n: usize = net.trainable_weights().iter().map(|(_, p)| p.numel()).sum();
        assert_eq!(n, 272_474);
    }

    #[test]
    fn headless_resnet_ends_as_pooling_says() {
        use crate::Pooling;
        let opts = ModelOptions::new(&[3, 64, 64], 10).include_top(false);
        let net = resnet18(&opts).unwrap();
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(512), Some(2), Some(2)]
        );
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        assert!(!names.iter().any(|n| n.starts_with("fc/")), "{names:?}");
        for pooling in [Pooling::Avg, Pooling::Max] {
            let net = resnet18(&opts.clone().pooling(pooling)).unwrap();
            assert_eq!(net.output_shapes()[0], vec![None, Some(512)]);
        }
        assert!(resnet20(&ModelOptions::new(&[3, 32, 32], 10).alpha(0.5)).is_err());
    }
}
