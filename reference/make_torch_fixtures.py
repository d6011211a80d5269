#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for ferrovision-tensor's op tests.

For every case the script
  1. draws small seeded inputs on a 5-decimal grid (distinct values, so max-pooling has no ties)
     and rounds them to float32, which is exactly what the Rust test parses back;
  2. runs the PyTorch op in float64 on those float32 values (a near-exact reference);
  3. back-propagates `sum(output * cotangent)` for a stored random cotangent to get the
     gradient of every differentiable input;
  4. stores the float32-rounded output and gradients (8 significant digits).

It also runs each case again in float32 PyTorch and checks it against the stored reference with
the tolerance the Rust test uses, so a fixture is only written when a correct float32
implementation can pass it.

Output: one JSON file per op family in reference/fixtures/ (see reference/README.md for the
schema). Usage (from the repository root):

    reference/.venv/bin/python reference/make_torch_fixtures.py
"""

import json
import os
import sys
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F

# Tolerance the Rust test applies: |got - want| <= ATOL * max(1, max|want|) + RTOL * |want|.
RTOL = 1e-4
ATOL = 1e-5

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
MAX_FILE_BYTES = 300_000

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# Random inputs
# ---------------------------------------------------------------------------------------------


class Gen:
    """Seeded draws for one case (the seed comes from the case name, so cases are independent)."""

    def __init__(self, name):
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))

    def grid(self, shape, lo=-1.0, hi=1.0):
        """Distinct values in [lo, hi) on a 5-decimal grid, as float32."""
        n = int(np.prod(shape, dtype=np.int64))
        lo_i, hi_i = int(round(lo * 1e5)), int(round(hi * 1e5))
        ints = self.rng.choice(hi_i - lo_i, size=n, replace=False) + lo_i
        vals = np.array([float(f"{i / 1e5:.5f}") for i in ints], dtype=np.float64)
        return vals.astype(np.float32).reshape(shape)

    def ints(self, shape, lo, hi):
        """Integers in [lo, hi) as int64."""
        return self.rng.integers(lo, hi, size=shape).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# JSON encoding
# ---------------------------------------------------------------------------------------------


def _num(v, digits):
    """A float32 value as a short JSON number: `digits` significant digits, or with
    digits=None the shortest decimal that parses back to exactly this float32."""
    v = np.float32(v)
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v} in a fixture")
    if digits is None:
        r = float(str(v))
        # The Rust test parses a JSON number as f64 and rounds it to f32: check that this gives
        # back exactly the float32 the reference was computed from.
        assert np.float32(r) == v, (v, r)
        return r
    return float(f"{float(v):.{digits}g}")


def enc(arr, digits=8):
    """{"shape", "dtype", "data"} of a numpy array or tensor (float32-rounded floats; see
    `_num` for `digits`)."""
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype.kind in "iu":
        return {"shape": list(arr.shape), "dtype": "i64", "data": [int(v) for v in arr.reshape(-1)]}
    flat = arr.astype(np.float32).reshape(-1)
    return {"shape": list(arr.shape), "dtype": "f32", "data": [_num(v, digits) for v in flat]}


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def worst_ratio(got, want):
    """max over elements of |got - want| / (atol * max(1, max|want|) + rtol * |want|)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    if want.size == 0:
        return 0.0
    atol = ATOL * max(1.0, float(np.abs(want).max()))
    return float(np.max(np.abs(got - want) / (atol + RTOL * np.abs(want))))


def _torch_inputs(inputs, diff, dtype):
    ts = {}
    for k, v in inputs.items():
        if v.dtype.kind in "iu":
            ts[k] = torch.tensor(v, dtype=torch.int64)
        else:
            ts[k] = torch.tensor(v.astype(np.float64), dtype=dtype).requires_grad_(k in diff)
    return ts


def _run(fn, ts):
    res = fn(ts)
    if isinstance(res, tuple):
        return res
    return res, {}


