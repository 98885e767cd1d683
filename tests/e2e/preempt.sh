#!/bin/bash
# Preemption: a stop signal mid-run makes every rank finish its step, write
# a checkpoint and exit 75; the same command with --resume_from_checkpoint
# latest then finishes the run exactly as if it had never stopped. On the
# bundled model, LoRA dropout on, evaluation and checkpoints on their own
# schedule:
#   - SIGUSR1 to mpirun (what a batch script forwards): exit 75, rank 0
#     names the signal and the step, the checkpoint verifies and
#     latest_checkpoint names it; rank 1 prints nothing (mpirun
#     --tag-output); `latest` on an empty output_dir starts at step 0;
#     resumed, losses and adapter bitwise the uninterrupted run's;
#   - SIGUSR1 to rank 1 alone: both ranks stop after the same step;
#   - SIGTERM to both ranks of a ZeRO-1 full fine-tune (as Slurm delivers
#     it on scancel or a time limit): its sharded checkpoint resumes
#     bitwise;
#   - one SIGINT (Ctrl-C) on one process: exit 75 and a checkpoint; a
#     second SIGINT ends the process at once.
# Usage: preempt.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
steps=40
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length 256 --per_device_train_batch_size 4
      --warmup_steps 5 --lr_scheduler_type cosine --learning_rate 3e-3 --lora_dropout 0.1
      --target_modules all-linear --validation_split_percentage 5 --max_eval_samples 8
      --eval_steps 25 --save_steps 30 --threads 1 --disable_tqdm --logging_steps 10)
mpi=(mpirun --oversubscribe -np 2)

