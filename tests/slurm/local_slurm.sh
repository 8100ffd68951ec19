#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for the sbatch test: Debian's slurmctld,
# slurmd and munge, configured in a private state directory.
#   local_slurm.sh start DIR   install what is missing (needs root and apt), start the daemons
#   local_slurm.sh stop DIR    stop the daemons started from DIR
set -eu
cmd=${1:?usage: local_slurm.sh start|stop DIR}
dir=${2:?usage: local_slurm.sh start|stop DIR}
host=$(hostname -s)

# wait_gone NAME...: up to 10 s for the processes of these names to exit, then SIGKILL.
wait_gone() {
  local name running
  for _ in $(seq 1 50); do
    running=0
    for name in "$@"; do
      if pgrep -x "$name" >/dev/null; then running=1; fi
    done
    if [ "$running" -eq 0 ]; then return 0; fi
    sleep 0.2
  done
  for name in "$@"; do pkill -9 -x "$name" 2>/dev/null || true; done
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    # Exit 77 (skipped) when the packages cannot be had, e.g. without a network.
    apt-get -o Acquire::Retries=3 update -qq >/dev/null || exit 77
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null || exit 77
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
  # the ports and an old state folder: the configuration is this test's, so they are too.
  if [ -f /etc/slurm/slurm.conf ]; then
    pkill -x slurmctld 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    wait_gone slurmctld slurmd
  fi
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
NodeName=$host CPUs=$(nproc) State=UNKNOWN
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

stop() {
  for pid_file in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  # Gone before this returns: a next start would otherwise find the ports taken.
  wait_gone slurmctld slurmd
}

"$cmd"
