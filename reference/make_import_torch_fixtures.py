#!/usr/bin/env python3
"""Generate the PyTorch weight-import fixtures of ferrovision-import (`tests/torch.rs`).

The independent reference is PyTorch itself (torch 2.15.0): every `.pt` file here is written by
`torch.save`, and every expected value comes from `torch.load` of that same file, so the Rust
reader is checked against what PyTorch reads, never against itself.

Files written under reference/fixtures/import/:

* `torch_state_zip.pt` / `torch_state_legacy.pt` / `torch_state_proto4.pt`: one state dict
  saved in the zip format (PyTorch >= 1.6, pickle protocol 2), the legacy pre-1.6 stream
  (`_use_new_zipfile_serialization=False`) and the zip format with pickle protocol 4 (FRAME,
  MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE). The dict is the `state_dict()` of `Tiny` (conv 3->4
  3x3 with bias, batch norm with its `num_batches_tracked`, linear 4->3) plus one tensor per
  dtype (f16, bf16, f64, i32, u8, bool, a 0-d f32, an empty [0, 3]), an `nn.Parameter`, and a
  base [4, 4] f32 tensor saved together with a transposed, offset view of it (`view_t` =
  `base[1:, :].t()`: shares the base's storage, non-contiguous, storage offset 4).
* `torch_state_zip_be.pt`: the zip file rewritten with `byteorder` = `big` and every storage
  byte-swapped (PyTorch writes big-endian files on big-endian machines only); `torch.load` must
  read it back equal before it is kept.
* `torch_state_zip_deflate.pt`: the zip file re-packed with deflate-compressed records (as a
  zip tool would leave it); `torch.load` must read it back equal before it is kept.
* `torch_checkpoint_zip.pt`: a training checkpoint `{"epoch", "best_acc", "arch", "state_dict":
  Tiny's state dict, "optimizer": SGD-with-momentum state dict after one step}`.
* `torch_expected.safetensors`: every tensor `torch.load` returns, as float32 (exact for all the
  values used), named `state/<key>` for the state dict and `ckpt/<dotted path>` for the
  checkpoint (nested dict keys and list indices joined with `.`); the metadata maps each name to
  its torch dtype. Also `tiny/input` [2, 3, 8, 8] and `tiny/output` [2, 3]: Tiny's eval-mode
  output on that input.
* `efficientnet_lite0_summary.json`, if the real EfficientNet-Lite0 file is in the local model
  cache (`$FERROVISION_HOME` or `~/.ferrovision`): for every tensor of `torch.load` of that
  file, its shape, its float64 sum and its first four values.
* `resnet18_torchvision_keys.json`: the key and shape of every tensor in torchvision's
  `resnet18(num_classes=10).state_dict()` (no weights: the Rust test fills them).
* Crafted files that must be refused: `evil_os_system.pt` (zip whose data.pkl REDUCEs
  `os.system`), `evil_eval_legacy.pt` (legacy stream whose main pickle REDUCEs `builtins.eval`
  through STACK_GLOBAL), `evil_nested_global.pt` (a zip state dict whose tensor rebuild gets a
  `subprocess.Popen()` in place of its hooks dict), `torch_uint16_zip.pt` (a uint16 tensor,
  which PyTorch pickles through `_rebuild_tensor_v3`; the engine has no uint16), `evil_opcode.pt` (zip whose data.pkl holds the
  undefined opcode 0xff), `model_pickle.pt` (`torch.save` of a whole `nn.Linear` module, which
  pickles the module's class). Each is checked to do what it claims with `pickletools` only;
  nothing crafted is ever unpickled.

Usage (from the repository root): reference/.venv/bin/python reference/make_import_torch_fixtures.py
"""

import collections
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "import")


