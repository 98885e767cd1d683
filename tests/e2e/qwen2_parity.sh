#!/bin/bash
# Qwen2 (Llama + q/k/v projection biases) against transformers'
# Qwen2ForCausalLM + PEFT and the pure-PyTorch reference. The model is the
# bundled one converted to Hugging Face format, turned into a Qwen2
# directory with random N(0, 0.5) q/k/v biases (tests/ref/make_hf_variants.py
# qwen2), so a model that dropped the biases, or added them after RoPE,
# would be far off:
#   - base logits within 1e-4 of transformers (Qwen2ForCausalLM) and of
#     tests/ref/peft_torch_ref.py, and far (> 0.05) from the same model without
#     biases;
#   - a LoRA adapter trained here on the Qwen2 directory, exported with
#     `export --format peft`: base + adapter logits within 1e-4 of PeftModel;
#   - `merge` writes a Qwen2 directory (architectures Qwen2ForCausalLM, the
#     biases carried over) whose logits are base + adapter's;
#   - QLoRA (NF4) keeps the biases fp32 on every rank: on 2 ranks, a
#     sharded base gives the whole base's losses bit for bit;
#   - full fine-tuning trains the biases (they change, and the run stays
#     finite).
# Usage: qwen2_parity.sh LORATRAIN REPO_ROOT VENV_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root venv -- "$@"
model=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
tol=1e-4
V=512
mpi=(mpirun --oversubscribe)

suite_peft_env "$venv" "comparing with the pure-PyTorch reference only"

random_ids "$tmp/ids.txt" 11 1 9 64 200

"$bin" convert --model $model --output_dir "$tmp/llama" >"$tmp/convert.log" 2>&1 ||
  { err "convert failed: $(tail -1 "$tmp/convert.log")"; exit 1; }
$py tests/ref/make_hf_variants.py qwen2 "$tmp/llama" "$tmp/qwen" ||
  { err "making the Qwen2 directory failed"; exit 1; }
"$bin" info --model "$tmp/qwen" >"$tmp/info.log" 2>&1 || err "info on the Qwen2 directory failed: $(tail -1 "$tmp/info.log")"

logits() { # model, out, extra options...
  local m=$1 out=$2
  shift 2
  "$bin" logits --model "$m" "$@" --ids "$tmp/ids.txt" --out "$out" >"$tmp/l.log" 2>&1 ||
    err "loratrain logits $m $*: $(tail -1 "$tmp/l.log")"
}
logits "$tmp/qwen" "$tmp/base.ours"
refs base "$tmp/base.ours" --model "$tmp/qwen"
logits "$tmp/llama" "$tmp/nobias.ours"
$py tests/ref/peft_torch_ref.py compare "$tmp/base.ours" "$tmp/nobias.ours" --vocab $V --tol 0.05 >/dev/null 2>&1 &&
  err "the q/k/v biases move no logit by more than 0.05: the comparison above proves nothing"

train() { # output dir, extra options...
  local out=$1
  shift
  "$bin" train --model "$tmp/qwen" --tokenizer $tok --train_file data/tinyshakespeare/input.txt \
    --max_seq_length 64 --per_device_train_batch_size 4 --learning_rate 5e-3 --warmup_steps 0 \
    --threads 1 --disable_tqdm --output_dir "$out" "$@"
}

train "$tmp/lora" --target_modules all-linear --r 8 --lora_alpha 16 --max_steps 20 --save_steps 20 \
  >"$tmp/train.log" 2>&1 || { err "LoRA training on Qwen2 failed: $(tail -1 "$tmp/train.log")"; exit 1; }
"$bin" export --format peft "$tmp/lora/checkpoint-20.h5" "$tmp/peft" --base_model_name_or_path "$tmp/qwen" \
  >"$tmp/export.log" 2>&1 || err "export failed: $(tail -1 "$tmp/export.log")"
logits "$tmp/qwen" "$tmp/adapter.ours" --adapter "$tmp/peft"
refs adapter "$tmp/adapter.ours" --model "$tmp/qwen" --adapter "$tmp/peft"
$py tests/ref/peft_torch_ref.py compare "$tmp/base.ours" "$tmp/adapter.ours" --vocab $V --tol 0.05 >/dev/null 2>&1 &&
  err "the trained adapter moves no logit by more than 0.05"

"$bin" merge --model "$tmp/qwen" --adapter "$tmp/peft" --output_dir "$tmp/merged" >"$tmp/mg.log" 2>&1 ||
  err "merge failed: $(tail -1 "$tmp/mg.log")"
