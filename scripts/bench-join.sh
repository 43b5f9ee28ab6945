#!/usr/bin/env bash
#
# Benchmark of joining a meeting: POST /api/v1/meetings/{code}/join against the release build
# with the real AC, GC and MC, PostgreSQL and Redis, all on this machine (docs/benchmarks.md,
# "Joining a meeting").
#
# Each round runs, for each client count and for each of two databases (empty, and one holding
# BENCH_STORED meetings of the bench org, a fifth live), back to back:
#   join     steady joins for BENCH_DURATION s: every request seats a new (user, room) pair in
#            rooms created and warmed (assigned, active, the host seated) beforehand; the CPU
#            time of every process is read from /proc around it;
#   create   the create benchmark's load (create_load) at the same client count;
#   pgbench  the join's own SQL writes, one join per transaction, as GC runs them when idle
#            (crates/gc-service/benches/join_meeting.pgbench.sql), on distinct rows: the
#            storage limit of a join committed on its own (a busy GC shares transactions
#            between joins, db::admissions);
#   guests   (empty database only) steady guest-joins (people without an account, DESIGN §12)
#            for BENCH_DURATION s over rooms that take guests, each request a new guest: AC
#            signs a guest token and a meeting token, the guest waits in a lobby;
# then, on the empty database, a storm: BENCH_STORM_USERS users join one cold room of
# BENCH_STORM_SEATS seats at the same instant; and a guest storm: BENCH_GUEST_STORM guests,
# each from its own loopback address, ask to join one room at once (MAX_GUESTS_WAITING wait). Conditions are interleaved and the summary gives
# medians over the rounds, because this machine's disk and CPU drift by 2-3x between days
# (docs/benchmarks.md, "Why interleaved"); ratios are taken within the same run.
#
# With BENCH_WEBHOOKS=1 it measures webhooks instead (DESIGN §13, docs/benchmarks.md,
# "Webhooks"): on the empty database only, each round runs join and create twice per client
# count, without a webhook and with one subscribed to every event type (in alternating order
# from round to round), GC holding a webhook key both times; the webhook points at a receiver
# on loopback that answers 204 at once (join_load webhook-sink, port 18190). During a run with
# the webhook the outbox's due deliveries are sampled every 0.5 s; after it, how long the
# outbox takes to drain, and whether the receiver got every delivery once. Each run's CPU is
# read from /proc (with the webhook, until the outbox drained). Then, each round, a create run
# with the outbox alone (the webhook subscribed, GC without its key: the rows are written,
# nothing is sent), and the floor of a delivery: bare POSTs of the same body to the same
# receiver (join_load post-load), with the machine's CPU per request.
#
# Usage: scripts/bench-join.sh            (per-run lines, then the summary, on stdout)
# Settings: BENCH_DURATION (seconds per run, default 10), BENCH_ROUNDS (3), BENCH_CLIENTS
#           ("16 64"), BENCH_STORED (100000), BENCH_USERS (200 users in the pool),
#           BENCH_ROOMS (rooms per run, default 50 per second of run, at least 100),
#           BENCH_STORM_USERS (500), BENCH_STORM_SEATS (100),
#           BENCH_PROFILE (1: after the rounds, one more 16-client join run on the empty database
#           under `perf record`, not counted in the results, and GC's, AC's and MC's CPU samples
#           by crate), BENCH_QUIET_WAIT (with BENCH_WEBHOOKS=1, each measured run first
#           waits at most this many seconds, 300, for the machine to be under 10 % busy),
#           CARGO_TARGET_DIR (default /var/tmp/convene-release).
#
# It creates and finally drops the databases convene_benchjoin_empty and
# convene_benchjoin_stored on the PostgreSQL that scripts/lib.sh finds (or starts); MC keeps
# its rooms in a Redis database number that was empty when the script claimed it (MC has no
# key prefix), and only the room keys there are deleted, between runs and at the end. AC, GC
# and MC run on loopback ports 18182, 18180 (gRPC 18151) and 18181 (gRPC 18152). Every run is
# bounded in time and only ever talks to 127.0.0.1.
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
USERS="${BENCH_USERS:-200}"
ROOMS="${BENCH_ROOMS:-$((DURATION * 50 > 100 ? DURATION * 50 : 100))}"
STORM_USERS="${BENCH_STORM_USERS:-500}"
STORM_SEATS="${BENCH_STORM_SEATS:-100}"
GUEST_STORM="${BENCH_GUEST_STORM:-500}"
POOL=$((USERS > STORM_USERS ? USERS : STORM_USERS))
: "${CARGO_TARGET_DIR:=/var/tmp/convene-release}"
export CARGO_TARGET_DIR
AC_PORT=18182
GC_PORT=18180
GC_GRPC_PORT=18151
MC_PORT=18181
MC_GRPC_PORT=18152
GC_URL="http://127.0.0.1:$GC_PORT"
DATABASES=(empty stored)
WEBHOOKS="${BENCH_WEBHOOKS:-0}"
SINK_ADDR=127.0.0.1:18190
if [ "$WEBHOOKS" = 1 ]; then
  DATABASES=(empty)
  GC_WEBHOOK_KEY="$(head -c 32 /dev/urandom | base64)"
  export GC_WEBHOOK_KEY WEBHOOK_ALLOW_PRIVATE_TARGETS=true
