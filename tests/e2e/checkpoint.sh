#!/bin/bash
# HDF5 checkpoints: exact resume, resume on other rank counts, kills during
# saving, damaged files, and the layout h5py sees. On the bundled model, 8
# steps of 2 x 4 sequences of 64 tokens, LoRA dropout on, a checkpoint
# every 4 (or every 1) steps:
#   - killed right after the step-4 checkpoint (LT_FAULT_CHECKPOINT test
#     hook) and resumed with resume_from_checkpoint latest: losses, eval
#     losses and the adapter file bitwise the uninterrupted run's, on 1 and
#     on 2 ranks;
#   - the 2-rank checkpoint resumed on 1 and on 4 ranks (same global batch):
#     losses within 1e-6 and adapter within 1e-5 (L2) of the 2-rank run;
#   - killed between writing and renaming, or before the pointer moves: the
#     previous checkpoint loads; SIGKILL at random moments of a run saving
#     every step, resumed each time: the final adapter is bitwise the
#     uninterrupted run's; killed after the last step's checkpoint, resuming
#     finishes the run (no step, the final evaluation and adapter);
#   - truncated, bit-flipped, wrong-version, wrong-r and other-target-modules checkpoints give one
#     clear error; `latest` skips a damaged newest checkpoint with a line
#     saying so; a checkpoint that cannot be put in place, or does not fit
#     on a disk that filled during the run (a small tmpfs, where mount
#     works), stops the run with the reason and keeps the previous one;
#   - h5py reads the documented layout; its manifest, recomputed with the
#     xxhash package, covers every attribute and tensor.
# Usage: checkpoint.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
suite_at_exit 'umount "$tmp/full" 2>/dev/null'
args() { # ranks
  echo --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin \
    --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --warmup_steps 1 \
    --learning_rate 3e-3 --lr_scheduler_type cosine --lora_dropout 0.1 --target_modules all-linear \
    --validation_split_percentage 5 --max_eval_samples 8 --per_device_eval_batch_size 4 \
    --gradient_accumulation_steps 2 --per_device_train_batch_size $((4 / $1)) --max_steps 8 \
    --logging_steps 1 --threads 1 --disable_tqdm
}
run() { # ranks, out, extra... ; returns the exit status
  local np=$1 out=$2
  shift 2
  if [[ $np == 1 ]]; then
    timeout $((300 * ts)) "$bin" train $(args 1) --output_dir "$out" "$@" >"$out.log" 2>&1
  else
    timeout $((300 * ts)) mpirun --oversubscribe -np "$np" "$bin" train $(args "$np") --output_dir "$out" "$@" >"$out.log" 2>&1
  fi
}
must() { run "$@" || { err "run $2 exited $?:"; tail -3 "$2.log"; }; }
same_run() { # a b: bitwise losses, eval losses, adapter
  if ! cmp -s <(grep -o '"loss":[^,]*\|"eval_loss":[^,]*' "$1/metrics.jsonl") \
              <(grep -o '"loss":[^,]*\|"eval_loss":[^,]*' "$2/metrics.jsonl"); then
    err "$2: losses differ from $1"
  elif ! cmp -s "$1/adapter_model.safetensors" "$2/adapter_model.safetensors"; then
    err "$2: adapter differs from $1"
  else
    echo "$2: losses, eval losses and adapter bitwise equal to $1"
  fi
}

# Exact resume on 1 and 2 ranks.
for np in 1 2; do
  must $np "$tmp/full$np" --save_steps 4
  LT_FAULT_CHECKPOINT=after_save:4 run $np "$tmp/res$np" --save_steps 4 && err "np $np: the fault hook did not stop the run"
  [[ -f $tmp/res$np/checkpoint-4.h5 && ! -f $tmp/res$np/adapter_model.safetensors ]] || err "np $np: no interrupted state"
  must $np "$tmp/res$np" --save_steps 4 --resume_from_checkpoint latest
  grep -q "resuming from .*checkpoint-4.h5 at step 4" "$tmp/res$np.log" || err "np $np: did not resume at step 4"
  same_run "$tmp/full$np" "$tmp/res$np"
done

# Killed after the last step's checkpoint, before the final evaluation and
# adapter: resuming runs no step and finishes the run as it would have.
LT_FAULT_CHECKPOINT=after_save:8 run 1 "$tmp/last" --save_steps 4 && err "last step: the fault hook did not stop the run"
[[ -f $tmp/last/checkpoint-8.h5 && ! -f $tmp/last/adapter_model.safetensors ]] || err "last step: no interrupted state"
must 1 "$tmp/last" --save_steps 4 --resume_from_checkpoint latest
same_run "$tmp/full1" "$tmp/last"

