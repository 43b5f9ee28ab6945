#!/usr/bin/env bash
#
# Convene's local stack: PostgreSQL and Redis (reused when reachable, else project-local
# ones under .dev/), the auth controller (AC), global controller (GC) and meeting controller
# (MC), seeded with demo data, plus ready-to-use demo tokens.
#
# Usage: scripts/dev.sh [COMMAND]
#   up        (default) build, migrate, seed, (re)start the three services, print URLs and tokens;
#             `up --second-mc` also starts a second meeting controller (convene-mc-2)
#   down      stop the services, and PostgreSQL/Redis if they are the project-local ones
#   status    show what runs (exit 0 when all three services are running, 3 otherwise)
#   tokens    issue fresh demo tokens (they expire) and rewrite .dev/tokens.env
#   logs [S]  follow the logs of all services, or of service S (ac-service, gc-service, mc-service)
#   webhook   start a webhook receiver on http://127.0.0.1:8090 (scripts/webhook_receiver.py;
#             CONVENE_WEBHOOK_RECEIVER_PORT moves it) that checks every delivery with the Standard
#             Webhooks library, and subscribe the demo org to every event type with it
#             (docs/webhooks.md, "Trying it locally"); `down` stops it
#
# Environment: see scripts/lib.sh for PostgreSQL/Redis settings; service ports can be moved
# with CONVENE_AC_PORT (8082), CONVENE_GC_PORT (8080), CONVENE_MC_PORT (8081),
# CONVENE_GC_GRPC_PORT (8051), CONVENE_MC_GRPC_PORT (8052), the ops ports (health probes and
# /metrics alone) CONVENE_GC_OPS_PORT (9080), CONVENE_MC_OPS_PORT (9081), CONVENE_AC_OPS_PORT
# (9082), and for the second MC CONVENE_MC2_PORT (8083), CONVENE_MC2_GRPC_PORT (8053) and
# CONVENE_MC2_OPS_PORT (9083);
# CONVENE_READY_TIMEOUT (60 s);
# RUST_LOG (info). The services inherit the rest of the environment, so their own settings
# (AC_KEY_ACTIVATION_DELAY_SECS, say) can be given too. State, logs and pids live in .dev/
# (git-ignored; CONVENE_DEV_DIR moves them, and CONVENE_PG_DATABASE / CONVENE_REDIS_DB pick
# another database: a second stack beside this one, as scripts/env-tests.sh runs);
# `rm -rf .dev` after `down` resets everything.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIND=127.0.0.1
AC_PORT="${CONVENE_AC_PORT:-8082}"
GC_PORT="${CONVENE_GC_PORT:-8080}"
MC_PORT="${CONVENE_MC_PORT:-8081}"
MC2_PORT="${CONVENE_MC2_PORT:-8083}"
# Not the services' own gRPC defaults (50051, 50052): those lie in Linux's ephemeral port
# range, where a client socket may hold them first (see scripts/lib.sh).
GC_GRPC_PORT="${CONVENE_GC_GRPC_PORT:-8051}"
MC_GRPC_PORT="${CONVENE_MC_GRPC_PORT:-8052}"
MC2_GRPC_PORT="${CONVENE_MC2_GRPC_PORT:-8053}"
GC_OPS_PORT="${CONVENE_GC_OPS_PORT:-9080}"
MC_OPS_PORT="${CONVENE_MC_OPS_PORT:-9081}"
AC_OPS_PORT="${CONVENE_AC_OPS_PORT:-9082}"
MC2_OPS_PORT="${CONVENE_MC2_OPS_PORT:-9083}"
AC_URL="http://$BIND:$AC_PORT"
GC_URL="http://$BIND:$GC_PORT"
MC_URL="http://$BIND:$MC_PORT"
READY_TIMEOUT="${CONVENE_READY_TIMEOUT:-60}"

