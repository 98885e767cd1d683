#!/bin/bash
# Stop signals that arrive before or between the steps -- while the run
# loads, during an evaluation -- are honoured at once, on the bundled model
# (LoRA dropout on, an evaluation every 4 steps, no save_steps). The test
# hook LT_FAULT_SLOW=load:S|eval@K:S pauses S s once loading is done, or
# before every batch of the evaluation at step K; a signal does not cut the
# pause short, so only the handler (loading) or the trainer's poll
# (evaluation) can end the run early. Every limit and pause is scaled by
# LT_TIMEOUT_SCALE together, so a run that ignored the signal until the
# phase ended stays distinguishable from one that honoured it:
#   - SIGTERM while loading (1 process; the handler seen installed in
#     /proc/PID/status first): exit 75 within 15 s of a 60 s load, one
#     line saying nothing was saved, no file in output_dir;
#   - SIGUSR1 to mpirun while 2 ranks load, and SIGUSR1 to rank 1 alone:
#     the job ends with 75 within 15 s;
#   - SIGUSR1 during the evaluation at step 0: exit 75 within 8 s of a 20 s
#     evaluation, nothing to save, no checkpoint;
#   - SIGUSR1 during the evaluation at step 4 (1 process) and SIGUSR1 to
#     rank 1 alone during it (2 ranks, an NF4 base sharded across them, so
#     every evaluation batch gathers layers collectively): exit 75 within 8
#     s, the checkpoint of step 4 is written and is the latest, `loratrain
#     inspect` verifies it and h5dump (HDF5's own reader) finds its
#     global_step 4; no eval_loss line for step 4; resumed with `latest`,
#     the step-4 evaluation runs, and losses, eval losses and the adapter
#     are bitwise the uninterrupted run's;
#   - SIGUSR1 during the final evaluation (step 8): the checkpoint of step
#     8, no adapter; resuming evaluates and writes the adapter, bitwise.
# Usage: stop_early.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --learning_rate 3e-3
      --lora_dropout 0.1 --target_modules all-linear --validation_split_percentage 5
      --per_device_eval_batch_size 2 --eval_steps 4 --max_steps 8 --threads 1 --disable_tqdm
      --logging_steps 1)
one=(--per_device_train_batch_size 4 --max_eval_samples 40)               # 20 evaluation batches
two=(--per_device_train_batch_size 2 --max_eval_samples 80 --load_in_4bit true --shard_base true)
mpi=(mpirun --oversubscribe -np 2)
pause=$ts # 1 s x ts before each evaluation batch: 20 s x ts in all

