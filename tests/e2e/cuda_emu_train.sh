#!/bin/bash
# QLoRA training on the CUDA backend (the emulated CUDA: the command built
# against tests/cuda_emu) against the CPU backend, on the bundled model:
# NF4 with double quantization, adapters on every linear with dropout, 12
# steps with a checkpoint every 6 and an evaluation at the end.
#   - the curve: every step's loss and gradient norm, and the final
#     eval_loss, within CURVE_TOL relative of the CPU's; the learning rate
#     the same bits (both are one host computation);
#   - memory: the CUDA run's memory.json counts on the device what the
#     CPU's counts on the host, category by category (the model allocates
#     the same buffers on either backend), the workspace aside (the kernels'
#     scratch is the backend's own);
#   - files: the CPU run's adapter merged into the base on CUDA gives the
#     bytes the CPU's merge writes (config.json, model.safetensors: the
#     device's weights come back whole; on the emulation cuBLAS is
#     OpenBLAS's sgemm, so the sums are the same too), and generation with
#     the adapter (temperature 0.8, seed 5, 24 tokens) the same text;
#   - determinism: the CUDA run again gives the same adapter, bit for bit;
#     resumed from its own step-6 checkpoint it gives that adapter too;
#   - across backends: the CPU's step-6 checkpoint resumed on CUDA, and the
#     CUDA's resumed on the CPU, finish with the losses of steps 7-12 within
#     CURVE_TOL of the uninterrupted run on the resuming backend (so the
#     checkpoint carried the adapters, the moments and the data cursor), and
#     the checkpoints written by each backend pass the other's verification.
#   - two ranks on CUDA with this (not CUDA-aware) MPI: refused on every
#     rank with one line (exit 2), output_dir not made, until NCCL.
# CURVE_TOL: the backends round differently (cuBLAS's GEMM blocking, the
# kernels' reduction trees) by ~1e-7 relative per op, and Adam carries it
# on: at most 5.1e-7 relative over these 12 steps (AMD Zen 5). 1e-5 leaves
# room and fails a wrong kernel: dropout's mask read one element off in
# the RNG's stream moves step 2's loss by 5.5e-3 (step 1's not: B is 0).
# SIZE small (the sanitizer build, whose emulated CUDA switches fibers by
# swapcontext): the same checks over 4 steps of 1 x 32 tokens, a checkpoint
# at step 2.
# Usage: cuda_emu_train.sh LORATRAIN REPO_ROOT LORATRAIN_CUDA_EMU [SIZE]
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root emu size? -- "$@"
[[ $emu == /* ]] || emu=$PWD/$emu
CURVE_TOL=1e-5
if [[ $size == small ]]; then
  S=4 seq=32 batch=1
else
  S=12 seq=64 batch=2
fi
H=$((S / 2))
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length $seq --per_device_train_batch_size $batch
      --load_in_4bit --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant --r 8 --lora_alpha 16
      --lora_dropout 0.1 --target_modules all-linear --learning_rate 3e-3 --weight_decay 0.1
      --validation_split_percentage 2 --max_eval_samples 4 --eval_steps $S --max_steps $S
      --save_steps $H --logging_steps 1 --threads 1 --disable_tqdm --seed 11)
run() { # loratrain device dir extra...
  local b=$1 dev=$2 d=$3
  shift 3
  timeout $((600 * ts)) "$b" "${args[@]}" --device "$dev" --output_dir "$d" "$@" >>"$d.log" 2>&1 ||
    err "$dev run into ${d##*/} failed: $(tail -1 "$d.log")"
}
# compare A B FIRST_STEP: each step's loss and grad_norm, the lr's bits, eval_loss
compare() {
  "$py" - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" "$CURVE_TOL" "$S" <<'PY' || fail=1
import json, sys
a, b, first, tol, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
def rows(p):
    out = {}
    for line in open(p):
        r = json.loads(line)
        out.setdefault(r["step"], {}).update(r)
    return out
ra, rb = rows(a), rows(b)
bad = 0
worst = 0.0
for s in range(first, last + 1):
    x, y = ra.get(s), rb.get(s)
    if not x or not y or "loss" not in x or "loss" not in y:
        print(f"FAIL step {s}: missing from {a if not x else b}"); bad += 1; continue
    for k in ("loss", "grad_norm"):
        e = abs(x[k] - y[k]) / abs(y[k])
        worst = max(worst, e)
        if e > tol:
            print(f"FAIL step {s}: {k} {x[k]!r} vs {y[k]!r} (relative {e:.3g} > {tol})"); bad += 1
    if x["learning_rate"] != y["learning_rate"]:
        print(f"FAIL step {s}: learning_rate {x['learning_rate']!r} vs {y['learning_rate']!r}"); bad += 1
ea, eb = ra.get(last, {}).get("eval_loss"), rb.get(last, {}).get("eval_loss")
if ea is None or eb is None:
    print(f"FAIL no eval_loss at step {last}"); bad += 1
else:
    e = abs(ea - eb) / abs(eb)
    worst = max(worst, e)
    if e > tol:
        print(f"FAIL eval_loss {ea!r} vs {eb!r} (relative {e:.3g})"); bad += 1
print(f"{a.split('/')[-2]} against {b.split('/')[-2]}, steps {first}-{last}: worst relative difference {worst:.3g} (bound {tol})")
sys.exit(1 if bad else 0)
PY
}
same() { cmp -s "$1/adapter_model.safetensors" "$2/adapter_model.safetensors" || err "$3: adapter_model.safetensors differs"; }

