#!/bin/bash
# Chat templates against Jinja2 3.1.6 itself (the pinned venv of
# tests/ref/peft_env.sh; exit 77 where it cannot be made).
# usage: chat_template.sh SRC BUILD TEST_BIN
set -uo pipefail
src=$1 build=$2 bin=$3
"$bin" unit || exit 1
"$src/tests/ref/peft_env.sh" "$build/peft-venv"
rc=$?
if [[ $rc -ne 0 ]]; then exit $rc; fi
exec "$build/peft-venv/bin/python" "$src/tests/ref/chat_template_ref.py" "$src" "$bin" "$build/tests/chat_scratch"
