#!/bin/bash
# A disk without room for the run's outputs, on a small tmpfs (mounting one
# needs root: exit 77, skipped, otherwise). The bundled model, LoRA on
# all-linear (46,240 parameters: checkpoints of 0.65 MB):
#   - too small from the start (1.5 MiB; the same run leaves 2.1 MiB on a
#     roomy disk: 3 checkpoints, the adapter and the logs): exit 1 before
#     the step-0 evaluation and step 1, one line giving the free space
#     (what statvfs says, read here by Python) and the estimate, which is
#     no less than what the run leaves on the roomy disk (du); output_dir
#     holds no file afterwards;
#   - room at the start, filled from here once the run has logged 3 steps
#     (no save_steps): the first metrics line that does not fit ends the
#     run with exit 1 and one line naming metrics.jsonl; every line left
#     in it is whole JSON (steps 1..n, n >= 3), run_config.json is intact,
#     and no file is empty or left as a temporary;
#   - an output_dir that takes no write (a read-only tmpfs with room
#     enough by statvfs, so that only the write probe can tell): refused
#     before step 1, naming the directory.
# LT_FAULT_SLOW=step:S (a test hook) makes each step last S s, so the disk
# fills while the run is in its steps.
# Usage: disk_space.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
mounts=()
suite_at_exit 'for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done'
mount_tmpfs() { # dir, size[, ro]
  mkdir -p "$1" && mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" 2>/dev/null && mounts+=("$1")
}
if ! mount_tmpfs "$tmp/probe" 64k; then
  echo "skipped: this machine cannot mount a tmpfs (needs root)"
  exit 77
fi
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --per_device_train_batch_size 4
      --target_modules all-linear --threads 1 --disable_tqdm --logging_steps 1)
no_empty_files() { # name, dir
  local bad
  bad=$(find "$2" -type f \( -size 0 -o -name '*.tmp.*' -o -name '.loratrain-probe*' \) 2>/dev/null)
  [[ -z $bad ]] || err "$1: empty or temporary files left: $bad"
}
one_line() { # name, file, pattern
  if [[ $(wc -l <"$2") != 1 ]] || ! grep -q -- "$3" "$2"; then
    err "$1: expected one line with \"$3\" on stderr, got:"
    cat "$2"
    return 1
  fi
}

# Too small from the start.
small=(--validation_split_percentage 5 --max_eval_samples 8 --max_steps 12 --save_steps 4)
"$bin" "${args[@]}" "${small[@]}" --output_dir "$tmp/roomy" >"$tmp/roomy.log" 2>&1 ||
  { err "the run on a roomy disk failed:"; tail -3 "$tmp/roomy.log"; }
mount_tmpfs "$tmp/small" 1536k || err "cannot mount a second tmpfs"
t0=$(date +%s)
"$bin" "${args[@]}" "${small[@]}" --output_dir "$tmp/small/run" >"$tmp/small.out" 2>"$tmp/small.err"
rc=$? el=$(($(date +%s) - t0))
[[ $rc == 1 ]] || err "too small: exit $rc, expected 1"
if one_line "too small" "$tmp/small.err" "output_dir $tmp/small/run: .* MiB free, and this run writes up to"; then
  # The figures: free space as statvfs gives it, an estimate that covers
  # what the run really writes.
  "$py" - "$tmp/small/run" "$tmp/small.err" "$tmp/roomy" <<'PY' || fail=1
import os, re, subprocess, sys
run, errf, roomy = sys.argv[1:4]
msg = open(errf).read()
m = re.search(r": ([0-9.]+) MiB free, and this run writes up to ([0-9.]+) MiB there: 3 checkpoints of ([0-9.]+) MiB", msg)
if not m:
    print("FAIL too small: the figures are not in the message: " + msg.strip()); sys.exit(1)
free, need, ck = map(float, m.groups())
v = os.statvfs(run)
real_free = v.f_bavail * v.f_frsize / 2**20
used = int(subprocess.check_output(["du", "-s", "-B1", roomy]).split()[0]) / 2**20
biggest = max(os.path.getsize(os.path.join(roomy, f)) for f in os.listdir(roomy) if f.startswith("checkpoint-")) / 2**20
bad = []
size = v.f_blocks * v.f_frsize / 2**20
if used <= size:
    bad.append("the tmpfs (%.2f MiB) holds the %.2f MiB the run writes: not too small" % (size, used))
if abs(free - real_free) > 0.01:
    bad.append("free %.2f MiB, statvfs says %.2f" % (free, real_free))
