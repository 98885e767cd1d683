#!/bin/bash
# safetensors against an independent reader/writer: the reference writes,
# loratrain reads; loratrain writes, the reference reads.
set -u
py=${1:?usage: safetensors.sh PYTHON TEST_SAFETENSORS REPO_ROOT}
bin=${2:?}
root=${3:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$root/tests/ref/safetensors_ref.py" write "$tmp" || exit 1
"$bin" "$tmp" || exit 1
"$py" "$root/tests/ref/safetensors_ref.py" check "$tmp/ours.safetensors"
