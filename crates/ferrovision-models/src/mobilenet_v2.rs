//! MobileNet v2 (Sandler et al. 2018) in torchvision's layout and names, as a functional graph
//! of public layers.
//!
//! A 3x3/2 conv stem with 32 channels, 17 inverted-residual blocks, a 1x1 conv to 1280
//! channels, global average pool, dropout 0.2 and a dense classifier. An inverted-residual
//! block expands its input `t` times with a 1x1 conv (skipped when `t = 1`), filters it with a
//! 3x3 depthwise conv (the stage's first block strided), projects it back with a linear 1x1
//! conv, and adds the input when the stride is 1 and the channel counts agree. Every conv is
//! followed by batch norm (PyTorch's `eps = 1e-5`, momentum 0.1) and, except the projection, by
//! ReLU6. Stages `(t, channels, blocks, first stride)`: `(1, 16, 1, 1)`, `(6, 24, 2, 2)`,
//! `(6, 32, 3, 2)`, `(6, 64, 4, 2)`, `(6, 96, 3, 1)`, `(6, 160, 3, 2)`, `(6, 320, 1, 1)`.
//!
//! The width multiplier `alpha` (torchvision's `width_mult`) scales every channel count,
//! rounded to a multiple of 8 ([`make_divisible`]); the last conv keeps at least 1280
//! channels. Padding is PyTorch's (`kernel / 2` on both sides), so any input size works and
//! torchvision weights give torchvision's outputs; `tests/zoo_reference.rs` checks this.
//!
//! Layer names are torchvision's `state_dict` paths with `/` for `.`:
//! - `features/0/0` (stem conv), `features/0/1` (its BN), `features/0/2` (ReLU6);
//! - block `i` (1..=17): `features/{i}/conv/...`; with expansion `conv/0/{0,1,2}` is the 1x1
//!   expansion conv-BN-ReLU6, `conv/1/{0,1,2}` the depthwise conv-BN-ReLU6, `conv/2` the
//!   projection and `conv/3` its BN; without (block 1) `conv/0/{0,1,2}` is the depthwise
//!   triple, `conv/1` the projection and `conv/2` its BN; the residual sum is
//!   `features/{i}/add`;
//! - `features/18/{0,1,2}` (the 1x1 conv to 1280), `avgpool`, `classifier/0` (dropout),
//!   `classifier/1` (the dense classifier).
//!
//! Freezing the prefix `features` freezes the whole backbone.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Dropout,
    GlobalAveragePooling2D,
};
use ferrovision_nn::{Activation, Error, Graph, Initializer, Network, NodeId, Result};

/// `(expansion, channels, blocks, first stride)` of each stage (the paper's table 2).
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// torchvision's (and TensorFlow's) `_make_divisible`: `v` rounded to the nearest multiple of
/// `divisor` (at least `divisor`), one `divisor` more if rounding lost over 10 %.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * v {
        rounded + divisor
    } else {
        rounded
    }
}

/// Conv (no bias) + BN + ReLU6 named `{scope}/0`, `{scope}/1`, `{scope}/2` (torchvision's
/// `Conv2dNormActivation`); a depthwise conv when `depthwise`, else `filters` outputs.
fn conv_bn_relu6(
    g: &mut Graph,
    x: NodeId,
    scope: &str,
    filters: usize,
    (kernel, stride): (usize, usize),
    depthwise: bool,
) -> Result<NodeId> {
    let y = if depthwise {
        let dw = DepthwiseConv2D::new(kernel)
            .strides(stride)
            .padding_explicit(kernel / 2)
            .use_bias(false)
            .depthwise_initializer(Initializer::HeNormal)
            .named(&format!("{scope}/0"));
        g.apply(dw, &[x])?
    } else {
        g.apply(conv(filters, kernel, stride, &format!("{scope}/0")), &[x])?
    };
    let y = g.apply(batch_norm(&format!("{scope}/1")), &[y])?;
    g.apply(
        ActivationLayer::new(Activation::Relu6).named(&format!("{scope}/2")),
        &[y],
    )
}

/// A bias-free `kernel x kernel` conv with PyTorch padding.
fn conv(filters: usize, kernel: usize, stride: usize, name: &str) -> Conv2D {
    Conv2D::new(filters, kernel)
        .strides(stride)
        .padding_explicit(kernel / 2)
        .use_bias(false)
        .kernel_initializer(Initializer::HeNormal)
        .named(name)
}

