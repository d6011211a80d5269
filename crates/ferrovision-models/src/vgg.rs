//! VGG (Simonyan & Zisserman 2015) in torchvision's layout and names: VGG-16 and VGG-19
//! (configurations D and E), their batch-norm variants, and the fully-convolutional VGG-16.
//!
//! `features` is a flat sequence numbered as torchvision's `nn.Sequential`: for every entry of
//! the configuration a 3x3 convolution (pad 1, with bias), for the `_bn` variants a batch norm
//! (`eps = 1e-5`), and a ReLU, each taking the next index; every `M` is a 2x2/2 max pool. For
//! VGG-16: `features/0` (conv 64), `features/1` (ReLU), `features/2` (conv 64), `features/3`
//! (ReLU), `features/4` (pool), ..., `features/28` (last conv), `features/30` (last pool); VGG-19
//! ends with `features/34` and `features/36`; VGG-16-BN with `features/40` and `features/43`.
//! A weight is `features/0/kernel`, `features/0/bias`, `features/1/gamma` (BN variants)...
//!
//! The top is torchvision's: `avgpool` (adaptive average pooling to 7x7), `flatten`,
//! `classifier/0` (dense 4096), `classifier/1` (ReLU), `classifier/2` (dropout 0.5),
//! `classifier/3` (dense 4096), `classifier/4`, `classifier/5`, `classifier/6` (dense
//! `classes`). The adaptive pooling makes the top accept any input of at least 32x32 exactly as
//! torchvision does (a 1x1 final map at 32x32 is replicated to 7x7; at 224x224 it is the
//! identity), so the parameter count does not depend on the input size: 138 357 544 for VGG-16
//! and 143 667 240 for VGG-19 with 1000 classes, equal to torchvision and to Keras applications
//! (whose top is `Flatten` at a fixed 224x224; the weights are the same tensors, Keras' dense
//! kernels flattened channels-last). Headless (`include_top = false`) the network ends after
//! the last max pool (Keras' `block5_pool`), pooled as `pooling` says.
//!
//! `vgg16_fcn` is VGG-16 with the classifier's dense layers as convolutions holding the same
//! weights: `classifier/0` a 7x7 convolution with 4096 filters (valid), `classifier/3` and
//! `classifier/6` 1x1 convolutions, so it outputs a `[N, classes, H/32 - 6, W/32 - 6]` class
//! score map (needs at least 224x224; at exactly 224 the map is 1x1 and equals VGG-16's logits).
//! [`fcn_from_vgg`] converts a trained `vgg16` into it.

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, AdaptiveAveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
    MaxPooling2D,
};
use ferrovision_nn::{Activation, Error, Graph, Initializer, Network, NetworkExt, NodeId, Result};

/// A configuration entry: a 3x3 convolution with that many filters, or `M` (max pool).
const M: usize = 0;
/// Configuration D (VGG-16).
const CFG_16: &[usize] = &[
    64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M,
];
/// Configuration E (VGG-19).
const CFG_19: &[usize] = &[
    64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M,
];

/// Smallest input side: five 2x2/2 pools must leave at least one pixel.
pub const MIN_SIZE: usize = 32;
/// Smallest input side of the fully-convolutional variant (the 7x7 `classifier/0`).
pub const FCN_MIN_SIZE: usize = 224;

/// The `features` sequence of `cfg` on `x`, numbered as torchvision's (see the module header).
fn features(g: &mut Graph, mut x: NodeId, cfg: &[usize], batch_norm: bool) -> Result<NodeId> {
    let mut i = 0;
    let mut next = || {
        i += 1;
        format!("features/{}", i - 1)
    };
    for &c in cfg {
        if c == M {
            x = g.apply(MaxPooling2D::new(2).strides(2).named(&next()), &[x])?;
            continue;
        }
        x = g.apply(
            Conv2D::new(c, 3)
                .padding_explicit(1)
                .kernel_initializer(Initializer::HeNormal)
                .named(&next()),
            &[x],
        )?;
        if batch_norm {
            x = g.apply(
                BatchNormalization::new()
                    .momentum(0.9)
                    .epsilon(1e-5)
                    .named(&next()),
                &[x],
            )?;
        }
        x = g.apply(ActivationLayer::new(Activation::Relu).named(&next()), &[x])?;
    }
    Ok(x)
}

