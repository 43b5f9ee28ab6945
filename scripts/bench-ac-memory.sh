#!/usr/bin/env bash
#
# Measures AC's resident memory around a burst of sign-ins: idle, peak during the burst, and
# 10 s after it; and AC's CPU per sign-in against the floor of one Argon2id check. Builds AC in
# release (the workspace profile), starts it against a throwaway database on the local
# PostgreSQL (created here, seeded from scripts/dev-seed.json, dropped at the end), records
# VmRSS, sends the burst with curl, samples VmRSS every 100 ms meanwhile and reads VmHWM (the
# kernel's peak) at the end. The failure budgets are raised so the rate limits
# do not interfere, and the hashing wait so no request is turned away.
#
# Usage: scripts/bench-ac-memory.sh [--binary PATH] [--label NAME] [--requests N]
#                                   [--concurrency C] [--wrong-every K] [--no-floor]
#   --binary PATH     measure this ac-service binary instead of building one (e.g. a build of
#                     another commit, to compare before and after a change)
#   --label NAME      name printed in the result line (default: the commit of the checkout)
#   --requests N      sign-ins in the burst (default 500)
#   --concurrency C   sign-ins in flight at once (default 50)
#   --wrong-every K   every K-th sign-in uses a wrong password (default 4)
#   --no-floor        skip the floor (below)
#
# AC's CPU time over the burst (/proc/PID/stat) gives its CPU per sign-in; then the floor, one
# Argon2id check alone on one thread (cargo bench -p ac-service --bench password_floor), and
# the ratio of the two: what HTTP, the database and the token add to the hash.
#
# Needs: psql (PostgreSQL client), curl, python3. PostgreSQL is reached with
# BENCH_ADMIN_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); the role must
# be allowed to create databases. Loopback only; every loop is bounded. Prints one line:
#   RESULT label=... idle_kib=... peak_kib=... after_10s_kib=... statuses=... burst_secs=...
#          ac_cpu_ms=... cpu_us_per_sign_in=... floor_cpu_us_per_check=... per_sign_in_over_floor=...
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ADMIN_URL="${BENCH_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BINARY=""
LABEL="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
REQUESTS=500
CONCURRENCY=50
WRONG_EVERY=4
FLOOR=1

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --label) LABEL="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --wrong-every) WRONG_EVERY="$2"; shift 2 ;;
    --no-floor) FLOOR=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo "[bench-ac-memory] $*" >&2; }

if [ -z "$BINARY" ]; then
  log "building ac-service in release"
  (cd "$REPO" && cargo build --release -p ac-service >&2)
  BINARY="${CARGO_TARGET_DIR:-$REPO/target}/release/ac-service"
fi
[ -x "$BINARY" ] || { echo "not an executable: $BINARY" >&2; exit 2; }

DB="convene_bench_mem_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
AC_PID=""

