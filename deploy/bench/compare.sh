#!/usr/bin/env bash
# Side-by-side benchmark: this store (PD + 3 storage nodes) and a 3-member
# etcd, both on loopback, driven by the same kvbench with the same
# parameters, one after the other in one run.
#
#   deploy/bench/compare.sh [duration, default 20s]
#   KV_BIN=<dir> deploy/bench/compare.sh ...   # prebuilt binaries, no build
#   ONLY=put1 deploy/bench/compare.sh ...      # one case: put1 put64 get1 get64
#
# Needs etcd (Debian: apt-get install etcd-server). Prints kvbench's report
# for each case; docs/benchmarks.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-20s}
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
  BIN=target/release
fi

echo "== starting PD + 3 storage nodes"
"$BIN/playground" --data-dir "$WORK/store" --pd-port 31379 --store-port 31160 > "$WORK/playground.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do grep -q "Ctrl-C" "$WORK/playground.out" && break; sleep 1; done
grep -q "Ctrl-C" "$WORK/playground.out" || { cat "$WORK/playground.out"; exit 1; }
STORE_METRICS=127.0.0.1:31162,127.0.0.1:31172,127.0.0.1:31182

echo "== starting a 3-member etcd"
CLUSTER=e1=http://127.0.0.1:32380,e2=http://127.0.0.1:32390,e3=http://127.0.0.1:32400
for i in 1 2 3; do
  peer=$((32370 + 10 * i)); client=$((32369 + 10 * i))
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new > "$WORK/etcd$i.log" 2>&1 &
  PIDS+=($!)
done
ETCD=127.0.0.1:32379,127.0.0.1:32389,127.0.0.1:32399
for _ in $(seq 1 60); do
  ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 && break; sleep 1
done

run() {
  echo
  echo "== $*"
  "$BIN/kvbench" "$@" --duration "$DURATION" --key-size 16 --value-size 256 --keys 100000 2>/dev/null
}
for clients in 1 64; do
  for op in put get; do
    case "${ONLY:-$op$clients}" in "$op$clients") ;; *) continue ;; esac
    metrics=()
    [ "$op" = put ] && metrics=(--metrics "$STORE_METRICS")
    run --pd 127.0.0.1:31379 --workload "$op" --clients "$clients" "${metrics[@]}"
    run --etcd "$ETCD" --workload "$op" --clients "$clients"
  done
done