/// The classifier (`classifier/0..6`) on `x`: dense layers, or for the fully-convolutional
/// variant 7x7 and 1x1 convolutions with the same weights.
fn classifier(g: &mut Graph, mut x: NodeId, classes: usize, conv: bool) -> Result<NodeId> {
    let widths = [4096, 4096, classes];
    for (j, &w) in widths.iter().enumerate() {
        let name = format!("classifier/{}", 3 * j);
        x = if conv {
            let k = if j == 0 { 7 } else { 1 };
            g.apply(Conv2D::new(w, k).named(&name), &[x])?
        } else {
            g.apply(Dense::new(w).named(&name), &[x])?
        };
        if j < 2 {
            let relu = ActivationLayer::new(Activation::Relu);
            x = g.apply(relu.named(&format!("classifier/{}", 3 * j + 1)), &[x])?;
            let drop = Dropout::new(0.5).named(&format!("classifier/{}", 3 * j + 2));
            x = g.apply(drop, &[x])?;
        }
    }
    Ok(x)
}

/// Builds `name` from `cfg` (see the module header).
fn vgg(
    name: &str,
    opts: &ModelOptions,
    cfg: &[usize],
    batch_norm: bool,
    fcn: bool,
) -> Result<Box<dyn Network>> {
    let fcn_top = fcn && opts.include_top;
    opts.check_image(name, if fcn_top { FCN_MIN_SIZE } else { MIN_SIZE })?;
    opts.check_no_alpha(name)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = features(&mut g, input, cfg, batch_norm)?;
    let out = if fcn_top {
        classifier(&mut g, x, opts.classes, true)?
    } else if opts.include_top {
        let x = g.apply(AdaptiveAveragePooling2D::new(7).named("avgpool"), &[x])?;
        let x = g.apply(Flatten::new().named("flatten"), &[x])?;
        classifier(&mut g, x, opts.classes, false)?
    } else {
        crate::head::pool_features(&mut g, x, opts.pooling)?
    };
    Ok(Box::new(g.build(name, &[input], &[out])?))
}

/// VGG-16 (configuration D): 13 convolutions in 5 blocks, 3 dense layers. At least 32x32.
pub fn vgg16(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    vgg("vgg16", opts, CFG_16, false, false)
}

/// VGG-19 (configuration E): 16 convolutions in 5 blocks, 3 dense layers. At least 32x32.
pub fn vgg19(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    vgg("vgg19", opts, CFG_19, false, false)
}

/// VGG-16 with batch norm after every convolution (torchvision `vgg16_bn`).
pub fn vgg16_bn(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    vgg("vgg16_bn", opts, CFG_16, true, false)
}

/// VGG-19 with batch norm after every convolution (torchvision `vgg19_bn`).
pub fn vgg19_bn(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    vgg("vgg19_bn", opts, CFG_19, true, false)
}

/// Fully-convolutional VGG-16: the classifier as 7x7 and 1x1 convolutions, outputting a class
/// score map `[N, classes, H/32 - 6, W/32 - 6]`. At least 224x224 with the top.
pub fn vgg16_fcn(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    vgg("vgg16_fcn", opts, CFG_16, false, true)
}

