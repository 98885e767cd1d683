#!/bin/bash
# `loratrain export --format peft`: a checkpoint's adapter as a PEFT adapter
# directory.
#   - the final checkpoint of a 2-rank LoRA run (all-linear, so q_proj and
#     k_proj lora_B go through the RoPE row permutation) and of a QLoRA run
#     export to exactly the bytes the trainer wrote as its adapter, and the
#     same adapter_config.json;
#   - an intermediate checkpoint exports an adapter whose logits (loratrain
#     logits) differ from the base's and from the final adapter's;
#   - a run started from an exported adapter (adapter_name_or_path) holds
#     its weights bit for bit (learning rate 0), and refuses another r;
#   - a full fine-tuning checkpoint, another format, a base that moved, the
#     wrong base, and a damaged checkpoint each give one clear error line.
# Usage: peft_export.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
model=models/stories260K/stories260K.bin
args=(train --model $model --tokenizer models/stories260K/tok512.bin --train_file data/tinyshakespeare/input.txt
      --max_seq_length 64 --per_device_train_batch_size 4 --target_modules all-linear --r 4 --lora_alpha 8
      --lora_dropout 0.1 --learning_rate 3e-3 --max_steps 12 --save_steps 6 --threads 1 --disable_tqdm)

timeout $((300 * ts)) mpirun --oversubscribe -np 2 "$bin" "${args[@]}" --output_dir "$tmp/lora" >"$tmp/lora.log" 2>&1 ||
  { err "LoRA run failed"; tail -3 "$tmp/lora.log"; }
timeout $((300 * ts)) "$bin" "${args[@]}" --load_in_4bit --bnb_4bit_use_double_quant --output_dir "$tmp/qlora" \
  >"$tmp/qlora.log" 2>&1 || { err "QLoRA run failed"; tail -3 "$tmp/qlora.log"; }
for run in lora qlora; do
  "$bin" export --format peft "$tmp/$run/checkpoint-12.h5" "$tmp/$run-peft" >"$tmp/x.log" 2>&1 ||
    { err "$run: export failed: $(cat "$tmp/x.log")"; continue; }
  cmp -s "$tmp/$run/adapter_model.safetensors" "$tmp/$run-peft/adapter_model.safetensors" ||
    err "$run: the exported adapter differs from the trainer's"
  cmp -s "$tmp/$run/adapter_config.json" "$tmp/$run-peft/adapter_config.json" ||
    err "$run: the exported adapter_config.json differs from the trainer's"
  grep -q '"lora_dropout":[[:space:]]*0.1,' "$tmp/$run-peft/adapter_config.json" ||
    err "$run: adapter_config.json lacks lora_dropout 0.1"
done
echo "export of the final checkpoint = the trainer's adapter, byte for byte (LoRA on 2 ranks, QLoRA)"

# The step-6 adapter is a different one.
"$bin" export --format peft "$tmp/lora/checkpoint-6.h5" "$tmp/mid" --base_model_name_or_path hf/stories260K \
  >/dev/null 2>&1 || err "export of checkpoint-6 failed"
grep -q '"base_model_name_or_path":[[:space:]]*"hf/stories260K"' "$tmp/mid/adapter_config.json" ||
  err "--base_model_name_or_path is not in adapter_config.json"
echo "1 20 30 40 50 60 70 80" >"$tmp/ids.txt"
for a in base mid lora-peft; do
  extra=()
  [[ $a != base ]] && extra=(--adapter "$tmp/$a")
  "$bin" logits --model $model "${extra[@]}" --ids "$tmp/ids.txt" --out "$tmp/$a.f32" >/dev/null 2>&1 ||
    err "logits with $a failed"
done
[[ $(stat -c %s "$tmp/base.f32" 2>/dev/null) == $((8 * 512 * 4)) ]] || err "logits: expected 8 x 512 float32"
cmp -s "$tmp/base.f32" "$tmp/mid.f32" && err "the step-6 adapter does not change the logits"
cmp -s "$tmp/mid.f32" "$tmp/lora-peft.f32" && err "the step-6 and step-12 adapters give the same logits"

# Starting a run from a PEFT adapter (adapter_name_or_path): with learning
# rate 0 the adapter it writes is the one it read, bit for bit; trained on,
# its first eval_loss is the adapter's, below the fresh run's.
"$bin" "${args[@]}" --learning_rate 0 --max_steps 2 --save_steps 0 --adapter_name_or_path "$tmp/lora-peft" \
  --output_dir "$tmp/import0" >"$tmp/i0.log" 2>&1 || err "train from a PEFT adapter failed: $(tail -1 "$tmp/i0.log")"
cmp -s "$tmp/lora-peft/adapter_model.safetensors" "$tmp/import0/adapter_model.safetensors" ||
  err "adapter_name_or_path with learning_rate 0 did not keep the adapter's weights"
expect_error "adapter of another r" "the adapter has r 4" "$bin" "${args[@]}" --r 8 \
  --adapter_name_or_path "$tmp/lora-peft" --output_dir "$tmp/import1"
echo "adapter_name_or_path: the imported adapter is the starting point, bit for bit"

# Errors.
cp $model "$tmp/base.bin"
timeout $((300 * ts)) "$bin" "${args[@]}" --model "$tmp/base.bin" --finetuning_type full --max_steps 2 --save_steps 2 \
  --output_dir "$tmp/full" >/dev/null 2>&1 || err "full fine-tuning run failed"
expect_error "full checkpoint" "holds no adapter" "$bin" export --format peft "$tmp/full/checkpoint-2.h5" "$tmp/o1"
expect_error "format" "--format: expected peft or gguf" "$bin" export --format onnx "$tmp/lora/checkpoint-12.h5" "$tmp/o2"
cp $model "$tmp/base.bin"
timeout $((300 * ts)) "$bin" "${args[@]}" --model "$tmp/base.bin" --max_steps 2 --save_steps 2 --output_dir "$tmp/moved" \
  >/dev/null 2>&1 || err "run on the copied base failed"
rm "$tmp/base.bin"
expect_error "moved base" "pass --model if it moved" "$bin" export --format peft "$tmp/moved/checkpoint-2.h5" "$tmp/o3"
cp $model "$tmp/other.bin"
printf '\x01' | dd of="$tmp/other.bin" bs=1 seek=1000 conv=notrunc status=none
expect_error "wrong base" "was trained on base model" "$bin" export --format peft "$tmp/moved/checkpoint-2.h5" "$tmp/o4" --model "$tmp/other.bin"
"$bin" export --format peft "$tmp/moved/checkpoint-2.h5" "$tmp/o5" --model $model >/dev/null 2>&1 ||
  err "export with --model pointing at the same base failed"
head -c 5000 "$tmp/lora/checkpoint-12.h5" >"$tmp/short.h5"
expect_error "truncated checkpoint" "short.h5" "$bin" export --format peft "$tmp/short.h5" "$tmp/o6"
[[ -e $tmp/o1 || -e $tmp/o2 || -e $tmp/o3 || -e $tmp/o6 ]] && err "a failed export left an output directory"
echo "errors: full checkpoint, format, moved base, wrong base, truncated checkpoint"
exit $fail
