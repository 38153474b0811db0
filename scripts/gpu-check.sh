#!/usr/bin/env bash
# Checks and benchmarks loss-atlas on the GPU of the machine it runs on: every op's kernels against the CPU
# reference, PyTorch's losses against ours and its timings (when PyTorch is importable), the MPO and surface
# benchmarks at GPU sizes with the tfjs-webgpu peer, the conv kernel benchmark, the CIFAR net's rows, a per-kernel
# profile with Chrome traces, and optionally the full fashion-pattern run. Run after `npm ci` (and `npm run setup`).
#
# usage: bash scripts/gpu-check.sh [--stages LIST] [--out DIR] [--data DIR] [--resume DIR] [options]
#   --stages LIST      comma-separated stages (env STAGES); default all but pattern; "all" is all seven:
#     gradcheck  every op against the CPU reference and finite differences, on this GPU's kernels
#     torch      loss-atlas writes a plane, batch and its per-cell losses (check/); PyTorch checks its losses
#                against them, then times its reference loop and torch.func.vmap (icon net, BN off/on, cells
#                1/16/100/400, batch 64/512) into torch.json; skipped when PyTorch cannot be imported
#     bench      npm run bench on the icon net and the surface workload (GPU sizes, tfjs-webgpu and tfjs-wasm
#                peers), merged with torch.json when the torch stage wrote it: mpo-bench.json (bench also keeps
#                its dated copy under bench/results/, as npm run bench does)
#     kernels    the conv kernel benchmark (npm run bench:kernels): kernels.json
#     cifar      the CIFAR net: PyTorch's loss check and timings (when importable), then loss-atlas and
#                tfjs-webgpu: torch-cifar.json, mpo-bench-cifar.json
#     profile    per-kernel profile and Chrome traces of the fashion-pattern MPO step, BN off and on
#                (trace.json, trace-bn.json); needs Fashion-MNIST (--data)
#     pattern    the full exp:fashion-pattern run (11,800 steps and the grid evaluation) into pattern/; Ctrl-C
#                saves a checkpoint, and running the stage again with the same --out continues it
#   --out DIR          the output folder (env GPU_CHECK_OUT; default runs/gpu-check-<date-time>/ in the repo):
#                      stages.txt (what ran, return codes, summary), <stage>.txt (each stage's output), the JSON
#                      files above, nvidia-smi.txt
#   --data DIR         Fashion-MNIST (IDX files, .gz or not) for profile and pattern
#                      (env LOSS_ATLAS_FASHION_MNIST; default /usr/share/datasets/fashion-mnist)
#   --resume DIR       pattern: continue the run folder DIR (copied to <out>/pattern first unless it is that
#                      folder) from its checkpoint (env PATTERN_RESUME)
#   --python PY        the Python that has PyTorch (env PYTHON; default python3)
#   --peer-budget-s S  skip a peer's configuration predicted to take longer than S seconds (env PEER_BUDGET_S;
#                      default: bench's own, 60 s on a GPU)
#   --bench-args ARGS  extra arguments for bench/mpo.ts in the bench and cifar stages, taking precedence over
#                      the stage's own (env BENCH_ARGS), e.g. "--steps 20" or "--cells 1,16 --batch 64"
#   --profile-steps N  MPO steps the profile times (env PROFILE_STEPS; default 6)
#   --torch-args ARGS  extra arguments for bench/torch_reference.py in the torch stage (env TORCH_ARGS), e.g.
#                      "--cells 100 --batch 512 --steps 3" to time only the fashion-pattern step
#   --pattern-args ARGS  extra mpo flags for the pattern stage (env PATTERN_ARGS), e.g. "--steps 3000" for the
#                      reference's step-3,000 comparison point instead of the full 11,800 steps
#   --deadline S       stop the whole run S seconds after it starts (env DEADLINE_S; default: no deadline): each
#                      stage gets SIGINT when the time is up (mpo saves its checkpoint), SIGKILL 15 s later, and
#                      stages with under 20 s left are skipped
#   --list             print the stage names and exit
# Stages run in the order above, whatever the order in LIST. At the end a summary says which stages passed,
# failed or were skipped and why. Exit status: 0 when none failed (skipped stages do not fail), 1 when one failed
# or no WebGPU adapter was found, 2 on a usage error, 130 when interrupted (Ctrl-C).
#
# The file can also be sourced (scripts/device-check.sh does): it then defines gpu_check_main, which takes the
# same arguments, and calls gpu_check_after_stage (a no-op unless redefined) after every stage.

