#!/usr/bin/env bash
# PD at scale: one fresh PD member and pdbench's simulated stores (no data,
# no raft on the store side). pdbench registers the stores, creates the
# regions by split reports, then measures unchanged region reports per
# second (and checks they cost no raft write) and the time for a route
# change to reach every store.
#
#   deploy/bench/pd_scale.sh [pdbench flags...]
#   e.g. deploy/bench/pd_scale.sh --stores 3 --regions 100000 --trials 200
#   KV_BIN=<dir> deploy/bench/pd_scale.sh ...   # prebuilt binaries, no build
#   PD_ARGS="--route-history-versions 0" deploy/bench/pd_scale.sh ...
#                                               # full snapshots only
#
# Prints pdbench's figures as `key value` lines; docs/benchmarks.md records
# them.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
PD_PID=
cleanup() {
  if [ -n "$PD_PID" ]; then kill "$PD_PID" 2>/dev/null || true; wait "$PD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${KV_BIN:-}" ]; then
  BIN=$KV_BIN
else
  cargo build --release -p pd --bins
  BIN=${CARGO_TARGET_DIR:-target}/release
fi

# Automatic splits and replica checks off: only the bench changes routes.
# shellcheck disable=SC2086
PD_LOG_LEVEL=warn "$BIN/pd-server" --node-id 1 --data-dir "$WORK/pd" \
  --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --max-replicas 3 \
  --split-check-interval-ms 0 --replica-check-interval-ms 0 ${PD_ARGS:-} \
  > "$WORK/pd.out" 2> "$WORK/pd.log" &
PD_PID=$!
for _ in $(seq 1 100); do grep -q "ready" "$WORK/pd.out" && break; sleep 0.1; done
READY=$(grep "ready" "$WORK/pd.out") || { cat "$WORK/pd.log"; exit 1; }
GRPC=$(echo "$READY" | sed -n 's/.* grpc=\([^ ]*\).*/\1/p')
HTTP=$(echo "$READY" | sed -n 's/.* http=\([^ ]*\).*/\1/p')
echo "== PD at grpc=$GRPC http=$HTTP ${PD_ARGS:-}" >&2

"$BIN/pdbench" --pd "$GRPC" --pd-http "$HTTP" "$@"
