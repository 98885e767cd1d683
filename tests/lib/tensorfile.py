#!/usr/bin/python3
"""Read and write the "LTT1" named-tensor archive shared with tests/lib/tensorfile.c.

Layout (little-endian), exactly as tests/lib/tensorfile.h documents it:
    "LTT1", uint32 count, then per tensor:
    uint32 name_len, name bytes (no NUL), uint32 dtype (0 f32, 1 i32, 2 f64),
    uint32 ndim, int64 dims[ndim], data (product(dims) elements, row-major).

    read(path)        -> dict name -> numpy array (insertion order = file order)
    write(path, dict)  arrays of float32 / int32 / float64 are stored as is;
                       other dtypes are converted (float16 -> float32, any
                       other integer/bool -> int32 after a range check).
"""
import struct

import numpy as np

MAGIC = b"LTT1"
MAX_NAME = 127  # the C reader keeps names in char[128]
MAX_NDIM = 8

_CODE_OF = {np.dtype("<f4"): 0, np.dtype("<i4"): 1, np.dtype("<f8"): 2}
_DTYPE_OF = {0: np.dtype("<f4"), 1: np.dtype("<i4"), 2: np.dtype("<f8")}


class TensorFileError(ValueError):
    pass


def _as_storable(name, value):
    a = np.asarray(value)
    if a.dtype.kind == "f":
        if a.dtype.itemsize <= 4:
            return np.ascontiguousarray(a, dtype="<f4")
        if a.dtype.itemsize == 8:
            return np.ascontiguousarray(a, dtype="<f8")
        raise TensorFileError("%s: float dtype %s has no LTT1 code" % (name, a.dtype))
    if a.dtype.kind in "iub":
        if a.size and (a.min() < -(2 ** 31) or a.max() > 2 ** 31 - 1):
            raise TensorFileError("%s: integer values do not fit int32" % name)
        return np.ascontiguousarray(a, dtype="<i4")
    raise TensorFileError("%s: dtype %s has no LTT1 code (f32, i32, f64)" % (name, a.dtype))


def write(path, tensors):
    """Write an ordered mapping name -> array-like to path."""
    parts = [MAGIC, struct.pack("<I", len(tensors))]
    for name, value in tensors.items():
        nb = name.encode("utf-8")
        if len(nb) > MAX_NAME:
            raise TensorFileError("%s: name longer than %d bytes" % (name, MAX_NAME))
        a = _as_storable(name, value)
        if a.ndim > MAX_NDIM:
            raise TensorFileError("%s: %d dims, at most %d" % (name, a.ndim, MAX_NDIM))
        parts.append(struct.pack("<I", len(nb)))
        parts.append(nb)
        parts.append(struct.pack("<II", _CODE_OF[a.dtype], a.ndim))
        parts.append(struct.pack("<%dq" % a.ndim, *a.shape))
        parts.append(a.tobytes(order="C"))
    with open(path, "wb") as f:
        for p in parts:
            f.write(p)


def read(path):
    """Read path into a dict name -> numpy array, in file order."""
    with open(path, "rb") as f:
        buf = f.read()
    n = len(buf)
    pos = 0

    def take(k, what):
        nonlocal pos
        if pos + k > n:
            raise TensorFileError("%s: truncated while reading %s at byte %d" % (path, what, pos))
        b = buf[pos:pos + k]
        pos += k
        return b

    if take(4, "magic") != MAGIC:
        raise TensorFileError("%s: bad magic, expected LTT1" % path)
    (count,) = struct.unpack("<I", take(4, "count"))
    out = {}
    for i in range(count):
        (nl,) = struct.unpack("<I", take(4, "name length"))
        if nl > MAX_NAME:
            raise TensorFileError("%s: tensor %d name length %d > %d" % (path, i, nl, MAX_NAME))
        name = take(nl, "name").decode("utf-8")
        dt, nd = struct.unpack("<II", take(8, "dtype/ndim"))
        if dt not in _DTYPE_OF:
            raise TensorFileError("%s: %s has dtype code %d, expected 0, 1 or 2" % (path, name, dt))
        if nd > MAX_NDIM:
            raise TensorFileError("%s: %s has %d dims, at most %d" % (path, name, nd, MAX_NDIM))
        dims = struct.unpack("<%dq" % nd, take(8 * nd, "dims"))
        if any(d < 0 for d in dims):
            raise TensorFileError("%s: %s has a negative dim %s" % (path, name, dims))
        dtype = _DTYPE_OF[dt]
        numel = int(np.prod(dims, dtype=np.int64)) if nd else 1
        data = take(numel * dtype.itemsize, "data of " + name)
        arr = np.frombuffer(data, dtype=dtype, count=numel).reshape(dims).copy()
        if name in out:
            raise TensorFileError("%s: duplicate tensor name %s" % (path, name))
        out[name] = arr
    if pos != n:
        raise TensorFileError("%s: %d trailing bytes after %d tensors" % (path, n - pos, count))
    return out


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        for k, v in read(p).items():
            print("%s %s %s" % (k, v.dtype, list(v.shape)))
