#!/usr/bin/env bash
#
# Benchmark of the admission's SQL alone (docs/benchmarks.md, "The admission in the room's
# order"): pgbench runs, on one database and the same kind of (user, room) pairs, interleaved,
#   floor    the visit and its audit row inserted in one statement, nothing else
#            (crates/gc-service/benches/admission_floor.pgbench.sql): the storage limit;
#   before   the one-statement admission of commit d7940b8, before seats were numbered (read
#            from git: `git show d7940b8:crates/gc-service/benches/join_meeting.pgbench.sql`),
#            on a second database whose open-visit index is unique again, as it was then;
#   after    the admission as GC runs it now, with seat numbers (`db::participants::ADMIT_SQL`,
#            crates/gc-service/benches/join_meeting.pgbench.sql): the meeting's row updated
#            in every admission.
# Every run starts from the same state (the previous run's visits and audit rows deleted and
# vacuumed), one transaction per admission, BENCH_CLIENTS clients, each script with the session
# settings GC ran it with. The summary gives each
# script's median tps and its ratio to the floor of the same round.
#
# Usage: scripts/bench-admission.sh
# Settings: BENCH_DURATION (seconds per run, default 10), BENCH_ROUNDS (3), BENCH_CLIENTS
#           (16), BENCH_ROOMS (500), BENCH_USERS (200), BENCH_KEEP (1: keep the databases
#           for a look afterwards), CARGO_TARGET_DIR (for the dev build of gc-service, which
#           applies the migrations).
#
# It creates and finally drops the databases convene_bench_admission and
# convene_bench_admission_before on the PostgreSQL that scripts/lib.sh finds (or starts).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CLIENTS="${BENCH_CLIENTS:-16}"
ROOMS="${BENCH_ROOMS:-500}"
USERS="${BENCH_USERS:-200}"
BEFORE_COMMIT=d7940b8

ensure_rust_tools
ensure_postgres
convene_have pgbench || convene_apt_install postgresql-client
ADMIN_URL="$TEST_DATABASE_URL"
DATABASES=(convene_bench_admission convene_bench_admission_before)
WORK="$(mktemp -d)"
cleanup() {
  rm -rf "$WORK"
  [ "${BENCH_KEEP:-0}" = 1 ] && return
  for db in "${DATABASES[@]}"; do
    psql -q "$ADMIN_URL" -c "drop database if exists $db" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
db_url() { printf '%s/%s' "${ADMIN_URL%/*}" "$1"; }
git show "$BEFORE_COMMIT:crates/gc-service/benches/join_meeting.pgbench.sql" >"$WORK/before.sql" \
  || convene_die "cannot read the admission of $BEFORE_COMMIT from git (a shallow clone?)"

convene_log "building gc-service (dev profile) to apply the migrations"
cargo build --quiet -p gc-service --bin gc-service
BIN="${CARGO_TARGET_DIR:-$CONVENE_REPO/target}/debug/gc-service"

sql() { psql -qAtX -v ON_ERROR_STOP=1 "$(db_url "$1")" -c "$2"; }

declare -A ORG_ID
for db in "${DATABASES[@]}"; do
  psql -q "$ADMIN_URL" -c "drop database if exists $db" >/dev/null 2>&1
  psql -q "$ADMIN_URL" -c "create database $db" >/dev/null
  DATABASE_URL="$(db_url "$db")" "$BIN" migrate >/dev/null
  ORG_ID[$db]="$(sql "$db" "insert into organizations (slug, name, max_concurrent_meetings,
                                                       max_participants_per_meeting)
                            values ('bench', 'Bench', 100000000, 100000) returning id")"
  sql "$db" "insert into users (org_id, email, password_hash, display_name, roles)
             select '${ORG_ID[$db]}', 'user' || i || '@bench.test', 'unused', 'Bench ' || i,
                    '{user}'
             from generate_series(0, $USERS) as i" >/dev/null
  host="$(sql "$db" "select id from users where email = 'user0@bench.test'")"
  sql "$db" "insert into meetings (org_id, host_id, meeting_code, display_name, status,
                                   max_participants, waiting_room_enabled, join_token_secret,
                                   started_at)
             select '${ORG_ID[$db]}', '$host', 'ad' || lpad(i::text, 10, '0'), 'admission bench',
                    'active', $((USERS + 2)), false,
                    decode(md5(i::text) || md5((i + 7)::text), 'hex'), now()
             from generate_series(1, $ROOMS) as i" >/dev/null
  sql "$db" "insert into participants (meeting_id, user_id, role, seat)
             select id, host_id, 'host', 1 from meetings" >/dev/null
  sql "$db" "create table bench_join_rooms (i int primary key, meeting_id uuid)" >/dev/null
  sql "$db" "create table bench_join_users (i int primary key, user_id uuid)" >/dev/null
  sql "$db" "insert into bench_join_rooms
             select row_number() over (order by meeting_code) - 1, id from meetings" >/dev/null
  sql "$db" "insert into bench_join_users
             select row_number() over (order by email) - 1, id from users where id <> '$host'" \
    >/dev/null
