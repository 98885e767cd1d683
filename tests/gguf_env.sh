#!/bin/bash
# tests/gguf_env.sh DIR -- makes DIR a Python venv in which tests/gguf_check.py
# runs: llama.cpp's own GGUF reader/writer (the `gguf` package, gguf-py) on
# top of Debian's numpy.
#
#   tests/gguf_env.sh DIR && DIR/bin/python tests/gguf_check.py ...
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
#                 gguf_check.py never asks for.
# pip runs with a constraints file pinning numpy (and torch, where the
# system has it) to the system versions, so it can never replace them; the
# script checks afterwards that numpy is still the one in
# /usr/lib/python3/dist-packages.
# Install time measured: 15 s (venv, then one small pip download) on a 2-core machine;
# cached call: < 0.1 s.
set -uo pipefail
me=gguf_env.sh
skip() { echo "$me: SKIP: $*" >&2; exit 77; }

if [[ $# -ne 1 || $1 == -* ]]; then
  echo "usage: tests/gguf_env.sh DIR" >&2
  exit 2
fi
dir=$1

pins=(gguf==0.19.0)
stamp="${pins[*]}"
py=/usr/bin/python3
check='import numpy
assert numpy.__file__.startswith("/usr/lib/python3/"), numpy.__file__
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType, GGUFValueType'

ready() { [[ -f $dir/.gguf_env_ok && $(cat "$dir/.gguf_env_ok") == "$stamp" && -x $dir/bin/python ]]; }
ready && exit 0
mkdir -p "$(dirname "$dir")" || skip "cannot create $(dirname "$dir")"
exec 9>"$dir.lock" || skip "cannot write $dir.lock"
flock 9
ready && exit 0

[[ -x $py ]] || skip "no /usr/bin/python3"
$py -c 'import numpy' 2>/dev/null || skip "/usr/bin/python3 has no numpy (apt-get install python3-numpy)"
$py -c 'import venv, ensurepip' 2>/dev/null || skip "/usr/bin/python3 cannot make venvs (apt-get install python3-venv)"

start=$EPOCHREALTIME
rm -rf "$dir"
log=$(mktemp)
trap 'rm -f "$log" "$log.c"' EXIT
if ! $py -m venv --system-site-packages "$dir" >"$log" 2>&1; then
  rm -rf "$dir"
  skip "/usr/bin/python3 -m venv failed (apt-get install python3-venv?): $(tail -n 1 "$log")"
fi
: >"$log.c"
for p in numpy torch; do
  v=$("$dir/bin/python" -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
  [[ -n $v ]] && echo "$p==$v" >>"$log.c"
done
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if ! "$dir/bin/python" -m pip install -q --no-deps --timeout 30 --retries 1 -c "$log.c" "${pins[@]}" >"$log" 2>&1; then
  reason=$(grep -E 'ERROR|Error|error' "$log" | tail -n 1)
  rm -rf "$dir"
  skip "pip install failed (no network or no such version?): ${reason:-$(tail -n 1 "$log")}"
fi
if ! "$dir/bin/python" -c "$check" >"$log" 2>&1; then
  reason=$(tail -n 1 "$log")
  rm -rf "$dir"
  skip "pinned gguf does not import with this numpy: $reason"
fi
echo "$stamp" >"$dir/.gguf_env_ok"
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "$me: venv $dir ready in $secs s" >&2
exit 0
