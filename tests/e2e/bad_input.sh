#!/bin/bash
# Bad input to the loratrain command: each case must end with exit status 1
# or 2 (not a signal or sanitizer abort), exactly one line on stderr naming
# the file, field or option and what was expected, and nothing on stdout.
# Usage: bad_input.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
model="$root/models/stories260K/stories260K.bin"
tok="$root/models/stories260K/tok512.bin"
cases=0

# expect NAME "substring1|substring2|..." command...
# (WANT_RC=2 expect ...: the exit status must be exactly that)
expect() {
  local name=$1 want=$2
  shift 2
  cases=$((cases + 1))
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  local msg
  msg=$(cat "$tmp/err")
  if [[ $rc != 1 && $rc != 2 ]]; then
    echo "FAIL $name: exit status $rc, expected 1 or 2"; fail=1
  elif [[ -n ${WANT_RC:-} && $rc != "$WANT_RC" ]]; then
    echo "FAIL $name: exit status $rc, expected $WANT_RC: $(cat "$tmp/err")"; fail=1
  elif [[ $lines != 1 ]]; then
    echo "FAIL $name: $lines lines on stderr, expected one:"; sed 's/^/    /' "$tmp/err"; fail=1
  elif [[ -s "$tmp/out" ]]; then
    echo "FAIL $name: wrote to stdout:"; sed 's/^/    /' "$tmp/out"; fail=1
  else
    IFS='|' read -ra parts <<<"$want"
    for p in "${parts[@]}"; do
      if [[ "$msg" != *"$p"* ]]; then
        echo "FAIL $name: message lacks \"$p\": $msg"; fail=1; return
      fi
    done
    echo "ok   $name: $msg"
  fi
}

# patch FILE OUT INDEX VALUE: copy of FILE with int32 header field INDEX set
patch_header() {
  $py - "$1" "$2" "$3" "$4" <<'PY'
import struct, sys
src, dst, idx, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = bytearray(open(src, 'rb').read())
struct.pack_into('<i', b, 4 * idx, val)
open(dst, 'wb').write(b)
PY
}

