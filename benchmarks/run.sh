#!/bin/bash
# Forward+backward LoRA step: loratrain against tuned PyTorch, same shapes,
# same thread counts, same invocation (so both see the same machine state
# and the same OPENBLAS_CORETYPE). Usage: benchmarks/run.sh [BUILD_DIR]
# Environment: THREADS (default "1 2"), STEPS (default 10), OUT (a file for
# the JSON lines; default benchmarks/results-<date>.jsonl under BUILD_DIR).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
threads=${THREADS:-"1 2"}
steps=${STEPS:-10}
out=${OUT:-$build/bench-$(date +%Y%m%d-%H%M%S).jsonl}
py=/usr/bin/python3
: >"$out"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset: OpenBLAS detects>}; results in $out"
printf '%-12s %7s %14s %14s %8s %10s %8s\n' shape threads "loratrain t/s" "pytorch t/s" ratio "GFLOP/s" "of peak"
for shape in stories260K stories15M; do
  model_arg=()
  [[ $shape == stories260K ]] && model_arg=(--model "$root/models/stories260K/stories260K.bin")
  for t in $threads; do
    ours=$("$build/benchmarks/bench_step" --shape "$shape" --threads "$t" \
             --steps "$steps" --warmup 2 "${model_arg[@]}")
    theirs=$("$py" "$root/benchmarks/bench_torch.py" --shape "$shape" --threads "$t" \
             --steps "$steps" --warmup 2)
    echo "$ours" >>"$out"
    echo "$theirs" >>"$out"
    "$py" - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{a['shape']:<12} {a['threads']:>7} {a['tokens_per_s']:>14.0f} {b['tokens_per_s']:>14.0f} "
      f"{a['tokens_per_s'] / b['tokens_per_s']:>7.2f}x {a['gflops']:>10.1f} {100 * a['peak_fraction']:>7.0f}%")
PY
  done
done
