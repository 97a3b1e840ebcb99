#!/usr/bin/env bash
# Moving a large region, side by side with the same load without a move.
#
#   deploy/bench/move.sh [region MiB, default 256] [rounds, default 3]
#   KV_BIN=<dir> deploy/bench/move.sh ...   # prebuilt binaries, no build
#
# PD + 4 storage nodes (release build), key space pre-split at "m" into
# regions A ["", "m") and B ["m", ""); PD's split checker off, so A stays
# one region. A is loaded with MiB of 64 KiB values. Each round:
#   base  8 clients put 256 B values into A for 10 s, no move
#   move  the same load, and 2 s in `pdctl region move` carries A's replica
#         on one store to the store that holds none (the next round moves
#         it back), timed from the request until pdctl returns (every step
#         done and every store on the new routes)
# The stores' snapshot metrics give where the time goes: the leader's
# snapshot build, and on the receiving store the bytes received over the
# time from the first chunk until the snapshot is installed (the transfer
# rate), of which the install alone.
# Prints every run, then medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-256}
ROUNDS=${2:-3}
VALUE=65536
KEYS=$((MIB * 1024 * 1024 / VALUE))
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# KV_BIN=<dir> runs prebuilt binaries (another build, side by side).
if [ -n "${KV_BIN:-}" ]; then
  BIN=$KV_BIN
else
  cargo build --release --workspace --bins
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
PD=127.0.0.1:35379

wait_line() { # file pattern
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}
metric() { # http name: the sum of a metric's samples
  curl -s "http://$1/metrics" | awk -v n="$2" 'index($0, n) == 1 { s += $NF } END { printf "%.6f\n", s + 0 }'
}
http() { echo "127.0.0.1:$((35152 + 10 * $1))"; }

echo "== PD + 4 stores, regions A [\"\", m) and B [m, \"\"), no automatic splits"
"$BIN/pd-server" --node-id 1 --data-dir "$WORK/pd" --grpc-addr "$PD" --http-addr 127.0.0.1:35381 \
  --bootstrap-split-keys m --split-check-interval-ms 0 > "$WORK/pd.out" 2> "$WORK/pd.log" &
PIDS+=($!)
wait_line "$WORK/pd.out" ready
for i in 1 2 3 4; do
  "$BIN/storenode" --data-dir "$WORK/store$i" --grpc-addr "127.0.0.1:$((35150 + 10 * i))" \
    --http-addr "$(http "$i")" --pd "$PD" > "$WORK/store$i.out" 2> "$WORK/store$i.log" &
  PIDS+=($!)
  wait_line "$WORK/store$i.out" ready
done
for _ in $(seq 1 300); do
  [ "$("$BIN/pdctl" --pd "$PD" region list | awk 'NR > 1 && $NF != "-"' | wc -l)" -ge 2 ] && break
  sleep 1
done

echo "== load region A with $KEYS x 64 KiB = $MIB MiB"
started=$(date +%s)
"$BIN/kvbench" --pd "$PD" --workload get --key-prefix a --keys "$KEYS" --value-size "$VALUE" \
  --clients 16 --duration 1s > /dev/null 2>&1