if need < used:
    bad.append("estimate %.2f MiB is less than the %.2f MiB the run writes on a roomy disk" % (need, used))
if ck < biggest:
    bad.append("a checkpoint estimated at %.2f MiB, written %.2f MiB" % (ck, biggest))
for b in bad:
    print("FAIL too small:", b)
if not bad:
    print("too small: %.2f MiB free (statvfs %.2f); estimate %.2f MiB >= %.2f MiB written by the same run "
          "on a roomy disk; a checkpoint %.2f MiB estimated, %.2f written" % (free, real_free, need, used, ck, biggest))
sys.exit(1 if bad else 0)
PY
fi
grep -q "^step 1/\|^eval at step 0" "$tmp/small.out" && err "too small: the run started: $(grep -m1 '^step\|^eval' "$tmp/small.out")"
left=$(ls -A "$tmp/small/run" 2>/dev/null)
[[ -z $left ]] || err "too small: files written before the check: $left"
((el <= 30 * ts)) || err "too small: took $el s to fail"
echo "too small: exit $rc after $el s: $(cat "$tmp/small.err")"

# Filled mid-run: the first metrics line that does not fit.
mount_tmpfs "$tmp/fill" 4m || err "cannot mount a third tmpfs"
d=$tmp/fill/run
LT_FAULT_SLOW=step:0.3 "$bin" "${args[@]}" --max_steps 400 --output_dir "$d" >"$tmp/fill.out" 2>"$tmp/fill.err" &
job=$!
steps=0
for _ in $(seq 1 $((600 * ts))); do
  steps=$(grep -c '"loss"' "$d/metrics.jsonl" 2>/dev/null)
  ((steps >= 3)) && break
  kill -0 $job 2>/dev/null || break
  sleep 0.1
done
((steps >= 3)) || err "filled mid-run: 3 steps never logged: $(cat "$tmp/fill.err")"
cp "$d/run_config.json" "$tmp/run_config.before"
# Every block of the file system taken.
dd if=/dev/zero of="$tmp/fill/filler" bs=4k 2>/dev/null
t0=$(date +%s)
wait $job
rc=$? el=$(($(date +%s) - t0))
[[ $rc == 1 ]] || err "filled mid-run: exit $rc, expected 1"
one_line "filled mid-run" "$tmp/fill.err" "$d/metrics.jsonl: cannot write: No space left on device"
no_empty_files "filled mid-run" "$d"
cmp -s "$d/run_config.json" "$tmp/run_config.before" || err "filled mid-run: run_config.json changed"
"$py" - "$d" "$steps" <<'PY' || fail=1
import json, os, sys
d, before = sys.argv[1], int(sys.argv[2])
raw = open(os.path.join(d, "metrics.jsonl"), "rb").read()
bad = []
if not raw.endswith(b"\n"):
    bad.append("metrics.jsonl ends in a partial line")
try:
    steps = [json.loads(l)["step"] for l in raw.decode().splitlines()]
except Exception as e:
    steps, bad = [], bad + ["metrics.jsonl has a line that is not JSON: %s" % e]
if steps != list(range(1, len(steps) + 1)) or len(steps) < before:
    bad.append("metrics.jsonl holds steps %s, expected 1..n with n >= %d" % (steps[:3] + ["..."] + steps[-2:], before))
cfg = json.load(open(os.path.join(d, "run_config.json")))
if cfg.get("max_steps") != 400:
    bad.append("run_config.json: max_steps %r" % cfg.get("max_steps"))
for b in bad:
    print("FAIL filled mid-run:", b)
if not bad:
    print("filled mid-run after %d steps: metrics.jsonl keeps steps 1..%d, whole lines; run_config.json intact" % (before, len(steps)))
sys.exit(1 if bad else 0)
PY
echo "filled mid-run: exit $rc, $el s after the disk filled: $(cat "$tmp/fill.err")"

# Nowhere to write.
mount_tmpfs "$tmp/ro" 8m ro || err "cannot mount a read-only tmpfs"
"$bin" "${args[@]}" --max_steps 4 --output_dir "$tmp/ro" >"$tmp/ro.out" 2>"$tmp/ro.err"
rc=$?
[[ $rc == 1 ]] || err "read-only: exit $rc, expected 1"
one_line "read-only" "$tmp/ro.err" "$tmp/ro: cannot write: Read-only file system" &&
  echo "read-only output_dir: exit $rc, $(cat "$tmp/ro.err")"
exit $fail
