"""Keras 3 (TensorFlow backend) references for ferrovision-nn's losses and metrics.

Writes
  reference/fixtures/nn_losses.json   loss values and d(loss)/d(y_pred) per case
  reference/fixtures/nn_metrics.json  streaming metric results after each batch

Everything is computed in float64 (keras floatx = float64; inputs are float32 values, so the Rust
side gets them exactly). ferrovision is channels-first: spatial cases are generated NHWC for Keras
(whose sparse cross-entropy only supports the last axis) and stored transposed to NCHW, gradients
included. Sample weights `[N]` are broadcast over the non-batch axes by reshaping them to
`[N, 1, ...]` before Keras sees them; class weights are applied as Keras' `fit(class_weight=...)`
does: multiplied into the sample weight of each sample (or pixel) by its target class.

Run with the reference venv:  reference/.venv/bin/python reference/make_nn_losses_fixtures.py
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras.config.set_floatx("float64")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
rng = np.random.default_rng(20240611)


def f32(a):
    """float32-representable float64 values (the Rust side reads them exactly)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def enc(a, dtype="f32"):
    a = np.asarray(a)
    if dtype == "i64":
        data = [int(v) for v in a.reshape(-1)]
    else:
        data = [float(v) for v in a.reshape(-1)]
    return {"shape": list(a.shape), "dtype": dtype, "data": data}


def nchw(a):
    """NHWC -> NCHW (rank-4 arrays only)."""
    return np.transpose(a, (0, 3, 1, 2))


def cfg(class_name, **kw):
    return {"class_name": class_name, "config": kw}


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

loss_cases = []


def keras_value_and_grad(loss_obj, y_true, y_pred, sw):
    yp = tf.Variable(y_pred, dtype=tf.float64)
    with tf.GradientTape() as tape:
        kw = {} if sw is None else {"sample_weight": tf.constant(sw, dtype=tf.float64)}
        val = loss_obj(y_true, yp, **kw)
    g = tape.gradient(val, yp)
    g = np.zeros_like(y_pred) if g is None else g.numpy()
    return float(val.numpy()), g


def add_loss(case_id, our_cfg, loss_obj, y_true, y_pred, sw=None, keras_sw=None, spatial=False,
             true_dtype="f32", y_true_ours=None):
    """`keras_sw` is what Keras gets (broadcastable weights); `sw` is the `[N]` we store."""
    if keras_sw is None:
        keras_sw = sw
    val, g = keras_value_and_grad(loss_obj, y_true, y_pred, keras_sw)
    yt = y_true if y_true_ours is None else y_true_ours
    yp = y_pred
    if spatial:
        yp, g = nchw(yp), nchw(g)
        if yt.ndim == 4:
            yt = nchw(yt)
    loss_cases.append({
        "id": case_id,
        "loss": our_cfg,
        "y_true": enc(yt, true_dtype),
        "y_pred": enc(yp),
        "sample_weight": None if sw is None else enc(sw),
        "value": val,
        "grad": enc(g),
    })


def expand_w(sw, ndim):
    return sw.reshape((-1,) + (1,) * (ndim - 1))


def base(name, **kw):
    d = {"name": name, "reduction": "sum_over_batch_size"}
    d.update(kw)
    return d


