# Pieces shared by the benchmarks that run the release services (bench-create.sh, bench-join.sh,
# bench-signaling.sh). Sourced after lib.sh; the functions read the caller's globals at call
# time: WORK (logs), CARGO_TARGET_DIR, REDIS_BASE and REDIS_DB, PASSWORD.

# The newest executable of the release build whose name starts with $1- (a bench target).
newest() {
  find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name "$1-*" \
    -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2
}

# Claims a Redis database of our own, setting REDIS_DB: the first of 15..1 that is empty once
# the claim key $1 is in it (MC has no key prefix, so it needs a database to itself).
claim_redis_db() {
  local claim="$1" n
  REDIS_DB=""
  for n in $(seq 15 -1 1); do
    if [ "$(redis-cli -u "$REDIS_BASE/$n" set "$claim" "$$" nx ex 7200 2>/dev/null)" = "OK" ]; then
      if [ "$(redis-cli -u "$REDIS_BASE/$n" dbsize)" = "1" ]; then
        REDIS_DB="$n"
        break
      fi
      redis-cli -u "$REDIS_BASE/$n" del "$claim" >/dev/null
    fi
  done
  [ -n "$REDIS_DB" ] || convene_die "no empty Redis database among 1..15 on $REDIS_BASE"
  convene_log "MC's rooms go to Redis database $REDIS_DB"
}

# Room keys of MC in the claimed Redis database (nothing else is ever deleted).
redis_bench() { redis-cli -u "$REDIS_BASE/$REDIS_DB" "$@"; }
drop_room_keys() {
  redis_bench --scan --pattern 'room:*' | xargs -r -n 500 redis-cli -u "$REDIS_BASE/$REDIS_DB" \
    unlink >/dev/null
}

# The services' environment (a fresh master key, quiet logs, quick stops) and the seed file
# $1: the bench service clients, and the bench org with the host and the pool's first user.
bench_environment() {
  AC_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
  export AC_MASTER_KEY
  export JWT_ISSUER=convene-ac RUST_LOG=warn SHUTDOWN_READINESS_GRACE_SECS=0 \
    SHUTDOWN_DRAIN_TIMEOUT_SECS=2
  cat >"$1" <<JSON
{"service_clients": [
  {"client_id": "bench-gc", "client_secret": "bench-gc-secret-0001",
   "service_type": "global-controller", "scopes": ["internal:meeting-token", "internal:mc"]},
  {"client_id": "bench-mc", "client_secret": "bench-mc-secret-0001",
   "service_type": "meeting-controller", "scopes": ["internal:gc"]}],
 "orgs": [{"slug": "bench", "name": "Bench Org", "max_concurrent_meetings": 100000,
  "max_participants_per_meeting": 100,
  "users": [{"email": "bench@bench.test", "password": "$PASSWORD", "display_name": "Bench",
             "roles": ["user"]},
            {"email": "bench-u0@bench.test", "password": "$PASSWORD",
             "display_name": "Bench User 0", "roles": ["user"]}]}]}
JSON
}

wait_ready() { # port
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  convene_die "service on port $1 did not become ready (logs in $WORK)"
}

# GC's mean items per shared statement, by queue ("creates 7.3 lookups 2.0 admissions 4.1"),
# and its mean joins per call to a meeting controller ("mc_joins 3.2"), from its /metrics at
# base URL $1 (gc_db_batch_items, gc_mc_join_batch_items); empty when GC cannot be read.
batch_means() {
  { curl -sf --max-time 5 "$1/metrics" || true; } | awk '
    /^gc_db_batch_items_(sum|count)\{/ {
      match($0, /queue="[a-z_]+"/)
      queue = substr($0, RSTART + 7, RLENGTH - 8)
      if ($0 ~ /^gc_db_batch_items_sum/) sum[queue] = $NF; else count[queue] = $NF
    }
    /^gc_mc_join_batch_items_sum / { sum["mc_joins"] = $NF }
    /^gc_mc_join_batch_items_count / { count["mc_joins"] = $NF }
    END { for (queue in count) if (count[queue] > 0) printf "%s %.1f ", queue, sum[queue] / count[queue] }'
}

# Share of all CPUs busy over $1 seconds, in per mille (user, nice, system, irq, softirq, steal).
busy_permille() {
  local before after
  before="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
  sleep "$1"
  after="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
  awk -v b="$before" -v a="$after" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    print (y[2] > x[2]) ? int(1000 * (y[1] - x[1]) / (y[2] - x[2])) : 0 }'
}
# Other people's builds and tests share this machine: before each measured run, wait (at most
# BENCH_QUIET_WAIT s) until under a tenth of its CPU time is busy, so that they are not inside
# the window. The "elsewhere" CPU time each run reports says how far that worked.
wait_quiet() {
  local waited=0 busy limit="${BENCH_QUIET_WAIT:-300}"
  while :; do
    busy="$(busy_permille 2)"
    [ "$busy" -lt 100 ] && return 0
    if [ "$waited" -ge "$limit" ]; then
      convene_warn "the machine stayed busy ($((busy / 10)) % of its CPU time): measuring anyway"
      return 0
    fi
    [ "$waited" -eq 0 ] && convene_log "waiting for the machine to quiet down ($((busy / 10)) % busy)"
    waited=$((waited + 2))
  done
}