GPU_CHECK_ALL=(gradcheck torch bench kernels cifar profile pattern)
GPU_CHECK_DEFAULT=gradcheck,torch,bench,kernels,cifar,profile

gpu_check_after_stage() { :; }

gpu_check_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$GPU_CHECK_SELF"; }

# --- the stages: each runs in the repo root in a bash of its own, writes into $GC_OUT, returns non-zero on failure

gc_has_torch() { "$GC_PYTHON" -c 'import torch' >/dev/null 2>&1; }

gc_has_fmnist() { [ -f "$GC_DATA/train-images-idx3-ubyte.gz" ] || [ -f "$GC_DATA/train-images-idx3-ubyte" ]; }

# bench/mpo.ts with the user's --bench-args first (bench takes a flag's first occurrence)
gc_bench() {
  local extra=()
  [ -n "$GC_BENCH_ARGS" ] && read -r -a extra <<< "$GC_BENCH_ARGS"
  npx tsx bench/mpo.ts "${extra[@]}" "$@"
}

# gc_torch_check NET WORKLOADS JSON: loss-atlas writes the loss check of NET, PyTorch compares and times WORKLOADS
gc_torch_check() {
  local extra=()
  [ -n "$GC_TORCH_ARGS" ] && read -r -a extra <<< "$GC_TORCH_ARGS"
  npx tsx bench/mpo.ts --workloads "$1" --check-dir "$GC_OUT/check" --check-only &&
    "$GC_PYTHON" bench/torch_reference.py --check-dir "$GC_OUT/check" --workloads "$2" --out "$3" "${extra[@]}"
}

gc_stage_gradcheck() { npx tsx src/cli.ts gradcheck --verbose; }

gc_stage_torch() { gc_torch_check mpo-fashion mpo-fashion,surface-icons "$GC_OUT/torch.json"; }

gc_stage_bench() {
  local args=(--workloads mpo-fashion,surface-icons --json "$GC_OUT/mpo-bench.json")
  [ -n "$GC_PEER_BUDGET" ] && args+=(--peer-budget-s "$GC_PEER_BUDGET")
  if [ -f "$GC_OUT/torch.json" ]; then args+=(--torch "$GC_OUT/torch.json"); else echo "bench: no torch.json in $GC_OUT (the torch stage writes it): rows without PyTorch's"; fi
  gc_bench "${args[@]}"
}

gc_stage_kernels() { npx tsx bench/kernels.ts --json "$GC_OUT/kernels.json"; }

gc_stage_cifar() {
  local rc=0 args=(--workloads mpo-cifar --peers tfjs-webgpu --json "$GC_OUT/mpo-bench-cifar.json")
  if gc_has_torch; then
    gc_torch_check mpo-cifar mpo-cifar "$GC_OUT/torch-cifar.json" || { rc=$?; echo "cifar: the PyTorch loss check or timing failed (rc $rc)"; }
  else
    echo "cifar: no PyTorch ($GC_PYTHON cannot import torch): rows without PyTorch's"
  fi
  [ -n "$GC_PEER_BUDGET" ] && args+=(--peer-budget-s "$GC_PEER_BUDGET")
  [ -f "$GC_OUT/torch-cifar.json" ] && args+=(--torch "$GC_OUT/torch-cifar.json")
  gc_bench "${args[@]}" || rc=$?
  return $rc
}

gc_stage_profile() {
  npx tsx src/cli.ts profile --preset fashion-pattern --data "$GC_DATA" --profile-steps "$GC_PROFILE_STEPS" --trace "$GC_OUT/trace.json" &&
    npx tsx src/cli.ts profile --preset fashion-pattern --bn --data "$GC_DATA" --profile-steps "$GC_PROFILE_STEPS" --trace "$GC_OUT/trace-bn.json"
}

gc_stage_pattern() {
  local run="$GC_OUT/pattern" extra=()
  [ -n "$GC_PATTERN_ARGS" ] && read -r -a extra <<< "$GC_PATTERN_ARGS"
  if [ -n "$GC_RESUME" ]; then
    if [ "$(realpath -m "$GC_RESUME")" != "$(realpath -m "$run")" ]; then
      [ ! -e "$run" ] || { echo "pattern: $run exists already; --resume $GC_RESUME would be copied there (resume that folder instead, or choose another --out)"; return 1; }
      cp -r "$GC_RESUME" "$run" || return 1
    fi
    echo "pattern: continuing the run in $run"
    npx tsx src/cli.ts mpo --resume "$run"
  elif [ -f "$run/config.json" ]; then
    echo "pattern: $run holds a run: continuing it from its checkpoint"
    npx tsx src/cli.ts mpo --resume "$run"
  else
    npx tsx src/cli.ts mpo --preset fashion-pattern --data "$GC_DATA" --out "$run" "${extra[@]}"
  fi
}