fi
PASSWORD="bench-password"
WORK="$(mktemp -d)"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
PIDS=()
REDIS_DB=""
CLAIM_KEY="convene:bench-join:claim"

drop_databases() {
  for db in "${DATABASES[@]}"; do
    psql -q "$ADMIN_URL" -c "drop database if exists convene_benchjoin_$db with (force)" \
      >/dev/null 2>&1 || true
  done
}


cleanup() {
  # Defined further down; a failure before that (a build error) has nothing to stop.
  if declare -F stop_services >/dev/null; then stop_services; fi
  if [ -n "${PIDS_SINK:-}" ]; then kill "$PIDS_SINK" 2>/dev/null || true; fi
  if [ -n "${ADMIN_URL:-}" ]; then drop_databases; fi
  if [ -n "$REDIS_DB" ]; then
    drop_room_keys || true
    redis_bench del "$CLAIM_KEY" >/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_rust_tools
ensure_postgres
ensure_redis
convene_have pgbench || convene_apt_install postgresql-client
convene_have redis-cli || convene_apt_install redis-tools
ADMIN_URL="$TEST_DATABASE_URL"
REDIS_BASE="${REDIS_URL%/}"
db_url() { printf '%s/convene_benchjoin_%s' "${ADMIN_URL%/*}" "$1"; }
# What GC's connections of the join's statements set (crates/gc-service/src/db/mod.rs,
# batch_pool): pgbench runs the join's writes with the same plans.
GC_BATCH_SESSION="-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off"

claim_redis_db "$CLAIM_KEY"

convene_log "building the release binaries (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet --bin ac-service --bin gc-service --bin mc-service
cargo bench --quiet -p gc-service --bench create_load --bench join_load --no-run 2>/dev/null
CREATE_LOAD="$(newest create_load)"
JOIN_LOAD="$(newest join_load)"
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

bench_environment "$WORK/seed.json"

drop_databases
declare -A ORG_ID HOST_ID
for db in "${DATABASES[@]}"; do
  psql -q "$ADMIN_URL" -c "create database convene_benchjoin_$db" >/dev/null
  DATABASE_URL="$(db_url "$db")" "$BIN/ac-service" migrate >/dev/null
  DATABASE_URL="$(db_url "$db")" "$BIN/ac-service" seed --file "$WORK/seed.json" >/dev/null
  # Runs accumulate live meetings, and steady rooms seat the host and every pool user: both
  # limits are lifted so runs measure joins, not refusals.
  sql "$db" "update organizations set max_concurrent_meetings = 100000000,
                                      max_participants_per_meeting = 100000
             where slug = 'bench'"
  ORG_ID[$db]="$(sql "$db" "select id from organizations where slug = 'bench'")"
  HOST_ID[$db]="$(sql "$db" "select id from users where email = 'bench@bench.test'")"
  # The pool: users 1.. copy user 0's row, password hash included (one Argon2 hash for all).
  sql "$db" "insert into users (org_id, email, password_hash, display_name, roles)
             select org_id, 'bench-u' || i || '@bench.test', password_hash,
                    'Bench User ' || i, roles
             from users, generate_series(1, $POOL - 1) as i
             where email = 'bench-u0@bench.test'" \
    "create table bench_join_users (i int primary key, user_id uuid not null)" \
    "insert into bench_join_users
       select substring(email from 'bench-u([0-9]+)@')::int, id from users
       where email like 'bench-u%' and substring(email from 'bench-u([0-9]+)@')::int < $USERS" \
    "create table bench_join_rooms (i int primary key, meeting_id uuid not null)"
done

if [ "$WEBHOOKS" = 1 ]; then
  # The host manages the org's webhook.
  sql empty "update users set roles = array['user', 'org_admin'] where email = 'bench@bench.test'"
else
convene_log "storing $STORED meetings of the bench org in convene_benchjoin_stored (a fifth live)"
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
  "insert into participants (meeting_id, user_id, role, joined_at, left_at, leave_reason)
     select id, host_id, 'host', started_at, ended_at,
            case when ended_at is null then null else 'meeting_ended' end
     from meetings where display_name like 'fixture %'" \
  "insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                           details, user_agent)
     select org_id, host_id::text, 'user', 'meeting_created', 'meeting', id::text, '{}',
            'bench-fixture'
     from meetings" "vacuum analyze"
fi


