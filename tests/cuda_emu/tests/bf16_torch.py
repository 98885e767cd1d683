#!/usr/bin/env python3
"""The emulation's float -> bf16 conversion against torch's (Debian's
torch 1.13): 4,194,304 random float bit patterns plus every upper half
with the lower halves at and around the tie (0x7fff, 0x8000, 0x8001) and
0x0001 (NaN patterns whose upper half reads as infinity), converted by
torch, compared bit for bit by test_cuda_emu bf16-torch (NaN: both NaN;
CUDA writes 0x7fff, torch 1.13's CPU conversion 0xffff). Exit 77 where
torch does not import.

Usage: bf16_torch.py TEST_CUDA_EMU"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)


def main():
    exe = sys.argv[1]
    rng = np.random.default_rng(20260502)
    random_bits = rng.integers(0, 2**32, size=1 << 22, dtype=np.uint64).astype(np.uint32)
    upper = np.arange(1 << 16, dtype=np.uint32) << 16
    edges = [upper | low for low in (0x0001, 0x7FFF, 0x8000, 0x8001)]
    bits = np.concatenate([random_bits] + edges)
    floats = torch.from_numpy(bits.view(np.float32).copy())
    bf = floats.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        fin, fref = os.path.join(tmp, "in.bin"), os.path.join(tmp, "ref.bin")
        bits.tofile(fin)
        bf.tofile(fref)
        print(f"torch {torch.__version__}: {bits.size} float patterns")
        return subprocess.run([exe, "bf16-torch", fin, fref]).returncode


if __name__ == "__main__":
    sys.exit(main())
