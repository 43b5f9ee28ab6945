#!/usr/bin/env python3
"""Summary of `BENCH_TOWNHALL=1 scripts/bench-signaling.sh`: one broadcast to a room of
BENCH_PEOPLE sockets on MC, against the same sockets on the bare broadcast server of
`benches/ws_echo.rs` in the same round.

    bench-signaling-townhall.py RESULTS

RESULTS has one line per run: the mode (broadcast or townhall), then key=value pairs: round=N,
rate (unused) and the load generator's `result` line. Each run timed BENCH_TOWNHALL_ROUNDS
broadcasts; a run's figure is the p50 (and p99, max) over them of the time until the LAST socket
had the broadcast. The ratio MC / baseline is taken within each round, then its median over the
rounds (docs/benchmarks.md, "Why interleaved").
"""

import statistics
import sys
from collections import defaultdict

runs = defaultdict(dict)  # round -> mode -> fields
for line in open(sys.argv[1]):
    mode, *pairs = line.split()
    if mode not in ("broadcast", "townhall"):
        continue
    fields = dict(p.split("=", 1) for p in pairs)
    values = {}
    for k, v in fields.items():
        try:
            values[k] = float(v)
        except ValueError:
            values[k] = float("nan")
    runs[fields["round"]][mode] = values


def med(values):
    values = [v for v in values if v == v]
    if not values:
        return "?"
    m = statistics.median(values)
    return f"{m:.2f} ({min(values):.2f}-{max(values):.2f})"


def column(mode, key):
    return [r[mode][key] for r in runs.values() if mode in r and key in r[mode]]


def ratio(key):
    return [
        r["townhall"][key] / r["broadcast"]["frame_last_p50_ms"]
        for r in runs.values()
        if "townhall" in r and "broadcast" in r and r["broadcast"]["frame_last_p50_ms"] > 0
    ]


print(f"rounds: {len(runs)}")
print("baseline, one frame to all (send -> last socket), ms:")
for key in ("frame_last_p50_ms", "frame_last_p99_ms", "frame_last_max_ms", "frame_sock_p50_ms"):
    print(f"  {key:<28} {med(column('broadcast', key))}")
print(f"  {'cpu echo ms a broadcast':<28} {med(column('broadcast', 'frame_echo_ms_per_round'))}")
print("MC, ms (last socket; the median socket in *_sock_p50):")
for prefix, what in (
    ("speaker", "active_speaker, from the completing sample sent"),
    ("left", "participant.left, from the leave sent"),
    ("joined", "participant.joined, from the REST join sent"),
    ("connected", "participant.updated, from the joiner's connect (socket opened, auth sent)"),
):
    print(f"  {what}:")
    for suffix in ("last_p50_ms", "last_p99_ms", "last_max_ms", "sock_p50_ms", "missing", "early"):
        print(f"    {prefix + '_' + suffix:<28} {med(column('townhall', prefix + '_' + suffix))}")
print(f"  {'join_answer_p50_ms':<30} {med(column('townhall', 'join_answer_p50_ms'))}")
print(f"  {'cpu mc ms a speaker change':<30} {med(column('townhall', 'speaker_mc_ms_per_round'))}")
print(f"  {'cpu mc ms a join and leave':<30} {med(column('townhall', 'join_mc_ms_per_round'))}")
print(f"  {'cpu redis ms a speaker change':<30} {med(column('townhall', 'speaker_redis_ms_per_round'))}")
print(f"  {'dropped sockets':<30} {med(column('townhall', 'dropped'))}")
print(f"  {'slow consumers (MC counter)':<30} {med(column('townhall', 'slow_consumers'))}")
print(f"  {'largest welcome, bytes':<30} {med(column('townhall', 'welcome_bytes'))}")
print(f"  {'MC KiB per connection':<30} {med(column('townhall', 'rss_kib_per_conn'))}")
print("MC / baseline, last socket p50, within each round (median, range):")
print(f"  {'active_speaker':<28} {med(ratio('speaker_last_p50_ms'))}")
print(f"  {'participant.left':<28} {med(ratio('left_last_p50_ms'))}")
elsewhere = column("townhall", "speaker_elsewhere_ms_per_round") + column(
    "broadcast", "frame_elsewhere_ms_per_round"
)
print(f"others' CPU during the broadcasts, ms a broadcast: {med(elsewhere)}")
