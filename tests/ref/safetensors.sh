#!/bin/bash
# safetensors against an independent reader/writer: the reference writes,
# loratrain reads; loratrain writes, the reference reads.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init py bin root -- "$@"
"$py" "$root/tests/ref/safetensors_ref.py" write "$tmp" || exit 1
"$bin" "$tmp" || exit 1
"$py" "$root/tests/ref/safetensors_ref.py" check "$tmp/ours.safetensors"
