#!/bin/bash
# `loratrain import --format peft` against Hugging Face transformers + PEFT,
# on the bundled model converted with `loratrain convert`:
#   - adapters made by PEFT itself (random non-zero B; all-linear r 8, then
#     q/v/down rsLoRA r 4, then k/o/gate/up r 2 with dropout and
#     target_modules written as "all-linear" where all seven are targeted),
#     imported on the llama2.c model (q/k lora_B rows permuted) and on the
#     Hugging Face directory, with --eval_file: the base and base + adapter
#     eval losses equal what transformers + PEFT compute on the same packed
#     windows (tests/ref/peft_import_ref.py rebuilds them from the token file
#     by io/data/dataset.h's rule) within 1e-4 relative; the text file itself
#     (tokenised by import) gives the same numbers as its token file;
#   - `train` started from the adapter (adapter_name_or_path) and from
#     import's --output_dir checkpoint (resume_from_checkpoint) report the
#     same eval_loss at step 0, and a run without the adapter the base's;
#   - the checkpoint: `inspect` verifies it, `export --format peft` gives
#     back the adapter's tensors bit for bit;
#   - broken adapters (missing fields, use_dora, modules_to_save, a wrong
#     shape, a module the model lacks, an extra layer, a truncated
#     safetensors, ...) and a missing or wrong --format: one error line
#     naming the field, non-zero exit.
# Where transformers + PEFT do not install, adapters are written in PEFT's
# layout by tests/ref/peft_import_ref.py and compared with the pure-PyTorch
# reference (tests/ref/peft_torch_ref.py) only, with a printed reason; without
# PyTorch at all the test is skipped (77).
# Usage: peft_import.sh LORATRAIN REPO_ROOT VENV_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root venv -- "$@"
llama2c=models/stories260K/stories260K.bin
tok=models/stories260K/tok512.bin
T=64
tol=1e-4

$py -c "import torch, numpy" 2>/dev/null || { echo "SKIP: $py cannot import torch and numpy"; exit 77; }
ref=("$py" tests/ref/peft_import_ref.py)
backend=torch
# PEFT_IMPORT_BACKEND=torch runs the fallback even where the venv builds.
if [[ ${PEFT_IMPORT_BACKEND:-} == torch ]]; then
  echo "PEFT_IMPORT_BACKEND=torch: pure-PyTorch reference only"
else
  suite_peft_env "$venv" "adapters in PEFT's layout from peft_import_ref.py, compared with the pure-PyTorch reference only"
  if [[ -n $hf_py ]]; then
    ref=("$hf_py" tests/ref/peft_import_ref.py)
    backend=hf
  fi
fi

"$bin" convert --model $llama2c --output_dir "$tmp/hf" >"$tmp/convert.log" 2>&1 ||
  { err "convert failed: $(tail -1 "$tmp/convert.log")"; exit 1; }
head -c 6000 data/tinyshakespeare/input.txt >"$tmp/eval.txt"
"$bin" tokenize --tokenizer $tok --model $llama2c --input "$tmp/eval.txt" --output "$tmp/eval.tok" \
  >"$tmp/tok.log" 2>&1 || { err "tokenize failed: $(tail -1 "$tmp/tok.log")"; exit 1; }

# "NAME: L" lines of import's eval output -> the number.
loss_of() { sed -n "s/^  $1: *eval_loss \([0-9.eE+-]*\).*/\1/p" "$2"; }
# relative difference of two numbers, and whether it is within a tolerance
within() { $py -c "import sys; a, b, t = map(float, sys.argv[1:]); d = abs(a - b) / abs(b); print(f'{d:.2e}'); sys.exit(0 if d <= t else 1)" "$@"; }

make_adapter() { # out, options of make-adapter...
  local out=$1
  shift
  if [[ $backend == hf ]]; then
    "$venv/bin/python" tests/ref/peft_ref.py make-adapter --model "$tmp/hf" --out "$out" "$@" >"$tmp/mk.log" 2>&1
  else
    "$py" tests/ref/peft_import_ref.py make-adapter --model "$tmp/hf" --out "$out" "$@" >"$tmp/mk.log" 2>&1
  fi || { err "making adapter $out failed: $(tail -2 "$tmp/mk.log")"; return 1; }
}

reference() { # name, adapter dir or "": prints the reference loss
  local a=()
  [[ -n $2 ]] && a=(--adapter "$2")
  "${ref[@]}" eval-loss --backend $backend --model "$tmp/hf" "${a[@]}" --tokens "$tmp/eval.tok" --seq_len $T \
    >"$tmp/ref-$1.log" 2>&1 || { err "$1: reference failed: $(tail -2 "$tmp/ref-$1.log")"; return 1; }
  awk '{print $2}' "$tmp/ref-$1.log"
}

