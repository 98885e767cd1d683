#!/bin/bash
# The GPU benchmark (issue 30): loratrain --device cuda beside PyTorch +
# PEFT (+ bitsandbytes for QLoRA) on the same GPU in the same invocation, for
# LoRA, QLoRA with fp32 compute, QLoRA with bf16 compute and full
# fine-tuning of one random Llama; per row tokens/s, MFU and peak device
# memory. Without a GPU (nvidia-smi missing, or listing no device) it prints
# one line and exits 77.
#
#   tokens/s  the median over the timed steps (after WARMUP untimed ones) of
#             batch x seq / step time: loratrain's metrics.jsonl tokens_per_s,
#             PyTorch's synchronised step (benchmarks/gpu_torch.py)
#   MFU       6 N tokens/s over the GPU's peak, N the model's parameters (the
#             usual 6N, though LoRA skips the weight-gradient GEMMs); the peak
#             of the row's compute dtype, dense, from NVIDIA's datasheets,
#             chosen by `nvidia-smi --query-gpu=name` (table below): fp32 rows
#             against FP32 (both sides run fp32 GEMMs without TF32), bf16 rows
#             against BF16 Tensor Core
#   peak      loratrain: the device space of its memory report
#             (output_dir/memory.json); PyTorch: torch.cuda.max_memory_allocated
#
# The model: tests/ref/make_random_model.py's Llama (weights N(0, 0.02^2),
# tied classifier) for loratrain, transformers' LlamaForCausalLM of the same
# shape for PyTorch; LoRA r R (lora_alpha 2R, dropout 0) on all linears;
# QLoRA: NF4, double quant, blocks of 64. Data: Tiny Shakespeare in the
# bundled 512-token vocabulary (PyTorch: random ids below 512).
#
# Usage: benchmarks/gpu.sh [BUILD_DIR]
# Environment (defaults in brackets):
#   LT_GPU_BENCH_BIN [BUILD_DIR/loratrain] the loratrain to measure
#   LT_GPU_BENCH_PY [/usr/bin/python3] a python with torch (CUDA), transformers,
#     peft and bitsandbytes
#   LT_GPU_BENCH_TINY [0] 1: the plumbing check without a GPU: a tiny model,
#     loratrain as LT_GPU_BENCH_BIN runs it (the emulated CUDA's
#     build/tests/loratrain_cuda_emu), PyTorch on the CPU (the QLoRA rows
#     unquantized where bitsandbytes is missing, said in their note), MFU
#     against a stand-in peak; the figures mean nothing, the report's form does
#   Model: DIM [2048] HIDDEN [5632] LAYERS [22] HEADS [32] KV_HEADS [4]
#     VOCAB [32000] (TinyLlama-1.1B's shape, 1.03B parameters tied); tiny: 64,
#     172, 2, 8, 4, 512
#   SEQ [1024] BATCH [4] R [16] STEPS [10] WARMUP [3]; tiny: 64, 2, 8, 2, 1
#   OUT [BUILD_DIR/gpu-bench-<time>]: the folder of report.md, report.json,
#     the raw JSON lines, each run's log, and each loratrain run's
#     metrics.jsonl and memory.json
#   RUN_TIMEOUT [1800; tiny 300] seconds per run
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" 2>/dev/null && pwd) || { echo "gpu.sh: no build folder ${1:-$root/build}" >&2; exit 1; }
tiny=${LT_GPU_BENCH_TINY:-0}
bin=${LT_GPU_BENCH_BIN:-$build/loratrain}
tpy=${LT_GPU_BENCH_PY:-/usr/bin/python3}
py=/usr/bin/python3

gpu=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) || gpu=""
fi
if [[ $tiny != 1 && -z $gpu ]]; then
  echo "gpu.sh: no NVIDIA GPU here ($(command -v nvidia-smi >/dev/null 2>&1 && echo "nvidia-smi lists no device" || echo "nvidia-smi missing")): nothing to measure"
  exit 77
