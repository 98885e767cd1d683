#!/bin/bash
# Runs one job step for a loratrain sbatch script and turns "stopped after a
# checkpoint" into a requeue. The batch script must exec it, so that it is
# the batch shell itself (Slurm's `--signal=B:` and `scancel --batch` signal
# that one process, and a bash without a trap dies of SIGUSR1):
#
#   exec bash launch/slurm/run_step.sh srun --mpi=pmix build/loratrain train ...
#
# Give srun's own options as --name=value: the first word after srun that does
# not start with '-' is taken to be the program, and checked (found? do its
# libraries load?) before anything is launched.
#
# What loratrain does: on SIGUSR1 or SIGTERM reaching any rank, every rank
# finishes its current step, a checkpoint is written to output_dir, rank 0
# prints "stopped by SIGUSR1 after step K of N ...", and all ranks exit with 75
# (EX_TEMPFAIL: not finished, resumable). `--resume_from_checkpoint latest`
# picks that checkpoint up in the next run, and starts from step 0 when
# output_dir has none yet, so every run of the job uses the same command line.
#
# What Slurm does (seen on Slurm 22.05):
# - `--signal=B:USR1@N` signals only the batch shell, about N seconds before
#   the time limit (it is checked every 30 s or so, so it may come early).
#   The tasks hear nothing unless it is passed on, which the traps below do.
# - srun passes SIGUSR1 on to every task. SIGTERM it does NOT pass on: srun
#   takes it as "abort the step" and the tasks are SIGKILLed at once, with no
#   checkpoint. So a SIGTERM reaching this shell goes on to srun as SIGUSR1,
#   which loratrain handles the same way.
# - `scancel JOBID` and the time limit send SIGCONT and SIGTERM to every
#   process of the job (tasks, sometimes twice; srun; this shell), and SIGKILL
#   KillWait seconds later (30 s unless the site changed it): a checkpoint
#   has to fit in that, which is why the templates ask for the early warning.
#   Preemption does the same with GraceTime.
# - `scancel --signal=USR1 JOBID` signals the tasks only, `--batch` only this
#   shell; both end in a requeue here.
# - `scontrol requeue` needs a requeueable job (`--requeue`, or the site's
#   JobRequeue=1, the default; `--no-requeue` makes it fail). The job keeps
#   its id, its environment and, with --open-mode=append, its output file;
#   the new run has SLURM_RESTART_COUNT=1, 2, ... (unset in the first) and
#   may start only after the site's cred_expire (120 s by default) has
#   passed. `sbatch --wait` keeps waiting across requeues and returns the
#   exit status of the final run.
#
# Exit status: the step's, except that 75 while the job is still RUNNING (the
# USR1 warning, or a stop signal sent to the job alone) becomes a requeue:
# this script exits 0 and Slurm starts the job again. 75 while Slurm is ending
# the job (scancel, time limit, preemption) stays 75: `scontrol requeue`
# would succeed even then, and bring back a job its user had just cancelled.
# Set LORATRAIN_MAX_REQUEUES to give up after that many restarts.
set -u
me=run_step

if [[ $# -eq 0 ]]; then
  echo "usage: $0 srun [--srun-option=value ...] PROGRAM [ARGS ...]" >&2
  exit 2
fi

# --- checks, so that a broken environment fails in one clear line ---
if ! command -v "$1" >/dev/null; then
  echo "$me: '$1' not found on $(hostname): is Slurm's client installed on the compute nodes and on PATH?" >&2
  exit 1
fi
prog=""
if [[ $(basename "$1") == srun ]]; then
  for a in "${@:2}"; do
    [[ $a == -* ]] && continue
    prog=$a
    break
  done
else
  prog=$1
fi
if [[ -n $prog && $prog != "$1" ]]; then
  path=$(command -v "$prog") || {
    echo "$me: program '$prog' not found (working directory $PWD): build it first (cmake --build build), or set LORATRAIN" >&2
    exit 1
  }
  if command -v ldd >/dev/null && missing=$(ldd "$path" 2>/dev/null | grep 'not found'); then
    echo "$me: $path cannot load its libraries on $(hostname):" >&2
    while read -r line; do echo "    $line" >&2; done <<<"$missing"
    echo "$me: load the MPI (and BLAS/HDF5) modules it was built with, or rebuild it on this cluster" >&2
    exit 1
  fi
fi

# --- the step, with stop signals passed on ---
step=""       # srun's PID once it runs
stop=""       # USR1 or TERM: the first stop signal this shell received
interrupted=0 # set by a trap: `wait` returned early and must be called again
on_stop() {
  interrupted=1
  [[ -z $stop ]] && stop=$1
  [[ $1 == TERM ]] && stop=TERM
  echo "$me: SIG$1 at $(date '+%F %T'): asking the step to checkpoint and stop"
  # Always USR1, see above; a task that is already stopping ignores a repeat.
  [[ -n $step ]] && kill -USR1 "$step" 2>/dev/null
}
trap 'on_stop USR1' USR1
trap 'on_stop TERM' TERM

if [[ -n $stop ]]; then
  rc=75 # told to stop before the step started: nothing to save, just go again
else
  "$@" &
  step=$!
  # A signal may have come while srun was being started.
  [[ -n $stop ]] && kill -USR1 "$step" 2>/dev/null
  while :; do
    interrupted=0
    wait "$step"
    rc=$?
    ((interrupted)) || break
  done
fi

if [[ $rc -ne 75 ]]; then
  [[ $rc -ne 0 ]] && echo "$me: the step failed with exit status $rc" >&2
  exit "$rc"
fi
if [[ -z ${SLURM_JOB_ID:-} ]]; then
  echo "$me: stopped after a checkpoint; not in a Slurm job, so run again to continue"
  exit 75
fi
# Requeue only a job that is still RUNNING: after scancel, the time limit or
# a preemption it reads COMPLETING.
state=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
state=${state#JobState=}
if [[ -z $state && $stop == TERM ]] || [[ -n $state && $state != RUNNING ]]; then
  echo "$me: stopped after a checkpoint; job $SLURM_JOB_ID is ${state:-ending} (scancel, time limit or preemption), so Slurm decides what comes next: not requeueing"
  exit 75
fi
restarts=${SLURM_RESTART_COUNT:-0}
if [[ -n ${LORATRAIN_MAX_REQUEUES:-} && $restarts -ge $LORATRAIN_MAX_REQUEUES ]]; then
  echo "$me: stopped after a checkpoint; already requeued $restarts times (LORATRAIN_MAX_REQUEUES): giving up" >&2
  exit 75
fi
echo "$me: stopped after a checkpoint; requeueing job $SLURM_JOB_ID (restart $((restarts + 1))) at $(date '+%F %T')"
if ! scontrol requeue "$SLURM_JOB_ID"; then
  echo "$me: scontrol requeue $SLURM_JOB_ID failed (was the job submitted with --no-requeue?); resubmit it to continue" >&2
  exit 75
fi
# Slurm ends this run itself once the requeue is under way.
exit 0