class Family:
    def __init__(self, file):
        self.file = file
        self.cases = []
        self.worst = []

    def case(self, name, op, params, inputs, fn, diff, gen, extra_static=None):
        """Adds a case: `fn(tensors) -> output` or `(output, {extra name: tensor})`;
        `diff` names the inputs whose gradients are stored."""
        assert all(c["name"] != name for c in self.cases), name
        # float64 reference
        ts = _torch_inputs(inputs, diff, torch.float64)
        out, extra = _run(fn, ts)
        cot = gen.grid(tuple(out.shape))
        if diff:
            (out * torch.tensor(cot, dtype=torch.float64)).sum().backward()
        grads = {k: ts[k].grad for k in diff}
        for k, g in grads.items():
            assert g is not None, f"{name}: no gradient for {k}"
        # float32 self-check with the Rust tolerance
        ts32 = _torch_inputs(inputs, diff, torch.float32)
        out32, extra32 = _run(fn, ts32)
        if diff:
            (out32 * torch.tensor(cot)).sum().backward()
        ratios = {"output": worst_ratio(out32.detach(), out.detach().float())}
        for k in diff:
            ratios["grad." + k] = worst_ratio(ts32[k].grad, grads[k].float())
        for k, v in extra.items():
            if v.dtype.is_floating_point:
                ratios["extra." + k] = worst_ratio(extra32[k].detach(), v.detach().float())
            else:
                assert torch.equal(v, extra32[k]), f"{name}: {k} differs in float32"
        worst_k = max(ratios, key=ratios.get)
        self.worst.append((name, worst_k, ratios[worst_k]))
        if ratios[worst_k] > 0.5:
            raise SystemExit(
                f"{self.file}:{name}: float32 torch is at {ratios[worst_k]:.2f} of the "
                f"tolerance on {worst_k}; make the case better conditioned"
            )
        case = {
            "name": name,
            "op": op,
            "params": params,
            "inputs": {k: enc(v, None) for k, v in inputs.items()},
            "cotangent": enc(cot, None),
            "output": enc(out),
            "grads": {k: enc(g) for k, g in grads.items()},
            "extra": {k: enc(v) for k, v in extra.items()},
        }
        if extra_static:
            case["extra"].update(extra_static)
        self.cases.append(case)

    def write(self):
        os.makedirs(OUT_DIR, exist_ok=True)
        path = os.path.join(OUT_DIR, self.file)
        head = json.dumps(
            {"torch_version": torch.__version__, "numpy_version": np.__version__}, separators=(",", ":")
        )
        body = ",\n".join(json.dumps(c, separators=(",", ":")) for c in self.cases)
        text = head[:-1] + ',"cases":[\n' + body + "\n]}\n"
        with open(path, "w") as f:
            f.write(text)
        size = len(text.encode())
        worst = max(self.worst, key=lambda w: w[2])
        print(
            f"{self.file}: {len(self.cases)} cases, {size} bytes; worst float32-torch "
            f"error {worst[2]:.3f} of tolerance ({worst[0]}: {worst[1]})"
        )
        if size > MAX_FILE_BYTES:
            raise SystemExit(f"{self.file} is {size} bytes (> {MAX_FILE_BYTES}); shrink the cases")


# ---------------------------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------------------------


def tf_same_pads(size, k, s, d):
    """TensorFlow SAME padding (before, after) of one spatial dim."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return (total // 2, total - total // 2)


def conv_fns(nd):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]


def torch_pad_arg(pads):
    """F.pad's argument (last dim first) from per-dim (before, after) pairs."""
    arg = []
    for b, a in reversed(pads):
        arg += [b, a]
    return arg


