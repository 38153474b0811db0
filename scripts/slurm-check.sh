#!/usr/bin/env bash
# The job-array scripts of examples/slurm/ on a real SLURM: installs Debian's slurm-wlm and munge when missing,
# starts a single-node cluster on this machine (munged, slurmctld, slurmd, with a configuration of their own in a
# temporary folder: the machine's /etc/slurm is left as it is), and checks that
#   1. a loss surface computed as a 4-task job array and merged equals the same surface computed in one process
#      (surface_loss.npy and surface_acc.npy byte for byte);
#   2. a small bn-compare run as a 3-task job array and gathered equals the same comparison in one process
#      (bn_compare.md byte for byte, the rows of bn_compare.json);
#   3. li-figures --smoke submitted with examples/slurm/figure-set.sh (a 2-task array, the same array again for the
#      step that needs both tasks' nets, then the gathering) equals the same set in one process (summary.json).
# Needs root (it installs packages and starts the daemons). Not part of npm test: it takes a few minutes on a CPU.
#
# usage: sudo bash scripts/slurm-check.sh [--keep]   (--keep: leave the work folder and print its path)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=0
for a in "$@"; do
  case $a in
    --keep) keep=1 ;;
    *) echo "slurm-check: unknown argument $a (expected --keep)" >&2; exit 2 ;;
  esac
done
log() { echo "[slurm-check] $*"; }
[ "$(id -u)" = 0 ] || { echo "slurm-check: run as root (it installs slurm-wlm and munge and starts their daemons)" >&2; exit 2; }
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (Debian packages)"
  apt-get update -q >/dev/null || log "apt-get update failed; trying the install with the package lists as they are"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
bash scripts/setup.sh >/dev/null # node_modules, the dataset, a WebGPU adapter

work=$(mktemp -d /tmp/la-slurm-XXXXXX)
conf=$work/etc
mkdir -p "$conf" "$work/spool/ctld" "$work/spool/d" "$work/munge"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
  [ -f "$work/munge/munged.pid" ] && kill "$(cat "$work/munge/munged.pid")" 2>/dev/null || true
  if [ "$keep" = 1 ]; then log "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# munge: the package's key, a socket of our own
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
chown munge:munge /etc/munge/munge.key "$work/munge"
chmod 0400 /etc/munge/munge.key
chmod 0755 "$work" "$work/munge"
sock=$work/munge/munge.socket
runuser -u munge -- munged --socket="$sock" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed"
host=$(hostname -s)
node=$(slurmd -C | head -1) # NodeName=<host> CPUs=... RealMemory=...
cat >"$conf/slurm.conf" <<CONF
ClusterName=loss-atlas-check
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/spool/ctld
SlurmdSpoolDir=$work/spool/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
$node State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf/slurm.conf
slurmctld
slurmd
for i in $(seq 1 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "${state:-}" = idle ] || { log "the node did not come up (state: ${state:-none}); logs in $work"; keep=1; exit 1; }
log "single-node SLURM up: $(sinfo -h -o '%P %D node, %c CPUs, %T')"

la() { node "$root/bin/loss-atlas.js" "$@"; }
submit() { # sbatch --wait: exits non-zero when a task fails
  sbatch --wait --quiet --chdir="$root" --output="$work/slurm-%A_%a.out" "$@" || {
    log "a task failed:"; tail -n 20 "$work"/slurm-*.out >&2; exit 1
  }
}
fail=0
same() { # same FILE_A FILE_B WHAT
  if cmp -s "$1" "$2"; then log "PASS $3"; else log "FAIL $3: $1 and $2 differ"; fail=1; fi
}

log "training a small model to take the surface around"
la train --model tiny --epochs 1 --train-images 512 --eval-images 100 --out "$work/train" >"$work/train.log" 2>&1
model=$work/train/model.safetensors
surface=(--model-file "$model" --x -1:1:9 --y -1:1:7 --images 100 --block 8)
log "surface: one process"
la surface "${surface[@]}" --out "$work/surface-one" >"$work/surface-one.log" 2>&1
log "surface: a job array of 4 tasks, then merge"
submit --array=0-3 examples/slurm/surface.sbatch "$work/surface-array" "${surface[@]}"
la merge "$work"/surface-array/shard-* --out "$work/surface-array/merged" >"$work/merge.log" 2>&1
for f in surface_loss.npy surface_acc.npy; do
  same "$work/surface-one/$f" "$work/surface-array/merged/$f" "merged $f equals the unsharded one"
done

bn=(--model tiny --fills 0.3,0.6 --seeds 1 --size 6 --steps 20 --batch 16 --cells-per-step 4 --eval-images 50)
log "bn-compare: one process"
la bn-compare "${bn[@]}" --out "$work/bn-one" >"$work/bn-one.log" 2>&1
log "bn-compare: a job array of 3 tasks, then --gather"
submit --array=0-2 examples/slurm/bn-compare.sbatch "$work/bn-array" "${bn[@]}"
la bn-compare "${bn[@]}" --gather --out "$work/bn-array" >"$work/gather.log" 2>&1
same "$work/bn-one/bn_compare.md" "$work/bn-array/bn_compare.md" "gathered bn_compare.md equals the one-process table"
rows() { node -e 'console.log(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1])).rows))' "$1"; }
if [ "$(rows "$work/bn-one/bn_compare.json")" = "$(rows "$work/bn-array/bn_compare.json")" ]; then
  log "PASS gathered bn_compare.json rows equal the one-process rows"
else
  log "FAIL bn_compare.json rows differ"; fail=1
fi

# a figure set through examples/slurm/figure-set.sh: two runs of a 2-task array (the batch interpolation needs nets
# of both tasks), then the gathering, each job after the one before
li=(--smoke)
log "li-figures --smoke: one process"
la li-figures "${li[@]}" --out "$work/li-one" >"$work/li-one.log" 2>&1
log "li-figures --smoke: examples/slurm/figure-set.sh (2 tasks, twice, then --gather)"
ids=$(bash examples/slurm/figure-set.sh 2 li-figures "$work/li-array" "${li[@]}" -- --chdir="$root" \
  --output="$work/slurm-%A_%a.out")
log "$ids"
submit --dependency=afterany:"${ids##* }" --wrap=true # afterany: a failed gathering is reported below
summary() { # summary.json without the time, the gathered flag and the folder
  node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1]+"/summary.json","utf8").replaceAll(process.argv[1],"OUT"));
    delete s.seconds; delete s.gathered; console.log(JSON.stringify(s))' "$1"
}
if [ -f "$work/li-array/summary.json" ] && [ "$(summary "$work/li-one")" = "$(summary "$work/li-array")" ]; then
  log "PASS gathered li-figures summary.json equals the one-process summary"
else
  log "FAIL li-figures summary.json differs or is missing"; fail=1
fi

[ "$fail" = 0 ] && log "all checks passed" || { log "some checks failed"; keep=1; exit 1; }
