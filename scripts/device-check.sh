#!/usr/bin/env bash
# One-shot check on a GPU machine lent through the `device` tool (15 minutes of device time per session, all calls
# together, 10 minutes per call). Prepare here first:
#   npm ci && bash ../shared/device/prepare.sh --data <a Fashion-MNIST folder, or a slice of it>
# then call the tool with
#   run(command: "bash .device/run.sh bash scripts/device-check.sh", carry: [".device"], timeout_s: 600)
# Stages run in order of importance, each under `timeout` with what is left of DEADLINE_S (default 480 s: the bundle's
# unpacking and the tool's transfers share the call's 600 s), each writing its results as it goes; after every stage
# the results so far are packed into $OUT/device-check.tar.gz (the tool brings back at most 8 files, 16 MiB each), the
# Chrome traces into $OUT/traces.tar.gz, beside a copy of stages.txt. The exit status is 1 when a stage failed.
# STAGES picks some (comma-separated), default all but pattern:
#   gradcheck  every op against the CPU reference and finite differences, on the GPU's kernels
#   torch      loss-atlas writes a plane, batch and its per-cell losses; PyTorch checks its losses against them,
#              then times the reference loop and torch.func.vmap (icon net, BN off/on, cells 1/16/100/400, batch 64/512)
#   bench      npm run bench on the icon net and the surface workload, tfjs peers within --peer-budget-s, merged
#              with the PyTorch rows (and the loss check)
#   kernels    the conv kernel benchmark (tiled family, the GPU default)
#   cifar      the CIFAR net rows (loss-atlas, PyTorch, tfjs-webgpu)
#   profile    per-kernel profile and Chrome trace of the reference MPO step (needs Fashion-MNIST under $DEVICE_DATA_DIR)
#   pattern    the full exp:fashion-pattern (11,800 steps + grid evaluation): a call of its own (STAGES=pattern);
#              at the deadline it gets SIGINT and checkpoints; its run directory comes back in the tar. To continue
#              it in a later call, unpack it into an ignored folder of the repo, carry that folder too and set
#              PATTERN_RESUME=<that folder>: the run goes on from its checkpoint (mpo --resume)
set -uo pipefail
cd "$(dirname "$0")/.."
final="${OUT:-/tmp/device-check}"
out=$(mktemp -d /tmp/device-check-work.XXXX)
mkdir -p "$final"
start=$(date +%s)
deadline=${DEADLINE_S:-480}
stages=",${STAGES:-gradcheck,torch,bench,kernels,cifar,profile},"
for s in ${stages//,/ }; do
  case "$s" in gradcheck|torch|bench|kernels|cifar|profile|pattern) ;; *) echo "STAGES: unknown stage '$s' (gradcheck, torch, bench, kernels, cifar, profile, pattern)" >&2; exit 2 ;; esac
done
data="${DEVICE_DATA_DIR:-}/fashion-mnist"
failed=0

# packs what there is so far (called after every stage): traces apart, so that one large trace cannot cost the rest
pack() {
  tar -czf "$final/device-check.tar.gz.tmp" -C "$out" --exclude='./trace*.json' . && mv "$final/device-check.tar.gz.tmp" "$final/device-check.tar.gz"
  if ls "$out"/trace*.json >/dev/null 2>&1; then (cd "$out" && tar -czf "$final/traces.tar.gz" trace*.json); fi
  cp "$out/stages.txt" "$final/stages.txt" 2>/dev/null || true
}

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
  [ "$rc" = 0 ] || failed=1
  pack
}

# torch_check NET WORKLOADS JSON: loss-atlas writes the loss check of NET, PyTorch compares and times WORKLOADS
torch_check() {
  npx tsx bench/mpo.ts --workloads "$1" --check-dir "$out/check" --check-only &&
    python3 bench/torch_reference.py --check-dir "$out/check" --workloads "$2" --out "$3"
}
export -f torch_check; export out

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.txt" 2>&1 || true
stage gradcheck npx tsx src/cli.ts gradcheck --verbose
torch_args=""
if [[ $stages == *",torch,"* ]]; then
  stage torch bash -c 'torch_check mpo-fashion mpo-fashion,surface-icons "$out/torch.json"'
  [ -f "$out/torch.json" ] && torch_args="--torch $out/torch.json"
fi
# peers at most 30 s per configuration: 16 icon-net configurations x 2 peers must leave time for the later stages
stage bench npx tsx bench/mpo.ts --workloads mpo-fashion,surface-icons --peer-budget-s 30 --json "$out/mpo-bench.json" $torch_args
stage kernels npx tsx bench/kernels.ts --json "$out/kernels.json"
stage cifar bash -c 'torch_check mpo-cifar mpo-cifar "$out/torch-cifar.json";
  npx tsx bench/mpo.ts --workloads mpo-cifar --peers tfjs-webgpu --peer-budget-s 30 --json "$out/mpo-bench-cifar.json" $([ -f "$out/torch-cifar.json" ] && echo --torch "$out/torch-cifar.json")'
if [ -f "$data/train-images-idx3-ubyte.gz" ] || [ -f "$data/train-images-idx3-ubyte" ]; then
  stage profile bash -c "npx tsx src/cli.ts profile --preset fashion-pattern --data '$data' --profile-steps ${PROFILE_STEPS:-6} --trace '$out/trace.json' &&
    npx tsx src/cli.ts profile --preset fashion-pattern --bn --data '$data' --profile-steps ${PROFILE_STEPS:-6} --trace '$out/trace-bn.json'"
  if [ -n "${PATTERN_RESUME:-}" ]; then
    cp -r "$PATTERN_RESUME" "$out/pattern" && stage pattern npx tsx src/cli.ts mpo --resume "$out/pattern"
  else
    stage pattern npx tsx src/cli.ts mpo --preset fashion-pattern --data "$data" --out "$out/pattern"
  fi
else
  [[ $stages == *",profile,"* || $stages == *",pattern,"* ]] && echo "no Fashion-MNIST under \$DEVICE_DATA_DIR: profile and pattern skipped" | tee -a "$out/stages.txt"
fi
echo "done in $(($(date +%s) - start)) s$([ $failed = 0 ] || echo '; a stage failed (see stages.txt)')" | tee -a "$out/stages.txt"
pack
echo "results: $final/device-check.tar.gz ($(du -h "$final/device-check.tar.gz" | cut -f1))"
exit $failed