ref_base=$(reference base "")
echo "reference ($backend) base loss: $ref_base"

variants=(
  "plain|$llama2c|--seed 3"
  "rslora|$tmp/hf|--seed 4 --rslora --r 4 --alpha 8 --targets q_proj,v_proj,down_proj"
  "partial|$llama2c|--seed 5 --r 2 --alpha 4 --dropout 0.1 --b_std 0.2 --targets k_proj,o_proj,gate_proj,up_proj"
)
for v in "${variants[@]}"; do
  IFS='|' read -r name model opts <<<"$v"
  # shellcheck disable=SC2086
  make_adapter "$tmp/pe-$name" $opts || continue
  if [[ $name == plain ]]; then # the string form of the same targets
    "$py" tests/ref/peft_import_ref.py mutate "$tmp/pe-$name" "$tmp/pe-$name-s" all-linear &&
      rm -rf "$tmp/pe-$name" && mv "$tmp/pe-$name-s" "$tmp/pe-$name"
  fi
  "$bin" import --format peft "$tmp/pe-$name" --model "$model" --eval_file "$tmp/eval.tok" --max_seq_length $T \
    --output_dir "$tmp/ck-$name" >"$tmp/imp-$name.log" 2>&1 ||
    { err "$name: import failed: $(tail -1 "$tmp/imp-$name.log")"; continue; }
  ours_base=$(loss_of base "$tmp/imp-$name.log")
  ours=$(loss_of "base + adapter" "$tmp/imp-$name.log")
  theirs=$(reference "$name" "$tmp/pe-$name") || continue
  [[ -n $ours_base && -n $ours ]] || { err "$name: no eval_loss lines in import's output"; continue; }
  if d=$(within "$ours_base" "$ref_base" $tol); then
    echo "$name: base eval_loss $ours_base vs reference $ref_base: relative $d"
  else
    err "$name: base eval_loss $ours_base vs reference $ref_base: relative $d > $tol"
  fi
  if d=$(within "$ours" "$theirs" $tol); then
    echo "$name: base + adapter eval_loss $ours vs reference $theirs: relative $d"
  else
    err "$name: base + adapter eval_loss $ours vs reference $theirs: relative $d > $tol"
  fi
  # The adapter must matter, or the comparison above proves nothing.
  within "$theirs" "$ref_base" 1e-2 >/dev/null && err "$name: the adapter moves the reference loss by under 1%"
  grep -q "^  RoPE: " "$tmp/imp-$name.log" || err "$name: the summary says nothing about RoPE"
  grep -q "^  total " "$tmp/imp-$name.log" || err "$name: the summary has no parameter total"

  # The checkpoint: inspect verifies it; export gives the adapter back.
  "$bin" inspect "$tmp/ck-$name/checkpoint-0.h5" >"$tmp/insp.log" 2>&1 ||
    err "$name: inspect of import's checkpoint failed: $(tail -1 "$tmp/insp.log")"
  grep -q "global_step 0" "$tmp/insp.log" || err "$name: the checkpoint is not at step 0"
  "$bin" export --format peft "$tmp/ck-$name/checkpoint-0.h5" "$tmp/exp-$name" --model "$model" \
    >"$tmp/exp.log" 2>&1 || err "$name: export of import's checkpoint failed: $(tail -1 "$tmp/exp.log")"
  if out=$("$py" tests/ref/peft_import_ref.py same-tensors "$tmp/pe-$name/adapter_model.safetensors" \
    "$tmp/exp-$name/adapter_model.safetensors" 2>&1); then
    echo "$name: import -> checkpoint -> export: $out"
  else
    err "$name: import -> checkpoint -> export: $out"
  fi
done

# train reports import's numbers at step 0: from the adapter directory, from
# import's checkpoint, and without an adapter (the base).
train() { # name, options...
  local name=$1
  shift
  "$bin" train --model $llama2c --train_file "$tmp/eval.tok" --validation_file "$tmp/eval.tok" --max_seq_length $T \
    --target_modules all-linear --r 8 --lora_alpha 16 --learning_rate 0 --warmup_steps 0 --max_steps 1 \
    --threads 1 --disable_tqdm --output_dir "$tmp/tr-$name" "$@" >"$tmp/tr-$name.log" 2>&1 ||
    { err "train ($name) failed: $(tail -1 "$tmp/tr-$name.log")"; return 1; }
  sed -n 's/^{"step":0,"eval_loss":\([^,]*\),.*/\1/p' "$tmp/tr-$name/metrics.jsonl"
}
if [[ -f $tmp/imp-plain.log ]]; then
  ours=$(loss_of "base + adapter" "$tmp/imp-plain.log")
  ours_base=$(loss_of base "$tmp/imp-plain.log")
  for how in adapter resume base; do
    case $how in
      adapter) got=$(train $how --adapter_name_or_path "$tmp/pe-plain") want=$ours ;;
      resume) got=$(train $how --resume_from_checkpoint "$tmp/ck-plain/checkpoint-0.h5") want=$ours ;;
      base) got=$(train $how) want=$ours_base ;;
    esac
    [[ -n $got ]] || { err "train ($how): no eval_loss at step 0"; continue; }
    # import prints 8 decimals of the same double
    if d=$(within "$got" "$want" 1e-8); then
      echo "train ($how) eval_loss at step 0 $got = import's $want (relative $d)"
    else
      err "train ($how) eval_loss at step 0 $got, import printed $want (relative $d)"
    fi
  done