SERVICES=(ac-service gc-service mc-service)
# Every instance dev.sh may have started, so `down` and a restart find them all.
ALL_SERVICES=(ac-service gc-service mc-service mc-service-2)
LOG_DIR="$CONVENE_DEV_DIR/logs"
PID_DIR="$CONVENE_DEV_DIR/pids"
TOKENS_FILE="$CONVENE_DEV_DIR/tokens.env"
MASTER_KEY_FILE="$CONVENE_DEV_DIR/master.key"
WEBHOOK_KEY_FILE="$CONVENE_DEV_DIR/webhook.key"
SEED_FILE="$CONVENE_REPO/scripts/dev-seed.json"
DEMO_PASSWORD="demo-password"

# Shown paths relative to the repository.
rel() { printf '%s' "${1#"$CONVENE_REPO"/}"; }

bin_dir() {
  local t="${CARGO_TARGET_DIR:-target}"
  case "$t" in /*) ;; *) t="$CONVENE_REPO/$t" ;; esac
  printf '%s/debug' "$t"
}

# The binary an instance runs.
bin_of() {
  case "$1" in
    mc-service-2) printf 'mc-service' ;;
    *) printf '%s' "$1" ;;
  esac
}

# The client secret of service client $1 in the seed file (the only place it is written).
seed_secret() {
  python3 -c 'import json, sys
for c in json.load(open(sys.argv[1]))["service_clients"]:
    if c["client_id"] == sys.argv[2]: print(c["client_secret"])' "$SEED_FILE" "$1" 2>/dev/null \
    || convene_die "cannot read the secret of $1 from $(rel "$SEED_FILE") (python3 needed)"
}

http_port_of() {
  case "$1" in
    ac-service) printf '%s' "$AC_PORT" ;;
    gc-service) printf '%s' "$GC_PORT" ;;
    mc-service) printf '%s' "$MC_PORT" ;;
    mc-service-2) printf '%s' "$MC2_PORT" ;;
  esac
}

# AC's master key: 32 random bytes, base64, generated once. Signing keys stored in the
# database are encrypted with it, so it must survive restarts.
load_master_key() {
  mkdir -p "$CONVENE_DEV_DIR"
  if [ ! -s "$MASTER_KEY_FILE" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$MASTER_KEY_FILE")
    convene_log "generated AC master key in $(rel "$MASTER_KEY_FILE") (if AC cannot decrypt its signing keys, the database predates this key: drop database ${CONVENE_PG_DATABASE:-convene})"
  fi
  AC_MASTER_KEY="$(cat "$MASTER_KEY_FILE")"
  # GC's key for the webhooks' secrets, the same way.
  if [ ! -s "$WEBHOOK_KEY_FILE" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$WEBHOOK_KEY_FILE")
  fi
  GC_WEBHOOK_KEY="$(cat "$WEBHOOK_KEY_FILE")"
}

# Fills SVC_ENV with the environment of service $1.
service_env() {
  SVC_ENV=("RUST_LOG=${RUST_LOG:-info}" "JWT_ISSUER=convene-ac" "AC_URL=$AC_URL")
  case "$1" in
    ac-service)
      SVC_ENV+=("DATABASE_URL=$DATABASE_URL" "AC_HTTP_ADDR=$BIND:$AC_PORT" "AC_OPS_ADDR=$BIND:$AC_OPS_PORT"
        "AC_MASTER_KEY=$AC_MASTER_KEY" "AC_CORS_ALLOWED_ORIGINS=$GC_URL")
      ;;
    gc-service)
      SVC_ENV+=("DATABASE_URL=$DATABASE_URL" "GC_HTTP_ADDR=$BIND:$GC_PORT" "GC_OPS_ADDR=$BIND:$GC_OPS_PORT"
        "GC_GRPC_ADDR=$BIND:$GC_GRPC_PORT" "GC_PUBLIC_BASE_URL=$GC_URL"
        "GC_CLIENT_ID=convene-gc" "GC_CLIENT_SECRET=$(seed_secret convene-gc)"
        # Development only: webhooks may target a receiver on this machine over plain http.
        "GC_WEBHOOK_KEY=$GC_WEBHOOK_KEY" "WEBHOOK_ALLOW_PRIVATE_TARGETS=true")
      web_env
      ;;
    mc-service)
      SVC_ENV+=("REDIS_URL=$REDIS_URL" "MC_HTTP_ADDR=$BIND:$MC_PORT" "MC_OPS_ADDR=$BIND:$MC_OPS_PORT"
        "MC_GRPC_ADDR=$BIND:$MC_GRPC_PORT" "GC_GRPC_URL=http://$BIND:$GC_GRPC_PORT"
        "MC_CLIENT_ID=convene-mc" "MC_CLIENT_SECRET=$(seed_secret convene-mc)")
      ;;
    mc-service-2)
      SVC_ENV+=("REDIS_URL=$REDIS_URL" "MC_HTTP_ADDR=$BIND:$MC2_PORT" "MC_OPS_ADDR=$BIND:$MC2_OPS_PORT"
        "MC_GRPC_ADDR=$BIND:$MC2_GRPC_PORT" "GC_GRPC_URL=http://$BIND:$GC_GRPC_PORT"
        "MC_CLIENT_ID=convene-mc-2" "MC_CLIENT_SECRET=$(seed_secret convene-mc-2)")
      ;;
  esac
}

service_pid() { convene_read_pid "$PID_DIR/$1.pid"; }

service_running() {
  local pid
  pid="$(service_pid "$1")"
  convene_pid_is "$pid" "$(bin_of "$1")"
}

stop_services() {
  local i svc pid
  for ((i = ${#ALL_SERVICES[@]} - 1; i >= 0; i--)); do
    svc="${ALL_SERVICES[i]}"
    pid="$(service_pid "$svc")"
    if [ -n "$pid" ]; then convene_stop_pid "$pid" "$(bin_of "$svc")" "$svc" 10; fi
    rm -f "$PID_DIR/$svc.pid"
  done
}

# Ports must be free once our own services are stopped; anything still there is not ours.
check_ports_free() {
  local spec name port busy=0
  local specs=("ac-service:$AC_PORT" "ac-service:$AC_OPS_PORT" "gc-service:$GC_PORT"
    "gc-service:$GC_GRPC_PORT" "gc-service:$GC_OPS_PORT" "mc-service:$MC_PORT"
    "mc-service:$MC_GRPC_PORT" "mc-service:$MC_OPS_PORT")
  if [ "${#SERVICES[@]}" -gt 3 ]; then
    specs+=("mc-service-2:$MC2_PORT" "mc-service-2:$MC2_GRPC_PORT" "mc-service-2:$MC2_OPS_PORT")
  fi
  for spec in "${specs[@]}"; do
    name="${spec%:*}"
    port="${spec##*:}"
    if convene_port_open "$BIND" "$port"; then
      convene_warn "port $port ($name) is in use by a process dev.sh did not start"
      busy=1
    fi
  done
  [ "$busy" -eq 0 ] \
    || convene_die "free the ports above or move the stack (CONVENE_*_PORT, see the top of this script)"
}

build() {
  convene_log "building ac-service, gc-service, mc-service (cargo build, dev profile)"
  (cd "$CONVENE_REPO" && cargo build --bin ac-service --bin gc-service --bin mc-service) \
    || convene_die "cargo build failed"
  build_web
}

# The meeting page (web/, docs/web.md), served by GC from web/dist. Built with the machine's
# Node.js and npm, installed from Debian's packages when missing; when that fails, the stack
# runs without pages (the API is unaffected).
build_web() {
  if ! convene_have npm; then
    (convene_apt_install nodejs npm) || true
  fi
  if ! convene_have npm; then
    convene_warn "npm is not available: the meeting page (web/) is not built, GC serves the API only"
    return
  fi
  convene_log "building the meeting page (web/: npm ci, npm run build)"
  (cd "$CONVENE_REPO/web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent build) \
    || convene_die "building web/ failed (run npm run build in web/ to see why)"
}

# GC serves the page only when it was built.
WEB_DIR="$CONVENE_REPO/web/dist"
web_env() {
  if [ -f "$WEB_DIR/index.html" ]; then
    SVC_ENV+=("GC_WEB_DIR=$WEB_DIR")
  fi
}

# Run a one-shot ac-service subcommand (migrate, seed ...) with AC's environment.
ac_command() {
  local bin
  bin="$(bin_dir)/ac-service"
  service_env ac-service
  (cd "$CONVENE_REPO" && env -u TEST_DATABASE_URL -u REDIS_URL "${SVC_ENV[@]}" "$bin" "$@") \
    || convene_die "ac-service $* failed"
}

start_service() {
  local svc="$1" bin log pid
  bin="$(bin_dir)/$(bin_of "$svc")"
  log="$LOG_DIR/$svc.log"
  [ -x "$bin" ] || convene_die "$bin not found (did the build produce it?)"
  mkdir -p "$LOG_DIR" "$PID_DIR"
  if [ -f "$log" ]; then mv -f "$log" "$log.prev"; fi
  service_env "$svc"
  # setsid: the service survives the terminal and ignores Ctrl-C meant for this script.
  (cd "$CONVENE_REPO" && exec setsid env -u DATABASE_URL -u TEST_DATABASE_URL -u REDIS_URL \
    "${SVC_ENV[@]}" "$bin" </dev/null >"$log" 2>&1) &
  pid=$!
  printf '%s\n' "$pid" >"$PID_DIR/$svc.pid"
  convene_log "started $svc (pid $pid, log $(rel "$log"))"
}

wait_ready() {
  local svc="$1" pid url code="" deadline
  pid="$(service_pid "$svc")"
  url="http://$BIND:$(http_port_of "$svc")/health/ready"
  deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! convene_pid_alive "$pid"; then
      tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
      rm -f "$PID_DIR/$svc.pid"
      convene_die "$svc exited during start-up (log: $(rel "$LOG_DIR/$svc.log"))"
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)"
    if [ "$code" = "200" ]; then
      convene_log "$svc is ready"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
      convene_die "$svc not ready after ${READY_TIMEOUT}s (GET $url answered ${code:-nothing}; log: $(rel "$LOG_DIR/$svc.log"))"
    fi
    sleep 0.5
  done
}

# Extract a top-level field of a JSON object read from stdin.
json_field() {
  if convene_have python3; then
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" 2>/dev/null
  else
    sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\{0,1\}\([^",}]*\).*/\1/p' | head -n 1
  fi
}

