#!/usr/bin/env bash
# The checks of scripts/gpu-check.sh, for a remote machine reached through a runner that limits each call's run
# time and the files it returns. On a machine of your own, run scripts/gpu-check.sh instead: same stages, no
# deadline, results left in a folder.
#
# Prepare here first (node, node_modules, the Vulkan loader packages and a slice of Fashion-MNIST in .device/):
#   npm ci && bash scripts/device-bundle.sh
# then have the runner execute, in the repo root on the remote machine, with .device/ carried along:
#   bash .device/run.sh bash scripts/device-check.sh
# The stages (STAGES, comma-separated; default all but pattern; see scripts/gpu-check.sh for what each does):
#   gradcheck, torch, bench, kernels, cifar, profile, pattern
# run in that order under one deadline, DEADLINE_S (default 480 s, so that unpacking the bundle and the transfers
# fit in a call): each stage gets SIGINT when the time is up (mpo saves its checkpoint), SIGKILL 15 s later, and
# stages with under 20 s left are skipped. The peers' configurations are capped at PEER_BUDGET_S (default 30 s),
# so that the later stages get their turn. After every stage the results so far are packed into
# $OUT/device-check.tar.gz (default OUT=/tmp/device-check), so that a call cut short still returns what it
# measured; the Chrome traces go apart into $OUT/traces.tar.gz (one large trace cannot cost the rest), and a copy
# of stages.txt lies beside them. The exit status is 1 when a stage failed, 2 for an unknown stage.
# Fashion-MNIST for profile and pattern: $DEVICE_DATA_DIR/fashion-mnist (set by .device/run.sh).
# The pattern stage (the full fashion-pattern run) needs a call of its own (STAGES=pattern): at the deadline it
# checkpoints, and its run folder comes back in the tar as pattern/. To continue it in a later call, unpack that
# folder into an ignored folder of the repo, carry it too and set PATTERN_RESUME=<that folder>: the run goes on
# from its checkpoint (mpo --resume).
set -uo pipefail
cd "$(dirname "$0")/.."
final="${OUT:-/tmp/device-check}"
work=$(mktemp -d /tmp/device-check-work.XXXX)
trap 'rm -rf "$work"' EXIT   # all of it is in the tar
mkdir -p "$final"

# shellcheck source=gpu-check.sh
source scripts/gpu-check.sh

# packs what there is so far: everything but the traces into device-check.tar.gz, the traces into traces.tar.gz
pack() {
  tar -czf "$final/device-check.tar.gz.tmp" -C "$work" --exclude='./trace*.json' . && mv "$final/device-check.tar.gz.tmp" "$final/device-check.tar.gz"
  if ls "$work"/trace*.json >/dev/null 2>&1; then (cd "$work" && tar -czf "$final/traces.tar.gz" trace*.json); fi
  cp "$work/stages.txt" "$final/stages.txt" 2>/dev/null || true
}
gpu_check_after_stage() { pack; }

args=(--out "$work" --deadline "${DEADLINE_S:-480}" --peer-budget-s "${PEER_BUDGET_S:-30}"
      --data "${DEVICE_DATA_DIR:-}/fashion-mnist")
[ -z "${PATTERN_RESUME:-}" ] || args+=(--resume "$PATTERN_RESUME")
gpu_check_main "${args[@]}"
rc=$?
[ "$rc" = 2 ] && exit 2
pack
echo "results: $final/device-check.tar.gz ($(du -h "$final/device-check.tar.gz" | cut -f1))"
[ "$rc" = 0 ] || exit 1
exit 0
