#!/bin/bash
# Data-parallel training with `mpirun -np N loratrain train` on the bundled
# model, same global batch (8 sequences per micro-batch, 2 micro-batches per
# step, LoRA dropout on) on 1, 2 and 4 ranks:
#   - losses step for step and the final eval_loss agree with one rank to
#     1e-6 relative (measured: <= 3e-9 after 6 steps; only the order of the
#     gradient sums across ranks differs), the final adapters to 1e-5
#     relative in L2 (measured <= 1.1e-6) and no element off by more than
#     1e-3 of the largest weight (measured <= 7.7e-5: AdamW divides each
#     update by its own gradient's magnitude, so elements with near-zero
#     gradients carry the rounding difference into the weights at full
#     size);
#   - every step all-reduces exactly the LoRA gradient bytes (4 x trainable
#     parameters) and nothing on one rank; ddp_check_replicas confirms
#     every step that all ranks hold the same bits;
#     (9 held-out rows: on 4 ranks the last has none, and with a sharded
#     base still joins every layer's gather with a padding row);
#   - with an NF4 base, shard_base on 2 and 4 ranks gives bitwise the
#     losses and adapter of the unsharded run on as many ranks; each rank
#     stores 1/N of the quantized bytes (to the 64-byte padding), gathers
#     every layer it runs (2(L-2) gathers per micro-batch: the layer in the
#     dequantization workspace and the one left in the other gather
#     buffer are reused where forward turns into backward and back), and
#     reads fewer bytes of the model file.
#   - the run summary's "communication:" line gives, for each collective,
#     the bytes every step of metrics.jsonl logged, or their least and
#     most where steps differ (the sharded runs gather one layer more in
#     the step after an evaluation), over as many steps as were logged.
# Usage: dist_train.sh LORATRAIN REPO_ROOT fp32|nf4
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root base -- "$@"
quant=()
[[ $base == nf4 ]] && quant=(--load_in_4bit true --bnb_4bit_use_double_quant true)

run() { # name, ranks, extra args...
  local name=$1 np=$2
  shift 2
  local b=$((8 / np))
  timeout $((300 * ts)) mpirun -np "$np" --oversubscribe "$bin" train \
    --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin \
    --train_file data/tinyshakespeare/input.txt --max_seq_length 64 \
    --per_device_train_batch_size "$b" --gradient_accumulation_steps 2 --max_steps 6 \
    --warmup_steps 1 --learning_rate 3e-3 --lora_dropout 0.1 --target_modules all-linear \
    --validation_split_percentage 5 --max_eval_samples 9 --per_device_eval_batch_size 4 \
    --eval_steps 3 --logging_steps 1 --threads 1 --disable_tqdm --ddp_check_replicas true \
    "${quant[@]}" --output_dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1
  local rc=$?
  if [[ $rc != 0 ]]; then echo "FAIL $name: mpirun exited with $rc:"; tail -5 "$tmp/$name.log"; exit 1; fi
}

run np1 1
run np2 2
run np4 4
if [[ $base == nf4 ]]; then
  run np2_sharded 2 --shard_base true
  run np4_sharded 4 --shard_base true
fi

"$py" - "$tmp" "$base" <<'PY'
import json, os, re, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from safetensors_f32 import read  # noqa: E402

tmp, base = sys.argv[1], sys.argv[2]
fail = []

def metrics(name):
    steps, evals = [], []
    for line in open(os.path.join(tmp, name, "metrics.jsonl")):
        r = json.loads(line)
        (evals if "eval_loss" in r else steps).append(r)
    return steps, evals

def adapter(name):
    return read(os.path.join(tmp, name, "adapter_model.safetensors"))

def trainable(name):
    m = re.search(r": (\d+) trainable parameters", open(os.path.join(tmp, name + ".log")).read())
    return int(m.group(1))

ref_steps, ref_evals = metrics("np1")
ref_ad, _ = adapter("np1")
nparams = trainable("np1")
if len(ref_steps) != 6:
    fail.append("np1: %d step lines, expected 6" % len(ref_steps))