# start_services DB [ac|gc|mc]...: starts the named services against DB, in that order.
declare -A PID_OF
start_services() {
  local url db="$1" gc_env=()
  # GC_NO_DELIVERY=1: GC without its webhook key, so it delivers nothing (the outbox still
  # fills: the rows are written by the changes' own statements).
  if [ "${GC_NO_DELIVERY:-0}" = 1 ]; then gc_env=(-u GC_WEBHOOK_KEY); fi
  url="$(db_url "$db")"
  shift
  for svc in "$@"; do
    case "$svc" in
      ac)
        DATABASE_URL="$url" AC_HTTP_ADDR="127.0.0.1:$AC_PORT" AC_OPS_ADDR=127.0.0.1:0 "$BIN/ac-service" serve \
          >>"$WORK/ac.log" 2>&1 &
        ;;
      gc)
        DATABASE_URL="$url" GC_HTTP_ADDR="127.0.0.1:$GC_PORT" GC_OPS_ADDR=127.0.0.1:0 AC_URL="http://127.0.0.1:$AC_PORT" \
          GC_PUBLIC_BASE_URL="$GC_URL" GC_GRPC_ADDR="127.0.0.1:$GC_GRPC_PORT" \
          GC_GUEST_JOIN_BURST=1000000 \
          GC_CLIENT_ID=bench-gc GC_CLIENT_SECRET=bench-gc-secret-0001 \
          env "${gc_env[@]}" "$BIN/gc-service" serve \
          >>"$WORK/gc.log" 2>&1 &
        ;;
      mc)
        REDIS_URL="$REDIS_BASE/$REDIS_DB" MC_HTTP_ADDR="127.0.0.1:$MC_PORT" MC_OPS_ADDR=127.0.0.1:0 \
          MC_GRPC_ADDR="127.0.0.1:$MC_GRPC_PORT" GC_GRPC_URL="http://127.0.0.1:$GC_GRPC_PORT" \
          AC_URL="http://127.0.0.1:$AC_PORT" MC_CLIENT_ID=bench-mc \
          MC_CLIENT_SECRET=bench-mc-secret-0001 MC_CAPACITY=1000000 "$BIN/mc-service" \
          >>"$WORK/mc.log" 2>&1 &
        ;;
    esac
    PIDS+=($!)
    PID_OF[$svc]=$!
    case "$svc" in
      ac) wait_ready "$AC_PORT" ;;
      gc) wait_ready "$GC_PORT" ;;
      mc)
        wait_ready "$MC_PORT"
        # Joins need MC registered with GC (the registry was emptied by the reset).
        for _ in $(seq 1 100); do
          [ "$(sql "$db" "select count(*) from meeting_controllers where id = 'bench-mc'")" = 1 ] \
            && break
          sleep 0.1
        done
        ;;
    esac
  done
}

stop_services() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
  PID_OF=()
}

# Removes what a run created, so each run starts from the same stored state (deleting live
# meetings gives their slots back through the triggers, and cascades to visits and
# assignments), forgets the controller (so MC's next registration is the one awaited), drops
# the room keys, and checkpoints so flushing those writes is not measured by the next run.
reset_db() { # db
  sql "$1" "delete from meetings
            where display_name in ('load test', 'join bench', 'join storm', 'pgbench join',
                                   'guest storm')" \
    "delete from audit_logs where user_agent is distinct from 'bench-fixture'" \
    "delete from meeting_controllers" "truncate bench_join_rooms" "delete from webhooks" \
    "delete from webhook_deliveries" "vacuum analyze webhook_deliveries" \
    "vacuum analyze meetings" "vacuum analyze participants" "vacuum analyze audit_logs" \
    "vacuum analyze organizations" "vacuum analyze meeting_assignments" \
    "vacuum analyze meeting_controllers" "checkpoint"
  drop_room_keys
}

declare -A TOKENS_AT
sign_in() { # db: user tokens of the pool and of the host, good for an hour
  start_services "$1" ac
  timeout 900 "$JOIN_LOAD" sign-in --ac-url "http://127.0.0.1:$AC_PORT" \
    --email-format 'bench-u{}@bench.test' --count "$POOL" --password "$PASSWORD" \
    --out "$WORK/tokens-$1.txt" >&2
  curl -sf -X POST "http://127.0.0.1:$AC_PORT/api/v1/auth/user/token" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@bench.test\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' \
      >"$WORK/host-$1.txt"
  stop_services
  TOKENS_AT[$1]=$SECONDS
}
ensure_tokens() { # db
  if [ -z "${TOKENS_AT[$1]:-}" ] || [ $((SECONDS - TOKENS_AT[$1])) -gt 2700 ]; then
    sign_in "$1"
  fi
}