class Tiny(torch.nn.Module):
    """conv -> bn -> relu -> global average pool -> fc: the key names a ferrovision net mirrors."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def tiny():
    torch.manual_seed(20261204)
    net = Tiny()
    with torch.no_grad():
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.5, 0.5)
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.num_batches_tracked.fill_(17)
    return net.eval()


def state_dict(net):
    sd = net.state_dict()  # an OrderedDict with `_metadata` (pickled through BUILD)
    g = torch.Generator().manual_seed(5)
    sd["half"] = torch.randn(2, 3, generator=g).half()
    sd["bfloat"] = torch.randn(5, generator=g).bfloat16()
    sd["double"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    sd["int32"] = torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3)
    sd["uint8"] = torch.tensor([0, 7, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    base = torch.arange(16, dtype=torch.float32).reshape(4, 4) / 8
    sd["base"] = base
    sd["view_t"] = base[1:, :].t()
    assert not sd["view_t"].is_contiguous() and sd["view_t"].storage_offset() == 4
    return sd


def checkpoint(net):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    snapshot = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    net(x).sum().backward()
    opt.step()
    net.load_state_dict(snapshot)  # the saved weights stay those of the eval fixture
    net.eval()
    return {
        "epoch": 7,
        "best_acc": 0.5,
        "arch": "tiny",
        "state_dict": net.state_dict(),
        "optimizer": opt.state_dict(),
    }


def flatten(obj, prefix, out):
    """Tensors of a nested dict/list under dotted names: the rule the Rust reader documents."""
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: float32 little-endian tensors, atomic."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path + ".tmp", **kw)
    os.replace(path + ".tmp", path)
    return path


def as_f32(t):
    """The exact float32 value array of a tensor (all fixture values are exact in float32)."""
    a = t.detach().to(torch.float64).numpy()
    f = a.astype(np.float32)
    if t.dtype != torch.float64:
        assert np.array_equal(f.astype(np.float64), a), "value not exact in float32"
    return f


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def big_endian_copy(src, dst):
    """`src` (a torch zip) rewritten with byteorder 'big' and byte-swapped storages.

    Storage keys are numbered in order of first use in the pickle, which is the order of the
    dict's tensors, so the element size of key `i` is that of the i-th distinct storage.
    """
    loaded = torch.load(src, weights_only=True)
    elem, seen = {}, []
    for t in loaded.values():
        ptr = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ptr not in seen:
            seen.append(ptr)
            elem[str(len(seen) - 1)] = t.element_size()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_STORED) as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            data = zin.read(info)
            name = info.filename
            if name == f"{prefix}/byteorder":
                data = b"big"
            elif name.startswith(f"{prefix}/data/"):
                size = elem[name.rsplit("/", 1)[1]]
                data = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)[:, ::-1].tobytes()
            zout.writestr(name, data)
    os.replace(dst + ".tmp", dst)


def deflated_copy(src, dst):
    """`src` (a torch zip) re-packed with every record deflated, as a zip tool would."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    os.replace(dst + ".tmp", dst)


