#!/bin/bash
# Hugging Face model directories: `loratrain convert` and --model DIR.
#
# load: convert the bundled llama2.c model to F32, F16 and BF16 directories;
#   make_hf_variants.py checks every tensor bitwise against its own reading
#   of the llama2.c file with transformers' q/k permutation and torch's
#   F16/BF16 rounding. test_hf_model then compares logits (2 x 48 tokens)
#   with the llama2.c model's: F32 within 1e-4 (measured 1.9e-5 with
#   logits up to 17: the rotate-half layout sums the rotary dimensions in
#   another order), F16 within 0.05 (measured 0.020), BF16 within 0.4
#   (measured 0.157, 8x F16's, as its 8-bit significand vs 11 predicts);
#   a 2-shard copy with model.safetensors.index.json and an F16/BF16 file
#   widened to F32 (by numpy, or by convert from the directory) give
#   bitwise the same logits. Greedy generation from the F32 and sharded
#   directories prints the .bin's text; info reads a directory. Each
#   malformed directory gives one error line naming the problem and a
#   non-zero exit, from generate, train and (config problems) info.
# train: 5 steps of LoRA (all-linear) from the F32 directory against the
#   .bin: losses within 1e-6 relative (measured 2.8e-8; not bitwise, as
#   the logits are not), adapters (saved in the same HF row order) within
#   1e-4 relative L2 (measured 5.4e-6); QLoRA NF4 + double quant likewise
#   (measured 1e-7 and 5.3e-6), also on 2 ranks, and with shard_base on 2
#   ranks from the 2-shard directory bitwise the unsharded 2-rank run, each
#   rank reading only the tensors its shard keeps (the same bytes as from
#   the .bin, both being F32);
#   resumed from a checkpoint of a directory run, bitwise the uninterrupted
#   run; resuming it on another directory is refused.
# Usage: hf_load.sh LORATRAIN TEST_HF_MODEL REPO_ROOT load|train
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin tester root mode -- "$@"
model=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
variants=tests/ref/make_hf_variants.py
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

for d in f32 f16 bf16; do
  if ! "$bin" convert --model "$model" --output_dir "$tmp/$d" --dtype "$d" >"$tmp/convert_$d.log" 2>&1; then
    echo "FAIL convert --dtype $d:"; cat "$tmp/convert_$d.log"; exit 1
  fi
done
"$py" $variants shard "$tmp/f32" "$tmp/f32_sharded" || { echo "FAIL make_hf_variants.py shard"; exit 1; }

