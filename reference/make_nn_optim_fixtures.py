#!/usr/bin/env python3
"""Generate Keras 3 reference fixtures for ferrovision-nn's optimizers and learning-rate schedules.

Optimizers: every case builds a Keras 3 optimizer (TensorFlow backend, float64 variables), applies
a fixed sequence of gradients with `optimizer.apply_gradients` to two small weights (a [3, 4]
kernel and a [5] bias) and records the weights after every step and the optimizer's slot
variables after the last step. Initial weights and gradients are rounded to float32 first, which
is exactly what the Rust test feeds its float32 optimizer. On one step the bias has no gradient
(Keras skips it; so must we). The case stores `keras.optimizers.serialize(optimizer)` so the Rust
test also checks that it can rebuild an optimizer from a Keras config.

Each case is rerun with float32 variables and checked against the float64 reference with the
tolerance the Rust test uses, so a fixture is only written when a float32 implementation that
follows Keras' formulas can pass it.

Schedules: values of Keras schedule objects (float64 constants, so Keras computes in float64) at
a set of steps; `StepDecay` is checked
against PyTorch's `StepLR` and `LinearBurnIn` (darknet/YOLO burn-in, which Keras lacks) against
the formula `wrapped(step) * (step / burn_in) ** power` on top of a Keras schedule.

Usage (from the repository root):

    reference/.venv/bin/python reference/make_nn_optim_fixtures.py
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# PyTorch is only imported in a child process: loading it next to TensorFlow aborts (both
# bundle LLVM).
TORCH_STEPLR = '''
import json, sys, torch
steps = json.loads(sys.argv[1])
p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
opt = torch.optim.SGD([p], lr=0.1)
sch = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.3)
by_step = {}
for s in range(max(steps) + 1):
    by_step[s] = opt.param_groups[0]["lr"]
    opt.step()
    sch.step()
print(json.dumps({"torch_version": torch.__version__, "values": [by_step[s] for s in steps]}))
'''

assert keras.backend.backend() == "tensorflow"

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# Tolerance of the Rust test: |got - want| <= ATOL + RTOL * |want| on weights and slots.
RTOL = 1e-5
ATOL = 1e-6
STEPS = 6
# Step (0-based) on which the bias gets no gradient.
NO_BIAS_GRAD_STEP = 3

WEIGHT_NAMES = ["dense/kernel", "dense/bias"]
SHAPES = [(3, 4), (5,)]

# Keras attribute holding each slot list, and the slot name ferrovision uses.
SLOT_ATTRS = {
    "SGD": [("momentums", "momentum")],
    "Adagrad": [("_accumulators", "accumulator")],
    "Adadelta": [
        ("_accumulated_grads", "accumulated_grad"),
        ("_accumulated_delta_vars", "accumulated_delta_var"),
    ],
    "RMSprop": [
        ("_velocities", "velocity"),
        ("_momentums", "momentum"),
        ("_average_gradients", "average_gradient"),
    ],
    "Adam": [("_momentums", "momentum"), ("_velocities", "velocity"), ("_velocity_hats", "velocity_hat")],
    "AdamW": [("_momentums", "momentum"), ("_velocities", "velocity"), ("_velocity_hats", "velocity_hat")],
    "Nadam": [("_momentums", "momentum"), ("_velocities", "velocity")],
}


def f32(a):
    """float32-rounded values as float64 (what the Rust side parses back exactly)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_inputs():
    rng = np.random.default_rng(20240611)
    w0 = [f32(rng.normal(0.0, 1.0, s)) for s in SHAPES]
    grads = []
    for step in range(STEPS):
        # Vary the scale so clipping by norm / value is active on some steps and not others.
        scale = [1.5, 0.3, 2.0, 0.8, 1.0, 0.05][step]
        g = [f32(rng.normal(0.0, scale, s)) for s in SHAPES]
        if step == NO_BIAS_GRAD_STEP:
            g[1] = None
        grads.append(g)
    return w0, grads


S = keras.optimizers.schedules

