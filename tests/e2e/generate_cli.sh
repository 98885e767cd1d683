#!/bin/bash
# `loratrain generate` at temperature 0 from BOS must print the oracle text
# and write the oracle ids (models/stories260K/expected_greedy_t0_256.*).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
d="$root/models/stories260K"
"$bin" generate --model "$d/stories260K.bin" --tokenizer "$d/tok512.bin" --temperature 0 \
  --steps 256 --threads 1 --ids_out "$tmp/ids" >"$tmp/text" 2>"$tmp/err" || {
  echo "FAIL generate exited with $?"; cat "$tmp/err"; exit 1; }
# generate ends its output with one newline the oracle text does not have
head -c -1 "$tmp/text" >"$tmp/text_trimmed"
if ! cmp -s "$tmp/text_trimmed" "$d/expected_greedy_t0_256.txt"; then
  echo "FAIL generated text differs from the oracle:"; diff "$tmp/text_trimmed" "$d/expected_greedy_t0_256.txt" | head -20; fail=1
fi
if ! diff -q <(tr -s ' \n' '\n\n' <"$tmp/ids" | sed '/^$/d') <(tr -s ' \n' '\n\n' <"$d/expected_greedy_t0_256.ids" | sed '/^$/d') >/dev/null; then
  echo "FAIL generated ids differ from the oracle"; fail=1
fi
[[ $fail == 0 ]] && echo "generated text and ids match the oracle ($(cat "$tmp/err"))"
exit $fail