# why a stage cannot run here (prints nothing when it can)
gc_skip_reason() {
  case "$1" in
    torch) gc_has_torch || echo "no PyTorch ($GC_PYTHON cannot import torch)" ;;
    profile|pattern) gc_has_fmnist || echo "no Fashion-MNIST in $GC_DATA (train-images-idx3-ubyte[.gz]; --data DIR)" ;;
  esac
}

# --- running them

gc_log() { echo "$*" | tee -a "$GC_OUT/stages.txt"; }

# gc_run_stage NAME: runs gc_stage_NAME (output to NAME.txt and stdout) unless skipped; records its outcome
gc_run_stage() {
  local name=$1 reason left="" t0 rc status
  reason=$(gc_skip_reason "$name")
  if [ -z "$reason" ] && [ -n "$GC_DEADLINE" ]; then
    left=$((GC_DEADLINE - ($(date +%s) - GC_START)))
    [ "$left" -ge 20 ] || reason="${left} s left of the deadline (${GC_DEADLINE} s)"
  fi
  if [ -n "$reason" ]; then
    gc_log "== $name: skipped: $reason"
    GC_SUMMARY+=("$name|skipped|$reason")
    gpu_check_after_stage
    return 0
  fi
  gc_log "== $name ($(($(date +%s) - GC_START)) s in${left:+, $left s left})"
  t0=$(date +%s)
  # tee ignores SIGINT, so that a stage stopped by Ctrl-C (mpo checkpoints) can still write its last lines
  if [ -n "$left" ]; then
    timeout --signal=INT --kill-after=15 "$left" bash -c "gc_stage_$name" 2>&1 | (trap '' INT; exec tee "$GC_OUT/$name.txt")
  else
    bash -c "gc_stage_$name" 2>&1 | (trap '' INT; exec tee "$GC_OUT/$name.txt")
  fi
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  gc_log "== $name: rc $rc after $dt s"
  if [ "$rc" = 0 ]; then status="passed|$dt s"
  elif [ "$GC_INTERRUPTED" = 1 ]; then status="interrupted|rc $rc after $dt s (see $name.txt)"
  elif [ -n "$left" ] && [ "$rc" = 124 ]; then status="failed|stopped by SIGINT at the deadline after $dt s (see $name.txt)"; GC_FAILED=1
  elif [ -n "$left" ] && [ "$rc" = 137 ] && [ "$dt" -ge "$left" ]; then status="failed|killed 15 s after the deadline's SIGINT (see $name.txt)"; GC_FAILED=1
  else status="failed|rc $rc after $dt s (see $name.txt)"; GC_FAILED=1
  fi
  GC_SUMMARY+=("$name|$status")
  gpu_check_after_stage
}

