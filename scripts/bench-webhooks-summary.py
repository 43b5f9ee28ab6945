"""Summary of `BENCH_WEBHOOKS=1 scripts/bench-join.sh`: for joins and creates at each client
count, the median throughput without a webhook and with one subscribed to every event type,
the cost of the webhook (median over rounds of each round's own ratio), and how the outbox
kept up: the most deliveries due at once during a run, how long it took to drain after it,
and whether the receiver got every delivered row, once.

Usage: python3 scripts/bench-webhooks-summary.py RESULTS.tsv (the script's `hook` records).
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
    for line in open(path):
        f = line.rstrip("\n").split("\t")
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
    print("all webhook targets met" if ok_all else "some webhook target MISSED")


if __name__ == "__main__":
    main(sys.argv[1])
