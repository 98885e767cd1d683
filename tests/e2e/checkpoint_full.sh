#!/bin/bash
# Full fine-tuning checkpoints (HDF5, parallel HDF5 for ZeRO-1's sharded
# moments) and exact resume, on the bundled model:
#   - 2 ranks with zero1, killed right after the checkpoint of step 3 and
#     resumed with `latest`: bitwise the losses and final weights of the
#     uninterrupted run; the same on 1 rank without zero1;
#   - the 2-rank zero1 checkpoint resumed on 4 ranks (zero1, other shards)
#     and on 1 rank: the remaining losses within 1e-6 relative of the
#     uninterrupted run (only the reduction order differs);
#   - h5py finds the documented layout: /model/<HF name> with offsets,
#     flat /optimizer/exp_avg(_sq) whose segment_offsets are the writers'
#     ZeRO-1 shards; every attribute, tensor and segment matches the
#     manifest, recomputed with h5py and xxhash (tests/ref/ckpt_manifest.py);
#   - a flipped byte in a moment segment and a LoRA run pointed at a full
#     checkpoint give one clear error line;
#   - a disk that fills up during the run, before a 2-rank parallel save,
#     stops the job with the reason, within seconds, and the previous
#     checkpoint still loads.
# Usage: checkpoint_full.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
args=(--model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
  --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --max_steps 6 --warmup_steps 1
  --learning_rate 1e-3 --weight_decay 0.01 --logging_steps 1 --threads 1 --disable_tqdm
  --finetuning_type full)
run() { # name, ranks, extra args...; FAULT=where:step kills the run there (the test hook)
  local name=$1 np=$2
  shift 2
  local fx=()
  [[ -n ${FAULT:-} ]] && fx=(-x LT_FAULT_CHECKPOINT="$FAULT")
  timeout $((300 * ts)) mpirun -np "$np" --oversubscribe "${fx[@]}" "$bin" train "${args[@]}" \
    --per_device_train_batch_size $((4 / np)) --output_dir "$tmp/$name" "$@" >>"$tmp/$name.log" 2>&1
}
run A2 2 --zero1 true || { echo "FAIL the uninterrupted 2-rank run failed"; tail -3 "$tmp/A2.log"; exit 1; }
run A1 1 || { echo "FAIL the uninterrupted 1-rank run failed"; tail -3 "$tmp/A1.log"; exit 1; }
FAULT=after_save:3 run B2 2 --zero1 true --save_steps 3
FAULT=after_save:3 run B1 1 --save_steps 3
for n in B2 B1; do
  [[ -f $tmp/$n/checkpoint-3.h5 && ! -f $tmp/$n/model.safetensors ]] ||
    { echo "FAIL $n: expected a checkpoint-3.h5 and a run killed before its end"; exit 1; }
done
cp -r "$tmp/B2" "$tmp/C4"
cp -r "$tmp/B2" "$tmp/C1"
run B2 2 --zero1 true --save_steps 3 --resume_from_checkpoint latest || { echo "FAIL resuming B2"; tail -3 "$tmp/B2.log"; exit 1; }
run B1 1 --save_steps 3 --resume_from_checkpoint latest || { echo "FAIL resuming B1"; tail -3 "$tmp/B1.log"; exit 1; }
run C4 4 --zero1 true --resume_from_checkpoint latest || { echo "FAIL resuming on 4 ranks"; tail -3 "$tmp/C4.log"; exit 1; }
run C1 1 --resume_from_checkpoint latest || { echo "FAIL resuming on 1 rank"; tail -3 "$tmp/C1.log"; exit 1; }
# 3 ranks: a shard boundary falls inside a k_proj weight, whose rows the
# file holds permuted (Hugging Face's order), so the writers exchange that
# tensor's moments; resumed on 3 ranks bitwise, and on 1 rank with the
# same global batch of 3 (which reads the split tensor whole).
run D3 3 --zero1 true || { echo "FAIL the uninterrupted 3-rank run failed"; tail -3 "$tmp/D3.log"; exit 1; }
FAULT=after_save:3 run E3 3 --zero1 true --save_steps 3
cp -r "$tmp/E3" "$tmp/F1"
run E3 3 --zero1 true --save_steps 3 --resume_from_checkpoint latest || { echo "FAIL resuming E3"; tail -3 "$tmp/E3.log"; exit 1; }
run F1 1 --per_device_train_batch_size 3 --resume_from_checkpoint latest ||
  { echo "FAIL resuming E3's checkpoint on 1 rank"; tail -3 "$tmp/F1.log"; exit 1; }
