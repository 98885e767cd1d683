"""Did loratrain and PyTorch run the same OpenBLAS kernels? Read from a
benchmark's result rows: loratrain rows carry `blas_core` (the core OpenBLAS
chose), bench_torch.py rows `openblas_coretype` (the OPENBLAS_CORETYPE it ran
with). Both sides start from the invocation's environment, so they can only
differ where bench_torch.py changed it: on an AVX-512 CPU with the variable
unset it sets SkylakeX for PyTorch alone, which matters where OpenBLAS 0.3.21
maps the CPU to older kernels. The GEMMs are most of both steps, so a
comparison on different kernels compares the kernels."""

import os


def kernel_lines(rows):
    """The summary line naming both sides' kernels, and a warning when they differ."""
    env = os.environ.get("OPENBLAS_CORETYPE", "")
    ours = sorted({r.get("blas_core") or "?" for r in rows if r.get("impl") == "loratrain"})
    theirs = sorted({r.get("openblas_coretype", "") for r in rows if r.get("impl") == "pytorch"})
    lines = ["OpenBLAS kernels: loratrain %s; PyTorch with OPENBLAS_CORETYPE %s (this invocation's: %s)"
             % (", ".join(ours), ", ".join(c or "unset" for c in theirs), env or "unset")]
    if any(c.lower() != env.lower() and c.lower() not in {o.lower() for o in ours} for c in theirs):
        lines.append("warning: loratrain and PyTorch ran different OpenBLAS kernels; rerun with "
                     "OPENBLAS_CORETYPE set for the whole invocation")
    return lines