gpu_check_main() {
  local stages="${STAGES:-}" out="${GPU_CHECK_OUT:-}" here
  GC_DATA="${LOSS_ATLAS_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
  GC_RESUME="${PATTERN_RESUME:-}"; GC_PYTHON="${PYTHON:-python3}"; GC_PEER_BUDGET="${PEER_BUDGET_S:-}"
  GC_BENCH_ARGS="${BENCH_ARGS:-}"; GC_PROFILE_STEPS="${PROFILE_STEPS:-6}"; GC_DEADLINE="${DEADLINE_S:-}"
  GC_TORCH_ARGS="${TORCH_ARGS:-}"; GC_PATTERN_ARGS="${PATTERN_ARGS:-}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --stages|--out|--data|--resume|--python|--peer-budget-s|--bench-args|--profile-steps|--deadline|--torch-args|--pattern-args)
        [ $# -ge 2 ] || { echo "gpu-check: $1 needs a value (--help)" >&2; return 2; }
        case "$1" in
          --stages) stages=$2 ;; --out) out=$2 ;; --data) GC_DATA=$2 ;; --resume) GC_RESUME=$2 ;;
          --python) GC_PYTHON=$2 ;; --peer-budget-s) GC_PEER_BUDGET=$2 ;; --bench-args) GC_BENCH_ARGS=$2 ;;
          --profile-steps) GC_PROFILE_STEPS=$2 ;; --deadline) GC_DEADLINE=$2 ;;
          --torch-args) GC_TORCH_ARGS=$2 ;; --pattern-args) GC_PATTERN_ARGS=$2 ;;
        esac
        shift ;;
      --list) printf '%s\n' "${GPU_CHECK_ALL[@]}"; return 0 ;;
      -h|--help) gpu_check_usage; return 0 ;;
      *) echo "gpu-check: unknown argument '$1' (--help)" >&2; return 2 ;;
    esac
    shift
  done
  # the stages: known names only, run in their fixed order
  [ -n "${stages//[, ]/}" ] || stages=$GPU_CHECK_DEFAULT
  [ "$stages" = all ] && stages=$(IFS=,; echo "${GPU_CHECK_ALL[*]}")
  local s sel=() want=",${stages// /,},"
  for s in ${stages//,/ }; do
    [[ " ${GPU_CHECK_ALL[*]} " == *" $s "* ]] || { echo "gpu-check: unknown stage '$s' (stages: ${GPU_CHECK_ALL[*]}, or all)" >&2; return 2; }
  done
  for s in "${GPU_CHECK_ALL[@]}"; do [[ $want == *",$s,"* ]] && sel+=("$s"); done
  [[ -z "$GC_DEADLINE" || "$GC_DEADLINE" =~ ^[0-9]+$ ]] || { echo "gpu-check: --deadline: whole seconds expected, got '$GC_DEADLINE'" >&2; return 2; }
  [[ "$GC_PROFILE_STEPS" =~ ^[1-9][0-9]*$ ]] || { echo "gpu-check: --profile-steps: a positive integer expected, got '$GC_PROFILE_STEPS'" >&2; return 2; }
  # paths given relative to where the script was called from; then to the repo root
  here=$(pwd)
  cd "$(dirname "$GPU_CHECK_SELF")/.." || return 2
  local root; root=$(pwd)
  [ -n "$out" ] || out="$root/runs/gpu-check-$(date +%Y%m%d-%H%M%S)"
  GC_OUT=$(cd "$here" && realpath -m "$out"); GC_DATA=$(cd "$here" && realpath -m "$GC_DATA")
  [ -z "$GC_RESUME" ] || GC_RESUME=$(cd "$here" && realpath -m "$GC_RESUME")
  mkdir -p "$GC_OUT" || return 2
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
  export GC_OUT GC_DATA GC_RESUME GC_PYTHON GC_PEER_BUDGET GC_BENCH_ARGS GC_PROFILE_STEPS GC_TORCH_ARGS GC_PATTERN_ARGS
  export -f gc_has_torch gc_bench gc_torch_check gc_stage_gradcheck gc_stage_torch gc_stage_bench gc_stage_kernels \
    gc_stage_cifar gc_stage_profile gc_stage_pattern

  GC_START=$(date +%s); GC_FAILED=0; GC_INTERRUPTED=0; GC_SUMMARY=()
  trap 'GC_INTERRUPTED=1' INT
  local adapter
  adapter=$(node scripts/probe-adapter.mjs 2>/dev/null)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$GC_OUT/nvidia-smi.txt" 2>&1 || true
  gc_log "gpu-check $(date '+%F %T'): stages ${sel[*]} into $GC_OUT${GC_DEADLINE:+, deadline $GC_DEADLINE s}"
  if [ -z "$adapter" ]; then
    gc_log "no WebGPU adapter found (node scripts/probe-adapter.mjs): npm run setup installs lavapipe where there is no GPU; on a GPU, check its Vulkan driver"
    gpu_check_after_stage
    trap - INT
    return 1
  fi
  gc_log "$adapter"
  case "$adapter" in *llvmpipe*|*lavapipe*|*SwiftShader*|*swiftshader*)
    gc_log "note: this is a CPU adapter: the benchmarks run at GPU sizes and take very long here (--bench-args to shrink them)" ;;
  esac

  for s in "${sel[@]}"; do
    if [ "$GC_INTERRUPTED" = 1 ]; then GC_SUMMARY+=("$s|not run|interrupted"); continue; fi
    gc_run_stage "$s"
  done
  trap - INT

  local line name st detail
  gc_log "done in $(($(date +%s) - GC_START)) s$([ $GC_FAILED = 0 ] || echo '; a stage failed (see stages.txt)')"
  gc_log "summary:"
  for line in "${GC_SUMMARY[@]}"; do
    IFS='|' read -r name st detail <<< "$line"
    gc_log "$(printf '  %-10s %-12s %s' "$name" "$st" "$detail")"
  done
  gpu_check_after_stage
  if [ "$GC_INTERRUPTED" = 1 ]; then return 130; fi
  return $GC_FAILED
}

GPU_CHECK_SELF=$(realpath "${BASH_SOURCE[0]}")
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
  gpu_check_main "$@"
  exit $?
fi
