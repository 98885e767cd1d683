#!/bin/bash
# Quantization against the independent reference: test_quant writes inputs
# and our codes, absmax, double-quant state and dequantized values; the
# numpy reference (tests/ref/quant_ref.py) recomputes them from bitsandbytes'
# published algorithm and requires identical bits. Where bitsandbytes itself
# imports (LT_BNB_PYTHON, or a python3 on PATH that has it), the same cases
# are also compared with it. Usage: quant_ref.sh PYTHON TEST_QUANT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init py bin -- "$@"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$py" "$here/quant_ref.py" --selfcheck || exit 1
"$bin" gen "$tmp/cases.ltt" || exit 1
"$py" "$here/quant_ref.py" --check "$tmp/cases.ltt" || exit 1
bnb=${LT_BNB_PYTHON:-}
if [[ -z $bnb ]] && python3 -c "import bitsandbytes" >/dev/null 2>&1; then bnb=python3; fi
if [[ -n $bnb ]]; then
  "$bnb" "$here/quant_ref.py" --bitsandbytes "$tmp/cases.ltt" || exit 1
else
  echo "bitsandbytes does not import here (set LT_BNB_PYTHON to a Python that has it):" \
       "compared with the published algorithm only"
fi
