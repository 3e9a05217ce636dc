#!/usr/bin/env bash
# Start a real single-node SLURM (munged, slurmctld, slurmd) by hand, as root, for
# tests/test_slurm.py. Usage: tests/slurm/start.sh STATE_DIR
# Writes STATE_DIR/slurm.conf and prints the SLURM_CONF path on success. The daemons
# keep their pid files under STATE_DIR; tests/slurm/stop.sh STATE_DIR shuts them down.
set -euo pipefail
state=$(cd "$1" && pwd)
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$state"/{spool/ctld,spool/d,log} /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge: /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge: /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
cat > "$state/slurm.conf" <<CONF
ClusterName=hpcsystest
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$state/slurm.conf"
if ! runuser -u munge -- /usr/bin/munge -n >/dev/null 2>&1 </dev/null; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  echo "munged" > "$state/started-munged"
fi
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  if [ "$(sinfo -h -o %T 2>/dev/null | head -1)" = "idle" ]; then
    echo "$SLURM_CONF"
    exit 0
  fi
  sleep 0.5
done
echo "SLURM did not become idle; logs in $state/log" >&2
exit 1
