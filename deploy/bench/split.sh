#!/usr/bin/env bash
# Splits under load, side by side in one run. Each round starts a fresh
# PD + 3 storage nodes (the playground, release build) three times:
#   base    put load on one region, no splits
#   split   the same load while SPLITS splits at even keys, spread over the
#           run, each timed from request to every store's routes showing it
#   16reg   the same load on a key space pre-split into 16 regions
# Rounds interleave the three so machine noise hits them alike. Prints every
# run, then medians: throughput and client p99 per mode, and the medians of
# the split runs' p50 and p99 split-to-convergence times.
#
#   deploy/bench/split.sh [duration, default 20s] [splits, default 20] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-20s}
SPLITS=${2:-20}
ROUNDS=${3:-3}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN="$TARGET/release"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building (release)"
cargo build --release --workspace --bins

run_one() { # mode, extra kvbench flags...
  local mode=$1; shift
  local dir="$WORK/run-$RANDOM"
  "$BIN/playground" --data-dir "$dir" --pd-port 33379 --store-port 33160 > "$dir.out" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 120); do grep -q "Ctrl-C" "$dir.out" && break; sleep 1; done
  grep -q "Ctrl-C" "$dir.out" || { cat "$dir.out"; exit 1; }
  local out
  out=$("$BIN/kvbench" --pd 127.0.0.1:33379 --workload put --clients 64 --duration "$DURATION" \
    --key-size 16 --value-size 256 --keys 100000 "$@" 2>/dev/null)
  local put splits
  put=$(echo "$out" | grep -E "^put ")
  splits=$(echo "$out" | grep -E "^splits " || true)
  echo "$mode $put" | tee -a "$WORK/results"
  if [ -n "$splits" ]; then echo "$mode-splits $splits" | tee -a "$WORK/results"; fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  run_one base
  run_one split --split-during "$SPLITS"
  run_one 16reg --split-regions 16
done

echo
echo "== medians (put, 64 clients, $DURATION per run, $ROUNDS runs each)"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { # label, the word before the value
  grep "^$1 " "$WORK/results" | awk -v w="$2" '{ for (i = 1; i <= NF; i++) if ($i == w) { v = $(i + 1); sub("ms", "", v); print v } }'
}
for mode in base split 16reg; do
  tput=$(grep "^$mode " "$WORK/results" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\/s$/) { sub("/s", "", $i); print $i } }' | median)
  p99=$(field "$mode" p99 | median)
  echo "$mode  throughput ${tput} ops/s  p99 ${p99} ms"
done
echo "split-to-convergence  p50 $(field split-splits p50 | median) ms  p99 $(field split-splits p99 | median) ms  ($SPLITS splits per run)"