# CPU time so far, in clock ticks, of each process a join involves: one "name ticks" line each.
# pg_db is every backend of the bench database (backends are listed one by one, so one that
# starts during the run counts from zero); pg_all is the whole PostgreSQL server, the
# postmaster's reaped children included (other people's sessions too); machine is every CPU's
# busy time from /proc/stat.
ticks() { # pid [with_children]: utime+stime (and cutime+cstime) from /proc/PID/stat
  local rest
  rest="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || {
    echo 0
    return
  }
  if [ "${2:-}" = with_children ]; then
    awk '{print $12 + $13 + $14 + $15}' <<<"$rest"
  else
    awk '{print $12 + $13}' <<<"$rest"
  fi
}
cpu_snapshot() { # db out
  local out="$2" pg_pids postmaster redis_pid all
  {
    for svc in gc ac mc; do echo "$svc $(ticks "${PID_OF[$svc]:-none}")"; done
    pg_pids="$(psql -qAtX "$ADMIN_URL" -c "select pid from pg_stat_activity
                                           where datname = 'convene_benchjoin_$1'")"
    for pid in $pg_pids; do echo "pg_db:$pid $(ticks "$pid")"; done
    postmaster="$(head -1 "$PG_DATA_PID_FILE" 2>/dev/null || true)"
    all="$(ticks "$postmaster" with_children)"
    for pid in $(pgrep -P "$postmaster"); do all=$((all + $(ticks "$pid"))); done
    echo "pg_all $all"
    redis_pid="$(redis-cli -u "$REDIS_BASE" info server | tr -d '\r' | awk -F: '/^process_id/ {print $2}')"
    echo "redis $(ticks "$redis_pid")"
    echo "sink $(ticks "${PIDS_SINK:-none}")"
    echo "machine $(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)"
  } >"$out"
}
# The postmaster's pid: the parent of any backend.
pg_postmaster() {
  local backend
  backend="$(psql -qAtX "$ADMIN_URL" -c "select pid from pg_stat_activity
                                          where backend_type = 'checkpointer'")"
  ps -o ppid= -p "$backend" | tr -d ' '
}
PG_DATA_PID_FILE="$WORK/postmaster.pid"
pg_postmaster >"$PG_DATA_PID_FILE"
CLK_TCK="$(getconf CLK_TCK)"

# Milliseconds of CPU per process between two snapshots, as "name ms" lines.
cpu_delta() { # before after
  python3 - "$1" "$2" "$CLK_TCK" <<'PY'
import sys
def load(path):
    return dict(line.split() for line in open(path))
before, after, hz = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
ms = lambda t: 1000 * t / hz
out = {}
for name in ("gc", "ac", "mc", "pg_all", "redis", "sink", "machine"):
    out[name] = ms(int(after.get(name, 0)) - int(before.get(name, 0)))
out["pg_db"] = ms(sum(int(t) - int(before.get(k, 0)) for k, t in after.items() if k.startswith("pg_db:")))
for name, value in out.items():
    print(name, round(value))
PY
}

join_run() { # db clients round [webhook: on|off]
  local out cpu joins recorded seated
  ensure_tokens "$1"
  convene_log_mark
  start_services "$1" ac gc mc
  timeout 600 "$JOIN_LOAD" prepare --url "$GC_URL" --host-token "$(cat "$WORK/host-$1.txt")" \
    --rooms "$ROOMS" --seats $((USERS + 1)) --out "$WORK/rooms.txt" >"$WORK/prepare.out"
  if [ "${4:-}" = on ]; then hook_on "$1"; fi
  if [ "$WEBHOOKS" = 1 ]; then wait_quiet; fi
  cpu_snapshot "$1" "$WORK/cpu-before"
  out="$(timeout $((DURATION + 120)) "$JOIN_LOAD" steady --url "$GC_URL" \
    --tokens-file "$WORK/tokens-$1.txt" --users "$USERS" --rooms-file "$WORK/rooms.txt" \
    --concurrency "$2" --duration-secs "$DURATION")"
  # With the webhook, the CPU counted is the joins' and their deliveries' (after the drain).
  if [ "${4:-}" = on ]; then hook_drain "$1"; fi
  cpu_snapshot "$1" "$WORK/cpu-after"
  out+=$'\n'"items per statement: $(batch_means "$GC_URL")"
  if [ -n "${4:-}" ]; then
    hook_record "$1" join "$2" "$3" "$4" "$out"
    hook_cpu join "$2" "$3" "$4" "$out"
  fi
  stop_services
  # Every admitted join is a guest visit in PostgreSQL and a seat in Redis (hosts too).
  recorded="$(sql "$1" "select count(*) from participants p join meetings m on m.id = p.meeting_id
                       where m.display_name = 'join bench' and p.role = 'guest'")"
  seated="$(redis_bench eval "local n = 0
      for _, k in ipairs(redis.call('keys', 'room:*:participants')) do
        n = n + redis.call('hlen', k) end
      return n" 0)"
  echo "--- join, $1 database, $2 clients, ${DURATION}s ($ROOMS rooms, $USERS users)"
  cat "$WORK/prepare.out"
  echo "$out"
  joins="$(awk '/^statuses/ {for (i = 2; i <= NF; i++) if ($i == "200:") print $(i + 1)}' <<<"$out" | tr -d ,)"
  joins="${joins:-0}"
  echo "check        $recorded guest visits in PostgreSQL, $seated seats in Redis" \
    "($joins admitted joins + $ROOMS hosts = $((joins + ROOMS)))"
  cpu="$(cpu_delta "$WORK/cpu-before" "$WORK/cpu-after")"
  echo "cpu ms       $(tr '\n' ' ' <<<"$cpu")client $(awk '/^client cpu/ {print $3}' <<<"$out")"
  convene_log_report
  printf 'join\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(awk '/^throughput/ {print $2}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $8}' <<<"$out")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" \
    "$(grep -c EXHAUSTED <<<"$out" || true)/$((recorded == joins && seated == joins + ROOMS))" \
    >>"$RESULTS"
  while read -r name ms; do
    printf 'cpu\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$name" "$ms" "$joins" >>"$RESULTS"
  done <<<"$cpu"
  printf 'cpu\t%s\t%s\t%s\tclient\t%s\t%s\n' "$1" "$2" "$3" \
    "$(awk '/^client cpu/ {print $3}' <<<"$out")" "$joins" >>"$RESULTS"
}

