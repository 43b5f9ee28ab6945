"""Summary of scripts/bench-join.sh: medians over rounds, the ratios against the baselines
measured in the same rounds, the storm, and the CPU time per join of each process.

Usage: python3 scripts/bench-join-summary.py RESULTS.tsv (the tab-separated lines the script
writes: join, create, pgbench, storm and cpu records), or
       perf report --stdio --no-children --sort dso,sym | python3 ... --profile
(the share of samples by crate, from the demangled symbol names).
"""

import re
import statistics
import sys
from collections import defaultdict

# Targets (docs/benchmarks.md, "Joining a meeting").
JOIN_PER_CREATE_MIN = 1.0
JOIN_PER_PGBENCH_MIN = 0.7
P99_PER_3_PG_MEAN_MAX = 1.0
STORED_SLOWDOWN_MAX = 0.20
STORM_ANSWER_MS_MAX = 1000.0
# Guests (issue 25): a guest-join signs one more token than a member's join.
GUEST_PER_JOIN_MIN = 0.8
MAX_GUESTS_WAITING = 50
# Scale-out (issue 27): the whole machine's CPU per join at most this many times its CPU per
# pgbench transaction of the join's writes, at 16 clients.
JOIN_CPU_PER_PGBENCH_MAX = 1.6

CPU_NAMES = {
    "gc": "GC",
    "ac": "AC",
    "mc": "MC",
    "pg_db": "PostgreSQL, bench DB backends",
    "pg_all": "PostgreSQL, whole server",
    "redis": "Redis",
    "client": "load generator",
    "machine": "machine (all CPUs busy)",
}


def med(values):
    return statistics.median(values) if values else float("nan")


def rng(values, fmt):
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}" if values else "-"


def verdict(ok):
    return "met" if ok else "MISSED"


