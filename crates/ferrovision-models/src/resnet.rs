//! Residual networks (He et al. 2016) as functional graphs of public layers: ResNet-18/34/50/
//! 101/152 in torchvision's layout and the CIFAR ResNet-20/32/56.
//!
//! A basic block (ResNet-18/34 and the CIFAR nets) is `conv3x3(stride) - BN - ReLU - conv3x3 -
//! BN`, added to the block's input (or to a strided 1x1 conv + BN projection of it when the
//! shape changes), then ReLU. A bottleneck block (ResNet-50/101/152) is `conv1x1 - BN - ReLU -
//! conv3x3(stride) - BN - ReLU - conv1x1 (4x wider) - BN`, with the same shortcut rule:
//! torchvision's "v1.5", which strides the 3x3 conv (the paper and Keras stride the first 1x1).
//! Convolutions have no bias (batch norm follows); batch norm uses PyTorch's defaults
//! (`eps = 1e-5`, running statistics updated with weight 0.1, i.e. Keras momentum 0.9).
//!
//! Names follow torchvision with `/` for `.`: `conv1`, `bn1`, `layer1/0/conv1`,
//! `layer1/0/bn2` (and `layer1/0/conv3`, `layer1/0/bn3` in a bottleneck),
//! `layer2/0/downsample/0` (the projection conv), `layer2/0/downsample/1` (its BN), `fc`; a weight is `<layer>/<weight>` (`kernel` for torchvision's `weight` of a
//! conv, `gamma`/`beta`/`moving_mean`/`moving_variance` for a BN's
//! `weight`/`bias`/`running_mean`/`running_var`). Weight-free layers (ReLU, add, pooling) get
//! names in the same scope (`layer1/0/relu`, `layer1/0/relu2` in a bottleneck, `layer1/0/add`,
//! `layer1/0/relu_out`). Stage `i` is `layer{i}` (ImageNet nets: 4 stages, CIFAR nets: 3), so
//! freezing the prefix `layer1` freezes the first stage.
//!
//! Padding is PyTorch's: every `k x k` convolution pads `k / 2` on both sides (stem 7x7/2 pad
//! 3, 3x3 pad 1, 1x1 downsample pad 0) and the stem's 3x3/2 max pool pads 1 (implicitly, no
//! padded copy), so torchvision weights give torchvision's outputs exactly; the test
//! `tests/torchvision_resnet.rs` checks this against a torchvision reference, and
//! `tests/zoo_reference.rs` every net against torchvision (the CIFAR nets against a PyTorch
//! model of the same structure). [`stem`], [`basic_block`] and [`bottleneck_block`] are public
//! so truncated or custom residual nets reuse the same layers and names.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D, MaxPooling2D,
};
use ferrovision_nn::{Activation, Graph, Initializer, Network, NodeId, Result};