$py - "$tmp/merged/config.json" "$tmp/merged/model.safetensors" <<'EOF' || err "the merged directory is not a Qwen2 model with its biases"
import json, struct, sys
c = json.load(open(sys.argv[1]))
assert c["model_type"] == "qwen2" and c["architectures"] == ["Qwen2ForCausalLM"], c
raw = open(sys.argv[2], "rb").read()
h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
n = c["num_hidden_layers"]
for l in range(n):
    for m in ("q_proj", "k_proj", "v_proj"):
        assert f"model.layers.{l}.self_attn.{m}.bias" in h, (l, m)
EOF
logits "$tmp/merged" "$tmp/merged.ours"
compare "merged vs base + adapter (loratrain)" "$tmp/merged.ours" "$tmp/adapter.ours" $tol
if [[ -n $hf_py ]]; then
  "$hf_py" tests/ref/peft_ref.py logits --model "$tmp/merged" --ids "$tmp/ids.txt" --out "$tmp/merged.hf" \
    >"$tmp/r.log" 2>&1 || err "transformers could not run the merged model: $(tail -1 "$tmp/r.log")"
  compare "merged (transformers) vs base + adapter (loratrain)" "$tmp/merged.hf" "$tmp/adapter.ours" $tol
fi

# QLoRA: the biases are fp32 beside the NF4 linears, whole on every rank.
qlora=(--target_modules q_proj,k_proj,v_proj --r 4 --lora_alpha 8 --max_steps 6 --load_in_4bit true
  --bnb_4bit_use_double_quant true --logging_steps 1)
qrun() { # output dir, extra options...
  local out=$1
  shift
  "${mpi[@]}" -np 2 "$bin" train --model "$tmp/qwen" --tokenizer $tok --train_file data/tinyshakespeare/input.txt \
    --max_seq_length 64 --per_device_train_batch_size 2 --learning_rate 5e-3 --warmup_steps 0 --threads 1 \
    --disable_tqdm --output_dir "$out" "${qlora[@]}" "$@"
}
qrun "$tmp/q1" >"$tmp/q1.log" 2>&1 || err "QLoRA on Qwen2, 2 ranks: $(tail -1 "$tmp/q1.log")"
qrun "$tmp/q2" --shard_base true >"$tmp/q2.log" 2>&1 || err "QLoRA on Qwen2, 2 ranks, shard_base: $(tail -1 "$tmp/q2.log")"
losses() { $py -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "loss" in r and "step" in r: print(r["step"], r["loss"].hex() if isinstance(r["loss"], float) else r["loss"])' "$1"; }
if [[ -s $tmp/q1/metrics.jsonl && -s $tmp/q2/metrics.jsonl ]]; then
  a=$(losses "$tmp/q1/metrics.jsonl") b=$(losses "$tmp/q2/metrics.jsonl")
  [[ -n $a && $a == "$b" ]] || err "QLoRA losses differ between a whole and a sharded base: [$a] vs [$b]"
  echo "QLoRA Qwen2 on 2 ranks, whole vs sharded base: $(echo "$a" | wc -l) steps, losses bitwise equal"
fi

# Full fine-tuning trains the biases.
train "$tmp/full" --finetuning_type full --learning_rate 1e-3 --max_steps 3 >"$tmp/full.log" 2>&1 ||
  err "full fine-tuning of Qwen2 failed: $(tail -1 "$tmp/full.log")"
if [[ -f $tmp/full/model.safetensors ]]; then
  $py - "$tmp/qwen/model.safetensors" "$tmp/full/model.safetensors" <<'EOF' || err "full fine-tuning left the q/k/v biases unchanged"
import sys
import numpy as np
sys.path.insert(0, "tests/lib")
from safetensors_f32 import read  # noqa: E402
a, b = read(sys.argv[1])[0], read(sys.argv[2])[0]
moved = [k for k in a if k.endswith(".bias") and np.abs(a[k] - b[k]).max() > 1e-6]
assert len(moved) == len([k for k in a if k.endswith(".bias")]), moved
assert all(np.isfinite(v).all() for v in b.values())
print(f"full fine-tuning moved all {len(moved)} bias tensors")
EOF
else
  err "full fine-tuning wrote no model.safetensors ($(ls "$tmp/full" | tr '\n' ' '))"
fi

[[ $fail == 0 ]] && echo "qwen2_parity: all checks passed"
exit $fail