def conv_case(fam, name, x_shape, cout, k, stride, padding, dilation, groups, bias):
    """padding: "valid", "same" (TF SAME, any stride) or a list of (before, after) per dim."""
    nd = len(k)
    g = Gen(name)
    cin = x_shape[1]
    inputs = {"x": g.grid(x_shape), "w": g.grid((cout, cin // groups) + tuple(k), -0.5, 0.5)}
    if bias:
        inputs["b"] = g.grid((cout,))
    spatial = x_shape[2:]
    if padding == "valid":
        pads = [(0, 0)] * nd
    elif padding == "same":
        pads = [tf_same_pads(spatial[i], k[i], stride[i], dilation[i]) for i in range(nd)]
    else:
        pads = [tuple(p) for p in padding]
    conv = conv_fns(nd)
    use_torch_same = padding == "same" and all(s == 1 for s in stride)

    def padded(t):
        x = t["x"]
        if any(p != (0, 0) for p in pads):
            x = F.pad(x, torch_pad_arg(pads))
        return conv(x, t["w"], t.get("b"), stride=stride, padding=0, dilation=dilation, groups=groups)

    def fn(t):
        if use_torch_same:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "padding='same' with even kernel lengths ..."
                out = conv(t["x"], t["w"], t.get("b"), stride=1, padding="same", dilation=dilation, groups=groups)
            # torch's 'same' must equal TF SAME at stride 1 (extra padding after).
            assert torch.equal(out, padded(t)), name
            return out
        return padded(t)

    params = {
        "stride": list(stride),
        "padding": padding if isinstance(padding, str) else [list(p) for p in pads],
        "dilation": list(dilation),
        "groups": groups,
    }
    extra = {"pads": [list(p) for p in pads]}
    if padding == "same":
        extra["same_via"] = "torch padding='same'" if use_torch_same else "F.pad with TF SAME pads"
    fam.case(name, f"conv{nd}d", params, inputs, fn, list(inputs), g, extra)


def conv_family():
    fam = Family("conv.json")
    # conv1d
    conv_case(fam, "conv1d_valid_bias", (2, 3, 9), 4, (3,), (1,), "valid", (1,), 1, True)
    conv_case(fam, "conv1d_stride2_asym_pad", (2, 3, 10), 4, (3,), (2,), [(2, 1)], (1,), 1, True)
    conv_case(fam, "conv1d_same_dilation2", (1, 2, 9), 3, (3,), (1,), "same", (2,), 1, False)
    conv_case(fam, "conv1d_same_even_kernel", (2, 2, 8), 3, (4,), (1,), "same", (1,), 1, True)
    conv_case(fam, "conv1d_groups2_nobias", (2, 4, 8), 6, (3,), (1,), [(1, 1)], (1,), 2, False)
    conv_case(fam, "conv1d_tf_same_stride2", (1, 3, 10), 2, (3,), (2,), "same", (1,), 1, True)
    # conv2d
    conv_case(fam, "conv2d_valid_bias", (2, 3, 6, 6), 4, (3, 3), (1, 1), "valid", (1, 1), 1, True)
    conv_case(fam, "conv2d_stride2_pad1_nobias", (2, 3, 7, 7), 4, (3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1), 1, False)
    conv_case(fam, "conv2d_asym_pad_rect_kernel", (1, 2, 6, 7), 3, (3, 2), (1, 2), [(0, 2), (1, 0)], (1, 1), 1, True)
    conv_case(fam, "conv2d_dilation", (1, 2, 8, 7), 3, (3, 3), (1, 1), [(2, 2), (1, 1)], (2, 1), 1, True)
    conv_case(fam, "conv2d_groups2", (2, 4, 5, 5), 4, (3, 3), (1, 1), [(1, 1), (1, 1)], (1, 1), 2, True)
    conv_case(fam, "conv2d_depthwise_mult2", (1, 3, 6, 6), 6, (3, 3), (2, 1), [(1, 1), (1, 1)], (1, 1), 3, True)
    conv_case(fam, "conv2d_depthwise", (2, 4, 5, 5), 4, (3, 3), (1, 1), [(1, 1), (1, 1)], (1, 1), 4, False)
    conv_case(fam, "conv2d_same_stride1", (1, 2, 5, 6), 3, (3, 4), (1, 1), "same", (1, 1), 1, True)
    conv_case(fam, "conv2d_same_stride1_dilation", (1, 2, 7, 6), 2, (3, 2), (1, 1), "same", (2, 3), 1, False)
    conv_case(fam, "conv2d_tf_same_stride2", (1, 2, 7, 8), 3, (3, 3), (2, 2), "same", (1, 1), 1, True)
    conv_case(fam, "conv2d_tf_same_stride2_even_kernel", (1, 2, 6, 5), 2, (2, 4), (2, 3), "same", (1, 1), 1, True)
    conv_case(fam, "conv2d_1x1_stride2", (2, 4, 5, 6), 3, (1, 1), (2, 2), "valid", (1, 1), 1, True)
    conv_case(fam, "conv2d_stride_dilation_pad", (1, 3, 9, 8), 2, (2, 3), (2, 3), [(1, 0), (2, 2)], (3, 2), 1, True)
    # conv3d
    conv_case(fam, "conv3d_valid_bias", (1, 2, 4, 5, 5), 3, (2, 3, 3), (1, 1, 1), "valid", (1, 1, 1), 1, True)
    conv_case(fam, "conv3d_stride_asym_pad", (2, 2, 4, 5, 6), 2, (3, 3, 2), (1, 2, 2), [(1, 1), (0, 1), (1, 0)], (1, 1, 1), 1, False)
    conv_case(fam, "conv3d_groups_dilation", (1, 4, 4, 6, 5), 4, (2, 2, 2), (1, 1, 1), [(0, 0), (1, 1), (0, 1)], (1, 2, 1), 2, True)
    conv_case(fam, "conv3d_same_stride1", (1, 2, 3, 4, 5), 2, (3, 2, 3), (1, 1, 1), "same", (1, 1, 1), 1, True)
    return fam


def conv_t_case(fam, name, x_shape, cout, k, stride, padding, output_padding, dilation, groups, bias):
    nd = len(k)
    g = Gen(name)
    cin = x_shape[1]
    inputs = {"x": g.grid(x_shape), "w": g.grid((cin, cout // groups) + tuple(k), -0.5, 0.5)}
    if bias:
        inputs["b"] = g.grid((cout,))
    fn_t = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]

    def fn(t):
        return fn_t(
            t["x"], t["w"], t.get("b"), stride=stride, padding=padding,
            output_padding=output_padding, groups=groups, dilation=dilation,
        )

    params = {
        "stride": list(stride),
        "padding": list(padding),
        "output_padding": list(output_padding),
        "dilation": list(dilation),
        "groups": groups,
    }
    fam.case(name, f"conv_transpose{nd}d", params, inputs, fn, list(inputs), g)


def conv_transpose_family():
    fam = Family("conv_transpose.json")
    conv_t_case(fam, "convt1d_basic_bias", (2, 3, 5), 2, (3,), (1,), (0,), (0,), (1,), 1, True)
    conv_t_case(fam, "convt1d_stride2_pad1_outpad1", (2, 3, 5), 2, (3,), (2,), (1,), (1,), (1,), 1, True)
    conv_t_case(fam, "convt1d_stride3_k2", (1, 2, 4), 3, (2,), (3,), (0,), (2,), (1,), 1, False)
    conv_t_case(fam, "convt1d_dilation2_groups2", (2, 4, 5), 2, (3,), (1,), (1,), (0,), (2,), 2, True)
    conv_t_case(fam, "convt2d_stride2_pad1_outpad1", (1, 3, 4, 4), 2, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, True)
    conv_t_case(fam, "convt2d_k2s2", (2, 3, 3, 3), 2, (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), 1, True)
    conv_t_case(fam, "convt2d_asym_stride_outpad", (1, 2, 3, 4), 3, (3, 2), (2, 3), (0, 1), (1, 2), (1, 1), 1, False)
    conv_t_case(fam, "convt2d_dilation", (1, 2, 4, 3), 2, (3, 3), (1, 2), (1, 2), (0, 1), (2, 2), 1, True)
    conv_t_case(fam, "convt2d_groups2", (2, 4, 3, 3), 6, (3, 3), (2, 1), (1, 0), (1, 0), (1, 1), 2, False)
    conv_t_case(fam, "convt2d_depthwise", (1, 3, 4, 4), 3, (3, 3), (2, 2), (1, 1), (0, 0), (1, 1), 3, True)
    return fam


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def pool_case(fam, name, kind, x_shape, kernel, stride, padding, dilation=None, ceil_mode=False, count_include_pad=True):
    nd = len(kernel)
    g = Gen(name)
    inputs = {"x": g.grid(x_shape)}
    if kind == "max":
        dilation = dilation or (1,) * nd
        f = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]

        def fn(t):
            return f(t["x"], kernel, stride, padding, dilation, ceil_mode=ceil_mode)

        params = {"kernel": list(kernel), "stride": list(stride), "padding": list(padding),
                  "dilation": list(dilation), "ceil_mode": ceil_mode}
    else:
        f = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]

        def fn(t):
            return f(t["x"], kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)

        params = {"kernel": list(kernel), "stride": list(stride), "padding": list(padding),
                  "ceil_mode": ceil_mode, "count_include_pad": count_include_pad}
    fam.case(name, f"{kind}_pool{nd}d", params, inputs, fn, ["x"], g)


def adaptive_case(fam, name, kind, x_shape, out_size):
    g = Gen(name)
    inputs = {"x": g.grid(x_shape)}
    f = F.adaptive_avg_pool2d if kind == "avg" else F.adaptive_max_pool2d
    fam.case(name, f"adaptive_{kind}_pool2d", {"output_size": list(out_size)}, inputs,
             lambda t: f(t["x"], out_size), ["x"], g)


def pool_family():
    fam = Family("pool.json")
    pool_case(fam, "max1d_k3_s2_p1", "max", (2, 3, 9), (3,), (2,), (1,))
    pool_case(fam, "max1d_k2_s1_dil2", "max", (1, 2, 8), (2,), (1,), (0,), dilation=(2,))
    pool_case(fam, "max1d_k3_s2_ceil", "max", (1, 2, 8), (3,), (2,), (0,), ceil_mode=True)
    pool_case(fam, "max2d_k2_s2", "max", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0))
    pool_case(fam, "max2d_k3_s2_p1", "max", (1, 2, 7, 6), (3, 3), (2, 2), (1, 1))
    pool_case(fam, "max2d_k3_s2_p1_ceil", "max", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), ceil_mode=True)
    pool_case(fam, "max2d_rect_dil", "max", (1, 2, 9, 7), (3, 2), (2, 1), (1, 0), dilation=(2, 1))
    pool_case(fam, "max2d_ceil_drop_last_window", "max", (1, 1, 5, 5), (2, 2), (2, 2), (1, 1), ceil_mode=True)
    pool_case(fam, "max2d_ceil_dil", "max", (1, 2, 8, 7), (2, 3), (3, 2), (1, 1), dilation=(2, 2), ceil_mode=True)
    pool_case(fam, "max3d_k2_s2", "max", (1, 2, 4, 4, 4), (2, 2, 2), (2, 2, 2), (0, 0, 0))
    pool_case(fam, "max3d_k3_s2_p1_ceil", "max", (1, 1, 4, 5, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1), ceil_mode=True)
    pool_case(fam, "max3d_dil", "max", (1, 1, 5, 5, 5), (2, 2, 2), (1, 2, 1), (0, 1, 0), dilation=(2, 1, 2))
    pool_case(fam, "avg1d_k3_s2_p1_incl", "avg", (2, 2, 9), (3,), (2,), (1,))
    pool_case(fam, "avg1d_k3_s2_p1_excl", "avg", (2, 2, 9), (3,), (2,), (1,), count_include_pad=False)
    pool_case(fam, "avg1d_k4_s3_p2_ceil_incl", "avg", (1, 2, 10), (4,), (3,), (2,), ceil_mode=True)
    pool_case(fam, "avg1d_k4_s3_p2_ceil_excl", "avg", (1, 2, 10), (4,), (3,), (2,), ceil_mode=True, count_include_pad=False)
    pool_case(fam, "avg2d_k2_s2", "avg", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0))
    for ceil in (False, True):
        for incl in (True, False):
            tag = ("ceil" if ceil else "floor") + ("_incl" if incl else "_excl")
            pool_case(fam, f"avg2d_k3_s2_p1_{tag}", "avg", (1, 2, 6, 7), (3, 3), (2, 2), (1, 1),
                      ceil_mode=ceil, count_include_pad=incl)
    pool_case(fam, "avg2d_rect_ceil_excl", "avg", (1, 2, 7, 8), (3, 2), (2, 3), (1, 1), ceil_mode=True, count_include_pad=False)
    pool_case(fam, "avg3d_k2_s2", "avg", (1, 2, 4, 4, 4), (2, 2, 2), (2, 2, 2), (0, 0, 0))
    pool_case(fam, "avg3d_ceil_excl", "avg", (1, 1, 4, 5, 6), (2, 3, 3), (1, 2, 2), (0, 1, 1), ceil_mode=True, count_include_pad=False)
    pool_case(fam, "avg3d_ceil_incl", "avg", (1, 1, 4, 5, 6), (2, 3, 3), (1, 2, 2), (0, 1, 1), ceil_mode=True)
    adaptive_case(fam, "adaptive_avg_7x5_to_3x2", "avg", (2, 2, 7, 5), (3, 2))
    adaptive_case(fam, "adaptive_avg_6x9_to_4x4", "avg", (1, 2, 6, 9), (4, 4))
    adaptive_case(fam, "adaptive_avg_5x5_to_1x1", "avg", (2, 3, 5, 5), (1, 1))
    adaptive_case(fam, "adaptive_avg_3x4_to_5x6_up", "avg", (1, 2, 3, 4), (5, 6))
    adaptive_case(fam, "adaptive_max_7x5_to_3x2", "max", (2, 2, 7, 5), (3, 2))
    adaptive_case(fam, "adaptive_max_6x9_to_4x4", "max", (1, 2, 6, 9), (4, 4))
    adaptive_case(fam, "adaptive_max_5x5_to_1x1", "max", (1, 3, 5, 5), (1, 1))
    return fam


