"""Did loratrain and PyTorch run the same OpenBLAS kernels? Read from a
benchmark's result rows: loratrain rows carry `blas_core` (the core OpenBLAS
chose), bench_torch.py rows `openblas_coretype` (the OPENBLAS_CORETYPE it ran
with; empty when it left the choice to OpenBLAS, which then picks what it
picks for loratrain: same library, same CPU).

The GEMMs are most of both steps, so a comparison on different kernels
compares the kernels. It happens on an AVX-512 CPU that OpenBLAS 0.3.21 maps
to older kernels: bench_torch.py then sets SkylakeX for PyTorch alone."""

PICK = "<OpenBLAS's pick>"


def kernel_lines(rows):
    """The summary line naming both sides' kernels, and a warning when they differ."""
    ours = sorted({r.get("blas_core") or "?" for r in rows if r.get("impl") == "loratrain"})
    theirs = sorted({r.get("openblas_coretype") or PICK for r in rows if r.get("impl") == "pytorch"})
    lines = ["OpenBLAS kernels: loratrain %s; PyTorch %s" % (", ".join(ours), ", ".join(theirs))]
    if any(c != PICK and c.lower() not in {o.lower() for o in ours} for c in theirs):
        lines.append("warning: loratrain and PyTorch ran different OpenBLAS kernels; rerun with "
                     "OPENBLAS_CORETYPE set for the whole invocation")
    return lines