gen() {
  local m=$1 t=${2:-$tok}
  shift; [[ $# -gt 0 ]] && shift
  "$bin" generate --model "$m" --tokenizer "$t" --steps 4 --temperature 0 "$@"
}

head -c 1000000 "$model" >"$tmp/truncated.bin"
expect "truncated checkpoint" "truncated.bin|1000000 bytes|implies 1056540 bytes" gen "$tmp/truncated.bin"
cp "$model" "$tmp/oversized.bin"; printf 'garbage' >>"$tmp/oversized.bin"
expect "oversized checkpoint" "oversized.bin|1056547 bytes|implies 1056540 bytes" gen "$tmp/oversized.bin"
head -c 10 "$model" >"$tmp/tiny.bin"
expect "header cut short" "tiny.bin|10 bytes|header" gen "$tmp/tiny.bin"
patch_header "$model" "$tmp/dim0.bin" 0 0
expect "zero dim" "dim0.bin|dim = 0|expected" gen "$tmp/dim0.bin"
patch_header "$model" "$tmp/layers.bin" 2 -5
expect "negative n_layers" "layers.bin|n_layers = -5" gen "$tmp/layers.bin"
patch_header "$model" "$tmp/heads.bin" 3 3
patch_header "$tmp/heads.bin" "$tmp/heads3.bin" 4 3
expect "heads do not divide dim" "heads3.bin|n_heads = 3 does not divide dim = 64" gen "$tmp/heads3.bin"
patch_header "$model" "$tmp/kv.bin" 4 3
expect "kv heads do not divide heads" "kv.bin|n_kv_heads = 3 does not divide n_heads = 8" gen "$tmp/kv.bin"
patch_header "$model" "$tmp/vocab.bin" 5 -512
expect "negative vocab without classifier" "vocab.bin|implies" gen "$tmp/vocab.bin"
$py - "$model" "$tmp/nan.bin" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
struct.pack_into('<f', b, 28 + 4 * 100, float('nan'))
open(sys.argv[2], 'wb').write(b)
PY
expect "NaN weight" "nan.bin|model.embed_tokens.weight|element 100|finite" gen "$tmp/nan.bin"
expect "missing checkpoint" "$tmp/nope.bin|cannot open" gen "$tmp/nope.bin"
expect "missing tokenizer" "$tmp/nope_tok.bin|cannot open" gen "$model" "$tmp/nope_tok.bin"
head -c 3000 "$tok" >"$tmp/tok_trunc.bin"
expect "truncated tokenizer" "tok_trunc.bin" gen "$model" "$tmp/tok_trunc.bin"
expect "no tokenizer given" "--tokenizer|missing" "$bin" generate --model "$model"
expect "LoRA rank zero" "r = 0|at least 1" "$bin" info --model "$model" --r 0
expect "LoRA rank above min(in, out)" "r = 40|k_proj|min(in, out) = 32" "$bin" info --model "$model" --r 40 --target_modules q_proj,k_proj
expect "unknown target module" "\"foo\"|did you mean" "$bin" info --model "$model" --target_modules q_proj,foo
expect "LoRA dropout out of range" "lora_dropout = 1.5" "$bin" info --model "$model" --lora_dropout 1.5
expect "non-numeric rank" "--r eight|integer" "$bin" info --model "$model" --r eight
expect "unknown option" "--colour|unknown option" "$bin" generate --model "$model" --tokenizer "$tok" --colour red
expect "unknown command" "unknown command \"trian\"" "$bin" trian

# training data and configuration (loratrain train)
train() { "$bin" train --model "$model" --tokenizer "$tok" --output_dir "$tmp/run" --max_steps 1 \
          --disable_tqdm --max_seq_length 64 "$@"; }
: >"$tmp/empty.txt"
expect "empty training file" "empty.txt|empty" train --train_file "$tmp/empty.txt"
printf 'line one\nline two \xff\xfe broken\n' >"$tmp/bad_utf8.txt"
expect "invalid UTF-8" "bad_utf8.txt|line 2|UTF-8" train --train_file "$tmp/bad_utf8.txt"
printf '{"text": "fine"}\n{"text": "broken\n' >"$tmp/bad.jsonl"
expect "invalid JSON line" "bad.jsonl:2:17: end of text inside a string" train --train_file "$tmp/bad.jsonl"
# strict JSON in the data: the report's record (cJSON read \uZZZZ as a NUL and
# trained on "bad " alone), NUL bytes, kinds of record mixed in one file
printf '{"text": "fine"}\n{"text": "bad \\uZZZZ escape and a long tail"}\n' >"$tmp/escape.jsonl"
expect "invalid \\u escape in JSONL" "escape.jsonl:2:15: invalid escape \"\\uZZZZ\" (expected \\u and 4 hex digits)" \
  train --train_file "$tmp/escape.jsonl"
printf '{"text": "fine"}\n{"text": "a\0b"}\n' >"$tmp/nul.jsonl"
expect "NUL byte in JSONL" "nul.jsonl:2:12: NUL byte in a string" train --train_file "$tmp/nul.jsonl"
printf '{"text": "fine"}\n{"text": "dup", "text": "again"}\n' >"$tmp/dupkey.jsonl"
expect "duplicate key in a record" "dupkey.jsonl:2:17: duplicate key \"text\"" train --train_file "$tmp/dupkey.jsonl"
printf '{"prompt": "a", "completion": " b"}\n\n{"text": "c"}\n' >"$tmp/mixed.jsonl"
expect "mixed record kinds" "mixed.jsonl line 3: a {\"text\"} record, but line 1 (the first record) is a {\"prompt\", \"completion\"} record" \
  train --train_file "$tmp/mixed.jsonl"
# a tokenizer_config.json that is there but not JSON is refused, not read as absent:
# beside a tokenizer.json (its EOS) and beside the tokenizer a chat template comes from
mkdir -p "$tmp/tokdir" "$tmp/chatdir"
tail -c +2 "$root/tests/fuzz/seeds/tokenizer/gpt2.json" >"$tmp/tokdir/tokenizer.json"  # (the seed's first byte picks the format)
printf '{"eos_token": "<|endoftext|>",}' >"$tmp/tokdir/tokenizer_config.json"
printf 'hello world\n' >"$tmp/hello.txt"
expect "tokenizer_config.json not JSON" "tokenizer_config.json:1:30: trailing comma" \
  "$bin" tokenize --tokenizer "$tmp/tokdir/tokenizer.json" --vocab_size 1000 --input "$tmp/hello.txt" --output "$tmp/hello.tok"
cp "$tok" "$tmp/chatdir/tok512.bin"
printf '{\n  "chat_template": "{%% for m in messages %%}{{ m.content }}{%% endfor %%}",\n  "chat_template": "x"\n}\n' \
  >"$tmp/chatdir/tokenizer_config.json"
printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' >"$tmp/chat.jsonl"
expect "chat template from a tokenizer_config.json with a duplicate key" \
  "tokenizer_config.json:3:3: duplicate key \"chat_template\"" \
  "$bin" train --model "$model" --tokenizer "$tmp/chatdir/tok512.bin" --train_file "$tmp/chat.jsonl" \
  --output_dir "$tmp/run" --max_steps 1 --disable_tqdm --max_seq_length 64
printf '{"text": "fine"}\n{"prompt": "no completion here"}\n' >"$tmp/missing.jsonl"
expect "missing field" "missing.jsonl|line 2|completion" train --train_file "$tmp/missing.jsonl"
printf '{"text": "fine"}\n{"text": 42}\n' >"$tmp/type.jsonl"
expect "field not a string" "type.jsonl|line 2|text" train --train_file "$tmp/type.jsonl"
$py - "$tmp/long.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    f.write(json.dumps({"text": "Once upon a time."}) + "\n")
    f.write(json.dumps({"text": "Once upon a time, " * 40}) + "\n")
PY
expect "sequence longer than max_seq_length" "long.jsonl|line 2|max_seq_length" \
  train --train_file "$tmp/long.jsonl" --truncation false
$py - "$tmp/oov.bin" <<'PY'
import struct, sys
ids = [1, 5, 600, 7] + [9] * 200
with open(sys.argv[1], "wb") as f:
    f.write(b"LTTK" + struct.pack("<IIIQ", 1, 2, 512, len(ids)) + struct.pack("<%dH" % len(ids), *ids))
PY
expect "token id out of the vocabulary" "oov.bin|600" train --train_file "$tmp/oov.bin"
printf '{"learning_rte": 1e-4}' >"$tmp/typo.json"
expect "unknown config key" "typo.json|learning_rte|did you mean \"learning_rate\"" \
  "$bin" train --config "$tmp/typo.json"
printf '{\n "r": 8,\n "max_steps": \n}' >"$tmp/broken.json"
WANT_RC=2 expect "config not JSON" "broken.json:4:1: '}' (expected a value" "$bin" train --config "$tmp/broken.json"
# configuration errors end with status 2, a missing --config file too
WANT_RC=2 expect "missing config file" "$tmp/nope.json|cannot open" "$bin" train --config "$tmp/nope.json"
printf '{\n "r": 8,\n "lora_alpha": 16,\n "r": 16\n}\n' >"$tmp/dup.json"
WANT_RC=2 expect "duplicate config key" "dup.json:4:2: duplicate key \"r\"|first is at line 2, column 2" \
  "$bin" train --config "$tmp/dup.json"
printf '{"r": null}' >"$tmp/null.json"
WANT_RC=2 expect "null in a config" "null.json: r = null, expected an integer in 1..1048576|leave the key out" \
  "$bin" train --config "$tmp/null.json"
printf '{"learning_rate": 1e-4,}' >"$tmp/comma.json"
WANT_RC=2 expect "trailing comma in a config" "comma.json:1:23: trailing comma" "$bin" train --config "$tmp/comma.json"
WANT_RC=2 expect "negative seed" "seed = \"-1\", expected an integer in 0..18446744073709551615" \
  train --train_file "$root/data/tinystories/tinystories_v2_sample.txt" --seed -1
expect "unknown override" "--per_device_batch_size|did you mean" \
  train --train_file "$root/data/tinystories/tinystories_v2_sample.txt" --per_device_batch_size 4
expect "missing train_file" "train_file|missing" "$bin" train --model "$model" --tokenizer "$tok"
expect "text data without a tokenizer" "tokenizer: missing|token files" "$bin" train --model "$model" \
  --train_file "$root/data/tinystories/tinystories_v2_sample.txt" --output_dir "$tmp/run"
expect "bad scheduler" "lr_scheduler_type|cosine_with_restarts" \
  train --train_file "$root/data/tinystories/tinystories_v2_sample.txt" --lr_scheduler_type cosine_with_restarts
# quantized base
shk="$root/data/tinyshakespeare/input.txt"
expect "4-bit block size odd" "bnb_4bit_blocksize = 63|even" \
  train --train_file "$shk" --load_in_4bit --bnb_4bit_blocksize 63
expect "4-bit and 8-bit together" "load_in_4bit|load_in_8bit|choose one" \
  train --train_file "$shk" --load_in_4bit --load_in_8bit
expect "unknown 4-bit type" "bnb_4bit_quant_type = \"nf2\"|nf4 or fp4" \
  train --train_file "$shk" --load_in_4bit --bnb_4bit_quant_type nf2
expect "compute dtype the CPU lacks" "bnb_4bit_compute_dtype = \"bfloat16\"|float32" \
  train --train_file "$shk" --load_in_4bit --bnb_4bit_compute_dtype bfloat16
expect "generate: 4-bit and 8-bit together" "load_in_4bit and load_in_8bit|choose one" \
  gen "$model" "$tok" --load_in_4bit --load_in_8bit
expect "info: odd block size" "bnb_4bit_blocksize = 7|even" \
  "$bin" info --model "$model" --load_in_4bit --bnb_4bit_blocksize 7
$py - "$model" "$tmp/inf.bin" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
# the first element of layers.0 q_proj (after the header, the embedding and the first norm)
dim, vocab = struct.unpack_from('<i', b, 0)[0], struct.unpack_from('<i', b, 20)[0]
off = 28 + 4 * (vocab * dim + 5 * dim) + 4 * 17
struct.pack_into('<f', b, off, float('inf'))
open(sys.argv[2], 'wb').write(b)
PY
expect "non-finite weight in a quantized base" "inf.bin|q_proj|finite" \
  "$bin" train --model "$tmp/inf.bin" --tokenizer "$tok" --train_file "$shk" --load_in_4bit
expect "adapter missing" "nope_adapter|adapter_config.json" gen "$model" "$tok" --adapter "$tmp/nope_adapter"

# accepted, as Hugging Face accepts them
# warmup longer than the run: the lr rises all run (step s at lr s / W)
if "$bin" train --model "$model" --tokenizer "$tok" --train_file "$shk" --output_dir "$tmp/warm" --max_steps 3 \
     --warmup_steps 10 --learning_rate 1e-3 --logging_steps 1 --eval_steps 0 --max_seq_length 32 \
     --per_device_train_batch_size 2 --disable_tqdm >"$tmp/warm.log" 2>&1 &&
   $py - "$tmp/warm/metrics.jsonl" <<'PY'
import json, sys
lrs = [r["learning_rate"] for r in map(json.loads, open(sys.argv[1])) if "learning_rate" in r]
want = [1e-3 * s / 10 for s in range(3)]
ok = len(lrs) == 3 and all(abs(a - b) <= 1e-7 * 1e-3 for a, b in zip(lrs, want))
print("%s warmup 10 > max_steps 3: lr %s, expected %s" % ("ok  " if ok else "FAIL", lrs, want))
sys.exit(0 if ok else 1)
PY
then :; else echo "FAIL warmup longer than the run: $(tail -1 "$tmp/warm.log")"; fail=1; fi
# one default for lora_alpha: train's --help and info's report agree (PEFT's 8)
help_alpha=$("$bin" train --help | sed -n 's/^ *--lora_alpha .*\[default: \([0-9.]*\)\].*/\1/p')
info_alpha=$("$bin" info --model "$model" | sed -n 's/.*lora_alpha \([0-9.]*\),.*/\1/p')
if [[ -n $help_alpha && $help_alpha == "$info_alpha" && $help_alpha == 8 ]]; then
  echo "ok   lora_alpha default: train $help_alpha, info $info_alpha"
else
  echo "FAIL lora_alpha default: train --help says ${help_alpha:-?}, info uses ${info_alpha:-?}, expected 8 both"; fail=1
fi
# --model takes what io/model/any_format.c reads
if "$bin" train --help | grep -q -- "--model .*llama2.c checkpoint (.bin), or a Hugging Face model directory"; then
  echo "ok   train --help: --model takes llama2.c files and Hugging Face directories"
else
  echo "FAIL train --help: --model's line does not name both formats"; fail=1
fi

# ---------------------------------------------------------------------------
# The backend (model/backend.c): the `device` key of train and --device of
# every command that builds a model. An unknown device, and one this build
# lacks, is one line naming the choices and exit 2, before anything is
# written; cpu and auto (which is cpu without the CUDA backend) give the
# default's bits.
dev_data="$root/data/tinyshakespeare/input.txt"
dev_train() { # OUT_DIR [options]: 3 steps of LoRA on 2 x 32 tokens
  local out=$1
  shift
  "$bin" train --model "$model" --tokenizer "$tok" --train_file "$dev_data" --output_dir "$out" \
    --max_steps 3 --eval_steps 0 --logging_steps 1 --max_seq_length 32 --per_device_train_batch_size 2 \
    --learning_rate 1e-2 --lora_dropout 0.1 --threads 1 --disable_tqdm "$@"
}
WANT_RC=2 expect "train: unknown device" 'device = "tpu": expected cpu, cuda or auto (this build: ' \
  dev_train "$tmp/dev_tpu" --device tpu
[[ -e $tmp/dev_tpu ]] && { echo "FAIL train: unknown device: output_dir was created"; fail=1; }
# the choices this build holds, as the message names them
dev_built=$(sed -n 's/.*(this build: \(.*\))$/\1/p' "$tmp/err")
printf '{"device": "gpu"}\n' >"$tmp/dev.json"
WANT_RC=2 expect "train: unknown device in the config file" 'device = "gpu": expected cpu, cuda or auto' \
  dev_train "$tmp/dev_json" --config "$tmp/dev.json"
if [[ $dev_built != *cuda* ]]; then
  for c in train generate; do
    if [[ $c == train ]]; then set -- dev_train "$tmp/dev_cuda" --device cuda
    else set -- gen "$model" "$tok" --device cuda; fi
    WANT_RC=2 expect "$c: device cuda in a build without it" \
      "device = cuda: this loratrain was built without the CUDA backend; choices: cpu, auto" "$@"
  done
  set --
fi
# cpu, auto and the default (auto): the same adapter, bit for bit, and the
# log names what was asked and what it became
dev_same=1
for d in default cpu auto; do
  opt=()
  [[ $d != default ]] && opt=(--device "$d")
  if ! dev_train "$tmp/dev_$d" "${opt[@]}" >"$tmp/dev_$d.log" 2>&1; then
    echo "FAIL train --device $d: $(tail -1 "$tmp/dev_$d.log")"; fail=1; dev_same=0; continue
  fi
  want="compute: cpu backend, OpenBLAS "
  [[ $d != cpu ]] && want="compute: auto -> cpu backend, OpenBLAS "
  if [[ $dev_built != *cuda* ]] && ! grep -q "^$want" "$tmp/dev_$d.log"; then
    echo "FAIL train --device $d: the log lacks \"$want\": $(grep '^compute' "$tmp/dev_$d.log")"; fail=1
  fi
done
if ((dev_same)); then
  if ! grep -q "^compute: auto -> cpu " "$tmp/dev_auto.log"; then
    echo "ok   auto is not cpu here ($(grep '^compute' "$tmp/dev_auto.log")): its bits are not compared"
  elif dev_losses=$(grep -o '"loss":[^,]*' "$tmp/dev_default/metrics.jsonl") && [[ $(wc -l <<<"$dev_losses") == 3 ]] &&
       cmp -s "$tmp/dev_default/adapter_model.safetensors" "$tmp/dev_cpu/adapter_model.safetensors" &&
       cmp -s "$tmp/dev_default/adapter_model.safetensors" "$tmp/dev_auto/adapter_model.safetensors" &&
       [[ $dev_losses == "$(grep -o '"loss":[^,]*' "$tmp/dev_cpu/metrics.jsonl")" &&
          $dev_losses == "$(grep -o '"loss":[^,]*' "$tmp/dev_auto/metrics.jsonl")" ]]; then
    echo "ok   train: --device cpu, --device auto and the default give the same losses and adapter bytes"
  else
    echo "FAIL train: --device cpu, --device auto and the default give different adapters or losses"; fail=1
  fi
fi
# generate takes it too: greedy text the same on cpu, auto and the default
gen "$model" "$tok" --steps 16 >"$tmp/dev_gen_default.txt" 2>/dev/null
gen "$model" "$tok" --steps 16 --device cpu >"$tmp/dev_gen_cpu.txt" 2>/dev/null
gen "$model" "$tok" --steps 16 --device auto >"$tmp/dev_gen_auto.txt" 2>/dev/null
if [[ -s $tmp/dev_gen_default.txt ]] && cmp -s "$tmp/dev_gen_default.txt" "$tmp/dev_gen_cpu.txt" &&
   cmp -s "$tmp/dev_gen_default.txt" "$tmp/dev_gen_auto.txt"; then
  echo "ok   generate: --device cpu, --device auto and the default give the same text"
else
  echo "FAIL generate: --device cpu / auto / default differ or are empty"; fail=1
fi
# every command that builds a model refuses an unknown device (arguments
# enough to reach the backend: nothing is read or written before it) and
# documents the option
printf '0 1 2\n' >"$tmp/dev_ids.txt"
adapter_dir="$tmp/dev_default"
for c in generate logits convert merge export import; do
  case $c in
    generate) set -- gen "$model" "$tok" ;;
    logits) set -- "$bin" logits --model "$model" --ids "$tmp/dev_ids.txt" --out "$tmp/dev_logits.f32" ;;
    convert) set -- "$bin" convert --model "$model" --output_dir "$tmp/dev_convert" ;;
    merge) set -- "$bin" merge --model "$model" --adapter "$adapter_dir" --output_dir "$tmp/dev_merge" ;;
    export) set -- "$bin" export --format peft "$tmp/no-checkpoint.h5" "$tmp/dev_export" ;;
    import) set -- "$bin" import --format peft "$adapter_dir" --model "$model" ;;
  esac
  WANT_RC=2 expect "$c: unknown device" 'device = "tpu": expected cpu, cuda or auto' "$@" --device tpu
  if "$bin" "$c" --help | grep -q -- "--device D .*cpu, cuda or auto"; then
    echo "ok   $c --help: --device"
  else
    echo "FAIL $c --help does not document --device"; fail=1
  fi
done
set --
for p in dev_logits.f32 dev_convert dev_merge dev_export; do
  [[ -e $tmp/$p ]] && { echo "FAIL $p written although the device was refused"; fail=1; }
done
if "$bin" train --help | grep -q -- "--device .*cpu, cuda .*auto.*\[default: auto\]"; then
  echo "ok   train --help: device, default auto"
else
  echo "FAIL train --help does not document device with its default auto"; fail=1
fi

echo "$cases cases"
exit $fail
