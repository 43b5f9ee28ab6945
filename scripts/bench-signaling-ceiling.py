#!/usr/bin/env python3
"""Summary of `BENCH_RATES="20 40 …" scripts/bench-signaling.sh`: the highest rate of
`audio_level` that the echo server (the transport baseline) and MC each sustained.

    bench-signaling-ceiling.py RESULTS DURATION_SECS CORES

RESULTS has one line per run: the mode (echo or mc), then key=value pairs: round=N-RATE,
rate=RATE (samples a second per client) and the load generator's `result` line. A run
sustained its offered rate when
- the clients sent it (at least SENT_MIN of the offered rate: a load generator starved of CPU
  offers less than it says),
- the server kept up with it: the echo server wrote back, or MC processed (its own counter), at
  least KEPT_MIN of what was offered, and
- nothing fell behind: no client was dropped, and the p99 of the echo round trip (echo) or of
  the speaker delay (mc) stayed within LATENCY_P99_MS_MAX, since a server that falls behind
  queues, and its latency grows with the run;
- and, for MC, the speaker events came: at least KEPT_MIN of the `active_speaker` events due
  arrived (a run where MC named no speaker has no delays, and an empty p99 proves nothing).
A rate is sustained when most rounds sustained it; a server's ceiling is the highest rate it
sustained with every lower rate sustained too. The target (issue 27): MC's ceiling at least
0.8 x the echo server's, in messages a second.
"""

import statistics
import sys
from collections import defaultdict

SENT_MIN = 0.98
KEPT_MIN = 0.98
LATENCY_P99_MS_MAX = 100.0
RATIO_MIN = 0.8

duration, cores = float(sys.argv[2]), int(sys.argv[3])
capacity_ms = 1000 * cores * duration
runs = defaultdict(list)  # (mode, rate) -> [fields]
for line in open(sys.argv[1]):
    mode, *pairs = line.split()
    fields = dict(p.split("=", 1) for p in pairs)
    if mode not in ("echo", "mc"):
        continue
    rate = int(fields.pop("rate"))
    fields.pop("round")
    runs[(mode, rate)].append({k: float(v) for k, v in fields.items()})


def sustained(mode, r):
    kept = r["echoed_per_s"] if mode == "echo" else r["processed_per_s"]
    latency = r["echo_p99_ms"] if mode == "echo" else r["delay_p99_ms"]
    if mode == "mc" and "expected" in r:
        due = r["expected"]
        if due <= 0 or due - r["missing"] < KEPT_MIN * due:
            return False
    return (
        r["sent_per_s"] >= SENT_MIN * r["offered_per_s"]
        and kept >= KEPT_MIN * r["offered_per_s"]
        and r["dropped"] == 0
        and latency <= LATENCY_P99_MS_MAX
    )


def med(values):
    return statistics.median(values) if values else float("nan")


rates = sorted({rate for _, rate in runs})
ceiling = {}
print(
    "| Hz a client | offered msg/s | echo: echoed msg/s | echo p99 ms | sends late p99 ms"
    " | echo sustained | MC: processed msg/s | speaker delay p99 ms | sends late p99 ms"
    " | MC CPU µs/msg | MC sustained |"
)
print("|---|---|---|---|---|---|---|---|---|---|---|")
for rate in rates:
    row = [str(rate)]
    offered = med([r["offered_per_s"] for m in ("echo", "mc") for r in runs.get((m, rate), [])])
    row.append(f"{offered:,.0f}")
    for mode in ("echo", "mc"):
        rs = runs.get((mode, rate), [])
        ok = sum(sustained(mode, r) for r in rs)
        verdict = f"{ok}/{len(rs)}"
        if rs and 2 * ok > len(rs):
            if ceiling.get(mode, (0, True))[1]:
                ceiling[mode] = (rate, True)
        else:
            ceiling[mode] = (ceiling.get(mode, (0, True))[0], False)
        if mode == "echo":
            row += [
                f"{med([r['echoed_per_s'] for r in rs]):,.0f}",
                f"{med([r['echo_p99_ms'] for r in rs]):.2f}",
                f"{med([r['send_late_p99_ms'] for r in rs]):.2f}",
                verdict,
            ]
        else:
            per_msg = [
                1000 * r.get("mc_ms", float("nan")) / max(r["processed_per_s"] * duration, 1)
                for r in rs
            ]
            row += [
                f"{med([r['processed_per_s'] for r in rs]):,.0f}",
                f"{med([r['delay_p99_ms'] for r in rs]):.2f}",
                f"{med([r['send_late_p99_ms'] for r in rs]):.2f}",
                f"{med(per_msg):.1f}",
                verdict,
            ]
    print("| " + " | ".join(row) + " |")

# Where the CPU went, and the servers' memory: per rate and server, medians of the rounds.
# Shares are of the machine's CPU time over the load (all cores); "generator" is the load
# generator, "others" the busy time of processes not measured (someone else's work).
print()
print(
    "| Hz a client | server | server CPU µs/msg | server KiB per socket | generator CPU, % of"
    " machine | machine busy % | others % | dropped | speaker events missing / due |"
)
print("|---|---|---|---|---|---|---|---|---|")
for rate in rates:
    for mode in ("echo", "mc"):
        rs = runs.get((mode, rate), [])
        if not rs:
            continue
        kept = "echoed_per_s" if mode == "echo" else "processed_per_s"
        per_msg = med(
            [1000 * r.get(f"{mode}_ms", float("nan")) / max(r[kept] * duration, 1) for r in rs]
        )
        share = lambda key: med([100 * r.get(key, float("nan")) / capacity_ms for r in rs])
        print(
            f"| {rate} | {mode} | {per_msg:.1f} | {med([r['rss_kib_per_conn'] for r in rs]):.1f}"
            f" | {share('client_ms'):.0f} | {share('machine_ms'):.0f}"
            f" | {share('elsewhere_ms'):.1f} | {max(r['dropped'] for r in rs):.0f} | "
            + (
                f"{sum(r['missing'] for r in rs):,.0f} / {sum(r['expected'] for r in rs):,.0f} |"
                if mode == "mc"
                else "|"
            )
        )

clients = med([r["offered_per_s"] / rate for (m, rate), rs in runs.items() for r in rs])
echo_hz, mc_hz = ceiling.get("echo", (0, False))[0], ceiling.get("mc", (0, False))[0]
print()
print(f"echo server sustained up to {echo_hz} Hz a client ({echo_hz * clients:,.0f} msg/s)")
print(f"MC sustained up to {mc_hz} Hz a client ({mc_hz * clients:,.0f} msg/s)")
if echo_hz:
    ratio = mc_hz / echo_hz
    top = echo_hz == rates[-1] or mc_hz == rates[-1]
    print(
        f"MC / echo: {ratio:.2f} (target >= {RATIO_MIN}: {'met' if ratio >= RATIO_MIN else 'MISSED'})"
        + ("; a server sustained the highest rate offered: offer more to find its ceiling" if top else "")
    )
