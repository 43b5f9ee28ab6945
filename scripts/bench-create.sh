#!/usr/bin/env bash
#
# Benchmark of meeting creation: POST /api/v1/meetings against the release build, by one busy
# org and spread over 100 orgs, next to two pgbench baselines on the same database: the
# handler's own create statement, and a plain meeting + audit insert with no limit check (the
# storage limit); on an empty database and on one holding 100,000 meetings of the busy org.
#
# Disk and CPU speed drift on a shared machine by tens of percent over minutes, so conditions
# are interleaved rather than run one after another: two databases (empty and stored) exist
# side by side, and each round runs, for each client count and each database, GC under load
# and then pgbench, back to back. The summary gives the median of the rounds.
#
# Usage: scripts/bench-create.sh            (per-run lines, then the summary, on stdout)
# Settings: BENCH_DURATION (seconds per run, default 10), BENCH_ROUNDS (3), BENCH_CLIENTS
#           ("16 64"), BENCH_STORED (100000), BENCH_ORGS (100), CARGO_TARGET_DIR (default
#           /var/tmp/convene-release).
#
# It creates and finally drops the databases `convene_bench_empty` and `convene_bench_stored`
# on the PostgreSQL that scripts/lib.sh finds (or starts), and runs AC and GC on loopback
# ports 18082 and 18080 (gRPC 18051). Runs are bounded in time and only ever talk to 127.0.0.1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$CONVENE_REPO"

DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CLIENTS="${BENCH_CLIENTS:-16 64}"
STORED="${BENCH_STORED:-100000}"
ORGS="${BENCH_ORGS:-100}"
: "${CARGO_TARGET_DIR:=/var/tmp/convene-release}"
export CARGO_TARGET_DIR
AC_PORT=18082
GC_PORT=18080
GC_GRPC_PORT=18051
DATABASES=(empty stored)
WORK="$(mktemp -d)"
RESULTS="$WORK/results.tsv"
PIDS=()

drop_databases() {
  for db in "${DATABASES[@]}"; do
    psql -q "$ADMIN_URL" -c "drop database if exists convene_bench_$db with (force)" \
      >/dev/null 2>&1 || true
  done
}

cleanup() {
  # Defined further down; a failure before that (a build error) has nothing to stop.
  if declare -F stop_services >/dev/null; then stop_services; fi
  if [ -n "${ADMIN_URL:-}" ]; then drop_databases; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_rust_tools
ensure_postgres
convene_have pgbench || convene_apt_install postgresql-client
ADMIN_URL="$TEST_DATABASE_URL"
db_url() { printf '%s/convene_bench_%s' "${ADMIN_URL%/*}" "$1"; }

convene_log "building the release binaries (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet --bin ac-service --bin gc-service
cargo bench --quiet -p gc-service --bench create_load --no-run 2>/dev/null
LOAD="$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'create_load-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)"
BIN="$CARGO_TARGET_DIR/release"

# sql DB STATEMENT...: each statement runs as its own command (VACUUM cannot share a
# transaction with others).
sql() {
  local url args=()
  url="$(db_url "$1")"
  shift
  for statement in "$@"; do args+=(-c "$statement"); done
  psql -qAtX -v ON_ERROR_STOP=1 "$url" "${args[@]}"
}

MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AC_MASTER_KEY="$MASTER_KEY" JWT_ISSUER=convene-ac RUST_LOG=warn
# The busy org, and ORGS more with one user each for the spread-out runs.
python3 - "$ORGS" >"$WORK/seed.json" <<'PY'
import json, sys
def org(slug):
    return {"slug": slug, "name": slug, "max_concurrent_meetings": 100000,
            "max_participants_per_meeting": 100,
            "users": [{"email": f"{slug}@bench.test", "password": "bench-password",
                       "display_name": "Bench", "roles": ["user"]}]}
print(json.dumps({
    "service_clients": [{"client_id": "bench-gc", "client_secret": "bench-gc-secret-0001",
                         "service_type": "global-controller",
                         "scopes": ["internal:meeting-token", "internal:mc"]}],
    "orgs": [org("bench")] + [org(f"spread-{i:03}") for i in range(int(sys.argv[1]))]}))
PY

drop_databases
declare -A ORG_ID HOST_ID
for db in "${DATABASES[@]}"; do
  psql -q "$ADMIN_URL" -c "create database convene_bench_$db" >/dev/null
  DATABASE_URL="$(db_url "$db")" "$BIN/ac-service" migrate >/dev/null
  DATABASE_URL="$(db_url "$db")" "$BIN/ac-service" seed --file "$WORK/seed.json" >/dev/null
  # Creates accumulate live meetings during a run; the limit is lifted so runs measure
  # creates, not 403s. The limit check costs the same whatever its value.
  sql "$db" "update organizations set max_concurrent_meetings = 100000000
             where slug = 'bench' or slug like 'spread-%'"
  ORG_ID[$db]="$(sql "$db" "select id from organizations where slug = 'bench'")"
  HOST_ID[$db]="$(sql "$db" "select id from users where email = 'bench@bench.test'")"
done

convene_log "storing $STORED meetings of the bench org in convene_bench_stored (a fifth live)"
sql stored "insert into meetings (org_id, host_id, meeting_code, display_name, status,
                                  max_participants, join_token_secret, created_at, started_at,
                                  ended_at)
     select '${ORG_ID[stored]}', '${HOST_ID[stored]}',
            lpad(to_hex(i), 12, '0'), 'fixture ' || i,
            case when i % 5 = 0 then 'active' else 'ended' end, 100,
            decode(md5(i::text) || md5((i + 1)::text), 'hex'),
            now() - interval '1 day', now() - interval '1 day',
            case when i % 5 = 0 then null else now() - interval '23 hours' end
     from generate_series(1, $STORED) as i" \
  "insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                           details, user_agent)
     select org_id, host_id::text, 'user', 'meeting_created', 'meeting', id::text, '{}',
            'bench-fixture'
     from meetings" "vacuum analyze"

