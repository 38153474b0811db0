#!/usr/bin/env bash
# One-shot check on a GPU machine lent through the `device` tool (15 minutes of device time per session, all calls
# together, 10 minutes per call). Prepare here first:
#   npm ci && bash ../shared/device/prepare.sh --data <a Fashion-MNIST folder, or a slice of it>
# then call the tool with
#   run(command: "bash .device/run.sh bash scripts/device-check.sh", carry: [".device"], timeout_s: 600)
# Stages run in order of importance, each under `timeout` with what is left of DEADLINE_S (default 540 s), each
# writing its results as it goes; at the end everything is packed into $OUT/device-check.tar.gz (the tool brings back
# at most 8 files from $OUT), beside a copy of stages.txt. STAGES picks some (comma-separated), default all but pattern:
#   gradcheck  every op against the CPU reference and finite differences, on the GPU's kernels
#   torch      loss-atlas writes a plane, batch and its per-cell losses; PyTorch checks its losses against them,
#              then times the reference loop and torch.func.vmap (icon net, BN off/on, cells 1/16/100/400, batch 64/512)
#   bench      npm run bench on the icon net and the surface workload, tfjs peers within --peer-budget-s, merged
#              with the PyTorch rows (and the loss check)
#   kernels    the conv kernel benchmark (tiled family, the GPU default)
#   cifar      the CIFAR net rows (loss-atlas, PyTorch, tfjs-webgpu)
#   profile    per-kernel profile and Chrome trace of the reference MPO step (needs Fashion-MNIST under $DEVICE_DATA_DIR)
#   pattern    the full exp:fashion-pattern (11,800 steps + grid evaluation): a call of its own
#              (STAGES=pattern DEADLINE_S=570); its run directory comes back in the tar (checkpoint included), so a
#              run cut short can be carried to the next call and continued with --resume
set -uo pipefail
cd "$(dirname "$0")/.."
final="${OUT:-/tmp/device-check}"
out=$(mktemp -d /tmp/device-check-work.XXXX)
mkdir -p "$final"
start=$(date +%s)
deadline=${DEADLINE_S:-540}
stages=",${STAGES:-gradcheck,torch,bench,kernels,cifar,profile},"
data="${DEVICE_DATA_DIR:-}/fashion-mnist"

# stage NAME CMD...: runs CMD (output to $out/NAME.txt and stdout) if NAME is selected and time is left; SIGINT at
# the deadline (mpo saves a checkpoint on it), SIGKILL 15 s later
stage() {
  local name=$1; shift
  [[ $stages == *",$name,"* ]] || return 0
  local left=$((deadline - ($(date +%s) - start)))
  if [ "$left" -lt 20 ]; then echo "== $name: skipped, ${left} s left of DEADLINE_S=$deadline" | tee -a "$out/stages.txt"; return 0; fi
  echo "== $name ($(($(date +%s) - start)) s in, ${left} s left)" | tee -a "$out/stages.txt"
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=15 "$left" "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: rc $rc after $(($(date +%s) - t0)) s" | tee -a "$out/stages.txt"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.txt" 2>&1 || true
stage gradcheck npx tsx src/cli.ts gradcheck --verbose
torch_args=""
if [[ $stages == *",torch,"* ]]; then
  stage torch bash -c "npx tsx bench/mpo.ts --workloads mpo-fashion --check-dir '$out/check' --check-only &&
    python3 bench/torch_reference.py --check-dir '$out/check' --workloads mpo-fashion,surface-icons --out '$out/torch.json'"
  [ -f "$out/torch.json" ] && torch_args="--torch $out/torch.json"
fi
stage bench npx tsx bench/mpo.ts --workloads mpo-fashion,surface-icons --json "$out/mpo-bench.json" $torch_args
stage kernels npx tsx bench/kernels.ts --json "$out/kernels.json"
stage cifar bash -c "npx tsx bench/mpo.ts --workloads mpo-cifar --check-dir '$out/check' --check-only &&
  python3 bench/torch_reference.py --check-dir '$out/check' --workloads mpo-cifar --out '$out/torch-cifar.json';
  npx tsx bench/mpo.ts --workloads mpo-cifar --peers tfjs-webgpu --json '$out/mpo-bench-cifar.json' \$([ -f '$out/torch-cifar.json' ] && echo --torch '$out/torch-cifar.json')"
if [ -f "$data/train-images-idx3-ubyte.gz" ]; then
  stage profile bash -c "npx tsx src/cli.ts profile --preset fashion-pattern --data '$data' --profile-steps ${PROFILE_STEPS:-6} --trace '$out/trace.json' &&
    npx tsx src/cli.ts profile --preset fashion-pattern --bn --data '$data' --profile-steps ${PROFILE_STEPS:-6} --trace '$out/trace-bn.json'"
  stage pattern npx tsx src/cli.ts mpo --preset fashion-pattern --data "$data" --out "$out/pattern"
else
  [[ $stages == *",profile,"* || $stages == *",pattern,"* ]] && echo "no Fashion-MNIST under \$DEVICE_DATA_DIR: profile and pattern skipped" | tee -a "$out/stages.txt"
fi
echo "done in $(($(date +%s) - start)) s" | tee -a "$out/stages.txt"
tar -czf "$final/device-check.tar.gz" -C "$out" . && cp "$out/stages.txt" "$final/stages.txt"
echo "results: $final/device-check.tar.gz ($(du -h "$final/device-check.tar.gz" | cut -f1))"