def regression_cases():
    N, D = 6, 4
    yt, yp = f32(rng.normal(size=(N, D))), f32(rng.normal(size=(N, D)))
    sw = f32(rng.uniform(0.1, 2.0, size=N))
    mse = cfg("MeanSquaredError", **base("mean_squared_error"))
    add_loss("mse_2d", mse, keras.losses.MeanSquaredError(), yt, yp)
    add_loss("mse_2d_sw", mse, keras.losses.MeanSquaredError(), yt, yp, sw)
    y4t, y4p = f32(rng.normal(size=(3, 2, 4, 5))), f32(rng.normal(size=(3, 2, 4, 5)))
    sw3 = f32([0.5, 2.0, 1.25])
    add_loss("mse_4d_sw", mse, keras.losses.MeanSquaredError(), y4t, y4p, sw3, expand_w(sw3, 3))
    # y_true [N] against y_pred [N, 1]: Keras expands y_true to [N, 1].
    y1t, y1p = f32(rng.normal(size=(N,))), f32(rng.normal(size=(N, 1)))
    add_loss("mse_rank1_targets_sw", mse, keras.losses.MeanSquaredError(), y1t, y1p, sw)

    mae = cfg("MeanAbsoluteError", **base("mean_absolute_error"))
    add_loss("mae_2d", mae, keras.losses.MeanAbsoluteError(), yt, yp)
    add_loss("mae_2d_sw", mae, keras.losses.MeanAbsoluteError(), yt, yp, sw)
    add_loss("mae_4d_sw", mae, keras.losses.MeanAbsoluteError(), y4t, y4p, sw3, expand_w(sw3, 3))

    for delta in (1.0, 0.5, 2.0):
        hub = cfg("Huber", **base("huber_loss", delta=delta))
        yt2 = f32(rng.normal(scale=1.5, size=(N, D)))
        add_loss(f"huber_delta{delta}", hub, keras.losses.Huber(delta=delta), yt2, yp)
        add_loss(f"huber_delta{delta}_sw", hub, keras.losses.Huber(delta=delta), yt2, yp, sw)
    hub = cfg("Huber", **base("huber_loss", delta=1.0))
    add_loss("huber_4d_sw", hub, keras.losses.Huber(), y4t, y4p * 2, sw3, expand_w(sw3, 3))


def bce_cases():
    N, D = 8, 3
    labels = f32(rng.integers(0, 2, size=(N, D)))
    logits = f32(rng.normal(scale=2.0, size=(N, D)))
    probs = f32(rng.uniform(0.02, 0.98, size=(N, D)))
    sw = f32(rng.uniform(0.1, 2.0, size=N))
    for from_logits, yp in ((True, logits), (False, probs)):
        tag = "logits" if from_logits else "probs"
        for ls in (0.0, 0.2):
            c = cfg("BinaryCrossentropy",
                    **base("binary_crossentropy", from_logits=from_logits, label_smoothing=ls))
            k = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=ls)
            add_loss(f"bce_{tag}_ls{ls}", c, k, labels, yp)
            add_loss(f"bce_{tag}_ls{ls}_sw", c, k, labels, yp, sw)
    # Probabilities at 0 and 1 are clipped to [eps, 1 - eps] (zero gradient there).
    pclip = probs.copy()
    pclip[0, 0], pclip[1, 1], pclip[2, 2] = 0.0, 1.0, 1.0
    c = cfg("BinaryCrossentropy",
            **base("binary_crossentropy", from_logits=False, label_smoothing=0.0))
    add_loss("bce_probs_clipped", c, keras.losses.BinaryCrossentropy(), labels, pclip)
    # Soft targets, spatial [N, C, H, W] (element-wise: the layout does not matter).
    soft = f32(rng.uniform(0, 1, size=(3, 2, 3, 4)))
    lg4 = f32(rng.normal(size=(3, 2, 3, 4)))
    sw3 = f32([1.5, 0.25, 1.0])
    c = cfg("BinaryCrossentropy",
            **base("binary_crossentropy", from_logits=True, label_smoothing=0.1))
    add_loss("bce_logits_4d_soft_ls_sw", c,
             keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
             soft, lg4, sw3, expand_w(sw3, 3))
    # Binary classifier with one output unit and targets [N].
    lg1 = f32(rng.normal(size=(N, 1)))
    c = cfg("BinaryCrossentropy",
            **base("binary_crossentropy", from_logits=True, label_smoothing=0.0))
    add_loss("bce_logits_targets_rank1_sw", c, keras.losses.BinaryCrossentropy(from_logits=True),
             labels[:, 0], lg1, sw)


def onehot(idx, c):
    return np.eye(c)[idx]


