#!/bin/bash
# loratrain against Hugging Face transformers + PEFT themselves, on the
# bundled model converted with `loratrain convert` (q/k rows permuted to
# rotate-half) and an adapter trained here (all-linear, r 8) and exported
# with `loratrain export --format peft`:
#   - logits of the base, and of base + adapter (PeftModel.from_pretrained),
#     equal loratrain's (llama2.c model) within 1e-4 on sequences of 1..256
#     tokens;
#   - the run's last checkpoint, read with h5py alone into a PEFT adapter:
#     PEFT gives the trainer's own adapter's logits (q/k rows in order);
#   - the reverse: adapters made and saved by PEFT (random non-zero B;
#     plain and rsLoRA) load into loratrain and give transformers' logits;
#   - `loratrain merge`: the merged model's logits (in loratrain and in
#     transformers) are base + adapter's within 1e-4; bf16 within 0.4;
#   - models saved by transformers itself (Llama and Mistral, untied
#     lm_head, 4 heads on 1 kv head, rope_theta 500000), with and without a
#     PEFT adapter: loratrain's logits equal transformers + PEFT's;
#   - the same comparisons against tests/ref/peft_torch_ref.py, an independent
#     pure-PyTorch Llama + LoRA, which is all that runs (with a printed
#     reason) where transformers and PEFT do not install.
# Versions: tests/ref/peft_env.sh pins them (transformers 4.46.3, peft 0.13.2 on
# Debian's torch 1.13); the venv is cached in the build folder.
# Usage: peft_parity.sh LORATRAIN REPO_ROOT VENV_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root venv -- "$@"
model=models/stories260K/stories260K.bin
tol=1e-4
V=512

suite_peft_env "$venv" "comparing with the pure-PyTorch reference only"

# Inputs: sequences of several lengths, ids spread over the vocabulary.
random_ids "$tmp/ids.txt" 5 1 7 64 256

"$bin" convert --model $model --output_dir "$tmp/hf" >"$tmp/convert.log" 2>&1 ||
  { err "convert failed: $(tail -1 "$tmp/convert.log")"; exit 1; }
"$bin" train --model $model --tokenizer models/stories260K/tok512.bin --train_file data/tinyshakespeare/input.txt \
  --max_seq_length 128 --per_device_train_batch_size 8 --target_modules all-linear --r 8 --lora_alpha 16 \
  --learning_rate 5e-3 --warmup_steps 0 --max_steps 30 --save_steps 30 --threads 1 --disable_tqdm \
  --output_dir "$tmp/run" >"$tmp/train.log" 2>&1 || { err "training failed: $(tail -1 "$tmp/train.log")"; exit 1; }
"$bin" export --format peft "$tmp/run/checkpoint-30.h5" "$tmp/peft" --base_model_name_or_path "$tmp/hf" \
  >/dev/null 2>&1 || { err "export failed"; exit 1; }

# ours / refs run the bundled model (as llama2.c file and as converted
# directory); OUR_MODEL / REF_MODEL point them at another.
ours() { # name, extra loratrain logits options...
  local name=$1
  shift
  "$bin" logits --model "${OUR_MODEL:-$model}" "$@" --ids "$tmp/ids.txt" --out "$tmp/$name.ours" >"$tmp/l.log" 2>&1 ||
    err "$name: loratrain logits failed: $(tail -1 "$tmp/l.log")"
}
peft_refs() { # name, extra reference options...: compares ours with each reference
  local name=$1
  shift
  refs "$name" "$tmp/$name.ours" --model "${REF_MODEL:-$tmp/hf}" "$@"
}

ours base
peft_refs base
ours adapter --adapter "$tmp/peft"
peft_refs adapter --adapter "$tmp/peft"
# The checkpoint of the final step read with h5py alone into a PEFT
# adapter (tests/ref/ckpt_to_peft.py): in PEFT and in the pure-PyTorch
# reference it gives the trainer's own adapter's logits (loratrain on the
# llama2.c model, whose q/k rows are interleaved: the checkpoint holds them
# in Hugging Face's order, as the adapter file does).
$py tests/ref/ckpt_to_peft.py "$tmp/run/checkpoint-30.h5" "$tmp/run/adapter_config.json" "$tmp/h5peft" >/dev/null ||
  err "the checkpoint could not be read into a PEFT adapter with h5py"
ours trainer --adapter "$tmp/run"
peft_refs trainer --adapter "$tmp/h5peft"
# The adapter must matter, or the comparison above proves nothing.
$py tests/ref/peft_torch_ref.py compare "$tmp/base.ours" "$tmp/adapter.ours" --vocab $V --tol 0.05 >/dev/null 2>&1 &&
  err "the trained adapter moves no logit by more than 0.05"

# loratrain merge: the merged model's logits are base + adapter's, in
# loratrain and in transformers (no adapter loaded there); bf16 within its
# rounding (convert's bf16 base alone is 0.16 away).
"$bin" merge --model $model --adapter "$tmp/peft" --output_dir "$tmp/merged" >"$tmp/mg.log" 2>&1 ||
  err "merge failed: $(tail -1 "$tmp/mg.log")"