for p in "A2 B2" "A1 B1" "D3 E3"; do
  set -- $p
  cmp -s "$tmp/$1/model.safetensors" "$tmp/$2/model.safetensors" ||
    { echo "FAIL $2: the resumed run's weights are not bitwise the uninterrupted run's"; fail=1; }
done

"$py" - "$tmp" "$root/tests/ref" <<'PY' || fail=1
import json, os, sys
import h5py, numpy as np
tmp = sys.argv[1]
bad = []
def losses(n):
    return [json.loads(l)["loss"] for l in open(os.path.join(tmp, n, "metrics.jsonl")) if '"loss"' in l]
a2 = losses("A2")
if losses("B2") != a2 or losses("B1") != losses("A1"):
    bad.append("resumed losses are not bitwise the uninterrupted runs'")
for n, ref in (("C4", a2), ("C1", a2), ("F1", losses("D3"))):
    c = losses(n)
    worst = max(abs(x - y) / abs(y) for x, y in zip(c, ref))
    if len(c) != 6 or worst > 1e-6:
        bad.append("%s: losses %s vs %s (worst rel %.2e)" % (n, c, ref, worst))
    print("%s ranks -> %s: %d steps, worst loss rel diff %.2e" % (3 if n == "F1" else 2, n, len(c), worst))
if losses("E3") != losses("D3"):
    bad.append("E3: the 3-rank resumed losses are not bitwise the uninterrupted run's")