# pid...: until each has its SIGUSR1 and SIGTERM handlers (SigCgt bits 10
# and 15), i.e. lt_train has begun; at most 60 s x ts.
wait_handlers() {
  local p mask
  for _ in $(seq 1 $((600 * ts))); do
    local ok=1
    for p in "$@"; do
      mask=$(sed -n 's/^SigCgt:\s*//p' /proc/"$p"/status 2>/dev/null)
      [[ -n $mask ]] && (((16#$mask >> 9 & 1) && (16#$mask >> 14 & 1))) || ok=0
    done
    ((ok)) && return 0
    sleep 0.1
  done
  return 1
}
wait_ranks() { # dir, n: echo the n rank pids once they exist (at most 60 s x ts)
  local r
  for _ in $(seq 1 $((600 * ts))); do
    r=$(ranks_of "$1")
    (($(echo "$r" | grep -c .) >= $2)) && echo "$r" && return 0
    sleep 0.1
  done
  return 1
}
wait_logged() { # dir, step, pid: until metrics has the step's loss line (at most 120 s x ts)
  for _ in $(seq 1 $((1200 * ts))); do
    grep -q "^{\"step\":$2,\"epoch\"" "$1/metrics.jsonl" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# name, signal, pid to signal, job, limit s (x ts): signals the pid and
# waits for the job; sets rc and el (seconds from the signal to the end),
# failing above the limit.
stop_job() {
  local t0
  t0=$(date +%s.%N)
  kill -"$2" "$3"
  wait "$4"
  rc=$?
  el=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
  if awk "BEGIN { exit !($el > $5 * $ts) }"; then err "$1: ended $el s after the signal (limit $(($5 * ts)) s)"; fi
}
same_run() { # name, reference dir, dir: losses, eval losses and adapter bitwise
  if ! cmp -s <(grep -o '"loss":[^,]*\|"eval_loss":[^,]*' "$2/metrics.jsonl") \
              <(grep -o '"loss":[^,]*\|"eval_loss":[^,]*' "$3/metrics.jsonl"); then
    err "$1: losses or eval losses differ from the uninterrupted run's"
  elif ! cmp -s "$2/adapter_model.safetensors" "$3/adapter_model.safetensors"; then
    err "$1: the adapter differs from the uninterrupted run's"
  fi
}
checkpoint_of() { # name, dir, step: the stop's checkpoint, verified two ways
  local name=$1 d=$2 k=$3
  [[ $(cat "$d/latest_checkpoint" 2>/dev/null) == checkpoint-$k.h5 ]] ||
    err "$name: latest_checkpoint is \"$(cat "$d/latest_checkpoint" 2>/dev/null)\", expected checkpoint-$k.h5"
  "$bin" inspect "$d/checkpoint-$k.h5" >"$tmp/inspect.log" 2>&1 ||
    err "$name: checkpoint-$k.h5 does not verify: $(tail -1 "$tmp/inspect.log")"
  local got
  got=$(h5dump -a /global_step "$d/checkpoint-$k.h5" 2>&1 | sed -n 's/^ *(0): *\([0-9]*\)$/\1/p')
  [[ $got == "$k" ]] || err "$name: h5dump reads global_step \"$got\" from checkpoint-$k.h5, expected $k"
}
command -v h5dump >/dev/null || err "h5dump not found (launch/install_deps.sh installs hdf5-tools)"

# The uninterrupted runs.
timeout $((300 * ts)) "$bin" "${args[@]}" "${one[@]}" --output_dir "$tmp/ref1" >"$tmp/ref1.log" 2>&1 ||
  { err "1-process reference run failed:"; tail -3 "$tmp/ref1.log"; }
timeout $((300 * ts)) "${mpi[@]}" "$bin" "${args[@]}" "${two[@]}" --output_dir "$tmp/ref2" >"$tmp/ref2.log" 2>&1 ||
  { err "2-rank reference run failed:"; tail -3 "$tmp/ref2.log"; }

# SIGTERM while loading, one process.
d=$tmp/load1
LT_FAULT_SLOW=load:$((60 * ts)) "$bin" "${args[@]}" "${one[@]}" --output_dir "$d" >"$tmp/load1.out" 2>"$tmp/load1.err" &
job=$!
wait_handlers $job || err "loading: the handlers were never installed"
stop_job "SIGTERM while loading" TERM $job $job 15
[[ $rc == 75 ]] || err "SIGTERM while loading: exit $rc, expected 75"
grep -qx "loratrain: stopped by SIGTERM while loading: nothing to save yet (exit status 75)" "$tmp/load1.err" ||
  err "SIGTERM while loading: stderr: $(cat "$tmp/load1.err")"
[[ -z $(ls -A "$d") ]] || err "SIGTERM while loading: files written: $(ls -A "$d")"
echo "SIGTERM while loading: exit $rc after $el s: $(cat "$tmp/load1.err")"

# SIGUSR1 to mpirun, then to rank 1 alone, while two ranks load.
for who in mpirun rank1; do
  d=$tmp/load2$who
  LT_FAULT_SLOW=load:$((60 * ts)) "${mpi[@]}" "$bin" "${args[@]}" "${two[@]}" --output_dir "$d" >"$tmp/load2$who.log" 2>&1 &
  job=$!
  # shellcheck disable=SC2046
  ranks=$(wait_ranks "$d" 2) && wait_handlers $ranks || err "2 ranks loading: no ranks with handlers"
  victim=$job
  [[ $who == rank1 ]] && victim=$(echo "$ranks" | tail -1)
  stop_job "SIGUSR1 to $who while 2 ranks load" USR1 "$victim" $job 15
  [[ $rc == 75 ]] || err "SIGUSR1 to $who while 2 ranks load: exit $rc, expected 75"
  grep -q "stopped by SIG[A-Z0-9]* while loading: nothing to save yet" "$tmp/load2$who.log" ||
    err "SIGUSR1 to $who while 2 ranks load: no \"while loading\" line"
  [[ -z $(ls -A "$d") ]] || err "SIGUSR1 to $who while 2 ranks load: files written: $(ls -A "$d")"
  echo "SIGUSR1 to $who while 2 ranks load: the job ended with $rc after $el s"
done

# SIGUSR1 during the evaluation at step 0: nothing to save.
d=$tmp/eval0
LT_FAULT_SLOW=eval@0:$pause "$bin" "${args[@]}" "${one[@]}" --output_dir "$d" >"$tmp/eval0.log" 2>&1 &
job=$!
wait_handlers $job || err "step-0 evaluation: the handlers were never installed"
# The handlers come before loading; loading the bundled model takes well
# under the evaluation's 20 s x ts.
sleep $ts
stop_job "SIGUSR1 during the step-0 evaluation" USR1 $job $job 8
[[ $rc == 75 ]] || err "SIGUSR1 during the step-0 evaluation: exit $rc, expected 75"
grep -q "^stopped by SIGUSR1 during the evaluation at step 0 of 8: no step taken, nothing to save" "$tmp/eval0.log" ||
  err "SIGUSR1 during the step-0 evaluation: no stop line: $(tail -2 "$tmp/eval0.log")"
ls "$d" | grep -q checkpoint && err "SIGUSR1 during the step-0 evaluation: a checkpoint was written"
echo "SIGUSR1 during the step-0 evaluation: exit $rc after $el s, nothing saved"

# SIGUSR1 during the evaluation at step 4 (and at step 8, the final one).
stop_in_eval() { # name, ref, dir, step, np, signal target (job|rank1)
  local name=$1 ref=$2 d=$3 k=$4 np=$5 target=$6 job
  local run=("$bin" "${args[@]}" "${one[@]}")
  ((np == 2)) && run=("${mpi[@]}" "$bin" "${args[@]}" "${two[@]}")
  LT_FAULT_SLOW=eval@$k:$pause "${run[@]}" --output_dir "$d" >"$d.log" 2>&1 &
  job=$!
  wait_logged "$d" "$k" $job || { err "$name: step $k never logged"; return; }
  sleep $ts # into the evaluation
  local victim=$job
  [[ $target == rank1 ]] && victim=$(ranks_of "$d" | tail -1)
  stop_job "$name" USR1 "$victim" $job 8
  [[ $rc == 75 ]] || err "$name: exit $rc, expected 75"
  grep -q "stopped by SIGUSR1 during the evaluation at step $k of 8: the checkpoint of step $k in $d is complete" "$d.log" ||
    err "$name: no stop line: $(grep -v '^ *$' "$d.log" | tail -2)"
  checkpoint_of "$name" "$d" "$k"
  grep -q "\"step\":$k,\"eval_loss\"" "$d/metrics.jsonl" && err "$name: an eval_loss line for step $k"
  [[ -f $d/adapter_model.safetensors ]] && err "$name: an adapter was written"
  run=("$bin" "${args[@]}" "${one[@]}")
  ((np == 2)) && run=("${mpi[@]}" "$bin" "${args[@]}" "${two[@]}")
  timeout $((300 * ts)) "${run[@]}" --output_dir "$d" --resume_from_checkpoint latest >"$d.resumed.log" 2>&1 ||
    err "$name: the resumed run failed: $(tail -1 "$d.resumed.log")"
  grep -q "eval at step $k: eval_loss" "$d.resumed.log" || err "$name: the resumed run did not evaluate step $k"
  same_run "$name, resumed" "$ref" "$d"
  echo "$name: exit $rc after $el s, checkpoint-$k verified (h5dump: global_step $k); resumed, evaluated step $k, bitwise the uninterrupted run"
}
stop_in_eval "SIGUSR1 during the evaluation at step 4" "$tmp/ref1" "$tmp/eval4" 4 1 job
stop_in_eval "SIGUSR1 to rank 1 during the evaluation at step 4 (2 ranks, sharded NF4)" "$tmp/ref2" "$tmp/eval4x2" 4 2 rank1
stop_in_eval "SIGUSR1 during the final evaluation" "$tmp/ref1" "$tmp/eval8" 8 1 job
exit $fail