def zip_with_pickle(name, pkl_bytes):
    """A torch-zip-shaped archive `archive/data.pkl` (+ byteorder, version) holding `pkl_bytes`."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl_bytes)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/version", b"3\n")
    os.replace(path + ".tmp", path)
    return path


def globals_of(pkl):
    return [arg for op, arg, _ in pickletools.genops(pkl) if op.name == "GLOBAL"]


def crafted():
    P = pickle
    # 1. zip whose data.pkl is `os.system("echo pwned")` (protocol 2, GLOBAL + REDUCE).
    evil = P.PROTO + b"\x02" + P.GLOBAL + b"os\nsystem\n" + P.BINUNICODE + struct.pack("<I", 10) + b"echo pwned" \
        + P.TUPLE1 + P.REDUCE + P.STOP
    assert globals_of(evil) == ["os system"]
    zip_with_pickle("evil_os_system.pt", evil)

    # 2. legacy stream: valid magic / protocol / sys_info pickles, then a main pickle calling
    #    builtins.eval through STACK_GLOBAL (protocol 4).
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    proto = pickle.dumps(1001, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)

    def short(s):
        b = s.encode()
        return P.SHORT_BINUNICODE + bytes([len(b)]) + b

    main = P.PROTO + b"\x04" + short("builtins") + short("eval") + P.STACK_GLOBAL \
        + short("__import__('os').system('echo pwned')") + P.TUPLE1 + P.REDUCE + P.STOP
    ops = [op.name for op, _, _ in pickletools.genops(main)]
    assert "STACK_GLOBAL" in ops and "REDUCE" in ops
    path = os.path.join(OUT, "evil_eval_legacy.pt")
    with open(path + ".tmp", "wb") as f:
        f.write(magic + proto + sys_info + main + pickle.dumps([], protocol=2))
    os.replace(path + ".tmp", path)

    # 3. A state dict whose tensor rebuild receives subprocess.Popen() where PyTorch puts
    #    the backward-hooks OrderedDict(): the bad global sits deep inside a valid file.
    good = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, good)
    with zipfile.ZipFile(good) as z:
        prefix = z.namelist()[0].split("/")[0]
        pkl = z.read(f"{prefix}/data.pkl")
        storage = z.read(f"{prefix}/data/0")
    # PyTorch's `collections.OrderedDict()` hooks argument becomes `subprocess.Popen()`.
    hooks = P.GLOBAL + b"collections\nOrderedDict\n"
    assert pkl.count(hooks) == 1
    popen = P.GLOBAL + b"subprocess\nPopen\n"
    nested = pkl.replace(hooks, popen)
    assert "subprocess Popen" in globals_of(nested)
    path = os.path.join(OUT, "evil_nested_global.pt")
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", nested)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", storage)
    os.replace(path + ".tmp", path)

    # 4. An undefined opcode (0xff) after PROTO.
    bad = P.PROTO + b"\x02" + b"\xff" + P.STOP
    try:
        list(pickletools.genops(bad))
        raise AssertionError("0xff should not be an opcode")
    except ValueError:
        pass
    zip_with_pickle("evil_opcode.pt", bad)

    # 5. A dtype the engine lacks: PyTorch 2.x pickles uint16 through _rebuild_tensor_v3 with an
    #    UntypedStorage and the `torch.uint16` dtype object (not crafted: torch.save wrote it).
    path = save({"w": torch.ones(2), "u": torch.tensor([0, 1, 2], dtype=torch.int32).to(torch.uint16)}, "torch_uint16_zip.pt")
    with zipfile.ZipFile(path) as z:
        prefix = z.namelist()[0].split("/")[0]
        g = globals_of(z.read(f"{prefix}/data.pkl"))
        assert "torch._utils _rebuild_tensor_v3" in g and "torch uint16" in g, g

    # 6. A whole module pickled by torch.save: its class is a global outside the allowlist.
    torch.manual_seed(0)
    path = save(torch.nn.Linear(2, 2), "model_pickle.pt")
    with zipfile.ZipFile(path) as z:
        prefix = z.namelist()[0].split("/")[0]
        assert "torch.nn.modules.linear Linear" in globals_of(z.read(f"{prefix}/data.pkl"))


def efficientnet_summary():
    home = os.environ.get("FERROVISION_HOME", os.path.expanduser("~/.ferrovision"))
    path = os.path.join(home, "models", "efficientnet_lite0", "efficientnet-lite0-57934424.pth")
    if not os.path.exists(path):
        print(f"skipped the EfficientNet-Lite0 summary: {path} is absent")
        return
    sd = torch.load(path, map_location="cpu", weights_only=True)
    summary = {}
    for k, v in sd.items():
        flat = v.detach().reshape(-1)
        summary[k] = {
            "dtype": str(v.dtype),
            "shape": list(v.shape),
            "sum": float(flat.to(torch.float64).sum()),
            "first": [float(x) for x in flat[:4].to(torch.float64)],
        }
    write_json(os.path.join(OUT, "efficientnet_lite0_summary.json"),
               {"file": os.path.basename(path), "count": len(sd), "tensors": summary})


def main():
    os.makedirs(OUT, exist_ok=True)
    net = tiny()
    sd = state_dict(net)
    zip_path = save(sd, "torch_state_zip.pt")
    legacy_path = save(sd, "torch_state_legacy.pt", _use_new_zipfile_serialization=False)
    p4_path = save(sd, "torch_state_proto4.pt", pickle_protocol=4)
    be_path = os.path.join(OUT, "torch_state_zip_be.pt")
    big_endian_copy(zip_path, be_path)
    deflate_path = os.path.join(OUT, "torch_state_zip_deflate.pt")
    deflated_copy(zip_path, deflate_path)
    ckpt_path = save(checkpoint(tiny()), "torch_checkpoint_zip.pt")
    ckpt_sd = torch.load(ckpt_path, weights_only=True)["state_dict"]
    assert all(same(ckpt_sd[k], v) for k, v in net.state_dict().items())

    tensors, meta = [], {}
    want = torch.load(zip_path, weights_only=True)
    for path in (legacy_path, p4_path, be_path, deflate_path):
        # weights_only=True refuses protocol 4 (FRAME); this file is our own, just written.
        got = torch.load(path, weights_only=(path != p4_path))
        assert list(got) == list(want), path
        for k in want:
            assert same(got[k], want[k]), (path, k)
            assert got[k].stride() == want[k].stride(), (path, k)
    for k, v in want.items():
        tensors.append((f"state/{k}", as_f32(v)))
        meta[f"state/{k}"] = str(v.dtype)
    flat = {}
    flatten(torch.load(ckpt_path, weights_only=True), "", flat)
    for k, v in flat.items():
        tensors.append((f"ckpt/{k}", as_f32(v)))
        meta[f"ckpt/{k}"] = str(v.dtype)

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = net(x)
        y64 = net.double()(x.double())
        net.float()
    assert torch.allclose(y.double(), y64, rtol=1e-6, atol=1e-6)
    tensors += [("tiny/input", x.numpy()), ("tiny/output", y64.float().numpy())]
    meta["tiny/input"] = meta["tiny/output"] = "torch.float32"
    meta["versions"] = f"torch {torch.__version__}"
    write_safetensors(os.path.join(OUT, "torch_expected.safetensors"), tensors, meta)

    keys = [[k, list(v.shape)] for k, v in torchvision.models.resnet18(num_classes=10).state_dict().items()]
    write_json(os.path.join(OUT, "resnet18_torchvision_keys.json"),
               {"torchvision": torchvision.__version__, "keys": keys})

    crafted()
    efficientnet_summary()
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):8d}  {name}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