def cce_cases():
    N, C = 7, 5
    idx = rng.integers(0, C, size=N)
    yt = f32(onehot(idx, C))
    logits = f32(rng.normal(scale=2.0, size=(N, C)))
    raw = f32(rng.uniform(0.01, 1.0, size=(N, C)))  # not normalised: Keras divides by the sum
    sw = f32(rng.uniform(0.1, 2.0, size=N))
    cw = f32([1.0, 2.0, 0.5, 3.0, 0.25])
    for from_logits, yp in ((True, logits), (False, raw)):
        tag = "logits" if from_logits else "probs"
        for ls in (0.0, 0.1):
            c = cfg("CategoricalCrossentropy",
                    **base("categorical_crossentropy", from_logits=from_logits,
                           label_smoothing=ls, class_weights=None))
            k = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=ls)
            add_loss(f"cce_{tag}_ls{ls}", c, k, yt, yp)
            add_loss(f"cce_{tag}_ls{ls}_sw", c, k, yt, yp, sw)
        c = cfg("CategoricalCrossentropy",
                **base("categorical_crossentropy", from_logits=from_logits, label_smoothing=0.0,
                       class_weights=[float(v) for v in cw]))
        k = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
        add_loss(f"cce_{tag}_classweights_sw", c, k, yt, yp, sw, keras_sw=sw * cw[idx])
    # Probabilities with exact zeros (clipped to eps).
    pz = raw / raw.sum(-1, keepdims=True)
    pz[0, idx[0]] = 0.0
    pz[1, (idx[1] + 1) % C] = 0.0
    pz = f32(pz)
    c = cfg("CategoricalCrossentropy",
            **base("categorical_crossentropy", from_logits=False, label_smoothing=0.0,
                   class_weights=None))
    add_loss("cce_probs_zeros", c, keras.losses.CategoricalCrossentropy(), yt, pz)
    # Spatial, channels-first for us (class axis 1), NHWC for Keras.
    n, h, w = 2, 3, 4
    sidx = rng.integers(0, C, size=(n, h, w))
    syt = f32(onehot(sidx, C))
    slg = f32(rng.normal(size=(n, h, w, C)))
    sw2 = f32([0.75, 1.5])
    for from_logits, yp in ((True, slg), (False, f32(rng.uniform(0.05, 1, size=(n, h, w, C))))):
        tag = "logits" if from_logits else "probs"
        c = cfg("CategoricalCrossentropy",
                **base("categorical_crossentropy", from_logits=from_logits, label_smoothing=0.1,
                       class_weights=None))
        k = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=0.1)
        add_loss(f"cce_{tag}_spatial_ls_sw", c, k, syt, yp, sw2, expand_w(sw2, 3), spatial=True)


