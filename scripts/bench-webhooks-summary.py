"""Summary of `BENCH_WEBHOOKS=1 scripts/bench-join.sh`: for joins and creates at each client
count, the median throughput without a webhook and with one subscribed to every event type,
the cost of the webhook (median over rounds of each round's own ratio), and how the outbox
kept up: the most deliveries due at once during a run, how long it took to drain after it,
and whether the receiver got every delivered row, once.

Then the work per request, from each run's CPU (/proc: the whole machine, PostgreSQL, GC; with
the webhook, counted until the outbox drained): without a webhook, with one, and (creates)
with the outbox alone (the delivery rows written, nothing sent); and the floor of one
delivery on this machine, bare POSTs of the same body to the same receiver (`floor` records):
what the cheapest delivery there is would cost a create or a join, beside the target.

Usage: python3 scripts/bench-webhooks-summary.py RESULTS.tsv (the script's `hook`, `hookcpu`
and `floor` records).
"""

import statistics
import sys
from collections import defaultdict

# Targets (issue 26, docs/benchmarks.md "Webhooks").
COST_MAX = 0.10  # creates and joins with the webhook cost at most 10 % more
DRAIN_MS_MAX = 5000


def med(values):
    return statistics.median(values) if values else float("nan")


def main(path):
    runs = defaultdict(dict)  # (op, clients) -> round -> {on|off: record}
    # (op, clients) -> round -> {on|off|outbox: (processes, machine, pg, gc) ms per request}
    cpu = defaultdict(dict)
    floor = defaultdict(dict)  # clients -> round -> (processes, machine) ms per POST
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "hookcpu":
            _, op, hook, clients, rnd, requests, machine, pg, gc, procs = f
            n = max(int(requests or 0), 1)
            cpu[(op, int(clients))].setdefault(int(rnd), {})[hook] = tuple(
                float(x or "nan") / n for x in (procs, machine, pg, gc)
            )
            continue
        if f[0] == "floor":
            _, clients, rnd, requests, machine, _statuses, procs = f
            n = max(int(requests or 0), 1)
            floor[int(clients)][int(rnd)] = (float(procs or "nan") / n, float(machine or "nan") / n)
            continue
        if f[0] != "hook":
            continue
        _, op, hook, clients, rnd, tput, p99, statuses, max_due, drain, rows, got, distinct = f
        runs[(op, int(clients))].setdefault(int(rnd), {})[hook] = {
            "tput": float(tput or "nan"),
            "p99": float(p99 or "nan"),
            "statuses": statuses,
            "max_due": max_due,
            "drain": drain,
            "rows": rows,
            "received": got,
            "distinct": distinct,
        }
    ok_all = True
    for (op, clients), rounds in sorted(runs.items()):
        paired = [r for r in rounds.values() if "on" in r and "off" in r]
        off = [r["off"]["tput"] for r in paired]
        on = [r["on"]["tput"] for r in paired]
        costs = [o / w - 1 for o, w in zip(off, on)]
        cost = med(costs)
        print(f"{op}, {clients} clients, {len(paired)} rounds:")
        print(
            f"  without a webhook  {med(off):8.0f}/s  p99 {med([r['off']['p99'] for r in paired]):.1f} ms"
        )
        print(
            f"  with one           {med(on):8.0f}/s  p99 {med([r['on']['p99'] for r in paired]):.1f} ms"
        )
        ok = cost <= COST_MAX
        ok_all &= ok
        print(
            f"  cost of the webhook: {100 * cost:+.1f} % (rounds: "
            + ", ".join(f"{100 * c:+.1f}" for c in costs)
            + f"; target <= {100 * COST_MAX:.0f} %: {'met' if ok else 'MISSED'})"
        )
        for rnd in sorted(rounds):
            r = rounds[rnd].get("on")
            if not r:
                continue
            drained = r["drain"].isdigit() and int(r["drain"]) <= DRAIN_MS_MAX
            once = r["rows"] == r["received"] == r["distinct"]
            ok_all &= drained and once
            print(
                f"  round {rnd}: at most {r['max_due']} due during the run, drained in"
                f" {r['drain']} ms ({'met' if drained else 'MISSED'}: <= {DRAIN_MS_MAX});"
                f" {r['rows']} delivered, {r['received']} received, {r['distinct']} distinct"
                f" ({'each once' if once else 'NOT each once'})"
            )
    print_cpu(cpu, floor)
    print("all webhook targets met" if ok_all else "some webhook target MISSED")


def print_cpu(cpu, floor):
    """CPU per request by condition, what a delivery adds, and the floor's share."""
    if not cpu:
        return
    print()
    print(
        "CPU per request (ms, medians of the rounds): the run's processes (services, PostgreSQL,"
        " Redis, the receiver, the load generator), and the whole machine (others' jobs too)"
    )
    for (op, clients), rounds in sorted(cpu.items()):
        def col(hook, i):
            return med([r[hook][i] for r in rounds.values() if hook in r])

        print(f"{op}, {clients} clients:")
        for hook in ("off", "on", "outbox"):
            if any(hook in r for r in rounds.values()):
                print(
                    f"  {hook:<7} processes {col(hook, 0):.3f}  machine {col(hook, 1):.3f}"
                    f"  PostgreSQL {col(hook, 2):.3f}  GC {col(hook, 3):.3f}"
                )
        paired = [r for r in rounds.values() if "on" in r and "off" in r]
        added = med([r["on"][0] - r["off"][0] for r in paired])
        print(
            f"  a delivery adds {added:.3f} ms of the processes' CPU"
            f" ({100 * added / col('off', 0):+.1f} % of a {op} without)"
        )
        outbox = [r["outbox"][0] - r["off"][0] for r in rounds.values() if "outbox" in r and "off" in r]
        posts = floor.get(clients, {})
        if posts:
            post = med([p for p, _ in posts.values()])
            writes = med(outbox) if outbox else 0.0
            least = post + writes
            print(
                f"  floor: a bare POST to the receiver {post:.3f} ms"
                + (f", the outbox's row {writes:.3f} ms" if outbox else "")
                + f"; the least a delivery can add {least:.3f} ms"
                f" = {100 * least / col('off', 0):+.1f} % of a {op}"
                f" (target {100 * COST_MAX:.0f} %); ours is {added / least:.1f} x the floor"
            )


if __name__ == "__main__":
    main(sys.argv[1])
