#!/usr/bin/env bash
#
# Benchmark of meeting creation (issue 3): POST /api/v1/meetings against the release build,
# next to pgbench running the same SQL statement on the same database, on an empty database
# and with 100,000 meetings of the same org already stored (live and ended).
#
# Usage: scripts/bench-create.sh            (results on stdout; see docs/benchmarks.md)
# Settings: BENCH_DURATION (seconds per run, default 20), BENCH_CLIENTS ("16 64"),
#           BENCH_STORED (100000), CARGO_TARGET_DIR (default /var/tmp/convene-release).
#
# It creates and finally drops the database `convene_bench` on the PostgreSQL that
# scripts/lib.sh finds (or starts), and runs AC and GC on free loopback ports. Runs are bounded
# in time and only ever talk to 127.0.0.1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

DURATION="${BENCH_DURATION:-20}"
CLIENTS="${BENCH_CLIENTS:-16 64}"
STORED="${BENCH_STORED:-100000}"
: "${CARGO_TARGET_DIR:=/var/tmp/convene-release}"
export CARGO_TARGET_DIR
AC_PORT=18082
GC_PORT=18080
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${ADMIN_URL:-}" ]; then
    psql -q "$ADMIN_URL" -c 'drop database if exists convene_bench with (force)' >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_rust_tools
ensure_postgres
convene_have pgbench || convene_apt_install postgresql-client
ADMIN_URL="$TEST_DATABASE_URL"
DB_URL="${ADMIN_URL%/*}/convene_bench"

convene_log "building the release binaries (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet --bin ac-service --bin gc-service
cargo bench --quiet -p gc-service --bench create_load --no-run 2>/dev/null
LOAD="$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'create_load-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)"
BIN="$CARGO_TARGET_DIR/release"

# Each argument is run as its own command (VACUUM cannot share a transaction with others).
sql() {
  local args=()
  for statement in "$@"; do args+=(-c "$statement"); done
  psql -qAtX -v ON_ERROR_STOP=1 "$DB_URL" "${args[@]}"
}

psql -q "$ADMIN_URL" -c 'drop database if exists convene_bench with (force)' >/dev/null
psql -q "$ADMIN_URL" -c 'create database convene_bench' >/dev/null
MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export DATABASE_URL="$DB_URL" AC_MASTER_KEY="$MASTER_KEY" JWT_ISSUER=convene-ac RUST_LOG=warn
"$BIN/ac-service" migrate >/dev/null
cat >"$WORK/seed.json" <<'JSON'
{"orgs": [{"slug": "bench", "name": "Bench Org", "max_concurrent_meetings": 100000,
  "max_participants_per_meeting": 100,
  "users": [{"email": "bench@bench.test", "password": "bench-password", "display_name": "Bench",
             "roles": ["user"]}]}]}
JSON
"$BIN/ac-service" seed --file "$WORK/seed.json" >/dev/null
# Creates accumulate live meetings during a run; the limit is lifted so runs measure creates,
# not 403s. The limit check itself costs the same whatever its value.
sql "update organizations set max_concurrent_meetings = 100000000 where slug = 'bench'"
ORG_ID="$(sql "select id from organizations where slug = 'bench'")"
HOST_ID="$(sql "select id from users where email = 'bench@bench.test'")"

start_services() {
  AC_HTTP_ADDR="127.0.0.1:$AC_PORT" "$BIN/ac-service" serve >"$WORK/ac.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$AC_PORT"
  GC_HTTP_ADDR="127.0.0.1:$GC_PORT" AC_URL="http://127.0.0.1:$AC_PORT" \
    GC_PUBLIC_BASE_URL="http://127.0.0.1:$GC_PORT" "$BIN/gc-service" serve >"$WORK/gc.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$GC_PORT"
  TOKEN="$(curl -sf -X POST "http://127.0.0.1:$AC_PORT/api/v1/auth/user/token" \
    -H 'Content-Type: application/json' \
    -d '{"email":"bench@bench.test","password":"bench-password"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
}

stop_services() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

wait_ready() {
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  convene_die "service on port $1 did not become ready (logs in $WORK)"
}

# Removes what a run created, so each run starts from the same stored state. Deleting live
# meetings gives their slots back through the triggers.
reset_runs() {
  sql "delete from audit_logs where user_agent is distinct from 'bench-fixture'" \
    "delete from meetings where display_name in ('load test', 'pgbench')" \
    "vacuum analyze meetings" "vacuum analyze audit_logs" "vacuum analyze organizations"
}

# A checkpoint before each run, so flushing the previous step's writes is not measured.
checkpoint() { psql -qAtX "$ADMIN_URL" -c checkpoint; }

load_run() { # clients
  checkpoint
  "$LOAD" --url "http://127.0.0.1:$GC_PORT" --token "$TOKEN" --concurrency "$1" \
    --duration-secs "$DURATION"
}

pgbench_run() { # clients
  checkpoint
  pgbench -n -M prepared -c "$1" -j 2 -T "$DURATION" -D "org_id=$ORG_ID" -D "host_id=$HOST_ID" \
    -f crates/gc-service/benches/create_meeting.pgbench.sql "$DB_URL" 2>&1 |
    grep -E '^(tps|latency average|number of failed)'
}

phase() { # label
  echo "=== $1: $(sql "select count(*) from meetings") meetings stored," \
    "$(sql "select live_meeting_count from organizations where slug = 'bench'") live"
  start_services
  for c in $CLIENTS; do
    echo "--- GC, $c clients, ${DURATION}s"
    load_run "$c"
    reset_runs
  done
  stop_services
  for c in $CLIENTS; do
    echo "--- pgbench (same SQL), $c clients, ${DURATION}s"
    pgbench_run "$c"
    reset_runs
  done
}

pg_show() { psql -AtX "$DB_URL" -c "show $1"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "PostgreSQL $(pg_show server_version) fsync=$(pg_show fsync)" \
  "synchronous_commit=$(pg_show synchronous_commit)"
phase "empty database"

convene_log "storing $STORED meetings of the bench org (a fifth live, the rest ended)"
sql "insert into meetings (org_id, host_id, meeting_code, display_name, status, max_participants,
                           join_token_secret, created_at, started_at, ended_at)
     select '$ORG_ID', '$HOST_ID',
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
phase "$STORED meetings stored"
