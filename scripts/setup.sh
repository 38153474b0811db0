#!/usr/bin/env bash
# Idempotent setup, run by `npm start` / `npm test` (npm pre-hooks) and by hand as `npm run setup`.
#  1. node_modules: `npm ci` when missing or older than package-lock.json.
#  2. A WebGPU adapter: when Dawn finds none, installs Mesa's lavapipe (Vulkan on the CPU) version 25 from
#     Debian bookworm-backports (bookworm's own 22.3 is too old for Dawn). When no apt source serves
#     bookworm-backports yet, it adds one with the mirror the machine's bookworm source uses (scripts/apt-mirror.sh
#     reads both apt formats); with no bookworm source to take it from, it says which files it read and exits 1.
#  3. Fashion-MNIST: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) when missing.
#  4. A font (fonts-dejavu-core) for the text in the pictures.
#  5. With --test (npm test's pre-hook): Debian's chromium, for the report's end-to-end test in a headless browser.
# When it cannot install (not root, no apt-get), it prints the exact commands to run and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
say() { echo "[setup] $*" >&2; }
# LOSS_ATLAS_APT_DIR (for tests): read the apt sources from this folder instead of /etc/apt; nothing is installed
# then, the commands are printed as for a user who is not root
APT_DIR="${LOSS_ATLAS_APT_DIR:-/etc/apt}"
FMNIST_DIR="${LOSS_ATLAS_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"

# 1. node modules
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "node_modules missing or stale: running npm ci"
  # onnxruntime-node (a devDependency: the tests' reference for imported ONNX graphs) ships its CPU binary in the
  # package; this skips its install step's optional download of GPU libraries
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2
fi

can_apt() { [ "$APT_DIR" = /etc/apt ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
need=()     # commands the user must run when we cannot

# 2. WebGPU adapter (lavapipe when no GPU driver is present)
if ! node scripts/probe-adapter.mjs >/dev/null 2>&1; then
  backports="$APT_DIR/sources.list.d/loss-atlas-bookworm-backports.list"
  cmds=()
  line=""   # the bookworm-backports source to add, from the mirror of the machine's bookworm source
  if ! LOSS_ATLAS_APT_DIR="$APT_DIR" bash scripts/apt-mirror.sh --has bookworm-backports; then
    line=$(LOSS_ATLAS_APT_DIR="$APT_DIR" bash scripts/apt-mirror.sh --line) ||
      { say "no WebGPU adapter found, and no mirror to install Mesa lavapipe 25 from bookworm-backports with (above)"; exit 1; }
    cmds+=("echo '$line' > $backports")
  fi
  cmds+=("apt-get update"
         "apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1")
  if can_apt; then
    say "no WebGPU adapter found: installing Mesa lavapipe 25 from bookworm-backports"
    if [ -n "$line" ]; then
      say "adding $backports: $line"
      echo "$line" > "$backports"
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2
    node scripts/probe-adapter.mjs >&2 || { say "still no WebGPU adapter after installing lavapipe"; exit 1; }
  else
    need+=("${cmds[@]}")
  fi
fi

# 3. Fashion-MNIST
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
  if [ -n "${LOSS_ATLAS_FASHION_MNIST:-}" ]; then
    say "LOSS_ATLAS_FASHION_MNIST=$FMNIST_DIR has no train-images-idx3-ubyte.gz"; exit 1
  elif can_apt; then
    say "Fashion-MNIST missing: installing Debian's dataset-fashion-mnist"
    apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2
  else
    need+=("apt-get install -y dataset-fashion-mnist")
  fi
fi

# 4. A font for the text in the pictures (sharp renders SVG through fontconfig)
if ! fc-list 2>/dev/null | grep -qi dejavu && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if can_apt; then
    say "no font found: installing fonts-dejavu-core"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >&2 || { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >&2; }
  else
    need+=("apt-get install -y fonts-dejavu-core")
  fi
fi

# 5. Chromium for the browser test of the HTML report (only for npm test)
if [ "${1:-}" = "--test" ] && [ -z "${LOSS_ATLAS_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if can_apt; then
    say "chromium missing (the report test opens the HTML in it): installing Debian's chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 || { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; }
  else
    need+=("apt-get install -y chromium")
  fi
fi

if [ ${#need[@]} -gt 0 ]; then
  say "cannot install what loss-atlas needs (not root or no apt-get). Run as root:"
  for c in "${need[@]}"; do echo "    $c" >&2; done
  exit 1
fi
exit 0