# An extra join run under perf (BENCH_PROFILE=1): where GC, AC and MC spend their CPU, by crate.
profile_run() { # db clients
  local perf_pids=() svc
  convene_have perf || convene_apt_install linux-perf
  start_services "$1" ac gc mc
  timeout 600 "$JOIN_LOAD" prepare --url "$GC_URL" --host-token "$(cat "$WORK/host-$1.txt")" \
    --rooms "$ROOMS" --seats $((USERS + 1)) --out "$WORK/rooms.txt" >/dev/null
  for svc in gc ac mc; do
    timeout $((DURATION + 60)) perf record -q -F 999 -o "$WORK/perf-$svc.data" \
      -p "${PID_OF[$svc]}" -- sleep "$DURATION" 2>/dev/null &
    perf_pids+=($!)
  done
  echo "--- profile: a $2-client join run on the $1 database under perf record (not counted)"
  timeout $((DURATION + 120)) "$JOIN_LOAD" steady --url "$GC_URL" \
    --tokens-file "$WORK/tokens-$1.txt" --users "$USERS" --rooms-file "$WORK/rooms.txt" \
    --concurrency "$2" --duration-secs "$DURATION" | awk '/^(throughput|statuses)/'
  for pid in "${perf_pids[@]}"; do wait "$pid" || true; done
  stop_services
  for svc in gc ac mc; do
    echo "$svc: share of its CPU samples by crate (kernel: system calls, loopback TCP)"
    perf report -i "$WORK/perf-$svc.data" --stdio --no-children --sort dso,sym 2>/dev/null |
      python3 "$CONVENE_REPO/scripts/bench-join-summary.py" --profile
  done
}

# Steady guest-joins (the guest-steady workers share one address, hence the large
# GC_GUEST_JOIN_BURST of the bench's GC); the rooms' lobbies hold MAX_GUESTS_WAITING (50)
# guests each, so ROOMS rooms take 50 x ROOMS guests before anyone is refused.
guest_run() { # db clients round
  local out waiting guests
  ensure_tokens "$1"
  convene_log_mark
  start_services "$1" ac gc mc
  timeout 600 "$JOIN_LOAD" prepare --guests --url "$GC_URL" \
    --host-token "$(cat "$WORK/host-$1.txt")" --rooms "$ROOMS" --seats 2 \
    --out "$WORK/guest-rooms.txt" >"$WORK/prepare.out"
  out="$(timeout $((DURATION + 120)) "$JOIN_LOAD" guest-steady --url "$GC_URL" \
    --rooms-file "$WORK/guest-rooms.txt" --concurrency "$2" --duration-secs "$DURATION")"
  stop_services
  waiting="$(redis_bench eval "local n = 0
      for _, k in ipairs(redis.call('keys', 'room:*:lobby')) do
        n = n + redis.call('scard', k) end
      return n" 0)"
  guests="$(sql "$1" "select count(*) from meeting_guests")"
  echo "--- guest-join, $1 database, $2 clients, ${DURATION}s ($ROOMS rooms that take guests)"
  cat "$WORK/prepare.out"
  echo "$out"
  echo "check        $waiting guests waiting in Redis, $guests guests in PostgreSQL"
  convene_log_report
  printf 'guest\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(awk '/^throughput/ {print $2}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $8}' <<<"$out")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" \
    "$((waiting == guests))" >>"$RESULTS"
}

guest_storm_run() { # round
  local out meeting code waiting guests
  ensure_tokens empty
  convene_log_mark
  start_services empty ac gc mc
  out="$(timeout 300 "$JOIN_LOAD" guest-storm --url "$GC_URL" \
    --host-token "$(cat "$WORK/host-empty.txt")" --guests "$GUEST_STORM")"
  read -r meeting code < <(awk '/^meeting / {print $2, $3}' <<<"$out")
  waiting="$(redis_bench scard "room:{$code}:lobby")"
  stop_services
  guests="$(sql empty "select count(*) from meeting_guests where meeting_id = '$meeting'")"
  echo "--- guest storm, empty database: $GUEST_STORM guests from as many addresses, one room"
  echo "$out"
  echo "check        Redis: $waiting waiting; PostgreSQL: $guests guests recorded"
  convene_log_report
  printf 'gstorm\tempty\t%s\t%s\t%s\t%s\t%s\t%s\n' "$GUEST_STORM" "$1" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $10}' <<<"$out")" "$waiting" "$guests" >>"$RESULTS"
}

