#!/bin/bash
# Per-rank memory of a sharded quantized base, measured: a random
# 28.5M-parameter, 16-layer Llama (tests/ref/make_random_model.py) with an NF4 + double
# quant base, trained two steps on 2 and on 4 ranks, with and without
# shard_base. From output_dir/memory.json (every rank's figures):
#   - each sharded rank's tracked quantized_base is 1/N of the model's
#     quantized bytes (to the 64-byte padding of each layer's shard);
#   - the process peak (VmHWM) falls by what that predicts -- the quantized
#     bytes a rank no longer stores, less the two whole-layer gather buffers
#     -- to within 2 MiB, comparing the lowest VmHWM of the ranks of each
#     run. The jitter measured here, since the tracked allocator maps its
#     large blocks: -0.64 to +0.83 MiB on 2 ranks, -0.39 to -0.06 on 4
#     (five runs; it was 3 MiB steps with glibc's heap). A base that is not
#     really sharded gives a fall of minus the gather buffers (-1.7 MiB)
#     and fails on 2 and on 4 ranks; so does an untracked copy of each
#     4-rank shard (3.5 MiB: a fall of 5.06 MiB where 8.71 are
#     predicted). (The fall may be larger: an unsharded rank also
#     quantizes every tensor and glibc keeps some of that churn resident.)
# Usage: dist_memory.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
"$py" "$root/tests/ref/make_random_model.py" "$tmp/model.bin" --dim 384 --hidden 1024 --layers 16 || exit 1
run() { # name, ranks, extra args...
  local out=$tmp/$1 np=$2
  shift 2
  timeout $((300 * ts)) mpirun --oversubscribe -np "$np" "$bin" train --model "$tmp/model.bin" \
    --tokenizer "$root/models/stories260K/tok512.bin" \
    --train_file "$root/data/tinyshakespeare/input.txt" --max_seq_length 64 \
    --per_device_train_batch_size 1 --max_steps 2 --threads 1 --disable_tqdm \
    --load_in_4bit true --bnb_4bit_use_double_quant true \
    --output_dir "$out" "$@" >"$out.log" 2>&1 || { echo "FAIL $out:"; tail -5 "$out.log"; exit 1; }
}
for np in 2 4; do
  run plain$np $np
  run sharded$np $np --shard_base true
done
"$py" - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
MiB = 2.0 ** 20
fail = []
for n in (2, 4):
    p = json.load(open(os.path.join(tmp, "plain%d" % n, "memory.json")))
    s = json.load(open(os.path.join(tmp, "sharded%d" % n, "memory.json")))
    q, L = s["base"]["quant_bytes"], 16
    for r in range(n):
        pr, sr = p["ranks"][r], s["ranks"][r]
        res = sr["tracked_peak_bytes"]["quantized_base"]
        if not q / n <= res <= q / n + 64 * L:
            fail.append("%d ranks, rank %d: %d quantized bytes tracked, expected %d / %d" % (n, r, res, q, n))
        comm = sr["tracked_peak_bytes"]["communication"]
        expect = pr["tracked_peak_bytes"]["quantized_base"] - res - comm
        print("%d ranks, rank %d: quantized base %.2f -> %.2f MiB (1/%d of %.2f), gather buffers %.2f MiB; "
              "VmHWM %.2f -> %.2f MiB"
              % (n, r, pr["tracked_peak_bytes"]["quantized_base"] / MiB, res / MiB, n, q / MiB, comm / MiB,
                 pr["vm_hwm_bytes"] / MiB, sr["vm_hwm_bytes"] / MiB))
    got = min(x["vm_hwm_bytes"] for x in p["ranks"]) - min(x["vm_hwm_bytes"] for x in s["ranks"])
    print("%d ranks: lowest VmHWM fell %.2f MiB, %.2f predicted (%+.1f%%)"
          % (n, got / MiB, expect / MiB, 100.0 * (got - expect) / expect))
    if got < expect - 2.0 * MiB:
        fail.append("%d ranks: the lowest VmHWM fell %.2f MiB, more than 2 MiB short of the predicted %.2f MiB"
                    % (n, got / MiB, expect / MiB))
for f in fail:
    print("FAIL", f)
sys.exit(1 if fail else 0)
PY
