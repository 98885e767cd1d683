#!/bin/bash
# The test command: installs what is missing, builds with warnings as
# errors (also for the generic x86-64-v3 and -v4 targets, compile only, and
# with each folder's library shared and linked -Wl,--no-undefined, which
# fails on a call across an undeclared boundary), runs every CTest suite, then builds with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suites that exercise C code again,
# then fuzzes the file readers (clang's libFuzzer) for a bounded time.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)

"$root/launch/install_deps.sh"

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DLT_WERROR=ON
cmake --build "$root/build" -j"$jobs"

# Warnings depend on the target: -march=native's tuning changes GCC's
# inlining, and a maybe-uninitialized false positive that no AMD EPYC build
# showed broke the -Werror build on an AVX-512 Xeon. So both vector paths
# (AVX2 and AVX-512) also compile, warnings as errors, for the generic
# x86-64-v3 and -v4 targets, whatever CPU this is (compiled, not run).
# These builds leave the CUDA backend out (its .cu files compiled for
# sm_80/sm_90 above already, warnings as errors, where nvcc is found), so
# they are also the build of a machine without nvcc.
if [[ $(uname -m) == x86_64 ]]; then
  for level in v3 v4; do
    cmake -S "$root" -B "$root/build-x86-64-$level" -DCMAKE_BUILD_TYPE=Release -DLT_WERROR=ON \
      -DLT_NATIVE=OFF -DLT_CUDA=OFF -DCMAKE_C_FLAGS="-march=x86-64-$level" >/dev/null
    cmake --build "$root/build-x86-64-$level" -j"$jobs" >/dev/null
  done
fi

# Who may know whom (DESIGN.md's table): every folder's library built as a
# shared library linked with -Wl,--no-undefined, so a call across an edge
# the build does not declare fails to link here (the static build above
# lets the executable link both sides); the include_boundaries test holds
# the #includes to the same table.
cmake -S "$root" -B "$root/build-boundaries" -DCMAKE_BUILD_TYPE=Release -DLT_WERROR=ON \
  -DLT_BOUNDARY_CHECK=ON >/dev/null
cmake --build "$root/build-boundaries" -j"$jobs" --target loratrain >/dev/null

(cd "$root/build" && ctest --output-on-failure -j"$jobs")

# The PyTorch self-checks exercise no C code; everything else runs again,
# except quant_memory, dist_memory and full_memory, whose process-peak
# comparisons mean nothing under ASan's allocator (shadow memory,
# quarantine), the Slurm suites, whose C paths (stop signals, resume)
# preempt and checkpoint already run under the sanitizers, and
# train_qlora, a 3-minute convergence comparison whose NF4 training path
# dist_train_nf4, hf_train and qwen2_parity run under them too (it kept
# the suite past 30 minutes), and quickstart, the same sharded-QLoRA path
# again. The CUDA backend's whole-model parity suites on the emulated CUDA
# (torch_parity, train_torch_parity and train_torch_parity_full, _cuda_emu:
# the CPU's parity programs again, through the same .cu code that the ASan
# build runs in cuda_attention_emu, cuda_ops_emu_*, greedy_oracle_cuda_emu
# and a small cuda_emu_train) and the GPU benchmark's plumbing check
# (gpu_bench_tiny: a script; the trainer it runs is covered) stay in the
# release pass.
cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLT_WERROR=ON \
  -DLT_SANITIZE=ON
cmake --build "$root/build-asan" -j"$jobs"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  ctest --output-on-failure -j"$jobs" -E 'torch_reference_selfcheck|train_reference_selfcheck|quant_memory|dist_memory|full_memory|slurm_|train_qlora|quickstart|torch_parity_cuda_emu|torch_parity_full_cuda_emu|gpu_bench_tiny')

# The readers of untrusted files (safetensors, JSON configs, tokenizers)
# under libFuzzer (clang, coverage-guided, ASan+UBSan), LT_FUZZ_SECONDS each,
# one target per core (each keeps its own corpus folder).
cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLT_FUZZ=ON -DLT_FUZZ_SECONDS="${LT_FUZZ_SECONDS:-60}"
cmake --build "$root/build-fuzz" -j"$jobs" --target fuzz_targets
(cd "$root/build-fuzz" && ctest --output-on-failure -j"$jobs" -L fuzz)
echo "tests/run.sh: all suites passed (release and ASan+UBSan builds, fuzzing)"
