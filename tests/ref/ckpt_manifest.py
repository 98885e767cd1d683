"""An independent reader of a loratrain checkpoint's /manifest (format in
io/checkpoint/ckpt_manifest.h), written from the format's description with
h5py and the xxhash package (python3-xxhash), not from our C code: the tests
use it to check that what the C writer records is what the file holds.

    problems(path) -> list of strings, empty when every attribute and
    dataset of the file matches the manifest and the manifest its digest.
"""
import sys

import h5py
import numpy as np
import xxhash


def _h(b):
    return xxhash.xxh3_64_intdigest(bytes(b))


def _value_hash(kind, v):
    if kind == "str":
        if isinstance(v, bytes):
            return _h(v)
        if isinstance(v, np.bytes_):
            return _h(bytes(v))
        return _h(str(v).encode())
    if kind == "u64s":
        return _h(np.asarray(v).astype("<u8").tobytes())
    dt = {"i64": "<i8", "u64": "<u8", "f64": "<f8"}[kind]
    return _h(np.asarray(v).reshape(()).astype(dt).tobytes())


def parse(f):
    text = bytes(f["manifest"][()]).decode()
    entries = {}
    lines = text.split("\n")
    assert lines[0] == "loratrain-manifest 1" and lines[-1] == "", "manifest header/trailer"
    for line in lines[1:-1]:
        p = line.split(" ")
        if p[0] == "a":
            entries[(p[1], p[2])] = ("a", p[3], int(p[4]), [int(p[5], 16)])
        else:
            entries[(p[1], "")] = (p[0], int(p[2]), int(p[3]), [int(h, 16) for h in p[4].split(",")])
    return text, entries


def problems(path):
    bad = []
    with h5py.File(path, "r") as f:
        text, entries = parse(f)
        if _h(text.encode()) != int(f["manifest"].attrs["xxh3_64"]):
            bad.append("/manifest does not match its xxh3_64 digest")
        seen = set()

        def attrs(obj, name):
            for k, v in obj.attrs.items():
                if name == "/manifest" and k == "xxh3_64":
                    continue
                e = entries.get((name, k))
                if not e or e[0] != "a":
                    bad.append("attribute %s of %s not in the manifest" % (k, name))
                    continue
                seen.add((name, k))
                if _value_hash(e[1], v) != e[3][0]:
                    bad.append("attribute %s of %s does not match its hash" % (k, name))

        attrs(f, "/")

        def visit(name, obj):
            full = "/" + name
            attrs(obj, full)
            if not isinstance(obj, h5py.Dataset) or full == "/manifest":
                return
            e = entries.get((full, ""))
            if not e:
                bad.append("dataset %s not in the manifest" % full)
                return
            seen.add((full, ""))
            data = obj[()].astype("<f4")
            if e[0] == "t":
                if data.shape != (e[1], e[2]) or _h(data.tobytes()) != e[3][0]:
                    bad.append("dataset %s does not match its shape or hash" % full)
            else:
                seg = [int(x) for x in obj.attrs["segment_offsets"]]
                got = [_h(data[a:b].tobytes()) for a, b in zip(seg, seg[1:])]
                if data.shape != (e[1],) or got != e[3]:
                    bad.append("dataset %s does not match its segment hashes" % full)

        f.visititems(visit)
        for k in entries:
            if k not in seen:
                bad.append("%s %s listed in the manifest is missing" % k)
    return bad


if __name__ == "__main__":
    out = problems(sys.argv[1])
    for b in out:
        print("FAIL manifest:", b)
    sys.exit(1 if out else 0)


def reseal(path):
    """Rewrites /manifest to describe the file as it now is: what someone
    who edits a checkpoint and recomputes its manifest would make. The
    checks beyond the manifest (inspect's layout rules, resume's shapes)
    must still refuse a checkpoint that does not describe a usable run."""
    lines = []
    with h5py.File(path, "r+") as f:
        _, old = parse(f)

        def kind_of(obj, k, v):
            e = old.get((obj, k))
            if e and e[0] == "a":
                return e[1]
            if isinstance(v, (bytes, str, np.bytes_)):
                return "str"
            a = np.asarray(v)
            if a.ndim:
                return "u64s"
            return "f64" if a.dtype.kind == "f" else ("u64" if a.dtype.kind == "u" else "i64")

        def add_attrs(obj, name):
            for k, v in obj.attrs.items():
                if name == "/manifest":
                    continue
                kind = kind_of(name, k, v)
                count = np.asarray(v).size if kind == "u64s" else 1
                lines.append("a %s %s %s %d %016x" % (name, k, kind, count, _value_hash(kind, v)))

        add_attrs(f, "/")

        def visit(name, obj):
            full = "/" + name
            if full == "/manifest":
                return
            add_attrs(obj, full)
            if isinstance(obj, h5py.Dataset):
                data = obj[()].astype("<f4")
                if data.ndim == 2:
                    lines.append("t %s %d %d %016x" % (full, data.shape[0], data.shape[1], _h(data.tobytes())))
                else:
                    seg = [int(x) for x in obj.attrs["segment_offsets"]]
                    hs = ",".join("%016x" % _h(data[a:b].tobytes()) for a, b in zip(seg, seg[1:]))
                    lines.append("f %s %d %d %s" % (full, data.shape[0], len(seg) - 1, hs))

        f.visititems(visit)
        text = "loratrain-manifest 1\n" + "".join(l + "\n" for l in sorted(lines))
        del f["manifest"]
        f["manifest"] = np.bytes_(text.encode())
        f["manifest"].attrs["xxh3_64"] = np.uint64(_h(text.encode()))
