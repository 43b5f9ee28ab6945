#!/usr/bin/env bash
#
# Benchmark of MC's signaling WebSocket under load, against the release build with the real
# AC, GC and MC, PostgreSQL and Redis, and the load generator, all on this machine
# (docs/benchmarks.md, "Signaling load (MC WebSocket)").
#
# Each round runs, back to back:
#   echo   the transport baseline: BENCH_ROOMS x BENCH_PER_ROOM clients send the benchmark's
#          audio_level stream (20 Hz each) for BENCH_DURATION s to a minimal tokio-tungstenite
#          echo server (crates/gc-service/benches/ws_echo.rs), which writes every frame back;
#   mc     the same clients, joined over GC into BENCH_ROOMS meetings (waiting room off) and
#          welcomed on MC, send the same stream to MC, with one scripted speaker change per
#          room every 2 s. Measured: the rate MC processed (its own counter), the delay from
#          the sample that completes a speaker's 300 ms run to `active_speaker` at each other
#          client of the room, dropped clients, MC's resident memory per connection, and every
#          process's CPU time over the load;
#   lobby  with the machine otherwise idle, BENCH_LOBBY_USERS users one after another wait in
#          the lobby of a meeting whose host is connected and are admitted over REST: the time
#          from the REST admit to `admitted` on the waiting socket.
# With BENCH_TOWNHALL=1 each round runs instead (docs/benchmarks.md, "A town hall: one
# broadcast to 1,000"):
#   broadcast  BENCH_PEOPLE sockets on the echo server in broadcast mode (every text frame to
#          every socket, through a bounded queue and a writer task per socket, as MC's): one
#          socket sends a frame shaped as MC's `active_speaker`, BENCH_TOWNHALL_ROUNDS times,
#          each timed until the last socket got it;
#   townhall   BENCH_PEOPLE users joined over GC into ONE meeting, welcomed on MC; then
#          BENCH_TOWNHALL_ROUNDS rounds of a speaker change (two members take turns), a join
#          over REST with its connection, and that joiner's leave, each event timed until the
#          last socket got it. Summary: scripts/bench-signaling-townhall.py.
# AC, GC and MC are started afresh for the mc and for the lobby run, so neither inherits the
# other's sockets or reconnect graces. Conditions are interleaved and the summary gives medians
# over the rounds, and the ratio to the echo server of the same round, because this machine
# drifts by 2-3x between days (docs/benchmarks.md, "Why interleaved").
#
# Usage: scripts/bench-signaling.sh        (per-run lines, then the summary, on stdout)
# Settings: BENCH_DURATION (seconds of load per run, default 15), BENCH_ROUNDS (3),
#           BENCH_ROOMS (100), BENCH_PER_ROOM (20), BENCH_LOBBY_USERS (300),
#           BENCH_QUIET_WAIT (seconds a run waits at most for the machine to be quiet, 300),
#           BENCH_RATES (the ceiling: samples a second per client to offer, e.g. "20 40 80";
#           each round then runs echo and mc once per rate, lowest first, and no lobby, and the
#           summary is the highest rate each sustained: scripts/bench-signaling-ceiling.py),
#           BENCH_TOWNHALL (1: the town hall instead, see above), BENCH_PEOPLE (1000),
#           BENCH_TOWNHALL_ROUNDS (broadcasts timed in each run, 50), BENCH_MC_BIN (another
#           mc-service binary to run instead of the release build's, e.g. one with a changed
#           constant; the summary's machine line does not see it),
#           BENCH_PROFILE (1: after the rounds, one more mc run with MC under `perf record`,
#           not counted, and MC's CPU samples by crate and by symbol), BENCH_KEEP (1: keep the
#           work directory with the services' logs; it is always kept when the script fails),
#           CARGO_TARGET_DIR (default /var/tmp/convene-release).
#
# It creates and finally drops the database convene_benchsig on the PostgreSQL that
# scripts/lib.sh finds (or starts); MC keeps its rooms in a Redis database number that was
# empty when the script claimed it, and only the room keys there are deleted, between runs and
# at the end. AC, GC and MC run on loopback ports 18282, 18280 (gRPC 18251) and 18281 (gRPC
# 18252), the echo server on 18283. Every run is bounded in time and only ever talks to
# 127.0.0.1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
cd "$CONVENE_REPO"