create_run() { # db clients round [webhook: on|off|outbox]
  local out
  ensure_tokens "$1"
  convene_log_mark
  start_services "$1" ac gc
  if [ "${4:-}" = on ]; then hook_on "$1"; fi
  if [ "${4:-}" = outbox ]; then
    # The webhook subscribed, but GC restarted without its key: each create writes its
    # delivery row and nothing is sent (what the outbox alone costs).
    hook_on "$1" nosample
    stop_services
    GC_NO_DELIVERY=1 start_services "$1" ac gc
  fi
  if [ "$WEBHOOKS" = 1 ]; then wait_quiet; fi
  cpu_snapshot "$1" "$WORK/cpu-before"
  out="$(timeout $((DURATION + 120)) "$CREATE_LOAD" --url "$GC_URL" \
    --token "$(cat "$WORK/host-$1.txt")" --concurrency "$2" --duration-secs "$DURATION")"
  if [ "${4:-}" = on ]; then hook_drain "$1"; fi
  cpu_snapshot "$1" "$WORK/cpu-after"
  out+=$'\n'"items per statement: $(batch_means "$GC_URL")"
  if [ -n "${4:-}" ]; then
    hook_record "$1" create "$2" "$3" "$4" "$out"
    hook_cpu create "$2" "$3" "$4" "$out"
    echo "cpu ms       $(cpu_delta "$WORK/cpu-before" "$WORK/cpu-after" | tr '\n' ' ')"
  fi
  stop_services
  echo "--- create, $1 database, $2 clients, ${DURATION}s"
  echo "$out"
  convene_log_report
  printf 'create\t%s\t%s\t%s\t%s\t%s\t%s\t-\n' "$1" "$2" "$3" \
    "$(awk '/^throughput/ {print $2}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $8}' <<<"$out")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" >>"$RESULTS"
}

pgbench_run() { # db clients round
  local out processed visits cpu
  # Rooms as steady joins find them: live, active, the host seated; then their ids, numbered.
  sql "$1" "insert into meetings (org_id, host_id, meeting_code, display_name, status,
                                  max_participants, waiting_room_enabled, join_token_secret,
                                  started_at)
            select '${ORG_ID[$1]}', '${HOST_ID[$1]}', 'pj' || lpad(i::text, 10, '0'),
                   'pgbench join', 'active', $((USERS + 1)), false,
                   decode(md5(i::text) || md5((i + 7)::text), 'hex'), now()
            from generate_series(1, $ROOMS) as i" \
    "insert into participants (meeting_id, user_id, role)
       select id, host_id, 'host' from meetings where display_name = 'pgbench join'" \
    "insert into bench_join_rooms
       select row_number() over (order by meeting_code) - 1, id from meetings
       where display_name = 'pgbench join'" \
    "analyze bench_join_rooms"
  cpu_snapshot "$1" "$WORK/cpu-before"
  # The session settings of GC's connections for these statements (db::batch_pool).
  out="$(PGOPTIONS="$GC_BATCH_SESSION" timeout $((DURATION + 120)) \
    pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" \
    -D k=0 -D clients="$2" -D rooms="$ROOMS" -D users="$USERS" -D org_id="${ORG_ID[$1]}" \
    -f crates/gc-service/benches/join_meeting.pgbench.sql "$(db_url "$1")" 2>&1 |
    grep -E '^(number of transactions actually|tps|latency average|number of failed)')"
  cpu_snapshot "$1" "$WORK/cpu-after"
  processed="$(awk '/^number of transactions actually/ {print $NF}' <<<"$out")"
  visits="$(sql "$1" "select count(*) from participants p join bench_join_rooms r
                      on r.meeting_id = p.meeting_id where p.role = 'guest'")"
  echo "--- pgbench (the join's writes), $1 database, $2 clients, ${DURATION}s"
  echo "$out"
  echo "check        $visits guest visits for $processed transactions"
  # pgbench's backends are gone by the second snapshot: only the whole server counts them.
  cpu="$(cpu_delta "$WORK/cpu-before" "$WORK/cpu-after" | grep -E '^(pg_all|machine) ')"
  echo "cpu ms       $(tr '\n' ' ' <<<"$cpu")"
  while read -r name ms; do
    printf 'pgcpu\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$name" "$ms" "$processed" \
      >>"$RESULTS"
  done <<<"$cpu"
  printf 'pgbench\t%s\t%s\t%s\t%s\t%s\tfailed: %s\t%s\n' "$1" "$2" "$3" \
    "$(awk '/^tps/ {print $3}' <<<"$out")" \
    "$(awk '/^latency average/ {print $4}' <<<"$out")" \
    "$(awk '/^number of failed/ {print $5}' <<<"$out")" \
    "$((visits == processed))" >>"$RESULTS"
}

storm_run() { # round
  local out meeting code seated waiting open admitted_rows
  ensure_tokens empty
  convene_log_mark
  start_services empty ac gc mc
  out="$(timeout 300 "$JOIN_LOAD" storm --url "$GC_URL" \
    --host-token "$(cat "$WORK/host-empty.txt")" --tokens-file "$WORK/tokens-empty.txt" \
    --users "$STORM_USERS" --max-participants "$STORM_SEATS")"
  read -r meeting code < <(awk '/^meeting / {print $2, $3}' <<<"$out")
  seated="$(redis_bench hlen "room:{$code}:participants")"
  waiting="$(redis_bench scard "room:{$code}:lobby")"
  stop_services
  open="$(sql empty "select count(*) from participants
                     where meeting_id = '$meeting' and left_at is null")"
  admitted_rows="$(sql empty "select count(*) from audit_logs
                              where resource_id = '$meeting' and action = 'participant_admitted'")"
  echo "--- storm, empty database: $STORM_USERS users, one room of $STORM_SEATS seats"
  echo "$out"
  echo "check        Redis: $seated seated, $waiting waiting; PostgreSQL: $open open visits," \
    "$admitted_rows participant_admitted audit rows"
  convene_log_report
  printf 'storm\tempty\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$STORM_USERS" "$1" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" \
    "$(awk '/^latency ms/ {print $10}' <<<"$out")" \
    "$(awk '/^spread/ {print $4}' <<<"$out")" \
    "$seated" "$open" "$admitted_rows" >>"$RESULTS"
}

