#!/usr/bin/env bash
#
# The env-tests (env-tests/, DESIGN section 9): black-box tests of a deployed Convene stack,
# which reach it only through its public interfaces (AC and GC over REST, MC over its signaling
# WebSocket, every /metrics). By default this script starts a stack of its own with
# scripts/dev.sh, beside any stack a developer runs, runs the tests against it with
# cargo-nextest, and stops it again, whatever happens.
#
# Usage: scripts/env-tests.sh [--no-stack | --keep] [NEXTEST_ARGS...]
#        scripts/env-tests.sh down
#   (default)   start the env-test stack, run every env-test, stop the stack
#   --keep      the same, but leave the stack running afterwards, to run single tests against
#               it (`--no-stack` with .dev/env-tests/tokens.env sourced); `down` stops it
#   --no-stack  run the tests against the stack the environment names (kind, staging):
#               CONVENE_AC_URL, CONVENE_GC_URL, CONVENE_MC_URL (optionally CONVENE_MC_URLS, all
#               controllers), CONVENE_ADMIN_CLIENT_ID and CONVENE_ADMIN_CLIENT_SECRET
#   down        stop a stack left running by --keep
# NEXTEST_ARGS go to `cargo nextest run --profile env-tests -p env-tests`, e.g. a test-name
# filter (the default nextest profile, which scripts/test.sh uses, leaves the env-tests out).
#
# The env-test stack: AC http://127.0.0.1:18082, GC http://127.0.0.1:18080 (gRPC 18051), two MCs
# http://127.0.0.1:18081 (gRPC 18052) and http://127.0.0.1:18083 (gRPC 18053), their ops ports
# (probes and metrics) GC 19080, MC 19081, AC 19082, MC 2 19083, all below Linux's ephemeral
# ports (see scripts/lib.sh); state, logs and pids in .dev/env-tests; PostgreSQL database
# convene_env_tests (dropped and created afresh at every start) and Redis database 9, on the
# servers scripts/lib.sh finds or starts. A failing run prints where the service logs are.
# promtool (Debian's `prometheus` package, never started) is installed when missing: the
# metrics tests parse every /metrics with it.
# With its own stack, it also runs the webhook receiver of scripts/webhook_receiver.py on
# http://127.0.0.1:18090 (CONVENE_WEBHOOK_RECEIVER_URL), which checks every delivery with the
# Standard Webhooks reference library (`standardwebhooks`, PyPI, pinned, in the virtualenv
# .dev/env-tests/webhook-tools); the webhook env-test needs it (with --no-stack, point
# CONVENE_WEBHOOK_RECEIVER_URL at a receiver the stack's GC can reach, or the test says it
# cannot run and fails).
set -euo pipefail

MODE=stack
KEEP=0
case "${1:-}" in
  --no-stack)
    MODE=no-stack
    shift
    ;;
  --keep)
    KEEP=1
    shift
    ;;
  down)
    MODE=down
    shift
    ;;
esac

if [ "$MODE" != no-stack ]; then
  # Read by scripts/lib.sh (sourced below) and scripts/dev.sh: a stack of its own.
  CONVENE_DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.dev/env-tests"
  CONVENE_PG_DATABASE=convene_env_tests
  CONVENE_REDIS_DB=9
  CONVENE_AC_PORT=18082
  CONVENE_GC_PORT=18080
  CONVENE_MC_PORT=18081
  CONVENE_GC_GRPC_PORT=18051
  CONVENE_MC_GRPC_PORT=18052
  CONVENE_MC2_PORT=18083
  CONVENE_MC2_GRPC_PORT=18053
  CONVENE_GC_OPS_PORT=19080
  CONVENE_MC_OPS_PORT=19081
  CONVENE_AC_OPS_PORT=19082
  CONVENE_MC2_OPS_PORT=19083
  export CONVENE_DEV_DIR CONVENE_PG_DATABASE CONVENE_REDIS_DB CONVENE_AC_PORT CONVENE_GC_PORT \
    CONVENE_MC_PORT CONVENE_GC_GRPC_PORT CONVENE_MC_GRPC_PORT CONVENE_MC2_PORT CONVENE_MC2_GRPC_PORT \
    CONVENE_GC_OPS_PORT CONVENE_MC_OPS_PORT CONVENE_AC_OPS_PORT CONVENE_MC2_OPS_PORT
fi

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

DEV="$CONVENE_REPO/scripts/dev.sh"
STARTED_AT=$SECONDS
RECEIVER_PORT=18090
RECEIVER_PID_FILE="$CONVENE_DEV_DIR/webhook-receiver.pid"

stop_webhook_receiver() {
  local pid
  pid="$(cat "$RECEIVER_PID_FILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$RECEIVER_PID_FILE"
}

if [ "$MODE" = down ]; then
  stop_webhook_receiver
  exec "$DEV" down
fi

# The webhook receiver the webhook env-test registers its endpoints with (see above).
start_webhook_receiver() {
  local venv="$CONVENE_DEV_DIR/webhook-tools" url="http://127.0.0.1:$RECEIVER_PORT"
  # Pinned: a new version is a deliberate change, reviewed like code.
  convene_py_tools "$venv" standardwebhooks==1.3.0
  stop_webhook_receiver
  mkdir -p "$CONVENE_DEV_DIR/logs"
  "$venv/bin/python" "$CONVENE_REPO/scripts/webhook_receiver.py" --port "$RECEIVER_PORT" \
    >"$CONVENE_DEV_DIR/logs/webhook-receiver.log" 2>&1 &
  echo $! >"$RECEIVER_PID_FILE"
  for _ in $(seq 1 50); do
    if "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url/health" 2>/dev/null; then
      export CONVENE_WEBHOOK_RECEIVER_URL="$url"
      convene_log "webhook receiver on $url (Standard Webhooks' Python library checks every delivery)"
      return
    fi
    sleep 0.2
  done
  convene_die "the webhook receiver did not start (see ${CONVENE_DEV_DIR#"$CONVENE_REPO"/}/logs/webhook-receiver.log)"
}

