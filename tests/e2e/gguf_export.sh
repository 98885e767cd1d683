#!/bin/bash
# `loratrain export --format gguf`: a checkpoint's adapter as a llama.cpp
# LoRA adapter file.
#   - LoRA (all-linear, r 4) on the bundled llama2.c model, and on the same
#     model converted to a Hugging Face directory twice (r 4, and rsLoRA
#     r 8): each checkpoint exported as PEFT and as GGUF f32 and f16, and
#     tests/ref/gguf_ref.py (llama.cpp's gguf-py reader and writer, pinned by
#     tests/ref/gguf_env.sh) checks every metadata value, tensor name, shape and
#     type, lora_a = PEFT lora_A exactly and lora_b = PEFT lora_B with the q/k
#     rows permuted back to interleaved (both bases: the llama2.c path needs
#     no permutation in loratrain, the Hugging Face path does), F16 within
#     F16 rounding, each file byte for byte what gguf-py's GGUFWriter writes,
#     and that files with the permutation or dims order wrong are rejected;
#   - the llama2.c and Hugging Face runs' GGUF files hold the same adapter
#     (within 1e-4 relative L2, as tests/e2e/hf_load.sh measures for adapters);
#   - unknown --format, unknown --outtype, --outtype with peft, OUT_FILE in a
#     missing directory, OUT_FILE a directory, an unwritable OUT_FILE: one
#     clear error line each, non-zero exit, nothing left behind.
# Without PyPI (tests/ref/gguf_env.sh exits 77) the exports and error cases
# still run; the test then exits 77 with the reason.
# Usage: gguf_export.sh LORATRAIN REPO_ROOT VENV_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root venv -- "$@"
model=models/stories260K/stories260K.bin
# warmup_steps 1: step 1 then has learning rate 0. Its A gradients are 0
# in exact arithmetic (B starts at 0) but float noise that differs between
# the two bases' RoPE layouts, and Adam would scale that noise up to full
# steps, so the llama2.c and Hugging Face runs could not be compared.
args=(train --tokenizer models/stories260K/tok512.bin --train_file data/tinyshakespeare/input.txt
      --max_seq_length 64 --per_device_train_batch_size 4 --target_modules all-linear --lora_dropout 0.1
      --learning_rate 3e-3 --warmup_steps 1 --max_steps 6 --save_steps 6 --threads 1 --disable_tqdm)

env_rc=0
tests/ref/gguf_env.sh "$venv" 2>"$tmp/env.log" || env_rc=$?
[[ $env_rc == 0 || $env_rc == 77 ]] || { err "gguf_env.sh exited $env_rc: $(cat "$tmp/env.log")"; env_rc=77; }

"$bin" convert --model $model --output_dir "$tmp/hf" --dtype f32 >"$tmp/convert.log" 2>&1 ||
  { echo "FAIL convert: $(tail -1 "$tmp/convert.log")"; exit 1; }
# run name, base, LoRA options
runs=("bin $model --r 4 --lora_alpha 8"
      "hf $tmp/hf --r 4 --lora_alpha 8"
      "hfrs $tmp/hf --r 8 --lora_alpha 16 --use_rslora true")
for spec in "${runs[@]}"; do
  read -r run base lora <<<"$spec"
  # shellcheck disable=SC2086  # the LoRA options are words
  timeout $((300 * ts)) "$bin" "${args[@]}" --model "$base" $lora --output_dir "$tmp/$run" >"$tmp/$run.log" 2>&1 ||
    { err "$run: training failed: $(tail -1 "$tmp/$run.log")"; continue; }
  ck=$tmp/$run/checkpoint-6.h5
  "$bin" export --format peft "$ck" "$tmp/$run-peft" >"$tmp/x.log" 2>&1 || err "$run: peft export: $(cat "$tmp/x.log")"
  cmp -s "$tmp/$run/adapter_model.safetensors" "$tmp/$run-peft/adapter_model.safetensors" ||
    err "$run: the PEFT export differs from the trainer's adapter"
  "$bin" export --format gguf "$ck" "$tmp/$run.gguf" >"$tmp/x.log" 2>&1 || err "$run: gguf export: $(cat "$tmp/x.log")"
  grep -q "GGUF LoRA adapter, f32" "$tmp/x.log" || err "$run: export printed: $(cat "$tmp/x.log")"
  "$bin" export --format gguf "$ck" "$tmp/$run-f16.gguf" --outtype f16 >"$tmp/x.log" 2>&1 ||
    err "$run: gguf f16 export: $(cat "$tmp/x.log")"
  [[ $(stat -c %s "$tmp/$run-f16.gguf" 2>/dev/null || echo 0) -lt $(stat -c %s "$tmp/$run.gguf" 2>/dev/null || echo 0) ]] ||
    err "$run: the f16 file is not smaller than the f32 one"
  if [[ $env_rc == 0 ]]; then
    mkdir -p "$tmp/work-$run"
    "$venv/bin/python" tests/ref/gguf_ref.py "$tmp/$run-peft" "$tmp/hf/config.json" "$tmp/$run.gguf" \
      "$tmp/$run-f16.gguf" "$tmp/work-$run" >"$tmp/check-$run.log" 2>&1 || err "$run: gguf_ref.py:"
    sed "s/^/  $run: /" "$tmp/check-$run.log"
  fi
done
if [[ $env_rc == 0 && -f $tmp/bin.gguf && -f $tmp/hf.gguf ]]; then
  "$venv/bin/python" tests/ref/gguf_ref.py --close "$tmp/bin.gguf" "$tmp/hf.gguf" 1e-4 || err "llama2.c vs HF base"
fi

# Errors: one line, non-zero, nothing written.
ck=$tmp/bin/checkpoint-6.h5
expect_error "format" "--format: expected peft or gguf, got \"ggml\"" "$bin" export --format ggml "$ck" "$tmp/o1.gguf"
expect_error "outtype" "--outtype: expected f32 or f16, got \"q8_0\"" "$bin" export --format gguf "$ck" "$tmp/o2.gguf" --outtype q8_0
expect_error "outtype with peft" "--outtype: for --format gguf only" "$bin" export --format peft "$ck" "$tmp/o3" --outtype f16
expect_error "missing directory" "$tmp/nodir/o4.gguf: cannot write: directory $tmp/nodir" \
  "$bin" export --format gguf "$ck" "$tmp/nodir/o4.gguf"
mkdir "$tmp/adir"
expect_error "OUT_FILE a directory" "is a directory" "$bin" export --format gguf "$ck" "$tmp/adir"
# Past every check, the file cannot be created: the writer's own failure.
expect_error "unwritable" "cannot create" "$bin" export --format gguf "$ck" /proc/loratrain-gguf-test.gguf
[[ -e $tmp/o1.gguf || -e $tmp/o2.gguf || -e $tmp/o3 || -e $tmp/nodir || -e /proc/loratrain-gguf-test.gguf ]] &&
  err "a failed export left a file behind"
[[ -n $(find "$tmp" "$tmp/adir" -maxdepth 1 -name '*.tmp.*') ]] && err "a temporary file was left behind"
[[ -z $(ls -A "$tmp/adir") ]] || err "a failed export wrote into OUT_FILE's directory"
echo "errors: format, outtype, outtype with peft, missing directory, OUT_FILE a directory, unwritable"

if [[ $fail == 0 && $env_rc == 77 ]]; then
  echo "SKIP the gguf-py checks: $(cat "$tmp/env.log")"
  exit 77
fi
exit $fail
