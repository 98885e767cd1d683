#!/bin/bash
# Installs the Debian packages loratrain builds and tests with, when any is
# missing (non-interactive; `apt-get update` first). Shared by
# launch/quickstart.sh (`install_deps.sh build`: what building and running
# needs) and tests/run.sh (no argument: that and what the tests need).
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev          # GEMMs, sharing libgomp's threads with our kernels
  openmpi-bin libopenmpi-dev      # processes and CPU collectives
  libhdf5-openmpi-dev             # checkpoints (parallel HDF5)
  libcjson-dev                    # configs and safetensors headers
  libxxhash-dev                   # checkpoint manifests and fingerprints (XXH3)
)
case ${1:-all} in
build) ;;
all)
  packages+=(
    python3 python3-numpy python3-torch python3-sentencepiece  # reference checks
    python3-pip                     # with python3-venv: pinned HF tokenizers (tests/ref/tokenizer_hf.sh)
    python3-h5py                    # reads checkpoints as a user would
    python3-xxhash                  # checks a checkpoint's manifest independently
    hdf5-tools                      # h5dump, which the README names: tests/e2e/stop_early.sh reads checkpoints with it
    python3-venv                    # tests/ref/peft_env.sh: transformers + PEFT from PyPI over python3-torch
    libtcmalloc-minimal4            # the tuned PyTorch benchmark preloads it
    slurm-wlm munge                 # tests run a private local Slurm (tests/lib/slurm_cluster.sh)
    clang libclang-rt-14-dev        # libFuzzer: the fuzz targets of the file readers
  )
  ;;
*)
  echo "usage: install_deps.sh [build|all]" >&2
  exit 2
  ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