# The 2-rank checkpoint on 1 and on 4 ranks.
for np in 1 4; do
  must $np "$tmp/from2on$np" --resume_from_checkpoint "$tmp/res2/checkpoint-4.h5"
  grep -q "written by 2 rank(s), now $np" "$tmp/from2on$np.log" || err "2 -> $np: resume line missing"
done
"$py" - "$tmp" <<'PY' || fail=1
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from safetensors_f32 import read  # noqa: E402
tmp = sys.argv[1]
def losses(d):
    return {r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(tmp, d, "metrics.jsonl"))) if "loss" in r}
def adapter(d):
    return read(os.path.join(tmp, d, "adapter_model.safetensors"))[0]
ref, ra = losses("full2"), adapter("full2")
bad = 0
for np_ in (1, 4):
    got, ga = losses("from2on%d" % np_), adapter("from2on%d" % np_)
    worst = max(abs(got[s] - ref[s]) / abs(ref[s]) for s in got)
    l2 = float(np.sqrt(sum(((ga[k] - ra[k]).astype(np.float64) ** 2).sum() for k in ra) /
                       sum((ra[k].astype(np.float64) ** 2).sum() for k in ra)))
    ok = sorted(got) == [5, 6, 7, 8] and worst <= 1e-6 and l2 <= 1e-5
    print("2 ranks -> %d: steps %s, worst loss rel diff %.2e, adapter %.2e (L2) from the 2-rank run%s"
          % (np_, sorted(got), worst, l2, "" if ok else "  FAIL"))
    bad |= not ok
sys.exit(1 if bad else 0)
PY

# Killed between writing and renaming, and before the pointer moves.
# The killed save's temporary is removed by the next completed save.
for where in before_rename before_pointer; do
  LT_FAULT_CHECKPOINT=$where:8 run 1 "$tmp/$where" --save_steps 4 && err "$where: not killed"
  left=$(ls "$tmp/$where" | grep -c '\.tmp\.')
  [[ $where == before_rename && $left != 1 ]] && err "$where: expected the killed save's temporary, found $left"
  must 1 "$tmp/$where" --save_steps 4 --max_steps 12 --resume_from_checkpoint latest
  grep -q "resuming from .*checkpoint-4.h5 at step 4" "$tmp/$where.log" ||
    { err "$where: did not resume from checkpoint 4:"; tail -3 "$tmp/$where.log"; }
  ls "$tmp/$where" | grep -q '\.tmp\.' && err "$where: temporaries left after the resumed run's saves"
  echo "killed $where at step 8: resumed from step 4; $left temporary left by the kill, removed by the next save"
done

