#!/bin/bash
# Runs one libFuzzer target for a bounded time from the committed seeds;
# fails (with the crashing input's path and libFuzzer's report) if any
# input crashes, leaks, overflows or times out (10 s an input, times the
# build's LT_TIMEOUT_SCALE).
# Usage: run_fuzz.sh FUZZER SEED_DIR SECONDS
set -u
fuzzer=${1:?usage: run_fuzz.sh FUZZER SEED_DIR SECONDS}
seeds=${2:?}
secs=${3:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
# The first folder receives new inputs; the seeds stay untouched.
(cd "$work" && "$fuzzer" -max_total_time="$secs" -timeout=$((10 * ${LT_TIMEOUT_SCALE:-1})) -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 corpus "$seeds" >"$work/log" 2>&1)
rc=$?
grep -E "^(stat::number_of_executed_units|stat::new_units_added)|Done [0-9]+ runs" "$work/log"
if ((rc != 0)); then
  echo "FAIL $(basename "$fuzzer"): libFuzzer exit $rc"
  tail -40 "$work/log"
  for c in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [[ -e $c ]] || continue
    keep=${TMPDIR:-/tmp}/$(basename "$fuzzer")-$(basename "$c")
    cp "$c" "$keep"
    echo "input kept in $keep"
  done
  exit 1
fi
exit 0