fi
[[ -x $bin ]] || { echo "gpu.sh: $bin not found (build first, or set LT_GPU_BENCH_BIN)" >&2; exit 1; }

if [[ $tiny == 1 ]]; then
  dim=${DIM:-64} hidden=${HIDDEN:-172} layers=${LAYERS:-2} heads=${HEADS:-8} kv=${KV_HEADS:-4}
  vocab=${VOCAB:-512} seq=${SEQ:-64} batch=${BATCH:-2} r=${R:-8} steps=${STEPS:-2} warmup=${WARMUP:-1}
  run_timeout=${RUN_TIMEOUT:-300} tdev=cpu threads=(--threads 1)
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE LT_CUDA_EMU_QUIET=1
else
  dim=${DIM:-2048} hidden=${HIDDEN:-5632} layers=${LAYERS:-22} heads=${HEADS:-32} kv=${KV_HEADS:-4}
  vocab=${VOCAB:-32000} seq=${SEQ:-1024} batch=${BATCH:-4} r=${R:-16} steps=${STEPS:-10} warmup=${WARMUP:-3}
  run_timeout=${RUN_TIMEOUT:-1800} tdev=cuda threads=()
fi
out=${OUT:-$build/gpu-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/loratrain-gpu.XXXXXX")
trap 'rm -rf "$work"' EXIT
: >"$out/rows.jsonl"
echo "== ${gpu:-no GPU (tiny mode: emulated CUDA and the CPU)}; model dim $dim, hidden $hidden, $layers layers, $heads heads ($kv kv), vocab $vocab; batch $batch x $seq, r $r, $steps timed steps after $warmup"

"$py" "$root/tests/ref/make_random_model.py" "$work/model.bin" --dim "$dim" --hidden "$hidden" \
  --layers "$layers" --heads "$heads" --kv_heads "$kv" --vocab "$vocab" --seq "$seq" >"$out/model.txt" || exit 1
"$bin" tokenize --tokenizer "$root/models/stories260K/tok512.bin" --vocab_size 512 \
  --input "$root/data/tinyshakespeare/input.txt" --output "$work/data.tok" >"$out/tokenize.txt" 2>&1 ||
  { echo "gpu.sh: tokenize failed: $(tail -1 "$out/tokenize.txt")" >&2; exit 1; }

# row JSON: side, mode, then key=value pairs (numbers or strings)
row() {
  "$py" - "$out/rows.jsonl" "$@" <<'PY'
import json, sys
path, side, mode = sys.argv[1:4]
r = {"side": side, "mode": mode}
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1)
    try:
        r[k] = float(v) if v not in ("", "nan") else None
    except ValueError:
        r[k] = v
open(path, "a").write(json.dumps(r) + "\n")
PY
}

