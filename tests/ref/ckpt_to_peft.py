"""A PEFT adapter directory made from a loratrain checkpoint with h5py
alone, as the README says users may: /adapter's tensors, under their PEFT
names, written to adapter_model.safetensors (the format written here by
hand: an 8-byte header length, the JSON header, the raw little-endian
float32 data), with the adapter_config.json given.

    ckpt_to_peft.py CHECKPOINT ADAPTER_CONFIG OUT_DIR
"""
import json
import os
import shutil
import struct
import sys

import h5py
import numpy as np


def main():
    ckpt, config, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    with h5py.File(ckpt, "r") as f:
        order = f.attrs["tensor_row_order"]
        if order not in (b"huggingface", "huggingface"):
            sys.exit("%s: tensor_row_order is %r" % (ckpt, order))
        tensors = {name: np.ascontiguousarray(d[()].astype("<f4")) for name, d in f["adapter"].items()}
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, "adapter_model.safetensors"), "wb") as g:
        g.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    shutil.copy(config, os.path.join(out, "adapter_config.json"))
    print("%d tensors from %s" % (len(tensors), ckpt))


if __name__ == "__main__":
    main()
