# The shell suites' one library: the opening every suite had written out
# again (its arguments, the build's time-limit factor, Debian's python3,
# mpirun as root, a scratch folder, the repository as working directory,
# the failure flag) and the helpers several suites defined alike. A suite
# sources it and opens with one call:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/suite.sh"
#   suite_init bin root venv -- "$@"
#
# Each helper's comment says what it sets and what it reads; the suite's
# own checks stay in the suite.

# suite_init NAME... -- ARGS...: each NAME takes the next argument (NAME?:
# optional, empty when absent); a missing one prints the suite's "# Usage:"
# line and exits 2. Then:
#   ts    the build's time-limit factor (LT_TIMEOUT_SCALE, set by
#         tests/CMakeLists.txt; 1 outside CTest): scale every wait by it
#   py    /usr/bin/python3 (Debian's, with torch and h5py), unless a NAME
#         is py
#   bin   made absolute when given relative, as the suite may cd
#   OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) exported: mpirun as root in CI
#   tmp   a fresh folder, removed at exit after what suite_at_exit names;
#         KEEP=1 keeps it and says where
#   cwd   root, when a NAME is root (the suites name repository files
#         relative to it)
#   fail  0; err MESSAGE prints "FAIL MESSAGE" and sets it to 1
suite_init() {
  local names=() n usage
  while (($#)) && [[ $1 != -- ]]; do names+=("$1"); shift; done
  (($#)) && shift
  usage=$(sed -n 's/^#.*[Uu]sage: *//p' "$0" | head -1)
  ts=${LT_TIMEOUT_SCALE:-1}
  py=/usr/bin/python3
  for n in "${names[@]}"; do
    if [[ -z ${1:-} && $n != *\? ]]; then
      echo "usage: ${usage:-${0##*/} ${names[*]^^}}" >&2
      exit 2
    fi
    printf -v "${n%\?}" '%s' "${1:-}"
    (($#)) && shift
  done
  [[ -n ${bin:-} && $bin == */* && $bin != /* ]] && bin=$PWD/$bin
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  tmp=$(mktemp -d)
  suite_cleanups=()
  trap suite_exit EXIT
  [[ -n ${KEEP:-} ]] && echo "files in $tmp"
  if [[ " ${names[*]} " == *" root "* ]]; then cd "$root" || exit 1; fi
  fail=0
}

# suite_at_exit COMMAND: run COMMAND (a string, eval'd) at exit, before tmp
# goes: an unmount, a cluster to stop.
suite_at_exit() { suite_cleanups+=("$1"); }

suite_exit() {
  local c
  for c in "${suite_cleanups[@]}"; do eval "$c"; done
  [[ -n ${KEEP:-} ]] || rm -rf "$tmp"
}

err() { echo "FAIL $*"; fail=1; }

# expect_error NAME PATTERN COMMAND...: COMMAND must fail with exactly one
# line of output, holding PATTERN (grep).
expect_error() {
  local name=$1 pat=$2
  shift 2
  "$@" >"$tmp/e.log" 2>&1
  local rc=$?
  [[ $rc != 0 ]] || err "$name: exit status 0"
  (($(wc -l <"$tmp/e.log") == 1)) || { err "$name: expected one line, got:"; cat "$tmp/e.log"; }
  grep -q -- "$pat" "$tmp/e.log" || { err "$name: no \"$pat\" in: $(cat "$tmp/e.log")"; }
}

# steps_logged DIR: how many step lines (with a loss) DIR/metrics.jsonl has.
steps_logged() { if [[ -f $1/metrics.jsonl ]]; then grep -c '"loss"' "$1/metrics.jsonl"; else echo 0; fi; }

# ranks_of DIR: the PIDs of the loratrain processes writing to DIR.
ranks_of() {
  pgrep -f -- "--output_dir $1( |\$)" | while read -r p; do
    [[ $(cat /proc/"$p"/comm 2>/dev/null) == loratrain ]] && echo "$p"; done
}

# fill_after_checkpoint RUN_DIR MOUNT JOB_PID: for the tests that fill a
# disk (a tmpfs they mounted) under a running job. Waits until the run in
# RUN_DIR has written its first checkpoint (latest_checkpoint; at most 30 s
# x ts, or until the job ends), then takes all of MOUNT's free space but
# 64 KiB: room for a few metrics lines, none for a checkpoint. Returns
# non-zero if it could not fill the disk.
fill_after_checkpoint() {
  local run=$1 mnt=$2 job=$3 avail
  for _ in $(seq 1 $((600 * ts))); do
    [[ -f $run/latest_checkpoint ]] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.05
  done
  avail=$(df -B1 --output=avail "$mnt" | tail -1)
  fallocate -l $((avail - 65536)) "$mnt/filler"
}

# ---- logits against the references (tests/ref/peft_ref.py: transformers +
# PEFT in the pinned venv; tests/ref/peft_torch_ref.py: pure PyTorch, also
# the comparer). These read V (the vocabulary) and tol from the suite.

# suite_peft_env VENV WHAT_INSTEAD: hf_py is the python of VENV, built by
# tests/ref/peft_env.sh; where it cannot be, hf_py is empty and a line
# gives the reason and WHAT_INSTEAD runs.
suite_peft_env() {
  hf_py=""
  if tests/ref/peft_env.sh "$1" 2>"$tmp/env.log"; then
    hf_py=$1/bin/python
  else
    echo "transformers + PEFT unavailable ($(tail -1 "$tmp/env.log")): $2"
  fi
}

# random_ids OUT SEED LENGTH...: one line of token ids below 512 per
# LENGTH, drawn by Python's random.Random(SEED).
random_ids() {
  "$py" - "$@" <<'EOF'
import random, sys
r = random.Random(int(sys.argv[2]))
with open(sys.argv[1], "w") as f:
    for n in sys.argv[3:]:
        f.write(" ".join(str(r.randrange(512)) for _ in range(int(n))) + "\n")
EOF
}

# compare LABEL A B TOL [FAIL_LABEL]: the logits files A and B within TOL
# (peft_torch_ref.py compare): "LABEL: the figures", or a failure under
# FAIL_LABEL (default LABEL).
compare() {
  local out
  if out=$($py tests/ref/peft_torch_ref.py compare "$2" "$3" --vocab $V --tol "$4" 2>&1); then
    echo "$1: $out"
  else
    err "${5:-$1}: $out"
  fi
}

# refs LABEL OURS OPTIONS...: the logits of each reference (pure PyTorch,
# then transformers + PEFT where hf_py is set) given OPTIONS and
# $tmp/ids.txt, into $tmp/LABEL.torch and $tmp/LABEL.hf, each compared
# with the file OURS within tol.
refs() {
  local label=$1 ours=$2 tool r
  shift 2
  for tool in torch hf; do
    if [[ $tool == hf ]]; then
      [[ -n $hf_py ]] || continue
      r=("$hf_py" tests/ref/peft_ref.py)
    else
      r=("$py" tests/ref/peft_torch_ref.py)
    fi
    "${r[@]}" logits "$@" --ids "$tmp/ids.txt" --out "$tmp/$label.$tool" >"$tmp/r.log" 2>&1 ||
      { err "$label: the $tool reference failed: $(tail -2 "$tmp/r.log")"; continue; }
    compare "$label vs $([[ $tool == hf ]] && echo "transformers+PEFT" || echo "pure PyTorch")" \
      "$ours" "$tmp/$label.$tool" $tol
  done
}