# (name, class, kwargs). Learning rates are larger than the defaults (except the *_default cases)
# so that the updates are large relative to float32 rounding of the weights.
CASES = [
    ("sgd_default", keras.optimizers.SGD, {}),
    ("sgd", keras.optimizers.SGD, dict(learning_rate=0.1)),
    ("sgd_momentum", keras.optimizers.SGD, dict(learning_rate=0.1, momentum=0.9)),
    ("sgd_nesterov", keras.optimizers.SGD, dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay", keras.optimizers.SGD, dict(learning_rate=0.1, momentum=0.5, weight_decay=0.1)),
    ("sgd_clipnorm", keras.optimizers.SGD, dict(learning_rate=0.1, clipnorm=1.0)),
    ("sgd_clipvalue", keras.optimizers.SGD, dict(learning_rate=0.1, momentum=0.9, clipvalue=0.5)),
    ("sgd_global_clipnorm", keras.optimizers.SGD, dict(learning_rate=0.1, global_clipnorm=2.0)),
    (
        "sgd_exponential_decay",
        keras.optimizers.SGD,
        dict(learning_rate=S.ExponentialDecay(0.2, decay_steps=2, decay_rate=0.5, staircase=True), momentum=0.9),
    ),
    (
        "sgd_piecewise_weight_decay",
        keras.optimizers.SGD,
        dict(learning_rate=S.PiecewiseConstantDecay([1, 3], [0.3, 0.1, 0.02]), weight_decay=0.5),
    ),
    ("adagrad_default", keras.optimizers.Adagrad, {}),
    ("adagrad", keras.optimizers.Adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.2, epsilon=1e-6)),
    ("adagrad_clipnorm", keras.optimizers.Adagrad, dict(learning_rate=0.1, clipnorm=0.7)),
    ("adadelta_default", keras.optimizers.Adadelta, {}),
    ("adadelta", keras.optimizers.Adadelta, dict(learning_rate=1.0, rho=0.9, epsilon=1e-6)),
    ("rmsprop_default", keras.optimizers.RMSprop, {}),
    ("rmsprop", keras.optimizers.RMSprop, dict(learning_rate=0.01, rho=0.8)),
    ("rmsprop_momentum", keras.optimizers.RMSprop, dict(learning_rate=0.01, momentum=0.9)),
    ("rmsprop_centered", keras.optimizers.RMSprop, dict(learning_rate=0.01, centered=True)),
    (
        "rmsprop_centered_momentum",
        keras.optimizers.RMSprop,
        dict(learning_rate=0.01, momentum=0.5, centered=True, epsilon=1e-5),
    ),
    ("rmsprop_global_clipnorm", keras.optimizers.RMSprop, dict(learning_rate=0.01, global_clipnorm=1.0)),
    ("adam_default", keras.optimizers.Adam, {}),
    ("adam", keras.optimizers.Adam, dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-6)),
    ("adam_amsgrad", keras.optimizers.Adam, dict(learning_rate=0.05, amsgrad=True)),
    ("adam_weight_decay", keras.optimizers.Adam, dict(learning_rate=0.05, weight_decay=0.1)),
    ("adam_clipvalue", keras.optimizers.Adam, dict(learning_rate=0.05, clipvalue=0.3)),
    ("adam_clipnorm", keras.optimizers.Adam, dict(learning_rate=0.05, clipnorm=1.0)),
    (
        "adam_cosine_warmup",
        keras.optimizers.Adam,
        dict(learning_rate=S.CosineDecay(0.01, decay_steps=4, alpha=0.1, warmup_target=0.1, warmup_steps=2)),
    ),
    ("nadam_default", keras.optimizers.Nadam, {}),
    ("nadam", keras.optimizers.Nadam, dict(learning_rate=0.05, beta_1=0.85, beta_2=0.99)),
    ("nadam_global_clipnorm", keras.optimizers.Nadam, dict(learning_rate=0.05, global_clipnorm=1.5)),
    ("adamw_default", keras.optimizers.AdamW, {}),
    ("adamw", keras.optimizers.AdamW, dict(learning_rate=0.05, weight_decay=0.2)),
    ("adamw_amsgrad", keras.optimizers.AdamW, dict(learning_rate=0.05, weight_decay=0.2, amsgrad=True)),
    (
        "adamw_exponential_decay",
        keras.optimizers.AdamW,
        dict(learning_rate=S.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.3), weight_decay=0.1),
    ),
]


