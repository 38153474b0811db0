#!/usr/bin/env bash
# Packs .device/ for a bare remote GPU machine with as much of Fashion-MNIST as fits a transfer limit of 64 MiB
# (working tree and packed bundle together; --budget-mib sets the budget, default 63 for a margin).
# ../shared/device/prepare.sh --data with the whole data set makes 76 MiB: its .gz
# files do not compress further, node alone is 22 MiB. So this script runs prepare.sh without data, drops what the
# GPU runs never load (playwright-core, @types, the biome linter, onnxruntime-node, three: the web page's 3-D view),
# adds the data as unpacked IDX files (xz packs them about 15% smaller than gzip; the loader reads files without
# .gz), the first 2,000 test images (the pattern evaluates 1,000) and as many training images as fit, from the front,
# and repacks with xz -9e.
# usage: bash scripts/device-bundle.sh [--train-images N] [--data DIR] [--budget-mib 63]
# Then, on the GPU machine, in the repo root with .device/ copied along:
#   bash .device/run.sh bash scripts/device-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=/usr/share/datasets/fashion-mnist; want=""; budget_mib=63
while [ $# -gt 0 ]; do
  case "$1" in
    --train-images) want="$2"; shift ;;
    --data) src="$2"; shift ;;
    --budget-mib) budget_mib="$2"; shift ;;
    *) echo "usage: device-bundle.sh [--train-images N] [--data DIR] [--budget-mib 63]" >&2; exit 2 ;;
  esac; shift
done
[ -f "$src/train-images-idx3-ubyte.gz" ] || { echo "--data $src: no train-images-idx3-ubyte.gz there (Fashion-MNIST: apt-get install dataset-fashion-mnist)" >&2; exit 2; }
[ -f ../shared/device/prepare.sh ] || { echo "../shared/device/prepare.sh not found (run from the project checkout beside shared/)" >&2; exit 2; }
bash ../shared/device/prepare.sh
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir "$work/base"; xz -dc .device/bundle.tar.xz | tar -C "$work/base" -xf -
rm -rf "$work/base/node_modules/playwright-core" "$work/base/node_modules/@types" "$work/base/node_modules/@biomejs" \
  "$work/base/node_modules/onnxruntime-node" "$work/base/node_modules/three"

# head N images/labels of an IDX pair, unpacked: header with the new count, then the first N records
idx_head() { # in.gz out n record_bytes header_bytes
  python3 - "$@" <<'PY'
import gzip, struct, sys
src, dst, n, rec, hdr = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
b = gzip.open(src).read()
total = struct.unpack(">I", b[4:8])[0]
n = min(n, total)
open(dst, "wb").write(b[:4] + struct.pack(">I", n) + b[8:hdr] + b[hdr:hdr + n * rec])
PY
}
make_data() { # n_train
  rm -rf "$work/base/data"; mkdir -p "$work/base/data/fashion-mnist"; local d="$work/base/data/fashion-mnist"
  idx_head "$src/train-images-idx3-ubyte.gz" "$d/train-images-idx3-ubyte" "$1" 784 16
  idx_head "$src/train-labels-idx1-ubyte.gz" "$d/train-labels-idx1-ubyte" "$1" 1 8
  idx_head "$src/t10k-images-idx3-ubyte.gz" "$d/t10k-images-idx3-ubyte" 2000 784 16
  idx_head "$src/t10k-labels-idx1-ubyte.gz" "$d/t10k-labels-idx1-ubyte" 2000 1 8
}
pack() { tar -C "$work/base" -cf - . | xz -T2 -9e > "$1"; }
# bytes of the working tree that travels (tracked and untracked-not-ignored files that exist)
tree=$(git ls-files -co --exclude-standard --deduplicate -z | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}' || true)
[ -n "$tree" ] || { echo "could not size the working tree (git ls-files / stat failed)" >&2; exit 1; }
limit=$((budget_mib * 1048576 - tree))
if [ -z "$want" ]; then
  # size without data, and the packed bytes per training image, to choose how many fit
  rm -rf "$work/base/data"; pack "$work/b0.xz"; s0=$(stat -c %s "$work/b0.xz")
  make_data 10000; pack "$work/b1.xz"; s1=$(stat -c %s "$work/b1.xz")
  per=$(( (s1 - s0) / 10000 + 1 ))
  want=$(( (limit - s1) / per + 10000 )); want=$(( want / 1000 * 1000 )); [ "$want" -gt 60000 ] && want=60000
  if [ "$want" -lt 1000 ]; then echo "the bundle leaves no room for data within $budget_mib MiB ($((s0 / 1048576)) MiB without data, working tree $((tree / 1048576)) MiB)" >&2; exit 1; fi
  echo "packed: $((s0 / 1048576)) MiB without data, about $per bytes per training image; the working tree is $((tree / 1048576)) MiB: taking $want training images"
fi
make_data "$want"; pack "$work/final.xz"
size=$(stat -c %s "$work/final.xz")
if [ "$size" -gt "$limit" ]; then
  echo "$((size / 1048576)) MiB with $want training images is over the budget of $budget_mib MiB with the working tree; .device/bundle.tar.xz holds prepare.sh's bundle without data; try --train-images $((want - 5000))" >&2
  exit 1
fi
mv "$work/final.xz" .device/bundle.tar.xz
echo "wrote .device/bundle.tar.xz: $((size / 1048576)) MiB with $want training and 2,000 test images of Fashion-MNIST (working tree $((tree / 1048576)) MiB; the budget is $budget_mib MiB in all)"