wait_ready() {
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  convene_die "service on port $1 did not become ready (logs in $WORK)"
}

start_services() { # db
  local url
  url="$(db_url "$1")"
  DATABASE_URL="$url" AC_HTTP_ADDR="127.0.0.1:$AC_PORT" AC_OPS_ADDR=127.0.0.1:0 "$BIN/ac-service" serve \
    >>"$WORK/ac.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$AC_PORT"
  DATABASE_URL="$url" GC_HTTP_ADDR="127.0.0.1:$GC_PORT" GC_OPS_ADDR=127.0.0.1:0 AC_URL="http://127.0.0.1:$AC_PORT" \
    GC_PUBLIC_BASE_URL="http://127.0.0.1:$GC_PORT" GC_GRPC_ADDR="127.0.0.1:$GC_GRPC_PORT" \
    GC_CLIENT_ID=bench-gc GC_CLIENT_SECRET=bench-gc-secret-0001 "$BIN/gc-service" serve \
    >>"$WORK/gc.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$GC_PORT"
  TOKEN="$(user_token bench)"
}

user_token() { # org slug
  curl -sf -X POST "http://127.0.0.1:$AC_PORT/api/v1/auth/user/token" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1@bench.test\",\"password\":\"bench-password\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# Tokens of the spread-out orgs' users, one per line (tokens live an hour: made once per run).
spread_tokens() {
  : >"$WORK/spread-tokens"
  for i in $(seq 0 $((ORGS - 1))); do
    user_token "$(printf 'spread-%03d' "$i")" >>"$WORK/spread-tokens"
  done
}

stop_services() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
  PIDS=()
}

# Removes what a run created, so each run starts from the same stored state (deleting live
# meetings gives their slots back through the triggers), then checkpoints so flushing those
# writes is not measured by the next run.
reset_db() { # db
  sql "$1" "delete from audit_logs where user_agent is distinct from 'bench-fixture'" \
    "delete from meetings where display_name in ('load test', 'pgbench', 'pgbench-plain')" \
    "vacuum analyze meetings" "vacuum analyze audit_logs" "vacuum analyze organizations" \
    "vacuum analyze org_meeting_slots" \
    "checkpoint"
}

gc_run() { # db clients one|spread
  local out auth
  start_services "$1"
  if [ "$3" = spread ]; then
    spread_tokens
    auth=(--token-file "$WORK/spread-tokens")
  else
    auth=(--token "$TOKEN")
  fi
  out="$("$LOAD" --url "http://127.0.0.1:$GC_PORT" "${auth[@]}" --concurrency "$2" \
    --duration-secs "$DURATION")"
  out+=$'\n'"items per statement: $(batch_means "http://127.0.0.1:$GC_PORT")"
  stop_services
  echo "--- GC ($3 org), $1 database, $2 clients, ${DURATION}s"
  echo "$out"
  printf '%s\t%s\tgc-%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(awk '/^throughput/ {print $2}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $8}' <<<"$out")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" >>"$RESULTS"
}

