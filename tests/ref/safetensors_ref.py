#!/usr/bin/python3
"""Independent safetensors reader/writer (numpy, json, struct; written from
the format description, not from loratrain's code) for the C tests.

  safetensors_ref.py write DIR   writes DIR/ref.safetensors: F32, F16, BF16 and
                                 F64 tensors, each with its exact float32
                                 values as "<name>.expect" (F32)
  safetensors_ref.py check FILE  reads a file written by loratrain and checks
                                 the tensors the C test promises (see below)
"""
import json
import struct
import sys

import numpy as np


def write(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    dt = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(body[b:end], dtype=dt[e["dtype"]]).reshape(e["shape"])
    return out, meta


def bf16(values):
    """float32 -> bfloat16 bits (round to nearest even) and the exact values."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    exact = (rounded.astype(np.uint32) << 16).view(np.float32)
    return rounded, exact


def main():
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "write":
        rng = np.random.default_rng(3)
        a = rng.standard_normal((3, 5)).astype(np.float32)
        h = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 6.1035156e-05, 5.9604645e-08, 3.0e-06, np.inf,
                      -np.inf, 0.333], dtype=np.float16)
        b_bits, b_exact = bf16(rng.standard_normal((4, 4)).astype(np.float32) * 100)
        d = rng.standard_normal((2, 3)).astype(np.float64)
        write(target + "/ref.safetensors", {
            "f32": ("F32", a), "f32.expect": ("F32", a),
            "f16": ("F16", h), "f16.expect": ("F32", h.astype(np.float32)),
            "bf16": ("BF16", b_bits), "bf16.expect": ("F32", b_exact),
            "f64": ("F64", d), "f64.expect": ("F32", d.astype(np.float32)),
        }, {"format": "pt", "note": "reference"})
        return 0
    tensors, meta = read(target)
    ok = True
    want = {"alpha": np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5,
            "beta.weight": -np.arange(5, dtype=np.float32) / 3,
            "gamma": np.array([[1e-30, 3.0e38]], dtype=np.float32)}
    for name, w in want.items():
        t = tensors.get(name)
        if t is None or t.shape != w.shape or not np.array_equal(t, w):
            print(f"FAIL {target}: tensor {name} is {None if t is None else t.tolist()}, expected {w.tolist()}")
            ok = False
    if meta != {"format": "pt", "writer": "loratrain"}:
        print(f"FAIL {target}: metadata {meta}")
        ok = False
    if list(tensors) != list(want):
        print(f"FAIL {target}: tensors {list(tensors)} in the wrong order or with extras")
        ok = False
    if ok:
        print(f"{target}: {len(tensors)} tensors and metadata read back exactly by the reference reader")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
