#!/bin/bash
# Reference tokenizer suites: trains SentencePiece (spm) or Hugging Face
# tokenizers (hf) models from the bundled corpora and checks the C
# tokenizers against them on every record (tests/ref/tokenizer_hf_ref.py,
# tests/unit/test_tokenizer_ref.c). Exits 77 (CTest skip) when the reference
# library is not available: sentencepiece comes from Debian
# (python3-sentencepiece); tokenizers is pip-installed, pinned, into
# BUILD/venv-tok on first use (PyPI must be reachable then).
#
# usage: tokenizer_hf.sh spm|hf SRC BUILD TEST_BIN
set -euo pipefail
mode=$1 src=$2 build=$3 bin=$4
TOKENIZERS_PIN=0.23.3
# A folder per run, so concurrent ctest runs in one build do not collide;
# kept when a check fails.
out=$(mktemp -d "$build/tokenizer_$mode.XXXXXX")

if [[ $mode == spm ]]; then
  py=/usr/bin/python3
else
  venv=$build/venv-tok
  py=$venv/bin/python
  exec 9>"$build/venv-tok.lock"
  flock 9 # one installer at a time
  if ! "$py" -c "import tokenizers; assert tokenizers.__version__ == '$TOKENIZERS_PIN'" 2>/dev/null; then
    if ! /usr/bin/python3 -m venv --system-site-packages "$venv" >"$out/venv.log" 2>&1; then
      echo "SKIP: cannot create $venv (python3-venv missing?):"; tail -3 "$out/venv.log"
      rm -rf "$out"; exit 77
    fi
    if ! "$venv/bin/pip" install -q --timeout 60 --retries 1 "tokenizers==$TOKENIZERS_PIN" \
        >"$out/pip.log" 2>&1; then
      echo "SKIP: pip install tokenizers==$TOKENIZERS_PIN failed (PyPI unreachable?):"
      tail -3 "$out/pip.log"; rm -rf "$out"; exit 77
    fi
  fi
  flock -u 9
fi

rc=0
"$py" "$src/tests/ref/tokenizer_hf_ref.py" "$mode" --src "$src" --out "$out" || rc=$?
if [[ $rc -ne 0 ]]; then rm -rf "$out"; exit $rc; fi

fail=0
if [[ $mode == spm ]]; then
  for n in spm_bpe512 spm_bpe2000 spm_unigram; do
    "$bin" "$out/$n.model" "$out" "$n" || fail=1
  done
else
  for n in hf_gpt2 hf_gpt2_legacy hf_gpt2_prefix hf_llama3 hf_qwen2 hf_llama3_digits; do
    "$bin" "$out/$n.json" "$out" "$n" --lenient-unicode || fail=1
  done
  # An HF model directory: tokenizer.json is found inside.
  mkdir -p "$out/model_dir"
  cp "$out/hf_llama3.json" "$out/model_dir/tokenizer.json"
  "$bin" "$out/model_dir" "$out" hf_llama3 --lenient-unicode || fail=1
fi
if [[ $fail -eq 0 ]]; then rm -rf "$out"; else echo "kept $out"; fi
exit $fail
