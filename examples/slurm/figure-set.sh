#!/usr/bin/env bash
# A figure set or sweep on SLURM in one go: the job array of N tasks, the same array again once it is done (for the
# steps that need other tasks' results), then the gathering (summary and panels; no GPU), each after the one before.
#
#   bash examples/slurm/figure-set.sh N COMMAND OUT [flags] [-- sbatch options of the array]
#   bash examples/slurm/figure-set.sh 4 fort-figures runs/fort-full --full -- --gres=gpu:1 --time=12:00:00
#   bash examples/slurm/figure-set.sh 3 tunnels runs/sweep --sweep -- --gres=gpu:1
#
# Prints the three job ids; the gathering writes its log to OUT/gather-<job id>.out.
# LOSS_ATLAS_ROOT: the loss-atlas checkout (default: this script's checkout).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 N COMMAND OUT [flags] [-- sbatch options]" >&2; exit 2; }
n=$1
cmd=$2
out=$3
shift 3
case $n in '' | *[!0-9]* | 0) echo "figure-set: N must be a positive integer, got \"$n\"" >&2; exit 2 ;; esac
flags=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
[ $# -gt 0 ] && shift
opts=("$@")
root=${LOSS_ATLAS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export LOSS_ATLAS_ROOT=$root
array="$root/examples/slurm/figure-set.sbatch"
first=$(sbatch --parsable "${opts[@]}" --array=0-$((n - 1)) "$array" "$cmd" "$out" "${flags[@]}")
second=$(sbatch --parsable "${opts[@]}" --dependency=afterok:"$first" --array=0-$((n - 1)) "$array" "$cmd" "$out" \
  "${flags[@]}")
line="node $(printf '%q' "$root/bin/loss-atlas.js") $(printf '%q' "$cmd")"
for f in "${flags[@]}"; do line+=" $(printf '%q' "$f")"; done
line+=" --gather --out $(printf '%q' "$out")"
gather=$(sbatch --parsable --dependency=afterok:"$second" --job-name=la-gather --output="$out/gather-%j.out" \
  --wrap="$line")
echo "submitted: tasks $first, second run $second, gathering $gather"
