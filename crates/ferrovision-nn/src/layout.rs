//! The weight-layout convention and the adapters weight importers use at the edges.
//!
//! **Rule: a weight is stored in the layout the engine op that uses it consumes, with no
//! transpose at call time.** The engine is channels-first like PyTorch, so every convolution,
//! normalization and per-channel weight has PyTorch's layout; the one layer whose engine op
//! differs from PyTorch's is `Dense`, whose kernel is `[in, out]` (the engine computes
//! `x @ kernel`, as Keras does; PyTorch's `Linear.weight` is `[out, in]`). Per layer:
//!
//! | layer | weight | ferrovision (= stored) | Keras (channels-last) | PyTorch |
//! |---|---|---|---|---|
//! | Dense | kernel | `[in, out]` | `[in, out]` | `weight [out, in]` |
//! | ConvND | kernel | `[out, in/g, k...]` | `[k..., in/g, out]` | `weight`, same |
//! | ConvNDTranspose | kernel | `[in, out, k...]` | `[k..., out, in]` | `weight`, same |
//! | DepthwiseConv2D | kernel | `[C*m, 1, kh, kw]` | `depthwise_kernel [kh, kw, C, m]` | `weight` (groups=C), same |
//! | SeparableConv2D | depthwise_kernel | `[C*m, 1, kh, kw]` | `[kh, kw, C, m]` | `depthwise.weight`, same |
//! | SeparableConv2D | pointwise_kernel | `[F, C*m, 1, 1]` | `[1, 1, C*m, F]` | `pointwise.weight`, same |
//! | BatchNormalization | gamma, beta, moving_mean, moving_variance | `[C]` | `[C]` | `weight`, `bias`, `running_mean`, `running_var` |
//! | LayerNormalization | gamma, beta | normalized axes, channels first | channels last | `weight`, `bias`, same as ours |
//! | every layer | bias | `[out]` | `[out]` | `bias` |
//!
//! [`from_keras`] and [`from_torch`] turn an imported tensor into the stored layout (our layer
//! class and weight name, as in [`crate::NetworkExt::named_weights`]). Weight *names* map by
//! rule too: a ferrovision name is the `/`-separated path of layer (or child field) names and
//! the weight name, as Keras scopes them (`block/conv1/kernel`); [`to_torch_name`] gives the
//! PyTorch `state_dict` key (`block.conv1.weight`). PyTorch's `num_batches_tracked` has no
//! counterpart and is skipped by importers.

use crate::{Error, Result};
use ferrovision_tensor::Tensor;

/// The PyTorch `state_dict` key of a ferrovision weight name: `/` becomes `.`, and the last
/// segment is renamed (`kernel`/`gamma` -> `weight`, `beta` -> `bias`, `moving_mean` ->
/// `running_mean`, `moving_variance` -> `running_var`, `depthwise_kernel` ->
/// `depthwise.weight`, `pointwise_kernel` -> `pointwise.weight`; others kept).
///
/// ```
/// use ferrovision_nn::layout::to_torch_name;
/// assert_eq!(to_torch_name("layer1/0/conv1/kernel"), "layer1.0.conv1.weight");
/// assert_eq!(to_torch_name("layer1/0/bn1/moving_variance"), "layer1.0.bn1.running_var");
/// ```
pub fn to_torch_name(name: &str) -> String {
    let (path, last) = name.rsplit_once('/').unwrap_or(("", name));
    let last = match last {
        "kernel" | "gamma" => "weight",
        "beta" => "bias",
        "moving_mean" => "running_mean",
        "moving_variance" => "running_var",
        "depthwise_kernel" => "depthwise.weight",
        "pointwise_kernel" => "pointwise.weight",
        other => other,
    };
    if path.is_empty() {
        last.to_string()
    } else {
        format!("{}.{last}", path.replace('/', "."))
    }
}

