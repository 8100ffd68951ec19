#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the sbatch test: Debian's slurmctld,
# slurmd and munge, configured in a private state directory.
#   local_slurm.sh start DIR   install what is missing (needs root and apt), start the daemons
#   local_slurm.sh stop DIR    stop the daemons started from DIR
set -eu
cmd=${1:?usage: local_slurm.sh start|stop DIR}
dir=${2:?usage: local_slurm.sh start|stop DIR}
host=$(hostname -s)

# end_daemons PIDFILE...: the daemons whose pids these files name (when the process is
# still the SLURM daemon that wrote it) end, within 10 s or by SIGKILL. Only this test's
# own daemons: a machine's own SLURM is never touched.
end_daemons() {
  local file pid pids=()
  for file in "$@"; do
    [ -f "$file" ] || continue
    pid=$(cat "$file" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || continue
    case $(cat "/proc/$pid/comm" 2>/dev/null || true) in slurmctld | slurmd) pids+=("$pid") ;; esac
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do
      # A zombie has ended: only its parent's wait is missing.
      if [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then alive=1; fi
    done
    if [ "$alive" -eq 0 ]; then return 0; fi
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    # Exit 77 (skipped) when the packages cannot be had, e.g. without a network.
    apt-get -o Acquire::Retries=3 update -qq >/dev/null || exit 77
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null || exit 77
  fi
  # A machine with a SLURM of its own keeps its configuration: this test writes one only
  # where there is none, or where it wrote the one there.
  if [ -f /etc/slurm/slurm.conf ] && ! grep -q '^ClusterName=dpunet-test$' /etc/slurm/slurm.conf; then
    echo "skipped: /etc/slurm/slurm.conf belongs to this machine's own SLURM" >&2
    exit 77
  fi
  mkdir -p "$dir"/{state,spool,log} /run/munge /etc/munge /etc/slurm
  [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown -R munge:munge /etc/munge /run/munge
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || munged --force
  # Daemons of an earlier run of this test that was killed (its cleanup never ran) hold
  # the ports: the pid files its configuration names say which they are.
  if [ -f /etc/slurm/slurm.conf ]; then
    end_daemons $(sed -n 's/^Slurm\(ctld\|d\)PidFile=//p' /etc/slurm/slurm.conf)
  fi
  # The node's CPUs as the machine has them: nproc honours OMP_NUM_THREADS, and a test run
  # with it set to 1 made a one-CPU node on which the 2-task jobs never started.
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=dpunet-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobRequeue=1
NodeName=$host CPUs=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld
  slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then return 0; fi
    sleep 1
  done
  echo "slurm did not come up; logs in $dir/log" >&2
  return 1
}

# Gone before this returns: a next start would otherwise find the ports taken.
stop() {
  end_daemons "$dir/slurmd.pid" "$dir/slurmctld.pid"
}

"$cmd"
