#!/bin/bash
# Strong scaling of data-parallel LoRA training: tokens/s of `loratrain
# train` on 1 and on 2 ranks (mpirun, 1 thread each), same global batch of
# 8 x 256 tokens, for a random model of the stories15M shape (dim 288,
# 6 layers, 6 heads, hidden 768, vocab 32000) with an fp32 base, an NF4 +
# double quant base, and an NF4 base sharded across the ranks; against
# tuned PyTorch DDP (gloo, 2 processes x 1 thread, benchmarks/bench_torch.py
# --ddp 2) and its single process, run in the same invocation. LoRA r 8,
# alpha 16 on q,k,v,o as bench_torch.py. The runs alternate for ROUNDS
# rounds (a shared VM drifts); the report takes each configuration's median
# step over its steady steps (the first WARMUP steps of a run dropped) and
# its fastest round, and pairs each 2-rank loratrain run with the PyTorch
# DDP run of its own round (the ratio the VM's drift moves least).
#
# Communication (metrics.jsonl, rank 0): each step's time blocked in
# collectives; of it, the wait for the gradient buckets after backward
# (which also holds the time rank 0 waits for the slower rank); and the
# overlap: the share of gradient bytes whose bucket's all-reduce completed
# while backward still ran. For scale, one blocking all-reduce of the same
# LoRA gradient bytes (benchmarks/bench_comm).
#
# Full fine-tuning (MODES containing full): the same model, data, batch and
# schedule with every weight training in fp32 (`--finetuning_type full`, no
# LoRA options), loratrain on 1 rank, on 2 ranks, and on 2 ranks with
# `--zero1 true` (AdamW moments sharded: gradients reduce-scattered,
# parameters all-gathered), against bench_torch.py --finetuning-type full
# (AdamW over all parameters, fp32) single process and DDP (gloo, 2 x 1,
# default 25 MiB buckets). Rows "full" / "full-zero1" in the base column;
# their "vs 1 rank" is against loratrain full on 1 rank and "vs DDP" against
# PyTorch full-FT DDP 2x1 (LoRA rows: against PyTorch LoRA DDP 2x1). Overlap
# for full rows: share of the gradient bytes (all-reduced, or
# reduce-scattered with zero1) done while backward ran; the scale line is a
# blocking all-reduce of the full gradient. loratrain clips the gradient
# norm at 1.0 (its default) in both modes; bench_torch.py does not clip.
# Usage: benchmarks/scaling.sh [BUILD_DIR]
# Environment: MODES (comma list of lora, full; default lora: the LoRA rows
# only, as before; MODES=lora,full for both in one invocation, alternating
# in every round), STEPS per run (default 10), WARMUP (default 2), ROUNDS
# (default 2), OUT (JSON lines; default BUILD_DIR/scaling-<time>.jsonl).
# Full comparison: MODES=lora,full benchmarks/scaling.sh build
# Smoke test: MODES=lora,full STEPS=3 WARMUP=1 ROUNDS=1 benchmarks/scaling.sh build
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
steps=${STEPS:-10}
warm=${WARMUP:-2}
rounds=${ROUNDS:-2}
out=${OUT:-$build/scaling-$(date +%Y%m%d-%H%M%S).jsonl}
modes=${MODES:-lora}
do_lora=0 do_full=0
IFS=, read -ra mode_list <<<"$modes"
for m in "${mode_list[@]}"; do
  case $m in
    lora) do_lora=1 ;;
    full) do_full=1 ;;
    *) echo "scaling.sh: MODES: unknown mode '$m' (lora, full)" >&2; exit 2 ;;
  esac
done
((do_lora + do_full > 0)) || { echo "scaling.sh: MODES is empty" >&2; exit 2; }
((steps > warm)) || { echo "scaling.sh: STEPS ($steps) must exceed WARMUP ($warm)" >&2; exit 2; }
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$out"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}; modes $modes; $rounds rounds of $steps steps; results in $out"
"$py" "$root/tests/ref/make_random_model.py" "$tmp/model.bin" --dim 288 --hidden 768 --layers 6 \
  --heads 6 --kv_heads 6 --vocab 32000 --seq 256 >/dev/null
