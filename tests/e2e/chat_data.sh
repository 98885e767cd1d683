#!/bin/bash
# Conversational JSONL ({"messages": [...]}) through loratrain's data loader
# against transformers' own apply_chat_template (tests/ref/chat_data_ref.py, in
# the pinned venv of tests/ref/peft_env.sh; exit 77 where it cannot be made):
#   - every row (ids and loss targets), for a ChatML template taken from
#     tokenizer_config.json and a Llama 3 style one from a .jinja file
#     (byte-level BPE), with loss on all tokens and with assistant_only_loss
#     (transformers' return_assistant_tokens_mask), byte for byte; and for
#     a Llama 2 style template on the bundled SentencePiece tok512.model
#     (transformers' LlamaTokenizer ids; the mask by io/data/chat_records.h's
#     rule on transformers' renders and encodings);
#   - broken conversations and configurations refused with one line naming
#     the file's line and the field (test_chat_data errors);
#   - `loratrain train` of the bundled model on Llama 2 style chats with
#     assistant_only_loss lowers the held-out loss by at least a quarter.
# usage: chat_data.sh SRC BUILD LORATRAIN TEST_BIN
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init src build bin test_bin -- "$@"
"$src/tests/ref/peft_env.sh" "$build/peft-venv"
rc=$?
if [[ $rc -ne 0 ]]; then exit $rc; fi

"$build/peft-venv/bin/python" "$src/tests/ref/chat_data_ref.py" make "$src" "$tmp" || exit 1
spm=$src/models/stories260K/tok512.model
for t in chatml llama3 llama2; do
  spec=tokenizer tok=$tmp/tok/tokenizer.json data=$tmp/chat.jsonl
  [[ $t == llama3 ]] && spec=$tmp/llama3.jinja
  [[ $t == llama2 ]] && spec=$src/tests/data/chat/llama2.jinja tok=$spm data=$tmp/chat_spm.jsonl
  for mode in all assistant; do
    if ! "$test_bin" dump "$tok" "$data" "$spec" $mode "$tmp/ours-$t-$mode.rows" \
      >"$tmp/dump.log" 2>&1; then
      err "$t $mode: loading failed: $(tail -1 "$tmp/dump.log")"
    elif cmp -s "$tmp/ours-$t-$mode.rows" "$tmp/$t-$mode.rows"; then
      echo "$t, loss on $mode: rows equal transformers' ($(cat "$tmp/dump.log"))"
    else
      line=$(cmp "$tmp/ours-$t-$mode.rows" "$tmp/$t-$mode.rows" | sed -n 's/.* line //p')
      err "$t, loss on $mode: row line ${line:-?} differs from transformers'"
    fi
  done
done

mkdir -p "$tmp/err"
"$test_bin" errors "$tmp/tok/tokenizer.json" "$spm" "$tmp/err" || fail=1

# Training the bundled model with its own tokenizer on Llama 2 style chats:
# eval_loss on the held-out conversations' assistant turns falls.
if timeout $((300 * ts)) "$bin" train --model "$src/models/stories260K/stories260K.bin" --tokenizer "$spm" \
  --chat_template "$src/tests/data/chat/llama2.jinja" --train_file "$tmp/chat_spm.jsonl" \
  --assistant_only_loss true --max_seq_length 512 --max_steps 12 \
  --learning_rate 3e-3 --per_device_train_batch_size 4 --validation_split_percentage 10 --eval_steps 12 \
  --logging_steps 4 --r 8 --target_modules all-linear --output_dir "$tmp/run" >"$tmp/train.log" 2>&1; then
  first=$(sed -n 's/^eval at step 0: eval_loss \([0-9.]*\).*/\1/p' "$tmp/train.log")
  last=$(sed -n 's/^eval at step 12: eval_loss \([0-9.]*\).*/\1/p' "$tmp/train.log")
  if [[ -n $first && -n $last ]] && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.75 * a) }'; then
    echo "train on conversations (assistant_only_loss): eval_loss $first at step 0 -> $last at step 12"
  else
    err "train on conversations: eval_loss ${first:-?} at step 0 -> ${last:-?} at step 12, expected it to fall by at least a quarter"
  fi
else
  err "train on conversations failed: $(tail -1 "$tmp/train.log")"
fi
exit $fail