cleanup() {
  if [ -n "$AC_PID" ] && kill -0 "$AC_PID" 2>/dev/null; then
    kill "$AC_PID" 2>/dev/null || true
    wait "$AC_PID" 2>/dev/null || true
  fi
  psql -q "$ADMIN_URL" -c "drop database if exists $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="$DB_URL"
export AC_HTTP_ADDR="127.0.0.1:$PORT" AC_OPS_ADDR=127.0.0.1:0
AC_MASTER_KEY="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
export AC_MASTER_KEY
export JWT_ISSUER="convene-ac"
export RUST_LOG="warn"
# Budgets far above the burst, so every sign-in is checked, and no 503 for want of a slot.
export AC_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000
export AC_LOGIN_MAX_FAILURES_PER_IP=100000
export AC_HASH_WAIT_MS=30000

log "database $DB, AC on $BASE, binary $BINARY"
psql -q "$ADMIN_URL" -c "create database $DB" >/dev/null
"$BINARY" migrate >/dev/null
"$BINARY" seed --file "$REPO/scripts/dev-seed.json" >/dev/null
"$BINARY" serve >"$WORK/ac.log" 2>&1 &
AC_PID=$!

for _ in $(seq 1 300); do
  if curl -fs -o /dev/null "$BASE/health/ready"; then break; fi
  kill -0 "$AC_PID" 2>/dev/null || { cat "$WORK/ac.log" >&2; exit 1; }
  sleep 0.1
done
curl -fs -o /dev/null "$BASE/health/ready" || { log "AC did not become ready"; exit 1; }

rss_kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$AC_PID/status"; }
# AC's CPU time (user and system, all threads) in ms: fields 14 and 15 of /proc/PID/stat, in
# ticks of 1/100 s (read after the command name, which ends at the last ')').
cpu_ms() { sed 's/.*) //' "/proc/$AC_PID/stat" | awk '{ print ($12 + $13) * 10 }'; }

sleep 2
IDLE="$(rss_kib VmRSS)"
log "idle VmRSS ${IDLE} KiB; sending $REQUESTS sign-ins, $CONCURRENCY at a time"

# Samples VmRSS every 100 ms until the burst is over (bounded: at most 10 minutes).
(
  max=0
  for _ in $(seq 1 6000); do
    [ -e "$WORK/done" ] && break
    now="$(rss_kib VmRSS || echo 0)"
    [ "${now:-0}" -gt "$max" ] && max="$now"
    sleep 0.1
  done
  echo "$max" >"$WORK/sampled_peak"
) &
SAMPLER=$!

sign_in() {
  local n="$1" password="demo-password"
  if [ $((n % WRONG_EVERY)) -eq 0 ]; then password="wrong-password"; fi
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 \
    -H 'content-type: application/json' \
    -d "{\"email\":\"host@demo.test\",\"password\":\"$password\"}" \
    "$BASE/api/v1/auth/user/token"
}
export -f sign_in
export BASE WRONG_EVERY

CPU_BEFORE="$(cpu_ms)"
START="$(date +%s.%N)"
seq 1 "$REQUESTS" | xargs -P "$CONCURRENCY" -I{} bash -c 'sign_in {}' >"$WORK/statuses"
END="$(date +%s.%N)"
CPU_BURST=$(($(cpu_ms) - CPU_BEFORE))
touch "$WORK/done"
wait "$SAMPLER"

PEAK_HWM="$(rss_kib VmHWM)"
SAMPLED="$(cat "$WORK/sampled_peak")"
STATUSES="$(sort "$WORK/statuses" | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = "," }')"
log "burst done; waiting 10 s"
sleep 10
AFTER="$(rss_kib VmRSS)"
THREADS="$(awk '$1 == "Threads:" { print $2 }' "/proc/$AC_PID/status")"
BURST_SECS="$(python3 -c "print(round($END - $START, 2))")"

CPU_PER_SIGN_IN_US=$((CPU_BURST * 1000 / REQUESTS))

# The floor, right after the burst on the same machine: one Argon2id check alone, on one thread
# (crates/ac-service/benches/password_floor.rs), built from this checkout.
FLOOR_US=""
if [ "$FLOOR" = 1 ]; then
  log "the floor: Argon2id checks alone"
  FLOOR_US="$( (cd "$REPO" && cargo bench -q -p ac-service --bench password_floor -- 40) |
    sed -n 's/^FLOOR .*cpu_us_per_check=\([0-9]*\).*/\1/p')"
fi

echo "RESULT label=$LABEL idle_kib=$IDLE peak_kib=$PEAK_HWM sampled_peak_kib=$SAMPLED" \
  "after_10s_kib=$AFTER threads_after=$THREADS statuses=$STATUSES burst_secs=$BURST_SECS" \
  "ac_cpu_ms=$CPU_BURST cpu_us_per_sign_in=$CPU_PER_SIGN_IN_US" \
  "floor_cpu_us_per_check=${FLOOR_US:-not-run}" \
  "per_sign_in_over_floor=$(python3 -c "print(round($CPU_PER_SIGN_IN_US / $FLOOR_US, 2) if '$FLOOR_US' else 'not-run')")"