def unpool_family():
    fam = Family("unpool.json")

    def with_indices(name, x_shape, kernel, stride, padding, ceil_mode=False):
        g = Gen(name)
        inputs = {"x": g.grid(x_shape)}

        def fn(t):
            out, idx = F.max_pool2d(t["x"], kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True)
            return out, {"indices": idx}

        params = {"kernel": list(kernel), "stride": list(stride), "padding": list(padding),
                  "dilation": [1, 1], "ceil_mode": ceil_mode}
        fam.case(name, "max_pool2d_with_indices", params, inputs, fn, ["x"], g)

    def unpool(name, src_shape, kernel, stride, padding, out_hw):
        g = Gen(name)
        _, idx = F.max_pool2d(torch.tensor(g.grid(src_shape)), kernel, stride, padding, return_indices=True)
        idx = idx.numpy()
        inputs = {"x": g.grid(idx.shape), "indices": idx}

        def fn(t):
            return F.max_unpool2d(t["x"], t["indices"], kernel, stride, padding, output_size=list(out_hw))

        params = {"output_size": list(out_hw), "pool_kernel": list(kernel), "pool_stride": list(stride),
                  "pool_padding": list(padding)}
        fam.case(name, "max_unpool2d", params, inputs, fn, ["x"], g)

    with_indices("maxidx_k2_s2", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0))
    with_indices("maxidx_k3_s2_p1", (1, 2, 7, 7), (3, 3), (2, 2), (1, 1))
    with_indices("maxidx_k3_s2_p1_ceil", (1, 2, 6, 5), (3, 3), (2, 2), (1, 1), ceil_mode=True)
    with_indices("maxidx_overlap_k3_s1", (1, 1, 5, 6), (3, 3), (1, 1), (0, 0))
    unpool("unpool_k2_s2", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (6, 6))
    unpool("unpool_k2_s2_odd_out", (1, 2, 7, 5), (2, 2), (2, 2), (0, 0), (7, 5))
    unpool("unpool_k3_s2_p1", (1, 2, 7, 7), (3, 3), (2, 2), (1, 1), (7, 7))
    return fam


