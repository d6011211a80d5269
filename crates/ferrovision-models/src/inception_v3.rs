//! Inception v3 (Szegedy et al. 2016) in torchvision's `Inception3` layout and names, with its
//! auxiliary classifier.
//!
//! Every convolution is torchvision's `BasicConv2d` ([`crate::googlenet::basic_conv`]:
//! `<scope>/conv` without bias, `<scope>/bn` with `eps = 1e-3`, `<scope>/relu`). The stem:
//! `Conv2d_1a_3x3` (3x3/2, 32), `Conv2d_2a_3x3` (3x3, 32), `Conv2d_2b_3x3` (3x3 pad 1, 64),
//! `maxpool1` (3x3/2), `Conv2d_3b_1x1` (80), `Conv2d_4a_3x3` (3x3, 192), `maxpool2` (3x3/2);
//! then `Mixed_5b`, `Mixed_5c`, `Mixed_5d` (InceptionA), `Mixed_6a` (InceptionB, grid reduction),
//! `Mixed_6b` .. `Mixed_6e` (InceptionC, factorised 1x7/7x1), `Mixed_7a` (InceptionD,
//! reduction), `Mixed_7b`, `Mixed_7c` (InceptionE, expanded 1x3/3x1), `avgpool` (global
//! average), `dropout` (0.5), `fc`. Inside a block `<m>` the convolutions keep torchvision's
//! names (`<m>/branch1x1`, `<m>/branch5x5_1`, `<m>/branch3x3dbl_3`, `<m>/branch7x7x3_4`,
//! `<m>/branch3x3_2a`, `<m>/branch_pool`...), the weight-free layers are named in the same
//! scope: the 3x3/1 average pool (pad 1, padding counted in the divisor as in PyTorch) before
//! `<m>/branch_pool` is `<m>/branch_pool/pool`, the reductions' 3x3/2 max pool is
//! `<m>/branch_pool`, and the concatenations are `<m>/concat` (InceptionE's inner ones
//! `<m>/branch3x3/concat`, `<m>/branch3x3dbl/concat`). Weight names are torchvision's with `/`:
//! `Mixed_6b/branch7x7_2/conv/kernel` is `Mixed_6b.branch7x7_2.conv.weight`.
//!
//! With `aux_logits` the auxiliary classifier `AuxLogits` (on `Mixed_6e`) is a second output
//! after the logits: `AuxLogits/pool` (5x5/3 average pool), `AuxLogits/conv0` (1x1, 128),
//! `AuxLogits/conv1` (5x5, 768), `AuxLogits/avgpool` (global average), `AuxLogits/fc`. It needs
//! a 17x17 `Mixed_6e` map, i.e. at least 299x299 input (without it: 75x75, torchvision's
//! minimum); it belongs to the top (`aux_logits` without `include_top` is an error). torchvision
//! computes it only in training mode, where it is weighted 0.4 in the loss; here it is a plain
//! output for the training loop to weight. `transform_input` is not built in (see
//! [`crate::googlenet`]: with the original Google weights, preprocess with `x / 127.5 - 1`).
//!
//! Parameter counts (1000 classes): 27 161 264 with the auxiliary head (torchvision's default
//! `Inception3`), 23 834 568 without. Keras applications' `InceptionV3` has the same
//! convolutions and classifier but no auxiliary head and batch norms without a scale
//! (`scale=False`, no gamma): its trainable count is ours without the aux head minus the 17 216
//! gammas (23 817 352), and its non-trainable count is our 2 x 17 216 moving statistics. The
//! zoo reference test checks exactly this relation.

use crate::googlenet::basic_conv;
use crate::ModelOptions;
use ferrovision_nn::layers::{
    AveragePooling2D, Concatenate, Dense, Dropout, GlobalAveragePooling2D, MaxPooling2D,
};
use ferrovision_nn::{Error, Graph, Network, NodeId, Result};

/// Smallest input side without the auxiliary classifier (torchvision's `min_size`).
pub const MIN_SIZE: usize = 75;
/// Smallest input side with the auxiliary classifier (its 5x5/3 pool then 5x5 convolution need
/// a 17x17 `Mixed_6e` map).
pub const AUX_MIN_SIZE: usize = 299;

