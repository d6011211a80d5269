#!/usr/bin/env python3
"""Keras 3 (TensorFlow backend) reference fixtures for ferrovision-nn's layers.

For every case the script
  1. draws small seeded inputs and weights (distinct values on a 5-decimal grid, rounded to
     float32, exactly what the Rust test parses back), in ferrovision's layouts: channels-first
     tensors, conv kernels `[out, in/groups, k...]`, transposed-conv kernels `[in, out, k...]`,
     depthwise kernels `[C*m, 1, kh, kw]`;
  2. converts them to Keras' channels-last layouts, runs the real Keras layer in float64, and
     converts the output back to channels-first;
  3. stores the ferrovision layer config (what `layer_from_config` reads), the inputs, the
     weights, the output and, where relevant, the weights after the call (batch-norm moving
     statistics) and the layer's activity-regularization loss.

Output: reference/fixtures/nn_layers.json. Usage (from the repository root):

    reference/.venv/bin/python reference/make_nn_layers_fixtures.py
"""

import json
import os
import zlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

keras.config.set_floatx("float64")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "nn_layers.json")


class Gen:
    """Seeded draws for one case (seed from the case name)."""

    def __init__(self, name):
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))

    def grid(self, shape, lo=-1.0, hi=1.0):
        n = int(np.prod(shape, dtype=np.int64))
        lo_i, hi_i = int(round(lo * 1e5)), int(round(hi * 1e5))
        ints = self.rng.choice(hi_i - lo_i, size=n, replace=False) + lo_i
        return (ints / 1e5).astype(np.float32).astype(np.float64).reshape(shape)


def cf_to_cl(x):
    return np.moveaxis(x, 1, -1)


def cl_to_cf(x):
    return np.moveaxis(x, -1, 1)


def conv_kernel_to_keras(w):
    """[O, I, k...] (or transposed [I, O, k...]) -> [k..., I, O] (or [k..., O, I])."""
    r = w.ndim - 2
    return np.transpose(w, tuple(range(2, 2 + r)) + (1, 0))


def depthwise_to_keras(w, c, m):
    """[C*m, 1, kh, kw] -> (kh, kw, C, m)."""
    kh, kw = w.shape[2], w.shape[3]
    return w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1)


def enc(a):
    a = np.asarray(a, dtype=np.float64)
    # 9 significant digits round-trip any float32 exactly and keep the file small.
    return {"shape": list(a.shape),
            "data": [float(f"{float(np.float32(v)):.9g}") for v in a.reshape(-1)]}


CASES = []


def case(name, cls, config, inputs, weights, output, training=False, **extra):
    c = {
        "name": name,
        "class": cls,
        "config": config,
        "inputs": [enc(x) for x in inputs],
        "weights": {k: enc(v) for k, v in weights.items()},
        "training": training,
        "output": enc(output),
    }
    for k, v in extra.items():
        c[k] = v
    CASES.append(c)


def run(layer, xs, training=False):
    # Layers built with dtype="float32" (TensorFlow has no float64 3-d pooling kernels) get
    # float32 inputs; everything else runs in float64.
    t = [tf.constant(x, dtype=layer.compute_dtype) for x in xs]
    y = layer(t if len(t) > 1 else t[0], training=training)
    return np.asarray(y)


def set_keras_weights(layer, shapes_cl, ws):
    layer.build(shapes_cl if len(shapes_cl) > 1 else shapes_cl[0])
    layer.set_weights(ws)


def reg_cfg(l1=0.0, l2=0.0):
    return {"l1": l1, "l2": l2}


# ---------------------------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------------------------