# ---------------------------------------------------------------------------------------------
# Upsampling
# ---------------------------------------------------------------------------------------------


def upsample_family():
    fam = Family("upsample.json")

    def nearest(name, x_shape, size):
        g = Gen(name)
        fam.case(name, "upsample_nearest2d", {"size": list(size)}, {"x": g.grid(x_shape)},
                 lambda t: F.interpolate(t["x"], size=size, mode="nearest"), ["x"], g)

    def bilinear(name, x_shape, size, align):
        g = Gen(name)
        fam.case(name, "upsample_bilinear2d", {"size": list(size), "align_corners": align},
                 {"x": g.grid(x_shape)},
                 lambda t: F.interpolate(t["x"], size=size, mode="bilinear", align_corners=align),
                 ["x"], g)

    nearest("nearest_3x4_to_6x8", (2, 2, 3, 4), (6, 8))
    nearest("nearest_3x4_to_7x5", (1, 2, 3, 4), (7, 5))
    nearest("nearest_6x8_to_3x4_down", (1, 2, 6, 8), (3, 4))
    nearest("nearest_5x7_to_3x3_down", (1, 2, 5, 7), (3, 3))
    nearest("nearest_4x4_to_4x4", (1, 1, 4, 4), (4, 4))
    for align in (False, True):
        tag = "ac" if align else "noac"
        bilinear(f"bilinear_3x4_to_6x8_{tag}", (2, 2, 3, 4), (6, 8), align)
        bilinear(f"bilinear_3x4_to_7x5_{tag}", (1, 2, 3, 4), (7, 5), align)
        bilinear(f"bilinear_6x8_to_3x5_down_{tag}", (1, 2, 6, 8), (3, 5), align)
        bilinear(f"bilinear_1x3_to_4x5_{tag}", (1, 2, 1, 3), (4, 5), align)
        bilinear(f"bilinear_5x5_to_1x3_{tag}", (1, 1, 5, 5), (1, 3), align)
    return fam


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def norm_family():
    fam = Family("norm.json")

    def batch_norm(name, x_shape, training, affine, momentum=0.1, eps=1e-5):
        g = Gen(name)
        c = x_shape[1]
        inputs = {"x": g.grid(x_shape, -2.0, 2.0)}
        if affine:
            inputs["weight"] = g.grid((c,), 0.5, 1.5)
            inputs["bias"] = g.grid((c,))
        inputs["running_mean"] = g.grid((c,), -0.5, 0.5)
        inputs["running_var"] = g.grid((c,), 0.5, 2.0)

        def fn(t):
            rm, rv = t["running_mean"].detach().clone(), t["running_var"].detach().clone()
            out = F.batch_norm(t["x"], rm, rv, t.get("weight"), t.get("bias"), training, momentum, eps)
            return out, {"running_mean_after": rm, "running_var_after": rv}

        diff = [k for k in ("x", "weight", "bias") if k in inputs]
        fam.case(name, "batch_norm", {"training": training, "momentum": momentum, "eps": eps},
                 inputs, fn, diff, g)

    def layer_norm(name, x_shape, nshape, affine, eps=1e-5):
        g = Gen(name)
        inputs = {"x": g.grid(x_shape, -2.0, 2.0)}
        if affine:
            inputs["weight"] = g.grid(nshape, 0.5, 1.5)
            inputs["bias"] = g.grid(nshape)
        fam.case(name, "layer_norm", {"normalized_shape": list(nshape), "eps": eps}, inputs,
                 lambda t: F.layer_norm(t["x"], nshape, t.get("weight"), t.get("bias"), eps),
                 list(inputs), g)

    def group_norm(name, x_shape, groups, affine, eps=1e-5):
        g = Gen(name)
        c = x_shape[1]
        inputs = {"x": g.grid(x_shape, -2.0, 2.0)}
        if affine:
            inputs["weight"] = g.grid((c,), 0.5, 1.5)
            inputs["bias"] = g.grid((c,))
        fam.case(name, "group_norm", {"groups": groups, "eps": eps}, inputs,
                 lambda t: F.group_norm(t["x"], groups, t.get("weight"), t.get("bias"), eps),
                 list(inputs), g)

    def instance_norm(name, x_shape, affine, eps=1e-5):
        g = Gen(name)
        c = x_shape[1]
        inputs = {"x": g.grid(x_shape, -2.0, 2.0)}
        if affine:
            inputs["weight"] = g.grid((c,), 0.5, 1.5)
            inputs["bias"] = g.grid((c,))
        fam.case(name, "instance_norm", {"eps": eps}, inputs,
                 lambda t: F.instance_norm(t["x"], weight=t.get("weight"), bias=t.get("bias"), eps=eps),
                 list(inputs), g)

    batch_norm("bn2d_train", (4, 3, 3, 3), True, True)
    batch_norm("bn2d_train_noaffine_mom03", (3, 2, 4, 3), True, False, momentum=0.3, eps=1e-3)
    batch_norm("bn1d_train_nc", (6, 4), True, True)
    batch_norm("bn1d_train_ncl", (3, 2, 5), True, True, momentum=0.05)
    batch_norm("bn3d_train", (2, 2, 2, 3, 3), True, True)
    batch_norm("bn2d_eval", (2, 3, 3, 3), False, True)
    batch_norm("bn2d_eval_noaffine", (2, 3, 2, 3), False, False, eps=1e-3)
    layer_norm("ln_last_dim", (3, 4, 6), (6,), True)
    layer_norm("ln_last_two_dims", (2, 3, 4, 5), (4, 5), True)
    layer_norm("ln_noaffine", (4, 10), (10,), False, eps=1e-3)
    group_norm("gn_groups3", (2, 6, 3, 3), 3, True)
    group_norm("gn_groups1_noaffine", (2, 4, 3, 2), 1, False)
    group_norm("gn_groups_eq_c", (2, 4, 6), 4, True, eps=1e-3)
    group_norm("gn_groups2_3d", (1, 4, 2, 3, 3), 2, True)
    instance_norm("in2d_affine", (2, 3, 4, 4), True)
    instance_norm("in2d_noaffine", (2, 2, 3, 4), False)
    instance_norm("in1d_affine", (2, 3, 7), True, eps=1e-3)
    return fam


