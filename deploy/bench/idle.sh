#!/usr/bin/env bash
# Idle cost of regions: PD + 3 storage nodes bootstrapped with N regions
# (every store holds a replica of each), left idle; reports each store's CPU
# use and RSS over a sampling window, and the cost per region.
#
#   deploy/bench/idle.sh [regions, default 1000] [window seconds, default 60]
#   KV_BIN=<dir> deploy/bench/idle.sh ...   # prebuilt binaries, no build
#
# HIBERNATE_AFTER_MS=<ms> sets the stores' raft.hibernate-after-ms (0: idle
# regions keep ticking); unset, the stores' default. With hibernation on,
# sampling starts once every store reports all its regions hibernated and
# dormant (their raft groups shut down), or after 20 minutes.
#
# REVIVE=<n> then writes n keys (at most 26), each in a different sleeping region, twice
# through store 1's HTTP API, and reports the median time of the first
# write (the region revived) and of the second (awake).
set -euo pipefail
cd "$(dirname "$0")/../.."
REGIONS=${1:-1000}
WINDOW=${2:-60}
WORK=$(mktemp -d)
PG=""
cleanup() {
  [ -n "$PG" ] && kill "$PG" 2>/dev/null || true
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
if [ -n "${HIBERNATE_AFTER_MS:-}" ]; then export STORE_RAFT_HIBERNATE_AFTER_MS=$HIBERNATE_AFTER_MS; fi
"$BIN/playground" --data-dir "$WORK" --regions "$REGIONS" --pd-port 33379 --store-port 33160 > "$WORK/playground.out" 2>&1 &
PG=$!
for _ in $(seq 1 600); do grep -q "Ctrl-C" "$WORK/playground.out" && break; sleep 1; done
grep -q "Ctrl-C" "$WORK/playground.out" || { cat "$WORK/playground.out"; exit 1; }

echo "waiting for $REGIONS regions to elect leaders"
for _ in $(seq 1 600); do
  n=$("$BIN/pdctl" --pd 127.0.0.1:33379 region list | awk 'NR>1 && $NF != "-"' | wc -l)
  [ "$n" -ge "$REGIONS" ] && break
  sleep 2
done
echo "regions with a leader: $n"
if [ "${HIBERNATE_AFTER_MS:-}" != "0" ]; then
  # Thousands of regions take minutes to agree to sleep (a few dozen at a
  # time per store): sample once they all have, or after 20 minutes.
  echo "waiting for every store to hibernate its $REGIONS regions and put them to rest"
  for _ in $(seq 1 600); do
    asleep=0
    for i in 0 1 2; do
      st=$(curl -s -m 5 "127.0.0.1:$((33162 + 10 * i))/status" || true)
      h=$(echo "$st" | grep -o '"hibernated_region_count":[0-9]*' | cut -d: -f2)
      d=$(echo "$st" | grep -o '"dormant_region_count":[0-9]*' | cut -d: -f2)
      [ "${h:-0}" -ge "$REGIONS" ] && [ "${d:-0}" -ge "$REGIONS" ] && asleep=$((asleep + 1))
    done
    [ "$asleep" -eq 3 ] && break
    sleep 2
  done
fi
echo "settling for 20s"; sleep 20

pids=$(pgrep -f "storenode --data-dir $WORK" || true)
tick=$(getconf CLK_TCK)
declare -A before
for p in $pids; do before[$p]=$(awk '{print $14+$15}' "/proc/$p/stat"); done
sleep "$WINDOW"
for i in 0 1 2; do
  st=$(curl -s -m 5 "127.0.0.1:$((33162 + 10 * i))/status" || true)
  n=$(echo "$st" | grep -o '"hibernated_region_count":[0-9]*' | cut -d: -f2)
  d=$(echo "$st" | grep -o '"dormant_region_count":[0-9]*' | cut -d: -f2)
  echo "store $((i + 1)): ${n:-?} of $REGIONS regions hibernated, ${d:-?} dormant"
done
printf "%-8s %10s %10s %14s %14s\n" pid cpu_pct rss_mib cpu_pct/1k_reg rss_kib/region
for p in $pids; do
  after=$(awk '{print $14+$15}' "/proc/$p/stat")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
  awk -v p="$p" -v b="${before[$p]}" -v a="$after" -v t="$tick" -v w="$WINDOW" -v r="$rss" -v n="$REGIONS" \
    'BEGIN { cpu = (a - b) / t / w * 100; printf "%-8s %10.1f %10.1f %14.2f %14.1f\n", p, cpu, r/1024, cpu*1000/n, r/n }'
done
if [ -n "${REVIVE:-}" ]; then
  # The key space is cut into even ranges of 2 bytes: keys of different
  # first letters lie in different regions (at most 26).
  chars=ABCDEFGHIJKLMNOPQRSTUVWXYZ
  first=(); second=()
  for i in $(seq 0 $((REVIVE > 26 ? 25 : REVIVE - 1))); do
    key="${chars:$i:1}0"
    for round in 1 2; do
      t=$(curl -s -m 10 -o /dev/null -w '%{time_total}' -X PUT --data-binary v "127.0.0.1:33162/kv/$key")
      if [ "$round" = 1 ]; then first+=("$t"); else second+=("$t"); fi
    done
  done
  med() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }
  echo "writes to ${#first[@]} sleeping regions: first (revives) median $(med "${first[@]}") ms, second median $(med "${second[@]}") ms"
fi