# The services' own settings on the env-test stack (dev.sh passes the environment on):
# - the key-rotation test waits for the next signing key to sign: publish it 21 s before it
#   signs (the least AC accepts with its 1 s JWKS cache; 60 s by default) and let AC look for
#   it every second (30 s by default);
# - every wrong secret the tests send counts against 127.0.0.1's failure budget, which repeated
#   runs would exhaust within AC's 15-minute window;
# - a stop need not wait for load balancers that do not exist here;
# - two meeting controllers, and GC gives a silent one up after 6 s (15 s by default), so that
#   the browser tests' failover takes seconds.
stack_settings() {
  export AC_KEY_ACTIVATION_DELAY_SECS=21 AC_KEY_REFRESH_INTERVAL_SECS=1
  export AC_LOGIN_MAX_FAILURES_PER_IP=100000
  export SHUTDOWN_READINESS_GRACE_SECS=0
  export MC_HEARTBEAT_INTERVAL_SECS=2 MC_HEARTBEAT_TIMEOUT_SECS=6
}

# A fresh database at every start: nothing of an earlier run (its orgs, meetings and keys)
# stays to be counted, and nothing accumulates.
fresh_database() {
  local psql
  ensure_postgres
  psql="$(convene_pg_tool psql)"
  convene_log "dropping database $CONVENE_PG_DATABASE (the env-test stack starts afresh)"
  PGCONNECT_TIMEOUT=5 "$psql" -X -q -v ON_ERROR_STOP=1 "$TEST_DATABASE_URL" \
    -c "DROP DATABASE IF EXISTS $CONVENE_PG_DATABASE WITH (FORCE)" >/dev/null \
    || convene_die "could not drop database $CONVENE_PG_DATABASE"
}

log_hint() {
  local svc log
  # Only errors: the tests cause warnings on purpose (every refusal they check is one).
  convene_log "service logs of the env-test stack (JSON lines; their last errors, if any, below):"
  for svc in ac-service gc-service mc-service; do
    log="$CONVENE_DEV_DIR/logs/$svc.log"
    printf '  %s\n' "${log#"$CONVENE_REPO"/}" >&2
    if [ -f "$log" ]; then
      grep -F '"level":"ERROR"' "$log" | tail -n 3 | cut -c1-300 | sed 's/^/      /' >&2 || true
    fi
  done
}

STACK_UP=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ] && [ "$MODE" = stack ] && [ -d "$CONVENE_DEV_DIR/logs" ]; then
    log_hint
  fi
  if [ "$STACK_UP" = 1 ] && [ "$KEEP" = 0 ]; then
    stop_webhook_receiver
    "$DEV" down || convene_warn "scripts/dev.sh down failed: see scripts/dev.sh status (CONVENE_DEV_DIR=$CONVENE_DEV_DIR)"
  fi
  if [ "$status" -eq 0 ]; then
    convene_log "env-tests passed in $((SECONDS - STARTED_AT)) s"
  else
    convene_log "env-tests FAILED (exit code $status) after $((SECONDS - STARTED_AT)) s"
  fi
  exit "$status"
}

start_stack() {
  stack_settings
  fresh_database
  STACK_UP=1
  convene_log "starting the env-test stack (scripts/dev.sh up; its banner in ${CONVENE_DEV_DIR#"$CONVENE_REPO"/}/up.log)"
  mkdir -p "$CONVENE_DEV_DIR"
  "$DEV" up --second-mc >"$CONVENE_DEV_DIR/up.log" || convene_die "the env-test stack did not start (see above)"
  # URLs and the admin client, as dev.sh wrote them.
  set -a
  # shellcheck source=/dev/null
  source "$CONVENE_DEV_DIR/tokens.env"
  set +a
}

require_environment() {
  local var missing=()
  for var in CONVENE_AC_URL CONVENE_GC_URL CONVENE_MC_URL CONVENE_ADMIN_CLIENT_ID CONVENE_ADMIN_CLIENT_SECRET; do
    [ -n "${!var:-}" ] || missing+=("$var")
  done
  [ ${#missing[@]} -eq 0 ] \
    || convene_die "--no-stack needs the stack in the environment; missing: ${missing[*]} (see env-tests/README.md)"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_rust_tools
ensure_nextest
convene_have promtool || convene_apt_install prometheus
if [ "$MODE" = stack ]; then
  start_stack
  start_webhook_receiver
else
  require_environment
fi
convene_log "env-tests against AC $CONVENE_AC_URL, GC $CONVENE_GC_URL, MC ${CONVENE_MC_URLS:-$CONVENE_MC_URL}"
convene_log "cargo nextest run --profile env-tests -p env-tests --no-fail-fast $*"
# A failure names the service, request and answer; backtraces of test code would only bury it
# (ENV_TESTS_BACKTRACE=1 brings them back).
RUST_BACKTRACE="${ENV_TESTS_BACKTRACE:-0}" cargo nextest run --profile env-tests -p env-tests --no-fail-fast "$@"
if [ "$KEEP" = 1 ]; then
  convene_log "the env-test stack keeps running: set -a; source ${CONVENE_DEV_DIR#"$CONVENE_REPO"/}/tokens.env; set +a; CONVENE_WEBHOOK_RECEIVER_URL=$CONVENE_WEBHOOK_RECEIVER_URL scripts/env-tests.sh --no-stack [FILTER]; stop it with scripts/env-tests.sh down"
fi
