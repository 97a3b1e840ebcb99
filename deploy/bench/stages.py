#!/usr/bin/env python3
"""Per-stage latency of raft writes, from the stores' Prometheus histograms.

    stages.py snap OUT host:port[,host:port...]    # save the histograms now
    stages.py diff BEFORE AFTER                    # quantiles of what happened between

Sums `store_raft_stage_seconds` over the stores and prints, per stage, the
count, p50 and p99 of the observations between the two snapshots
(interpolated inside buckets, as Prometheus' histogram_quantile does).
"""
import json
import re
import sys
import urllib.request

METRIC = "store_raft_stage_seconds_bucket"
LINE = re.compile(r'^' + METRIC + r'\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
ORDER = ["propose", "leader_append", "replicate", "follower_append", "commit", "apply", "reply"]


def scrape(addrs):
    buckets = {}
    for addr in addrs.split(","):
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            labels = dict(kv.split("=", 1) for kv in m.group("labels").split(","))
            stage = labels["stage"].strip('"')
            le = labels["le"].strip('"')
            key = f"{stage}|{le}"
            buckets[key] = buckets.get(key, 0.0) + float(m.group("value"))
    return buckets


def quantile(q, bounds):
    total = bounds[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in bounds:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            span = c - prev_c
            return prev_le + (le - prev_le) * ((rank - prev_c) / span if span else 0)
        prev_le, prev_c = le, c
    return prev_le


def main():
    if sys.argv[1] == "snap":
        with open(sys.argv[2], "w") as f:
            json.dump(scrape(sys.argv[3]), f)
        return
    before = json.load(open(sys.argv[2]))
    after = json.load(open(sys.argv[3]))
    stages = {}
    for key, v in after.items():
        stage, le = key.split("|")
        stages.setdefault(stage, []).append((float(le), v - before.get(key, 0.0)))
    print(f"{'stage':<16} {'count':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for stage in ORDER:
        b = sorted(stages.get(stage, []))
        if not b:
            continue
        n = b[-1][1]
        print(f"{stage:<16} {int(n):>9} {quantile(0.5, b) * 1e3:>9.3f} {quantile(0.99, b) * 1e3:>9.3f}")


if __name__ == "__main__":
    main()