/// A BasicConv2d `[kh, kw]`, stride 1, padding `[kh / 2, kw / 2]` (the "same" size of every
/// factorised convolution).
fn c(g: &mut Graph, x: NodeId, scope: &str, filters: usize, k: [usize; 2]) -> Result<NodeId> {
    basic_conv(g, x, scope, filters, k, 1, [k[0] / 2, k[1] / 2])
}

/// A BasicConv2d 3x3/2 without padding (the grid reductions).
fn c3s2(g: &mut Graph, x: NodeId, scope: &str, filters: usize) -> Result<NodeId> {
    basic_conv(g, x, scope, filters, [3, 3], 2, [0, 0])
}

fn max_pool_3s2(g: &mut Graph, x: NodeId, name: &str) -> Result<NodeId> {
    g.apply(MaxPooling2D::new(3).strides(2).named(name), &[x])
}

/// The 3x3/1 average pool (pad 1, PyTorch's `count_include_pad`) + 1x1 `<m>/branch_pool`.
fn pool_branch(g: &mut Graph, x: NodeId, m: &str, filters: usize) -> Result<NodeId> {
    let pool = AveragePooling2D::new(3)
        .strides(1)
        .padding_explicit(1)
        .named(&format!("{m}/branch_pool/pool"));
    let p = g.apply(pool, &[x])?;
    c(g, p, &format!("{m}/branch_pool"), filters, [1, 1])
}

fn concat(g: &mut Graph, name: &str, xs: &[NodeId]) -> Result<NodeId> {
    g.apply(Concatenate::new(1).named(name), xs)
}

/// InceptionA (35x35 grid): 64 + 64 + 96 + `pool_features` channels.
fn inception_a(g: &mut Graph, x: NodeId, m: &str, pool_features: usize) -> Result<NodeId> {
    let n = |l: &str| format!("{m}/{l}");
    let b1 = c(g, x, &n("branch1x1"), 64, [1, 1])?;
    let b5 = c(g, x, &n("branch5x5_1"), 48, [1, 1])?;
    let b5 = c(g, b5, &n("branch5x5_2"), 64, [5, 5])?;
    let b3 = c(g, x, &n("branch3x3dbl_1"), 64, [1, 1])?;
    let b3 = c(g, b3, &n("branch3x3dbl_2"), 96, [3, 3])?;
    let b3 = c(g, b3, &n("branch3x3dbl_3"), 96, [3, 3])?;
    let bp = pool_branch(g, x, m, pool_features)?;
    concat(g, &n("concat"), &[b1, b5, b3, bp])
}

/// InceptionB (35 -> 17 reduction): 384 + 96 + input channels.
fn inception_b(g: &mut Graph, x: NodeId, m: &str) -> Result<NodeId> {
    let n = |l: &str| format!("{m}/{l}");
    let b3 = c3s2(g, x, &n("branch3x3"), 384)?;
    let bd = c(g, x, &n("branch3x3dbl_1"), 64, [1, 1])?;
    let bd = c(g, bd, &n("branch3x3dbl_2"), 96, [3, 3])?;
    let bd = c3s2(g, bd, &n("branch3x3dbl_3"), 96)?;
    let bp = max_pool_3s2(g, x, &n("branch_pool"))?;
    concat(g, &n("concat"), &[b3, bd, bp])
}

/// InceptionC (17x17 grid, factorised 7x7 with `c7` channels inside): 4 x 192 channels.
fn inception_c(g: &mut Graph, x: NodeId, m: &str, c7: usize) -> Result<NodeId> {
    let n = |l: &str| format!("{m}/{l}");
    let b1 = c(g, x, &n("branch1x1"), 192, [1, 1])?;
    let b7 = c(g, x, &n("branch7x7_1"), c7, [1, 1])?;
    let b7 = c(g, b7, &n("branch7x7_2"), c7, [1, 7])?;
    let b7 = c(g, b7, &n("branch7x7_3"), 192, [7, 1])?;
    let bd = c(g, x, &n("branch7x7dbl_1"), c7, [1, 1])?;
    let bd = c(g, bd, &n("branch7x7dbl_2"), c7, [7, 1])?;
    let bd = c(g, bd, &n("branch7x7dbl_3"), c7, [1, 7])?;
    let bd = c(g, bd, &n("branch7x7dbl_4"), c7, [7, 1])?;
    let bd = c(g, bd, &n("branch7x7dbl_5"), 192, [1, 7])?;
    let bp = pool_branch(g, x, m, 192)?;
    concat(g, &n("concat"), &[b1, b7, bd, bp])
}