def conv_case(name, r, xshape, filters, k, strides=1, padding="valid", dil=1, groups=1,
              act="linear", use_bias=True, activity_l2=None):
    g = Gen(name)
    ks = (k,) * r if isinstance(k, int) else tuple(k)
    cin = xshape[1]
    x = g.grid(xshape)
    w = g.grid((filters, cin // groups) + ks, -0.5, 0.5)
    b = g.grid((filters,), -0.5, 0.5)
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[r]
    kl = cls(filters, ks, strides=strides, padding=padding, dilation_rate=dil, groups=groups,
             activation=act, use_bias=use_bias,
             activity_regularizer=keras.regularizers.L2(activity_l2) if activity_l2 else None)
    xin = cf_to_cl(x)
    ws = [conv_kernel_to_keras(w)] + ([b] if use_bias else [])
    set_keras_weights(kl, [xin.shape], ws)
    y = cl_to_cf(run(kl, [xin]))
    extra = {}
    if activity_l2:
        extra["activity_loss"] = float(sum(np.asarray(v) for v in kl.losses))
    cfg = {"name": name, "filters": filters, "kernel_size": list(ks),
           "strides": strides, "padding": padding, "dilation_rate": dil, "groups": groups,
           "activation": act, "use_bias": use_bias,
           "activity_regularizer": reg_cfg(l2=activity_l2) if activity_l2 else None}
    weights = {"kernel": w}
    if use_bias:
        weights["bias"] = b
    case(name, {1: "Conv1D", 2: "Conv2D", 3: "Conv3D"}[r], cfg, [x], weights, y,
         training=bool(activity_l2), **extra)


def conv_t_case(name, r, xshape, filters, k, strides=1, padding="valid", output_padding=None,
                dil=1):
    g = Gen(name)
    ks = (k,) * r if isinstance(k, int) else tuple(k)
    cin = xshape[1]
    x = g.grid(xshape)
    w = g.grid((cin, filters) + ks, -0.5, 0.5)
    b = g.grid((filters,), -0.5, 0.5)
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose,
           3: keras.layers.Conv3DTranspose}[r]
    kl = cls(filters, ks, strides=strides, padding=padding, output_padding=output_padding,
             dilation_rate=dil)
    xin = cf_to_cl(x)
    set_keras_weights(kl, [xin.shape], [conv_kernel_to_keras(w), b])
    y = cl_to_cf(run(kl, [xin]))
    cfg = {"name": name, "filters": filters, "kernel_size": list(ks), "strides": strides,
           "padding": padding, "output_padding": output_padding, "dilation_rate": dil}
    case(name, {1: "Conv1DTranspose", 2: "Conv2DTranspose", 3: "Conv3DTranspose"}[r], cfg, [x],
         {"kernel": w, "bias": b}, y)


def conv_t_dilated_torch_case():
    """TensorFlow's CPU kernels reject dilated transposed convolutions, so this one case uses
    PyTorch: with stride 1 and 'valid' padding Keras' output is the full transposed
    convolution, which is exactly `conv_transpose2d(..., dilation=2)` with no padding."""
    import torch

    name = "conv2dt_valid_d2_torch"
    g = Gen(name)
    x = g.grid((1, 2, 4, 3))
    w = g.grid((2, 3, 3, 3), -0.5, 0.5)
    b = g.grid((3,), -0.5, 0.5)
    y = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                             dilation=2).numpy()
    cfg = {"name": name, "filters": 3, "kernel_size": [3, 3], "strides": 1, "padding": "valid",
           "dilation_rate": 2}
    case(name, "Conv2DTranspose", cfg, [x], {"kernel": w, "bias": b}, y)


def depthwise_case(name, xshape, k, m, strides=1, padding="valid", dil=1):
    g = Gen(name)
    c = xshape[1]
    x = g.grid(xshape)
    w = g.grid((c * m, 1, k, k), -0.5, 0.5)
    b = g.grid((c * m,), -0.5, 0.5)
    kl = keras.layers.DepthwiseConv2D(k, strides=strides, padding=padding, depth_multiplier=m,
                                      dilation_rate=dil)
    xin = cf_to_cl(x)
    set_keras_weights(kl, [xin.shape], [depthwise_to_keras(w, c, m), b])
    y = cl_to_cf(run(kl, [xin]))
    cfg = {"name": name, "kernel_size": k, "strides": strides, "padding": padding,
           "depth_multiplier": m, "dilation_rate": dil}
    case(name, "DepthwiseConv2D", cfg, [x], {"kernel": w, "bias": b}, y)


