//! GoogLeNet / Inception v1 (Szegedy et al. 2015) in torchvision's layout and names, with its
//! two auxiliary classifiers.
//!
//! Every convolution is torchvision's `BasicConv2d`: convolution without bias `<scope>/conv`,
//! batch norm `<scope>/bn` (`eps = 1e-3`), ReLU `<scope>/relu` ([`basic_conv`], shared with
//! Inception v3). The network: `conv1` (7x7/2, pad 3, 64), `maxpool1` (3x3/2), `conv2` (1x1,
//! 64), `conv3` (3x3, pad 1, 192), `maxpool2`, `inception3a`, `inception3b`, `maxpool3`,
//! `inception4a` .. `inception4e`, `maxpool4` (2x2/2), `inception5a`, `inception5b`, `avgpool`
//! (global average), `dropout` (0.2), `fc`. All max pools use PyTorch's `ceil_mode` (a last
//! partial window is kept), as torchvision's do. An inception module `<m>` concatenates
//! (`<m>/concat`) four branches: `<m>/branch1` (1x1), `<m>/branch2/0` (1x1) + `<m>/branch2/1`
//! (3x3), `<m>/branch3/0` (1x1) + `<m>/branch3/1` (3x3: torchvision's, where the paper has
//! 5x5, so that its ImageNet weights import) and `<m>/branch4/0` (3x3/1 max pool, pad 1) +
//! `<m>/branch4/1` (1x1). Weight names are torchvision's with `/`:
//! `inception4a/branch2/1/conv/kernel` is `inception4a.branch2.1.conv.weight`.
//!
//! With `aux_logits` the auxiliary classifiers `aux1` (on `inception4a`) and `aux2` (on
//! `inception4d`) are extra outputs after the main logits, in depth order `[logits, aux1,
//! aux2]` (torchvision's training-mode tuple is `(logits, aux2, aux1)`): `<a>/avgpool`
//! (adaptive average pooling to 4x4), `<a>/conv` (BasicConv2d 1x1, 128), `<a>/flatten`,
//! `<a>/fc1` (dense 1024), `<a>/relu`, `<a>/dropout` (0.7), `<a>/fc2` (dense `classes`). The
//! paper trains with the auxiliary losses weighted 0.3 and drops the heads at inference; here
//! they are plain outputs, so a training loop weights their losses and inference builds without
//! them (the default). They belong to the top: `aux_logits` without `include_top` is an error.
//!
//! torchvision's `transform_input` (on only for its pretrained weights) re-normalises
//! ImageNet-standardised input to the `(x - 0.5) / 0.5` range the original weights expect; it
//! is not built in here: with those weights, preprocess with `x / 127.5 - 1` directly.
//! Parameters: 6 624 904 with 1000 classes (torchvision's count without the auxiliary heads),
//! 13 004 888 with them. Any input of at least 15x15 (torchvision's minimum).

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, AdaptiveAveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
    Dropout, Flatten, GlobalAveragePooling2D, MaxPooling2D,
};
use ferrovision_nn::{Activation, Error, Graph, Initializer, Network, NodeId, Result};

/// Smallest input side (three ceil-mode 3x3/2 pools after the 7x7/2 stem).
pub const MIN_SIZE: usize = 15;

/// torchvision's `BasicConv2d` scoped `scope` on `x`: convolution `<scope>/conv` (no bias,
/// `filters`, `kernel` `[kh, kw]`, `stride`, PyTorch padding `pad` `[ph, pw]`), batch norm
/// `<scope>/bn` (`eps = 1e-3`, PyTorch momentum 0.1) and ReLU `<scope>/relu`.
pub fn basic_conv(
    g: &mut Graph,
    x: NodeId,
    scope: &str,
    filters: usize,
    kernel: [usize; 2],
    stride: usize,
    pad: [usize; 2],
) -> Result<NodeId> {
    let y = g.apply(
        Conv2D::new(filters, kernel)
            .strides(stride)
            .padding_explicit(pad)
            .use_bias(false)
            .kernel_initializer(Initializer::HeNormal)
            .named(&format!("{scope}/conv")),
        &[x],
    )?;
    let y = g.apply(
        BatchNormalization::new()
            .momentum(0.9)
            .epsilon(1e-3)
            .named(&format!("{scope}/bn")),
        &[y],
    )?;
    g.apply(
        ActivationLayer::new(Activation::Relu).named(&format!("{scope}/relu")),
        &[y],
    )
}

