"""The files of the logits comparisons (tests/e2e/peft_parity.sh and
qwen2_parity.sh), as `loratrain logits` reads and writes them: token ids
in (one sequence a line, "#" starts a comment), float32 logits out (raw
little-endian, or .npy). Shared by both references, tests/ref/peft_ref.py
(transformers + PEFT) and tests/ref/peft_torch_ref.py (pure PyTorch), with
their common `logits` command line; the models stay each reference's own."""
import argparse
import sys

import numpy as np


def read_ids(path, me):
    """The sequences of token ids in path; exits naming me if there are none."""
    seqs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                seqs.append([int(t) for t in line])
    if not seqs:
        sys.exit(f"{me}: {path}: no token ids")
    return seqs


def write_logits(path, rows):
    a = np.ascontiguousarray(np.concatenate(rows, axis=0).astype("<f4"))
    if path.endswith(".npy"):
        np.save(path, a)
    else:
        with open(path, "wb") as f:
            f.write(a.tobytes())


def command_line(doc):
    """The argparse parser of a reference (description doc) and its
    subparsers, holding the `logits` command, alike in both references."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("logits")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--ids", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--merge", action="store_true")
    return ap, sub