def separable_case(name, xshape, filters, k, m, strides=1, padding="valid", act="linear"):
    g = Gen(name)
    c = xshape[1]
    x = g.grid(xshape)
    dw = g.grid((c * m, 1, k, k), -0.5, 0.5)
    pw = g.grid((filters, c * m, 1, 1), -0.5, 0.5)
    b = g.grid((filters,), -0.5, 0.5)
    kl = keras.layers.SeparableConv2D(filters, k, strides=strides, padding=padding,
                                      depth_multiplier=m, activation=act)
    xin = cf_to_cl(x)
    set_keras_weights(kl, [xin.shape],
                      [depthwise_to_keras(dw, c, m), pw.transpose(2, 3, 1, 0), b])
    y = cl_to_cf(run(kl, [xin]))
    cfg = {"name": name, "filters": filters, "kernel_size": k, "strides": strides,
           "padding": padding, "depth_multiplier": m, "activation": act}
    case(name, "SeparableConv2D", cfg, [x],
         {"depthwise_kernel": dw, "pointwise_kernel": pw, "bias": b}, y)


# ---------------------------------------------------------------------------------------------
# Shape-only and pooling layers (no weights)
# ---------------------------------------------------------------------------------------------


def simple_case(name, cls, cfg, keras_layer, xshapes, channels_last=True, training=False):
    """A weightless layer; with `channels_last` the inputs are transposed for Keras."""
    g = Gen(name)
    xs = [g.grid(s) for s in xshapes]
    if channels_last:
        y = cl_to_cf(run(keras_layer, [cf_to_cl(x) for x in xs], training))
    else:
        y = run(keras_layer, xs, training)
    case(name, cls, dict(cfg, name=name), xs, {}, y, training=training)


def pool_cases():
    for r in (1, 2, 3):
        for kind in ("Max", "Average"):
            base = {1: (2, 3, 7), 2: (2, 3, 7, 6), 3: (1, 2, 5, 6, 4)}[r]
            kcls = getattr(keras.layers, f"{kind}Pooling{r}D")
            cls = f"{kind}Pooling{r}D"
            for tag, pool, strides, padding in [
                ("valid_p2", 2, None, "valid"),
                ("valid_p3s2", 3, 2, "valid"),
                ("same_p3s2", 3, 2, "same"),
                ("same_p2s1", 2, 1, "same"),
                ("same_p3s1", 3, 1, "same"),
            ]:
                if r == 3 and tag not in ("valid_p2", "same_p3s2", "same_p2s1"):
                    continue
                name = f"{cls.lower()}_{tag}"
                dt = "float32" if r == 3 else None
                simple_case(name, cls,
                            {"pool_size": pool, "strides": strides, "padding": padding},
                            kcls(pool, strides=strides, padding=padding, dtype=dt), [base])
            for keep in (False, True):
                gcls = f"Global{kind}Pooling{r}D"
                name = f"{gcls.lower()}_keep{int(keep)}"
                dt = "float32" if r == 3 else None
                simple_case(name, gcls, {"keepdims": keep},
                            getattr(keras.layers, gcls)(keepdims=keep, dtype=dt), [base])


def shape_cases():
    simple_case("upsampling2d_nearest_2x3", "UpSampling2D",
                {"size": [2, 3], "interpolation": "nearest"},
                keras.layers.UpSampling2D((2, 3)), [(2, 2, 3, 4)])
    simple_case("upsampling2d_bilinear_2", "UpSampling2D",
                {"size": 2, "interpolation": "bilinear"},
                keras.layers.UpSampling2D(2, interpolation="bilinear"), [(2, 2, 3, 4)])
    simple_case("upsampling2d_bilinear_3x2", "UpSampling2D",
                {"size": [3, 2], "interpolation": "bilinear"},
                keras.layers.UpSampling2D((3, 2), interpolation="bilinear"), [(1, 3, 4, 3)])
    simple_case("zeropadding2d_asym", "ZeroPadding2D", {"padding": [[1, 2], [0, 3]]},
                keras.layers.ZeroPadding2D(((1, 2), (0, 3))), [(2, 2, 3, 4)])
    simple_case("zeropadding1d", "ZeroPadding1D", {"padding": [[2, 1]]},
                keras.layers.ZeroPadding1D((2, 1)), [(2, 3, 4)])
    simple_case("zeropadding3d", "ZeroPadding3D", {"padding": 1},
                keras.layers.ZeroPadding3D(1), [(1, 2, 2, 3, 2)])
    simple_case("cropping2d_asym", "Cropping2D", {"cropping": [[1, 0], [2, 1]]},
                keras.layers.Cropping2D(((1, 0), (2, 1))), [(2, 2, 5, 6)])
    simple_case("cropping1d", "Cropping1D", {"cropping": [[1, 2]]},
                keras.layers.Cropping1D((1, 2)), [(2, 3, 6)])
    simple_case("cropping3d", "Cropping3D", {"cropping": [1, [0, 1], 2]},
                keras.layers.Cropping3D((1, (0, 1), 2)), [(1, 2, 4, 3, 6)])
    # Flatten / Reshape / Permute act on the stored layout directly (no channel move): Keras'
    # channels-last Flatten is a plain row-major reshape.
    simple_case("flatten_4d", "Flatten", {}, keras.layers.Flatten(), [(2, 3, 2, 4)],
                channels_last=False)
    simple_case("reshape_infer", "Reshape", {"target_shape": [-1, 4]},
                keras.layers.Reshape((-1, 4)), [(2, 3, 2, 4)], channels_last=False)
    simple_case("reshape_full", "Reshape", {"target_shape": [4, 6]},
                keras.layers.Reshape((4, 6)), [(2, 3, 2, 4)], channels_last=False)
    simple_case("permute_231", "Permute", {"dims": [2, 3, 1]},
                keras.layers.Permute((2, 3, 1)), [(2, 3, 2, 4)], channels_last=False)
    simple_case("permute_21", "Permute", {"dims": [2, 1]},
                keras.layers.Permute((2, 1)), [(2, 3, 5)], channels_last=False)