/// A square `k x k` BasicConv2d with stride 1 and padding `k / 2`.
fn conv(g: &mut Graph, x: NodeId, scope: &str, filters: usize, k: usize) -> Result<NodeId> {
    basic_conv(g, x, scope, filters, [k, k], 1, [k / 2, k / 2])
}

/// A max pool `k x k / s` in ceil mode named `name`, padding `pad`.
fn max_pool(
    g: &mut Graph,
    x: NodeId,
    name: &str,
    k: usize,
    s: usize,
    pad: usize,
) -> Result<NodeId> {
    let pool = MaxPooling2D::new(k)
        .strides(s)
        .padding_explicit(pad)
        .ceil_mode(true)
        .named(name);
    g.apply(pool, &[x])
}

/// An inception module `m`: output channels `c1 + c3 + c5 + pool_proj` (torchvision's
/// `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`).
fn inception(
    g: &mut Graph,
    x: NodeId,
    m: &str,
    [c1, c3r, c3, c5r, c5, pool_proj]: [usize; 6],
) -> Result<NodeId> {
    let b1 = conv(g, x, &format!("{m}/branch1"), c1, 1)?;
    let b2 = conv(g, x, &format!("{m}/branch2/0"), c3r, 1)?;
    let b2 = conv(g, b2, &format!("{m}/branch2/1"), c3, 3)?;
    let b3 = conv(g, x, &format!("{m}/branch3/0"), c5r, 1)?;
    let b3 = conv(g, b3, &format!("{m}/branch3/1"), c5, 3)?;
    let b4 = max_pool(g, x, &format!("{m}/branch4/0"), 3, 1, 1)?;
    let b4 = conv(g, b4, &format!("{m}/branch4/1"), pool_proj, 1)?;
    g.apply(
        Concatenate::new(1).named(&format!("{m}/concat")),
        &[b1, b2, b3, b4],
    )
}

/// An auxiliary classifier scoped `a` on `x`.
fn aux_head(g: &mut Graph, x: NodeId, a: &str, classes: usize) -> Result<NodeId> {
    let n = |l: &str| format!("{a}/{l}");
    let x = g.apply(AdaptiveAveragePooling2D::new(4).named(&n("avgpool")), &[x])?;
    let x = conv(g, x, &n("conv"), 128, 1)?;
    let x = g.apply(Flatten::new().named(&n("flatten")), &[x])?;
    let x = g.apply(Dense::new(1024).named(&n("fc1")), &[x])?;
    let x = g.apply(
        ActivationLayer::new(Activation::Relu).named(&n("relu")),
        &[x],
    )?;
    let x = g.apply(Dropout::new(0.7).named(&n("dropout")), &[x])?;
    g.apply(Dense::new(classes).named(&n("fc2")), &[x])
}