if [[ $mode == load ]]; then
  "$py" $variants check "$model" "$tmp/f32" "$tmp/f16" "$tmp/bf16" 2>/dev/null || fail "converted files differ from the reference"
  "$py" $variants widen "$tmp/f16" "$tmp/f16_wide" && "$py" $variants widen "$tmp/bf16" "$tmp/bf16_wide" ||
    fail "make_hf_variants.py widen"
  "$tester" "$model" "$tmp/f32" 1e-4 "$tmp/f32_sharded" || fail "F32 logits"
  "$tester" "$model" "$tmp/f16" 0.05 "$tmp/f16_wide" || fail "F16 logits"
  "$tester" "$model" "$tmp/bf16" 0.4 "$tmp/bf16_wide" || fail "BF16 logits"
  # convert reads directories too: F16 back to F32 is exact and needs no row permutation.
  "$bin" convert --model "$tmp/f16" --output_dir "$tmp/f16_to_f32" --dtype f32 >/dev/null || fail "convert a directory"
  "$tester" "$model" "$tmp/f16" 0.05 "$tmp/f16_to_f32" || fail "F16 directory converted to F32"
  gen() { "$bin" generate --model "$1" --tokenizer $tok --temperature 0 --max_new_tokens 200 \
            --prompt "Once upon a time" --threads 1 2>/dev/null; }
  gen "$model" >"$tmp/gen_bin.txt" || fail "generate from the .bin"
  [[ $(wc -c <"$tmp/gen_bin.txt") -gt 200 ]] || fail "generate from the .bin printed too little"
  for d in f32 f32_sharded; do
    gen "$tmp/$d" >"$tmp/gen_$d.txt" || fail "generate --model $d"
    cmp -s "$tmp/gen_bin.txt" "$tmp/gen_$d.txt" || fail "greedy text from $d differs from the .bin's"
  done
  "$bin" info --model "$tmp/f32_sharded" >"$tmp/info.txt" 2>&1 || fail "info on a directory"
  grep -q "Hugging Face directory" "$tmp/info.txt" && grep -q "base parameters: 260,032" "$tmp/info.txt" ||
    { fail "info output:"; cat "$tmp/info.txt"; }

  "$py" $variants malformed "$tmp/f32" "$tmp/bad" >"$tmp/cases.tsv" || { echo "FAIL malformed variants"; exit 1; }
  n=0
  while IFS=$'\t' read -r name kind expect; do
    n=$((n + 1))
    cmds=(generate train)
    # info reads config.json only; what is wrong with the weights is the loaders' to find.
    [[ $kind == config ]] && cmds+=(info)
    for cmd in "${cmds[@]}"; do
      case $cmd in
        generate) args=(generate --model "$tmp/bad/$name" --tokenizer $tok --max_new_tokens 4) ;;
        info) args=(info --model "$tmp/bad/$name") ;;
        train) args=(train --model "$tmp/bad/$name" --tokenizer $tok --train_file data/tinyshakespeare/input.txt
                     --max_steps 1 --output_dir "$tmp/bad_out") ;;
      esac
      "$bin" "${args[@]}" >"$tmp/out.txt" 2>"$tmp/err.txt"
      rc=$?
      lines=$(grep -c . "$tmp/err.txt")
      if [[ $rc == 0 ]]; then fail "$name ($cmd): exit 0, expected an error"
      elif [[ $lines != 1 ]]; then fail "$name ($cmd): $lines error lines, expected 1:"; cat "$tmp/err.txt"
      elif ! grep -qF -- "$expect" "$tmp/err.txt"; then fail "$name ($cmd): message lacks \"$expect\":"; cat "$tmp/err.txt"
      fi
    done
    [[ $name == wrong_shape ]] && echo "e.g. $(cat "$tmp/err.txt")"
  done <"$tmp/cases.tsv"
  [[ $n -ge 21 ]] || fail "only $n malformed cases"
  echo "malformed directories: $n cases"
fi

if [[ $mode == train ]]; then
  run() { # name, ranks, model, extra args...
    local name=$1 np=$2 m=$3
    shift 3
    timeout $((300 * ts)) mpirun -np "$np" --oversubscribe "$bin" train --model "$m" --tokenizer $tok \
      --train_file data/tinyshakespeare/input.txt --max_seq_length 64 \
      --per_device_train_batch_size $((8 / np)) --max_steps 5 --warmup_steps 1 --learning_rate 3e-3 \
      --target_modules all-linear --logging_steps 1 --threads 1 --disable_tqdm \
      --output_dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 ||
      { echo "FAIL $name: exit $?:"; grep -v -e '^--' -e '^ *$' "$tmp/$name.log" | head -12; exit 1; }
  }
  q=(--load_in_4bit true --bnb_4bit_use_double_quant true)
  run bin 1 $model
  run hf 1 "$tmp/f32"
  run bin_q 1 $model "${q[@]}"
  run hf_q 1 "$tmp/f32" "${q[@]}"
  run hf_q2 2 "$tmp/f32" "${q[@]}"
  run hf_q2_sharded 2 "$tmp/f32_sharded" "${q[@]}" --shard_base true
  run bin_q2_sharded 2 $model "${q[@]}" --shard_base true
  run resume 1 "$tmp/f32" --save_steps 3
  run resumed 1 "$tmp/f32" --resume_from_checkpoint "$tmp/resume/checkpoint-3.h5"
  if "$bin" train --model "$tmp/bf16" --tokenizer $tok --train_file data/tinyshakespeare/input.txt \
       --max_seq_length 64 --per_device_train_batch_size 8 --max_steps 5 --warmup_steps 1 \
       --learning_rate 3e-3 --target_modules all-linear --output_dir "$tmp/wrong_base" \
       --resume_from_checkpoint "$tmp/resume/checkpoint-3.h5" >"$tmp/wrong_base.log" 2>&1; then
    fail "resuming a checkpoint of the F32 directory on the BF16 one was accepted"
  elif ! grep -q "was trained on base model $tmp/f32" "$tmp/wrong_base.log"; then
    fail "wrong base on resume:"; cat "$tmp/wrong_base.log"
  fi
  "$py" - "$tmp" <<'PY' || fails=$((fails + 1))
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/lib")
from safetensors_f32 import read  # noqa: E402
tmp = sys.argv[1]
bad = []
def losses(n):
    return [json.loads(l)["loss"] for l in open(os.path.join(tmp, n, "metrics.jsonl")) if '"loss"' in l]
