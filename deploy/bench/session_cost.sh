#!/usr/bin/env bash
# What exactly-once writes cost: put throughput and latency of this tree
# against an older revision (default: the last one before request ids and
# the session table), side by side in one run. Each round starts a fresh
# PD + 3 storage nodes from one revision's release binaries and drives them
# with that revision's kvbench; rounds alternate between the revisions so
# machine noise hits both alike. Prints every run and the medians.
#
#   deploy/bench/session_cost.sh [old-rev, default 2899d4e] [duration, default 10s] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD_REV=${1:-2899d4e}
DURATION=${2:-10s}
ROUNDS=${3:-3}
WORK=$(mktemp -d)
OLD_SRC="$WORK/old-src"
NEW_TARGET=${CARGO_TARGET_DIR:-$PWD/target}
OLD_TARGET=${OLD_TARGET:-$PWD/target/bench-old}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$OLD_SRC" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building this tree and $OLD_REV (release)"
cargo build --release --workspace --bins
git worktree add --detach "$OLD_SRC" "$OLD_REV" >/dev/null
(cd "$OLD_SRC" && CARGO_TARGET_DIR="$OLD_TARGET" cargo build --release --workspace --bins)

run_one() { # label bin-dir
  local label=$1 bin=$2 dir="$WORK/run-$RANDOM"
  "$bin/playground" --data-dir "$dir" --pd-port 33379 --store-port 33160 > "$dir.out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do grep -q "Ctrl-C" "$dir.out" && break; sleep 1; done
  grep -q "Ctrl-C" "$dir.out" || { cat "$dir.out"; exit 1; }
  local line
  line=$("$bin/kvbench" --pd 127.0.0.1:33379 --workload put --clients 64 --duration "$DURATION" \
    --key-size 16 --value-size 256 --keys 100000 2>/dev/null | grep -E "^put ")
  echo "$label $line" | tee -a "$WORK/results"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  run_one "old" "$OLD_TARGET/release"
  run_one "new" "$NEW_TARGET/release"
done

echo
echo "== medians (put, 64 clients, $DURATION per run, $ROUNDS runs each)"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for label in old new; do
  rows=$(grep "^$label " "$WORK/results")
  tput=$(echo "$rows" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\/s$/) { sub("/s", "", $i); print $i } }' | median)
  p99=$(echo "$rows" | awk '{ for (i = 1; i <= NF; i++) if ($i == "p99") { v = $(i + 1); sub("ms", "", v); print v } }' | median)
  echo "$label  throughput ${tput} ops/s  p99 ${p99} ms"
done