def activation_cases():
    acts = keras.activations
    table = [
        ("linear", "linear", acts.linear),
        ("relu", "relu", acts.relu),
        ("relu6", "relu6", acts.relu6),
        ("leaky_relu", {"name": "leaky_relu", "param": 0.1},
         lambda x: acts.leaky_relu(x, negative_slope=0.1)),
        ("leaky_relu_default", "leaky_relu", acts.leaky_relu),
        ("elu", {"name": "elu", "param": 0.7}, lambda x: acts.elu(x, alpha=0.7)),
        ("selu", "selu", acts.selu),
        ("gelu", "gelu", lambda x: acts.gelu(x, approximate=False)),
        ("gelu_tanh", "gelu_tanh", lambda x: acts.gelu(x, approximate=True)),
        ("sigmoid", "sigmoid", acts.sigmoid),
        ("hard_sigmoid", "hard_sigmoid", acts.hard_sigmoid),
        ("tanh", "tanh", acts.tanh),
        ("softplus", "softplus", acts.softplus),
        ("silu", "silu", acts.silu),
        ("hard_silu", "hard_silu", acts.hard_silu),
        ("softmax", "softmax", acts.softmax),
        ("log_softmax", "log_softmax", acts.log_softmax),
        ("exponential", "exponential", acts.exponential),
    ]
    for tag, ours, fn in table:
        # Inputs in [-4, 4] so the piecewise activations see every piece.
        g = Gen("activation_" + tag)
        x = g.grid((3, 5), -4.0, 4.0)
        y = run(keras.layers.Activation(fn), [x])
        case("activation_" + tag, "Activation", {"name": "activation_" + tag, "activation": ours},
             [x], {}, y)
    # Softmax over the channel axis of an image: Keras' last axis after the layout move.
    g = Gen("activation_softmax_image")
    x = g.grid((2, 3, 2, 2), -3.0, 3.0)
    y = cl_to_cf(run(keras.layers.Activation("softmax"), [cf_to_cl(x)]))
    case("activation_softmax_image", "Activation",
         {"name": "activation_softmax_image", "activation": "softmax"}, [x], {}, y)


def merge_cases():
    for cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        n = 2 if cls == "Subtract" else 3
        simple_case(f"merge_{cls.lower()}", cls, {}, getattr(keras.layers, cls)(),
                    [(2, 3, 4)] * n, channels_last=False)
    simple_case("merge_add_broadcast", "Add", {}, keras.layers.Add(),
                [(2, 3, 4), (2, 1, 4)], channels_last=False)
    simple_case("concatenate_channels", "Concatenate", {"axis": 1},
                keras.layers.Concatenate(axis=-1), [(2, 2, 3, 3), (2, 3, 3, 3)])
    simple_case("concatenate_last", "Concatenate", {"axis": -1},
                keras.layers.Concatenate(axis=-1), [(2, 3, 2), (2, 3, 4), (2, 3, 1)],
                channels_last=False)


# ---------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------