for s in ref_steps:
    if s["allreduce_bytes"] != 0:
        fail.append("np1 step %d all-reduced %d bytes, expected none" % (s["step"], s["allreduce_bytes"]))
for np_ in (2, 4):
    name = "np%d" % np_
    steps, evals = metrics(name)
    worst = 0.0
    for a, b in zip(ref_steps, steps):
        rel = abs(a["loss"] - b["loss"]) / abs(a["loss"])
        worst = max(worst, rel)
        if rel > 1e-6:
            fail.append("%s step %d: loss %.9g vs %.9g on 1 rank (rel %.2e > 1e-6)"
                        % (name, a["step"], b["loss"], a["loss"], rel))
        if a["tokens_seen"] != b["tokens_seen"] or a["target_tokens"] != b["target_tokens"]:
            fail.append("%s step %d: %d target tokens, 1 rank had %d (not the same global batch)"
                        % (name, a["step"], b["target_tokens"], a["target_tokens"]))
        if b["allreduce_bytes"] != 4 * nparams:
            fail.append("%s step %d all-reduced %d bytes, expected the LoRA gradients' %d"
                        % (name, b["step"], b["allreduce_bytes"], 4 * nparams))
        # every layer's bucket is started by the backward pass's hook, not
        # left for the optimizer's wait
        if b["grad_started_bytes"] != 4 * nparams:
            fail.append("%s step %d: only %d of %d gradient bytes began their all-reduce during backward"
                        % (name, b["step"], b["grad_started_bytes"], 4 * nparams))
    if len(steps) != len(ref_steps):
        fail.append("%s: %d steps, 1 rank ran %d" % (name, len(steps), len(ref_steps)))
    ev = max(abs(a["eval_loss"] - b["eval_loss"]) / a["eval_loss"] for a, b in zip(ref_evals, evals))
    if len(evals) != len(ref_evals) or ev > 1e-6:
        fail.append("%s: eval losses %s vs %s on 1 rank" % (name, [e["eval_loss"] for e in evals],
                                                          [e["eval_loss"] for e in ref_evals]))
    ad, _ = adapter(name)
    scale = max(float(np.abs(v).max()) for v in ref_ad.values())
    dev = max(float(np.abs(ad[k] - ref_ad[k]).max()) for k in ref_ad) / scale
    l2 = float(np.sqrt(sum(float(((ad[k] - ref_ad[k]).astype(np.float64) ** 2).sum()) for k in ref_ad) /
                       sum(float((ref_ad[k].astype(np.float64) ** 2).sum()) for k in ref_ad)))
    if set(ad) != set(ref_ad) or l2 > 1e-5 or dev > 1e-3:
        fail.append("%s: final adapter differs from 1 rank's by %.2e relative (L2), %.2e of the "
                    "largest weight at worst" % (name, l2, dev))
    print("%s rank(s) vs 1: worst loss rel diff %.2e, eval %.2e, adapter %.2e (L2), %.2e of max |w| "
          "at worst; %d bytes all-reduced per step = 4 x %d LoRA parameters" % (name, worst, ev, l2, dev,
                                                                       steps[0]["allreduce_bytes"], nparams))