/// Converts a weight in Keras' (channels-last) layout into the stored layout of weight
/// `weight` (`"kernel"`, `"depthwise_kernel"`, ...) of a layer of class `class`. Weights whose
/// layouts agree (biases, batch-norm vectors, Dense kernels) come back unchanged.
///
/// ```
/// use ferrovision_nn::layout::from_keras;
/// use ferrovision_nn::tensor::Tensor;
/// // A Keras Conv2D kernel [kh=3, kw=3, in=2, out=4] -> [out, in, kh, kw].
/// let k = from_keras("Conv2D", "kernel", &Tensor::zeros(&[3, 3, 2, 4]))?;
/// assert_eq!(k.shape(), &[4, 2, 3, 3]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub fn from_keras(class: &str, weight: &str, t: &Tensor) -> Result<Tensor> {
    let rank = t.shape().len();
    let bad = |want: &str| {
        Error::config(format!(
            "from_keras: {class} '{weight}' must be {want}, got shape {:?}",
            t.shape()
        ))
    };
    let out = match (class, weight) {
        (
            "Conv1D" | "Conv2D" | "Conv3D" | "Conv1DTranspose" | "Conv2DTranspose"
            | "Conv3DTranspose",
            "kernel",
        ) => {
            // [k..., a, b] -> [b, a, k...] (convs: a = in, b = out; transposed: a = out, b = in).
            if rank < 3 {
                return Err(bad("[k..., a, b] with at least one spatial axis"));
            }
            let mut perm = vec![rank - 1, rank - 2];
            perm.extend(0..rank - 2);
            t.permute(&perm)?.contiguous()?
        }
        ("DepthwiseConv2D", "kernel") | ("SeparableConv2D", "depthwise_kernel") => {
            // [kh, kw, C, m] -> [C*m, 1, kh, kw].
            let [kh, kw, c, m] = t.shape() else {
                return Err(bad("[kh, kw, C, m]"));
            };
            let (kh, kw, cm) = (*kh, *kw, c * m);
            t.reshape(&[kh, kw, cm])?
                .permute(&[2, 0, 1])?
                .contiguous()?
                .reshape(&[cm, 1, kh, kw])?
        }
        ("SeparableConv2D", "pointwise_kernel") => {
            // [1, 1, C*m, F] -> [F, C*m, 1, 1].
            if rank != 4 {
                return Err(bad("[1, 1, C*m, F]"));
            }
            t.permute(&[3, 2, 0, 1])?.contiguous()?
        }
        ("LayerNormalization", "gamma" | "beta") if rank >= 2 => {
            // Normalized over several axes of a channels-last image: channels move first.
            let mut perm = vec![rank - 1];
            perm.extend(0..rank - 1);
            t.permute(&perm)?.contiguous()?
        }
        _ => t.clone(),
    };
    Ok(out)
}

/// Converts a PyTorch weight (already matched to weight `weight` of a layer of class `class`,
/// e.g. through [`to_torch_name`]) into the stored layout: only `Dense`'s kernel differs
/// (`Linear.weight [out, in]` -> `[in, out]`).
///
/// ```
/// use ferrovision_nn::layout::from_torch;
/// use ferrovision_nn::tensor::Tensor;
/// let w = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], &[3, 2])?; // Linear(2, 3)
/// let k = from_torch("Dense", "kernel", &w)?;
/// assert_eq!(k.shape(), &[2, 3]);
/// assert_eq!(k.to_vec::<f32>()?, vec![1., 3., 5., 2., 4., 6.]);
/// # Ok::<(), ferrovision_nn::Error>(())
/// ```
pub fn from_torch(class: &str, weight: &str, t: &Tensor) -> Result<Tensor> {
    match (class, weight) {
        ("Dense", "kernel") => {
            if t.shape().len() != 2 {
                return Err(Error::config(format!(
                    "from_torch: Dense 'kernel' must be [out, in], got shape {:?}",
                    t.shape()
                )));
            }
            Ok(t.t()?.contiguous()?)
        }
        _ => Ok(t.clone()),
    }
}
