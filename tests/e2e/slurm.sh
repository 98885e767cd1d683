#!/bin/bash
# loratrain under a real Slurm (a private cluster on localhost started by
# tests/lib/slurm_cluster.sh), through the sbatch template users submit,
# launch/slurm/lora_single_node.sbatch (srun --mpi=pmix, 2 tasks):
#   job      the job runs to completion: exit 0, srun's 2 ranks, and the
#            adapter and losses bitwise those of `mpirun -np 2` on the same
#            settings;
#   requeue  the batch shell is sent SIGUSR1 mid-run (what
#            `--signal=B:USR1@120` does before a time limit): every rank
#            checkpoints, the job requeues itself, its second run resumes
#            from that checkpoint, and `sbatch --wait` returns 0 with the
#            adapter and losses bitwise the uninterrupted run's; then a job
#            cancelled mid-run (scancel: SIGTERM to every task) checkpoints,
#            its step ends with 75, it is not requeued, and the same job
#            submitted again finishes bitwise the same.
# Skipped (77) where Slurm cannot run here (not installed, not root).
# Usage: slurm.sh job|requeue LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init mode bin root -- "$@" # (bin made absolute: the batch jobs run it)
chmod 755 "$tmp" # munged wants every folder above its socket reachable
cluster=$tmp/cluster
tests/lib/slurm_cluster.sh start "$cluster"
rc=$?
if ((rc != 0)); then
  exit $rc
fi
suite_at_exit 'tests/lib/slurm_cluster.sh stop "$cluster"'
# shellcheck disable=SC1091
source "$cluster/env"

steps=150
export CONFIG=launch/configs/stories260K_shakespeare.json LORATRAIN=$bin
a="--max_seq_length 256 --per_device_train_batch_size 4 --max_steps $steps --save_steps 50"
export EXTRA_ARGS="$a --eval_steps 50 --max_eval_samples 8 --logging_steps 10 --disable_tqdm"
# The template asks for 4 CPUs per task; this machine has 2 for both.
sbatch_args=(--wait --parsable --ntasks=2 --overcommit --cpus-per-task=1)
template=launch/slurm/lora_single_node.sbatch

losses() { grep -o '"\(eval_\)\{0,1\}loss":[^,]*' "$1/metrics.jsonl"; }
check_same() { # name, dir: the adapter and every loss equal the reference's
  cmp -s "$tmp/ref/adapter_model.safetensors" "$2/adapter_model.safetensors" ||
    err "$1: the adapter differs from mpirun's uninterrupted run's"
  diff -q <(losses "$tmp/ref") <(losses "$2") >/dev/null ||
    err "$1: the losses differ from mpirun's uninterrupted run's"
}
expect() { # name, file, pattern...
  local name=$1 file=$2
  shift 2
  for p in "$@"; do
    grep -q -- "$p" "$file" || { err "$name: the job's output lacks \"$p\""; tail -8 "$file"; }
  done
}
# name, output dir, job output, jobid file: sbatch --wait in the background,
# a signal sent by the caller once step 20 is logged; sets job.
submit() {
  OUTPUT_DIR=$2 sbatch "${sbatch_args[@]}" --job-name="$1" --output="$3" "$template" >"$4" 2>&1 &
  submitter=$!
  for _ in $(seq 1 $((1200 * ts))); do # at most 120 s x ts
    (($(steps_logged "$2") >= 20)) && break
    kill -0 $submitter 2>/dev/null || break
    sleep 0.1
  done
  job=$(head -1 "$4")
  (($(steps_logged "$2") >= 20)) || { err "$1: step 20 never logged"; cat "$4"; tail -5 "$3"; }
}
stopped_step() { sed -n 's/^stopped by SIG[A-Z0-9]* after step \([0-9]*\) of .*/\1/p' "$1" | head -1; }

# The reference: the same settings under mpirun.
# shellcheck disable=SC2086
timeout $((300 * ts)) mpirun --oversubscribe -np 2 "$bin" train --config "$CONFIG" $EXTRA_ARGS --threads 1 \
  --output_dir "$tmp/ref" >"$tmp/ref.log" 2>&1 || { err "mpirun reference failed:"; tail -5 "$tmp/ref.log"; }

