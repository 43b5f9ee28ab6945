#!/usr/bin/env python3
"""Convene's capacity model (docs/capacity.md, "The model"): from the measured inputs in
docs/capacity/inputs.json and the scenario below, the CPU, memory and replicas each part needs
at each stage on the way to 1,000,000 people in meetings, and what saturates first.

Usage:
  scripts/capacity-model.py            print the model's tables (Markdown)
  scripts/capacity-model.py --check    fail when docs/capacity.md's generated block differs
                                       from what the inputs give now (scripts/check-ops.sh)
  scripts/capacity-model.py --write    rewrite that block in docs/capacity.md

Only the standard library; the arithmetic is in this file, in the open, so that a reader can
follow each figure back to an input.
"""

import json
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INPUTS = ROOT / "docs" / "capacity" / "inputs.json"
DOC = ROOT / "docs" / "capacity.md"
BEGIN = "<!-- capacity-model:begin (scripts/capacity-model.py --write) -->"
END = "<!-- capacity-model:end -->"

# The scenario: issue 27's, and the assumptions it leaves open (each one named in the doc).
SCENARIO = {
    "participants": 1_000_000,
    "meetings": 100_000,
    # Meetings created in the minute at the top of the hour.
    "burst_creates": 50_000,
    "burst_seconds": 60,
    # Assumption: the burst's people join within two minutes of the hour.
    "burst_join_seconds": 120,
    # The clients send audio_level at 20 Hz (DESIGN allows every 20-100 ms).
    "audio_hz": 20,
    # A replica is sized to run at 60 % of its cores at the peak it must carry, so that the
    # loss of one (or a zone's share) still leaves room.
    "target_utilisation": 0.6,
    # Mean meeting length, for meetings (and rows) an hour in the steady state: the assignment
    # simulation's log-normal (median 35 min, sigma 0.6; docs/capacity.md).
    "mean_meeting_minutes": 41.9,
    # Assumption, the upper bound: everyone joining at the top of the hour first signs in with
    # their password (an access token lives an hour, AC's default), one sign-in per join.
    "sign_ins_per_join": 1.0,
}

# Stages: a fraction of the full scenario, everything scaled with it.
STAGES = [0.001, 0.01, 0.1, 1.0]

# What one replica of each part is, for counting replicas (production's Kubernetes overlay
# requests are smaller; these are the sizes the model proposes).
REPLICA = {
    "gc": {"cores": 2},
    "ac": {"cores": 2},
    "mc": {"cores": 4, "sockets": 10_000},  # WS_MAX_CONNECTIONS' default
    # One PostgreSQL primary; a larger machine is the first answer, partitioning and read
    # replicas the next (the doc's PostgreSQL section).
    "postgres": {"cores": 16},
}
MINIMUM_REPLICAS = {"gc": 2, "ac": 2, "mc": 2}


def load_inputs():
    data = json.loads(INPUTS.read_text())
    return {name: entry["value"] for name, entry in data["measured"].items()}, data


def peak_rates(scale):
    s = SCENARIO
    creates = s["burst_creates"] * scale / s["burst_seconds"]
    people_per_meeting = s["participants"] / s["meetings"]
    joins = s["burst_creates"] * scale * people_per_meeting / s["burst_join_seconds"]
    # Every new meeting's first join settles once.
    settles = creates
    messages = s["participants"] * scale * s["audio_hz"]
    return {
        "creates": creates,
        "joins": joins,
        "settles": settles,
        "messages": messages,
        "people": s["participants"] * scale,
    }


def cores(inputs, rates):
    """Cores each part spends at the top of the hour: the joins', creates' and sign-ins'
    measured CPU per operation, and the meetings' own (sockets, levels, the room in Redis) per audio message or
    per participant from the day-in-the-life run, whichever is dearer for MC."""
    join, create = inputs["join_cpu_us"], inputs["create_cpu_us"]
    day = inputs["day_cpu_us_per_message"]
    per_message_mc = max(inputs["mc_cpu_us_per_message"], day["mc"])
    us = {
        "gc": rates["creates"] * create["gc"] + rates["joins"] * join["gc"],
        "ac": rates["joins"] * join["ac"]
        + rates["joins"] * SCENARIO["sign_ins_per_join"] * inputs["ac_cpu_us_per_sign_in"],
        "mc": rates["joins"] * join["mc"] + rates["messages"] * per_message_mc,
        "front": rates["messages"] * day["front"],
        "postgres": rates["creates"] * create["postgres"]
        + rates["joins"] * join["postgres"]
        + rates["settles"] * inputs["settle_us"],
        "redis": rates["joins"] * join["redis"]
        + rates["people"] * inputs["day_redis_cpu_s_per_participant_hour"] / 3600 * 1e6,
    }
    return {part: value / 1e6 for part, value in us.items()}


def replicas(part, need_cores, people):
    size = REPLICA[part]
    by_cpu = math.ceil(need_cores / (size["cores"] * SCENARIO["target_utilisation"]))
    by_sockets = math.ceil(people / size["sockets"]) if "sockets" in size else 0
    return max(by_cpu, by_sockets, MINIMUM_REPLICAS.get(part, 1))