def adapter(n):
    return read(os.path.join(tmp, n, "adapter_model.safetensors"))[0]
def compare(a, b, rel, bitwise=False):
    la, lb = losses(a), losses(b)
    if len(la) != 5 or len(la) != len(lb):
        bad.append(f"{a} vs {b}: {len(la)} and {len(lb)} losses, expected 5"); return
    r = max(abs(x - y) / abs(x) for x, y in zip(la, lb))
    aa, ab = adapter(a), adapter(b)
    l2 = max(np.linalg.norm(aa[t] - ab[t]) / max(np.linalg.norm(aa[t]), 1e-30) for t in aa)
    print(f"{a} vs {b}: losses max rel diff {r:.2g}, adapters max rel L2 diff {l2:.2g}")
    if bitwise and (la != lb or any(aa[t].tobytes() != ab[t].tobytes() for t in aa)):
        bad.append(f"{a} vs {b}: expected bitwise-equal losses and adapters")
    if r > rel: bad.append(f"{a} vs {b}: losses differ by {r:.3g} relative, bound {rel}")
    if l2 > 1e-4: bad.append(f"{a} vs {b}: adapters differ by {l2:.3g} relative L2, bound 1e-4")
compare("bin", "hf", 1e-6)
compare("bin_q", "hf_q", 1e-6)
compare("hf_q", "hf_q2", 1e-6)
compare("hf_q2", "hf_q2_sharded", 0, bitwise=True)
compare("bin_q2_sharded", "hf_q2_sharded", 1e-6)
compare("hf", "resume", 0, bitwise=True)
lh, lr = losses("hf"), losses("resumed")
ah, ar = adapter("hf"), adapter("resumed")
print(f"resumed at step 3 from a checkpoint of the directory: losses {lr}, uninterrupted {lh[3:]}")
if lr != lh[3:] or any(ah[t].tobytes() != ar[t].tobytes() for t in ah):
    bad.append("resumed run: losses or adapter differ from the uninterrupted run's")
# shard_base: each rank reads the fp32 tensors and only the linears its shard keeps.
def read(n):
    return [r["model_bytes_read"] for r in json.load(open(os.path.join(tmp, n, "memory.json")))["ranks"]]
whole, shards, of_bin = read("hf_q2"), read("hf_q2_sharded"), read("bin_q2_sharded")
print(f"model bytes read per rank: unsharded {whole}, sharded {shards} (from the .bin: {of_bin})")
if not all(s < w for s, w in zip(shards, whole)) or shards != of_bin:
    bad.append(f"sharded ranks read {shards} bytes of the directory, {of_bin} of the .bin, "
               f"unsharded {whole}: expected fewer, and as many as from the .bin")
for b in bad: print("FAIL", b)
sys.exit(1 if bad else 0)
PY
fi

if [[ $fails != 0 ]]; then echo "hf_load $mode: $fails failure(s)"; exit 1; fi
echo "hf_load $mode: all passed"
