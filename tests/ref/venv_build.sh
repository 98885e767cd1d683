# Sourced by tests/ref/*_env.sh, with their one argument DIR (the venv
# folder; anything else: usage, exit 2), after they set:
#   me          the script's name, for messages; DIR/.<me without .sh>_ok
#               holds the pin list the venv was built with
#   pins        array of name==version, installed with --no-deps
#   check       Python that must run in the venv once it is built (after
#               the modules of sys_import, asserted to be still the
#               system's own)
#   sys_import  what /usr/bin/python3 itself must import ("torch, numpy")
#   sys_hint    the Debian packages that provide it
#   what        the pins in words, for the import-failure message
# Builds DIR (or finds it built) and exits: 0 ready, 77 cannot be made here
# (one line on stderr says why). Concurrent callers serialise on DIR.lock.
# The venv sees the system site-packages, and pip runs with a constraints
# file pinning every system package among numpy and torch to its system
# version, so it can never replace them.
if [[ $# -ne 1 || $1 == -* ]]; then
  echo "usage: tests/ref/$me DIR" >&2
  exit 2
fi
dir=$1
stamp_file=$dir/.${me%.sh}_ok
sys_check="import $sys_import"
for m in ${sys_import//,/ }; do
  sys_check+=$'\n'"assert $m.__file__.startswith(\"/usr/lib/python3/\"), $m.__file__"
done
check=$sys_check$'\n'$check
skip() { echo "$me: SKIP: $*" >&2; exit 77; }
stamp="${pins[*]}"
py=/usr/bin/python3

ready() { [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp" && -x $dir/bin/python ]]; }
ready && exit 0
# Tests run in parallel (ctest -j): one builds, the others wait for it.
mkdir -p "$(dirname "$dir")" || skip "cannot create $(dirname "$dir")"
exec 9>"$dir.lock" || skip "cannot write $dir.lock"
flock 9
ready && exit 0

[[ -x $py ]] || skip "no /usr/bin/python3"
$py -c "import $sys_import" 2>/dev/null || skip "/usr/bin/python3 cannot import $sys_import (apt-get install $sys_hint)"
$py -c 'import venv, ensurepip' 2>/dev/null || skip "/usr/bin/python3 cannot make venvs (apt-get install python3-venv)"

start=$EPOCHREALTIME
rm -rf "$dir"
log=$(mktemp)
trap 'rm -f "$log" "$log.c"' EXIT
if ! $py -m venv --system-site-packages "$dir" >"$log" 2>&1; then
  rm -rf "$dir"
  skip "/usr/bin/python3 -m venv failed (apt-get install python3-venv?): $(tail -n 1 "$log")"
fi
# pip's own version strings (Debian's torch reports "1.13.0a0" but pip sees
# "1.13.0a0+gitunknown").
: >"$log.c"
for p in numpy torch; do
  v=$("$dir/bin/python" -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
  [[ -n $v ]] && echo "$p==$v" >>"$log.c"
done
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if ! "$dir/bin/python" -m pip install -q --no-deps --timeout 30 --retries 1 -c "$log.c" "${pins[@]}" >"$log" 2>&1; then
  reason=$(grep -E 'ERROR|Error|error' "$log" | tail -n 1)
  rm -rf "$dir"
  skip "pip install failed (no network or no such version?): ${reason:-$(tail -n 1 "$log")}"
fi
if ! "$dir/bin/python" -c "$check" >"$log" 2>&1; then
  reason=$(tail -n 1 "$log")
  rm -rf "$dir"
  skip "pinned $what do not import here: $reason"
fi
echo "$stamp" >"$stamp_file"
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "$me: venv $dir ready in $secs s" >&2
exit 0