def scce_cases():
    N, C = 9, 4
    idx = rng.integers(0, C, size=N)
    logits = f32(rng.normal(scale=2.0, size=(N, C)))
    probs = f32(rng.dirichlet(np.ones(C), size=N) * 0.98 + 0.005)
    sw = f32(rng.uniform(0.1, 2.0, size=N))
    cw = f32([0.5, 2.0, 1.0, 4.0])

    def scfg(from_logits, ignore_class=None, class_weights=None, ls=0.0):
        return cfg("SparseCategoricalCrossentropy",
                   **base("sparse_categorical_crossentropy", from_logits=from_logits,
                          ignore_class=ignore_class, class_weights=class_weights,
                          label_smoothing=ls))

    for from_logits, yp in ((True, logits), (False, probs)):
        tag = "logits" if from_logits else "probs"
        k = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        add_loss(f"scce_{tag}", scfg(from_logits), k, idx, yp, true_dtype="i64")
        add_loss(f"scce_{tag}_sw", scfg(from_logits), k, idx, yp, sw, true_dtype="i64")
        add_loss(f"scce_{tag}_classweights_sw", scfg(from_logits, class_weights=list(map(float, cw))),
                 k, idx, yp, sw, keras_sw=sw * cw[idx], true_dtype="i64")
    k = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Float targets and [N, 1] targets.
    add_loss("scce_logits_f32_targets_sw", scfg(True), k, f32(idx), logits, sw)
    add_loss("scce_logits_n1_targets", scfg(True), k, idx[:, None], logits, true_dtype="i64")
    # ignore_class (Keras masks: mean over the non-ignored samples).
    ig = idx.copy()
    ig[[1, 4, 5]] = -1
    ki = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    add_loss("scce_logits_ignore", scfg(True, ignore_class=-1), ki, ig, logits, true_dtype="i64")
    add_loss("scce_logits_ignore_sw", scfg(True, ignore_class=-1), ki, ig, logits, sw,
             true_dtype="i64")
    kip = keras.losses.SparseCategoricalCrossentropy(from_logits=False, ignore_class=-1)
    add_loss("scce_probs_ignore_sw", scfg(False, ignore_class=-1), kip, ig, probs, sw,
             true_dtype="i64")
    allig = np.full(N, -1)
    add_loss("scce_logits_all_ignored", scfg(True, ignore_class=-1), ki, allig, logits,
             true_dtype="i64")
    # Label smoothing (a ferrovision extension): Keras' CategoricalCrossentropy on one-hot.
    kc = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    add_loss("scce_logits_ls_sw", scfg(True, ls=0.2), kc, f32(onehot(idx, C)), logits, sw,
             true_dtype="i64", y_true_ours=idx)
    # Spatial: logits [N, C, H, W] (ours) / [N, H, W, C] (Keras), targets [N, H, W].
    n, h, w = 2, 4, 3
    sidx = rng.integers(0, C, size=(n, h, w))
    slg = f32(rng.normal(size=(n, h, w, C)))
    sprob = f32(rng.dirichlet(np.ones(C), size=(n, h, w)) * 0.98 + 0.005)
    sw2 = f32([0.6, 1.7])
    add_loss("scce_logits_spatial", scfg(True), k, sidx, slg, spatial=True, true_dtype="i64")
    add_loss("scce_logits_spatial_sw", scfg(True), k, sidx, slg, sw2, expand_w(sw2, 3),
             spatial=True, true_dtype="i64")
    add_loss("scce_probs_spatial_sw", scfg(False),
             keras.losses.SparseCategoricalCrossentropy(from_logits=False), sidx, sprob, sw2,
             expand_w(sw2, 3), spatial=True, true_dtype="i64")
    sig = sidx.copy()
    sig[0, 0, :] = 255
    sig[1, 2, 1] = 255
    ki255 = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    cwl = np.where(sig == 255, 0.0, cw[np.where(sig == 255, 0, sig)])
    add_loss("scce_logits_spatial_ignore_classweights_sw",
             scfg(True, ignore_class=255, class_weights=list(map(float, cw))), ki255, sig, slg,
             sw2, keras_sw=expand_w(sw2, 3) * cwl, spatial=True, true_dtype="i64")


def kld_cases():
    N, C = 6, 5
    yt = f32(rng.dirichlet(np.ones(C), size=N))
    yt[0, 1] = 0.0  # clipped to eps
    yp = f32(rng.dirichlet(np.ones(C), size=N) * 0.99 + 0.002)
    sw = f32(rng.uniform(0.1, 2.0, size=N))
    c = cfg("KLDivergence", **base("kl_divergence"))
    add_loss("kld_2d", c, keras.losses.KLDivergence(), yt, yp)
    add_loss("kld_2d_sw", c, keras.losses.KLDivergence(), yt, yp, sw)
    n, h, w = 2, 2, 3
    syt = f32(rng.dirichlet(np.ones(C), size=(n, h, w)))
    syp = f32(rng.dirichlet(np.ones(C), size=(n, h, w)))
    sw2 = f32([1.25, 0.5])
    add_loss("kld_spatial_sw", c, keras.losses.KLDivergence(), syt, syp, sw2, expand_w(sw2, 3),
             spatial=True)


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

metric_cases = []


def add_metric(case_id, our_cfg, keras_metric, batches, spatial=False, true_dtype="f32"):
    """`batches`: list of (y_true, y_pred, sw or None) in Keras layout."""
    out = []
    results = []
    for yt, yp, sw in batches:
        kw = {}
        if sw is not None:
            kw["sample_weight"] = sw
        keras_metric.update_state(yt, yp, **kw)
        results.append(float(keras_metric.result().numpy()))
        if spatial:
            yp = nchw(yp)
            if yt.ndim == 4:
                yt = nchw(yt)
        out.append({"y_true": enc(yt, true_dtype), "y_pred": enc(yp),
                    "sample_weight": None if sw is None else enc(sw)})
    metric_cases.append({"id": case_id, "metric": our_cfg, "batches": out, "results": results})