/// InceptionD (17 -> 8 reduction): 320 + 192 + input channels.
fn inception_d(g: &mut Graph, x: NodeId, m: &str) -> Result<NodeId> {
    let n = |l: &str| format!("{m}/{l}");
    let b3 = c(g, x, &n("branch3x3_1"), 192, [1, 1])?;
    let b3 = c3s2(g, b3, &n("branch3x3_2"), 320)?;
    let b7 = c(g, x, &n("branch7x7x3_1"), 192, [1, 1])?;
    let b7 = c(g, b7, &n("branch7x7x3_2"), 192, [1, 7])?;
    let b7 = c(g, b7, &n("branch7x7x3_3"), 192, [7, 1])?;
    let b7 = c3s2(g, b7, &n("branch7x7x3_4"), 192)?;
    let bp = max_pool_3s2(g, x, &n("branch_pool"))?;
    concat(g, &n("concat"), &[b3, b7, bp])
}

/// InceptionE (8x8 grid, expanded filter banks): 320 + 768 + 768 + 192 channels.
fn inception_e(g: &mut Graph, x: NodeId, m: &str) -> Result<NodeId> {
    let n = |l: &str| format!("{m}/{l}");
    let b1 = c(g, x, &n("branch1x1"), 320, [1, 1])?;
    let b3 = c(g, x, &n("branch3x3_1"), 384, [1, 1])?;
    let b3a = c(g, b3, &n("branch3x3_2a"), 384, [1, 3])?;
    let b3b = c(g, b3, &n("branch3x3_2b"), 384, [3, 1])?;
    let b3 = concat(g, &n("branch3x3/concat"), &[b3a, b3b])?;
    let bd = c(g, x, &n("branch3x3dbl_1"), 448, [1, 1])?;
    let bd = c(g, bd, &n("branch3x3dbl_2"), 384, [3, 3])?;
    let bda = c(g, bd, &n("branch3x3dbl_3a"), 384, [1, 3])?;
    let bdb = c(g, bd, &n("branch3x3dbl_3b"), 384, [3, 1])?;
    let bd = concat(g, &n("branch3x3dbl/concat"), &[bda, bdb])?;
    let bp = pool_branch(g, x, m, 192)?;
    concat(g, &n("concat"), &[b1, b3, bd, bp])
}

/// The auxiliary classifier `AuxLogits` on the `Mixed_6e` map `x`.
fn aux_head(g: &mut Graph, x: NodeId, classes: usize) -> Result<NodeId> {
    let pool = AveragePooling2D::new(5).strides(3).named("AuxLogits/pool");
    let x = g.apply(pool, &[x])?;
    let x = c(g, x, "AuxLogits/conv0", 128, [1, 1])?;
    let x = basic_conv(g, x, "AuxLogits/conv1", 768, [5, 5], 1, [0, 0])?;
    let x = g.apply(
        GlobalAveragePooling2D::new().named("AuxLogits/avgpool"),
        &[x],
    )?;
    g.apply(Dense::new(classes).named("AuxLogits/fc"), &[x])
}