if base == "nf4":
    for np_ in (2, 4):
        plain, sharded = "np%d" % np_, "np%d_sharded" % np_
        ps, pe = metrics(plain)
        ss, se = metrics(sharded)
        same = [a["loss"] for a in ps] == [b["loss"] for b in ss] and \
               [a["eval_loss"] for a in pe] == [b["eval_loss"] for b in se]
        if not same:
            fail.append("%s: losses %s differ from unsharded %s" % (sharded, [b["loss"] for b in ss],
                                                                   [a["loss"] for a in ps]))
        if adapter(plain)[1] != adapter(sharded)[1]:
            fail.append("%s: adapter file is not bitwise the unsharded run's" % sharded)
        mp = json.load(open(os.path.join(tmp, plain, "memory.json")))
        ms = json.load(open(os.path.join(tmp, sharded, "memory.json")))
        q, L = ms["base"]["quant_bytes"], 5
        blob = q // L
        for r, rk in enumerate(ms["ranks"]):
            res = rk["quant_resident_bytes"]
            if not (q / np_ <= res <= q / np_ + 64 * L) or \
                    rk["tracked_peak_bytes"]["quantized_base"] != res:
                fail.append("%s rank %d stores %d quantized bytes (tracked %d), expected %d / %d = %.0f"
                            % (sharded, r, res, rk["tracked_peak_bytes"]["quantized_base"], q, np_, q / np_))
            if rk["model_bytes_read"] >= mp["ranks"][r]["model_bytes_read"]:
                fail.append("%s rank %d read %d bytes of the model, the unsharded rank %d"
                            % (sharded, r, rk["model_bytes_read"], mp["ranks"][r]["model_bytes_read"]))
        padded = ms["ranks"][0]["quant_resident_bytes"] // L * np_
        for s in ss:
            # forward gathers layers 2..L-1, backward L-3..0, per micro-batch
            # (one more, layer 1, when an evaluation came before)
            want = 2 * 2 * (L - 2) * padded
            if s["allgather_bytes"] not in (want, want + padded):
                fail.append("%s step %d all-gathered %d bytes, expected 2 micro-batches x 2(L-2) "
                            "layers of %d bytes (%d)" % (sharded, s["step"], s["allgather_bytes"], padded, want))
        for s in ps:
            if s["allgather_bytes"] != 0:
                fail.append("%s step %d all-gathered %d bytes without a sharded base" % (plain, s["step"], s["allgather_bytes"]))
        print("%s: losses and adapter bitwise the unsharded run's; ranks store %s of %d quantized bytes, "
              "read %s model bytes (unsharded %s); %d bytes gathered in step 1"
              % (sharded, [rk["quant_resident_bytes"] for rk in ms["ranks"]], q,
                 [rk["model_bytes_read"] for rk in ms["ranks"]],
                 [rk["model_bytes_read"] for rk in mp["ranks"]], ss[0]["allgather_bytes"]))

# The summary line against the steps' own counters.
COLLS = (("all-reduce", "allreduce_bytes"), ("reduce-scatter", "reduce_scatter_bytes"),
         ("all-gather", "allgather_bytes"), ("reduce", "reduce_bytes"))
for name in ["np2", "np4"] + (["np2_sharded", "np4_sharded"] if base == "nf4" else []):
    steps, _ = metrics(name)
    m = re.search(r"^communication: \d+ ranks \([^)]*\); per step over (\d+) steps \([^)]*\): (.*?); ",
                  open(os.path.join(tmp, name + ".log")).read(), re.M)
    if not m:
        fail.append("%s: no \"communication: ... per step over N steps ...\" summary line in the log" % name)
        continue
    said = dict(re.findall(r"(all-reduce|reduce-scatter|all-gather|reduce) (\d+(?: to \d+)?) bytes", m.group(2)))
    if int(m.group(1)) != len(steps):
        fail.append("%s: the summary speaks of %s steps, metrics.jsonl has %d" % (name, m.group(1), len(steps)))
    shown = []
    for word, key in COLLS:
        lo, hi = min(s[key] for s in steps), max(s[key] for s in steps)
        want = "%d" % lo if lo == hi else "%d to %d" % (lo, hi)
        shown.append("%s %s" % (word, want))
        if said.get(word) != want:
            fail.append("%s: the summary says %s %s bytes per step, metrics.jsonl's steps logged %s"
                        % (name, word, said.get(word), sorted({s[key] for s in steps})))
    print("%s summary: %s (as the %d steps logged)" % (name, ", ".join(shown), len(steps)))

for f in fail:
    print("FAIL", f)
sys.exit(1 if fail else 0)
PY