# ---------------------------------------------------------------------------------------------
# Softmax and losses
# ---------------------------------------------------------------------------------------------


def softmax_ce_family():
    fam = Family("softmax_ce.json")

    def softmax(name, op, x_shape, axis, scale=3.0):
        g = Gen(name)
        f = F.softmax if op == "softmax" else F.log_softmax
        fam.case(name, op, {"axis": axis}, {"x": g.grid(x_shape, -scale, scale)},
                 lambda t: f(t["x"], dim=axis), ["x"], g)

    for op in ("softmax", "log_softmax"):
        softmax(f"{op}_2d_last", op, (3, 5), -1)
        softmax(f"{op}_3d_axis1", op, (2, 4, 3), 1)
        softmax(f"{op}_3d_axis0", op, (3, 2, 4), 0)
        softmax(f"{op}_4d_axis_neg3", op, (2, 3, 2, 2), -3)
        softmax(f"{op}_large_logits", op, (2, 6), 1, scale=40.0)

    def ce(name, shape, reduction, ignore_index=None, weights=False, smoothing=0.0, force_ignore=0):
        g = Gen(name)
        c = shape[1]
        tshape = (shape[0],) + tuple(shape[2:])
        inputs = {"logits": g.grid(shape, -3.0, 3.0)}
        targets = g.ints(tshape, 0, c)
        if ignore_index is not None and force_ignore:
            flat = targets.reshape(-1)
            flat[g.rng.choice(flat.size, size=force_ignore, replace=False)] = ignore_index
        inputs["targets"] = targets
        if weights:
            inputs["class_weights"] = g.grid((c,), 0.2, 2.0)

        def fn(t):
            return F.cross_entropy(
                t["logits"], t["targets"], weight=t.get("class_weights"),
                ignore_index=-100 if ignore_index is None else ignore_index,
                reduction=reduction, label_smoothing=smoothing,
            )

        params = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": smoothing}
        fam.case(name, "cross_entropy", params, inputs, fn, ["logits"], g)

    ce("ce_mean", (5, 4), "mean")
    ce("ce_sum", (5, 4), "sum")
    ce("ce_none", (5, 4), "none")
    ce("ce_weights_mean", (6, 4), "mean", weights=True)
    ce("ce_weights_none", (6, 4), "none", weights=True)
    ce("ce_ignore_neg1_mean", (6, 3), "mean", ignore_index=-1, force_ignore=2)
    ce("ce_ignore_class1_sum", (6, 3), "sum", ignore_index=1)
    ce("ce_ignore_none", (6, 3), "none", ignore_index=-1, force_ignore=2)
    ce("ce_smooth_mean", (5, 4), "mean", smoothing=0.1)
    ce("ce_smooth_none", (5, 4), "none", smoothing=0.2)
    ce("ce_smooth_weights_ignore_mean", (7, 4), "mean", ignore_index=-1, weights=True, smoothing=0.15, force_ignore=2)
    ce("ce_smooth_weights_sum", (5, 3), "sum", weights=True, smoothing=0.1)
    ce("ce_spatial_mean", (2, 3, 3, 4), "mean")
    ce("ce_spatial_weights_ignore_sum", (2, 3, 3, 3), "sum", ignore_index=255, weights=True, force_ignore=3)
    ce("ce_spatial_weights_ignore_mean", (2, 4, 2, 3), "mean", ignore_index=255, weights=True, force_ignore=3)
    ce("ce_spatial_smooth_none", (1, 3, 2, 4), "none", smoothing=0.1)
    ce("ce_ncl_mean", (2, 3, 5), "mean")

    def bce(name, shape, reduction, weight_shape=None, pos_weight_shape=None, scale=3.0):
        g = Gen(name)
        inputs = {"logits": g.grid(shape, -scale, scale), "targets": g.grid(shape, 0.0, 1.0)}
        if weight_shape is not None:
            inputs["weight"] = g.grid(weight_shape, 0.2, 2.0)
        if pos_weight_shape is not None:
            inputs["pos_weight"] = g.grid(pos_weight_shape, 0.2, 3.0)

        def fn(t):
            return F.binary_cross_entropy_with_logits(
                t["logits"], t["targets"], weight=t.get("weight"), pos_weight=t.get("pos_weight"),
                reduction=reduction,
            )

        fam.case(name, "binary_cross_entropy_with_logits", {"reduction": reduction}, inputs, fn, ["logits"], g)

    bce("bce_mean", (4, 3), "mean")
    bce("bce_sum", (4, 3), "sum")
    bce("bce_none", (4, 3), "none")
    bce("bce_weight_full_mean", (4, 3), "mean", weight_shape=(4, 3))
    bce("bce_weight_bcast_sum", (4, 3), "sum", weight_shape=(3,))
    bce("bce_pos_weight_mean", (5, 3), "mean", pos_weight_shape=(3,))
    bce("bce_weight_pos_weight_none", (4, 3), "none", weight_shape=(4, 1), pos_weight_shape=(3,))
    bce("bce_spatial_pos_weight_mean", (2, 3, 2, 2), "mean", pos_weight_shape=(3, 1, 1))
    bce("bce_large_logits_mean", (3, 4), "mean", pos_weight_shape=(4,), scale=30.0)
    return fam


# ---------------------------------------------------------------------------------------------


def main():
    print(f"torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    for make in (conv_family, conv_transpose_family, pool_family, unpool_family, upsample_family,
                 norm_family, softmax_ce_family):
        make().write()


if __name__ == "__main__":
    main()