/// Batch norm with PyTorch's defaults.
fn batch_norm(name: &str) -> BatchNormalization {
    BatchNormalization::new()
        .momentum(0.9)
        .epsilon(1e-5)
        .named(name)
}

/// One inverted-residual block `features/{index}` from `x` (`cin` channels) to `cout`
/// channels.
fn inverted_residual(
    g: &mut Graph,
    x: NodeId,
    index: usize,
    (cin, cout): (usize, usize),
    stride: usize,
    expansion: usize,
) -> Result<NodeId> {
    let scope = format!("features/{index}/conv");
    let hidden = cin * expansion;
    let mut y = x;
    let mut next = 0;
    if expansion != 1 {
        y = conv_bn_relu6(g, y, &format!("{scope}/0"), hidden, (1, 1), false)?;
        next = 1;
    }
    y = conv_bn_relu6(g, y, &format!("{scope}/{next}"), hidden, (3, stride), true)?;
    y = g.apply(conv(cout, 1, 1, &format!("{scope}/{}", next + 1)), &[y])?;
    y = g.apply(batch_norm(&format!("{scope}/{}", next + 2)), &[y])?;
    if stride == 1 && cin == cout {
        y = g.apply(Add::new().named(&format!("features/{index}/add")), &[x, y])?;
    }
    Ok(y)
}

/// MobileNet v2 (torchvision's `mobilenet_v2`, `width_mult = alpha`): see the module header.
/// Any input size works; `alpha` must be positive.
pub fn mobilenet_v2(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    let name = "mobilenet_v2";
    opts.check_image(name, 1)?;
    let alpha = opts.alpha;
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::config(format!(
            "{name}: alpha must be positive, got {alpha}"
        )));
    }
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let mut cin = make_divisible(32.0 * alpha, 8);
    let mut x = conv_bn_relu6(&mut g, input, "features/0", cin, (3, 2), false)?;
    let mut index = 1;
    for (t, c, n, first_stride) in STAGES {
        let cout = make_divisible(c as f64 * alpha, 8);
        for b in 0..n {
            let stride = if b == 0 { first_stride } else { 1 };
            x = inverted_residual(&mut g, x, index, (cin, cout), stride, t)?;
            cin = cout;
            index += 1;
        }
    }
    let last = make_divisible(1280.0 * alpha.max(1.0), 8);
    let x = conv_bn_relu6(&mut g, x, &format!("features/{index}"), last, (1, 1), false)?;
    let out = if opts.include_top {
        let x = g.apply(GlobalAveragePooling2D::new().named("avgpool"), &[x])?;
        let x = g.apply(Dropout::new(0.2).named("classifier/0"), &[x])?;
        g.apply(Dense::new(opts.classes).named("classifier/1"), &[x])?
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
    fn make_divisible_is_torchvisions() {
        // torchvision's values: 11.2 rounds to 8, which loses over 10 %, so 16; 18 rounds to
        // 16 < 0.9 * 18, so 24; at least the divisor.
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(16.0 * 0.5, 8), 8);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        assert_eq!(make_divisible(24.0 * 0.75, 8), 24);
        assert_eq!(make_divisible(3.0, 8), 8);
    }

    #[test]
    fn headless_mobilenet_v2_ends_as_pooling_says_and_names_blocks() {
        let opts = ModelOptions::new(&[3, 64, 64], 10).include_top(false);
        let net = mobilenet_v2(&opts).unwrap();
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(1280), Some(2), Some(2)]
        );
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        for key in [
            "features/0/0/kernel",
            "features/1/conv/0/0/kernel",
            "features/1/conv/2/gamma",
            "features/2/conv/1/0/kernel",
            "features/17/conv/3/moving_variance",
            "features/18/1/beta",
        ] {
            assert!(names.contains(&key.to_string()), "{key} missing");
        }
        assert!(!names.iter().any(|n| n.starts_with("classifier")));
        let net = mobilenet_v2(&opts.clone().pooling(Pooling::Max)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(1280)]);
        assert!(mobilenet_v2(&opts.clone().alpha(0.0)).is_err());
        assert!(mobilenet_v2(&ModelOptions::new(&[3, 0, 8], 10)).is_err());
    }
}
