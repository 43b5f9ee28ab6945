#!/usr/bin/env bash
#
# Convene's local stack: PostgreSQL and Redis (reused when reachable, else project-local
# ones under .dev/), the auth controller (AC), global controller (GC) and meeting controller
# (MC), seeded with demo data, plus ready-to-use demo tokens.
#
# Usage: scripts/dev.sh [COMMAND]
#   up        (default) build, migrate, seed, (re)start the three services, print URLs and tokens;
#             `up --second-mc` also starts a second meeting controller (convene-mc-2);
#             `up --scale` starts the multi-replica stack instead (docs/scale-stack.md): AC, two
#             GC replicas, three MCs whose rooms live in a project-local 3-primary Redis Cluster,
#             and Debian's nginx in front of them all on http://127.0.0.1:8070
#   down      stop the services, nginx, the Redis Cluster, and PostgreSQL/Redis if they are the
#             project-local ones
#   status    show what runs (exit 0 when all services of the stack are running, 3 otherwise)
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
# CONVENE_MC2_OPS_PORT (9083); for the scale stack also the second GC CONVENE_GC2_PORT (8084),
# CONVENE_GC2_GRPC_PORT (8054), CONVENE_GC2_OPS_PORT (9084), the third MC CONVENE_MC3_PORT (8085),
# CONVENE_MC3_GRPC_PORT (8055), CONVENE_MC3_OPS_PORT (9085), nginx CONVENE_FRONT_PORT (8070) and
# the Redis Cluster's first node CONVENE_REDIS_CLUSTER_PORT (16380: nodes on 16380-16382, their
# cluster bus on 26380-26382);
# CONVENE_READY_TIMEOUT (60 s); CONVENE_PROFILE (dev or release: the cargo profile built and
# run; `up` builds dev, `up --scale` release);
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
# The scale stack (`up --scale`).
GC2_PORT="${CONVENE_GC2_PORT:-8084}"
GC2_GRPC_PORT="${CONVENE_GC2_GRPC_PORT:-8054}"
GC2_OPS_PORT="${CONVENE_GC2_OPS_PORT:-9084}"
MC3_PORT="${CONVENE_MC3_PORT:-8085}"
MC3_GRPC_PORT="${CONVENE_MC3_GRPC_PORT:-8055}"
MC3_OPS_PORT="${CONVENE_MC3_OPS_PORT:-9085}"
FRONT_PORT="${CONVENE_FRONT_PORT:-8070}"
REDIS_CLUSTER_PORT="${CONVENE_REDIS_CLUSTER_PORT:-16380}"
AC_URL="http://$BIND:$AC_PORT"
GC_URL="http://$BIND:$GC_PORT"
MC_URL="http://$BIND:$MC_PORT"
FRONT_URL="http://$BIND:$FRONT_PORT"
READY_TIMEOUT="${CONVENE_READY_TIMEOUT:-60}"

SERVICES=(ac-service gc-service mc-service)
# Every instance dev.sh may have started, so `down` and a restart find them all (stopped in
# the reverse order: the MCs before the GCs, AC last).
ALL_SERVICES=(ac-service gc-service gc-service-2 mc-service mc-service-2 mc-service-3)
# The scale stack: the instances `up --scale` starts, in this order.
SCALE_SERVICES=(ac-service gc-service gc-service-2 mc-service mc-service-2 mc-service-3)
# 1 while `up --scale` runs; `status` reads SCALE_MARK, which it writes.
SCALE=0
SCALE_MARK="$CONVENE_DEV_DIR/scale-stack"
SCALE_SEED_FILE="$CONVENE_REPO/infra/scale/seed.json"
NGINX_TEMPLATE="$CONVENE_REPO/infra/scale/nginx.conf.template"
NGINX_DIR="$CONVENE_DEV_DIR/nginx"
# Behind nginx every connection comes from 127.0.0.1: the services' per-address bound
# (HTTP_MAX_CONNECTIONS_PER_ADDRESS, 512) is raised to their listener's bound
# (HTTP_MAX_CONNECTIONS, 4096) and nginx holds 512 per client address instead.
FRONT_PER_ADDRESS=4096
LOG_DIR="$CONVENE_DEV_DIR/logs"
PID_DIR="$CONVENE_DEV_DIR/pids"
TOKENS_FILE="$CONVENE_DEV_DIR/tokens.env"
MASTER_KEY_FILE="$CONVENE_DEV_DIR/master.key"
WEBHOOK_KEY_FILE="$CONVENE_DEV_DIR/webhook.key"
SEED_FILE="$CONVENE_REPO/scripts/dev-seed.json"
DEMO_PASSWORD="demo-password"