DURATION="${BENCH_DURATION:-15}"
ROUNDS="${BENCH_ROUNDS:-3}"
ROOMS="${BENCH_ROOMS:-100}"
PER_ROOM="${BENCH_PER_ROOM:-20}"
LOBBY_USERS="${BENCH_LOBBY_USERS:-300}"
RATES="${BENCH_RATES:-}"
TOWNHALL="${BENCH_TOWNHALL:-0}"
PEOPLE="${BENCH_PEOPLE:-1000}"
TOWNHALL_ROUNDS="${BENCH_TOWNHALL_ROUNDS:-50}"
CLIENTS=$((ROOMS * PER_ROOM))
# The mc runs use users 0..CLIENTS-1, the lobby runs the next LOBBY_USERS (none with
# BENCH_RATES, which runs no lobby: 10,000 sign-ins are minutes of Argon2 already).
POOL=$((CLIENTS + LOBBY_USERS))
if [ -n "$RATES" ]; then POOL=$CLIENTS; fi
if [ "$TOWNHALL" = 1 ]; then
  # The town hall's people, then one joiner a round.
  CLIENTS=$((PEOPLE + 1))
  POOL=$((PEOPLE + TOWNHALL_ROUNDS))
fi
: "${CARGO_TARGET_DIR:=/var/tmp/convene-release}"
export CARGO_TARGET_DIR
AC_PORT=18282
GC_PORT=18280
GC_GRPC_PORT=18251
MC_PORT=18281
MC_GRPC_PORT=18252
ECHO_PORT=18283
GC_URL="http://127.0.0.1:$GC_PORT"
DB=convene_benchsig
PASSWORD="bench-password"
WORK="$(mktemp -d -t convene-bench-signaling.XXXXXX)"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
PIDS=()
ECHO_PID=""
REDIS_DB=""
CLAIM_KEY="convene:bench-signaling:claim"

for port in $AC_PORT $GC_PORT $GC_GRPC_PORT $MC_PORT $MC_GRPC_PORT $ECHO_PORT; do
  ! convene_port_open 127.0.0.1 "$port" || convene_die "port $port is taken"
done
# Each side of the loopback holds a descriptor per socket: the load generator one per client,
# and the server (MC or the echo server) one per client, each in its own process, which
# inherits this limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((CLIENTS + 1024)) ] \
  || convene_die "ulimit -n is $(ulimit -n): $CLIENTS sockets need more"
# MC refuses sockets beyond WS_MAX_CONNECTIONS (default 10,000): a larger run raises it for
# MC here, and says so. (HTTP_MAX_CONNECTIONS and its per-address bound count only sockets
# not yet upgraded: at most the generator's CONNECT_CONCURRENCY at once.)
MC_WS_MAX=10000
if [ "$CLIENTS" -gt "$MC_WS_MAX" ]; then
  MC_WS_MAX=$((CLIENTS + 16))
  convene_log "WS_MAX_CONNECTIONS raised to $MC_WS_MAX for MC ($CLIENTS sockets)"
fi


declare -A PID_OF
stop_services() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
  PID_OF=()
}

stop_echo() {
  if [ -n "$ECHO_PID" ]; then
    kill "$ECHO_PID" 2>/dev/null || true
    wait "$ECHO_PID" 2>/dev/null || true
    ECHO_PID=""
  fi
}

