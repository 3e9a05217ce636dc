#!/usr/bin/env bash
# Submit a compute job and a reduce job that starts when it has succeeded.
#
#   jobs/submit.sh cpu|gpu|array CONFIG [sbatch options ...] [-- hpcsys run options ...]
#
# e.g. jobs/submit.sh cpu configs/paper.yaml -N 4 -p compute -t 12:00:00
#      jobs/submit.sh array configs/paper.yaml --array=0-19%1 -p preempt
# The run directory is read from the config (hpcsys check). For "array" the reduce
# job waits for every element to end (afterany: elements stopped by their time
# limit count as ended) and itself checks that all tasks are complete.
set -euo pipefail
kind=${1:?usage: jobs/submit.sh cpu|gpu|array CONFIG [sbatch options] [-- hpcsys options]}
config=${2:?usage: jobs/submit.sh cpu|gpu|array CONFIG [sbatch options] [-- hpcsys options]}
shift 2
sbatch_opts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sbatch_opts+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
here=$(dirname "$(readlink -f "$0")")
run_dir=$(python -m hpcsys check "$config" "$@" | sed -n 's/^output: \([^ ]*\).*/\1/p')
case "$kind" in
  cpu|gpu) dep=afterok
           jid=$(sbatch --parsable "${sbatch_opts[@]}" "$here/$kind.sbatch" "$config" --no-reduce "$@") ;;
  array)   dep=afterany
           jid=$(sbatch --parsable "${sbatch_opts[@]}" "$here/array.sbatch" "$config" "$@") ;;
  *) echo "jobs/submit.sh: kind must be cpu, gpu or array, got '$kind'" >&2; exit 2 ;;
esac
jid=${jid%%;*}
rid=$(sbatch --parsable --dependency="$dep:$jid" "$here/reduce.sbatch" "$run_dir")
echo "compute job $jid, reduce job ${rid%%;*} ($dep) -> $run_dir/results.h5"