def mcfg(class_name, **kw):
    return cfg(class_name, **kw)


def metric_cases_all():
    def sws(n, weighted):
        return f32(rng.uniform(0.0, 2.0, size=n)) if weighted else None

    sizes = (5, 8, 3)
    for weighted in (False, True):
        wt = "_sw" if weighted else ""
        # Binary accuracy on probabilities [N, 1], two thresholds.
        for thr in (0.5, 0.7):
            batches = [(f32(rng.integers(0, 2, size=(n, 1))), f32(rng.uniform(size=(n, 1))),
                        sws(n, weighted)) for n in sizes]
            add_metric(f"binary_accuracy_t{thr}{wt}",
                       mcfg("BinaryAccuracy", name="binary_accuracy", threshold=thr),
                       keras.metrics.BinaryAccuracy(threshold=thr), batches)
        # Categorical accuracy (one-hot), with ties in the predictions (first max wins).
        C = 4
        batches = []
        for n in sizes:
            yp = f32(rng.integers(0, 3, size=(n, C)))  # many ties
            batches.append((f32(onehot(rng.integers(0, C, size=n), C)), yp, sws(n, weighted)))
        add_metric(f"categorical_accuracy{wt}",
                   mcfg("CategoricalAccuracy", name="categorical_accuracy"),
                   keras.metrics.CategoricalAccuracy(), batches)
        # Sparse categorical accuracy [N] int labels.
        batches = [(rng.integers(0, C, size=n), f32(rng.normal(size=(n, C))), sws(n, weighted))
                   for n in sizes]
        add_metric(f"sparse_categorical_accuracy{wt}",
                   mcfg("SparseCategoricalAccuracy", name="sparse_categorical_accuracy"),
                   keras.metrics.SparseCategoricalAccuracy(), batches, true_dtype="i64")
        # Spatial sparse accuracy (NCHW for us).
        batches = [(rng.integers(0, C, size=(n, 2, 3)), f32(rng.normal(size=(n, 2, 3, C))),
                    sws(n, weighted)) for n in (2, 3)]
        add_metric(f"sparse_categorical_accuracy_spatial{wt}",
                   mcfg("SparseCategoricalAccuracy", name="sparse_categorical_accuracy"),
                   keras.metrics.SparseCategoricalAccuracy(), batches, spatial=True,
                   true_dtype="i64")
        # Top-k (tf.math.in_top_k only takes float32; the results are weighted counts).
        # 6 classes, k=3; integer-valued predictions give ties at the boundary.
        C = 6
        batches = [(f32(onehot(rng.integers(0, C, size=n), C)),
                    f32(rng.integers(0, 4, size=(n, C))), sws(n, weighted)) for n in sizes]
        add_metric(f"top_k_categorical_accuracy_k3{wt}",
                   mcfg("TopKCategoricalAccuracy", name="top_k_categorical_accuracy", k=3),
                   keras.metrics.TopKCategoricalAccuracy(k=3, dtype="float32"),
                   [(a, b.astype(np.float32), w) for a, b, w in batches])
        batches = [(rng.integers(0, C, size=n), f32(rng.normal(size=(n, C))), sws(n, weighted))
                   for n in sizes]
        add_metric(f"sparse_top_k_categorical_accuracy_k2{wt}",
                   mcfg("SparseTopKCategoricalAccuracy",
                        name="sparse_top_k_categorical_accuracy", k=2),
                   keras.metrics.SparseTopKCategoricalAccuracy(k=2, dtype="float32"),
                   [(a, b.astype(np.float32), w) for a, b, w in batches], true_dtype="i64")
        # Precision / recall on [N, 3] multi-label probabilities, threshold 0.5 and 0.3, class_id.
        for cls_name, kcls in (("Precision", keras.metrics.Precision),
                               ("Recall", keras.metrics.Recall)):
            lname = cls_name.lower()
            for thr, cid in ((0.5, None), (0.3, None), (0.5, 2)):
                batches = [(f32(rng.integers(0, 2, size=(n, 3))), f32(rng.uniform(size=(n, 3))),
                            sws(n, weighted)) for n in sizes]
                tag = f"{lname}_t{thr}" + (f"_class{cid}" if cid is not None else "")
                add_metric(tag + wt,
                           mcfg(cls_name, name=lname, thresholds=thr, class_id=cid),
                           kcls(thresholds=thr, class_id=cid), batches)
        # Mean of values (y_pred carries the values; y_true is ignored).
        km = keras.metrics.Mean()
        out, results = [], []
        for n in sizes:
            v = f32(rng.normal(size=n))
            sw = sws(n, weighted)
            km.update_state(v, **({} if sw is None else {"sample_weight": sw}))
            results.append(float(km.result().numpy()))
            out.append({"y_true": None, "y_pred": enc(v),
                        "sample_weight": None if sw is None else enc(sw)})
        metric_cases.append({"id": f"mean{wt}", "metric": mcfg("Mean", name="mean"),
                             "batches": out, "results": results})
        # Mean squared error metric on [N, 4].
        batches = [(f32(rng.normal(size=(n, 4))), f32(rng.normal(size=(n, 4))), sws(n, weighted))
                   for n in sizes]
        add_metric(f"mean_squared_error{wt}", mcfg("MeanSquaredError", name="mean_squared_error"),
                   keras.metrics.MeanSquaredError(), batches)
        # PSNR: tf.image.psnr per image (NHWC), averaged by keras.metrics.Mean with the weights.
        kp = keras.metrics.Mean()
        out, results = [], []
        for n in (2, 3, 1):
            a = f32(rng.uniform(size=(n, 5, 6, 3)))
            b = f32(np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1))
            sw = sws(n, weighted)
            p = tf.image.psnr(tf.constant(a), tf.constant(b), max_val=1.0).numpy()
            kp.update_state(p, **({} if sw is None else {"sample_weight": sw}))
            results.append(float(kp.result().numpy()))
            out.append({"y_true": enc(nchw(a)), "y_pred": enc(nchw(b)),
                        "sample_weight": None if sw is None else enc(sw)})
        metric_cases.append({"id": f"psnr{wt}", "metric": mcfg("PSNR", name="psnr", max_val=1.0),
                             "batches": out, "results": results})
        # Loss functions wrapped as metrics (per-sample values, weighted mean).
        batches = [(f32(rng.normal(size=(n, 3))), f32(rng.normal(size=(n, 3))), sws(n, weighted))
                   for n in sizes]
        add_metric(f"wrapper_mae{wt}",
                   mcfg("MeanMetricWrapper", name="mean_absolute_error",
                        loss=cfg("MeanAbsoluteError", **base("mean_absolute_error"))),
                   keras.metrics.MeanMetricWrapper(keras.losses.mean_absolute_error,
                                                   name="mean_absolute_error"), batches)
        C = 4
        batches = [(rng.integers(0, C, size=n), f32(rng.normal(size=(n, C))), sws(n, weighted))
                   for n in sizes]
        add_metric(f"wrapper_scce_logits{wt}",
                   mcfg("MeanMetricWrapper", name="sparse_categorical_crossentropy",
                        loss=cfg("SparseCategoricalCrossentropy",
                                 **base("sparse_categorical_crossentropy", from_logits=True,
                                        ignore_class=None, class_weights=None,
                                        label_smoothing=0.0))),
                   keras.metrics.MeanMetricWrapper(keras.losses.sparse_categorical_crossentropy,
                                                   name="sparse_categorical_crossentropy",
                                                   from_logits=True),
                   batches, true_dtype="i64")


def main():
    regression_cases()
    bce_cases()
    cce_cases()
    scce_cases()
    kld_cases()
    metric_cases_all()
    meta = {"keras_version": keras.__version__, "tensorflow_version": tf.__version__,
            "numpy_version": np.__version__, "backend": keras.backend.backend(),
            "floatx": keras.config.floatx()}
    for fname, key, cases in (("nn_losses.json", "cases", loss_cases),
                              ("nn_metrics.json", "cases", metric_cases)):
        path = os.path.join(OUT, fname)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({**meta, key: cases}, f, separators=(",", ":"))
        os.replace(tmp, path)
        print(f"wrote {path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