cleanup() {
  local rc=$?
  stop_echo
  stop_services
  if [ -n "${ADMIN_URL:-}" ]; then
    psql -q "$ADMIN_URL" -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  fi
  if [ -n "$REDIS_DB" ]; then
    drop_room_keys || true
    redis_bench del "$CLAIM_KEY" >/dev/null || true
  fi
  if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
    convene_log "work directory kept (services' logs, load generator output): $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

ensure_rust_tools
ensure_postgres
ensure_redis
convene_have redis-cli || convene_apt_install redis-tools
ADMIN_URL="$TEST_DATABASE_URL"
DB_URL="${ADMIN_URL%/*}/$DB"
REDIS_BASE="${REDIS_URL%/}"

claim_redis_db "$CLAIM_KEY"
REDIS_PID="$(redis-cli -u "$REDIS_BASE" info server | tr -d '\r' | awk -F: '/^process_id/ {print $2}')"

convene_log "building the release binaries (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet --bin ac-service --bin gc-service --bin mc-service
cargo bench --quiet -p gc-service --bench signaling_load --bench ws_echo --bench join_load \
  --no-run
LOAD="$(newest signaling_load)"
WS_ECHO="$(newest ws_echo)"
JOIN_LOAD="$(newest join_load)"
BIN="$CARGO_TARGET_DIR/release"
MC_BIN="${BENCH_MC_BIN:-$BIN/mc-service}"

sql() { psql -qAtX -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }

bench_environment "$WORK/seed.json"

psql -q "$ADMIN_URL" -c "drop database if exists $DB with (force)" >/dev/null
psql -q "$ADMIN_URL" -c "create database $DB" >/dev/null
DATABASE_URL="$DB_URL" "$BIN/ac-service" migrate >/dev/null
DATABASE_URL="$DB_URL" "$BIN/ac-service" seed --file "$WORK/seed.json" >/dev/null
# Limits out of the way: runs measure signaling, not refusals.
sql "update organizations set max_concurrent_meetings = 100000000,
                              max_participants_per_meeting = 100000
     where slug = 'bench'"
# The pool: users 1.. copy user 0's row, password hash included (one Argon2 hash for all).
sql "insert into users (org_id, email, password_hash, display_name, roles)
     select org_id, 'bench-u' || i || '@bench.test', password_hash, 'Bench User ' || i, roles
     from users, generate_series(1, $POOL - 1) as i
     where email = 'bench-u0@bench.test'"


# MC's ACTIVE_SPEAKER_SILENCE_GAP_MS for the rate offered: its default, 150 ms, is shorter than
# the period under 7 Hz (200 ms at 5 Hz), where every sample would break the run and MC would
# never name a speaker; those rates get 1.5 periods (300 ms at 5 Hz), and the script says so.
speaker_gap_ms() {
  local gap=$((3000 / (2 * ${RATE_HZ:-20})))
  echo $((gap > 150 ? gap : 150))
}

# start_services [ac|gc|mc]...: starts the named services, in that order.
start_services() {
  for svc in "$@"; do
    case "$svc" in
      ac)
        DATABASE_URL="$DB_URL" AC_HTTP_ADDR="127.0.0.1:$AC_PORT" AC_OPS_ADDR=127.0.0.1:0 "$BIN/ac-service" serve \
          >>"$WORK/ac.log" 2>&1 &
        ;;
      gc)
        DATABASE_URL="$DB_URL" GC_HTTP_ADDR="127.0.0.1:$GC_PORT" GC_OPS_ADDR=127.0.0.1:0 \
          AC_URL="http://127.0.0.1:$AC_PORT" GC_PUBLIC_BASE_URL="$GC_URL" \
          GC_GRPC_ADDR="127.0.0.1:$GC_GRPC_PORT" GC_CLIENT_ID=bench-gc \
          GC_CLIENT_SECRET=bench-gc-secret-0001 "$BIN/gc-service" serve >>"$WORK/gc.log" 2>&1 &
        ;;
      mc)
        REDIS_URL="$REDIS_BASE/$REDIS_DB" MC_HTTP_ADDR="127.0.0.1:$MC_PORT" MC_OPS_ADDR=127.0.0.1:0 \
          MC_GRPC_ADDR="127.0.0.1:$MC_GRPC_PORT" GC_GRPC_URL="http://127.0.0.1:$GC_GRPC_PORT" \
          AC_URL="http://127.0.0.1:$AC_PORT" MC_CLIENT_ID=bench-mc \
          MC_CLIENT_SECRET=bench-mc-secret-0001 MC_CAPACITY=1000000 WS_MAX_CONNECTIONS="$MC_WS_MAX" \
          ACTIVE_SPEAKER_SILENCE_GAP_MS="$(speaker_gap_ms)" "$MC_BIN" \
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
          [ "$(sql "select count(*) from meeting_controllers where id = 'bench-mc'")" = 1 ] \
            && break
          sleep 0.1
        done
        ;;
    esac
  done
}