/// Copies the weights of a VGG (`vgg16`, or any VGG with the same layers) into the
/// fully-convolutional `fcn` built for the same classes: same-shaped weights as they are, and
/// each dense kernel `[in, out]` of the classifier as the convolution kernel `[out, C, kh, kw]`
/// with `in = C * kh * kw` (the dense layer's input is the `[C, 7, 7]` map flattened
/// channel-major, exactly the order a 7x7 convolution sums over). Every weight of `fcn` must
/// have a counterpart in `vgg` and every weight of `vgg` must be used; otherwise an error names
/// the weight and both shapes.
pub fn fcn_from_vgg(vgg: &dyn Network, fcn: &dyn Network) -> Result<()> {
    let src = vgg.named_weights();
    let dst = fcn.named_weights();
    let mismatch = |name: &str, from: &[usize], to: &[usize]| {
        Error::config(format!(
            "fcn_from_vgg: weight '{name}' is {from:?} in the VGG but {to:?} in the FCN"
        ))
    };
    for (name, p) in &dst {
        let Some((_, q)) = src.iter().find(|(n, _)| n == name) else {
            return Err(Error::config(format!(
                "fcn_from_vgg: the VGG has no weight '{name}' (FCN shape {:?})",
                p.shape()
            )));
        };
        let (from, to) = (q.shape(), p.shape());
        if from == to {
            p.assign(&q.to_vec()?)?;
            continue;
        }
        // Dense [in, out] -> convolution [out, C, kh, kw] with in = C * kh * kw.
        if from.len() != 2
            || to.len() != 4
            || from[1] != to[0]
            || from[0] != to[1..].iter().product::<usize>()
        {
            return Err(mismatch(name, &from, &to));
        }
        let (n_in, n_out) = (from[0], from[1]);
        let v = q.to_vec()?;
        let mut t = vec![0f32; v.len()];
        for i in 0..n_in {
            for o in 0..n_out {
                t[o * n_in + i] = v[i * n_out + o];
            }
        }
        p.assign(&t)?;
    }
    if let Some((name, q)) = src.iter().find(|(n, _)| !dst.iter().any(|(m, _)| m == n)) {
        return Err(Error::config(format!(
            "fcn_from_vgg: the VGG's weight '{name}' {:?} has no place in the FCN",
            q.shape()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(net: &dyn Network) -> usize {
        net.trainable_weights().iter().map(|(_, p)| p.numel()).sum()
    }

    #[test]
    fn names_follow_torchvision() {
        let net = vgg16_bn(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        for key in [
            "features/0/kernel",
            "features/1/gamma",
            "features/40/kernel",
            "features/41/moving_variance",
            "classifier/0/kernel",
            "classifier/6/bias",
        ] {
            assert!(
                names.iter().any(|n| n == key),
                "{key} missing from {names:?}"
            );
        }
        let net = vgg19(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        assert!(names.iter().any(|n| n == "features/34/kernel"), "{names:?}");
    }

    #[test]
    fn any_size_from_32_and_a_clear_error_below() {
        // The adaptive 7x7 pooling keeps the top the same for every input size.
        let a = vgg16(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        let b = vgg16(&ModelOptions::new(&[3, 100, 60], 10)).unwrap();
        assert_eq!(count(a.as_ref()), count(b.as_ref()));
        assert_eq!(b.output_shapes()[0], vec![None, Some(10)]);
        let e = vgg16(&ModelOptions::new(&[3, 31, 64], 10)).err().unwrap();
        assert!(e.to_string().contains("at least 32x32"), "{e}");
        assert!(vgg19(&ModelOptions::new(&[3, 32, 32], 10).alpha(0.5)).is_err());
    }

    #[test]
    fn fcn_score_map_shape_and_minimum() {
        let opts = ModelOptions::new(&[3, 256, 288], 5);
        let net = vgg16_fcn(&opts).unwrap();
        assert_eq!(
            net.output_shapes()[0],
            vec![None, Some(5), Some(2), Some(3)]
        );
        let e = vgg16_fcn(&ModelOptions::new(&[3, 223, 224], 5))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 224x224"), "{e}");
        // Headless, it is VGG-16's feature extractor (any size from 32).
        let h = vgg16_fcn(&ModelOptions::new(&[3, 32, 32], 5).include_top(false)).unwrap();
        assert_eq!(
            h.output_shapes()[0],
            vec![None, Some(512), Some(1), Some(1)]
        );
    }

    #[test]
    fn fcn_from_vgg_rejects_other_architectures() {
        let bn = vgg16_bn(&ModelOptions::new(&[3, 32, 32], 10)).unwrap();
        let fcn = vgg16_fcn(&ModelOptions::new(&[3, 224, 224], 10)).unwrap();
        let e = fcn_from_vgg(bn.as_ref(), fcn.as_ref()).err().unwrap();
        assert!(e.to_string().contains("features/"), "{e}");
        let other = vgg16(&ModelOptions::new(&[3, 32, 32], 7)).unwrap();
        let e = fcn_from_vgg(other.as_ref(), fcn.as_ref()).err().unwrap();
        assert!(e.to_string().contains("classifier/6"), "{e}");
    }
}
