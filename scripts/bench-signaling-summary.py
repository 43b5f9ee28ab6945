#!/usr/bin/env python3
"""Summary of scripts/bench-signaling.sh: medians over the rounds and the targets.

    bench-signaling-summary.py RESULTS DURATION_SECS CORES

RESULTS has one line per run: the mode (echo, mc, lobby), then key=value pairs (round=N and
the load generator's `result` line). Rounds in which other processes took a noticeable share
of the CPU during the echo or the mc run are shown apart: the targets are judged on the quiet
rounds when there are any (docs/benchmarks.md, "Signaling load (MC WebSocket)").
"""

import statistics, sys
from collections import defaultdict

# Targets (docs/benchmarks.md, "Signaling load (MC WebSocket)").
RATE_PER_ECHO_MIN = 0.5
DELAY_P99_MS_MAX = 20.0
LOBBY_P99_MS_MAX = 10.0
RSS_KIB_PER_CONN_MAX = 64.0
# A round is quiet when, in its echo and in its mc run, processes other than the benchmark's
# took under this share of the machine's CPU capacity.
QUIET_ELSEWHERE_MAX = 0.05

duration, cores = float(sys.argv[2]), int(sys.argv[3])
capacity_ms = 1000 * cores * duration
runs = defaultdict(dict)  # round -> mode -> {key: value}
for line in open(sys.argv[1]):
    mode, *pairs = line.split()
    fields = dict(p.split("=", 1) for p in pairs)
    runs[fields["round"]][mode] = {k: float(v) for k, v in fields.items() if k != "round"}


def elsewhere(r, mode):
    return r.get(mode, {}).get("elsewhere_ms", capacity_ms) / capacity_ms


quiet = {k: r for k, r in runs.items()
         if max(elsewhere(r, "echo"), elsewhere(r, "mc")) < QUIET_ELSEWHERE_MAX}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def cell(xs, fmt="{:,.1f}"):
    if not xs:
        return "-"
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def table(rounds):
    """Prints the medians of some rounds; returns what the targets are judged on."""
    rs = list(rounds.values())

    def v(mode, key):
        return [r[mode][key] for r in rs if mode in r and key in r[mode]]

    def per_message_us(r, mode, server, rate):
        return 1000 * r[mode][f"{server}_ms"] / (r[mode][rate] * duration)

    def pct_of_capacity(mode, key):
        return [100 * x / capacity_ms for x in v(mode, key)]

    both = [r for r in rs if "mc_ms" in r.get("mc", {}) and "echo_ms" in r.get("echo", {})
            and r["mc"]["processed_per_s"] > 0 and r["echo"]["echoed_per_s"] > 0]
    ratio = [r["mc"]["processed_per_s"] / r["echo"]["echoed_per_s"] for r in both]
    echo_us = [per_message_us(r, "echo", "echo", "echoed_per_s") for r in both]
    mc_us = [per_message_us(r, "mc", "mc", "processed_per_s") for r in both]
    rows = [
        ("echo server: echoed msg/s", cell(v("echo", "echoed_per_s"))),
        ("echo server: echo p99 ms", cell(v("echo", "echo_p99_ms"), "{:.2f}")),
        ("MC: clients sent msg/s", cell(v("mc", "sent_per_s"))),
        ("MC: processed audio_level/s", cell(v("mc", "processed_per_s"))),
        ("MC processed / echo echoed", cell(ratio, "{:.3f}")),
        ("echo server CPU us/message", cell(echo_us, "{:.1f}")),
        ("MC CPU us/message", cell(mc_us, "{:.1f}")),
        ("MC / echo CPU per message", cell([m / e for m, e in zip(mc_us, echo_us)], "{:.2f}")),
        ("machine busy, echo runs, %", cell(pct_of_capacity("echo", "machine_ms"), "{:.0f}")),
        ("machine busy, MC runs, %", cell(pct_of_capacity("mc", "machine_ms"), "{:.0f}")),
        ("others' CPU, echo runs, %", cell(pct_of_capacity("echo", "elsewhere_ms"), "{:.0f}")),
        ("others' CPU, MC runs, %", cell(pct_of_capacity("mc", "elsewhere_ms"), "{:.0f}")),
        ("speaker delay p50 ms", cell(v("mc", "delay_p50_ms"), "{:.2f}")),
        ("speaker delay p99 ms", cell(v("mc", "delay_p99_ms"), "{:.2f}")),
        ("speaker delay max ms", cell(v("mc", "delay_max_ms"), "{:.2f}")),
        ("speaker changes per run", cell(v("mc", "changes"), "{:.0f}")),
        ("active_speaker missing/due",
         f"{sum(v('mc', 'missing')):.0f} / {sum(v('mc', 'expected')):.0f}, "
         f"early {sum(v('mc', 'early')):.0f} (sums)"),
        ("dropped clients",
         f"{sum(v('mc', 'dropped')):.0f} MC, {sum(v('echo', 'dropped')):.0f} echo (sums)"),
        ("echo server RSS KiB per conn.", cell(v("echo", "rss_kib_per_conn"))),
        ("MC RSS KiB per connection", cell(v("mc", "rss_kib_per_conn"))),
        ("lobby admit->admitted p50 ms", cell(v("lobby", "admit_p50_ms"), "{:.2f}")),
        ("lobby admit->admitted p99 ms", cell(v("lobby", "admit_p99_ms"), "{:.2f}")),
        ("lobby REST admit p99 ms", cell(v("lobby", "rest_p99_ms"), "{:.2f}")),
        ("machine busy, lobby runs, %", cell(pct_lobby(rs, "machine_ms"), "{:.0f}")),
        ("others' CPU, lobby runs, %", cell(pct_lobby(rs, "elsewhere_ms"), "{:.0f}")),
        ("lobby failures", f"{sum(v('lobby', 'failed')):.0f} (sum)"),
    ]
    for name, value in rows:
        print(f"  {name:<30} {value}")
    return {
        "ratio": med(ratio),
        "delay": med(v("mc", "delay_p99_ms")),
        "dropped": sum(v("mc", "dropped")),
        "missing": sum(v("mc", "missing")),
        "rss": med(v("mc", "rss_kib_per_conn")),
        "lobby": med(v("lobby", "admit_p99_ms")),
    }


