#!/bin/bash
# Parity with PyTorch: for each LoRA variant, the C side writes a case, the
# independent PyTorch reference computes logits, loss and LoRA gradients in
# float64 (the truth) and float32 (the yardstick), and the C side compares. Usage: parity.sh PYTHON TEST_PARITY ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init py bin root -- "$@"
model="$root/models/stories260K/stories260K.bin"
for v in 0 1 2 3 4; do
  echo "== variant $v"
  "$bin" gen "$model" $v "$tmp/case$v.ltt" || { fail=1; continue; }
  for dt in float64 float32; do
    "$py" "$root/tests/ref/llama_torch_ref.py" --model "$model" --case "$tmp/case$v.ltt" --dtype $dt \
      --out "$tmp/ref$v-$dt.ltt" || { echo "FAIL the PyTorch reference ($dt) failed"; fail=1; continue 2; }
  done
  "$bin" check "$model" $v "$tmp/case$v.ltt" "$tmp/ref$v-float64.ltt" "$tmp/ref$v-float32.ltt"
  rc=$?
  ((rc == 77)) && exit 77 # the backend the check asked for is not here (a GPU test without a GPU)
  ((rc == 0)) || fail=1
done
exit $fail
