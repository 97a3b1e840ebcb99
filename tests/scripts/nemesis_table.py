#!/usr/bin/env python3
"""Summarises nemesis runs for docs/nemesis.md.

Reads the logs of `cargo test -p cluster-tests --test nemesis -- --nocapture`
(the `nemesis: seed=... verdict=...` line of each run) and prints the totals,
the longest unavailability per fault kind (median and max over runs) and one
table row per run, as Markdown.

    tests/scripts/nemesis_table.py run1.log [run2.log ...]
"""
import re, sys, statistics
rows = []
for path in sys.argv[1:]:
    for line in open(path):
        m = re.search(r"nemesis: (seed=\S+ .*verdict=\S+)", line)
        if not m: continue
        s = m.group(1)
        d = dict(re.findall(r"(\w[\w-]*)=(\d+)", s.split(" faults=")[0]))
        faults = re.search(r"faults=\[([^\]]*)\]", s).group(1).split()
        unav = re.search(r"longest-unavailable=\[([^\]]*)\]", s).group(1).split()
        verdict = s.rsplit("verdict=", 1)[1]
        rows.append((int(d["seed"]), int(d["ops"]), int(d["ok"]), int(d["fail"]), int(d["unknown"]), int(d.get("snapshots-installed", 0)),
                     {f.split("x")[0]: int(f.split("x")[1]) for f in faults},
                     {u.split("=")[0]: float(u.split("=")[1].rstrip("s")) for u in unav}, verdict))
rows.sort(key=lambda r: (r[0] < 100, r[0]))
kinds = ["kill-store", "kill-leader-store", "pause-store", "partition-store", "kill-pd", "kill-pd-leader", "split", "transfer-leader", "move", "down-store", "dormant"]
short = {"kill-store": "ks", "kill-leader-store": "kl", "pause-store": "ps", "partition-store": "pt", "kill-pd": "kp", "kill-pd-leader": "kpl", "split": "sp", "transfer-leader": "tl", "move": "mv", "down-store": "ds", "dormant": "dm"}
print(f"runs: {len(rows)}, valid: {sum(r[8]=='valid' for r in rows)}")
splits = sum(open(p).read().count("split into") for p in sys.argv[1:])
if splits: print(f"splits that succeeded (alone or during another fault): {splits}")
print(f"operations: {sum(r[1] for r in rows):,}, ok {sum(r[2] for r in rows):,}, fail {sum(r[3] for r in rows):,}, unknown {sum(r[4] for r in rows):,}, snapshots installed {sum(r[5] for r in rows)}")
print()
print("| fault kind | applied | longest unavailable: median / max over runs |")
print("|---|---:|---|")
for k in kinds:
    n = sum(r[6].get(k, 0) for r in rows)
    vals = [r[7][k] for r in rows if k in r[7]]
    if vals:
        print(f"| `{k}` | {n} | {statistics.median(vals):.1f} s / {max(vals):.1f} s |")
print()
print("| seed | ops | ok | fail | unknown | snapshots | faults (ks kl ps pt kp kpl sp tl mv ds dm) | longest unavailable (s, same order) | verdict |")
print("|---:|---:|---:|---:|---:|---:|---|---|---|")
for r in rows:
    f = " ".join(str(r[6].get(k, 0)) for k in kinds)
    u = " ".join(f"{r[7][k]:.1f}" if k in r[7] else "-" for k in kinds)
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {f} | {u} | {r[8]} |")
