#!/bin/bash
# A failing rank ends the whole job, quickly, with its message -- never a
# hang -- and data-parallel misconfigurations are refused with one line:
#   - rank 1 of 2 given a truncated model file (mpirun's MPMD form): the
#     job exits non-zero within 30 s (x LT_TIMEOUT_SCALE) and stderr names
#     rank 1 and the file;
#   - rank 1 of 2 killed (SIGKILL) mid-training: mpirun exits non-zero
#     within 30 s (x LT_TIMEOUT_SCALE) and reports the killed rank;
#   - ranks that differ (rank 1 seeded differently) with ddp_check_replicas:
#     the check names the step and the rank;
#   - srun that starts tasks MPI does not see as one job (no PMIx), and a
#     PMI launcher Open MPI cannot join (PMI_SIZE=2, one MPI world of 1):
#     refused;
#   - shard_base with an fp32 base: refused.
# Usage: dist_faults.sh LORATRAIN REPO_ROOT
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
suite_init bin root -- "$@"
args=(train --model models/stories260K/stories260K.bin --tokenizer models/stories260K/tok512.bin
      --train_file data/tinyshakespeare/input.txt --max_seq_length 64 --per_device_train_batch_size 2
      --warmup_steps 0 --threads 1 --disable_tqdm --logging_steps 1)

expect_fail() { # name, rc, elapsed, log, pattern...
  local name=$1 rc=$2 el=$3 log=$4
  shift 4
  if [[ $rc == 0 ]]; then echo "FAIL $name: exit status 0"; fail=1; fi
  # Scaled, a hang still shows: the runs are bounded by 4 x this limit.
  if ((el > 30 * ts)); then echo "FAIL $name: took $el s to end the job"; fail=1; fi
  for p in "$@"; do
    if ! grep -q -- "$p" "$log"; then echo "FAIL $name: output lacks \"$p\":"; tail -5 "$log"; fail=1; fi
  done
  echo "$name: exit $rc after ${el} s"
}

# A bad file on one rank.
head -c 100000 models/stories260K/stories260K.bin >"$tmp/truncated.bin"
t0=$(date +%s)
timeout $((120 * ts)) mpirun --oversubscribe -np 1 "$bin" "${args[@]}" --max_steps 50 --output_dir "$tmp/bad" : \
  -np 1 "$bin" "${args[@]}" --max_steps 50 --output_dir "$tmp/bad" --model "$tmp/truncated.bin" \
  >"$tmp/bad.log" 2>&1
rc=$?
expect_fail "bad file on rank 1" $rc $(($(date +%s) - t0)) "$tmp/bad.log" "rank 1 of 2" "truncated.bin"

# A rank killed mid-run.
t0=$(date +%s)
timeout $((120 * ts)) mpirun --oversubscribe -np 2 "$bin" "${args[@]}" --max_steps 100000 \
  --output_dir "$tmp/kill" >"$tmp/kill.log" 2>&1 &
job=$!
for _ in $(seq 1 $((600 * ts))); do # until step 2 is logged (at most 60 s x ts)
  [[ -f $tmp/kill/metrics.jsonl ]] && (($(wc -l <"$tmp/kill/metrics.jsonl") >= 2)) && break
  sleep 0.1
done
victim=$(pgrep -f -- "--output_dir $tmp/kill" | grep -v "^$job\$" | while read -r p; do
  [[ $(cat /proc/"$p"/comm 2>/dev/null) == loratrain ]] && echo "$p"; done | tail -1)
if [[ -z $victim ]]; then
  echo "FAIL killed rank: no loratrain rank found to kill"
  fail=1
  kill "$job" 2>/dev/null
else
  t0=$(date +%s)
  kill -9 "$victim"
fi
wait "$job"
rc=$?
expect_fail "rank killed" $rc $(($(date +%s) - t0)) "$tmp/kill.log" "signal 9"

# Replicas that differ.
t0=$(date +%s)
timeout $((120 * ts)) mpirun --oversubscribe -np 1 "$bin" "${args[@]}" --max_steps 3 --ddp_check_replicas true \
  --output_dir "$tmp/rep" : -np 1 "$bin" "${args[@]}" --max_steps 3 --ddp_check_replicas true \
  --output_dir "$tmp/rep" --seed 7 >"$tmp/rep.log" 2>&1
rc=$?
expect_fail "diverged replicas" $rc $(($(date +%s) - t0)) "$tmp/rep.log" \
  "after step 1 the LoRA parameters of rank 1 differ from rank 0's"

# srun without PMIx: each task would be a world of 1.
t0=$(date +%s)
SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=0 timeout $((60 * ts)) "$bin" "${args[@]}" --max_steps 1 \
  --output_dir "$tmp/srun" >"$tmp/srun.log" 2>&1
rc=$?
expect_fail "srun without PMIx" $rc $(($(date +%s) - t0)) "$tmp/srun.log" "srun --mpi=pmix"
[[ $rc == 2 ]] || { echo "FAIL srun without PMIx: exit $rc, expected 2 (configuration)"; fail=1; }

# A launcher Open MPI cannot join (MPICH's Hydra sets PMI_SIZE): each
# process would be a world of 1.
t0=$(date +%s)
PMI_SIZE=2 PMI_RANK=0 timeout $((60 * ts)) "$bin" "${args[@]}" --max_steps 1 --output_dir "$tmp/hydra" \
  >"$tmp/hydra.log" 2>&1
rc=$?
expect_fail "foreign launcher" $rc $(($(date +%s) - t0)) "$tmp/hydra.log" \
  "the launcher started 2 processes (PMI_SIZE) but MPI sees a job of 1"
[[ -e $tmp/hydra/adapter_model.safetensors ]] && { echo "FAIL foreign launcher: an adapter was written"; fail=1; }

# shard_base needs a quantized base.
t0=$(date +%s)
timeout $((60 * ts)) mpirun --oversubscribe -np 2 "$bin" "${args[@]}" --max_steps 1 --shard_base true \
  --output_dir "$tmp/shard" >"$tmp/shard.log" 2>&1
rc=$?
expect_fail "shard_base with fp32" $rc $(($(date +%s) - t0)) "$tmp/shard.log" \
  "shard_base needs a quantized base"
exit $fail
