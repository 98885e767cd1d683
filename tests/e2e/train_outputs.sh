#!/bin/bash
# What a training run prints and leaves, on the bundled model (8 steps, a
# checkpoint every 4, an evaluation at the end):
#   - a finished run resumed with `latest` says so, exits 0 and leaves
#     every file in output_dir as it was (bytes and modification times),
#     adding none;
#   - with its adapter removed, or killed between its final checkpoint and
#     its outputs (LT_FAULT_CHECKPOINT=after_save:8, a test hook), also in
#     an output_dir holding an earlier run's complete (older) outputs, the
#     same resume writes them: the adapter bitwise the uninterrupted run's;
#   - the log has one `base:` line;
#   - a progress bar only for a single process on a terminal (`script`
#     gives it one); `mpirun -np 1 ... > file`, whose rank writes to a
#     pseudo-terminal all the same, logs plain step lines;
#   - shard_base with an fp32 base: the same one-line refusal (exit 2) on
#     1 process, `mpirun -np 1` and 2 ranks.
# Usage: train_outputs.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --per_device_train_batch_size 4
      --target_modules all-linear --validation_split_percentage 5 --max_eval_samples 8 --max_steps 8
      --save_steps 4 --threads 1 --logging_steps 1)
run() { # dir, extra...: a single process, plain lines
  local d=$1
  shift
  timeout $((300 * ts)) "$bin" "${args[@]}" --disable_tqdm --output_dir "$d" "$@" >>"$d.log" 2>&1
}
state() { # dir: every file's name, size, modification time and sha256
  (cd "$1" && find . -type f -printf '%p %s %T@ ' -exec sh -c 'sha256sum <"$1" | cut -c1-64' _ {} \; | sort)
}

# A finished run, resumed.
run "$tmp/done" || err "the run failed: $(tail -1 "$tmp/done.log")"
[[ $(grep -c '^base: ' "$tmp/done.log") == 1 ]] || err "the log has $(grep -c '^base: ' "$tmp/done.log") base: lines, expected 1"
state "$tmp/done" >"$tmp/before"
sleep 0.05 # a rewrite would have a later modification time
: >"$tmp/done.log"
run "$tmp/done" --resume_from_checkpoint latest || err "resuming the finished run: exit $?: $(tail -1 "$tmp/done.log")"
grep -q "checkpoint-8.h5 is the last step (8) of this run, and its outputs in $tmp/done are complete" "$tmp/done.log" ||
  err "resuming the finished run: no line saying it is complete: $(tail -2 "$tmp/done.log")"
if ! diff "$tmp/before" <(state "$tmp/done") >"$tmp/diff"; then
  err "resuming the finished run changed output_dir:"
  cat "$tmp/diff"
else
  echo "finished run resumed: $(grep -c . "$tmp/before") files untouched; $(tail -1 "$tmp/done.log")"
fi

# Outputs missing: the adapter removed; killed after the final checkpoint.
cp -a "$tmp/done" "$tmp/noadapter"
rm "$tmp/noadapter/adapter_model.safetensors"
run "$tmp/noadapter" --resume_from_checkpoint latest || err "adapter removed: the resumed run failed"
cmp -s "$tmp/done/adapter_model.safetensors" "$tmp/noadapter/adapter_model.safetensors" ||
  err "adapter removed: the resumed run's adapter differs from the finished run's"
{ LT_FAULT_CHECKPOINT=after_save:8 run "$tmp/killed"; } 2>/dev/null && err "killed after the final checkpoint: not killed"
[[ -f $tmp/killed/checkpoint-8.h5 && ! -e $tmp/killed/adapter_model.safetensors ]] ||
  err "killed after the final checkpoint: expected checkpoint-8.h5 and no adapter"