def typed_schedule(sched, dtype):
    """Rebuilds a Keras schedule with its float constants as numpy `dtype` scalars: Keras
    evaluates a schedule in the dtype of `initial_learning_rate`, and a Python float becomes
    float32 whatever floatx is (float32 cosine decay loses ~5e-5 near its end)."""
    cfg = sched.get_config()
    for k, v in cfg.items():
        if isinstance(v, float):
            cfg[k] = np.dtype(dtype).type(v)
        elif k == "values":
            cfg[k] = [np.dtype(dtype).type(x) for x in v]
    return sched.__class__.from_config(cfg)


def run_case(cls, kwargs, w0, grads, dtype):
    keras.config.set_floatx(dtype)
    kwargs = dict(kwargs)
    if "learning_rate" in kwargs and isinstance(kwargs["learning_rate"], S.LearningRateSchedule):
        kwargs["learning_rate"] = typed_schedule(kwargs["learning_rate"], dtype)
    opt = cls(**kwargs)
    var = [keras.Variable(w.astype(dtype), name=n.replace("/", "_")) for w, n in zip(w0, WEIGHT_NAMES)]
    history = []
    lrs = []
    for g in grads:
        lrs.append(float(np.asarray(keras.ops.convert_to_numpy(opt.learning_rate))))
        pairs = [(None if gi is None else tf.constant(gi.astype(dtype)), v) for gi, v in zip(g, var)]
        opt.apply_gradients(pairs)
        history.append([np.asarray(v.numpy(), dtype=np.float64) for v in var])
    slots = {}
    for attr, slot in SLOT_ATTRS[cls.__name__]:
        lst = getattr(opt, attr, None) or []
        for v, n in zip(lst, WEIGHT_NAMES):
            slots[f"{n}/{slot}"] = np.asarray(v.numpy(), dtype=np.float64)
    config = keras.optimizers.serialize(opt)
    assert int(opt.iterations.numpy()) == len(grads)
    return history, slots, lrs, config


def close(got, want):
    return np.all(np.abs(got - want) <= ATOL + RTOL * np.abs(want))


def to_list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def optimizer_fixture():
    w0, grads = make_inputs()
    cases = []
    for name, cls, kwargs in CASES:
        hist, slots, lrs, config = run_case(cls, kwargs, w0, grads, "float64")
        hist32, slots32, _, _ = run_case(cls, kwargs, w0, grads, "float32")
        for step, (a, b) in enumerate(zip(hist, hist32)):
            for x, y, n in zip(a, b, WEIGHT_NAMES):
                if not close(y, x):
                    sys.exit(f"{name}: float32 Keras misses the float64 reference at step {step} on {n}")
        for k in slots:
            if not close(slots32[k], slots[k]):
                sys.exit(f"{name}: float32 Keras misses the float64 reference on slot {k}")
        # The update must matter: every weight moves by far more than the tolerance.
        moved = min(np.max(np.abs(hist[-1][i] - w0[i])) for i in range(2))
        cases.append(
            {
                "name": name,
                "config": config,
                "learning_rates": lrs,
                "weights": [{n: to_list(w) for n, w in zip(WEIGHT_NAMES, ws)} for ws in hist],
                "slots": {k: to_list(v) for k, v in slots.items()},
            }
        )
        print(f"  {name:28s} moved >= {moved:.3g}, {len(slots)} slots")
    keras.config.set_floatx("float32")
    return {
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "rtol": RTOL,
        "atol": ATOL,
        "weight_names": WEIGHT_NAMES,
        "shapes": [list(s) for s in SHAPES],
        "initial_weights": {n: to_list(w) for n, w in zip(WEIGHT_NAMES, w0)},
        "grads": [{n: (None if gi is None else to_list(gi)) for n, gi in zip(WEIGHT_NAMES, g)} for g in grads],
        "cases": cases,
    }