# Removes what a run created, forgets the controller (so MC's next registration is the one
# awaited) and drops the room keys.
reset_state() {
  sql "delete from meetings where display_name in ('signaling bench', 'signaling lobby bench',
                                                    'signaling townhall bench')"
  sql "delete from audit_logs"
  sql "delete from meeting_controllers"
  drop_room_keys
}

TOKENS_AT=""
sign_in() { # user tokens of the pool and of the host, good for an hour
  start_services ac
  timeout 900 "$JOIN_LOAD" sign-in --ac-url "http://127.0.0.1:$AC_PORT" \
    --email-format 'bench-u{}@bench.test' --count "$POOL" --password "$PASSWORD" \
    --out "$WORK/tokens.txt" >&2
  curl -sf -X POST "http://127.0.0.1:$AC_PORT/api/v1/auth/user/token" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@bench.test\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"$WORK/host.txt"
  stop_services
  TOKENS_AT=$SECONDS
}
ensure_tokens() {
  if [ -z "$TOKENS_AT" ] || [ $((SECONDS - TOKENS_AT)) -gt 2700 ]; then sign_in; fi
}

# run_load NAME ROUND ARGS...: runs the load generator, shows its lines, records its result.
# A failed run stops the script (its output and the logs stay in the work directory).
run_load() {
  local name="$1" round="$2" rc=0 rate
  shift 2
  # The rate offered, as the result's tag (RATE_HZ, set by the ceiling's runs, or 20).
  rate="${RATE_HZ:-20}"
  wait_quiet
  GC_BENCH_HOST_TOKEN="$(cat "$WORK/host.txt")" timeout $((DURATION + 600)) "$LOAD" "$@" \
    >"$WORK/$name-$round.out" 2>&1 || rc=$?
  grep -v '^result ' "$WORK/$name-$round.out" || true
  if [ "$rc" -ne 0 ]; then
    convene_log_report
    convene_die "the $name run failed ($rc): see $WORK/$name-$round.out and the logs there"
  fi
  echo "$name round=$round rate=$rate $(sed -n 's/^result //p' "$WORK/$name-$round.out")" \
    >>"$RESULTS"
}

echo_run() { # round
  "$WS_ECHO" --addr "127.0.0.1:$ECHO_PORT" >>"$WORK/echo.log" 2>&1 &
  ECHO_PID=$!
  for _ in $(seq 1 100); do convene_port_open 127.0.0.1 "$ECHO_PORT" && break; sleep 0.1; done
  run_load echo "$1" echo --url "ws://127.0.0.1:$ECHO_PORT" --rooms "$ROOMS" \
    --per-room "$PER_ROOM" --duration-secs "$DURATION" --server-pid "$ECHO_PID" \
    --cpu "echo=$ECHO_PID" --rate-hz "${RATE_HZ:-20}"
  stop_echo
}

