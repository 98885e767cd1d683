#!/bin/bash
# Training steps through lt_train_step against PyTorch's AdamW, LambdaLR
# and clip_grad_norm_ (tests/ref/train_torch_ref.py), float64 and float32:
# ten LoRA steps, or with MODE "full" four full fine-tuning steps (every
# weight trained), run again with gradient checkpointing.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init py bin root mode? -- "$@"
model="$root/models/stories260K/stories260K.bin"
"$bin" gen "$model" "$root/data/tinyshakespeare/input.txt" "$tmp/case.ltt" $mode || exit 1
for dt in float64 float32; do
  "$py" "$root/tests/ref/train_torch_ref.py" --model "$model" --case "$tmp/case.ltt" --dtype $dt \
    --out "$tmp/ref-$dt.ltt" || { echo "FAIL the PyTorch reference ($dt) failed"; exit 1; }
done
"$bin" check "$model" "$tmp/case.ltt" "$tmp/ref-float64.ltt" "$tmp/ref-float32.ltt"
