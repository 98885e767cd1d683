#!/bin/bash
# The main job, from a fresh Debian 12 machine: install what is missing,
# build, and QLoRA-fine-tune the bundled model on Tiny Shakespeare with two
# data-parallel ranks, each holding half of the NF4 base (shard_base);
# checkpoints on the way, the memory report at the end, and the same prompt
# sampled before and after. A few minutes on two cores, most of it the
# first build.
# Environment, for the test that runs this script as it stands
# (tests/e2e/quickstart.sh): LT_QUICKSTART_BIN, an already built loratrain to
# use instead of installing and building; LT_QUICKSTART_OUT, the output
# folder instead of out/quickstart.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${LT_QUICKSTART_BIN:-build/loratrain}
if [[ -z ${LT_QUICKSTART_BIN:-} ]]; then
  "$root/launch/install_deps.sh" build
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$root/build" -j"$(nproc)"
fi
cd "$root"

if ! command -v mpirun >/dev/null; then
  echo "quickstart: error: mpirun not found: install Open MPI (apt-get install openmpi-bin)" >&2
  exit 1
fi
# Open MPI refuses root unless told, and wants permission to run more
# ranks than cores.
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
ranks=2
mpi=(mpirun -np $ranks)
(($(nproc) < ranks)) && mpi+=(--oversubscribe)
export OMP_WAIT_POLICY=PASSIVE

model=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
out=${LT_QUICKSTART_OUT:-out/quickstart}
qlora=(--load_in_4bit --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant)
prompt=(--prompt "ROMEO:" --temperature 0.8 --seed 7 --max_new_tokens 120)

echo
echo "== the bundled model, its NF4 base and the LoRA setup"
"$bin" info --model "$model" "${qlora[@]}" --r 8 --lora_alpha 16 --target_modules all-linear
echo
echo "== before fine-tuning: the NF4 base alone"
"$bin" generate --model "$model" --tokenizer "$tok" "${qlora[@]}" "${prompt[@]}"
echo
echo "== QLoRA on $ranks ranks, base sharded across them (launch/configs/stories260K_shakespeare.json)"
# A fresh start every time (a stopped run would continue with
# --resume_from_checkpoint latest).
rm -rf "$out"
"${mpi[@]}" "$bin" train --config launch/configs/stories260K_shakespeare.json "${qlora[@]}" \
  --shard_base --per_device_train_batch_size 4 --threads 1 --max_steps 200 --save_steps 100 \
  --save_total_limit 2 --output_dir "$out"
echo
echo "== the last checkpoint"
"$bin" inspect "$out/$(cat "$out/latest_checkpoint")"
echo
echo "== after fine-tuning: the same prompt and seed, NF4 base + the adapter from $out"
"$bin" generate --model "$model" --tokenizer "$tok" "${qlora[@]}" --adapter "$out" "${prompt[@]}"
echo
echo "metrics per step: $out/metrics.jsonl; memory by category: $out/memory.json;"
echo "adapter (PEFT layout): $out/adapter_model.safetensors; checkpoints: $out/checkpoint-*.h5"