run "$bin" cpu "$tmp/cpu"
run "$emu" cuda "$tmp/cuda"
grep -q 'compute: cuda backend, emulated' "$tmp/cuda.log" || err "the CUDA run did not say it computed on the emulated CUDA backend"
((fail)) && exit 1
compare "$tmp/cuda" "$tmp/cpu" 1
"$py" - "$tmp/cuda/memory.json" "$tmp/cpu/memory.json" <<'PY' || fail=1
import json, sys
g, c = (json.load(open(p)) for p in sys.argv[1:3])
dev = g.get("device", {}).get("tracked")
if not dev:
    sys.exit("FAIL the CUDA run's memory.json has no device categories")
bad = 0
for k in ("base_weights", "quantized_base", "lora_params", "gradients", "optimizer_state", "activations"):
    d, h = dev[k]["peak_bytes"], c["tracked"][k]["peak_bytes"]
    if d != h or d == 0:
        print(f"FAIL {k}: {d} bytes on the device, {h} on the CPU's host"); bad += 1
if g["tracked"]["activations"]["peak_bytes"]:
    print("FAIL the CUDA run holds activations in host memory"); bad += 1
print(f"device memory: the model's categories equal the CPU's ({dev['activations']['peak_bytes']} bytes of activations)")
sys.exit(1 if bad else 0)
PY

# Two ranks: the collectives would be handed device memory.
timeout $((300 * ts)) mpirun -np 2 --oversubscribe "$emu" "${args[@]}" --device cuda --output_dir "$tmp/np2" \
  >"$tmp/np2.log" 2>&1
rc=$?
((rc == 2)) || err "two ranks on CUDA: exit $rc, expected 2"
[[ $(grep -c "error: device = cuda on 2 ranks: the mpi communicator here moves host memory only" "$tmp/np2.log") == 2 ]] ||
  err "two ranks on CUDA: not one refusal per rank: $(grep -m2 error "$tmp/np2.log")"
[[ ! -e $tmp/np2 ]] || err "two ranks on CUDA: output_dir made before the refusal"

# Files and text from the same state.
model=(--model models/stories260K/stories260K.bin)
"$bin" merge "${model[@]}" --adapter "$tmp/cpu" --output_dir "$tmp/merged_cpu" --device cpu >/dev/null 2>&1 &&
  "$emu" merge "${model[@]}" --adapter "$tmp/cpu" --output_dir "$tmp/merged_cuda" --device cuda \
    >"$tmp/merge.log" 2>&1 || err "merge failed: $(tail -1 "$tmp/merge.log")"
for f in config.json model.safetensors; do
  cmp -s "$tmp/merged_cpu/$f" "$tmp/merged_cuda/$f" || err "merge on CUDA: $f differs from the CPU's"
done
gen=(generate "${model[@]}" --tokenizer models/stories260K/tok512.bin --load_in_4bit --adapter "$tmp/cpu"
     --prompt "Once upon" --temperature 0.8 --seed 5 --max_new_tokens 24)
"$bin" "${gen[@]}" --device cpu >"$tmp/gen_cpu.txt" 2>/dev/null &&
  "$emu" "${gen[@]}" --device cuda >"$tmp/gen_cuda.txt" 2>"$tmp/gen.log" ||
  err "generate failed: $(tail -1 "$tmp/gen.log")"
[[ -s $tmp/gen_cpu.txt ]] && cmp -s "$tmp/gen_cpu.txt" "$tmp/gen_cuda.txt" ||
  err "generate on CUDA: '$(head -c 200 "$tmp/gen_cuda.txt")' against the CPU's '$(head -c 200 "$tmp/gen_cpu.txt")'"

# Determinism: again, and resumed from its own checkpoint.
run "$emu" cuda "$tmp/cuda2"
same "$tmp/cuda2" "$tmp/cuda" "the CUDA run repeated"
mkdir -p "$tmp/cuda_resumed"
cp "$tmp/cuda/checkpoint-$H.h5" "$tmp/cuda_resumed/" || err "the CUDA run left no checkpoint-$H.h5"
run "$emu" cuda "$tmp/cuda_resumed" --resume_from_checkpoint latest
grep -q "^resuming from .*checkpoint-$H.h5 at step $H" "$tmp/cuda_resumed.log" || err "the CUDA run did not resume at step $H"
same "$tmp/cuda_resumed" "$tmp/cuda" "the CUDA run resumed from its step-$H checkpoint"

# Across backends, both ways.
for way in "cpu cuda $emu" "cuda cpu $bin"; do
  read -r from to b <<<"$way"
  d=$tmp/${from}_to_$to
  mkdir -p "$d"
  cp "$tmp/$from/checkpoint-$H.h5" "$d/" || err "the $from run left no checkpoint-$H.h5"
  run "$b" "$to" "$d" --resume_from_checkpoint latest
  grep -q "^resuming from .*checkpoint-$H.h5 at step $H" "$d.log" || err "$from -> $to: the log does not say it resumed at step $H"
  compare "$d" "$tmp/$to" $((H + 1))
  "$b" inspect "$tmp/$from/checkpoint-$H.h5" >"$d.inspect" 2>&1 ||
    err "$to's inspect refuses $from's checkpoint: $(tail -1 "$d.inspect")"
done
exit $fail