sys.path.insert(0, sys.argv[2])
import ckpt_manifest
bad += ckpt_manifest.problems(os.path.join(tmp, "C4", "checkpoint-3.h5"))
with h5py.File(os.path.join(tmp, "C4", "checkpoint-3.h5"), "r") as f:
    if f.attrs["finetuning_type"] != b"full" and f.attrs["finetuning_type"] != "full":
        bad.append("finetuning_type is %r" % f.attrs["finetuning_type"])
    P = sum(d.size for d in f["model"].values())
    for name, d in f["model"].items():
        if d.dtype != np.float32 or d.ndim != 2 or "offset" not in d.attrs:
            bad.append("/model/%s: %s %s" % (name, d.dtype, d.shape))
    emb = f["model/model.embed_tokens.weight"]
    if int(emb.attrs["offset"]) != 0:
        bad.append("the embedding is not at offset 0")
    for w in ("exp_avg", "exp_avg_sq"):
        d = f["optimizer/" + w]
        seg = list(d.attrs["segment_offsets"])
        per = -(-(-(-P // 2)) // 16) * 16
        if d.shape != (P,) or seg != [0, per, P]:
            bad.append("/optimizer/%s: shape %s, segments %s; expected (%d,), [0, %d, %d]" % (w, d.shape, seg, P, per, P))
    if int(f["optimizer"].attrs["step"]) != 3:
        bad.append("optimizer step %s" % f["optimizer"].attrs["step"])
    print("h5py: /model %d tensors, %d parameters; flat moments with segments %s"
          % (len(f["model"]), P, list(f["optimizer/exp_avg"].attrs["segment_offsets"])))
# The 3-rank checkpoint: a writer's boundary inside a q/k weight (or this
# test would not exercise the exchange), and its manifest.
path3 = os.path.join(tmp, "E3", "checkpoint-3.h5")
bad += ckpt_manifest.problems(path3)
with h5py.File(path3, "r") as f:
    seg = [int(x) for x in f["optimizer/exp_avg"].attrs["segment_offsets"]]
    split = [n for n, d in f["model"].items() if (".q_proj.weight" in n or ".k_proj.weight" in n) and
             any(int(d.attrs["offset"]) < b < int(d.attrs["offset"]) + d.size for b in seg)]
    if not split:
        bad.append("3 ranks: no shard boundary %s falls inside a q_proj/k_proj weight" % seg)
    print("3 ranks: segments %s; split between writers: %s" % (seg, ", ".join(split)))
# The final step's checkpoint holds the weights the run wrote to
# model.safetensors (Hugging Face's q/k row order) bit for bit.
import struct
raw = open(os.path.join(tmp, "B2", "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
with h5py.File(os.path.join(tmp, "B2", "checkpoint-6.h5"), "r") as f:
    differ = []
    for name, d in f["model"].items():
        v = hdr.get(name)
        if v is None:
            continue  # a tied classifier is not written to model.safetensors
        a = np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype="<f4")
        if not np.array_equal(a, d[()].reshape(-1)):
            differ.append(name)
    if differ or len(f["model"]) < len(hdr) - 1:
        bad.append("checkpoint-6.h5 /model differs from model.safetensors: %s" % differ[:3])
    else:
        print("checkpoint-6.h5 /model = model.safetensors bit for bit (q/k rows in Hugging Face's order)")
for b in bad:
    print("FAIL", b)
sys.exit(1 if bad else 0)
PY

# A flipped byte inside the moments: the segment's checksum catches it.
cp "$tmp/C4/checkpoint-3.h5" "$tmp/flip.h5"
off=$("$py" -c "
import h5py; f = h5py.File('$tmp/flip.h5', 'r'); d = f['optimizer/exp_avg_sq']; print(d.id.get_offset() + 4 * (d.shape[0] - 3))")
printf '\x5a' | dd of="$tmp/flip.h5" bs=1 seek="$off" conv=notrunc status=none
if "$bin" inspect "$tmp/flip.h5" >"$tmp/flip.log" 2>&1 || ! grep -q "exp_avg_sq segment 1 .*fails its checksum" "$tmp/flip.log"; then
  echo "FAIL a flipped moment byte was not reported:"; cat "$tmp/flip.log"; fail=1
else
  echo "flipped byte: $(tail -1 "$tmp/flip.log")"
fi
# A LoRA run cannot resume a full fine-tuning checkpoint.
"$bin" train "${args[@]/full/lora}" --output_dir "$tmp/L" --resume_from_checkpoint "$tmp/C4/checkpoint-3.h5" >"$tmp/L.log" 2>&1
if [[ $? == 0 ]] || ! grep -q "holds a full fine-tuning checkpoint; this run trains LoRA" "$tmp/L.log"; then
  echo "FAIL a LoRA run resuming a full checkpoint:"; tail -2 "$tmp/L.log"; fail=1
fi
# A disk that fills under parallel HDF5 (a 20 MiB tmpfs, room for the run
# when it starts, filled from here once checkpoint-2 is written, leaving 64
# KiB: checkpoint-4 does not fit): the space is reserved before the ranks
# write, so the job stops with the reason instead of hanging in a
# collective call after MPI-IO's write failed on one rank; checkpoint-2
# stays loadable. LT_FAULT_SLOW (a test hook) makes each step last 1 s,
# time to fill the disk before step 4.
if mkdir -p "$tmp/full" && mount -t tmpfs -o size=20m tmpfs "$tmp/full" 2>/dev/null; then
  timeout $((60 * ts)) mpirun -np 2 --oversubscribe -x LT_FAULT_SLOW=step:1 "$bin" train "${args[@]}" \
    --per_device_train_batch_size 2 --zero1 true --save_steps 2 --output_dir "$tmp/full/run" >"$tmp/df.log" 2>&1 &
  job=$!
  fill_after_checkpoint "$tmp/full/run" "$tmp/full" $job || echo "FAIL disk full: cannot fill the tmpfs"
  wait $job
  rc=$?
  if [[ $rc == 0 || $rc == 124 ]] || ! grep -q "rank 0 of 2.*No space left on device" "$tmp/df.log" ||
     ! "$bin" inspect "$tmp/full/run/checkpoint-2.h5" >/dev/null || ls "$tmp/full/run" | grep -q tmp; then
    echo "FAIL disk full on 2 ranks (exit $rc, 124 = hung), files: $(ls "$tmp/full/run" | tr '\n' ' ')"
    grep -v "^ *$" "$tmp/df.log" | tail -5; fail=1
  else
    echo "disk full, 2 ranks: exit $rc, $(grep -o "rank 0 of 2.*" "$tmp/df.log"); checkpoint-2 verifies, no temporary left"
  fi
  umount "$tmp/full"
else
  echo "disk full: not run (this machine cannot mount a tmpfs)"
fi
exit $fail
