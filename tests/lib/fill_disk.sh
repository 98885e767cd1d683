# Sourced by the tests that fill a disk under a running job (a tmpfs they
# mounted): fill_after_checkpoint RUN_DIR MOUNT JOB_PID waits until the run
# in RUN_DIR has written its first checkpoint (latest_checkpoint; at most
# 30 s x LT_TIMEOUT_SCALE, or until the job ends), then takes all of
# MOUNT's free space but 64 KiB: room for a few metrics lines, none for a
# checkpoint. Returns non-zero if it could not fill the disk.
fill_after_checkpoint() {
  local run=$1 mnt=$2 job=$3 avail
  for _ in $(seq 1 $((600 * ${LT_TIMEOUT_SCALE:-1}))); do
    [[ -f $run/latest_checkpoint ]] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.05
  done
  avail=$(df -B1 --output=avail "$mnt" | tail -1)
  fallocate -l $((avail - 65536)) "$mnt/filler"
}