mc_args() {
  echo mc --gc-url "$GC_URL" --mc-url "http://127.0.0.1:$MC_PORT" \
    --tokens-file "$WORK/tokens.txt" --rooms "$ROOMS" --per-room "$PER_ROOM" \
    --duration-secs "$DURATION" --server-pid "${PID_OF[mc]}" --cpu "mc=${PID_OF[mc]}" \
    --rate-hz "${RATE_HZ:-20}" \
    --cpu "redis=$REDIS_PID" --cpu "gc=${PID_OF[gc]}" --cpu "ac=${PID_OF[ac]}"
}

mc_run() { # round
  ensure_tokens
  convene_log_mark
  start_services ac gc mc
  # shellcheck disable=SC2046 # word splitting of mc_args is intended (no spaces inside)
  run_load mc "$1" $(mc_args)
  convene_log_report
  stop_services
  reset_state
}

lobby_run() { # round
  ensure_tokens
  convene_log_mark
  start_services ac gc mc
  run_load lobby "$1" lobby --gc-url "$GC_URL" --tokens-file "$WORK/tokens.txt" \
    --first "$CLIENTS" --users "$LOBBY_USERS" --cpu "mc=${PID_OF[mc]}" \
    --cpu "redis=$REDIS_PID" --cpu "gc=${PID_OF[gc]}" --cpu "ac=${PID_OF[ac]}"
  convene_log_report
  stop_services
  reset_state
}

broadcast_run() { # round
  "$WS_ECHO" --addr "127.0.0.1:$ECHO_PORT" --broadcast >>"$WORK/echo.log" 2>&1 &
  ECHO_PID=$!
  for _ in $(seq 1 100); do convene_port_open 127.0.0.1 "$ECHO_PORT" && break; sleep 0.1; done
  run_load broadcast "$1" broadcast --url "ws://127.0.0.1:$ECHO_PORT" --people "$PEOPLE" \
    --rounds "$TOWNHALL_ROUNDS" --server-pid "$ECHO_PID" --cpu "echo=$ECHO_PID"
  stop_echo
}

townhall_run() { # round
  ensure_tokens
  convene_log_mark
  start_services ac gc mc
  run_load townhall "$1" townhall --gc-url "$GC_URL" --mc-url "http://127.0.0.1:$MC_PORT" \
    --tokens-file "$WORK/tokens.txt" --people "$PEOPLE" --rounds "$TOWNHALL_ROUNDS" \
    --server-pid "${PID_OF[mc]}" --cpu "mc=${PID_OF[mc]}" --cpu "redis=$REDIS_PID" \
    --cpu "gc=${PID_OF[gc]}"
  convene_log_report
  stop_services
  reset_state
}

# One more mc run with MC under perf (BENCH_PROFILE=1): where MC spends its CPU under load.
profile_run() {
  local perf_pid started="$WORK/profile.started"
  convene_have perf || convene_apt_install linux-perf
  ensure_tokens
  start_services ac gc mc
  echo "--- profile: an mc run with MC under perf record (not counted)"
  # shellcheck disable=SC2046 # as in mc_run
  GC_BENCH_HOST_TOKEN="$(cat "$WORK/host.txt")" timeout $((DURATION + 600)) "$LOAD" \
    $(mc_args) --started-file "$started" >"$WORK/profile.out" 2>&1 &
  local load_pid=$!
  for _ in $(seq 1 1200); do [ -e "$started" ] && break; sleep 0.1; done
  timeout $((DURATION + 60)) perf record -q -F 999 -o "$WORK/perf-mc.data" \
    -p "${PID_OF[mc]}" -- sleep $((DURATION > 2 ? DURATION - 1 : 1)) 2>/dev/null &
  perf_pid=$!
  wait "$load_pid" || true
  wait "$perf_pid" || true
  grep -E '^(sent|mc received|delay ms|dropped|cpu ms)' "$WORK/profile.out" || true
  stop_services
  reset_state
  echo "mc: share of its CPU samples by crate (kernel: system calls, loopback TCP)"
  perf report -i "$WORK/perf-mc.data" --stdio --no-children --sort dso,sym 2>/dev/null |
    python3 "$CONVENE_REPO/scripts/bench-join-summary.py" --profile
  echo "mc: the heaviest symbols"
  # awk reads to the end: an early exit would kill perf with SIGPIPE and fail the pipeline.
  perf report -i "$WORK/perf-mc.data" --stdio --no-children --sort sym 2>/dev/null |
    awk '/^ +[0-9]/ && n++ < 25'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "Redis $(redis-cli -u "$REDIS_BASE" info server | tr -d '\r' | awk -F: '/^redis_version/ {print $2}');" \
  "commit $(git rev-parse --short HEAD)$(git diff --name-only HEAD -- crates ':!crates/gc-service/benches' |
    awk 'NR == 1 {printf " with local changes to"} {printf " %s", $0}');" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