case $mode in
job)
  t0=$(date +%s)
  OUTPUT_DIR=$tmp/job timeout $((300 * ts)) sbatch "${sbatch_args[@]}" --job-name=lora-job --output="$tmp/job.out" \
    "$template" >"$tmp/sbatch.log" 2>&1
  rc=$?
  [[ $rc == 0 ]] || { err "job: sbatch --wait returned $rc"; cat "$tmp/sbatch.log"; tail -8 "$tmp/job.out"; }
  expect job "$tmp/job.out" "data parallel: 2 ranks (srun, mpi backend)" "done: $steps steps" \
    "no checkpoint in $tmp/job yet; starting at step 0"
  check_same job "$tmp/job"
  echo "job: 2 tasks under srun --mpi=pmix, $steps steps in $(($(date +%s) - t0)) s (submission to exit), bitwise mpirun's"
  ;;
requeue)
  # SIGUSR1 to the batch shell, as --signal=B:USR1@120 delivers it.
  t0=$(date +%s)
  submit lora-requeue "$tmp/rq" "$tmp/rq.out" "$tmp/rq.sbatch"
  [[ -n $job ]] && scancel --signal=USR1 --batch "$job"
  wait $submitter
  rc=$?
  [[ $rc == 0 ]] || { err "requeue: sbatch --wait returned $rc"; cat "$tmp/rq.sbatch"; tail -8 "$tmp/rq.out"; }
  k=$(stopped_step "$tmp/rq.out")
  if [[ -z $k ]]; then
    err "requeue: the first run did not stop on SIGUSR1"
    tail -8 "$tmp/rq.out"
  else
    expect requeue "$tmp/rq.out" "requeueing job $job (restart 1)" "run 2, 2 ranks" \
      "resuming from $tmp/rq/checkpoint-$k.h5 at step $k" "done: $steps steps"
  fi
  check_same requeue "$tmp/rq"
  echo "requeue: stopped after step $k, requeued, resumed and finished in $(($(date +%s) - t0)) s; bitwise the uninterrupted run"

  # scancel: every task gets SIGTERM; the job ends, checkpointed, with 75.
  # sbatch --wait returns as soon as the job reads CANCELLED, before its
  # processes have finished: wait for them to leave the queue instead.
  submit lora-cancel "$tmp/cx" "$tmp/cx.out" "$tmp/cx.sbatch"
  [[ -n $job ]] && scancel "$job"
  wait $submitter
  for _ in $(seq 1 $((600 * ts))); do # at most 60 s x ts
    [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] && break
    sleep 0.1
  done
  [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] || err "scancel: job $job still in the queue after 60 s"
  k=$(stopped_step "$tmp/cx.out")
  [[ -n $k ]] || { err "scancel: the ranks did not stop with a checkpoint"; tail -8 "$tmp/cx.out"; }
  expect scancel "$tmp/cx.out" "stopped after a checkpoint; job $job is " "not requeueing"
  grep -q "requeueing job\|run 2," "$tmp/cx.out" && err "scancel: a cancelled job requeued itself"
  [[ $(cat "$tmp/cx/latest_checkpoint" 2>/dev/null) == "checkpoint-$k.h5" ]] ||
    err "scancel: latest_checkpoint does not name checkpoint-$k.h5"
  OUTPUT_DIR=$tmp/cx timeout $((300 * ts)) sbatch "${sbatch_args[@]}" --job-name=lora-cancel-again \
    --output="$tmp/cx2.out" "$template" >"$tmp/cx2.sbatch" 2>&1
  rc=$?
  [[ $rc == 0 ]] || { err "scancel: the resubmitted job returned $rc"; tail -8 "$tmp/cx2.out"; }
  expect "scancel, resubmitted" "$tmp/cx2.out" "resuming from $tmp/cx/checkpoint-$k.h5 at step $k"
  check_same "scancel, resubmitted" "$tmp/cx"
  echo "scancel: checkpointed after step $k, exit 75, not requeued; resubmitted, bitwise the uninterrupted run"
  ;;
*)
  echo "usage: slurm.sh job|requeue LORATRAIN REPO_ROOT" >&2
  exit 2
  ;;
esac
exit $fail