def pct_lobby(rs, key):
    """CPU time of the lobby runs (`machine_ms` or `elsewhere_ms`, which there includes
    PostgreSQL) as a share of the machine's capacity over the admissions' wall time."""
    return [100 * r["lobby"][key] / (1000 * cores * r["lobby"]["wall_s"])
            for r in rs if key in r.get("lobby", {}) and r["lobby"].get("wall_s")]


print(f"all {len(runs)} rounds:")
everything = table(runs)
print()
print(f"quiet rounds ({len(quiet)} of {len(runs)}: others took under "
      f"{100 * QUIET_ELSEWHERE_MAX:.0f} % of the CPU in both the echo and the mc run): "
      f"{', '.join(sorted(quiet)) or 'none'}")
judged = table(quiet) if quiet else everything


def verdict(ok):
    return "met" if ok else "MISSED"


t = judged
print()
print(f"targets ({'quiet rounds' if quiet else 'all rounds, none was quiet'}, medians):")
print(f"  MC rate >= {RATE_PER_ECHO_MIN} x echo: {t['ratio']:.3f} x  "
      f"{verdict(t['ratio'] >= RATE_PER_ECHO_MIN)}")
print(f"  speaker delay p99 <= {DELAY_P99_MS_MAX} ms: {t['delay']:.2f} ms  "
      f"{verdict(t['delay'] <= DELAY_P99_MS_MAX)}")
print(f"  no dropped clients: {t['dropped']:.0f}  {verdict(t['dropped'] == 0)}"
      f"  (active_speaker events missing: {t['missing']:.0f})")
print(f"  RSS <= {RSS_KIB_PER_CONN_MAX:.0f} KiB per connection: {t['rss']:.1f} KiB  "
      f"{verdict(t['rss'] <= RSS_KIB_PER_CONN_MAX)}")
print(f"  lobby round trip p99 <= {LOBBY_P99_MS_MAX:.0f} ms: {t['lobby']:.2f} ms  "
      f"{verdict(t['lobby'] <= LOBBY_P99_MS_MAX)}")