# BENCH_WEBHOOKS=1: subscribes the bench org to every event type at the receiver, and starts
# sampling the outbox's due deliveries every 0.5 s (into $WORK/due.txt).
hook_on() { # db [nosample]
  local answer
  answer="$(curl -sf -X POST "$GC_URL/api/v1/webhooks" \
    -H "Authorization: Bearer $(cat "$WORK/host-$1.txt")" -H 'Content-Type: application/json' \
    -d "{\"url\": \"http://$SINK_ADDR/hook\", \"description\": \"bench\", \"events\":
         [\"meeting.created\", \"meeting.started\", \"meeting.ended\", \"participant.joined\",
          \"participant.left\", \"participant.removed\", \"lobby.waiting\", \"webhook.test\"]}")" ||
    convene_die "cannot create the bench webhook (logs in $WORK)"
  HOOK_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["webhook_id"])' <<<"$answer")"
  SINK_BEFORE="$(curl -sf "http://$SINK_ADDR/stats")"
  : >"$WORK/due.txt"
  if [ "${2:-}" = nosample ]; then return; fi
  (
    while :; do
      sql "$1" "select count(*) from webhook_deliveries
                where status = 'pending' and next_attempt_at <= now()" >>"$WORK/due.txt"
      sleep 0.5
    done
  ) &
  SAMPLER=$!
}

# After a run with the webhook: stops sampling, waits (at most 120 s) for the outbox to drain
# and reads what was delivered and what the receiver got (for hook_record), and the bodies'
# mean length (for floor_run).
hook_drain() { # db
  local start pending after
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  MAX_DUE="$(sort -n "$WORK/due.txt" | tail -1)"
  start="$(date +%s%N)"
  for _ in $(seq 1 1200); do
    pending="$(sql "$1" "select count(*) from webhook_deliveries where status = 'pending'")"
    [ "$pending" = 0 ] && break
    sleep 0.1
  done
  DRAIN_MS=$((($(date +%s%N) - start) / 1000000))
  [ "$pending" = 0 ] || DRAIN_MS="timeout($pending)"
  DELIVERED="$(sql "$1" "select count(*) from webhook_deliveries where status = 'delivered'")"
  BODY_BYTES="$(sql "$1" "select coalesce(round(avg(octet_length(payload))), 400)::int
                          from webhook_deliveries")"
  after="$(curl -sf "http://$SINK_ADDR/stats")"
  read -r RECEIVED DISTINCT < <(python3 -c 'import json,sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(a["received"] - b["received"], a["distinct"] - b["distinct"])' "$SINK_BEFORE" "$after")
}

# After a run: writes the run's hook record and drops the webhook (with the webhook on,
# hook_drain ran first).
hook_record() { # db op clients round on|off|outbox load-output
  local max_due=- drain_ms=- rows=- received=- distinct=-
  if [ "$5" = on ]; then
    max_due="$MAX_DUE" drain_ms="$DRAIN_MS" rows="$DELIVERED" received="$RECEIVED"
    distinct="$DISTINCT"
    echo "webhook      at most $max_due due during the run; drained ${drain_ms} ms after it;" \
      "$rows delivered rows, the receiver got $received requests of $distinct distinct ids"
  fi
  if [ "$5" = outbox ]; then
    rows="$(sql "$1" "select count(*) from webhook_deliveries")"
    echo "webhook      $rows deliveries written, none sent (GC without its key)"
  fi
  if [ "$5" != off ]; then sql "$1" "delete from webhooks where id = '$HOOK_ID'"; fi
  printf 'hook\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$5" "$3" "$4" \
    "$(awk '/^throughput/ {print $2}' <<<"$6")" \
    "$(awk '/^latency ms/ {print $8}' <<<"$6")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$6")" \
    "$max_due" "$drain_ms" "$rows" "$received" "$distinct" >>"$RESULTS"
}

# The run's CPU (cpu-before to cpu-after) per request: machine, PostgreSQL, GC, as a hookcpu
# record.
hook_cpu() { # op clients round on|off|outbox load-output
  local requests cpu
  requests="$(awk '/^requests/ {print $2}' <<<"$5")"
  cpu="$(cpu_delta "$WORK/cpu-before" "$WORK/cpu-after")"
  printf 'hookcpu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$4" "$2" "$3" "$requests" \
    "$(awk '$1 == "machine" {print $2}' <<<"$cpu")" \
    "$(awk '$1 == "pg_all" {print $2}' <<<"$cpu")" \
    "$(awk '$1 == "gc" {print $2}' <<<"$cpu")" \
    "$(procs_ms "$cpu" "$5")" >>"$RESULTS"
}

