#!/bin/bash
# Byte flips across a whole checkpoint (tests/unit/test_ckpt_fuzz.c): every
# LT_CKPT_FUZZ_STRIDE-th byte outside the tensors' raw data (default 3:
# every attribute's value gets flips; the sanitizer build takes a sparser
# stride) and 8 bytes of every tensor, one bit each. Each flip is refused
# with one clear line or leaves what resume loads bit for bit the same.
# Then, as a user would: a sample of the accepted flips resumed with
# `--resume_from_checkpoint latest` finish bitwise the uninterrupted run,
# and a sample of the refused ones end with one line and exit 1.
# Usage: checkpoint_fuzz.sh LORATRAIN TEST_CKPT_FUZZ REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin fuzz root -- "$@"
stride=${LT_CKPT_FUZZ_STRIDE:-3}
# q_proj and k_proj: their lora_B rows are the ones stored permuted.
lora=(--r 2 --lora_alpha 4 --target_modules q_proj,k_proj)
args=(--model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
  --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --warmup_steps 1 --max_steps 4
  --per_device_train_batch_size 2 --lora_dropout 0.1 --validation_split_percentage 0 --threads 1
  --disable_tqdm --logging_steps 1 "${lora[@]}")
"$bin" train "${args[@]}" --save_steps 2 --output_dir "$tmp/ref" >"$tmp/ref.log" 2>&1 ||
  { err "reference run:"; tail -3 "$tmp/ref.log"; exit 1; }
ck=$tmp/ref/checkpoint-2.h5

"$fuzz" models/stories260K/stories260K.bin "$ck" "$tmp/work.h5" 2 4 q_proj,k_proj "$stride" 8 \
  >"$tmp/fuzz.out" 2>"$tmp/fuzz.err"
rc=$?
grep -v '^accepted:' "$tmp/fuzz.out"
head -20 "$tmp/fuzz.err"
[[ $rc == 0 ]] || err "test_ckpt_fuzz exited $rc"

# Resumes from flipped files, as a job script would.
flip_at() { # offset, file
  "$py" -c "
import sys
o = int(sys.argv[1]); b = bytearray(open(sys.argv[2], 'rb').read()); b[o] ^= 1 << (o % 8)
open(sys.argv[3], 'wb').write(b)" "$1" "$ck" "$2"
}
read -r -a accepted <<<"$(grep '^accepted:' "$tmp/fuzz.out" | cut -d: -f2)"
losses() { grep -o '"step":[0-9]*,"epoch":[^,]*,"loss":[^,]*' "$1/metrics.jsonl"; }
# The unflipped checkpoint resumed the same way: the run every accepted
# flip must reproduce (its adapter is the uninterrupted run's).
mkdir -p "$tmp/base" && cp "$ck" "$tmp/base/" && echo checkpoint-2.h5 >"$tmp/base/latest_checkpoint"
"$bin" train "${args[@]}" --save_steps 2 --output_dir "$tmp/base" --resume_from_checkpoint latest >"$tmp/base.log" 2>&1 ||
  err "resuming the unflipped checkpoint: $(tail -1 "$tmp/base.log")"
cmp -s "$tmp/ref/adapter_model.safetensors" "$tmp/base/adapter_model.safetensors" ||
  err "the unflipped checkpoint resumed does not finish as the uninterrupted run"
picked=0
for i in 0 $(( ${#accepted[@]} / 2 )) $(( ${#accepted[@]} - 1 )); do
  (( ${#accepted[@]} > 0 )) || break
  o=${accepted[$i]}
  d=$tmp/acc-$o
  mkdir -p "$d" && flip_at "$o" "$d/checkpoint-2.h5" && echo checkpoint-2.h5 >"$d/latest_checkpoint"
  "$bin" train "${args[@]}" --save_steps 2 --output_dir "$d" --resume_from_checkpoint latest >"$d.log" 2>&1 ||
    { err "accepted flip at $o: resume exited $?: $(tail -1 "$d.log")"; continue; }
  if cmp -s "$tmp/base/adapter_model.safetensors" "$d/adapter_model.safetensors" &&
     cmp -s <(losses "$tmp/base") <(losses "$d") && [[ $(losses "$d" | wc -l) == 2 ]]; then
    picked=$((picked + 1))
  else
    err "accepted flip at byte $o: the resumed run differs from the uninterrupted one"
  fi
done
echo "accepted flips resumed: $picked of them finished bitwise the unflipped checkpoint's resume (adapter and losses),"\
  "which is the uninterrupted run's adapter"
# Refused flips: the first metadata byte (the superblock signature), one in
# the middle of the file, and the last byte.
size=$(stat -c %s "$ck")
for o in 0 $((size / 2)) $((size - 1)); do
  d=$tmp/ref-$o
  mkdir -p "$d" && flip_at "$o" "$d/checkpoint-2.h5"
  "$bin" train "${args[@]}" --output_dir "$d" --resume_from_checkpoint "$d/checkpoint-2.h5" >"$d.out" 2>"$d.err"
  rc=$?
  if [[ " ${accepted[*]} " == *" $o "* ]]; then
    [[ $rc == 0 ]] || err "byte $o: accepted by the fuzz test, refused on resume: $(cat "$d.err")"
  elif [[ $rc == 0 || $(wc -l <"$d.err") != 1 ]] || ! grep -q "checkpoint-2.h5: " "$d.err"; then
    err "flipped byte $o: exit $rc, stderr: $(cat "$d.err")"
  else
    echo "flipped byte $o on resume: $(cat "$d.err")"
  fi
done
exit $fail