"$bin" logits --model "$tmp/merged" --ids "$tmp/ids.txt" --out "$tmp/merged.ours" >/dev/null 2>&1 ||
  err "logits of the merged model failed"
compare "merged vs base + adapter (loratrain)" "$tmp/merged.ours" "$tmp/adapter.ours" $tol "merged vs base + adapter"
if [[ -n $hf_py ]]; then
  "$hf_py" tests/ref/peft_ref.py logits --model "$tmp/merged" --ids "$tmp/ids.txt" --out "$tmp/merged.hf" >/dev/null 2>&1 ||
    err "transformers could not run the merged model"
  compare "merged (transformers) vs base + adapter (PEFT)" "$tmp/merged.hf" "$tmp/adapter.hf" $tol
fi
"$bin" merge --model $model --adapter "$tmp/peft" --output_dir "$tmp/merged16" --dtype bf16 >/dev/null 2>&1 ||
  err "merge --dtype bf16 failed"
grep -q '"torch_dtype":[[:space:]]*"bfloat16"' "$tmp/merged16/config.json" || err "merged bf16: torch_dtype is not bfloat16"
"$bin" logits --model "$tmp/merged16" --ids "$tmp/ids.txt" --out "$tmp/merged16.ours" >/dev/null 2>&1 ||
  err "logits of the bf16 merged model failed"
compare "merged bf16 vs base + adapter" "$tmp/merged16.ours" "$tmp/adapter.ours" 0.4

# Adapters PEFT made.
if [[ -n $hf_py ]]; then
  for variant in plain rslora; do
    extra=()
    [[ $variant == rslora ]] && extra=(--rslora --r 4 --alpha 8 --targets q_proj,v_proj,down_proj)
    "$hf_py" tests/ref/peft_ref.py make-adapter --model "$tmp/hf" --out "$tmp/pe-$variant" --seed 3 "${extra[@]}" \
      >"$tmp/m.log" 2>&1 || { err "PEFT make-adapter ($variant) failed: $(tail -2 "$tmp/m.log")"; continue; }
    ours "peft-$variant" --adapter "$tmp/pe-$variant"
    peft_refs "peft-$variant" --adapter "$tmp/pe-$variant"
  done
  # Written back by loratrain (read, no update, saved): PEFT's large random
  # B rows of q_proj and k_proj go through both RoPE permutations, so an
  # error in either moves these logits far.
  "$bin" train --model $model --tokenizer models/stories260K/tok512.bin --train_file data/tinyshakespeare/input.txt \
    --max_seq_length 64 --target_modules all-linear --r 8 --lora_alpha 16 --learning_rate 0 --warmup_steps 0 \
    --max_steps 1 --threads 1 --disable_tqdm --adapter_name_or_path "$tmp/pe-plain" --output_dir "$tmp/resaved" \
    >"$tmp/rs.log" 2>&1 || err "re-saving the PEFT adapter failed: $(tail -1 "$tmp/rs.log")"
  cp "$tmp/pe-plain/adapter_config.json" "$tmp/resaved/adapter_config.json"
  "$hf_py" tests/ref/peft_ref.py logits --model "$tmp/hf" --adapter "$tmp/resaved" --ids "$tmp/ids.txt" \
    --out "$tmp/resaved.hf" >/dev/null 2>&1 || err "transformers could not load the re-saved adapter"
  compare "PEFT adapter re-saved by loratrain, in transformers" "$tmp/resaved.hf" "$tmp/peft-plain.hf" $tol \
    "PEFT adapter re-saved by loratrain"
else
  echo "skipped: adapters made by PEFT (PEFT does not install here)"
fi

# Directories written by transformers itself (save_pretrained), in the
# variants the bundled model does not have: an untied lm_head, grouped-query
# attention with another ratio, rope_theta 500000 (Llama 3's), and the
# Mistral architecture; loratrain's logits, without and with an adapter
# PEFT made for it, equal transformers + PEFT's and the pure-PyTorch
# reference's.
if [[ -n $hf_py ]]; then
  for arch in llama mistral; do
    d=$tmp/tf-$arch
    "$hf_py" tests/ref/peft_ref.py make-model --out "$d" --arch $arch --untied --rope_theta 500000 --heads 4 \
      --kv_heads 1 --layers 3 --seed 11 --init_std 0.25 >"$tmp/mm.log" 2>&1 &&
      "$hf_py" tests/ref/peft_ref.py make-adapter --model "$d" --out "$d-peft" --seed 5 >>"$tmp/mm.log" 2>&1 ||
      { err "transformers could not write the $arch model or its adapter: $(tail -2 "$tmp/mm.log")"; continue; }
    grep -q '"tie_word_embeddings": false' "$d/config.json" || err "tf-$arch: the model's classifier is not untied"
    echo "$arch model saved by transformers (untied, 4 heads / 1 kv head, rope_theta 500000):"
    OUR_MODEL=$d ours "tf-$arch"
    OUR_MODEL=$d ours "tf-$arch-adapter" --adapter "$d-peft"
    REF_MODEL=$d peft_refs "tf-$arch"
    REF_MODEL=$d peft_refs "tf-$arch-adapter" --adapter "$d-peft"
  done
fi
exit $fail