echo "loaded in $(($(date +%s) - started)) s"
REGION=$("$BIN/pdctl" --pd "$PD" -o json region key a | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
STORES=$("$BIN/pdctl" --pd "$PD" -o json store list | python3 -c 'import json,sys; print(",".join(str(s["store"]["id"]) for s in json.load(sys.stdin)["stores"]))')
store_of() { # holder: a store with a follower of region A; free: the store without one
  "$BIN/pdctl" --pd "$PD" -o json region show "$REGION" | python3 -c '
import json, sys
r = json.load(sys.stdin)
held = {p["store_id"] for p in r["peers"]}
leader = (r.get("leader") or {}).get("store_id")
stores = [int(s) for s in sys.argv[2].split(",")]
if sys.argv[1] == "free":
    print([s for s in stores if s not in held][0])
else:
    print(sorted(s for s in held if s != leader)[0])
' "$1" "$STORES"
}
http_of() { # store id: its HTTP address (stores start in order, ids in order)
  local i=1
  for s in $(echo "$STORES" | tr , ' '); do [ "$s" = "$1" ] && { http "$i"; return; }; i=$((i + 1)); done
}

load() { # seconds: kvbench put line
  # Its keys ("b...") are in region A but never the loaded values ("a..."),
  # so the region stays at its size round after round.
  "$BIN/kvbench" --pd "$PD" --workload put --key-prefix b --keys 100000 --value-size 256 --clients 8 \
    --duration "$1s" 2>/dev/null | grep -E "^put "
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  echo "base $(load 10)" | tee -a "$WORK/results"
  from=$(store_of holder)
  to=$(store_of free)
  bytes0=$(metric "$(http_of "$to")" 'store_snapshot_bytes_total{direction="received"}')
  secs0=$(metric "$(http_of "$to")" 'store_snapshot_seconds_sum{direction="receive"}')
  inst0=$(metric "$(http_of "$to")" 'store_snapshot_seconds_sum{direction="install"}')
  build0=0; for i in 1 2 3 4; do build0=$(echo "$build0 + $(metric "$(http "$i")" 'store_snapshot_seconds_sum{direction="build"}')" | bc); done
  load 10 > "$WORK/move-load" &
  LOADPID=$!
  sleep 2
  t0=$(date +%s.%N)
  "$BIN/pdctl" --pd "$PD" region move "$REGION" --from "$from" --to "$to" --timeout 120 > "$WORK/move.out"
  t1=$(date +%s.%N)
  wait "$LOADPID"
  bytes=$(echo "$(metric "$(http_of "$to")" 'store_snapshot_bytes_total{direction="received"}') - $bytes0" | bc)
  secs=$(echo "$(metric "$(http_of "$to")" 'store_snapshot_seconds_sum{direction="receive"}') - $secs0" | bc)
  inst=$(echo "$(metric "$(http_of "$to")" 'store_snapshot_seconds_sum{direction="install"}') - $inst0" | bc)
  build1=0; for i in 1 2 3 4; do build1=$(echo "$build1 + $(metric "$(http "$i")" 'store_snapshot_seconds_sum{direction="build"}')" | bc); done
  build=$(echo "scale=2; ($build1 - $build0) / 1" | bc)
  rate=$(echo "scale=1; $bytes / 1000000 / $secs" | bc)
  wire=$(echo "scale=1; $bytes / 1000000 / ($secs - $inst)" | bc)
  took=$(echo "scale=2; ($t1 - $t0) / 1" | bc)
  echo "move store $from -> $to: ${took} s, snapshot $(echo "$bytes / 1048576" | bc) MiB built in ${build} s, received and installed at ${rate} MB/s (install ${inst} s of ${secs} s; stream ${wire} MB/s)" \
    | tee -a "$WORK/results"
  echo "moving $(cat "$WORK/move-load")" | tee -a "$WORK/results"
  echo "movetime $took $rate $wire" >> "$WORK/times"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { # label, the word before the value
  grep "^$1 " "$WORK/results" | awk -v w="$2" '{ for (i = 1; i <= NF; i++) if ($i == w) { v = $(i + 1); sub("ms", "", v); print v } }'
}
echo
echo "== medians ($MIB MiB region, $ROUNDS rounds)"
echo "move time      $(awk '{ print $2 }' "$WORK/times" | median) s"
echo "transfer rate  $(awk '{ print $3 }' "$WORK/times" | median) MB/s (first chunk until installed)"
echo "stream rate    $(awk '{ print $4 }' "$WORK/times" | median) MB/s (first chunk until the install starts)"
for mode in base moving; do
  tput=$(grep "^$mode " "$WORK/results" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\/s$/) { sub("/s", "", $i); print $i } }' | median)
  echo "$mode  throughput ${tput} ops/s  p99 $(field "$mode" p99 | median) ms"
done