# Shown paths relative to the repository.
rel() { printf '%s' "${1#"$CONVENE_REPO"/}"; }

# The build profile the stack runs: `dev`, or `release` for the scale stack (production's
# binaries: its CPU and memory figures feed docs/capacity.md); CONVENE_PROFILE overrides either.
# `up` records it, so that later commands (tokens, ...) run the same binaries.
PROFILE_FILE="$CONVENE_DEV_DIR/profile"
PROFILE="${CONVENE_PROFILE:-}"
profile() {
  if [ -n "$PROFILE" ]; then
    printf '%s' "$PROFILE"
  elif [ -f "$PROFILE_FILE" ]; then
    cat "$PROFILE_FILE"
  else
    printf 'dev'
  fi
}

bin_dir() {
  local t="${CARGO_TARGET_DIR:-target}"
  case "$t" in /*) ;; *) t="$CONVENE_REPO/$t" ;; esac
  if [ "$(profile)" = release ]; then printf '%s/release' "$t"; else printf '%s/debug' "$t"; fi
}

# The binary an instance runs.
bin_of() {
  case "$1" in
    mc-service-2 | mc-service-3) printf 'mc-service' ;;
    gc-service-2) printf 'gc-service' ;;
    *) printf '%s' "$1" ;;
  esac
}

# The client secret of service client $1 in the seed file (the only place it is written; the
# scale stack's third MC, convene-mc-3, is in infra/scale/seed.json).
seed_secret() {
  local file="$SEED_FILE"
  if [ "$1" = convene-mc-3 ]; then file="$SCALE_SEED_FILE"; fi
  python3 -c 'import json, sys
for c in json.load(open(sys.argv[1]))["service_clients"]:
    if c["client_id"] == sys.argv[2]: print(c["client_secret"])' "$file" "$1" 2>/dev/null \
    || convene_die "cannot read the secret of $1 from $(rel "$file") (python3 needed)"
}

http_port_of() {
  case "$1" in
    ac-service) printf '%s' "$AC_PORT" ;;
    gc-service) printf '%s' "$GC_PORT" ;;
    mc-service) printf '%s' "$MC_PORT" ;;
    mc-service-2) printf '%s' "$MC2_PORT" ;;
    gc-service-2) printf '%s' "$GC2_PORT" ;;
    mc-service-3) printf '%s' "$MC3_PORT" ;;
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
    gc-service | gc-service-2)
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
  if [ "$SCALE" = 1 ]; then scale_env "$1"; fi
}

# The scale stack's settings of instance $1 (docs/scale-stack.md), on top of service_env's:
# the same binaries and production's settings, with nginx as the public front on FRONT_URL.
scale_env() {
  local i keep=() item
  case "$1" in
    ac-service)
      # The page signs in through the front (GC_WEB_AC_URL below), from the front's origin.
      SVC_ENV+=("AC_CORS_ALLOWED_ORIGINS=$FRONT_URL" "AC_TRUST_FORWARDED_FOR=true")
      ;;
    gc-service | gc-service-2)
      if [ "$1" = gc-service-2 ]; then
        # The second replica: its own listeners, everything else as the first.
        for item in "${SVC_ENV[@]}"; do
          case "$item" in
            GC_HTTP_ADDR=*) keep+=("GC_HTTP_ADDR=$BIND:$GC2_PORT") ;;
            GC_OPS_ADDR=*) keep+=("GC_OPS_ADDR=$BIND:$GC2_OPS_PORT") ;;
            GC_GRPC_ADDR=*) keep+=("GC_GRPC_ADDR=$BIND:$GC2_GRPC_PORT") ;;
            *) keep+=("$item") ;;
          esac
        done
        SVC_ENV=("${keep[@]}")
      fi
      # join_url and the page at the front; the page signs in at AC through the front.
      # X-Forwarded-For is the address nginx saw (it drops the client's own entries).
      SVC_ENV+=("GC_PUBLIC_BASE_URL=$FRONT_URL" "GC_WEB_AC_URL=$FRONT_URL/ac" "GC_TRUST_FORWARDED_FOR=true")
      ;;
    mc-service | mc-service-2 | mc-service-3)
      # Rooms in the Redis Cluster (REDIS_URL dropped), clients through the front at
      # /mc/<n>/; the second MC registers with the second GC, so both GCs' gRPC serve.
      case "$1" in
        mc-service) i=1 ;;
        mc-service-2) i=2 ;;
        mc-service-3) i=3 ;;
      esac
      if [ "$1" = mc-service-3 ]; then
        SVC_ENV+=("MC_HTTP_ADDR=$BIND:$MC3_PORT" "MC_OPS_ADDR=$BIND:$MC3_OPS_PORT"
          "MC_GRPC_ADDR=$BIND:$MC3_GRPC_PORT" "GC_GRPC_URL=http://$BIND:$GC_GRPC_PORT"
          "MC_CLIENT_ID=convene-mc-3" "MC_CLIENT_SECRET=$(seed_secret convene-mc-3)")
      fi
      for item in "${SVC_ENV[@]}"; do
        case "$item" in
          REDIS_URL=*) ;;
          GC_GRPC_URL=*) if [ "$i" = 2 ]; then keep+=("GC_GRPC_URL=http://$BIND:$GC2_GRPC_PORT"); else keep+=("$item"); fi ;;
          *) keep+=("$item") ;;
        esac
      done
      SVC_ENV=("${keep[@]}" "REDIS_CLUSTER_URLS=$REDIS_CLUSTER_URLS" "MC_PUBLIC_WS_URL=ws://$BIND:$FRONT_PORT/mc/$i")
      ;;
  esac
  # Every connection through the front comes from 127.0.0.1: nginx bounds each client
  # address (infra/scale/nginx.conf.template), the services only their listener in all.
  SVC_ENV+=("HTTP_MAX_CONNECTIONS_PER_ADDRESS=$FRONT_PER_ADDRESS")
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
  if [ "$SCALE" = 1 ]; then
    specs+=("gc-service-2:$GC2_PORT" "gc-service-2:$GC2_GRPC_PORT" "gc-service-2:$GC2_OPS_PORT"
      "mc-service-3:$MC3_PORT" "mc-service-3:$MC3_GRPC_PORT" "mc-service-3:$MC3_OPS_PORT"
      "nginx:$FRONT_PORT")
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
  local flags=()
  [ "$(profile)" = release ] && flags=(--release)
  convene_log "building ac-service, gc-service, mc-service (cargo build, $(profile) profile)"
  (cd "$CONVENE_REPO" && cargo build "${flags[@]}" --bin ac-service --bin gc-service --bin mc-service) \
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
CONVENE_AC_URL=$(if [ "$SCALE" = 1 ]; then printf '%s/ac' "$FRONT_URL"; else printf '%s' "$AC_URL"; fi)
CONVENE_GC_URL=$(if [ "$SCALE" = 1 ]; then printf '%s' "$FRONT_URL"; else printf '%s' "$GC_URL"; fi)
CONVENE_MC_URL=$MC_URL
$(if [ "$SCALE" = 1 ]; then printf 'CONVENE_MC_URLS=%s,http://%s:%s,http://%s:%s' "$MC_URL" "$BIND" "$MC2_PORT" "$BIND" "$MC3_PORT"; elif [ "${#SERVICES[@]}" -gt 3 ]; then printf 'CONVENE_MC_URLS=%s,http://%s:%s' "$MC_URL" "$BIND" "$MC2_PORT"; fi)
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
  curl -s -X POST $(if [ "$SCALE" = 1 ]; then printf '%s' "$FRONT_URL"; else printf '%s' "$GC_URL"; fi)/api/v1/meetings -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"display_name":"Demo"}'
EOF
}

# ---------------------------------------------------------------------------------------
# nginx, the scale stack's public front (infra/scale/nginx.conf.template)

front_pid() { convene_read_pid "$NGINX_DIR/nginx.pid"; }

stop_front() {
  local pid
  pid="$(front_pid)"
  # SIGTERM is nginx's fast shutdown; its workers end with the master.
  if [ -n "$pid" ]; then convene_stop_pid "$pid" nginx "nginx (public front)" 10; fi
  rm -f "$NGINX_DIR/nginx.pid"
}

# Renders the configuration and starts nginx as the current user: its own prefix (-p), pid,
# logs and temporary files under NGINX_DIR, no system service.
start_front() {
  local bin conf user_directive="" code="" i
  bin="$(convene_nginx_bin)"
  [ -f "$NGINX_TEMPLATE" ] || convene_die "$(rel "$NGINX_TEMPLATE") missing"
  mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
  if [ -f "$NGINX_DIR/logs/error.log" ]; then mv -f "$NGINX_DIR/logs/error.log" "$NGINX_DIR/logs/error.log.prev"; fi
  if [ -f "$NGINX_DIR/logs/access.log" ]; then mv -f "$NGINX_DIR/logs/access.log" "$NGINX_DIR/logs/access.log.prev"; fi
  # As root nginx's workers would become `nobody`; they stay the current user, as without root.
  if convene_is_root; then user_directive="user $(id -un) $(id -gn);"; fi
  conf="$NGINX_DIR/nginx.conf"
  sed -e "s|@USER_DIRECTIVE@|$user_directive|" -e "s|@PREFIX@|$NGINX_DIR|g" \
    -e "s|@LISTEN@|$BIND:$FRONT_PORT|" -e "s|@AC@|$BIND:$AC_PORT|" \
    -e "s|@GC1@|$BIND:$GC_PORT|" -e "s|@GC2@|$BIND:$GC2_PORT|" \
    -e "s|@MC1@|$BIND:$MC_PORT|" -e "s|@MC2@|$BIND:$MC2_PORT|" -e "s|@MC3@|$BIND:$MC3_PORT|" \
    "$NGINX_TEMPLATE" >"$conf"
  ! grep -q '@[A-Z0-9_]*@' "$conf" || convene_die "$(rel "$conf"): a placeholder was not replaced"
  "$bin" -t -q -p "$NGINX_DIR" -e "$NGINX_DIR/logs/error.log" -c "$conf" \
    || convene_die "nginx refuses $(rel "$conf") (see above)"
  "$bin" -p "$NGINX_DIR" -e "$NGINX_DIR/logs/error.log" -c "$conf" \
    || convene_die "nginx did not start (see $(rel "$NGINX_DIR")/logs/error.log)"
  for ((i = 0; i < 50; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$FRONT_URL/health/ready" 2>/dev/null || true)"
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || convene_die "nginx on $FRONT_URL does not reach GC (GET /health/ready answered ${code:-nothing}; see $(rel "$NGINX_DIR")/logs/error.log)"
  convene_log "started nginx, the public front on $FRONT_URL (pid $(front_pid), config $(rel "$conf"), logs $(rel "$NGINX_DIR")/logs/)"
}

cmd_up() {
  local svc
  if [ "${1:-}" = "--second-mc" ]; then
    SERVICES+=(mc-service-2)
  elif [ "${1:-}" = "--scale" ]; then
    SCALE=1
    SERVICES=("${SCALE_SERVICES[@]}")
  elif [ -n "${1:-}" ]; then
    convene_die "unknown option $1 (up takes --second-mc or --scale)"
  fi
  case "${PROFILE:-}" in
    "") if [ "$SCALE" = 1 ]; then PROFILE=release; else PROFILE=dev; fi ;;
    dev | release) ;;
    *) convene_die "CONVENE_PROFILE must be dev or release, not $PROFILE" ;;
  esac
  mkdir -p "$CONVENE_DEV_DIR"
  printf '%s' "$PROFILE" >"$PROFILE_FILE"
  ensure_rust_tools
  convene_have curl || convene_apt_install curl
  ensure_postgres
  if [ "$SCALE" = 1 ]; then
    # GC and AC use no Redis; the MCs use the cluster alone.
    ensure_redis_cluster "$REDIS_CLUSTER_PORT" "$((REDIS_CLUSTER_PORT + 1))" "$((REDIS_CLUSTER_PORT + 2))"
    # service_env names REDIS_URL; scale_env drops it again for REDIS_CLUSTER_URLS.
    REDIS_URL=""
    ensure_nginx
  else
    ensure_redis
  fi
  build
  for svc in "${SERVICES[@]}"; do
    if service_running "$svc"; then
      convene_log "$svc already running (pid $(service_pid "$svc")); restarting it on the fresh build"
    fi
  done
  stop_services
  stop_front
  if [ "$SCALE" = 1 ]; then
    date -u '+%Y-%m-%dT%H:%M:%SZ' >"$SCALE_MARK"
  else
    # What a scale stack left running serves no one now.
    rm -f "$SCALE_MARK"
    convene_redis_cluster_stop
  fi
  check_ports_free
  load_master_key
  [ -f "$SEED_FILE" ] || convene_die "$SEED_FILE missing"
  convene_log "applying database migrations (ac-service migrate)"
  ac_command migrate
  convene_log "seeding demo data from $(rel "$SEED_FILE") (ac-service seed)"
  ac_command seed --file "$SEED_FILE"
  if [ "$SCALE" = 1 ]; then
    convene_log "seeding the third MC's client from $(rel "$SCALE_SEED_FILE") (ac-service seed)"
    ac_command seed --file "$SCALE_SEED_FILE"
  fi
  # AC first: GC and MC fetch JWKS and service tokens from it; MC registers with GC.
  for svc in "${SERVICES[@]}"; do
    start_service "$svc"
    wait_ready "$svc"
  done
  if [ "$SCALE" = 1 ]; then
    start_front
    issue_tokens
    print_scale_banner
    print_tokens
    return
  fi
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

print_scale_banner() {
  cat <<EOF

Convene scale stack is up (docs/scale-stack.md).
  Public URL  $FRONT_URL  (nginx: the API and the page on both GCs, round robin; AC at /ac/;
              MC n's signaling WebSocket at ws://$BIND:$FRONT_PORT/mc/n/ws/v1/meetings/<code>)
  Web page    $(if [ -f "$WEB_DIR/index.html" ]; then printf '%s/ (sign in as host@demo.test, password %s)' "$FRONT_URL" "$DEMO_PASSWORD"; else printf 'not built (needs npm)'; fi)
  AC          $AC_URL (ops http://$BIND:$AC_OPS_PORT)
  GC 1        $GC_URL (gRPC $BIND:$GC_GRPC_PORT, ops http://$BIND:$GC_OPS_PORT)
  GC 2        http://$BIND:$GC2_PORT (gRPC $BIND:$GC2_GRPC_PORT, ops http://$BIND:$GC2_OPS_PORT)
  MC 1        $MC_URL (gRPC $BIND:$MC_GRPC_PORT, ops http://$BIND:$MC_OPS_PORT), public ws://$BIND:$FRONT_PORT/mc/1
  MC 2        http://$BIND:$MC2_PORT (gRPC $BIND:$MC2_GRPC_PORT, ops http://$BIND:$MC2_OPS_PORT), public ws://$BIND:$FRONT_PORT/mc/2
  MC 3        http://$BIND:$MC3_PORT (gRPC $BIND:$MC3_GRPC_PORT, ops http://$BIND:$MC3_OPS_PORT), public ws://$BIND:$FRONT_PORT/mc/3
  Redis       Cluster of 3 primaries: $REDIS_CLUSTER_URLS
              (redis-cli -c -p $REDIS_CLUSTER_PORT --scan; data dirs $(rel "$CONVENE_REDIS_CLUSTER_DIR")/node-<port>)
  PostgreSQL  $DATABASE_URL
  Bounds      nginx holds 512 connections per client address; the services' per-address bound is
              raised to $FRONT_PER_ADDRESS, as every connection reaches them from 127.0.0.1
  Logs        $(rel "$LOG_DIR")/<service>.log, $(rel "$NGINX_DIR")/logs/    Stop: scripts/dev.sh down

EOF
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
  stop_front
  stop_services
  convene_redis_cluster_stop
  rm -f "$SCALE_MARK"
  convene_pg_local_stop
  convene_redis_local_stop
  convene_log "stack stopped (data kept in $(rel "$CONVENE_DEV_DIR")/; rm -rf $(rel "$CONVENE_DEV_DIR") to reset)"
}

cmd_status() {
  local svc pid code all=0 port
  # The second MC is shown when dev.sh started one; the scale stack's instances when it runs.
  if [ -f "$SCALE_MARK" ]; then
    SERVICES=("${SCALE_SERVICES[@]}")
  elif [ -f "$PID_DIR/mc-service-2.pid" ]; then
    SERVICES+=(mc-service-2)
  fi
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
  if [ -f "$SCALE_MARK" ] || [ -n "$(front_pid)" ] || [ -n "$(convene_redis_cluster_pids)" ]; then
    pid="$(front_pid)"
    if convene_pid_is "$pid" nginx; then
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$FRONT_URL/health/ready" 2>/dev/null || true)"
      printf '%-11s running (pid %s) on %s, /health/ready through it: %s\n' nginx "$pid" "$FRONT_URL" "$code"
    else
      printf '%-11s stopped\n' nginx
      all=3
    fi
    for port in "$REDIS_CLUSTER_PORT" "$((REDIS_CLUSTER_PORT + 1))" "$((REDIS_CLUSTER_PORT + 2))"; do
      pid="$(convene_read_pid "$CONVENE_REDIS_CLUSTER_DIR/node-$port/redis.pid")"
      if convene_pid_is "$pid" redis-server; then
        code="$(timeout 3 redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')"
        printf '%-11s cluster node on 127.0.0.1:%s (pid %s), cluster_state:%s\n' redis "$port" "$pid" "${code:-?}"
      else
        printf '%-11s cluster node on 127.0.0.1:%s stopped\n' redis "$port"
        all=3
      fi
    done
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
    if [ -f "$SCALE_MARK" ]; then SERVICES=("${SCALE_SERVICES[@]}"); fi
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
