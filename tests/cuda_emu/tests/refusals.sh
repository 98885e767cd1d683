#!/bin/bash
# Float atomics, arithmetic on two bf16 values and `extern __shared__`
# (dynamic shared memory goes through LT_DYNAMIC_SHARED) fail to compile
# under the emulation, each with its own diagnostic; the same file without
# them compiles (the control), so a broken include path cannot pass.
# Usage: refusals.sh CXX REPO_ROOT
set -u
cxx=${1:?usage: refusals.sh CXX REPO_ROOT}
root=${2:?usage: refusals.sh CXX REPO_ROOT}
src=$root/tests/cuda_emu/tests/refusal.cu
compile() {
  "$cxx" -std=c++17 -fsyntax-only -x c++ -DLT_CUDA_EMU -I"$root/tests/cuda_emu/include" \
    -I"$root" "$@" "$src" 2>&1
}
fail=0
if ! out=$(compile); then
  echo "FAIL the control does not compile:"; echo "$out"; fail=1
fi
expect() { # MACRO PATTERN
  if out=$(compile -D"$1"); then
    echo "FAIL $1 compiled"; fail=1
  elif ! grep -qE "$2" <<<"$out"; then
    echo "FAIL $1 failed without /$2/:"; echo "$out"; fail=1
  else
    echo "ok   $1 refused: $(grep -m1 -E "$2" <<<"$out" | sed 's/^.*error: //')"
  fi
}
expect REFUSE_FLOAT_ATOMIC "deleted function.*atomicAdd\(float"
expect REFUSE_BF16_ARITHMETIC "deleted function.*operator\*"
expect REFUSE_EXTERN_SHARED "(conflicting specifiers|cannot combine).*|dyn"
exit $fail
