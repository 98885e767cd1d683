#!/bin/bash
# Full fine-tuning (finetuning_type full) of the bundled model with
# `mpirun -np N loratrain train`, same global batch (8 sequences per
# micro-batch, 2 micro-batches per step) on 1, 2 and 4 ranks, with and
# without ZeRO-1 (zero1: AdamW moments sharded), with gradient
# checkpointing on one run:
#   - losses step for step agree with one rank to 1e-6 relative and the
#     final weights (model.safetensors) to 1e-5 relative in L2, no element
#     off by more than 1e-3 of the largest (the reduction order is the only
#     difference, as for LoRA in dist_train.sh);
#   - gradient checkpointing gives bitwise the losses and weights of the
#     same run without it (the recomputation replays the same ops);
#   - ddp_check_replicas confirms every step that all ranks hold the same
#     bits of every weight (and, without zero1, of both moments);
#   - bytes per step: without zero1 the whole gradient (4 x parameters) is
#     all-reduced; with zero1 it is reduce-scattered and the parameters
#     all-gathered (4 x parameters each) and only the 8-byte squared norm
#     is all-reduced;
#   - memory: gradients and moments of 4 and 8 bytes per parameter, with
#     zero1 each rank's moments 8 bytes x its shard (1/N of the parameters,
#     rounded up to 16) and its gradient shard 4 bytes x the same;
#   - a quantized base is refused with a message that says why.
# Usage: dist_full.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"

args=(--model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
  --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --gradient_accumulation_steps 2
  --max_steps 5 --warmup_steps 1 --learning_rate 1e-3 --weight_decay 0.01 --max_grad_norm 1.0
  --logging_steps 1 --threads 1 --disable_tqdm --ddp_check_replicas true --finetuning_type full)
run() { # name, ranks, extra args...
  local name=$1 np=$2
  shift 2
  timeout $((300 * ts)) mpirun -np "$np" --oversubscribe "$bin" train "${args[@]}" \
    --per_device_train_batch_size $((8 / np)) --output_dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1
  local rc=$?
  if [[ $rc != 0 ]]; then echo "FAIL $name: mpirun exited with $rc:"; tail -5 "$tmp/$name.log"; exit 1; fi
}

run np1 1
run np1_gc 1 --gradient_checkpointing true
run np2 2
run np2_zero1 2 --zero1 true
run np4 4
run np4_zero1 4 --zero1 true
run np4_zero1_gc 4 --zero1 true --gradient_checkpointing true

"$bin" train "${args[@]}" --output_dir "$tmp/q" --load_in_4bit true >"$tmp/q.log" 2>&1
rc=$?
if [[ $rc == 0 ]] || ! grep -q "finetuning_type full trains every weight in fp32.*load_in_4bit" "$tmp/q.log"; then
  echo "FAIL a quantized base in full fine-tuning: exit $rc, expected a refusal naming load_in_4bit:"
  tail -2 "$tmp/q.log"
  exit 1
fi
echo "quantized base refused: $(grep -m1 error "$tmp/q.log")"

"$py" - "$tmp" <<'PY'
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from safetensors_f32 import read  # noqa: E402

tmp = sys.argv[1]
fail = []

def steps(name):
    return [json.loads(l) for l in open(os.path.join(tmp, name, "metrics.jsonl")) if '"loss"' in l]

def weights(name):
    return read(os.path.join(tmp, name, "model.safetensors"))

ref, (ref_w, ref_raw) = steps("np1"), weights("np1")
P = sum(v.size for v in ref_w.values())
mem1 = json.load(open(os.path.join(tmp, "np1", "memory.json")))
if mem1["base"]["fp32_params"] != P:
    fail.append("model.safetensors holds %d parameters, the model %d" % (P, mem1["base"]["fp32_params"]))
if len(ref) != 5:
    fail.append("np1: %d step lines, expected 5" % len(ref))