done
# The index the admission of d7940b8 relied on (its `on conflict` names it).
sql convene_bench_admission_before "drop index participants_open_visits" >/dev/null
sql convene_bench_admission_before "create unique index participants_one_open_visit
                                    on participants (meeting_id, user_id)
                                    where left_at is null" >/dev/null

reset_state() { # db
  sql "$1" "delete from participants where role = 'guest'" >/dev/null
  sql "$1" "delete from audit_logs" >/dev/null
  sql "$1" "update meetings set last_seat = 1, empty_since = null, empty_as_of_seat = null" \
    >/dev/null
  psql -qAtX "$(db_url "$1")" -c "vacuum analyze participants" -c "vacuum analyze audit_logs" \
    -c "vacuum analyze meetings" >/dev/null
}

RESULTS="$WORK/results.tsv"
# The session settings GC's connections of these statements had (crates/gc-service/src/db/
# mod.rs, batch_pool): at d7940b8 generic plans; now also the planner held to index nested
# loops. The floor runs with PostgreSQL's defaults.
declare -A SESSION=(
  [floor]=""
  [before]="-c plan_cache_mode=force_generic_plan"
  [after]="-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off"
)
run() { # name db script round
  local out tps visits processed
  reset_state "$2"
  out="$(PGOPTIONS="${SESSION[$1]}" timeout $((DURATION + 60)) \
    pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" \
    -D k=0 -D clients="$CLIENTS" -D rooms="$ROOMS" -D users="$USERS" -D org_id="${ORG_ID[$2]}" \
    -f "$3" "$(db_url "$2")" 2>&1)"
  tps="$(awk '/^tps/ {print $3}' <<<"$out")"
  processed="$(awk '/^number of transactions actually/ {print $NF}' <<<"$out")"
  visits="$(sql "$2" "select count(*) from participants where role = 'guest'")"
  if [ -z "$tps" ] || [ "$visits" != "$processed" ]; then
    convene_die "$1: $visits visits for ${processed:-no} transactions: $out"
  fi
  printf '%s\t%s\t%s\n' "$1" "$4" "$tps" >>"$RESULTS"
  printf '%-7s round %s  %8.0f tps  (%s admissions, each a visit)\n' "$1" "$4" "$tps" "$processed"
}

convene_log "$ROUNDS rounds of floor, before, after: $CLIENTS clients, ${DURATION}s each"
for round in $(seq 1 "$ROUNDS"); do
  run floor convene_bench_admission crates/gc-service/benches/admission_floor.pgbench.sql "$round"
  run before convene_bench_admission_before "$WORK/before.sql" "$round"
  run after convene_bench_admission crates/gc-service/benches/join_meeting.pgbench.sql "$round"
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
by = {}
for name, round_, tps in rows:
    by.setdefault(name, {})[round_] = float(tps)
print("summary (medians over rounds; ratios to the floor of the same round)")
for name in ("floor", "before", "after"):
    tps = statistics.median(by[name].values())
    ratio = statistics.median(by[name][r] / by["floor"][r] for r in by[name])
    print(f"  {name:7s} {tps:8.0f} tps   {ratio:5.2f} x floor")
after_vs_before = statistics.median(by["after"][r] / by["before"][r] for r in by["after"])
print(f"  after / before: {after_vs_before:.2f}")
PY
