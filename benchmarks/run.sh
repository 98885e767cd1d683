#!/bin/bash
# Forward+backward LoRA step: loratrain against tuned PyTorch, same shapes,
# and the QLoRA step (NF4 + double quant base) against the fp32 LoRA step;
# then dequantization throughput (benchmarks/bench_quant.c).
# same thread counts, same invocation (so both see the same machine and the
# same OPENBLAS_CORETYPE). The two alternate for ROUNDS rounds, because a
# shared VM's speed drifts by 10-30% over seconds; the report compares the
# fastest step each reached (the least-disturbed measurement) and also the
# median over all steps.
# Usage: benchmarks/run.sh [BUILD_DIR]
# Environment: THREADS (default "1 2"), STEPS per round (default 8),
# ROUNDS (default 3), OUT (the JSON lines; default BUILD_DIR/bench-<time>.jsonl).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
threads=${THREADS:-"1 2"}
steps=${STEPS:-8}
rounds=${ROUNDS:-3}
out=${OUT:-$build/bench-$(date +%Y%m%d-%H%M%S).jsonl}
py=/usr/bin/python3
: >"$out"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset: OpenBLAS detects>}; $rounds rounds of $steps steps; results in $out"
for shape in stories260K stories15M; do
  model_arg=()
  [[ $shape == stories260K ]] && model_arg=(--model "$root/models/stories260K/stories260K.bin")
  for t in $threads; do
    for ((r = 0; r < rounds; r++)); do
      for q in none nf4dq; do
        "$build/benchmarks/bench_step" --shape "$shape" --threads "$t" --steps "$steps" \
          --warmup 2 --quant $q "${model_arg[@]}" >>"$out"
      done
      "$py" "$root/benchmarks/bench_torch.py" --shape "$shape" --threads "$t" \
        --steps "$steps" --warmup 2 >>"$out"
    done
  done
done
"$py" - "$out" "$root/benchmarks" <<'PY'
import json, statistics, sys
sys.path.insert(0, sys.argv[2])
from blas_kernels import kernel_lines
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = sorted({(r["shape"], r["threads"]) for r in rows}, key=lambda k: (k[0] != "stories260K", k[1]))
print(f"{'shape':<12} {'threads':>7} {'loratrain t/s':>14} {'pytorch t/s':>12} {'ratio':>7}"
      f" {'median ratio':>13} {'GFLOP/s':>8} {'of peak':>8}")
for shape, t in keys:
    ours = [r for r in rows if r["impl"] == "loratrain" and r.get("quant", "none") == "none"
            and (r["shape"], r["threads"]) == (shape, t)]
    theirs = [r for r in rows if r["impl"] == "pytorch" and (r["shape"], r["threads"]) == (shape, t)]
    n = ours[0]["batch"] * ours[0]["seq"]
    best_o = min(r["step_ms_min"] for r in ours)
    best_t = min(r["step_ms_min"] for r in theirs)
    med_o = statistics.median(r["step_ms_median"] for r in ours)
    med_t = statistics.median(r["step_ms_median"] for r in theirs)
    best = min(ours, key=lambda r: r["step_ms_min"])
    gflops = best["gflops"] * best["step_ms_median"] / best["step_ms_min"]
    print(f"{shape:<12} {t:>7} {n / best_o * 1e3:>14.0f} {n / best_t * 1e3:>12.0f} {best_t / best_o:>6.2f}x"
          f" {med_t / med_o:>12.2f}x {gflops:>8.1f} {100 * gflops / best['gemm_peak_gflops']:>7.0f}%")
print(f"\n{'shape':<12} {'threads':>7} {'LoRA t/s':>10} {'QLoRA nf4+dq t/s':>17} {'QLoRA / LoRA':>13}")
for shape, t in keys:
    sel = lambda q: [r for r in rows if r["impl"] == "loratrain" and r.get("quant", "none") == q  # noqa: E731
                     and (r["shape"], r["threads"]) == (shape, t)]
    lo, ql = min(r["step_ms_min"] for r in sel("none")), min(r["step_ms_min"] for r in sel("nf4dq"))
    n = sel("none")[0]["batch"] * sel("none")[0]["seq"]
    print(f"{shape:<12} {t:>7} {n / lo * 1e3:>10.0f} {n / ql * 1e3:>17.0f} {lo / ql:>12.3f}x")
print("\n".join(kernel_lines(rows)))
PY
# a 4096 x 4096 tensor (its fp32 output leaves the caches) and a
# stories15M MLP matrix (the workspace a layer really uses, cache-resident)
for t in $threads; do
  "$build/benchmarks/bench_quant" --threads "$t" | tee -a "$out"
  "$build/benchmarks/bench_quant" --threads "$t" --rows 768 --cols 288 --reps 50 | tee -a "$out"
done
