#!/usr/bin/env bash
# Snapshot streaming: memory of the receiving store, and other regions'
# writes, while a large region is sent and installed.
#
#   deploy/bench/snapshot.sh [region MiB, default 1024] [load seconds, default 30] [engine cache MiB, default 64]
#
# The engine's page cache is a configured memory budget of its own
# (engine.cache-size-mb, 1 GiB by default) that fills with any write,
# snapshot or not; the stores run with a small one so the RSS growth shows
# what the snapshot path itself holds.
#
# PD + 3 storage nodes, key space pre-split at "m" into regions A ["", "m")
# and B ["m", ""). Store 3 is stopped; region A is loaded with MiB of 64 KiB
# values, then enough small writes that A's leader builds a snapshot and
# truncates its log past store 3. Store 2 is stopped and store 3 restarted:
# A and B now commit only with store 3, which must take A's snapshot. The
# script samples store 3's VmRSS every 100 ms until the install is done, and
# runs a put load on region B (8 clients, 256 B values) from the moment B
# serves until the load window ends, then the same load again once the
# install is over (the baseline, same two stores).
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-1024}
WINDOW=${2:-30}
CACHE_MB=${3:-64}
VALUE=65536
KEYS=$((MIB * 1024 * 1024 / VALUE))
# One snapshot once the whole load is applied, none during it.
SNAP_LOGS=$((KEYS + 500))
WORK=$(mktemp -d)
declare -A SPID
PDPID=""
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  for p in "${SPID[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$PDPID" ] && kill "$PDPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --workspace --bins
BIN=target/release
PD=127.0.0.1:34379

wait_line() { # file pattern count
  for _ in $(seq 1 300); do
    [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}
metric() { # http name: the sum of a counter's samples
  curl -s "http://$1/metrics" | awk -v n="$2" 'index($0, n) == 1 { s += $NF } END { print s + 0 }'
}
start_store() {
  local i=$1 n
  n=$(grep -c ready "$WORK/store$i.out" 2>/dev/null || true)
  "$BIN/storenode" --data-dir "$WORK/store$i" --grpc-addr "127.0.0.1:$((34150 + 10 * i))" \
    --http-addr "127.0.0.1:$((34152 + 10 * i))" --pd "$PD" --raft-snapshot-logs "$SNAP_LOGS" --engine-cache-mb "$CACHE_MB" \
    >> "$WORK/store$i.out" 2>> "$WORK/store$i.log" &
  SPID[$i]=$!
  wait_line "$WORK/store$i.out" ready $((${n:-0} + 1))
}
stop_store() {
  kill "${SPID[$1]}"
  wait "${SPID[$1]}" 2>/dev/null || true
  unset "SPID[$1]"
}
http() { echo "127.0.0.1:$((34152 + 10 * $1))"; }
leaders() { "$BIN/pdctl" --pd "$PD" region list | awk 'NR > 1 && $NF != "-"' | wc -l; }

echo "== PD + 3 stores, regions A [\"\", m) and B [m, \"\"), snapshot every $SNAP_LOGS entries"
"$BIN/pd-server" --node-id 1 --data-dir "$WORK/pd" --grpc-addr "$PD" --http-addr 127.0.0.1:34381 \
  --bootstrap-split-keys m > "$WORK/pd.out" 2> "$WORK/pd.log" &
PDPID=$!
wait_line "$WORK/pd.out" ready 1
for i in 1 2 3; do start_store "$i"; done
for _ in $(seq 1 300); do [ "$(leaders)" -ge 2 ] && break; sleep 1; done

echo "== stop store 3; load region A with $KEYS x 64 KiB = $MIB MiB"
stop_store 3
started=$(date +%s)
"$BIN/kvbench" --pd "$PD" --workload get --key-prefix a --keys "$KEYS" --value-size "$VALUE" \
  --clients 16 --duration 1s > /dev/null 2>&1
echo "loaded in $(($(date +%s) - started)) s"
"$BIN/kvbench" --pd "$PD" --workload get --key-prefix b --keys 1000 --value-size 64 \
  --clients 16 --duration 1s > /dev/null 2>&1
for _ in $(seq 1 600); do
  b=$(( $(metric "$(http 1)" 'store_snapshots_total{direction="built"}') + $(metric "$(http 2)" 'store_snapshots_total{direction="built"}') ))
  [ "$b" -ge 2 ] && break
  sleep 1
done
echo "snapshots built on stores 1 and 2: $b"
du -sh "$WORK"/store1/snapshots "$WORK"/store1/store.redb "$WORK"/store1/raftlog
# For scale: the stores that applied the same data through the log.
for i in 1 2; do
  echo "store $i VmRSS after applying the load: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/${SPID[$i]}/status")"
done

echo "== stop store 2, restart store 3: it must install region A's snapshot"
stop_store 2
start_store 3
S3=${SPID[3]}
(while kill -0 "$S3" 2>/dev/null; do
  echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' "/proc/$S3/status" 2>/dev/null)"
  sleep 0.1
done) > "$WORK/rss.txt" &
SAMPLER=$!
restarted=$(date +%s.%N)
for _ in $(seq 1 600); do
  curl -sf -X PUT --data probe "http://$(http 1)/kv/xprobe" > /dev/null && break
  sleep 0.2
done
echo "region B serves after $(echo "$(date +%s.%N) - $restarted" | bc) s; put load on B for ${WINDOW}s"
bench_start=$(date +%s.%N)
"$BIN/kvbench" --pd "$PD" --workload put --key-prefix x --keys 100000 --value-size 256 --clients 8 \
  --duration "${WINDOW}s" --metrics "$(http 1),$(http 3)" 2>/dev/null | grep -E "^(put|errors|throughput)" \
  > "$WORK/during.txt" &
BENCH=$!
installed=""
for _ in $(seq 1 6000); do
  if [ "$(metric "$(http 3)" 'store_snapshots_total{direction="installed"}')" -ge 1 ]; then
    installed=$(date +%s.%N)
    break
  fi
  sleep 0.1
done
wait "$BENCH"
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
echo "snapshot installed $(echo "$installed - $restarted" | bc) s after the restart," \
  "$(echo "$installed - $bench_start" | bc) s into the ${WINDOW}s load"
echo "receive+install seconds (store 3): $(metric "$(http 3)" 'store_snapshot_seconds_sum{direction="receive"}')"
echo "snapshot bytes received: $(metric "$(http 3)" 'store_snapshot_bytes_total{direction="received"}')"
awk 'NF == 2 && $2 > 0 { if (!b) b = $2; if ($2 > p) p = $2 } END {
  printf "store 3 VmRSS: baseline %.1f MiB (first sample after ready), peak %.1f MiB, growth %.1f MiB\n", b/1024, p/1024, (p-b)/1024 }' \
  "$WORK/rss.txt"

echo "== region B puts during the transfer and install"
cat "$WORK/during.txt"
sleep 5
echo "== region B puts afterwards, same stores (baseline)"
"$BIN/kvbench" --pd "$PD" --workload put --key-prefix x --keys 100000 --value-size 256 --clients 8 \
  --duration "${WINDOW}s" --metrics "$(http 1),$(http 3)" 2>/dev/null | grep -E "^(put|errors|throughput)"