/// Conv (no bias, He-normal, PyTorch padding `kernel / 2`) + batch norm, named `conv` and `bn`.
pub(crate) fn conv_bn(
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

pub(crate) fn relu(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
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

/// One of the two residual block kinds, as [`basic_block`] and [`bottleneck_block`] build them
/// (`filters` is the block's width: its output for a basic block, a quarter of it for a
/// bottleneck).
type BlockFn = fn(&mut Graph, NodeId, &str, usize, usize) -> Result<NodeId>;

/// `blocks[i]` blocks in stage `i`, named `layer{i+1}`, `widths[i]` wide, the first block of
/// every stage but the first with stride 2.
fn stages(
    g: &mut Graph,
    mut x: NodeId,
    widths: &[usize],
    blocks: &[usize],
    block: BlockFn,
) -> Result<NodeId> {
    for (i, (&w, &n)) in widths.iter().zip(blocks).enumerate() {
        for b in 0..n {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            x = block(g, x, &format!("layer{}/{b}", i + 1), w, stride)?;
        }
    }
    Ok(x)
}

/// One bottleneck block scoped `scope` on `x` (torchvision's v1.5 `Bottleneck`): 1x1 conv to
/// `planes` channels, 3x3 conv with `stride`, 1x1 conv to `4 * planes` channels (each with
/// batch norm), plus the input or its projection (1x1 conv + BN with `stride`, added when the
/// stride or the channel count changes), then ReLU. Returns the block's output node.
pub fn bottleneck_block(
    g: &mut Graph,
    x: NodeId,
    scope: &str,
    planes: usize,
    stride: usize,
) -> Result<NodeId> {
    let cin = g.shape(x).and_then(|s| s[1]);
    let out = planes * BOTTLENECK_EXPANSION;
    let n = |l: &str| format!("{scope}/{l}");
    let y = conv_bn(g, x, (&n("conv1"), &n("bn1")), planes, 1, 1)?;
    let y = relu(g, y, &n("relu"))?;
    let y = conv_bn(g, y, (&n("conv2"), &n("bn2")), planes, 3, stride)?;
    let y = relu(g, y, &n("relu2"))?;
    let y = conv_bn(g, y, (&n("conv3"), &n("bn3")), out, 1, 1)?;
    let shortcut = if stride != 1 || cin != Some(out) {
        let d = |i: usize| format!("{scope}/downsample/{i}");
        conv_bn(g, x, (&d(0), &d(1)), out, 1, stride)?
    } else {
        x
    };
    let sum = g.apply(Add::new().named(&n("add")), &[y, shortcut])?;
    relu(g, sum, &n("relu_out"))
}

/// A bottleneck block's output is this many times its inner width.
pub const BOTTLENECK_EXPANSION: usize = 4;

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

/// An ImageNet ResNet: the [`stem`], four stages of `blocks[i]` blocks of `block` with 64,
/// 128, 256 and 512 (inner) channels, the top or the headless end. Images of at least 16x16.
fn imagenet_resnet(
    opts: &ModelOptions,
    name: &str,
    blocks: &[usize; 4],
    block: BlockFn,
) -> Result<Box<dyn Network>> {
    opts.check_image(name, 16)?;
    opts.check_no_alpha(name)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = stem(&mut g, input)?;
    let x = stages(&mut g, x, &[64, 128, 256, 512], blocks, block)?;
    finish(g, name, input, x, opts)
}

/// ResNet-18: 7x7/2 conv stem, 3x3/2 max pool, stages of 2 basic blocks with 64, 128, 256 and
/// 512 channels, global average pool, dense `classes`. Needs images of at least 16x16.
pub fn resnet18(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    imagenet_resnet(opts, "resnet18", &[2, 2, 2, 2], basic_block)
}

/// ResNet-34: as ResNet-18 with 3, 4, 6 and 3 basic blocks per stage (21.8 M parameters with
/// 1000 classes). Needs images of at least 16x16.
pub fn resnet34(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    imagenet_resnet(opts, "resnet34", &[3, 4, 6, 3], basic_block)
}

/// ResNet-50: the ResNet stem, 3, 4, 6 and 3 bottleneck blocks per stage (outputs 256, 512,
/// 1024, 2048 channels), global average pool, dense `classes` (25.6 M parameters with 1000
/// classes). Needs images of at least 16x16.
pub fn resnet50(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    imagenet_resnet(opts, "resnet50", &[3, 4, 6, 3], bottleneck_block)
}

/// ResNet-101: as ResNet-50 with 3, 4, 23 and 3 bottleneck blocks per stage (44.5 M
/// parameters with 1000 classes). Needs images of at least 16x16.
pub fn resnet101(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    imagenet_resnet(opts, "resnet101", &[3, 4, 23, 3], bottleneck_block)
}

/// ResNet-152: as ResNet-50 with 3, 8, 36 and 3 bottleneck blocks per stage (60.2 M
/// parameters with 1000 classes). Needs images of at least 16x16.
pub fn resnet152(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    imagenet_resnet(opts, "resnet152", &[3, 8, 36, 3], bottleneck_block)
}

/// A CIFAR ResNet-(6n+2) of He et al. (2016, section 4.2): 3x3 conv stem (pad 1) with 16
/// channels, 3 stages of `n` basic blocks with 16, 32 and 64 channels, global average pool,
/// dense `classes` (projection shortcuts where the shape changes). Images of at least 8x8.
fn cifar_resnet(opts: &ModelOptions, name: &str, n: usize) -> Result<Box<dyn Network>> {
    opts.check_image(name, 8)?;
    opts.check_no_alpha(name)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = conv_bn(&mut g, input, ("conv1", "bn1"), 16, 3, 1)?;
    let x = relu(&mut g, x, "relu")?;
    let x = stages(&mut g, x, &[16, 32, 64], &[n; 3], basic_block)?;
    finish(g, name, input, x, opts)
}

/// The CIFAR ResNet-20 of He et al. (2016, section 4.2): 3 stages of 3 basic blocks (16, 32,
/// 64 channels). Needs images of at least 8x8.
pub fn resnet20(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    cifar_resnet(opts, "resnet20", 3)
}

/// The CIFAR ResNet-32: 3 stages of 5 basic blocks. Needs images of at least 8x8.
pub fn resnet32(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    cifar_resnet(opts, "resnet32", 5)
}

/// The CIFAR ResNet-56: 3 stages of 9 basic blocks. Needs images of at least 8x8.
pub fn resnet56(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    cifar_resnet(opts, "resnet56", 9)
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

    #[test]
    fn bottleneck_resnets_have_torchvision_names_and_widths() {
        let opts = ModelOptions::new(&[3, 64, 64], 10).include_top(false);
        let net = resnet50(&opts).unwrap();
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(2048), Some(2), Some(2)]
        );
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        // The first block of layer1 projects 64 -> 256 channels at stride 1.
        for key in [
            "layer1/0/conv3/kernel",
            "layer1/0/bn3/gamma",
            "layer1/0/downsample/0/kernel",
            "layer4/2/conv2/kernel",
        ] {
            assert!(names.contains(&key.to_string()), "{key} missing");
        }
        assert!(!names.iter().any(|n| n.starts_with("layer1/1/downsample")));
        // 1x1 reduce, 3x3, 1x1 expand (where the stride sits is checked against torchvision's
        // outputs in tests/zoo_reference.rs).
        let kernel = |name: &str| {
            net.named_weights()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.shape())
                .unwrap()
        };
        assert_eq!(kernel("layer2/0/conv1/kernel"), vec![128, 256, 1, 1]);
        assert_eq!(kernel("layer2/0/conv2/kernel"), vec![128, 128, 3, 3]);
        let e = resnet152(&ModelOptions::new(&[3, 15, 64], 10))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 16x16"), "{e}");
        assert!(resnet101(&opts.alpha(2.0)).is_err());
    }
}
