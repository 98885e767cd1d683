#!/bin/bash
# The main job, from a fresh Debian 12 machine: install what is missing,
# build, and fine-tune the bundled model with LoRA on Tiny Shakespeare,
# showing generation before and after. (It grows into the 2-rank QLoRA
# fine-tune as the quantization and MPI pieces land.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)"
cd "$root"

bin=build/loratrain
model=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
out=out/quickstart

echo
echo "== the bundled model and the LoRA setup"
"$bin" info --model "$model" --r 8 --lora_alpha 16 --target_modules all-linear
echo
echo "== before fine-tuning (temperature 0.8, prompt \"ROMEO:\")"
"$bin" generate --model "$model" --tokenizer "$tok" --prompt "ROMEO:" --temperature 0.8 --seed 7 \
  --max_new_tokens 120
echo
echo "== LoRA fine-tuning on Tiny Shakespeare (launch/configs/stories260K_shakespeare.json)"
"$bin" train --config launch/configs/stories260K_shakespeare.json --max_steps 200 --output_dir "$out"
echo
echo "== after fine-tuning: the same prompt and seed, with the adapter from $out"
"$bin" generate --model "$model" --tokenizer "$tok" --adapter "$out" --prompt "ROMEO:" \
  --temperature 0.8 --seed 7 --max_new_tokens 120
echo
echo "metrics per step: $out/metrics.jsonl; adapter (PEFT layout): $out/adapter_model.safetensors"
