#!/usr/bin/env bash
# One-shot check on a GPU machine lent through the `device` tool. Prepare here first:
#   npm ci && bash ../shared/device/prepare.sh --data <a Fashion-MNIST folder, or a slice of it>
# then call the tool with
#   run(command: "bash .device/run.sh bash scripts/device-check.sh", carry: [".device"])
# It runs the op checks, the kernel benchmark and (when Fashion-MNIST came along) a profile of the reference MPO
# step, writing their output under $OUT (or /tmp/device-check).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/device-check}"
mkdir -p "$out"
npx tsx src/cli.ts gradcheck --verbose 2>&1 | tee "$out/gradcheck.txt"
npx tsx bench/kernels.ts --json "$out/kernels.json" 2>&1 | tee "$out/kernels.txt"
# the CPU-oriented lanes family on the GPU too, for comparison (the tiled family is the GPU default)
LOSS_ATLAS_CONV=lanes npx tsx bench/kernels.ts --json "$out/kernels-lanes.json" 2>&1 | tee "$out/kernels-lanes.txt"
# PyTorch reference first (quick sizes unless TORCH_FULL=1), then our benchmark merged with it (incl. the surface workload)
python3 bench/torch_reference.py ${TORCH_FULL:+} $([ -z "${TORCH_FULL:-}" ] && echo --quick) --out "$out/torch.json" 2>&1 | tee "$out/torch.txt"
npx tsx bench/mpo.ts --json "$out/mpo-bench.json" $([ -f "$out/torch.json" ] && echo --torch "$out/torch.json") 2>&1 | tee "$out/mpo-bench.txt"
data="${DEVICE_DATA_DIR:-}/fashion-mnist"
if [ -f "$data/train-images-idx3-ubyte.gz" ]; then
  npx tsx src/cli.ts profile --preset fashion-pattern --data "$data" --profile-steps "${PROFILE_STEPS:-6}" --trace "$out/trace.json" 2>&1 | tee "$out/profile.txt"
  npx tsx src/cli.ts profile --preset fashion-pattern --bn --data "$data" --profile-steps "${PROFILE_STEPS:-6}" --trace "$out/trace-bn.json" 2>&1 | tee "$out/profile-bn.txt"
else
  echo "no Fashion-MNIST under \$DEVICE_DATA_DIR: MPO profile skipped"
fi
