#!/bin/bash
# A private single-node Slurm cluster on localhost, for the tests.
#
#   tests/lib/slurm_cluster.sh start DIR     start munged, slurmctld and slurmd; write DIR/env
#   tests/lib/slurm_cluster.sh stop DIR      cancel its jobs, stop its daemons (by PID); idempotent
#   tests/lib/slurm_cluster.sh env DIR       print the exports that point Slurm's commands at it
#   tests/lib/slurm_cluster.sh selftest      start one in a temporary folder, run a 2-task
#                                        `srun --mpi=pmix` job with `sbatch --wait`, stop it
#
# Typical use from a test:
#   tests/lib/slurm_cluster.sh start "$d" || exit $?     # 77 = skip (no Slurm, not root)
#   trap 'tests/lib/slurm_cluster.sh stop "$d"' EXIT
#   source "$d/env"                                   # SLURM_CONF=$d/slurm.conf
#   sbatch --wait --ntasks=2 --overcommit job.sbatch; echo "job rc=$?"
#
# Everything the cluster owns lives under DIR: munge key (0700) and socket
# (0755, munged wants it reachable by everyone), controller state, slurmd spool,
# logs, pid files, PMIx scratch. Nothing under /etc, /var or /run is touched,
# so it can run beside a real Slurm on the host and beside another test run:
# the port pair is the first free one from $LORATRAIN_TEST_SLURM_PORT (default
# 16817/16818, then +2, ...), chosen under a lock so two concurrent starts
# cannot take the same pair, and job ids start at port*1000 so two clusters
# never run a job with the same id (Open MPI and PMIx key scratch names on it).
#
# Requeue: slurmctld lets a requeued batch job start again only after
# cred_expire (AuthInfo; 120 s by default): it sits PENDING, Reason=BeginTime,
# for 2 minutes. We set cred_expire to $LORATRAIN_TEST_SLURM_CRED_EXPIRE
# (default 10 s; Slurm rejects values under 5, and it is also how long a step's
# launch credential stays valid, so not less on a loaded machine) and let the
# scheduler look every second: `scontrol requeue` to running again takes
# about 10.5-11 s (6.3 s with 5). Production sites keep 120 s; the templates in
# launch/slurm/ work either way.
#
# `sbatch --wait` polls: it sleeps 2 s, and multiplies the sleep by 4 (to at
# most 32 s) while it is under MinJobAge/2. MinJobAge=5 keeps it at 2 s, so it returns
# within ~2 s of the job's end, across requeues, with the last run's status.
# The price: a finished job drops out of `squeue`/`scontrol show job` some
# 5-10 s after it ends; read results from its output files.
#
# Exit status: 0 ok, 77 skipped (a daemon or client is not installed, or not
# root: slurmd must run as root), 1 failure (the relevant log's tail is printed
# and whatever had been started is stopped again).
set -uo pipefail
ts=${LT_TIMEOUT_SCALE:-1} # the build's time-limit factor (tests/CMakeLists.txt)

me=slurm_cluster
die() { echo "$me: $*" >&2; exit 1; }
skip() { echo "$me: SKIP: $*" >&2; exit 77; }

# The daemons, by the name each one's /proc/PID/comm must show
# before we signal it (guards against a stale pid file naming a reused PID).
daemons=(slurmd slurmctld munged)

alive() { # PID EXPECTED-COMM
  [[ -n $1 && -d /proc/$1 ]] || return 1
  local comm; comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
  [[ $comm == "$2" ]]
}

