#!/bin/bash
# The LoRA vs QLoRA vs full fine-tuning report (issue 7): trains one random
# Llama of >= 100M parameters for a few steps in every mode on 1 and 2 ranks
# (mpirun, 1 thread per rank), collects each run's output_dir/memory.json
# (per-rank tracked peak by category, VmHWM) and metrics.jsonl (tokens/s,
# bytes per collective per step), asks `loratrain plan --json` for the same
# runs and for Llama-2-7B / 70B on 1, 8 and 64 ranks, and writes
# benchmarks/report/: report.md, runs.csv, runs.json, plan.csv, plan.json,
# SVG plots and each run's log. Every figure comes from this invocation.
# Throughput comparisons are stated only where the machine's load (the load
# average before the first run and after the last, recorded here) and the
# spread over steps allow it, and are marked noise otherwise (the rule is in
# benchmarks/report.py and in report.md).
#
# To render report.md, the CSVs and the plots again from the recorded
# figures, without running anything (after a change to report.py):
#   /usr/bin/python3 benchmarks/report.py --from benchmarks/report
#
# Matrix (name: ranks): lora (fp32 base): 1 2; qlora (NF4 + double quant):
# 1 2; qlora-sharded (shard_base): 2; qlora-gc (gradient_checkpointing): 1 2;
# full (finetuning_type full): 1 2; full-zero1: 2; full-gc: 1 2. A mode the
# binary rejects is recorded as "not run: <its error line>".
#
# Usage: benchmarks/report.sh [BUILD_DIR]
# Environment (defaults in brackets):
#   STEPS [6] optimizer steps per run; SEQ [128] max_seq_length; BATCH [4]
#   per_device_train_batch_size (the same on 1 and 2 ranks, so per-rank
#   memory compares); R [16] LoRA rank (lora_alpha 2R); TARGETS [all-linear];
#   THREADS [1] per rank; LR [1e-4].
#   Model: DIM [768] HIDDEN [2048] LAYERS [12] HEADS [12] KV_HEADS [12]
#   VOCAB [32000] MODEL_SEQ [256] (about 110M parameters).
#   PLAN_SEQ [2048] PLAN_BATCH [1] for the 7B/70B planner table.
#   MODES: run only these matrix entries (e.g. "lora qlora-sharded").
#   REPORT_DIR [benchmarks/report]; RUN_TIMEOUT [900] seconds per run;
#   KEEP_WORK [0]: 1 keeps the work folder (model, token file, outputs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin=$build/loratrain
py=/usr/bin/python3
[[ -x $bin ]] || { echo "report.sh: $bin not found (build first: cmake --build build)" >&2; exit 1; }

steps=${STEPS:-6} seq=${SEQ:-128} batch=${BATCH:-4} r=${R:-16} targets=${TARGETS:-all-linear}
threads=${THREADS:-1} lr=${LR:-1e-4}
dim=${DIM:-768} hidden=${HIDDEN:-2048} layers=${LAYERS:-12} heads=${HEADS:-12}
kv_heads=${KV_HEADS:-12} vocab=${VOCAB:-32000} model_seq=${MODEL_SEQ:-256}
plan_seq=${PLAN_SEQ:-2048} plan_batch=${PLAN_BATCH:-1}
report=${REPORT_DIR:-$root/benchmarks/report}
run_timeout=${RUN_TIMEOUT:-900}
modes=${MODES:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE

work=$(mktemp -d "${TMPDIR:-/tmp}/loratrain-report.XXXXXX")
if [[ ${KEEP_WORK:-0} == 1 ]]; then
  echo "work folder kept: $work"
else
  trap 'rm -rf "$work"' EXIT
fi
t_start=$(date +%s)
mkdir -p "$work/runs" "$work/plans"
# One binary for the whole matrix, even if BUILD_DIR is rebuilt meanwhile.
cp "$bin" "$work/loratrain"
sha256sum "$bin" | cut -d' ' -f1 >"$work/binary.sha256"
# Recorded relative to the repository, so the report names no checkout path.
realpath --relative-to="$root" "$bin" >"$work/binary.path"
cut -d" " -f1-3 /proc/loadavg >"$work/loadavg.start" 2>/dev/null || true
bin=$work/loratrain

# The model and the data: a random Llama (tied classifier) and Tiny
# Shakespeare as a token file of the bundled 512-token tokenizer (ids < vocab).
echo "== model: dim $dim, hidden $hidden, $layers layers, $heads heads ($kv_heads kv), vocab $vocab"
"$py" "$root/tests/ref/make_random_model.py" "$work/model.bin" --dim "$dim" --hidden "$hidden" \
  --layers "$layers" --heads "$heads" --kv_heads "$kv_heads" --vocab "$vocab" --seq "$model_seq" \
  >"$work/model.txt"
cat "$work/model.txt"
"$bin" tokenize --tokenizer "$root/models/stories260K/tok512.bin" --vocab_size 512 \
  --input "$root/data/tinyshakespeare/input.txt" --output "$work/data.tok" >"$work/tokenize.txt"
cat "$work/tokenize.txt"
"$bin" info --model "$work/model.bin" --r "$r" --lora_alpha $((2 * r)) --target_modules "$targets" \
  >"$work/info.txt" 2>&1 || true
"$bin" info --model "$work/model.bin" --r "$r" --lora_alpha $((2 * r)) --target_modules "$targets" \
  --load_in_4bit --bnb_4bit_use_double_quant >"$work/info_qlora.txt" 2>&1 || true

# Train arguments of each mode (the matrix entry's name without its suffixes).
mode_args() { # name -> the mode's arguments, one per line
  local lora=(--r "$r" --lora_alpha $((2 * r)) --target_modules "$targets")
  local four=(--load_in_4bit true --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true)
  case $1 in
    lora) printf '%s\n' "${lora[@]}" ;;
    qlora) printf '%s\n' "${lora[@]}" "${four[@]}" ;;
    qlora-sharded) printf '%s\n' "${lora[@]}" "${four[@]}" --shard_base true ;;
    qlora-gc) printf '%s\n' "${lora[@]}" "${four[@]}" --gradient_checkpointing true ;;
    full) printf '%s\n' --finetuning_type full ;;
    full-zero1) printf '%s\n' --finetuning_type full --zero1 true ;;
    full-gc) printf '%s\n' --finetuning_type full --gradient_checkpointing true ;;
    *) echo "report.sh: unknown mode $1" >&2; exit 1 ;;
  esac
}
# The planner's arguments for the same mode (train's keys as plan's options).
plan_args() { # name ranks
  case $1 in
    lora) printf '%s\n' --mode lora --r "$r" --target_modules "$targets" ;;
    qlora) printf '%s\n' --mode qlora --r "$r" --target_modules "$targets" ;;
    qlora-sharded) printf '%s\n' --mode qlora --r "$r" --target_modules "$targets" --shard_base ;;
    qlora-gc) printf '%s\n' --mode qlora --r "$r" --target_modules "$targets" --gradient_checkpointing ;;
    full) printf '%s\n' --mode full ;;
    full-zero1) printf '%s\n' --mode full --zero1 ;;
    full-gc) printf '%s\n' --mode full --gradient_checkpointing ;;
  esac
}