SCHEDULE_STEPS = [0, 1, 2, 3, 5, 9, 10, 11, 20, 49, 50, 51, 99, 100, 101, 150, 1000]


def keras_schedules():
    return [
        ("exponential", S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)),
        ("exponential_staircase", S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)),
        ("piecewise", S.PiecewiseConstantDecay([10, 50, 100], [1.0, 0.5, 0.1, 0.01])),
        ("cosine", S.CosineDecay(0.1, decay_steps=100)),
        ("cosine_alpha", S.CosineDecay(0.1, decay_steps=100, alpha=0.05)),
        ("cosine_warmup", S.CosineDecay(0.0, decay_steps=90, alpha=0.1, warmup_target=0.2, warmup_steps=10)),
        ("cosine_warmup_from", S.CosineDecay(0.01, decay_steps=50, warmup_target=0.1, warmup_steps=20)),
        ("polynomial", S.PolynomialDecay(0.1, decay_steps=100, end_learning_rate=0.001, power=2.0)),
        ("polynomial_cycle", S.PolynomialDecay(0.1, decay_steps=20, end_learning_rate=0.01, power=1.0, cycle=True)),
        ("inverse_time", S.InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5)),
        ("inverse_time_staircase", S.InverseTimeDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)),
    ]


def schedule_fixture():
    keras.config.set_floatx("float64")
    cases = []
    for name, sched in keras_schedules():
        sched = typed_schedule(sched, "float64")
        values = [float(np.asarray(sched(tf.constant(s, dtype=tf.int64)))) for s in SCHEDULE_STEPS]
        cases.append({"name": name, "config": keras.optimizers.schedules.serialize(sched), "values": values})

    # Step decay: PyTorch StepLR (lr * gamma ** (step // step_size)).
    out = subprocess.run(
        [sys.executable, "-c", TORCH_STEPLR, json.dumps(SCHEDULE_STEPS)], check=True, capture_output=True, text=True
    )
    steplr = json.loads(out.stdout)
    cases.append(
        {
            "name": "step_decay",
            "config": {"class_name": "StepDecay", "config": {"initial_learning_rate": 0.1, "step_size": 30, "gamma": 0.3}},
            "values": steplr["values"],
        }
    )

    # Linear burn-in (darknet): wrapped(step) * (step / burn_in) ** power while step < burn_in.
    for name, burn_in, power, inner_name in [
        ("burn_in_constant", 10, 4.0, None),
        ("burn_in_exponential", 20, 2.0, "exponential_staircase"),
    ]:
        if inner_name is None:
            inner_cfg, inner = 0.1, (lambda s: 0.1)
        else:
            k = dict(keras_schedules())[inner_name]
            k = typed_schedule(k, "float64")
            inner_cfg = keras.optimizers.schedules.serialize(k)
            inner = lambda s, k=k: float(np.asarray(k(tf.constant(s, dtype=tf.int64))))  # noqa: E731
        values = [inner(s) * (s / burn_in) ** power if s < burn_in else inner(s) for s in SCHEDULE_STEPS]
        cases.append(
            {
                "name": name,
                "config": {
                    "class_name": "LinearBurnIn",
                    "config": {"burn_in": burn_in, "power": power, "schedule": inner_cfg},
                },
                "values": values,
            }
        )
    keras.config.set_floatx("float32")
    return {
        "keras_version": keras.__version__,
        "torch_version": steplr["torch_version"],
        "steps": SCHEDULE_STEPS,
        "cases": cases,
    }


def write(name, data):
    path = os.path.join(OUT_DIR, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(data['cases'])} cases)")


def main():
    tf.random.set_seed(0)
    np.random.seed(0)
    write("nn_optim.json", optimizer_fixture())
    write("nn_optim_schedules.json", schedule_fixture())


if __name__ == "__main__":
    main()