pid_of() { # DIR DAEMON
  local p; p=$(cat "$1/run/$2.pid" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  echo "$p"
}

log_tail() { # DIR DAEMON
  local f=$1/log/$2.log
  if [[ -s $f ]]; then
    echo "$me: --- last lines of $f ---" >&2
    tail -n 25 "$f" >&2
    echo "$me: ---" >&2
  else
    echo "$me: ($f is empty or missing)" >&2
  fi
}

port_in_use() { # PORT
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
  fi
  # A connect succeeds only if something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

exports() { # DIR
  local d=$1
  cat <<EOF
# Points Slurm's commands at the private cluster in $d.
# Unsets the caller's SLURM_*/SBATCH_*/SRUN_*/SALLOC_* input variables first, in
# case the tests run inside another Slurm job: they would leak into submissions.
for _v in \$(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_'); do unset "\$_v"; done; unset _v
export SLURM_CONF=$d/slurm.conf
export LORATRAIN_TEST_SLURM_DIR=$d
EOF
}

cmd_stop() { # DIR
  local d=$1
  [[ -d $d ]] || return 0
  d=$(cd "$d" && pwd)
  local ctld; ctld=$(pid_of "$d" slurmctld)
  # Jobs first, while the controller can still end them properly (tasks get
  # SIGTERM, then SIGKILL after KillWait): stopping slurmd does not stop
  # slurmstepd, so a job would outlive the cluster.
  local jobs=()
  alive "$ctld" slurmctld && mapfile -t jobs < <(SLURM_CONF=$d/slurm.conf squeue -h -o %i 2>/dev/null)
  if ((${#jobs[@]})); then
    SLURM_CONF=$d/slurm.conf scancel --quiet "${jobs[@]}" 2>/dev/null
    local i
    for ((i = 0; i < 150 * ts; i++)); do
      [[ -z $(SLURM_CONF=$d/slurm.conf squeue -h -o %i 2>/dev/null) ]] && break
      sleep 0.1
    done
  fi
  # All three at once: each takes 1.5-2 s to shut down, none needs the others
  # for that.
  local name p i pids=() names=()
  for name in "${daemons[@]}"; do
    p=$(pid_of "$d" "$name") || continue
    if alive "$p" "$name"; then
      kill -TERM "$p" 2>/dev/null
      pids+=("$p")
      names+=("$name")
    fi
  done
  local left
  for ((i = 0; i < 100 * ts; i++)); do
    left=0
    for p in "${!pids[@]}"; do alive "${pids[$p]}" "${names[$p]}" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for p in "${!pids[@]}"; do
    alive "${pids[$p]}" "${names[$p]}" || continue
    echo "$me: ${names[$p]} (pid ${pids[$p]}) ignored SIGTERM for $((10 * ts)) s; sending SIGKILL" >&2
    kill -KILL "${pids[$p]}" 2>/dev/null
    for ((i = 0; i < 50 * ts; i++)); do alive "${pids[$p]}" "${names[$p]}" || break; sleep 0.1; done
    alive "${pids[$p]}" "${names[$p]}" && echo "$me: ${names[$p]} (pid ${pids[$p]}) is still alive" >&2
  done
  for name in "${daemons[@]}"; do rm -f "$d/run/$name.pid"; done
  # Step daemons of jobs that would not die carry our marker in their
  # environment (inherited from slurmd): end them by PID too.
  local e
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}; p=${p%/environ}
    alive "$p" slurmstepd || continue
    if tr '\0' '\n' <"$e" 2>/dev/null | grep -qxF "LORATRAIN_TEST_SLURM_DIR=$d"; then
      echo "$me: killing leftover slurmstepd pid $p" >&2
      kill -KILL "$p" 2>/dev/null
    fi
  done
  return 0
}

cmd_start() { # DIR
  local d=$1
  [[ $(id -u) -eq 0 ]] || skip "not root (slurmd must run as root)"
  local b
  for b in munged mungekey slurmctld slurmd sbatch srun scontrol sinfo squeue scancel; do
    command -v "$b" >/dev/null || skip "'$b' not found (apt-get install slurm-wlm munge, or launch/install_deps.sh)"
  done
  mkdir -p "$d" || die "cannot create $d"
  d=$(cd "$d" && pwd)
  local name p
  for name in "${daemons[@]}"; do
    p=$(pid_of "$d" "$name") && alive "$p" "$name" && die "$name (pid $p) already runs for $d; stop it first"
  done
  # From here on, a failure stops whatever this call has started.
  trap 'cmd_stop "$d" >/dev/null 2>&1' EXIT
  fail() { # DAEMON MESSAGE
    echo "$me: $2" >&2
    [[ -n $1 ]] && log_tail "$d" "$1"
    exit 1
  }

  rm -rf "$d"/{munge,munge-sock,state,spool,log,run,tmp}
  mkdir -p "$d"/{munge,munge-sock,state,spool,log,run,tmp} || fail "" "cannot create folders in $d"
  chmod 755 "$d" "$d/munge-sock"
  chmod 700 "$d/munge" "$d/state" "$d/spool"
  chmod 1777 "$d/tmp"

  local t0=$SECONDS
  mungekey --create --keyfile="$d/munge/munge.key" >/dev/null 2>"$d/log/mungekey.log" ||
    fail mungekey "mungekey failed"
  chmod 400 "$d/munge/munge.key"
  local sock=$d/munge-sock/munge.sock
  munged --socket="$sock" --key-file="$d/munge/munge.key" --log-file="$d/log/munged.log" \
    --pid-file="$d/run/munged.pid" --seed-file="$d/munge/munged.seed" ||
    fail munged "munged did not start"
  local i
  for ((i = 0; i < 50 * ts; i++)); do [[ -S $sock ]] && break; sleep 0.1; done
  munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 ||
    fail munged "munged does not answer on $sock"

  # Serialise the choice of ports with any concurrent start on this host,
  # until both daemons listen on them.
  local lock=${TMPDIR:-/tmp}/loratrain-slurm-ports.lock
  exec 9>>"$lock"
  if command -v flock >/dev/null; then flock -w 120 9 || fail "" "could not take $lock"; fi
  local port=${LORATRAIN_TEST_SLURM_PORT:-16817}
  for ((i = 0; i < 200; i++, port += 2)); do
    port_in_use "$port" || port_in_use $((port + 1)) || break
  done
  ((i < 200)) || fail "" "no free port pair from ${LORATRAIN_TEST_SLURM_PORT:-16817} to $port"

  # The node's CPUs are the ones this machine really has.
  local cpus; cpus=$(nproc)
  local cred=${LORATRAIN_TEST_SLURM_CRED_EXPIRE:-10}
  if ((cred < 5)); then
    echo "$me: cred_expire $cred is below Slurm's minimum; using 5" >&2
    cred=5
  fi
  cat >"$d/slurm.conf" <<EOF
# Private test cluster written by tests/lib/slurm_cluster.sh; everything lives in $d.
ClusterName=loratrain
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again.
AuthInfo=socket=$sock,cred_expire=$cred
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=${LORATRAIN_TEST_SLURM_DEBUG:-info}
SlurmdDebug=${LORATRAIN_TEST_SLURM_DEBUG:-info}
TmpFS=$d/tmp
FirstJobId=$((port * 1000))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
# Slurm's default: the SIGTERM-to-SIGKILL grace in which a cancelled job's
# ranks write their checkpoint and exit (sanitizer builds need seconds for
# their exit-time leak check alone).
KillWait=30
InactiveLimit=0
# sbatch --wait polls every 2 s only while MinJobAge is under 6.
MinJobAge=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  # PMIx scratch (one folder per job step) goes here instead of /tmp.
  printf 'PMIxCliTmpDirBase=%s/tmp\n' "$d" >"$d/mpi.conf"
  exports "$d" >"$d/env"
  export SLURM_CONF=$d/slurm.conf
  # Inherited by slurmstepd, so that stop can recognise a step daemon of ours.
  export LORATRAIN_TEST_SLURM_DIR=$d

  slurmctld -f "$SLURM_CONF" -c >>"$d/log/slurmctld.log" 2>&1 9>&- || fail slurmctld "slurmctld did not start"
  for ((i = 0; i < 100 * ts; i++)); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    p=$(pid_of "$d" slurmctld) && ! alive "$p" slurmctld && ((i > 10)) && break
    sleep 0.2
  done
  scontrol ping 2>/dev/null | grep -q 'is UP' || fail slurmctld "slurmctld does not answer on port $port"

  slurmd -f "$SLURM_CONF" -N localhost >>"$d/log/slurmd.log" 2>&1 9>&- || fail slurmd "slurmd did not start"
  local state=""
  for ((i = 0; i < 100 * ts; i++)); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null)
    [[ $state == idle ]] && break
    sleep 0.2
  done
  [[ $state == idle ]] || fail slurmd "node localhost is '${state:-unknown}', not idle, after $((20 * ts)) s"
  exec 9>&-

  trap - EXIT
  echo "$me: cluster up in $((SECONDS - t0)) s: $d (ports $port/$((port + 1)), $cpus CPUs); source $d/env"
}

cmd_selftest() {
  selftest_dir=$(mktemp -d "${TMPDIR:-/tmp}/slurm-selftest.XXXXXX") || die "mktemp failed"
  local d=$selftest_dir
  ( cmd_start "$d" ) || { local rc=$?; rm -rf "$d"; return $rc; }
  trap 'cmd_stop "$selftest_dir"; rm -rf "$selftest_dir"' EXIT
  source "$d/env"
  local prog="bash -c 'echo \"task \$SLURM_PROCID of \$SLURM_NTASKS, PMIX_RANK=\$PMIX_RANK\"'"
  if command -v mpicc >/dev/null; then
    # A real MPI program: PMIx wire-up through srun is what loratrain needs.
    cat >"$d/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
  int rank, size, sum = 0, one = 1;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d of %d, allreduce %d\n", rank, size, sum);
  MPI_Finalize();
  return sum == size ? 0 : 1;
}
EOF
    mpicc -o "$d/hello" "$d/hello.c" || die "mpicc failed"
    prog=$d/hello
  fi
  cat >"$d/job.sbatch" <<EOF
#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --overcommit
#SBATCH --time=00:02:00
#SBATCH --output=$d/job-%j.out
srun --mpi=pmix $prog || exit \$?
exit 3
EOF
  local t0=$SECONDS rc
  sbatch --wait --quiet "$d/job.sbatch"; rc=$?
  cat "$d"/job-*.out
  echo "$me: selftest job took $((SECONDS - t0)) s, sbatch --wait returned $rc (the job exits 3 on success)"
  [[ $rc -eq 3 ]] || { log_tail "$d" slurmd; return 1; }
  [[ $(grep -c . "$d"/job-*.out) -ge 2 ]] || return 1
  echo "$me: selftest passed"
}

case ${1:-} in
  start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; cmd_start "$2" ;;
  stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  env) [[ $# -eq 2 ]] || die "usage: $0 env DIR"; d=$(cd "$2" 2>/dev/null && pwd) || die "no $2"; exports "$d" ;;
  selftest) cmd_selftest ;;
  *) echo "usage: $0 start DIR | stop DIR | env DIR | selftest" >&2; exit 2 ;;
esac