def fmt(value, digits=1):
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def render(inputs, raw):
    lines = []
    out = lines.append
    s = SCENARIO
    out(
        f"Scenario: {s['participants']:,} people in {s['meetings']:,} meetings; at the top of "
        f"the hour {s['burst_creates']:,} meetings created in {s['burst_seconds']} s and their "
        f"people joining within {s['burst_join_seconds']} s (an assumption), "
        f"{s['sign_ins_per_join']:g} password sign-in per join (an assumption, the upper bound: "
        f"everyone signs in first, an access token living an hour); `audio_level` at "
        f"{s['audio_hz']} Hz from everyone; replicas sized to {s['target_utilisation']:.0%} of "
        f"their cores at that peak. A stage is a fraction of the whole, every rate scaled."
    )
    out("")
    out(
        "| stage: people (meetings) | creates/s | joins/s | audio msg/s | GC cores | AC cores "
        "| MC cores | front (proxy) cores | PostgreSQL cores | Redis cores | MC memory GiB |"
    )
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for scale in STAGES:
        rates = peak_rates(scale)
        need = cores(inputs, rates)
        memory_gib = rates["people"] * inputs["mc_kib_per_socket"] / 1024 / 1024
        rows.append((scale, rates, need, memory_gib))
        out(
            f"| {rates['people']:,.0f} ({s['meetings'] * scale:,.0f}) | {fmt(rates['creates'])} "
            f"| {fmt(rates['joins'])} | {rates['messages']:,.0f} | {fmt(need['gc'], 2)} "
            f"| {fmt(need['ac'], 2)} | {fmt(need['mc'], 2)} | {fmt(need['front'], 2)} "
            f"| {fmt(need['postgres'], 2)} | {fmt(need['redis'], 2)} | {fmt(memory_gib, 2)} |"
        )
    out("")
    out(
        "Replicas (GC and AC of "
        f"{REPLICA['gc']['cores']} cores, MC of {REPLICA['mc']['cores']} cores and at most "
        f"{REPLICA['mc']['sockets']:,} sockets, at least 2 of each), and what bounds each "
        "count:"
    )
    out("")
    out(
        "| stage: people | GC | AC | MC | MC count set by | PostgreSQL: share of one "
        f"{REPLICA['postgres']['cores']}-core primary |"
    )
    out("|---|---|---|---|---|---|")
    for _scale, rates, need, _memory in rows:
        people = rates["people"]
        mc_size = REPLICA["mc"]
        mc_cpu = math.ceil(need["mc"] / (mc_size["cores"] * s["target_utilisation"]))
        mc_sockets = math.ceil(people / mc_size["sockets"])
        pg_share = need["postgres"] / (REPLICA["postgres"]["cores"] * s["target_utilisation"])
        bound = (
            f"CPU ({mc_cpu} for the audio levels; {mc_sockets} for the sockets)"
            if mc_cpu >= mc_sockets
            else f"sockets ({mc_sockets}; {mc_cpu} for the CPU)"
        )
        out(
            f"| {people:,.0f} | {replicas('gc', need['gc'], people)} "
            f"| {replicas('ac', need['ac'], people)} | {replicas('mc', need['mc'], people)} "
            f"| {bound} | {pg_share:.0%} |"
        )
    out("")
    full = rows[-1]
    per_message = max(inputs["mc_cpu_us_per_message"], inputs["day_cpu_us_per_message"]["mc"])
    per_person_core_ms = per_message * s["audio_hz"] / 1000
    levels = full[2]["mc"] + full[2]["front"]
    out(
        f"At the full scale MC and the front carrying the audio levels are "
        f"{levels / sum(full[2].values()):.0%} of all the CPU above; MC alone spends "
        f"{per_person_core_ms:.3f} core-ms a second per person ({per_message} µs a message × "
        f"{s['audio_hz']} Hz), {per_person_core_ms * 3.6:.2f} core-seconds per "
        f"participant-hour."
    )
    rows_per_meeting = inputs["day_postgres_rows_per_meeting"]
    meetings_per_hour = s["meetings"] / (s["mean_meeting_minutes"] / 60)
    inserted_per_hour = meetings_per_hour * rows_per_meeting["inserted"]
    out("")
    out(
        f"PostgreSQL in the steady state at the full scale: {meetings_per_hour:,.0f} meetings "
        f"an hour ({s['meetings']:,} at once, {s['mean_meeting_minutes']} min on average), "
        f"each inserting {rows_per_meeting['inserted']} rows and updating "
        f"{rows_per_meeting['updated']} (the day-in-the-life run's meetings, 12.5 joins each "
        f"with the returns, for the scenario's {s['participants'] // s['meetings']} people): "
        f"{inserted_per_hour / 1e6:.1f} million rows inserted an hour, "
        f"{inserted_per_hour * 24 / 1e6:,.0f} million a day if every hour were like it."
    )
    out("")
    out("Inputs (docs/capacity/inputs.json):")
    out("")
    for name, entry in raw["measured"].items():
        value = entry["value"]
        shown = (
            ", ".join(f"{k} {v}" for k, v in value.items())
            if isinstance(value, dict)
            else str(value)
        )
        out(f"- `{name}` = {shown} ({entry['unit']}). Source: {entry['source']}.")
    out("")
    out("Not measured yet, so not in the tables:")
    out("")
    for name, what in raw["not_measured"].items():
        out(f"- `{name}`: {what}.")
    return "\n".join(lines) + "\n"


def block(text):
    return f"{BEGIN}\n{text}{END}"


def main(argv):
    inputs, raw = load_inputs()
    text = render(inputs, raw)
    if len(argv) == 1:
        sys.stdout.write(text)
        return 0
    doc = DOC.read_text()
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        print(f"{DOC}: the markers {BEGIN!r} … {END!r} are missing", file=sys.stderr)
        return 1
    current = doc[start : end + len(END)]
    if argv[1] == "--check":
        if current != block(text):
            print(
                f"{DOC.relative_to(ROOT)}: the capacity model's tables are not what "
                f"{INPUTS.relative_to(ROOT)} gives: run scripts/capacity-model.py --write",
                file=sys.stderr,
            )
            return 1
        print("capacity model: docs/capacity.md matches its inputs")
        return 0
    if argv[1] == "--write":
        DOC.write_text(doc[:start] + block(text) + doc[end + len(END) :])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
