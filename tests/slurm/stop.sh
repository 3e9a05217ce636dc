#!/usr/bin/env bash
# Stop the SLURM started by tests/slurm/start.sh STATE_DIR (and munged if it started it).
set -uo pipefail
state=$(cd "$1" && pwd)
export SLURM_CONF="$state/slurm.conf"
scontrol shutdown >/dev/null 2>&1
for f in slurmd slurmctld; do
  if [ -s "$state/$f.pid" ]; then
    pid=$(cat "$state/$f.pid")
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill "$pid" 2>/dev/null
  fi
done
if [ -e "$state/started-munged" ] && [ -s /run/munge/munged.pid ]; then
  kill "$(cat /run/munge/munged.pid)" 2>/dev/null
fi
exit 0