def bn_case(name, xshape, axis, image):
    """Train-mode call (batch statistics + moving-average update), then an inference call with
    the updated statistics, then a train-mode call on a frozen copy (moving statistics)."""
    g = Gen(name)
    x = g.grid(xshape, -2.0, 3.0)
    c = xshape[axis]
    gamma = g.grid((c,), 0.5, 1.5)
    beta = g.grid((c,), -0.5, 0.5)
    mm = g.grid((c,), -0.3, 0.3)
    mv = g.grid((c,), 0.5, 2.0)
    cfg = {"name": name, "axis": axis, "momentum": 0.9, "epsilon": 0.001}
    weights = {"gamma": gamma, "beta": beta, "moving_mean": mm, "moving_variance": mv}
    xin = cf_to_cl(x) if image else x
    kaxis = -1 if image else axis

    kl = keras.layers.BatchNormalization(axis=kaxis, momentum=0.9, epsilon=0.001)
    set_keras_weights(kl, [xin.shape], [gamma, beta, mm, mv])
    y = run(kl, [xin], training=True)
    after = {w.name: np.asarray(w) for w in kl.weights}
    y = cl_to_cf(y) if image else y
    case(name + "_train", "BatchNormalization", cfg, [x], weights, y, training=True,
         weights_after={"moving_mean": enc(after["moving_mean"]),
                        "moving_variance": enc(after["moving_variance"])})

    kl2 = keras.layers.BatchNormalization(axis=kaxis, momentum=0.9, epsilon=0.001)
    set_keras_weights(kl2, [xin.shape], [gamma, beta, mm, mv])
    y = run(kl2, [xin], training=False)
    y = cl_to_cf(y) if image else y
    case(name + "_infer", "BatchNormalization", cfg, [x], weights, y, training=False,
         weights_after={"moving_mean": enc(mm), "moving_variance": enc(mv)})

    kl3 = keras.layers.BatchNormalization(axis=kaxis, momentum=0.9, epsilon=0.001)
    set_keras_weights(kl3, [xin.shape], [gamma, beta, mm, mv])
    kl3.trainable = False
    y = run(kl3, [xin], training=True)
    y = cl_to_cf(y) if image else y
    case(name + "_frozen", "BatchNormalization", dict(cfg, trainable=False), [x], weights, y,
         training=True,
         weights_after={"moving_mean": enc(np.asarray(kl3.moving_mean)),
                        "moving_variance": enc(np.asarray(kl3.moving_variance))})


def ln_case(name, xshape, axis, keras_axis, image, gamma_perm=None):
    g = Gen(name)
    x = g.grid(xshape, -2.0, 3.0)
    axes = [axis] if isinstance(axis, int) else axis
    pshape = tuple(xshape[a] for a in sorted(a % len(xshape) for a in axes))
    gamma = g.grid(pshape, 0.5, 1.5)
    beta = g.grid(pshape, -0.5, 0.5)
    kl = keras.layers.LayerNormalization(axis=keras_axis, epsilon=0.001)
    xin = cf_to_cl(x) if image else x
    kg = gamma.transpose(gamma_perm) if gamma_perm else gamma
    kb = beta.transpose(gamma_perm) if gamma_perm else beta
    set_keras_weights(kl, [xin.shape], [kg, kb])
    y = run(kl, [xin])
    y = cl_to_cf(y) if image else y
    case(name, "LayerNormalization", {"name": name, "axis": axis, "epsilon": 0.001}, [x],
         {"gamma": gamma, "beta": beta}, y)


def dense_case():
    g = Gen("dense_relu")
    x = g.grid((3, 5))
    w = g.grid((5, 4), -0.5, 0.5)
    b = g.grid((4,), -0.5, 0.5)
    kl = keras.layers.Dense(4, activation="relu")
    set_keras_weights(kl, [x.shape], [w, b])
    case("dense_relu", "Dense", {"name": "dense_relu", "units": 4, "activation": "relu"}, [x],
         {"kernel": w, "bias": b}, run(kl, [x]))


def regularizer_values():
    """Penalties of L1, L2 and L1L2 on a fixed tensor (Keras definitions)."""
    g = Gen("regularizers")
    w = g.grid((4, 3), -2.0, 2.0)
    out = {"w": enc(w), "cases": []}
    for l1, l2 in [(0.01, 0.0), (0.0, 0.02), (0.003, 0.05)]:
        r = keras.regularizers.L1L2(l1=l1, l2=l2)
        out["cases"].append({"l1": l1, "l2": l2, "penalty": float(np.asarray(r(tf.constant(w))))})
    return out


