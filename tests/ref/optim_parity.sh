#!/bin/bash
# Optimizer parity with PyTorch: the C side writes initial parameters and 30
# gradient vectors for each schedule kind, tests/ref/optim_torch_ref.py replays
# them through clip_grad_norm_, a LambdaLR with HF's lambdas and
# torch.optim.AdamW in float32 and float64, and the C side replays the same
# steps and compares lr, gradient norm and parameters after every step.
# Usage: optim_parity.sh PYTHON TEST_OPTIM REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init py bin root -- "$@"
"$bin" torch-case "$tmp/case.ltt" || { echo "FAIL writing the case"; exit 1; }
for dt in float32 float64; do
  "$py" "$root/tests/ref/optim_torch_ref.py" --case "$tmp/case.ltt" --dtype $dt --out "$tmp/ref-$dt.ltt" ||
    { echo "FAIL the PyTorch reference ($dt) failed"; exit 1; }
done
"$bin" torch-check "$tmp/case.ltt" "$tmp/ref-float32.ltt" "$tmp/ref-float64.ltt"