# Prints "<access_token> <expires_in>" for a demo user.
user_token() {
  local email="$1" resp code body token expires
  resp="$(curl -sS --max-time 10 -X POST "$AC_URL/api/v1/auth/user/token" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$DEMO_PASSWORD\"}" \
    -w '\n%{http_code}')" || convene_die "could not reach AC at $AC_URL to sign in $email"
  code="${resp##*$'\n'}"
  body="${resp%$'\n'*}"
  [ "$code" = "200" ] || convene_die "sign-in of $email failed: HTTP $code $body (was the seed applied?)"
  token="$(printf '%s' "$body" | json_field access_token)" || true
  expires="$(printf '%s' "$body" | json_field expires_in)" || true
  [ -n "$token" ] || convene_die "no access_token in AC's answer for $email: $body"
  printf '%s %s' "$token" "${expires:-?}"
}

issue_tokens() {
  local host guest admin_secret shown
  host="$(user_token host@demo.test)" || exit 1
  guest="$(user_token guest@demo.test)" || exit 1
  admin_secret="$(seed_secret convene-admin)" || exit 1
  shown="$(rel "$TOKENS_FILE")"
  HOST_TOKEN="${host% *}"
  GUEST_TOKEN="${guest% *}"
  TOKEN_TTL="${host##* }"
  mkdir -p "$CONVENE_DEV_DIR"
  (
    umask 077
    cat >"$TOKENS_FILE" <<EOF
# Written by scripts/dev.sh on $(date -u '+%Y-%m-%dT%H:%M:%SZ'); tokens expire after ${TOKEN_TTL}s
# (renew: scripts/dev.sh tokens). Use: source $shown (TOKEN is the host's token).
# The URLs and the admin client are what the env-tests read (env-tests/README.md).
CONVENE_AC_URL=$AC_URL
CONVENE_GC_URL=$GC_URL
CONVENE_MC_URL=$MC_URL
$(if [ "${#SERVICES[@]}" -gt 3 ]; then printf 'CONVENE_MC_URLS=%s,http://%s:%s' "$MC_URL" "$BIND" "$MC2_PORT"; fi)
CONVENE_ADMIN_CLIENT_ID=convene-admin
CONVENE_ADMIN_CLIENT_SECRET=$admin_secret
HOST_TOKEN=$HOST_TOKEN
GUEST_TOKEN=$GUEST_TOKEN
TOKEN=$HOST_TOKEN
EOF
  )
}