def main():
    dense_case()
    conv_case("conv1d_valid_k3", 1, (2, 3, 9), 4, 3)
    conv_case("conv1d_same_s2_g2", 1, (2, 4, 9), 4, 3, strides=2, padding="same", groups=2)
    conv_case("conv1d_causal_d2", 1, (2, 3, 8), 2, 3, padding="causal", dil=2)
    conv_case("conv2d_valid_relu", 2, (2, 3, 6, 5), 4, 3, act="relu")
    conv_case("conv2d_same_s2", 2, (2, 3, 7, 6), 4, 3, strides=2, padding="same")
    conv_case("conv2d_same_k4_s2", 2, (2, 2, 6, 7), 3, 4, strides=2, padding="same")
    conv_case("conv2d_same_d2", 2, (1, 2, 7, 7), 3, 3, padding="same", dil=2)
    conv_case("conv2d_groups2_rect", 2, (2, 4, 7, 6), 6, (3, 2), strides=(2, 1), groups=2)
    conv_case("conv2d_nobias_tanh", 2, (2, 3, 5, 5), 2, 2, act="tanh", use_bias=False)
    conv_case("conv2d_activity_l2", 2, (3, 2, 5, 5), 3, 3, activity_l2=0.01)
    conv_case("conv3d_same_s2", 3, (1, 2, 5, 6, 5), 3, 3, strides=2, padding="same")
    conv_case("conv3d_valid_k2", 3, (2, 2, 3, 4, 3), 2, 2)
    conv_t_case("conv2dt_valid_k3_s2", 2, (2, 3, 3, 4), 2, 3, strides=2)
    conv_t_case("conv2dt_same_k3_s2", 2, (2, 3, 3, 4), 2, 3, strides=2, padding="same")
    conv_t_case("conv2dt_same_k4_s2", 2, (1, 2, 3, 3), 3, 4, strides=2, padding="same")
    conv_t_case("conv2dt_same_k5_s2", 2, (1, 2, 3, 3), 2, 5, strides=2, padding="same")
    conv_t_case("conv2dt_valid_k2_s3", 2, (1, 2, 3, 2), 2, 2, strides=3)
    conv_t_case("conv2dt_same_op1", 2, (1, 2, 3, 3), 2, 3, strides=2, padding="same",
                output_padding=1)
    conv_t_case("conv2dt_valid_op1", 2, (1, 2, 3, 3), 2, 3, strides=2, output_padding=1)
    conv_t_dilated_torch_case()
    conv_t_case("conv1dt_same_k3_s2", 1, (2, 3, 5), 2, 3, strides=2, padding="same")
    conv_t_case("conv3dt_valid_k2_s2", 3, (1, 2, 2, 3, 2), 2, 2, strides=2)
    depthwise_case("depthwise_m2_same_s2", (2, 3, 7, 6), 3, 2, strides=2, padding="same")
    depthwise_case("depthwise_m1_valid_d2", (1, 4, 7, 7), 3, 1, dil=2)
    separable_case("separable_m2_same", (2, 3, 6, 5), 4, 3, 2, padding="same")
    separable_case("separable_valid_s2_relu", (2, 2, 7, 7), 3, 3, 1, strides=2, act="relu")
    pool_cases()
    shape_cases()
    activation_cases()
    merge_cases()
    bn_case("batchnorm_image", (4, 3, 3, 2), 1, True)
    bn_case("batchnorm_dense", (6, 4), 1, False)
    bn_case("batchnorm_last_axis", (3, 4, 5), -1, False)
    ln_case("layernorm_last", (3, 4, 5), -1, -1, False)
    ln_case("layernorm_channels", (2, 3, 2, 2), 1, -1, True)
    ln_case("layernorm_whole_image", (2, 3, 2, 2), [1, 2, 3], [1, 2, 3], True,
            gamma_perm=(1, 2, 0))
    ln_case("layernorm_middle_axis", (3, 4, 5), 1, 1, False)
    doc = {
        "generator": "reference/make_nn_layers_fixtures.py",
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__,
                     "numpy": np.__version__},
        "cases": CASES,
        "regularizers": regularizer_values(),
    }
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, OUT)
    print(f"wrote {len(CASES)} cases to {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