def compare(name, np_, zero1):
    st = steps(name)
    w, _ = weights(name)
    worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(ref, st))
    if len(st) != len(ref) or worst > 1e-6:
        fail.append("%s: losses %s vs 1 rank's %s (worst rel %.2e > 1e-6)"
                    % (name, [s["loss"] for s in st], [s["loss"] for s in ref], worst))
    scale = max(float(np.abs(v).max()) for v in ref_w.values())
    dev = max(float(np.abs(w[k] - ref_w[k]).max()) for k in ref_w) / scale
    l2 = float(np.sqrt(sum(float(((w[k] - ref_w[k]).astype(np.float64) ** 2).sum()) for k in ref_w) /
                       sum(float((ref_w[k].astype(np.float64) ** 2).sum()) for k in ref_w)))
    if set(w) != set(ref_w) or l2 > 1e-5 or dev > 1e-3:
        fail.append("%s: final weights differ from 1 rank's by %.2e (L2), %.2e of max |w|" % (name, l2, dev))
    for s in st:
        want = {"allreduce_bytes": 8, "reduce_scatter_bytes": 4 * P, "allgather_bytes": 4 * P} if zero1 \
            else {"allreduce_bytes": 4 * P, "reduce_scatter_bytes": 0, "allgather_bytes": 0}
        for k, v in want.items():
            if s[k] != v:
                fail.append("%s step %d: %s %d, expected %d" % (name, s["step"], k, s[k], v))
        if s["grad_started_bytes"] != 4 * P:
            fail.append("%s step %d: only %d of %d gradient bytes began their reduction during backward"
                        % (name, s["step"], s["grad_started_bytes"], 4 * P))
    mem = json.load(open(os.path.join(tmp, name, "memory.json")))
    per = -(-P // np_)
    per = -(-per // 16) * 16
    for r, rk in enumerate(mem["ranks"]):
        shard = max(0, min(per, P - r * per))
        got = rk["tracked_peak_bytes"]
        want_opt = 8 * (shard if zero1 else P)
        want_grad = 4 * P + (4 * shard if zero1 else 0)
        if got["optimizer_state"] != want_opt or got["gradients"] != want_grad:
            fail.append("%s rank %d: optimizer state %d and gradients %d bytes, expected %d and %d"
                        % (name, r, got["optimizer_state"], got["gradients"], want_opt, want_grad))
    print("%s: worst loss rel diff vs 1 rank %.2e, weights %.2e (L2), %.2e of max |w|; per step %s; "
          "rank 0 moments %d bytes" % (name, worst, l2, dev,
                                       {k: st[0][k] for k in ("allreduce_bytes", "reduce_scatter_bytes", "allgather_bytes")},
                                       mem["ranks"][0]["tracked_peak_bytes"]["optimizer_state"]))

for name, np_, zero1 in (("np2", 2, 0), ("np2_zero1", 2, 1), ("np4", 4, 0), ("np4_zero1", 4, 1),
                         ("np4_zero1_gc", 4, 1)):
    compare(name, np_, zero1)
if P * 16 != sum(mem1["ranks"][0]["tracked_peak_bytes"][c]
                 for c in ("base_weights", "gradients", "optimizer_state")):
    fail.append("1 rank: weights + gradients + moments are not 16 bytes per parameter")

for plain, gc in (("np1", "np1_gc"), ("np4_zero1", "np4_zero1_gc")):
    if [s["loss"] for s in steps(plain)] != [s["loss"] for s in steps(gc)] or \
            weights(plain)[1] != weights(gc)[1]:
        fail.append("%s: losses or weights are not bitwise those of %s" % (gc, plain))
    a = json.load(open(os.path.join(tmp, plain, "memory.json")))["ranks"][0]["tracked_peak_bytes"]["activations"]
    b = json.load(open(os.path.join(tmp, gc, "memory.json")))["ranks"][0]["tracked_peak_bytes"]["activations"]
    if not b < a:
        fail.append("%s: activations %d bytes, not fewer than %d without checkpointing" % (gc, b, a))
    print("%s: bitwise the losses and weights of %s; activations %d -> %d bytes" % (gc, plain, a, b))

for f in fail:
    print("FAIL", f)
sys.exit(1 if fail else 0)
PY
