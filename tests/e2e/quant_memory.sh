#!/bin/bash
# Memory of a quantized base, measured: the same random 25.6M-parameter Llama
# (tests/ref/make_random_model.py) trained two steps with an fp32 base and with
# NF4 + double quantization. From output_dir/memory.json of each run:
#   - NF4 + DQ stores the decoder linears in 0.515..0.520 bytes per parameter
#     (QLoRA's 4.127 bits = 0.516), fp32 in exactly 4, and the tracked
#     allocator's categories hold exactly those bytes;
#   - the process peak (VmHWM) falls by what that predicts -- the fp32
#     linears minus the quantized blob and the one-layer dequantization
#     workspace -- within 10%;
#   - NF4 loaded from a Hugging Face directory of the same model (loratrain
#     convert: F32 model.safetensors, memory-mapped) peaks within 8 MiB of
#     NF4 from the .bin: tensors are converted one at a time and each one's
#     pages of the mapping are dropped once copied, so the fp32 file is never
#     resident whole (it was: +48 MiB for this model, most of its 97.5 MiB).
# Usage: quant_memory.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
"$py" "$root/tests/ref/make_random_model.py" "$tmp/model.bin" --dim 512 --hidden 1376 --layers 8 || exit 1
"$bin" convert --model "$tmp/model.bin" --output_dir "$tmp/hf" >"$tmp/convert.log" 2>&1 ||
  { echo "FAIL loratrain convert:"; tail -5 "$tmp/convert.log"; exit 1; }
model=$tmp/model.bin
run() { # out_dir, extra args...
  local out=$1
  shift
  "$bin" train --model "$model" --tokenizer "$root/models/stories260K/tok512.bin" \
    --train_file "$root/data/tinyshakespeare/input.txt" --max_seq_length 64 \
    --per_device_train_batch_size 2 --max_steps 2 --threads 1 --disable_tqdm \
    --output_dir "$out" "$@" >"$out.log" 2>&1 || { echo "FAIL loratrain train:"; tail -5 "$out.log"; exit 1; }
}
run "$tmp/fp32"
run "$tmp/nf4" --load_in_4bit --bnb_4bit_use_double_quant
model=$tmp/hf
run "$tmp/nf4_hf" --load_in_4bit --bnb_4bit_use_double_quant
"$py" - "$tmp/fp32/memory.json" "$tmp/nf4/memory.json" "$tmp/nf4_hf/memory.json" <<'PY'
import json, sys
f, q, h = (json.load(open(p)) for p in sys.argv[1:4])
fb, qb = f["base"], q["base"]
fail = []
MiB = 2.0 ** 20
per = qb["quant_bytes"] / qb["quant_params"]
print("NF4 + DQ: %d decoder-linear parameters in %d bytes: %.4f bytes (%.4f bits) per parameter"
      % (qb["quant_params"], qb["quant_bytes"], per, 8 * per))
if not 0.515 <= per <= 0.520:
    fail.append("NF4+DQ bytes per parameter %.4f outside 0.515..0.520" % per)
fper = f["tracked"]["base_weights"]["peak_bytes"] / fb["fp32_params"]
print("fp32: %d parameters in %d tracked bytes: %.4f bytes per parameter"
      % (fb["fp32_params"], f["tracked"]["base_weights"]["peak_bytes"], fper))
if fper != 4.0:
    fail.append("fp32 base is %.4f bytes per parameter, expected 4" % fper)
if q["tracked"]["quantized_base"]["peak_bytes"] != qb["quant_bytes"]:
    fail.append("tracked quantized_base %d bytes, the model reports %d"
                % (q["tracked"]["quantized_base"]["peak_bytes"], qb["quant_bytes"]))
if q["tracked"]["base_weights"]["peak_bytes"] != qb["fp32_bytes"]:
    fail.append("tracked base_weights %d bytes with NF4, the model reports %d fp32 bytes"
                % (q["tracked"]["base_weights"]["peak_bytes"], qb["fp32_bytes"]))
resident = (qb["quant_bytes"] + qb["fp32_bytes"]) / (qb["quant_params"] + qb["fp32_params"])
print("whole base resident with NF4: %.4f bytes per parameter (embeddings, norms in fp32); "
      "dequantization workspace %.2f MiB (one layer in fp32)" % (resident, qb["workspace_bytes"] / MiB))
expect = qb["quant_params"] * 4 - qb["quant_bytes"] - qb["workspace_bytes"]
got = f["vm_hwm_bytes"] - q["vm_hwm_bytes"]
print("process peak (VmHWM): fp32 %.2f MiB, NF4 %.2f MiB: %.2f MiB less, %.2f MiB predicted (%+.1f%%)"
      % (f["vm_hwm_bytes"] / MiB, q["vm_hwm_bytes"] / MiB, got / MiB, expect / MiB,
         100.0 * (got - expect) / expect))
if abs(got - expect) > 0.10 * expect:
    fail.append("measured saving %.2f MiB is not within 10%% of %.2f MiB" % (got / MiB, expect / MiB))
# About one tensor of the mapping resident at a time (the largest is 2.7 MiB
# here), plus allocator noise.
over = h["vm_hwm_bytes"] - q["vm_hwm_bytes"]
print("process peak (VmHWM) with NF4: from the .bin %.2f MiB, from the HF directory %.2f MiB (%+.2f MiB)"
      % (q["vm_hwm_bytes"] / MiB, h["vm_hwm_bytes"] / MiB, over / MiB))
if over > 8 * MiB:
    fail.append("NF4 from the HF directory peaks %.2f MiB above NF4 from the .bin, more than 8 MiB: "
                "the memory-mapped fp32 file stays resident" % (over / MiB))
for m in fail:
    print("FAIL " + m)
sys.exit(1 if fail else 0)
PY