matrix=("lora 1" "lora 2" "qlora 1" "qlora 2" "qlora-sharded 2" "qlora-gc 1" "qlora-gc 2"
        "full 1" "full 2" "full-zero1 2" "full-gc 1" "full-gc 2")

: >"$work/runs.tsv"
: >"$work/plans.tsv"
for entry in "${matrix[@]}"; do
  read -r name np <<<"$entry"
  if [[ -n $modes && " $modes " != *" $name "* ]]; then continue; fi
  id=$name-np$np o=$work/runs/$id
  mapfile -t margs < <(mode_args "$name")
  cmd=(mpirun -np "$np" --oversubscribe "$bin" train --model "$work/model.bin"
       --train_file "$work/data.tok" --max_seq_length "$seq" --per_device_train_batch_size "$batch"
       --max_steps "$steps" --learning_rate "$lr" --warmup_steps 0 --lr_scheduler_type constant
       --threads "$threads" --disable_tqdm --logging_steps 1 --seed 42 --output_dir "$o" "${margs[@]}")
  printf '== %-16s %d rank(s): ' "$name" "$np"
  t0=$(date +%s.%N)
  rc=0
  timeout "$run_timeout" "${cmd[@]}" >"$o.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [[ $rc == 0 ]]; then
    echo "done in ${wall} s"
  else
    echo "exit $rc after ${wall} s: $(grep -m1 -i 'error' "$o.log" || tail -1 "$o.log")"
  fi
  # name, ranks, exit code, seconds, output dir, log, command (space-joined)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$np" "$rc" "$wall" "$o" "$o.log" \
    "${cmd[*]/#$work/WORK}" >>"$work/runs.tsv"
  # The planner for this run's shape and settings.
  mapfile -t pargs < <(plan_args "$name")
  prc=0
  "$bin" plan --model "$work/model.bin" --ranks "$np" --seq "$seq" --batch "$batch" "${pargs[@]}" \
    --json >"$work/plans/run-$id.out" 2>&1 || prc=$?
  printf 'run\t%s\t%s\t%s\t%s\t%s\n' "$work/model.bin" "$name" "$np" "$prc" \
    "$work/plans/run-$id.out" >>"$work/plans.tsv"
done

# Right after the last run: the load average counts the runs' own processes,
# and report.py takes out their share from the runs' order and lengths.
cut -d" " -f1-3 /proc/loadavg >"$work/loadavg.end" 2>/dev/null || true

# The planner for published shapes: Llama-2-7B and 70B on 1, 8 and 64 ranks.
echo "== planner: llama-2-7b and llama-2-70b, seq $plan_seq, batch $plan_batch, LoRA r $r on $targets"
for model in llama-2-7b llama-2-70b; do
  for np in 1 8 64; do
    for name in lora qlora qlora-sharded qlora-gc full full-zero1 full-gc; do
      [[ $np == 1 && ( $name == qlora-sharded || $name == full-zero1 ) ]] && continue
      mapfile -t pargs < <(plan_args "$name")
      f=$work/plans/$model-$name-np$np.out prc=0
      "$bin" plan --model "$model" --ranks "$np" --seq "$plan_seq" --batch "$plan_batch" \
        "${pargs[@]}" --json >"$f" 2>&1 || prc=$?
      printf 'preset\t%s\t%s\t%s\t%s\t%s\n' "$model" "$name" "$np" "$prc" "$f" >>"$work/plans.tsv"
    done
  done
done

t_end=$(date +%s)
mkdir -p "$report"
"$py" "$root/benchmarks/report.py" --root "$root" --build "$build" --work "$work" --out "$report" \
  --steps "$steps" --seq "$seq" --batch "$batch" --r "$r" --targets "$targets" --threads "$threads" \
  --lr "$lr" --plan_seq "$plan_seq" --plan_batch "$plan_batch" --elapsed_s $((t_end - t_start))
echo "report: $report/report.md ($((t_end - t_start)) s of runs)"
