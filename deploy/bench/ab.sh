#!/usr/bin/env bash
# Two or more builds side by side: alternates them round by round, each run
# on a fresh PD + 3 storage nodes, the same put load through each build's
# own kvbench, and prints every run and each build's median throughput.
#
#   deploy/bench/ab.sh <rounds> <clients> <bin dir> <bin dir> [...]
#   DURATION=10s deploy/bench/ab.sh 5 64 /tmp/kv-base /tmp/kv-new
#
# A bin dir holds release binaries of one revision (playground, storenode,
# pd-server, kvbench), for instance copied out of target/release at each
# commit. On a shared, noisy machine compare the builds within a round and
# quote medians, never a single run.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 4 ] || { sed -n '2,12p' "$0"; exit 2; }
ROUNDS=$1
CLIENTS=$2
shift 2
DURATION=${DURATION:-8s}
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for r in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    dir="$WORK/run"
    rm -rf "$dir"
    mkdir -p "$dir"
    "$bin/playground" --data-dir "$dir/store" --pd-port 34379 --store-port 34160 > "$dir/playground.out" 2>&1 &
    PID=$!
    for _ in $(seq 1 120); do grep -q "Ctrl-C" "$dir/playground.out" && break; sleep 1; done
    grep -q "Ctrl-C" "$dir/playground.out" || { cat "$dir/playground.out"; exit 1; }
    line=$("$bin/kvbench" --pd 127.0.0.1:34379 --workload put --clients "$CLIENTS" --duration "$DURATION" \
      --key-size 16 --value-size 256 --keys 100000 2>/dev/null | grep '^put ')
    echo "round $r  $bin  $line"
    echo "$bin $(echo "$line" | awk '{print $4}' | tr -d '/s')" >> "$WORK/results"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
  done
done
echo
echo "median puts/s over $ROUNDS rounds, $CLIENTS clients:"
for bin in "$@"; do
  grep "^$bin " "$WORK/results" | awk '{print $2}' | sort -n |
    awk -v b="$bin" '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "  %s %.0f\n", b, m}'
done
