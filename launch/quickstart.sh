#!/bin/bash
# The main job, from a fresh Debian 12 machine: install what is missing,
# build, and run loratrain on the bundled model. (It grows into the 2-rank
# QLoRA fine-tune as the training, quantization and MPI pieces land.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/install_deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)"

bin="$root/build/loratrain"
model="$root/models/stories260K/stories260K.bin"
tok="$root/models/stories260K/tok512.bin"

echo
echo "== the bundled model and a LoRA setup on all linear layers"
"$bin" info --model "$model" --r 8 --lora_alpha 16 --target_modules all-linear
echo
echo "== greedy generation (temperature 0)"
"$bin" generate --model "$model" --tokenizer "$tok" --temperature 0 --steps 200
echo
echo "== sampled generation (temperature 0.8, top-p 0.9) from a prompt"
"$bin" generate --model "$model" --tokenizer "$tok" --prompt "One day, Tom found a" \
  --temperature 0.8 --top_p 0.9 --seed 7 --steps 200