# loratrain: one run per mode; tokens/s from metrics.jsonl, the peak from
# memory.json's device space.
lt_run() { # mode, compute, train args...
  local mode=$1 compute=$2 o=$work/lt-$1 rc=0
  shift 2
  timeout "$run_timeout" "$bin" train --model "$work/model.bin" --train_file "$work/data.tok" \
    --max_seq_length "$seq" --per_device_train_batch_size "$batch" --max_steps $((warmup + steps)) \
    --learning_rate 1e-4 --lr_scheduler_type constant --warmup_steps 0 --logging_steps 1 \
    --disable_tqdm --seed 42 --device cuda "${threads[@]}" --output_dir "$o" "$@" \
    >"$out/loratrain-$mode.log" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    local why
    why=$(grep -m1 "error:" "$out/loratrain-$mode.log" || tail -1 "$out/loratrain-$mode.log")
    if [[ $rc == 2 && $compute == bf16 ]]; then
      row loratrain "$mode" compute=$compute "note=not implemented: ${why#*error: }"
    else
      row loratrain "$mode" compute=$compute "error=exit $rc: $why"
    fi
    echo "loratrain $mode: exit $rc: $why"
    return
  fi
  cp "$o/metrics.jsonl" "$out/loratrain-$mode.metrics.jsonl"
  cp "$o/memory.json" "$out/loratrain-$mode.memory.json"
  "$py" - "$o" "$warmup" "$out/rows.jsonl" "$mode" "$compute" <<'PY'
import json, statistics, sys
o, warmup, rows, mode, compute = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
steps = [json.loads(l) for l in open(o + "/metrics.jsonl") if '"loss"' in l]
tps = statistics.median(s["tokens_per_s"] for s in steps if s["step"] > warmup)
mem = json.load(open(o + "/memory.json"))


def device_peak(node, under_device=False):
    """The device space's tracked total peak wherever memory.json keeps it (a key
    naming the device above a *total_peak* figure), else None."""
    if isinstance(node, dict):
        for k, v in node.items():
            dev = under_device or "device" in k.lower()
            if dev and "total_peak" in k and isinstance(v, (int, float)):
                return v
            got = device_peak(v, dev)
            if got is not None:
                return got
    return None


peak = device_peak(mem)
r = {"side": "loratrain", "mode": mode, "compute": compute, "tokens_per_s": tps,
     "steps": sum(1 for s in steps if s["step"] > warmup), "peak_bytes": peak,
     "peak_kind": "memory report, device space" if peak is not None else None}
if peak is None:
    r["note"] = "peak n/a: memory.json has no device space (launch/memory_report.c does not write it yet)"
open(rows, "a").write(json.dumps(r) + "\n")
print("loratrain %s: %.1f tokens/s, peak %s" % (mode, tps, "%.1f MiB" % (peak / 2**20) if peak is not None else "n/a"))
PY
}

torch_run() { # mode, compute
  local mode=$1 compute=$2 rc=0
  timeout "$run_timeout" "$tpy" "$root/benchmarks/gpu_torch.py" --mode "$mode" --dim "$dim" --hidden "$hidden" \
    --layers "$layers" --heads "$heads" --kv_heads "$kv" --vocab "$vocab" --seq "$seq" --batch "$batch" \
    --r "$r" --steps "$steps" --warmup "$warmup" --device "$tdev" >"$work/torch.json" 2>"$out/pytorch-$mode.log" || rc=$?
  if [[ $rc != 0 ]]; then
    row pytorch "$mode" compute=$compute "error=exit $rc: $(tail -1 "$out/pytorch-$mode.log")"
    echo "pytorch $mode: exit $rc: $(tail -1 "$out/pytorch-$mode.log")"
    return
  fi
  "$py" - "$work/torch.json" "$out/rows.jsonl" "$compute" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r.update({"side": "pytorch", "compute": sys.argv[3]})
open(sys.argv[2], "a").write(json.dumps(r) + "\n")
print("pytorch %s: %.1f tokens/s, peak %.1f MiB (%s)%s" % (r["mode"], r["tokens_per_s"], r["peak_bytes"] / 2**20,
      r["peak_kind"], "; " + r["note"] if r.get("note") else ""))
PY
}

lora=(--r "$r" --lora_alpha $((2 * r)) --target_modules all-linear)
four=(--load_in_4bit true --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true)
lt_run lora fp32 "${lora[@]}"
torch_run lora fp32
lt_run qlora fp32 "${lora[@]}" "${four[@]}"
torch_run qlora fp32
lt_run qlora-bf16 bf16 "${lora[@]}" "${four[@]}" --bnb_4bit_compute_dtype bfloat16
torch_run qlora-bf16 bf16
lt_run full fp32 --finetuning_type full
torch_run full fp32

"$py" - "$out" "$gpu" "$tiny" "$dim" "$hidden" "$layers" "$heads" "$kv" "$vocab" "$seq" "$batch" "$r" \
  "$steps" "$warmup" "$bin" <<'PY'
