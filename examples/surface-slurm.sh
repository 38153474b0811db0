#!/usr/bin/env bash
# A loss surface on many GPUs with a SLURM job array: one shard per array task, then one merge.
#   sbatch examples/surface-slurm.sh runs/train-small-.../model.safetensors
#   (after all tasks:) npx loss-atlas merge runs/surface-shards/shard-* --out runs/surface-merged
#SBATCH --job-name=loss-atlas-surface
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
set -euo pipefail
model="${1:?usage: sbatch $0 MODEL.safetensors}"
n=$(( SLURM_ARRAY_TASK_MAX + 1 ))
i=$SLURM_ARRAY_TASK_ID
npx loss-atlas surface --model-file "$model" --x -1:1:51 --y -1:1:51 --images 1000 \
  --shard "$i/$n" --out "runs/surface-shards/shard-$i"