losses() { grep -o '"loss":[^,]*' "$1/metrics.jsonl"; }
wait_for_step() { # dir, step, pid: until metrics has the step (at most 120 s x ts)
  for _ in $(seq 1 $((1200 * ts))); do
    (($(steps_logged "$1") >= $2)) && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# name, log, dir, rc: the run stopped with 75 at some step k (set here)
# whose checkpoint verifies and is the latest.
check_stopped() {
  local name=$1 log=$2 dir=$3 rc=$4
  [[ $rc == 75 ]] || err "$name: exit status $rc, expected 75"
  k=$(sed -n 's/^\(\[1,0\]<stdout>:\)\{0,1\}stopped by SIG[A-Z0-9]* after step \([0-9]*\) of .*/\2/p' "$log")
  if [[ -z $k ]]; then
    err "$name: no \"stopped by ... after step K\" line:"
    tail -5 "$log"
    k=0
    return
  fi
  ((k < steps)) || err "$name: stopped at step $k, the run has only $steps"
  [[ $(cat "$dir/latest_checkpoint" 2>/dev/null) == checkpoint-$k.h5 ]] ||
    err "$name: latest_checkpoint is \"$(cat "$dir/latest_checkpoint" 2>/dev/null)\", expected checkpoint-$k.h5"
  "$bin" inspect "$dir/checkpoint-$k.h5" >"$tmp/inspect.log" 2>&1 ||
    err "$name: checkpoint-$k.h5 does not verify: $(tail -1 "$tmp/inspect.log")"
  (($(steps_logged "$dir") == k)) || err "$name: metrics has $(steps_logged "$dir") steps, stopped after $k"
}
# name, reference dir, dir: the finished run equals the reference bit for bit.
check_same() {
  local name=$1 ref=$2 dir=$3 file=${4:-adapter_model.safetensors}
  cmp -s "$ref/$file" "$dir/$file" || err "$name: $file differs from the uninterrupted run's"
  diff -q <(losses "$ref") <(losses "$dir") >/dev/null || err "$name: losses differ from the uninterrupted run's"
  diff -q <(grep -o '"eval_loss":[^,]*' "$ref/metrics.jsonl") \
    <(grep -o '"eval_loss":[^,]*' "$dir/metrics.jsonl") >/dev/null ||
    err "$name: eval losses differ from the uninterrupted run's"
}

# The uninterrupted runs.
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" --max_steps $steps --output_dir "$tmp/ref" >"$tmp/ref.log" 2>&1 ||
  { err "reference run failed:"; tail -5 "$tmp/ref.log"; }

# SIGUSR1 to mpirun, which forwards it to every rank.
d=$tmp/usr1
"${mpi[@]}" --tag-output "$bin" "${args[@]}" --max_steps $steps --output_dir "$d" \
  --resume_from_checkpoint latest >"$tmp/usr1.log" 2>&1 &
job=$!
wait_for_step "$d" 10 $job || err "SIGUSR1 to mpirun: step 10 never logged"
kill -USR1 $job
wait $job
check_stopped "SIGUSR1 to mpirun" "$tmp/usr1.log" "$d" $?
grep -q "no checkpoint in $d yet; starting at step 0" "$tmp/usr1.log" ||
  err "latest on an empty output_dir: no \"starting at step 0\" line"
if grep -q '^\[1,1\]<std' "$tmp/usr1.log"; then
  err "rank 1 printed:"
  grep '^\[1,1\]<std' "$tmp/usr1.log" | head -3
fi
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" --max_steps $steps --output_dir "$d" \
  --resume_from_checkpoint latest >"$tmp/usr1b.log" 2>&1 || err "SIGUSR1 to mpirun: the resumed run failed"
grep -q "resuming from $d/checkpoint-$k.h5 at step $k" "$tmp/usr1b.log" ||
  err "SIGUSR1 to mpirun: the resumed run did not start from checkpoint-$k.h5"
check_same "SIGUSR1 to mpirun, resumed" "$tmp/ref" "$d"
echo "SIGUSR1 to mpirun: stopped after step $k, resumed to step $steps"

# SIGUSR1 to one rank: the other stops after the same step.
d=$tmp/one
"${mpi[@]}" "$bin" "${args[@]}" --max_steps $steps --output_dir "$d" >"$tmp/one.log" 2>&1 &
job=$!
wait_for_step "$d" 10 $job || err "SIGUSR1 to rank 1: step 10 never logged"
victim=$(ranks_of "$d" | tail -1)
[[ -n $victim ]] && kill -USR1 "$victim"
wait $job
check_stopped "SIGUSR1 to rank 1" "$tmp/one.log" "$d" $?
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" --max_steps $steps --output_dir "$d" \
  --resume_from_checkpoint latest >"$tmp/oneb.log" 2>&1 || err "SIGUSR1 to rank 1: the resumed run failed"
check_same "SIGUSR1 to rank 1, resumed" "$tmp/ref" "$d"
echo "SIGUSR1 to rank 1 only: both ranks stopped after step $k, resumed to step $steps"

# SIGTERM to both ranks of a ZeRO-1 full fine-tune.
full=(--finetuning_type full --zero1 true --learning_rate 1e-3)
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" "${full[@]}" --max_steps $steps --output_dir "$tmp/fref" \
  >"$tmp/fref.log" 2>&1 || { err "full reference run failed:"; tail -5 "$tmp/fref.log"; }
d=$tmp/full
"${mpi[@]}" "$bin" "${args[@]}" "${full[@]}" --max_steps $steps --output_dir "$d" \
  >"$tmp/full.log" 2>&1 &
job=$!
wait_for_step "$d" 10 $job || err "SIGTERM to a full fine-tune: step 10 never logged"
# shellcheck disable=SC2046
kill -TERM $(ranks_of "$d")
wait $job
rc=$?
# mpirun reports its ranks' status 75 as its own; SIGTERM to the ranks
# themselves (as slurmd sends it) is what is tested here.
check_stopped "SIGTERM to a full fine-tune" "$tmp/full.log" "$d" $rc
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" "${full[@]}" --max_steps $steps --output_dir "$d" \
  --resume_from_checkpoint latest >"$tmp/fullb.log" 2>&1 || err "SIGTERM to a full fine-tune: the resumed run failed"
check_same "SIGTERM to a full fine-tune, resumed" "$tmp/fref" "$d" model.safetensors
echo "SIGTERM to both ranks of a ZeRO-1 full fine-tune: stopped after step $k, resumed bitwise"

# SIGINT once, then twice, on a single process. With job control on, the
# shell's background jobs do not start with SIGINT ignored (which loratrain
# would respect).
set -m
d=$tmp/int
"$bin" "${args[@]}" --max_steps $steps --output_dir "$d" >"$tmp/int.log" 2>&1 &
job=$!
wait_for_step "$d" 5 $job || err "SIGINT: step 5 never logged"
kill -INT $job
wait $job
check_stopped "SIGINT" "$tmp/int.log" "$d" $?
grep -q "Ctrl-C again to quit at once" "$tmp/int.log" || err "SIGINT: no note that a second Ctrl-C quits"
# Steps of about a second, so that the second SIGINT lands mid-step.
d=$tmp/int2
"$bin" "${args[@]}" --max_steps 100000 --per_device_train_batch_size 32 --gradient_accumulation_steps 8 \
  --output_dir "$d" >"$tmp/int2.log" 2>&1 &
job=$!
wait_for_step "$d" 1 $job || err "SIGINT twice: step 1 never logged"
kill -INT $job
# Two signals sent at once may arrive as one; a loaded machine may not run
# the process between them for a while.
for _ in $(seq 1 "$ts"); do sleep 0.2; done
kill -INT $job
wait $job
rc=$?
[[ $rc == 130 ]] || err "SIGINT twice: exit status $rc, expected 130 (ended by SIGINT)"
echo "SIGINT: stopped after step $k with a checkpoint; twice: ended at once (exit $rc)"
exit $fail
