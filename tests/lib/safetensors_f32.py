"""The F32 tensors of a safetensors file as flat float32 arrays, for the
suites' inline Python that compares adapters and models across runs
(sys.path.insert(0, "tests/lib") from the repository root)."""
import json
import struct

import numpy as np


def read(path):
    """({name: 1-D float32 array} of the file's F32 tensors, "__metadata__"
    and tensors of other dtypes left out; the file's bytes)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in head.items() if v["dtype"] == "F32"}, raw