# The CPU of the processes of a run (services, PostgreSQL, Redis, the receiver and the load
# generator), without the rest of the machine: what another job on it cannot disturb.
procs_ms() { # cpu_delta-output load-output
  local client
  client="$(awk '/^client cpu/ {print $3}' <<<"$2")"
  echo $(($(awk '$1 ~ /^(gc|ac|mc|pg_all|redis|sink)$/ {n += $2} END {print n + 0}' <<<"$1") +
    ${client:-0}))
}

# The floor of a delivery on this machine: bare POSTs of the deliveries' mean body length to
# the receiver, back to back at the run's client count, with no service running; the
# machine's CPU per request, as a floor record.
floor_run() { # clients round
  local out cpu
  wait_quiet
  cpu_snapshot empty "$WORK/cpu-before"
  out="$(timeout $((DURATION + 120)) "$JOIN_LOAD" post-load --url "http://$SINK_ADDR/hook" \
    --concurrency "$1" --duration-secs "$DURATION" --body-bytes "${BODY_BYTES:-400}")"
  cpu_snapshot empty "$WORK/cpu-after"
  cpu="$(cpu_delta "$WORK/cpu-before" "$WORK/cpu-after")"
  echo "--- floor: bare POSTs of ${BODY_BYTES:-400} bytes to the receiver, $1 clients, ${DURATION}s"
  echo "$out"
  echo "cpu ms       $(tr '\n' ' ' <<<"$cpu")"
  printf 'floor\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" \
    "$(awk '/^requests/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "machine" {print $2}' <<<"$cpu")" \
    "$(awk '/^statuses/ {sub(/^statuses +/, ""); print}' <<<"$out")" \
    "$(procs_ms "$cpu" "$out")" >>"$RESULTS"
}

pg_show() { psql -AtX "$ADMIN_URL" -c "show $1"; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "PostgreSQL $(pg_show server_version) fsync=$(pg_show fsync)" \
  "synchronous_commit=$(pg_show synchronous_commit);" \
  "Redis $(redis-cli -u "$REDIS_BASE" info server | tr -d '\r' | awk -F: '/^redis_version/ {print $2}');" \
  "commit $(git rev-parse --short HEAD); load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "settings: ${DURATION}s runs, $ROUNDS rounds, clients $CLIENTS, $STORED stored meetings," \
  "$USERS users x $ROOMS rooms per join run, storm $STORM_USERS users for $STORM_SEATS seats"
for db in "${DATABASES[@]}"; do
  reset_db "$db"
  sign_in "$db"
done
if [ "$WEBHOOKS" = 1 ]; then
  "$JOIN_LOAD" webhook-sink --addr "$SINK_ADDR" >>"$WORK/sink.log" 2>&1 &
  PIDS_SINK=$!
  for _ in $(seq 1 100); do curl -sf "http://$SINK_ADDR/stats" >/dev/null && break; sleep 0.1; done
  for round in $(seq 1 "$ROUNDS"); do
    for c in $CLIENTS; do
      order="off on"
      [ $((round % 2)) = 0 ] && order="on off"
      for hook in $order; do
        echo "=== round $round, webhook $hook, $(cut -d' ' -f1-3 /proc/loadavg) load"
        join_run empty "$c" "$round" "$hook"
        reset_db empty
        create_run empty "$c" "$round" "$hook"
        reset_db empty
      done
      echo "=== round $round, the outbox alone and the floor, $(cut -d' ' -f1-3 /proc/loadavg) load"
      create_run empty "$c" "$round" outbox
      reset_db empty
      floor_run "$c" "$round"
    done
  done
  kill "$PIDS_SINK" 2>/dev/null || true
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  echo "=== summary: median of $ROUNDS rounds (min-max), ${DURATION}s runs"
  python3 "$CONVENE_REPO/scripts/bench-webhooks-summary.py" "$RESULTS"
  exit 0
fi
for round in $(seq 1 "$ROUNDS"); do
  for c in $CLIENTS; do
    for db in "${DATABASES[@]}"; do
      echo "=== round $round, $(cut -d' ' -f1-3 /proc/loadavg) load"
      join_run "$db" "$c" "$round"
      reset_db "$db"
      create_run "$db" "$c" "$round"
      reset_db "$db"
      pgbench_run "$db" "$c" "$round"
      reset_db "$db"
      if [ "$db" = empty ]; then
        guest_run "$db" "$c" "$round"
        reset_db "$db"
      fi
    done
  done
  echo "=== round $round, $(cut -d' ' -f1-3 /proc/loadavg) load"
  storm_run "$round"
  reset_db empty
  guest_storm_run "$round"
  reset_db empty
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
  reset_db empty
  profile_run empty 16
fi
for svc in ac gc mc; do
  echo "$svc logged $( (wc -l <"$WORK/$svc.log") 2>/dev/null || echo 0) lines at warn or error" \
    "in all (the \"log\" lines of each run say which)"
done
echo
echo "=== summary: median of $ROUNDS rounds (min-max), ${DURATION}s runs"
python3 "$CONVENE_REPO/scripts/bench-join-summary.py" "$RESULTS"