import json, sys
out, gpu, tiny = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
C, H, L, nh, nkv, V, T, B, R, steps, warmup = map(int, sys.argv[4:15])
binary = sys.argv[15]
kv = C // nh * nkv
N = V * C + C + L * (2 * C + 2 * C * C + 2 * kv * C + 3 * C * H)  # tied classifier
# Dense peaks in TFLOPS, (FP32, BF16 Tensor Core): NVIDIA's datasheets (A100 Tensor Core GPU;
# H100 Tensor Core GPU; H200 Tensor Core GPU), whose Tensor Core figures are "with sparsity":
# dense is half. nvidia-smi names: "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3",
# "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA H200 NVL".
PEAKS = [("H200 NVL", 60.0, 835.5), ("H200", 67.0, 989.5), ("H100 NVL", 60.0, 835.5),
         ("H100 PCIe", 51.0, 756.5), ("H100", 67.0, 989.5), ("A100", 19.5, 312.0)]
STANDIN = "NVIDIA H100 80GB HBM3"
name = gpu or STANDIN
peak = next(((k, f, b) for k, f, b in PEAKS if k in name), None)
rows = [json.loads(l) for l in open(out + "/rows.jsonl")]
for r in rows:
    tps = r.get("tokens_per_s")
    if peak and tps is not None:
        r["peak_tflops"] = peak[2] if r.get("compute") == "bf16" else peak[1]
        r["mfu"] = 6.0 * N * tps / (r["peak_tflops"] * 1e12)
report = {"gpu": gpu or None, "tiny": tiny, "peak_table_entry": peak[0] if peak else None,
          "peak_stand_in": not gpu, "params": N,
          "shape": dict(dim=C, hidden=H, layers=L, heads=nh, kv_heads=nkv, vocab=V),
          "batch": B, "seq": T, "r": R, "steps": steps, "warmup": warmup, "binary": binary, "rows": rows}
json.dump(report, open(out + "/report.json", "w"), indent=1)
L_ = []
w = L_.append
w("# GPU benchmark: loratrain --device cuda beside PyTorch + PEFT + bitsandbytes")
w("")
if tiny:
    w("**Tiny mode (LT_GPU_BENCH_TINY=1): a plumbing check, not a measurement.** loratrain ran as "
      "%s, PyTorch on the CPU; MFU is against %s's peak%s. The figures mean nothing; the report's "
      "form is what is checked."
      % (binary, name, " as a stand-in (no GPU here)" if not gpu else ""))
    w("")
w("GPU: %s. Model: random Llama, dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, tied "
  "classifier: N = %s parameters. Batch %d x %d tokens; LoRA r %d (alpha %d) on all linears; QLoRA: "
  "NF4, double quant, blocks of 64. %d timed steps after %d." % (gpu or "none", C, H, L, nh, nkv, V,
  "{:,}".format(N), B, T, R, 2 * R, steps, warmup))
w("")
w("MFU = 6 N tokens/s / peak (dense %s: FP32 %s TFLOPS for the fp32 rows, BF16 Tensor Core %s "
  "for the bf16 rows; NVIDIA datasheets). Peak memory: loratrain's memory report (device space), "
  "PyTorch's torch.cuda.max_memory_allocated%s." % (((peak[0], peak[1], peak[2]) if peak else ("n/a",) * 3)
  + ("" if not tiny else " (on the CPU: the process's peak resident set)",)))
w("")
w("| side | mode | compute | tokens/s | MFU % | peak memory MiB | note |")
w("|---|---|---|---|---|---|---|")
for r in rows:
    tps, mfu, pk = r.get("tokens_per_s"), r.get("mfu"), r.get("peak_bytes")
    note = r.get("error") or r.get("note") or ""
    w("| %s | %s | %s | %s | %s | %s | %s |" % (
        r["side"], r["mode"], r.get("compute", ""), "%.1f" % tps if tps is not None else "-",
        "%.3g" % (100 * mfu) if mfu is not None else "-", "%.1f" % (pk / 2**20) if pk is not None else "-",
        note.replace("|", "/")))
open(out + "/report.md", "w").write("\n".join(L_) + "\n")
print("\n".join(L_))
print("\nreport: %s/report.md" % out)
PY
