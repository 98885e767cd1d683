#!/bin/bash
# tests/ref/gguf_env.sh DIR -- makes DIR a Python venv in which tests/ref/gguf_ref.py
# runs: llama.cpp's own GGUF reader/writer (the `gguf` package, gguf-py) on
# top of Debian's numpy.
#
#   tests/ref/gguf_env.sh DIR && DIR/bin/python tests/ref/gguf_ref.py ...
#
# Exit status: 0 ready (DIR/bin/python imports gguf's GGUFReader and
# GGUFWriter and the system numpy); 77 cannot be made here (no
# /usr/bin/python3 venv, no numpy in the system site-packages, PyPI
# unreachable, or the pinned version does not import) -- one line on stderr
# says why; 2 usage. Idempotent and cached: DIR/.gguf_env_ok holds the pin
# list it was built with; when it matches, nothing is done. A broken or
# stale DIR is removed and rebuilt; concurrent calls serialise on DIR.lock.
#
# The venv is made by /usr/bin/python3 -m venv --system-site-packages, so it
# sees Debian's python3-numpy (1.24.2) and python3-yaml. `python3` on PATH
# may be another interpreter (pyenv): never use it here.
#
# Pins (Debian 12, numpy 1.24.2, Python 3.11):
#   gguf 0.19.0   the newest release (llama.cpp's gguf-py); GGUFReader and
#                 GGUFWriter import and work with numpy 1.24.2. It declares
#                 numpy, pyyaml, requests and tqdm: installed with --no-deps,
#                 as pip would otherwise be free to pull a numpy 2 wheel over
#                 the system one. yaml and requests come from Debian; tqdm is
#                 only imported by GGUFWriter's progress bar, which
#                 gguf_ref.py never asks for.
# pip runs with a constraints file pinning numpy (and torch, where the
# system has it) to the system versions, so it can never replace them; the
# script checks afterwards that numpy is still the one in
# /usr/lib/python3/dist-packages.
# Install time measured: 15 s (venv, then one small pip download) on a 2-core machine;
# cached call: < 0.1 s.
set -uo pipefail
me=gguf_env.sh
pins=(gguf==0.19.0)
check='import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType, GGUFValueType'
sys_import="numpy"
sys_hint="python3-numpy"
what="gguf"
# shellcheck source=tests/ref/venv_build.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv_build.sh"