"$build/loratrain" tokenize --tokenizer "$root/models/stories260K/tok512.bin" --vocab_size 512 \
  --input "$root/data/tinystories/tinystories_v2_sample.txt" --output "$tmp/data.tok" >/dev/null

ours() { # ranks, base (LoRA: fp32, nf4, nf4-sharded; full FT: full, full-zero1), round
  local np=$1 base=$2 round=$3 q=()
  case $base in
    fp32) q=(--r 8 --lora_alpha 16 --target_modules q_proj,k_proj,v_proj,o_proj) ;;
    nf4*) q=(--r 8 --lora_alpha 16 --target_modules q_proj,k_proj,v_proj,o_proj
             --load_in_4bit true --bnb_4bit_use_double_quant true) ;;
    full) q=(--finetuning_type full) ;;
    full-zero1) q=(--finetuning_type full --zero1 true) ;;
  esac
  [[ $base == nf4-sharded ]] && q+=(--shard_base true)
  local o=$tmp/run-$np-$base-$round
  mpirun -np "$np" --bind-to core "$build/loratrain" train --model "$tmp/model.bin" \
    --train_file "$tmp/data.tok" --max_seq_length 256 --per_device_train_batch_size $((8 / np)) \
    --max_steps "$steps" --learning_rate 1e-4 --warmup_steps 0 --lr_scheduler_type constant \
    --threads 1 --disable_tqdm --logging_steps 1000 --output_dir "$o" "${q[@]}" >"$o.log" 2>&1 ||
    { echo "loratrain failed:"; tail -5 "$o.log"; exit 1; }
  local core
  core=$(sed -n 's/^compute: .*OpenBLAS \([^ ]*\) kernels.*/\1/p' "$o.log" | head -1)
  "$py" - "$o/metrics.jsonl" "$np" "$base" "$warm" "$round" "$core" >>"$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][int(sys.argv[4]):]
tps = [r["tokens_per_s"] for r in rows]
# gradient bytes per step: all-reduced, or reduce-scattered to their owners with zero1
gb = lambda r: r.get("reduce_scatter_bytes", 0) or r["allreduce_bytes"]
print(json.dumps({"impl": "loratrain", "round": int(sys.argv[5]), "ranks": int(sys.argv[2]), "base": sys.argv[3],
                  "finetuning_type": "full" if sys.argv[3].startswith("full") else "lora",
                  "tokens_per_s": statistics.median(tps),
                  "step_ms_median": 1e3 * 8 * 256 / statistics.median(tps),
                  "comm_ms_per_step": 1e3 * statistics.median(r["comm_wait_s"] for r in rows),
                  "grad_wait_ms_per_step": 1e3 * statistics.median(r["grad_wait_s"] for r in rows),
                  "overlapped": statistics.median(r["grad_overlapped_bytes"] / max(1, gb(r)) for r in rows),
                  "grad_bytes": gb(rows[0]),
                  "allreduce_bytes": rows[0]["allreduce_bytes"], "allgather_bytes": rows[0]["allgather_bytes"],
                  "reduce_scatter_bytes": rows[0].get("reduce_scatter_bytes", 0),
                  "blas_core": sys.argv[6]}))
PY
}

torch_bench() { # finetuning type (lora, full), round: single process, then DDP 2x1
  local ddp
  for ddp in 0 2; do
    "$py" "$root/benchmarks/bench_torch.py" --shape stories15M --threads 1 --steps "$steps" \
      --warmup "$warm" --finetuning-type "$1" --ddp $ddp | sed "s/^{/{\"round\":$2,/" >>"$out"
  done
}

for ((r = 0; r < rounds; r++)); do
  if ((do_lora)); then
    for base in fp32 nf4 nf4-sharded; do
      for np in 1 2; do
        [[ $base == nf4-sharded && $np == 1 ]] && continue
        ours $np $base $r
      done
    done
    torch_bench lora $r
  fi
  if ((do_full)); then
    ours 1 full $r
    ours 2 full $r
    ours 2 full-zero1 $r
    torch_bench full $r
  fi