# SIGKILL at random moments of a run saving every step.
must 1 "$tmp/every" --save_steps 1 --save_total_limit 2 --max_steps 80
kills=0 resumes=0 mid_save=0
for i in $(seq 1 20); do
  resume=()
  [[ -f $tmp/rand/latest_checkpoint ]] && resume=(--resume_from_checkpoint latest) && resumes=$((resumes + 1))
  before=$(cat "$tmp/rand/latest_checkpoint" 2>/dev/null)
  "$bin" train $(args 1) --output_dir "$tmp/rand" --save_steps 1 --save_total_limit 2 --max_steps 80 \
    "${resume[@]}" >"$tmp/rand.log" 2>&1 &
  pid=$!
  # Kill once this run has saved a checkpoint of its own (so that a loaded
  # machine's slow start cannot put every kill before the first save), at
  # a random moment of the steps and saves that follow.
  for _ in $(seq 1 $((600 * ts))); do
    [[ $(cat "$tmp/rand/latest_checkpoint" 2>/dev/null) != "$before" ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  sleep "0.$((RANDOM % 6))$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null && kills=$((kills + 1))
  wait $pid 2>/dev/null
  rc=$?
  if [[ $rc != 137 && $rc != 0 ]]; then err "random kill $i: exit $rc:"; tail -3 "$tmp/rand.log"; break; fi
  ls "$tmp/rand" 2>/dev/null | grep -q '\.tmp\.' && mid_save=$((mid_save + 1))
  [[ $rc == 0 ]] && break
done
resume=()
[[ -f $tmp/rand/latest_checkpoint ]] && resume=(--resume_from_checkpoint latest)
[[ -f $tmp/rand/adapter_model.safetensors ]] ||
  timeout $((300 * ts)) "$bin" train $(args 1) --output_dir "$tmp/rand" --save_steps 1 --save_total_limit 2 \
    --max_steps 80 "${resume[@]}" >"$tmp/rand.log" 2>&1 || { err "final run:"; tail -3 "$tmp/rand.log"; }
ls "$tmp/rand"/checkpoint-*.h5 | wc -l | grep -qx 2 || err "save_total_limit 2 kept $(ls "$tmp/rand"/checkpoint-*.h5 | wc -l) checkpoints"
# A test whose kills all came before the first checkpoint would prove nothing.
[[ $resumes -ge 3 ]] || err "only $resumes of $kills random kills came after a checkpoint existed"
ls "$tmp/rand" | grep -q '\.tmp\.' && err "random kills: temporaries left after the final run"
if cmp -s "$tmp/every/adapter_model.safetensors" "$tmp/rand/adapter_model.safetensors"; then
  echo "$kills random SIGKILLs ($mid_save left a save's temporary), $resumes resumes from latest: final adapter bitwise the uninterrupted run's"
else
  err "after $kills random kills and resumes the adapter differs from the uninterrupted run's"
fi

# Damaged checkpoints.
ck=$tmp/full1/checkpoint-8.h5
expect() { # name, pattern, command...
  local name=$1 pat=$2
  shift 2
  "$@" >"$tmp/e.out" 2>"$tmp/e.err"
  local rc=$?
  if [[ $rc == 0 ]]; then err "$name: exit 0"
  elif ! grep -q -- "$pat" "$tmp/e.err"; then err "$name: stderr lacks \"$pat\":"; cat "$tmp/e.err"
  elif [[ $(wc -l <"$tmp/e.err") != 1 ]]; then err "$name: not one line:"; cat "$tmp/e.err"
  else echo "$name: $(cat "$tmp/e.err")"; fi
}
head -c 20000 "$ck" >"$tmp/trunc.h5"
expect "truncated" "trunc.h5: not a readable HDF5 file" "$bin" inspect "$tmp/trunc.h5"
"$py" - "$ck" "$tmp/flip.h5" "$tmp/v2.h5" <<'PY' || fail=1
import shutil, sys
import h5py
src, flip, v2 = sys.argv[1:4]
shutil.copy(src, flip)
with h5py.File(flip, "r") as f:
    d = f["optimizer/exp_avg_sq"]
    name = sorted(d)[3]
    off = d[name].id.get_offset()
with open(flip, "r+b") as f:
    f.seek(off + 5)
    b = f.read(1)
    f.seek(off + 5)
    f.write(bytes([b[0] ^ 0x10]))
shutil.copy(src, v2)
with h5py.File(v2, "r+") as f:
    f.attrs["format_version"] = 3
PY
expect "flipped byte" "fails its checksum" "$bin" inspect "$tmp/flip.h5"
expect "wrong version" "format_version 3, this loratrain reads version 2" "$bin" inspect "$tmp/v2.h5"
# Edits with h5py, as the audit made them: every attribute and dataset is
# in the manifest, so each is refused by name (inspect and resume alike);
# resealed (the manifest recomputed to match the edit), a missing or
# transposed tensor is still refused by the layout rules.
"$py" - "$ck" "$tmp/ed" "$root/tests/ref" <<'PY' || fail=1
import shutil, sys
import h5py, numpy as np
sys.path.insert(0, sys.argv[3])
import ckpt_manifest
src, out = sys.argv[1], sys.argv[2]
qa = "adapter/base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
def edit(name, fn, reseal=False):
    shutil.copy(src, out + "-" + name + ".h5")
    with h5py.File(out + "-" + name + ".h5", "r+") as f:
        fn(f)
    if reseal:
        ckpt_manifest.reseal(out + "-" + name + ".h5")
def setattr_(k, v):
    return lambda f: f.attrs.__setitem__(k, v)
def transpose(f):
    a = f[qa][()]
    del f[qa]
    f[qa] = a.T.copy()
edit("step", setattr_("global_step", np.int64(0)))
edit("epoch", setattr_("data_epoch", np.uint64(3)))
edit("v1", setattr_("format_version", np.int64(1)))
edit("extra", setattr_("note", b"hello"))
edit("missing", lambda f: f.__delitem__(qa))
edit("missing-sealed", lambda f: f.__delitem__(qa), reseal=True)
edit("transposed", transpose)
edit("transposed-sealed", transpose, reseal=True)
# Strings as h5py writes them: fixed-length null-padded, and variable-length.
def strings(f):
    p = f.attrs["base_model_path"]
    f.attrs.create("base_model_path", np.bytes_(p), dtype=h5py.string_dtype("ascii", len(p)))
    f.attrs["run_config"] = f.attrs["run_config"].decode()
edit("strings", strings)
with h5py.File(out + "-strings.h5", "r") as f:
    t = f.attrs.get_id("base_model_path").get_type()
    assert t.get_strpad() == h5py.h5t.STR_NULLPAD and not t.is_variable_str(), "not a null-padded string"
PY
expect "edited global_step" "attribute global_step of / differs from the value the checkpoint was written with" \
  "$bin" inspect "$tmp/ed-step.h5"
expect "edited data_epoch on resume" "attribute data_epoch of / differs" "$bin" train $(args 1) \
  --output_dir "$tmp/edres" --max_steps 12 --resume_from_checkpoint "$tmp/ed-epoch.h5"
expect "format_version 1" "format_version 1, written by an older loratrain" "$bin" inspect "$tmp/ed-v1.h5"
expect "added attribute" "attribute note of / is not in the manifest" "$bin" inspect "$tmp/ed-extra.h5"
expect "missing tensor" "layers.0.self_attn.q_proj.lora_A.weight is missing (the manifest lists it)" \
  "$bin" inspect "$tmp/ed-missing.h5"
expect "missing tensor, resealed" "lacks the q_proj lora_A weight of layer 0" "$bin" inspect "$tmp/ed-missing-sealed.h5"
expect "transposed tensor" "q_proj.lora_A.weight is not the float32 array of the shape the manifest records" \
  "$bin" inspect "$tmp/ed-transposed.h5"
expect "transposed tensor, resealed" "is 64 x 8: it has not lora_r rows (lora_A is \[r, in_features\]: transposed?)" \
  "$bin" inspect "$tmp/ed-transposed-sealed.h5"
expect "transposed tensor, resealed, on resume" "q_proj.lora_A.weight is 64 x 8, this run expects 8 x 64" \
  "$bin" train $(args 1) --output_dir "$tmp/trres" --max_steps 12 --resume_from_checkpoint "$tmp/ed-transposed-sealed.h5"
if "$bin" inspect "$tmp/ed-strings.h5" >"$tmp/str.out" 2>&1 &&
   grep -q "base model models/stories260K/stories260K.bin (" "$tmp/str.out"; then
  echo "strings rewritten by h5py (null-padded, variable-length): inspect verifies, $(grep -o 'base model [^ ]*' "$tmp/str.out")"
else
  err "strings rewritten by h5py: $(cat "$tmp/str.out")"
fi
expect "another r" "holds LoRA r 8" "$bin" train $(args 1) --output_dir "$tmp/r4" --r 4 --resume_from_checkpoint "$ck"
expect "other target modules" "this run has r 8, .* on q_proj,v_proj" "$bin" train $(args 1) --output_dir "$tmp/qv" \
  --target_modules q_proj,v_proj --resume_from_checkpoint "$ck"
expect "flipped byte on resume" "fails its checksum" "$bin" train $(args 1) --output_dir "$tmp/flipres" \
  --max_steps 12 --resume_from_checkpoint "$tmp/flip.h5"
cp "$tmp/flip.h5" "$tmp/full1/checkpoint-8.h5"
"$bin" train $(args 1) --output_dir "$tmp/full1" --max_steps 12 --resume_from_checkpoint latest \
  >"$tmp/fb.out" 2>"$tmp/fb.err" || err "latest fallback: exit $?: $(cat "$tmp/fb.err")"
grep -q "checkpoint-8.h5, which does not verify" "$tmp/fb.err" && grep -q "resuming from .*checkpoint-4.h5" "$tmp/fb.out" &&
  echo "latest with a damaged newest checkpoint: $(head -1 "$tmp/fb.err")" || err "latest did not fall back to checkpoint-4"
# A checkpoint that cannot be put in place (its name is taken by a directory).
mkdir -p "$tmp/blocked/checkpoint-8.h5/x"
"$bin" train $(args 1) --output_dir "$tmp/blocked" --save_steps 4 >"$tmp/bl.out" 2>"$tmp/bl.err"
rc=$?
if [[ $rc == 0 ]] || ! grep -q "cannot rename into place" "$tmp/bl.err" || ! "$bin" inspect "$tmp/blocked/checkpoint-4.h5" >/dev/null; then
  err "blocked save: exit $rc, $(cat "$tmp/bl.err")"
else
  echo "blocked save: exit $rc, $(cat "$tmp/bl.err"); checkpoint-4 still verifies"
fi

# A disk that fills mid-run (an 8 MiB tmpfs, room for the whole run when
# it starts, filled from here once checkpoint-4 is written, leaving 64 KiB:
# the metrics lines fit, checkpoint-8 does not). LT_FAULT_SLOW (a test
# hook) makes each step last 0.5 s, time to fill it before step 8.
if mkdir -p "$tmp/full" && mount -t tmpfs -o size=8m tmpfs "$tmp/full" 2>/dev/null; then
  LT_FAULT_SLOW=step:0.5 "$bin" train $(args 1) --output_dir "$tmp/full/run" --save_steps 4 --max_steps 12 \
    >"$tmp/df.out" 2>"$tmp/df.err" &
  job=$!
  fill_after_checkpoint "$tmp/full/run" "$tmp/full" $job || err "disk full: cannot fill the tmpfs"
  wait $job
  rc=$?
  if [[ $rc != 1 ]] || ! grep -q "No space left on device" "$tmp/df.err" || [[ $(wc -l <"$tmp/df.err") != 1 ]] ||
     ! "$bin" inspect "$tmp/full/run/checkpoint-4.h5" >/dev/null || ls "$tmp/full/run" | grep -q tmp; then
    err "disk full: exit $rc, $(cat "$tmp/df.err"), files: $(ls "$tmp/full/run" | tr '\n' ' ')"
  else
    echo "disk full: exit $rc, $(cat "$tmp/df.err"); checkpoint-4 still verifies, no temporary left"
  fi
  umount "$tmp/full"
else
  echo "disk full: not run (this machine cannot mount a tmpfs)"
fi

# The layout, through h5py.
"$py" - "$tmp/full2/checkpoint-8.h5" "$root/tests/ref" <<'PY' || fail=1
import sys
import h5py, numpy as np
sys.path.insert(0, sys.argv[2])
import ckpt_manifest
f = h5py.File(sys.argv[1], "r")
bad = ckpt_manifest.problems(sys.argv[1])
want = {"format": b"loratrain-checkpoint", "format_version": 2, "global_step": 8, "world_size": 2, "lora_r": 8,
        "tensor_row_order": b"huggingface", "finetuning_type": b"lora"}
for k, v in want.items():
    got = f.attrs.get(k)
    if got != v:
        bad.append("attribute %s = %r, expected %r" % (k, got, v))
for k in ("tokens_seen", "data_epoch", "data_position", "seed", "base_model_path", "base_model_bytes",
          "base_model_fingerprint", "lora_alpha", "use_rslora", "target_modules", "run_config"):
    if k not in f.attrs:
        bad.append("attribute %s missing" % k)
names = sorted(f["adapter"])
if len(names) != 70 or not all(n.startswith("base_model.model.model.layers.") for n in names):
    bad.append("adapter tensors: %d, e.g. %s" % (len(names), names[:2]))
for g in ("adapter", "optimizer/exp_avg", "optimizer/exp_avg_sq"):
    if sorted(f[g]) != names:
        bad.append("%s does not hold the adapter's tensor names" % g)
    for n in names:
        d = f[g][n]
        if d.dtype != np.float32 or d.ndim != 2:
            bad.append("%s/%s: dtype %s, shape %s" % (g, n, d.dtype, d.shape))
            break
q = f["adapter/base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
if q.shape != (8, 64):
    bad.append("q_proj lora_A is %s, expected (8, 64)" % (q.shape,))
if f["optimizer"].attrs["step"] != 8 or "lr_scheduler_type" not in f["scheduler"].attrs:
    bad.append("optimizer step or scheduler attributes wrong")
for b in bad:
    print("FAIL h5py:", b)
if not bad:
    print("h5py: documented attributes, 3 x 70 float32 tensors under PEFT names, every attribute and "
          "tensor against the manifest (xxhash recomputed)")
sys.exit(1 if bad else 0)
PY

# inspect --tensors lists what h5py finds under /adapter, name and shape.
"$bin" inspect --tensors "$tmp/full2/checkpoint-8.h5" >"$tmp/it.out" 2>&1 || err "inspect --tensors: $(tail -1 "$tmp/it.out")"
"$py" - "$tmp/full2/checkpoint-8.h5" "$tmp/it.out" <<'PY' || fail=1
import re, sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    want = sorted((n, list(d.shape)) for n, d in f["adapter"].items())
got = sorted((m.group(1), [int(m.group(2)), int(m.group(3))])
             for m in re.finditer(r"^    (\S+) \[(\d+), (\d+)\]$", open(sys.argv[2]).read(), re.M))
if got != want or not got:
    print("FAIL inspect --tensors lists %d tensors, h5py finds %d under /adapter (first difference: %s)"
          % (len(got), len(want), next((a, b) for a, b in zip(got + [None] * len(want), want) if a != b)))
    sys.exit(1)
print("inspect --tensors: the %d /adapter tensors h5py finds, with their shapes" % len(got))
PY
exit $fail