/// Inception v3 (see the module header): outputs the logits, then with `aux_logits` the
/// auxiliary classifier's. At least 75x75 (299x299 with `aux_logits`).
pub fn inception_v3(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    let name = "inception_v3";
    opts.check_no_alpha(name)?;
    if opts.aux_logits {
        if !opts.include_top {
            return Err(Error::config(
                "inception_v3: the auxiliary classifier (aux_logits) is part of the top; build it with include_top",
            ));
        }
        opts.check_image(&format!("{name} with aux_logits"), AUX_MIN_SIZE)?;
    }
    opts.check_image(name, MIN_SIZE)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let x = c3s2(&mut g, input, "Conv2d_1a_3x3", 32)?;
    let x = basic_conv(&mut g, x, "Conv2d_2a_3x3", 32, [3, 3], 1, [0, 0])?;
    let x = c(&mut g, x, "Conv2d_2b_3x3", 64, [3, 3])?;
    let x = max_pool_3s2(&mut g, x, "maxpool1")?;
    let x = c(&mut g, x, "Conv2d_3b_1x1", 80, [1, 1])?;
    let x = basic_conv(&mut g, x, "Conv2d_4a_3x3", 192, [3, 3], 1, [0, 0])?;
    let x = max_pool_3s2(&mut g, x, "maxpool2")?;
    let x = inception_a(&mut g, x, "Mixed_5b", 32)?;
    let x = inception_a(&mut g, x, "Mixed_5c", 64)?;
    let x = inception_a(&mut g, x, "Mixed_5d", 64)?;
    let x = inception_b(&mut g, x, "Mixed_6a")?;
    let x = inception_c(&mut g, x, "Mixed_6b", 128)?;
    let x = inception_c(&mut g, x, "Mixed_6c", 160)?;
    let x = inception_c(&mut g, x, "Mixed_6d", 160)?;
    let x6e = inception_c(&mut g, x, "Mixed_6e", 192)?;
    let x = inception_d(&mut g, x6e, "Mixed_7a")?;
    let x = inception_e(&mut g, x, "Mixed_7b")?;
    let x = inception_e(&mut g, x, "Mixed_7c")?;
    let outputs = if opts.include_top {
        let y = g.apply(GlobalAveragePooling2D::new().named("avgpool"), &[x])?;
        let y = g.apply(Dropout::new(0.5).named("dropout"), &[y])?;
        let mut outs = vec![g.apply(Dense::new(opts.classes).named("fc"), &[y])?];
        if opts.aux_logits {
            outs.push(aux_head(&mut g, x6e, opts.classes)?);
        }
        outs
    } else {
        vec![crate::head::pool_features(&mut g, x, opts.pooling)?]
    };
    Ok(Box::new(g.build(name, &[input], &outputs)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovision_nn::NetworkExt;

    fn count(net: &dyn Network) -> usize {
        net.trainable_weights().iter().map(|(_, p)| p.numel()).sum()
    }

    #[test]
    fn torchvision_counts_and_names() {
        let opts = ModelOptions::new(&[3, 299, 299], 1000);
        let net = inception_v3(&opts).unwrap();
        assert_eq!(count(net.as_ref()), 23_834_568);
        let aux = inception_v3(&opts.clone().aux_logits(true)).unwrap();
        // torchvision's published num_params (the default Inception3 has the aux head).
        assert_eq!(count(aux.as_ref()), 27_161_264);
        assert_eq!(aux.output_shapes()[1], vec![None, Some(1000)]);
        let names: Vec<String> = aux.named_weights().into_iter().map(|(n, _)| n).collect();
        for key in [
            "Conv2d_1a_3x3/conv/kernel",
            "Conv2d_4a_3x3/bn/moving_mean",
            "Mixed_5b/branch_pool/conv/kernel",
            "Mixed_6b/branch7x7_2/conv/kernel",
            "Mixed_7a/branch7x7x3_4/bn/beta",
            "Mixed_7c/branch3x3dbl_3b/bn/gamma",
            "AuxLogits/conv1/conv/kernel",
            "AuxLogits/fc/kernel",
            "fc/bias",
        ] {
            assert!(names.iter().any(|n| n == key), "{key} missing");
        }
    }

    #[test]
    fn minimum_sizes_and_option_errors() {
        let net = inception_v3(&ModelOptions::new(&[3, 75, 75], 10)).unwrap();
        assert_eq!(net.output_shapes()[0], vec![None, Some(10)]);
        let e = inception_v3(&ModelOptions::new(&[3, 74, 80], 10))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 75x75"), "{e}");
        let e = inception_v3(&ModelOptions::new(&[3, 298, 299], 10).aux_logits(true))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at least 299x299"), "{e}");
        let headless_aux = ModelOptions::new(&[3, 299, 299], 10)
            .include_top(false)
            .aux_logits(true);
        assert!(inception_v3(&headless_aux).is_err());
        assert!(inception_v3(&ModelOptions::new(&[3, 75, 75], 10).alpha(0.5)).is_err());
    }
}