pgbench_run() { # db clients same|plain
  local out script=create_meeting.pgbench.sql
  # The plain insert is the storage limit: the org's slots are not consulted.
  if [ "$3" = plain ]; then
    script=create_meeting_plain.pgbench.sql
    sql "$1" "alter table meetings disable trigger meetings_reserve_live_slot"
  fi
  out="$(pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" \
    -D "org_id=${ORG_ID[$1]}" -D "host_id=${HOST_ID[$1]}" \
    -f "crates/gc-service/benches/$script" "$(db_url "$1")" 2>&1 |
    grep -E '^(tps|latency average|number of failed)')"
  if [ "$3" = plain ]; then
    sql "$1" "alter table meetings enable trigger meetings_reserve_live_slot"
  fi
  echo "--- pgbench ($3), $1 database, $2 clients, ${DURATION}s"
  echo "$out"
  printf '%s\t%s\tpgbench-%s\t%s\t%s\tfailed: %s\n' "$1" "$2" "$3" \
    "$(awk '/^tps/ {print $3}' <<<"$out")" \
    "$(awk '/^latency average/ {print $4}' <<<"$out")" \
    "$(awk '/^number of failed/ {print $5}' <<<"$out")" >>"$RESULTS"
}

pg_show() { psql -AtX "$ADMIN_URL" -c "show $1"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "PostgreSQL $(pg_show server_version) fsync=$(pg_show fsync)" \
  "synchronous_commit=$(pg_show synchronous_commit); commit $(git rev-parse --short HEAD)"
for db in "${DATABASES[@]}"; do reset_db "$db"; done
for round in $(seq 1 "$ROUNDS"); do
  for c in $CLIENTS; do
    for db in "${DATABASES[@]}"; do
      echo "=== round $round"
      gc_run "$db" "$c" one
      reset_db "$db"
      pgbench_run "$db" "$c" plain
      reset_db "$db"
      gc_run "$db" "$c" spread
      reset_db "$db"
      pgbench_run "$db" "$c" same
      reset_db "$db"
    done
  done
done

echo
echo "=== summary: median of $ROUNDS rounds (min-max), ${DURATION}s runs"
python3 - "$RESULTS" <<'PY'
import statistics, sys
from collections import defaultdict

# tool -> (throughput, latency ms): p99 for GC, mean for pgbench
runs = defaultdict(list)
for line in open(sys.argv[1]):
    db, clients, tool, tput, lat, outcome = line.rstrip("\n").split("\t")
    runs[(db, int(clients), tool)].append((float(tput), float(lat)))
    clean = outcome == "failed: 0" if tool.startswith("pgbench") else outcome.startswith("201: ") and "," not in outcome
    if not clean:
        print(f"WARNING: {tool} run on {db} with {clients} clients had failures: {outcome}")

def med(values):
    return statistics.median(values)

def cell(values):
    return f"{med(values):.0f} ({min(values):.0f}-{max(values):.0f})"

print(f"{'database':8} {'clients':>7} {'GC one org req/s':>22} {'p99 ms':>7} "
      f"{'GC 100 orgs req/s':>22} {'plain insert tps':>22} {'mean ms':>7} "
      f"{'same SQL tps':>22} {'one/plain':>9} {'p99/(3*mean)':>12}")
for db in ("empty", "stored"):
    for clients in sorted({k[1] for k in runs}):
        one = runs[(db, clients, "gc-one")]
        spread = runs[(db, clients, "gc-spread")]
        plain = runs[(db, clients, "pgbench-plain")]
        same = runs[(db, clients, "pgbench-same")]
        p99 = med([l for _, l in one])
        mean = med([l for _, l in plain])
        print(f"{db:8} {clients:>7} {cell([t for t, _ in one]):>22} {p99:>7.1f} "
              f"{cell([t for t, _ in spread]):>22} {cell([t for t, _ in plain]):>22} {mean:>7.2f} "
              f"{cell([t for t, _ in same]):>22} "
              f"{med([t for t, _ in one]) / med([t for t, _ in plain]):>9.2f} "
              f"{p99 / (3 * mean):>12.2f}")
for clients in sorted({k[1] for k in runs}):
    e = med([t for t, _ in runs[("empty", clients, "gc-one")]])
    s = med([t for t, _ in runs[("stored", clients, "gc-one")]])
    print(f"GC (one org) with the stored meetings at {clients} clients: {100 * (s - e) / e:+.1f} % "
          f"throughput against the empty database")
PY