fi

# The text file, tokenised by import itself, gives the token file's numbers.
if [[ -f $tmp/imp-plain.log ]]; then
  # Run from an empty folder: without --output_dir import writes nothing.
  mkdir -p "$tmp/cwd"
  if (cd "$tmp/cwd" && "$bin" import --format peft "$tmp/pe-plain" --model "$OLDPWD/$llama2c" \
    --eval_file "$tmp/eval.txt" --tokenizer "$OLDPWD/$tok" --max_seq_length $T) >"$tmp/imp-text.log" 2>&1; then
    [[ -z $(ls -A "$tmp/cwd") ]] || err "import without --output_dir wrote $(ls -A "$tmp/cwd")"
    for which in base "base + adapter"; do
      a=$(loss_of "$which" "$tmp/imp-text.log")
      b=$(loss_of "$which" "$tmp/imp-plain.log")
      if [[ -n $a && $a == "$b" ]]; then
        echo "text eval file: $which eval_loss $a, as the token file's"
      else
        err "text eval file: $which eval_loss $a, token file $b"
      fi
    done
  else
    err "import of a text eval file failed: $(tail -1 "$tmp/imp-text.log")"
  fi
  "$bin" import --format peft "$tmp/pe-plain" --model $llama2c --eval_file "$tmp/eval.txt" >"$tmp/o" 2>"$tmp/e" &&
    err "a text eval file without --tokenizer was accepted"
fi

# Broken adapters: one line, naming what is wrong, non-zero exit.
bad() { # kind, expected text in the error
  local kind=$1 want=$2
  "$py" tests/ref/peft_import_ref.py mutate "$tmp/pe-plain" "$tmp/bad-$kind" "$kind" ||
    { err "mutate $kind failed"; return; }
  "$bin" import --format peft "$tmp/bad-$kind" --model $llama2c --eval_file "$tmp/eval.tok" --max_seq_length $T \
    >"$tmp/o" 2>"$tmp/e"
  local rc=$? lines
  lines=$(wc -l <"$tmp/e")
  if [[ $rc -eq 0 ]]; then
    err "$kind: accepted"
  elif [[ $lines -ne 1 ]] || ! grep -qF -- "$want" "$tmp/e"; then
    err "$kind: expected one line with \"$want\", got ($lines lines): $(head -3 "$tmp/e")"
  else
    echo "$kind: rejected (exit $rc): $(cat "$tmp/e")"
  fi
  grep -q "eval_loss" "$tmp/o" && err "$kind: evaluated before refusing"
}
if [[ -d $tmp/pe-plain ]]; then
  bad no-r "r is missing"
  bad no-lora_alpha "lora_alpha is missing"
  bad no-target_modules "target_modules is missing"
  bad no-config "adapter_config.json"
  bad peft_type "peft_type"
  bad task_type "task_type"
  bad dora "use_dora"
  bad modules_to_save "modules_to_save"
  bad layers_to_transform "layers_to_transform"
  bad rank_pattern "rank_pattern"
  bad bias "bias"
  bad fan_in_fan_out "fan_in_fan_out"
  bad regex-targets "regular expression"
  bad lacking-module "lm_head"
  bad shape "expected [8, 172]"
  bad missing-tensor "missing tensor"
  bad extra-layer "layers.5."
  bad truncated "adapter_model.safetensors"
fi
for args in "" "--format gguf" "--format"; do
  # shellcheck disable=SC2086
  "$bin" import $args "$tmp/pe-plain" --model $llama2c >"$tmp/o" 2>"$tmp/e"
  rc=$?
  if [[ $rc -eq 0 || $(wc -l <"$tmp/e") -ne 1 ]] || ! grep -q -- "--format" "$tmp/e"; then
    err "import ${args:-without --format}: exit $rc, $(head -2 "$tmp/e")"
  else
    echo "import ${args:-without --format}: rejected: $(cat "$tmp/e")"
  fi
done
exit $fail