print_tokens() {
  cat <<EOF
Demo users (password $DEMO_PASSWORD); tokens valid ${TOKEN_TTL}s, also in $(rel "$TOKENS_FILE"):
  host@demo.test   $HOST_TOKEN
  guest@demo.test  $GUEST_TOKEN

Create a meeting as the host:
  export TOKEN='$HOST_TOKEN'
  curl -s -X POST $GC_URL/api/v1/meetings -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"display_name":"Demo"}'
EOF
}

cmd_up() {
  local svc
  if [ "${1:-}" = "--second-mc" ]; then
    SERVICES+=(mc-service-2)
  elif [ -n "${1:-}" ]; then
    convene_die "unknown option $1 (up takes --second-mc)"
  fi
  ensure_rust_tools
  convene_have curl || convene_apt_install curl
  ensure_postgres
  ensure_redis
  build
  for svc in "${SERVICES[@]}"; do
    if service_running "$svc"; then
      convene_log "$svc already running (pid $(service_pid "$svc")); restarting it on the fresh build"
    fi
  done
  stop_services
  check_ports_free
  load_master_key
  [ -f "$SEED_FILE" ] || convene_die "$SEED_FILE missing"
  convene_log "applying database migrations (ac-service migrate)"
  ac_command migrate
  convene_log "seeding demo data from $(rel "$SEED_FILE") (ac-service seed)"
  ac_command seed --file "$SEED_FILE"
  # AC first: GC and MC fetch JWKS and service tokens from it; MC registers with GC.
  for svc in "${SERVICES[@]}"; do
    start_service "$svc"
    wait_ready "$svc"
  done
  issue_tokens
  cat <<EOF

Convene dev stack is up.
  AC          $AC_URL (ops http://$BIND:$AC_OPS_PORT)
  GC          $GC_URL (ops http://$BIND:$GC_OPS_PORT)
  MC          $MC_URL (gRPC 127.0.0.1:$MC_GRPC_PORT, ops http://$BIND:$MC_OPS_PORT)$(if [ "${#SERVICES[@]}" -gt 3 ]; then printf '\n  MC 2        http://%s:%s (gRPC %s:%s, ops http://%s:%s)' "$BIND" "$MC2_PORT" "$BIND" "$MC2_GRPC_PORT" "$BIND" "$MC2_OPS_PORT"; fi)
  GC gRPC     127.0.0.1:$GC_GRPC_PORT
  Ops ports   /health/live, /health/ready and /metrics only (what Kubernetes probes and scrapes)
  Web page    $(if [ -f "$WEB_DIR/index.html" ]; then printf '%s/ (sign in as host@demo.test, password %s)' "$GC_URL" "$DEMO_PASSWORD"; else printf 'not built (needs npm)'; fi)
  PostgreSQL  $DATABASE_URL
  Redis       $REDIS_URL
  Logs        $(rel "$LOG_DIR")/<service>.log    Stop: scripts/dev.sh down

EOF
  print_tokens
}

# The demo org's webhook receiver (`webhook`).
WEBHOOK_RECEIVER_PORT="${CONVENE_WEBHOOK_RECEIVER_PORT:-8090}"
WEBHOOK_RECEIVER_PID="$PID_DIR/webhook-receiver.pid"

stop_webhook_receiver() {
  local pid
  pid="$(convene_read_pid "$WEBHOOK_RECEIVER_PID")"
  if [ -n "$pid" ]; then convene_stop_pid "$pid" python webhook-receiver 5; fi
  rm -f "$WEBHOOK_RECEIVER_PID"
}

# Prints the `org_id` claim of the JWT on stdin.
org_of_token() {
  python3 -c 'import base64, json, sys; p = sys.stdin.read().split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["org_id"])'
}

cmd_webhook() {
  local venv="$CONVENE_DEV_DIR/webhook-tools" url="http://$BIND:$WEBHOOK_RECEIVER_PORT"
  local pid host org admin_token answer existing secret id events
  convene_have curl || convene_die "curl not found"
  service_running gc-service || convene_die "GC is not running: scripts/dev.sh up first"
  # Pinned, as the env-tests' receiver is (scripts/env-tests.sh).
  convene_py_tools "$venv" standardwebhooks==1.3.0
  pid="$(convene_read_pid "$WEBHOOK_RECEIVER_PID")"
  if ! convene_pid_alive "$pid"; then
    mkdir -p "$LOG_DIR" "$PID_DIR"
    "$venv/bin/python" "$CONVENE_REPO/scripts/webhook_receiver.py" --bind "$BIND" \
      --port "$WEBHOOK_RECEIVER_PORT" >"$LOG_DIR/webhook-receiver.log" 2>&1 &
    echo $! >"$WEBHOOK_RECEIVER_PID"
    for _ in $(seq 1 50); do
      if curl -fsS -o /dev/null "$url/health" 2>/dev/null; then break; fi
      sleep 0.2
    done
    curl -fsS -o /dev/null "$url/health" \
      || convene_die "the webhook receiver did not start (see $(rel "$LOG_DIR")/webhook-receiver.log)"
  fi
  # The demo org's id, from its host's token; the admin client names it to GC.
  host="$(user_token host@demo.test)" || exit 1
  org="$(printf '%s' "${host% *}" | org_of_token)"
  admin_token="$(curl -sS --max-time 10 -u "convene-admin:$(seed_secret convene-admin)" \
    -d grant_type=client_credentials "$AC_URL/api/v1/auth/service/token" | json_field access_token)" || true
  [ -n "$admin_token" ] || convene_die "no service token for the admin client convene-admin"
  # One webhook for this receiver: made once; afterwards its secret is rotated (shown again).
  existing="$(curl -sS --max-time 10 -H "Authorization: Bearer $admin_token" \
    "$GC_URL/api/v1/webhooks?org_id=$org" \
    | python3 -c 'import json, sys; hooks = [h["webhook_id"] for h in json.load(sys.stdin)["webhooks"] if h["url"] == sys.argv[1]]; print(hooks[0] if hooks else "")' "$url/hooks/demo")"
  if [ -n "$existing" ]; then
    answer="$(curl -sS --max-time 10 -X POST -H "Authorization: Bearer $admin_token" \
      "$GC_URL/api/v1/webhooks/$existing/rotate-secret?org_id=$org")"
  else
    events='"meeting.created","meeting.started","meeting.ended","participant.joined","participant.left","participant.removed","lobby.waiting","webhook.test"'
    answer="$(curl -sS --max-time 10 -X POST -H "Authorization: Bearer $admin_token" \
      -H 'Content-Type: application/json' "$GC_URL/api/v1/webhooks?org_id=$org" \
      -d "{\"url\":\"$url/hooks/demo\",\"description\":\"scripts/dev.sh webhook\",\"events\":[$events]}")"
  fi
  secret="$(printf '%s' "$answer" | json_field secret)" || true
  id="$(printf '%s' "$answer" | json_field webhook_id)" || true
  if [ -z "$secret" ] || [ -z "$id" ]; then convene_die "GC did not make the webhook: $answer"; fi
  curl -fsS --max-time 5 -X PUT "$url/endpoints/demo" -d "{\"secret\":\"$secret\"}" \
    || convene_die "the receiver refused the endpoint"
  cat <<EOF
Webhook $id of the demo org delivers every event type to $url/hooks/demo,
where each delivery is checked with the Standard Webhooks library (secret $secret).
Every meeting of the demo org (create, join, leave, end: see 'scripts/dev.sh tokens') reaches it.
See what arrived:
  curl -s $url/endpoints/demo/received | python3 -m json.tool
The receiver's log: $(rel "$LOG_DIR")/webhook-receiver.log; 'scripts/dev.sh down' stops it.
EOF
}

cmd_down() {
  stop_webhook_receiver
  stop_services
  convene_pg_local_stop
  convene_redis_local_stop
  convene_log "stack stopped (data kept in $(rel "$CONVENE_DEV_DIR")/; rm -rf $(rel "$CONVENE_DEV_DIR") to reset)"
}

cmd_status() {
  local svc pid code all=0 port
  # The second MC is shown when dev.sh started one.
  if [ -f "$PID_DIR/mc-service-2.pid" ]; then SERVICES+=(mc-service-2); fi
  for svc in "${SERVICES[@]}"; do
    pid="$(service_pid "$svc")"
    if convene_pid_is "$pid" "$(bin_of "$svc")"; then
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://$BIND:$(http_port_of "$svc")/health/ready" 2>/dev/null || true)"
      printf '%-11s running (pid %s), /health/ready: %s\n' "$svc" "$pid" "$code"
    else
      printf '%-11s stopped\n' "$svc"
      all=3
    fi
  done
  port="$(convene_pg_local_port)"
  if [ -n "$port" ]; then
    printf '%-11s project-local on 127.0.0.1:%s (.dev/pg)\n' postgresql "$port"
  else
    printf '%-11s no project-local cluster running (dev.sh up reuses a reachable server)\n' postgresql
  fi
  pid="$(convene_redis_local_pid)"
  if [ -n "$pid" ]; then
    printf '%-11s project-local on 127.0.0.1:%s (.dev/redis, pid %s)\n' redis \
      "$(cat "$CONVENE_REDIS_DIR/port" 2>/dev/null || echo '?')" "$pid"
  else
    printf '%-11s no project-local Redis running (dev.sh up reuses a reachable server)\n' redis
  fi
  return "$all"
}

cmd_tokens() {
  convene_have curl || convene_die "curl not found"
  issue_tokens
  print_tokens
}

cmd_logs() {
  local -a files=()
  if [ $# -gt 0 ]; then
    files=("$LOG_DIR/$1.log")
  else
    local svc
    for svc in "${SERVICES[@]}"; do files+=("$LOG_DIR/$svc.log"); done
  fi
  exec tail -n 50 -F "${files[@]}"
}

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

main() {
  local cmd="${1:-up}"
  if [ $# -gt 0 ]; then shift; fi
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    tokens) cmd_tokens ;;
    logs) cmd_logs "$@" ;;
    webhook) cmd_webhook ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
