#!/bin/bash
# benchmarks/gpu.sh's plumbing, without a GPU (CTest gpu_bench_tiny, label
# bench):
#   - without a GPU and without LT_GPU_BENCH_TINY it prints one line and exits
#     77 (nvidia-smi missing; and a nvidia-smi that lists no device);
#   - LT_GPU_BENCH_TINY=1 with loratrain on the emulated CUDA
#     (tests/loratrain_cuda_emu) and PyTorch + PEFT on the CPU writes a report
#     whose table has every row (loratrain and PyTorch x lora, qlora,
#     qlora-bf16, full, with their compute dtype), each with numeric tokens/s,
#     MFU and peak memory, but for two stated exceptions: loratrain's bf16 row
#     while the command refuses bf16 ("not implemented", and the binary does
#     refuse it), and loratrain's peak while its memory.json has no device
#     space (checked in the run's memory.json: once it has one, the figure
#     must be there);
#   - the figures are the runs': loratrain's tokens/s is the median of its
#     metrics.jsonl over the timed steps, and every MFU is 6 N tokens/s over
#     the peak the report states, N counted here from the shape.
# Usage: gpu_check.sh LORATRAIN_CUDA_EMU BUILD_DIR (skips with 77 where
# transformers + PEFT cannot be installed: tests/ref/peft_env.sh)
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
emu=${1:?usage: gpu_check.sh LORATRAIN_CUDA_EMU BUILD_DIR}
build=$(cd "${2:?usage: gpu_check.sh LORATRAIN_CUDA_EMU BUILD_DIR}" && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
cd "$root" || exit 1

# No GPU: one line, 77.
mkdir "$tmp/nodev"
printf '#!/bin/sh\necho "No devices were found"\nexit 6\n' >"$tmp/nodev/nvidia-smi"
chmod +x "$tmp/nodev/nvidia-smi"
for how in missing nodev; do
  p=$PATH
  if [[ $how == nodev ]]; then
    p=$tmp/nodev:$PATH
  elif command -v nvidia-smi >/dev/null; then
    echo "nvidia-smi is installed here: the 'missing' case is not checked"
    continue
  fi
  rc=0
  PATH=$p LT_GPU_BENCH_TINY=0 benchmarks/gpu.sh "$build" >"$tmp/$how.out" 2>&1 || rc=$?
  if [[ $rc != 77 || $(wc -l <"$tmp/$how.out") != 1 ]]; then
    echo "FAIL no GPU ($how): exit $rc, expected 77 and one line:"
    cat "$tmp/$how.out"
    fail=1
  else
    echo "no GPU ($how): $(cat "$tmp/$how.out")"
  fi
done

if ! tests/ref/peft_env.sh "$build/peft-venv" 2>"$tmp/env.log"; then
  echo "transformers + PEFT unavailable ($(tail -1 "$tmp/env.log")): the tiny run needs them"
  exit 77
fi
rc=0
LT_GPU_BENCH_BIN=$emu LT_GPU_BENCH_TINY=1 LT_GPU_BENCH_PY=$build/peft-venv/bin/python OUT=$tmp/out \
  timeout $((240 * ${LT_TIMEOUT_SCALE:-1})) benchmarks/gpu.sh "$build" >"$tmp/run.log" 2>&1 || rc=$?
if [[ $rc != 0 ]]; then
  echo "FAIL gpu.sh tiny: exit $rc:"
  tail -20 "$tmp/run.log"
  exit 1
fi
# Does the binary refuse bf16 compute? (asked here, not taken from the report)
bf16_refused=0
"$emu" train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin \
  --train_file data/tinyshakespeare/input.txt --device cuda --load_in_4bit true \
  --bnb_4bit_compute_dtype bfloat16 --max_steps 1 --max_seq_length 16 --per_device_train_batch_size 1 \
  --threads 1 --output_dir "$tmp/bf16" >"$tmp/bf16.log" 2>&1 || bf16_refused=$?
"$py" - "$tmp/out" "$bf16_refused" <<'PY' || fail=1
import json, re, statistics, sys
out, bf16_refused = sys.argv[1], int(sys.argv[2]) == 2
md = open(out + "/report.md").read()
fail = []
want = [(side, mode, "bf16" if mode == "qlora-bf16" else "fp32")
        for mode in ("lora", "qlora", "qlora-bf16", "full") for side in ("loratrain", "pytorch")]
rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in md.splitlines()
        if l.startswith("| loratrain") or l.startswith("| pytorch")]
got = [tuple(r[:3]) for r in rows]
if sorted(got) != sorted(want) or len(rows) != len(want):
    fail.append("the table's rows are %s, expected %s" % (got, want))
# N from the tiny shape (dim 64, hidden 172, 2 layers, 8 heads, 4 kv, vocab 512, tied)
C, H, L, nh, nkv, V = 64, 172, 2, 8, 4, 512
kv = C // nh * nkv
N = V * C + C + L * (2 * C + 2 * C * C + 2 * kv * C + 3 * C * H)
if "N = {:,} parameters".format(N) not in md:
    fail.append("the report does not state N = %d" % N)
pk = re.search(r"FP32 ([\d.]+) TFLOPS for the fp32 rows, BF16 Tensor Core ([\d.]+) for the bf16 rows", md)
if not pk:
    fail.append("the report states no peak")
num = lambda s: float(s) if re.fullmatch(r"\d+(\.\d*)?(e[-+]?\d+)?", s) else None  # noqa: E731
for r in rows:
    side, mode, comp, tps, mfu, peak, note = r[:7]
    lab = "%s %s" % (side, mode)
    if side == "loratrain" and mode == "qlora-bf16" and bf16_refused:
        if (tps, mfu, peak) != ("-", "-", "-") or not note.startswith("not implemented"):
            fail.append("%s: the binary refuses bf16, the row should say not implemented: %s" % (lab, r))
        continue
    mem = None
    if side == "loratrain":
        mem = json.load(open("%s/loratrain-%s.memory.json" % (out, mode)))
    for what, v in (("tokens/s", tps), ("MFU", mfu), ("peak memory", peak)):
        if what == "peak memory" and mem is not None and "device" not in json.dumps(mem).lower():
            if v != "-" or "no device space" not in note:
                fail.append("%s: memory.json has no device space, the row should say so: %s" % (lab, r))
            continue
        if num(v) is None or num(v) <= 0:
            fail.append("%s: %s is %r, not a positive number (note: %s)" % (lab, what, v, note))
    if num(tps) and num(mfu) and pk:
        peak_t = float(pk.group(2 if comp == "bf16" else 1)) * 1e12
        mfu_here = 100 * 6 * N * num(tps) / peak_t
        if abs(mfu_here - num(mfu)) > 0.006 * mfu_here + 0.05 * 100 * 6 * N / peak_t:
            fail.append("%s: MFU %s%%, 6 N tokens/s / peak gives %.4g%%" % (lab, mfu, mfu_here))
    if side == "loratrain" and num(tps):
        steps = [json.loads(l) for l in open("%s/loratrain-%s.metrics.jsonl" % (out, mode)) if '"loss"' in l]
        med = statistics.median(s["tokens_per_s"] for s in steps if s["step"] > 1)  # after WARMUP 1
        if abs(med - num(tps)) > 0.051:
            fail.append("%s: tokens/s %s, its metrics.jsonl's median over the timed steps %.2f" % (lab, tps, med))
print(md)
for f in fail:
    print("FAIL", f)
sys.exit(1 if fail else 0)
PY
exit $fail