done
comm_bench() { # finetuning type, REPS: one blocking all-reduce of that mode's 2-rank gradient bytes
  local bytes
  bytes=$("$py" -c "import json,sys; print(max(r.get('grad_bytes',0) for r in map(json.loads, open(sys.argv[1])) if r.get('impl') == 'loratrain' and r.get('finetuning_type') == sys.argv[2] and r['ranks'] > 1))" "$out" "$1")
  mpirun -np 2 --bind-to core "$build/benchmarks/bench_comm" $((bytes / 4)) "$2" |
    sed "s/^{/{\"finetuning_type\":\"$1\",/" >>"$out"
}
if ((do_lora)); then comm_bench lora 50; fi
if ((do_full)); then comm_bench full 20; fi

"$py" - "$out" "$root/benchmarks" <<'PY'
import json, statistics, sys
sys.path.insert(0, sys.argv[2])
from blas_kernels import kernel_lines
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    if r["impl"] == "loratrain":
        k = ("loratrain", r["base"], r["ranks"])
    elif r["impl"] == "pytorch":
        k = ("pytorch", "full" if r.get("finetuning_type") == "full" else "fp32", r.get("ddp", 1) or 1)
    else:
        continue
    if k not in best or r["tokens_per_s"] > best[k]["tokens_per_s"]:
        best[k] = r
is_full = lambda base: base.startswith("full")
print("%-10s %-12s %6s %12s %14s %10s %12s %14s %10s"
      % ("impl", "base", "ranks", "tokens/s", "vs 1 rank", "vs DDP", "comm ms/step", "grad wait ms", "overlap"))
order = ["fp32", "nf4", "nf4-sharded", "full", "full-zero1"]
for (impl, base, n), r in sorted(best.items(), key=lambda kv: (is_full(kv[0][1]), kv[0][0], order.index(kv[0][1]), kv[0][2])):
    one = best.get((impl, {"nf4-sharded": "nf4", "full-zero1": "full"}.get(base, base), 1))
    speed = r["tokens_per_s"] / one["tokens_per_s"] if one else float("nan")
    ddp = best.get(("pytorch", "full" if is_full(base) else "fp32", 2))
    vs_ddp = r["tokens_per_s"] / ddp["tokens_per_s"] if ddp else float("nan")
    extra = ""
    if impl == "loratrain" and n > 1:
        extra = "%12.2f %14.3f %9.0f%%" % (r["comm_ms_per_step"], r["grad_wait_ms_per_step"], 100 * r["overlapped"])
    print("%-10s %-12s %6d %12.0f %13.2fx %9.2fx %s" % (impl, base, n, r["tokens_per_s"], speed, vs_ddp, extra))
# Each 2-rank run against the DDP run of its own round.
ddp_of = {(r["round"], r["finetuning_type"]): r["tokens_per_s"]
          for r in rows if r["impl"] == "pytorch" and r.get("ddp") == 2}
for base in order:
    pairs = [r["tokens_per_s"] / ddp_of[(r["round"], r["finetuning_type"])] for r in rows
             if r["impl"] == "loratrain" and r["base"] == base and r["ranks"] == 2
             and (r["round"], r["finetuning_type"]) in ddp_of]
    if pairs:
        print("%s, 2 ranks, vs the same round's DDP: %s (median %.2fx)"
              % (base, " ".join("%.2fx" % x for x in pairs), statistics.median(pairs)))
print("\n".join(kernel_lines(rows)))
for comm in (r for r in rows if r["impl"] == "bench_comm"):
    print("blocking all-reduce of the %d-byte %s gradient on 2 ranks: %.3f ms (median)"
          % (comm["bytes"], "full fine-tune" if comm.get("finetuning_type") == "full" else "LoRA",
             comm["allreduce_ms_median"]))
PY