if [ -n "${BENCH_MC_BIN:-}" ]; then echo "mc: $MC_BIN (BENCH_MC_BIN), not the release build"; fi
echo "settings: ${DURATION}s runs, $ROUNDS rounds, $ROOMS rooms x $PER_ROOM clients at" \
  "${RATES:-20} Hz, lobby $([ -n "$RATES" ] && echo none || echo "$LOBBY_USERS admissions");" \
  "ulimit -n $(ulimit -n); MC WS_MAX_CONNECTIONS $MC_WS_MAX"
reset_state
sign_in
if [ "$TOWNHALL" = 1 ]; then
  for round in $(seq 1 "$ROUNDS"); do
    echo "=== round $round, $(cut -d' ' -f1-3 /proc/loadavg) load"
    broadcast_run "$round"
    townhall_run "$round"
  done
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  for svc in ac gc mc; do
    echo "$svc logged $( (wc -l <"$WORK/$svc.log") 2>/dev/null || echo 0) lines at warn or error"
  done
  echo
  echo "=== summary: median of $ROUNDS rounds (min-max), $PEOPLE people," \
    "$TOWNHALL_ROUNDS broadcasts a run"
  python3 "$CONVENE_REPO/scripts/bench-signaling-townhall.py" "$RESULTS"
  exit 0
fi
if [ -n "$RATES" ]; then
  # The ceiling: each rate in turn, echo then mc, lowest rate first in every round.
  for round in $(seq 1 "$ROUNDS"); do
    for RATE_HZ in $RATES; do
      echo "=== round $round, $RATE_HZ Hz a client ($((CLIENTS * RATE_HZ)) a second offered)," \
        "$(cut -d' ' -f1-3 /proc/loadavg) load"
      if [ "$(speaker_gap_ms)" != 150 ]; then
        echo "mc: ACTIVE_SPEAKER_SILENCE_GAP_MS=$(speaker_gap_ms) at $RATE_HZ Hz (default 150 ms" \
          "is under the period)"
      fi
      echo_run "$round-$RATE_HZ"
      mc_run "$round-$RATE_HZ"
    done
  done
  unset RATE_HZ
  echo
  echo "=== summary: the highest rate each sustained, ${DURATION}s runs, $CLIENTS clients"
  python3 "$CONVENE_REPO/scripts/bench-signaling-ceiling.py" "$RESULTS" "$DURATION" "$(nproc)"
  exit 0
fi
for round in $(seq 1 "$ROUNDS"); do
  echo "=== round $round, $(cut -d' ' -f1-3 /proc/loadavg) load"
  echo_run "$round"
  mc_run "$round"
  lobby_run "$round"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "${BENCH_PROFILE:-0}" = 1 ]; then profile_run; fi
for svc in ac gc mc; do
  echo "$svc logged $( (wc -l <"$WORK/$svc.log") 2>/dev/null || echo 0) lines at warn or error" \
    "in all (the \"log\" lines of each run say which)"
done

echo
echo "=== summary: median of $ROUNDS rounds (min-max), ${DURATION}s runs, $CLIENTS clients"
python3 "$CONVENE_REPO/scripts/bench-signaling-summary.py" "$RESULTS" "$DURATION" "$(nproc)"
