#!/usr/bin/env bash
# Where a replicated write's time goes: runs a put load against PD + 3
# storage nodes on loopback and prints each raft stage's p50 and p99 from the
# stores' `store_raft_stage_seconds` histograms (see docs/metrics.md).
#
#   deploy/bench/stages.sh [clients, default 1] [duration, default 10s]
#   KV_BIN=<dir> deploy/bench/stages.sh ...   # prebuilt binaries, no build
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${1:-1}
DURATION=${2:-10s}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "${KV_BIN:-}" ]; then
  BIN=$KV_BIN
else
  cargo build --release --workspace --bins
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
"$BIN/playground" --data-dir "$WORK/store" --pd-port 33379 --store-port 33160 > "$WORK/playground.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do grep -q "Ctrl-C" "$WORK/playground.out" && break; sleep 1; done
grep -q "Ctrl-C" "$WORK/playground.out" || { cat "$WORK/playground.out"; exit 1; }
METRICS=127.0.0.1:33162,127.0.0.1:33172,127.0.0.1:33182
bench() { "$BIN/kvbench" --pd 127.0.0.1:33379 --workload put --clients "$CLIENTS" --key-size 16 --value-size 256 --keys 100000 "$@" 2>/dev/null; }
# A short warm-up, so the stages below exclude connection setup.
bench --duration 2s > /dev/null
python3 deploy/bench/stages.py snap "$WORK/before.json" "$METRICS"
bench --duration "$DURATION" | grep -E "^(throughput|put)"
python3 deploy/bench/stages.py snap "$WORK/after.json" "$METRICS"
python3 deploy/bench/stages.py diff "$WORK/before.json" "$WORK/after.json"