def main(path):
    runs = defaultdict(list)  # (kind, db, clients) -> [(round, fields...)]
    storms = []
    gstorms = []
    cpu = defaultdict(lambda: defaultdict(list))  # (db, clients) -> name -> [us per join]
    pgcpu = defaultdict(lambda: defaultdict(list))  # the same per pgbench transaction
    warnings = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        kind = f[0]
        if kind == "join":
            _, db, clients, rnd, tput, p99, statuses, flags = f
            exhausted, consistent = flags.split("/")
            runs[(kind, db, int(clients))].append((float(tput), float(p99)))
            clean = all(s.startswith("200: ") for s in statuses.split(", "))
            if not clean or exhausted != "0" or consistent != "1":
                warnings.append(
                    f"join run, round {rnd}, {db}, {clients} clients: {statuses}"
                    + ("; pairs exhausted" if exhausted != "0" else "")
                    + ("; PostgreSQL or Redis disagree with the answers" if consistent != "1" else "")
                )
        elif kind == "create":
            _, db, clients, rnd, tput, p99, statuses, _ = f
            runs[(kind, db, int(clients))].append((float(tput), float(p99)))
            if not (statuses.startswith("201: ") and "," not in statuses):
                warnings.append(f"create run, round {rnd}, {db}, {clients} clients: {statuses}")
        elif kind == "pgbench":
            _, db, clients, rnd, tps, lat, failed, consistent = f
            runs[(kind, db, int(clients))].append((float(tps), float(lat)))
            if failed != "failed: 0" or consistent != "1":
                warnings.append(
                    f"pgbench run, round {rnd}, {db}, {clients} clients: {failed}"
                    + ("; not every transaction opened a visit" if consistent != "1" else "")
                )
        elif kind == "storm":
            _, db, users, rnd, statuses, max_ms, spread_ms, seated, open_visits, audits = f
            counts = dict(s.rsplit(": ", 1) for s in statuses.split(", "))
            storms.append((int(rnd), int(users), counts, float(max_ms), float(spread_ms),
                           int(seated), int(open_visits), int(audits)))
        elif kind == "guest":
            _, db, clients, rnd, tput, p99, statuses, consistent = f
            runs[(kind, db, int(clients))].append((float(tput), float(p99)))
            clean = all(s.startswith("200 waiting: ") for s in statuses.split(", "))
            if not clean or consistent != "1":
                warnings.append(
                    f"guest run, round {rnd}, {db}, {clients} clients: {statuses}"
                    + ("; Redis and PostgreSQL disagree on the guests" if consistent != "1" else "")
                )
        elif kind == "gstorm":
            _, db, guests, rnd, statuses, max_ms, waiting, recorded = f
            counts = dict(s.rsplit(": ", 1) for s in statuses.split(", "))
            gstorms.append((int(rnd), int(guests), counts, float(max_ms), int(waiting),
                            int(recorded)))
        elif kind == "pgcpu":
            _, db, clients, rnd, name, ms, transactions = f
            if ms and int(transactions) > 0:
                pgcpu[(db, int(clients))][name].append(1000.0 * float(ms) / int(transactions))
        elif kind == "cpu":
            _, db, clients, rnd, name, ms, joins = f
            if ms and int(joins) > 0:
                cpu[(db, int(clients))][name].append(1000.0 * float(ms) / int(joins))

    for w in warnings:
        print(f"WARNING: {w}")

    cells = sorted({(db, c) for (kind, db, c) in runs if kind == "join"},
                   key=lambda k: (k[0] != "empty", k[1]))
    print()
    print(f"{'database':8} {'clients':>7} {'join/s':>17} {'join p99 ms':>17} {'create/s':>17} "
          f"{'pgbench tps':>17} {'pg mean ms':>15} {'join/create':>11} {'join/pgbench':>12} "
          f"{'p99/(3*pg mean)':>15}")
    ratios = {}
    for db, c in cells:
        j = runs[("join", db, c)]
        cr = runs[("create", db, c)]
        pg = runs[("pgbench", db, c)]
        jt, jp = [t for t, _ in j], [p for _, p in j]
        ct = [t for t, _ in cr]
        pt, pl = [t for t, _ in pg], [l for _, l in pg]
        r = (med(jt) / med(ct), med(jt) / med(pt), med(jp) / (3 * med(pl)))
        ratios[(db, c)] = r
        print(f"{db:8} {c:>7} {med(jt):>6.0f} ({rng(jt, '{:.0f}'):>9})"
              f" {med(jp):>6.1f} ({rng(jp, '{:.1f}'):>9})"
              f" {med(ct):>6.0f} ({rng(ct, '{:.0f}'):>9})"
              f" {med(pt):>6.0f} ({rng(pt, '{:.0f}'):>9})"
              f" {med(pl):>5.2f} ({rng(pl, '{:.2f}'):>7})"
              f" {r[0]:>11.2f} {r[1]:>12.2f} {r[2]:>15.2f}")

    print()
    print("targets (medians):")
    for (db, c), (per_create, per_pg, p99_ratio) in ratios.items():
        print(f"  {db:6} {c:>3} clients: join/create {per_create:.2f} (>= {JOIN_PER_CREATE_MIN}: "
              f"{verdict(per_create >= JOIN_PER_CREATE_MIN)}), join/pgbench {per_pg:.2f} "
              f"(>= {JOIN_PER_PGBENCH_MIN}: {verdict(per_pg >= JOIN_PER_PGBENCH_MIN)}), "
              f"p99/(3 x pgbench mean) {p99_ratio:.2f} "
              f"(<= {P99_PER_3_PG_MEAN_MAX}: {verdict(p99_ratio <= P99_PER_3_PG_MEAN_MAX)})")
    for c in sorted({c for (_, c) in cells}):
        e, s = runs.get(("join", "empty", c)), runs.get(("join", "stored", c))
        if e and s:
            change = (med([t for t, _ in s]) - med([t for t, _ in e])) / med([t for t, _ in e])
            print(f"  stored meetings, {c} clients: join throughput {100 * change:+.1f} % against "
                  f"the empty database (within {100 * STORED_SLOWDOWN_MAX:.0f} %: "
                  f"{verdict(change >= -STORED_SLOWDOWN_MAX)})")

    guest_cells = sorted({c for (kind, db, c) in runs if kind == "guest" and db == "empty"})
    if guest_cells:
        print()
        print("guests without an account (empty database): guest-join against a member's join")
        for c in guest_cells:
            g, j = runs[("guest", "empty", c)], runs.get(("join", "empty", c), [])
            gt, gp = [t for t, _ in g], [p for _, p in g]
            jt = [t for t, _ in j]
            ratio = med(gt) / med(jt) if jt else float("nan")
            print(f"  {c:>3} clients: guest-join {med(gt):.0f}/s ({rng(gt, '{:.0f}')}), p99 "
                  f"{med(gp):.1f} ms; member join {med(jt):.0f}/s; guest/join {ratio:.2f} "
                  f"(>= {GUEST_PER_JOIN_MIN}: {verdict(ratio >= GUEST_PER_JOIN_MIN)})")
    for rnd, guests, counts, max_ms, waiting, recorded in gstorms:
        admitted = int(counts.get("200 waiting", 0))
        full = int(counts.get("409 LOBBY_FULL", 0))
        other = {k: v for k, v in counts.items() if k not in ("200 waiting", "409 LOBBY_FULL")}
        ok = (admitted == waiting == recorded == MAX_GUESTS_WAITING
              and full == guests - admitted and not other and max_ms <= STORM_ANSWER_MS_MAX)
        print(f"  guest storm, round {rnd}: {admitted} waiting (200), {full} LOBBY_FULL (409)"
              f"{', other: ' + str(other) if other else ''}; slowest answer {max_ms:.0f} ms;"
              f" Redis {waiting} waiting, PostgreSQL {recorded} guests: {verdict(ok)}")

    if storms:
        print()
        print("storm (empty database): one cold room, all joins released together")
        for rnd, users, counts, max_ms, spread_ms, seated, open_visits, audits in storms:
            admitted = int(counts.get("200", 0))
            full = int(counts.get("409 MEETING_FULL", 0))
            other = {k: v for k, v in counts.items() if k not in ("200", "409 MEETING_FULL")}
            ok = (admitted == seated == open_visits == audits and full == users - admitted
                  and not other and max_ms <= STORM_ANSWER_MS_MAX)
            print(f"  round {rnd}: {admitted} admitted (200), {full} MEETING_FULL (409)"
                  f"{', other: ' + str(other) if other else ''}; slowest answer {max_ms:.0f} ms,"
                  f" last answer {spread_ms:.0f} ms after the first send; Redis {seated} seated,"
                  f" PostgreSQL {open_visits} open visits, {audits} admitted audit rows: "
                  f"{verdict(ok)}")

    if cpu:
        print()
        print("CPU per admitted join, microseconds (median of rounds), and share of the"
              " machine's busy time")
        names = [n for n in CPU_NAMES if any(n in per for per in cpu.values())]
        for db, c in sorted(cpu, key=lambda k: (k[0] != "empty", k[1])):
            per = cpu[(db, c)]
            machine = med(per["machine"]) if per["machine"] else None
            print(f"  {db} database, {c} clients:")
            for name in names:
                us = med(per[name])
                share = f"{100 * us / machine:5.1f} %" if machine else ""
                print(f"    {CPU_NAMES[name]:32} {us:8.0f} {share}")
            if machine:
                known = sum(med(per[n]) for n in ("gc", "ac", "mc", "pg_all", "redis", "client"))
                print(f"    {'elsewhere (other processes)':32} {machine - known:8.0f}"
                      f" {100 * (machine - known) / machine:5.1f} %")
            pg = pgcpu.get((db, c))
            if pg:
                print(f"    for comparison, per pgbench transaction of the join's writes:"
                      f" PostgreSQL (whole server) {med(pg['pg_all']):.0f},"
                      f" machine {med(pg['machine']):.0f}")
            if pg and machine and pg["machine"]:
                # Round by round (both lists are in round order), then the median.
                each = [j / p for j, p in zip(per["machine"], pg["machine"])]
                ratio = med(each)
                print(f"    machine CPU per join / per pgbench transaction: {ratio:.2f}"
                      f" (rounds {', '.join(f'{r:.2f}' for r in each)};"
                      f" <= {JOIN_CPU_PER_PGBENCH_MAX}: {verdict(ratio <= JOIN_CPU_PER_PGBENCH_MAX)})")


def profile(lines):
    """Sums `perf report --sort dso,sym` percentages by crate (the first `name::` of a Rust
    symbol), the kernel, or the library the symbol is in."""
    shares = defaultdict(float)
    row = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$")
    for line in lines:
        m = row.match(line)
        if not m:
            continue
        pct, dso, kind, sym = float(m[1]), m[2], m[3], m[4]
        if kind == "k":
            shares["kernel"] += pct
            continue
        crate = re.search(r"([a-z_][a-z0-9_]*)::", sym)
        if crate and not dso.startswith("lib"):
            name = crate[1]
            if name in ("core", "alloc", "std"):
                name = "std (core, alloc)"
            shares[name] += pct
        else:
            shares[dso] += pct
    for name, pct in sorted(shares.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {pct:5.1f} %  {name}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--profile"]:
        profile(sys.stdin)
    else:
        main(sys.argv[1])