run "$tmp/killed" --resume_from_checkpoint latest || err "killed after the final checkpoint: the resumed run failed"
cmp -s "$tmp/done/adapter_model.safetensors" "$tmp/killed/adapter_model.safetensors" ||
  err "killed after the final checkpoint: the resumed run's adapter differs from the finished run's"
# Killed after the final checkpoint in an output_dir that holds an earlier
# run's complete outputs: those are older than the checkpoint, not its.
# Without evaluation the metrics of step 8 are complete at the kill, so only
# the files' times can tell.
cp -a "$tmp/done" "$tmp/stale"
noeval=(--seed 2 --validation_split_percentage 0)
run "$tmp/seed2" "${noeval[@]}" || err "the seed-2 run failed"
{ LT_FAULT_CHECKPOINT=after_save:8 run "$tmp/stale" "${noeval[@]}"; } 2>/dev/null && err "stale outputs: not killed"
run "$tmp/stale" "${noeval[@]}" --resume_from_checkpoint latest || err "stale outputs: the resumed run failed"
cmp -s "$tmp/seed2/adapter_model.safetensors" "$tmp/stale/adapter_model.safetensors" ||
  err "stale outputs: the adapter is not the seed-2 run's"
grep -q "is complete: nothing to do" "$tmp/noadapter.log" "$tmp/killed.log" "$tmp/stale.log" &&
  err "a run without its outputs was taken for complete"
echo "adapter removed, killed after the final checkpoint, or killed there over an earlier run's outputs:" \
  "resuming writes the outputs (adapter bitwise the uninterrupted run's)"

# The progress bar: a terminal, one process.
q=$(printf '%q ' "$bin" "${args[@]}" --output_dir "$tmp/tty")
timeout $((300 * ts)) script -qec "$q" /dev/null >"$tmp/tty.log" 2>&1 || err "on a terminal: exit $?: $(tail -1 "$tmp/tty.log")"
grep -q $'\r\[' "$tmp/tty.log" || err "one process on a terminal: no progress bar"
grep -q '^step 1/8 |' "$tmp/tty.log" && err "one process on a terminal: plain step lines instead of the bar"
timeout $((300 * ts)) mpirun -np 1 "$bin" "${args[@]}" --output_dir "$tmp/mpi1" >"$tmp/mpi1.log" 2>&1 ||
  err "mpirun -np 1: exit $?: $(tail -1 "$tmp/mpi1.log")"
grep -q $'\r' "$tmp/mpi1.log" && err "mpirun -np 1 > file: a progress bar: $(grep -m1 -a -o $'\r[^\r]*' "$tmp/mpi1.log")"
grep -q '^step 8/8 |' "$tmp/mpi1.log" || err "mpirun -np 1 > file: no plain step lines"
echo "progress: a bar for one process on a terminal; plain lines under mpirun -np 1 > file"

# shard_base with an fp32 base.
msg="shard_base needs a quantized base (load_in_4bit or load_in_8bit)"
for how in one mpirun1 mpirun2; do
  case $how in
  one) cmd=("$bin") ;;
  mpirun1) cmd=(mpirun -np 1 "$bin") ;;
  mpirun2) cmd=(mpirun --oversubscribe -np 2 "$bin") ;;
  esac
  timeout $((120 * ts)) "${cmd[@]}" "${args[@]}" --disable_tqdm --shard_base true --output_dir "$tmp/shard$how" \
    >"$tmp/shard$how.out" 2>"$tmp/shard$how.err"
  rc=$?
  if [[ $rc != 2 ]] || ! grep -q "error: $msg" "$tmp/shard$how.err"; then
    err "shard_base on fp32 ($how): exit $rc, $(grep -m1 error "$tmp/shard$how.err")"
  fi
  grep -q "^step 1/" "$tmp/shard$how.out" && err "shard_base on fp32 ($how): the run trained"
done
echo "shard_base on fp32: refused on 1 process, mpirun -np 1 and 2 ranks: $(grep -m1 -o "error: .*" "$tmp/shardone.err")"
exit $fail