/// GoogLeNet (see the module header): outputs the logits, then with `aux_logits` the two
/// auxiliary classifiers' logits. At least 15x15.
pub fn googlenet(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    opts.check_image("googlenet", MIN_SIZE)?;
    opts.check_no_alpha("googlenet")?;
    if opts.aux_logits && !opts.include_top {
        return Err(Error::config(
            "googlenet: the auxiliary classifiers (aux_logits) are part of the top; build them with include_top",
        ));
    }
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = basic_conv(&mut g, input, "conv1", 64, [7, 7], 2, [3, 3])?;
    let x = max_pool(&mut g, x, "maxpool1", 3, 2, 0)?;
    let x = conv(&mut g, x, "conv2", 64, 1)?;
    let x = conv(&mut g, x, "conv3", 192, 3)?;
    let x = max_pool(&mut g, x, "maxpool2", 3, 2, 0)?;
    let x = inception(&mut g, x, "inception3a", [64, 96, 128, 16, 32, 32])?;
    let x = inception(&mut g, x, "inception3b", [128, 128, 192, 32, 96, 64])?;
    let x = max_pool(&mut g, x, "maxpool3", 3, 2, 0)?;
    let x4a = inception(&mut g, x, "inception4a", [192, 96, 208, 16, 48, 64])?;
    let x = inception(&mut g, x4a, "inception4b", [160, 112, 224, 24, 64, 64])?;
    let x = inception(&mut g, x, "inception4c", [128, 128, 256, 24, 64, 64])?;
    let x4d = inception(&mut g, x, "inception4d", [112, 144, 288, 32, 64, 64])?;
    let x = inception(&mut g, x4d, "inception4e", [256, 160, 320, 32, 128, 128])?;
    let x = max_pool(&mut g, x, "maxpool4", 2, 2, 0)?;
    let x = inception(&mut g, x, "inception5a", [256, 160, 320, 32, 128, 128])?;
    let x = inception(&mut g, x, "inception5b", [384, 192, 384, 48, 128, 128])?;
    let outputs = if opts.include_top {
        let y = g.apply(GlobalAveragePooling2D::new().named("avgpool"), &[x])?;
        let y = g.apply(Dropout::new(0.2).named("dropout"), &[y])?;
        let logits = g.apply(Dense::new(opts.classes).named("fc"), &[y])?;
        let mut outs = vec![logits];
        if opts.aux_logits {
            outs.push(aux_head(&mut g, x4a, "aux1", opts.classes)?);
            outs.push(aux_head(&mut g, x4d, "aux2", opts.classes)?);
        }
        outs
    } else {
        vec![crate::head::pool_features(&mut g, x, opts.pooling)?]
    };
    Ok(Box::new(g.build("googlenet", &[input], &outputs)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovision_nn::NetworkExt;

    fn count(net: &dyn Network) -> usize {
        net.trainable_weights().iter().map(|(_, p)| p.numel()).sum()
    }

    #[test]
    fn torchvision_counts_names_and_aux_outputs() {
        let opts = ModelOptions::new(&[3, 224, 224], 1000);
        let net = googlenet(&opts).unwrap();
        // torchvision's published num_params (its weights ship without the aux heads).
        assert_eq!(count(net.as_ref()), 6_624_904);
        let aux = googlenet(&opts.clone().aux_logits(true)).unwrap();
        assert_eq!(count(aux.as_ref()), 13_004_888);
        assert_eq!(aux.output_shapes().len(), 3);
        for s in aux.output_shapes() {
            assert_eq!(s, vec![None, Some(1000)]);
        }
        let names: Vec<String> = aux.named_weights().into_iter().map(|(n, _)| n).collect();
        for key in [
            "conv1/conv/kernel",
            "conv1/bn/gamma",
            "inception3a/branch1/conv/kernel",
            "inception4a/branch2/1/bn/moving_variance",
            "inception5b/branch4/1/conv/kernel",
            "aux1/conv/conv/kernel",
            "aux2/fc1/kernel",
            "aux2/fc2/bias",
            "fc/kernel",
        ] {
            assert!(names.iter().any(|n| n == key), "{key} missing");
        }
    }

    #[test]
    fn minimum_size_and_option_errors() {
        let ok = googlenet(&ModelOptions::new(&[3, MIN_SIZE, MIN_SIZE], 10).aux_logits(true));
        assert_eq!(ok.unwrap().output_shapes()[2], vec![None, Some(10)]);
        let e = googlenet(&ModelOptions::new(&[3, 14, 20], 10))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 15x15"), "{e}");
        let headless_aux = ModelOptions::new(&[3, 64, 64], 10)
            .include_top(false)
            .aux_logits(true);
        let e = googlenet(&headless_aux).err().unwrap();
        assert!(e.to_string().contains("aux_logits"), "{e}");
        assert!(googlenet(&ModelOptions::new(&[3, 64, 64], 10).alpha(2.0)).is_err());
    }
}
