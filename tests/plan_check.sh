#!/bin/bash
# The memory planner against measured runs: for each run below, `loratrain
# plan --json` with the same shape and settings predicts every tracked
# category (all but "other", the data buffers) within 10% (or 4 KiB, the
# allocator's alignment on tiny buffers) of the peak output_dir/memory.json
# measured, on every rank:
#   - the bundled model, fp32 LoRA on all linears with dropout, 1 rank;
#   - a random 14M-parameter model (tests/make_random_model.py), QLoRA (NF4
#     + double quant) on q,v, 1 rank; and the same with shard_base on 2 ranks.
# Usage: plan_check.sh LORATRAIN REPO_ROOT
set -u
bin=${1:?usage: plan_check.sh LORATRAIN REPO_ROOT}
root=${2:?}
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root" || exit 1
"$py" tests/make_random_model.py "$tmp/rand.bin" --dim 384 --hidden 1024 --layers 8 --heads 6 \
  --kv_heads 2 --vocab 512 --seq 256 >/dev/null || exit 1
fail=0
check() { # name, ranks, model, plan args (quoted), train args...
  local name=$1 np=$2 model=$3 plan=$4
  shift 4
  timeout 300 mpirun --oversubscribe -np "$np" "$bin" train --model "$model" \
    --tokenizer models/stories260K/tok512.bin --train_file data/tinyshakespeare/input.txt \
    --max_steps 2 --threads 1 --disable_tqdm --output_dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 ||
    { echo "FAIL $name: training failed:"; tail -3 "$tmp/$name.log"; fail=1; return; }
  "$bin" plan --model "$model" --ranks "$np" $plan --json >"$tmp/$name.plan" ||
    { echo "FAIL $name: plan failed"; fail=1; return; }
  "$py" - "$tmp/$name.plan" "$tmp/$name/memory.json" "$name" <<'PY' || fail=1
import json, sys
plan, mem, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
bad = []
for r, rank in enumerate(mem["ranks"]):
    for cat, want in plan["bytes"].items():
        got = rank["tracked_peak_bytes"][cat]
        if abs(want - got) > max(0.10 * got, 4096):
            bad.append("rank %d %s: predicted %d bytes, measured %d (%+.1f%%)"
                       % (r, cat, want, got, 100.0 * (want - got) / max(got, 1)))
rank0 = mem["ranks"][0]["tracked_peak_bytes"]
worst = max(abs(w - rank0[c]) / rank0[c] for c, w in plan["bytes"].items() if rank0[c])
print("%s: %d categories on %d rank(s), worst %.2f%%; predicted %.2f MiB, measured %.2f MiB (+ %.2f MiB data)"
      % (name, len(plan["bytes"]), len(mem["ranks"]), 100 * worst, plan["total_bytes"] / 2**20,
         sum(rank0[c] for c in plan["bytes"]) / 2**20, rank0["other"] / 2**20))
for b in bad:
    print("FAIL", name, b)
sys.exit(1 if bad else 0)
PY
}
check lora260K 1 models/stories260K/stories260K.bin \
  "--mode lora --seq 128 --batch 4 --r 8 --target_modules all-linear --lora_dropout 0.05" \
  --max_seq_length 128 --per_device_train_batch_size 4 --target_modules all-linear --lora_dropout 0.05
check qlora14M 1 "$tmp/rand.bin" "--mode qlora --seq 128 --batch 2 --r 8 --target_modules q_proj,v_proj" \
  --max_seq_length 128 --per_device_train_batch_size 2 --load_in_4bit --bnb_4bit_use_double_quant
check qlora14M_sharded 2 "$tmp/rand.bin" \
  "--mode qlora --shard_base --seq 128 --batch 2 --r 8 --target_modules q_proj,v_proj" \
  --max_seq_length 128 --per_device_train_batch_size 2 --load_in_4bit --bnb_4bit_use_double_quant --shard_base
exit $fail
