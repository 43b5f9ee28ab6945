#!/usr/bin/env bash
#
# Convene on a local kind cluster, from source: creates the cluster (infra/k8s/kind/cluster.yaml),
# builds the three images and loads them into it, writes random secrets
# (scripts/k8s-secrets.sh), applies the kind overlay, waits for the migration and seed Jobs and
# the rollouts, then runs a smoke test through the NodePorts: sign in at AC, create a meeting at
# GC, join it, open its signaling WebSocket on the owning MC, end it. Prints the URLs and demo
# tokens, also written to .dev/kind/tokens.env. Running it again updates the cluster in place
# (new images, restarted pods); scripts/kind-down.sh deletes it.
#
# Needs Docker (a running engine), kind 0.24 or later (its CNI enforces NetworkPolicies),
# kubectl with kustomize v5, curl and python3. Host ports 30080, 30082, 30090 and 30091 on
# 127.0.0.1 must be free. The first image build compiles the workspace in release mode
# (about 10 to 20 minutes); later ones reuse Docker's layer cache.
#
# Usage: scripts/kind-up.sh [up|smoke]
#   up      (default) everything above
#   smoke   only the smoke test and the tokens, against a cluster that is up
# Environment: CONVENE_KIND_CLUSTER (convene), CONVENE_KIND_TIMEOUT (600, seconds for each
# wait), CONVENE_KIND_NODE_IMAGE (kind's default node image), CONVENE_SKIP_BUILD=1 (use the
# convene/*:dev images already in Docker).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

CLUSTER="${CONVENE_KIND_CLUSTER:-convene}"
TIMEOUT="${CONVENE_KIND_TIMEOUT:-600}"
NAMESPACE=convene
SERVICES=(ac-service gc-service mc-service)
CLUSTER_CONFIG=infra/k8s/kind/cluster.yaml
OVERLAY=infra/k8s/overlays/kind
SEED_FILE=infra/k8s/overlays/dev/secrets/seed.json
# The ServiceMonitor CRD alone (the manifests include ServiceMonitors); no Prometheus runs.
SERVICE_MONITOR_CRD=https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.79.0/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
# The NodePorts of the kind overlay, mapped to the same ports on 127.0.0.1.
AC_URL=http://127.0.0.1:30082
GC_URL=http://127.0.0.1:30080
MC_URLS=(http://127.0.0.1:30090 http://127.0.0.1:30091)
OUT_DIR="$CONVENE_DEV_DIR/kind"
REUSED=0
TOKENS_FILE="$OUT_DIR/tokens.env"

kc() { kubectl --context "kind-$CLUSTER" "$@"; }

require_tools() {
  local tool missing=()
  for tool in docker kind kubectl curl python3; do
    convene_have "$tool" || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || convene_die "missing: ${missing[*]} (install them; see infra/README.md, \"kind\")"
  docker info >/dev/null 2>&1 || convene_die "the Docker engine does not answer (docker info)"
  kubectl version --client -o json 2>/dev/null \
    | python3 -c 'import json, sys; v = json.load(sys.stdin).get("kustomizeVersion", "v0"); sys.exit(int(v.lstrip("v").split(".")[0]) < 5)' \
    || convene_die "kubectl's kustomize is older than v5: install a recent kubectl"
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

create_cluster() {
  if cluster_exists; then
    convene_log "kind cluster $CLUSTER exists: reusing it"
    REUSED=1
    return
  fi
  local port
  for port in 30080 30082 30090 30091; do
    if convene_port_open 127.0.0.1 "$port"; then
      convene_die "127.0.0.1:$port is taken: kind maps Convene's NodePorts there"
    fi
  done
  local args=(create cluster --name "$CLUSTER" --config "$CLUSTER_CONFIG" --wait 120s)
  if [ -n "${CONVENE_KIND_NODE_IMAGE:-}" ]; then args+=(--image "$CONVENE_KIND_NODE_IMAGE"); fi
  convene_log "kind ${args[*]}"
  kind "${args[@]}"
}

build_images() {
  local svc
  for svc in "${SERVICES[@]}"; do
    if [ "${CONVENE_SKIP_BUILD:-0}" != 1 ]; then
      convene_log "docker build --target $svc -t convene/$svc:dev ."
      DOCKER_BUILDKIT=1 docker build --target "$svc" -t "convene/$svc:dev" .
    fi
    convene_log "kind load docker-image convene/$svc:dev"
    kind load docker-image "convene/$svc:dev" --name "$CLUSTER"
  done
}

# Waits for a Job to complete; on failure shows its pods' logs and stops.
wait_job() {
  local job="$1" deadline=$((SECONDS + TIMEOUT)) state
  convene_log "waiting for job/$job"
  while :; do
    state="$(kc -n "$NAMESPACE" get job "$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' 2>/dev/null || true)"
    case "$state" in
      *Complete*) return ;;
      *Failed*) break ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 3
  done
  kc -n "$NAMESPACE" describe job "$job" | tail -n 20 >&2 || true
  kc -n "$NAMESPACE" logs "job/$job" --all-containers --tail=50 >&2 || true
  convene_die "job/$job did not complete (state: ${state:-none})"
}

deploy() {
  convene_log "ServiceMonitor CRD (prometheus-operator v0.79.0)"
  kc apply --server-side -f "$SERVICE_MONITOR_CRD" >/dev/null
  kc wait --for condition=established --timeout=60s crd/servicemonitors.monitoring.coreos.com >/dev/null
  scripts/k8s-secrets.sh
  # A Job's pod template is immutable: the previous runs go, this apply starts new ones.
  kc -n "$NAMESPACE" delete job convene-migrate convene-seed --ignore-not-found >/dev/null 2>&1 || true
  convene_log "kubectl apply -k $OVERLAY"
  kc apply -k "$OVERLAY"
  # The tag stays `dev`: on a cluster that ran them already, restart the services so that they
  # run the images just loaded.
  local workload
  if [ "$REUSED" = 1 ]; then
    for workload in deployment/ac-service deployment/gc-service statefulset/mc-service; do
      kc -n "$NAMESPACE" rollout restart "$workload" >/dev/null
    done
  fi
  wait_job convene-migrate
  wait_job convene-seed
  for workload in statefulset/postgres deployment/redis deployment/ac-service deployment/gc-service statefulset/mc-service; do
    convene_log "kubectl rollout status $workload"
    kc -n "$NAMESPACE" rollout status "$workload" --timeout="${TIMEOUT}s"
  done
}

# The demo users' password, from the seed the cluster was given.
demo_password() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["orgs"][0]["users"][0]["password"])' "$SEED_FILE"
}

# The admin client's secret, from the same seed (the env-tests create their orgs with it).
admin_secret() {
  python3 -c 'import json, sys
print(next(c["client_secret"] for c in json.load(open(sys.argv[1]))["service_clients"] if c["client_id"] == "convene-admin"))' "$SEED_FILE"
}

# POST/GET with a JSON answer; prints the body, dies unless the status is the expected one.
call() {
  local expect="$1" method="$2" url="$3" token="${4:-}" body="${5:-}" resp code args
  args=(-sS --max-time 10 -X "$method" "$url" -w '\n%{http_code}')
  if [ -n "$token" ]; then args+=(-H "Authorization: Bearer $token"); fi
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' -d "$body"); fi
  resp="$(curl "${args[@]}")" || convene_die "$method $url: no answer"
  code="${resp##*$'\n'}"
  [ "$code" = "$expect" ] || convene_die "$method $url: HTTP $code, expected $expect: ${resp%$'\n'*}"
  printf '%s' "${resp%$'\n'*}"
}

field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

wait_http() {
  local url="$1" deadline=$((SECONDS + TIMEOUT))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url" || true)" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || convene_die "$url did not answer 200 within ${TIMEOUT}s"
    sleep 2
  done
}

# Opens the signaling WebSocket, authenticates with the meeting token and prints the type of the
# first message the controller sends (`welcome` for a seated participant).
ws_greeting() {
  python3 - "$1" "$2" <<'PY'
import base64, json, os, socket, struct, sys
from urllib.parse import urlparse

url, token = urlparse(sys.argv[1]), sys.argv[2]
sock = socket.create_connection((url.hostname, url.port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = sock.recv(1)
    if not chunk:
        sys.exit("the controller closed the connection during the upgrade")
    head += chunk
status = head.split(b"\r\n")[0].decode()
if " 101 " not in status:
    sys.exit(f"no upgrade: {status}")

def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("the controller closed the socket")
        data += chunk
    return data

payload = json.dumps({"type": "auth", "token": token}).encode()
mask = os.urandom(4)
header = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(payload)))
sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
while True:
    first, second = recv_exact(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", recv_exact(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", recv_exact(8))[0]
    data = recv_exact(length)
    opcode = first & 0x0F
    if opcode == 0x8:
        code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
        sys.exit(f"the controller closed the socket with {code}")
    if opcode == 0x1:
        print(json.loads(data)["type"])
        break
PY
}

smoke() {
  local url password host guest code join signaling greeting
  for url in "$AC_URL" "$GC_URL" "${MC_URLS[@]}"; do
    wait_http "$url/health/ready"
  done
  password="$(demo_password)"
  convene_log "smoke: sign in at AC ($AC_URL)"
  host="$(call 200 POST "$AC_URL/api/v1/auth/user/token" "" "{\"email\":\"host@demo.test\",\"password\":\"$password\"}" | field access_token)"
  guest="$(call 200 POST "$AC_URL/api/v1/auth/user/token" "" "{\"email\":\"guest@demo.test\",\"password\":\"$password\"}" | field access_token)"
  convene_log "smoke: create a meeting at GC ($GC_URL)"
  code="$(call 201 POST "$GC_URL/api/v1/meetings" "$host" '{"display_name":"kind smoke test"}' | field meeting_code)"
  # The controllers register with GC right after they start: give them a moment.
  convene_log "smoke: the host joins meeting $code"
  local deadline=$((SECONDS + 60))
  until join="$(curl -sS --max-time 10 -X POST "$GC_URL/api/v1/meetings/$code/join" -H "Authorization: Bearer $host" -w '\n%{http_code}')" \
    && [ "${join##*$'\n'}" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || convene_die "join of $code failed: ${join:-no answer}"
    sleep 2
  done
  join="${join%$'\n'*}"
  [ "$(field status <<<"$join")" = admitted ] || convene_die "the host was not admitted: $join"
  signaling="$(field signaling_url <<<"$join")"
  case "$signaling" in
    ws://127.0.0.1:3009[0-9]/ws/v1/meetings/"$code") ;;
    *) convene_die "signaling_url $signaling is not an MC NodePort of this cluster" ;;
  esac
  convene_log "smoke: the host's signaling WebSocket at $signaling"
  greeting="$(ws_greeting "$signaling" "$(field meeting_token <<<"$join")")" || convene_die "signaling WebSocket failed"
  [ "$greeting" = welcome ] || convene_die "the controller greeted the host with $greeting, expected welcome"
  convene_log "smoke: the guest joins and waits in the lobby"
  [ "$(call 200 POST "$GC_URL/api/v1/meetings/$code/join" "$guest" | field status)" = waiting ] \
    || convene_die "the guest did not wait in the lobby"
  convene_log "smoke: the host ends the meeting"
  [ "$(call 200 POST "$GC_URL/api/v1/meetings/$code/end" "$host" | field status)" = ended ] \
    || convene_die "the meeting did not end"
  curl -sS --max-time 10 "$GC_URL/metrics" | grep -q '^gc_meetings_created_total' \
    || convene_die "GC's /metrics has no gc_meetings_created_total"
  convene_log "smoke test passed: sign-in, create, join, WebSocket welcome, lobby, end, metrics"
  HOST_TOKEN="$host"
  GUEST_TOKEN="$guest"
  DEMO_PASSWORD="$password"
}

write_tokens() {
  local admin
  admin="$(admin_secret)" || convene_die "no convene-admin client in $SEED_FILE"
  mkdir -p "$OUT_DIR"
  (
    umask 077
    cat >"$TOKENS_FILE" <<EOF
# Written by scripts/kind-up.sh on $(date -u '+%Y-%m-%dT%H:%M:%SZ'); tokens expire (an hour by
# default): scripts/kind-up.sh smoke issues fresh ones. Use: source .dev/kind/tokens.env
CONVENE_AC_URL=$AC_URL
CONVENE_GC_URL=$GC_URL
CONVENE_MC_URL=${MC_URLS[0]}
CONVENE_MC_URLS=$(IFS=,; printf '%s' "${MC_URLS[*]}")
CONVENE_ADMIN_CLIENT_ID=convene-admin
CONVENE_ADMIN_CLIENT_SECRET=$admin
CONVENE_DEMO_PASSWORD=$DEMO_PASSWORD
HOST_TOKEN=$HOST_TOKEN
GUEST_TOKEN=$GUEST_TOKEN
TOKEN=$HOST_TOKEN
EOF
  )
  cat <<EOF

Convene runs on kind cluster $CLUSTER (kubectl --context kind-$CLUSTER -n $NAMESPACE get pods):
  GC   $GC_URL   (/api/v1/meetings)
  AC   $AC_URL   (/.well-known/jwks.json)
  MC   ${MC_URLS[0]} (mc-service-0), ${MC_URLS[1]} (mc-service-1)

Demo users host@demo.test and guest@demo.test, password $DEMO_PASSWORD; tokens in ${TOKENS_FILE#"$CONVENE_REPO"/}:
  host   $HOST_TOKEN
  guest  $GUEST_TOKEN

Create a meeting as the host:
  curl -s -X POST $GC_URL/api/v1/meetings -H "Authorization: Bearer $HOST_TOKEN" -H 'Content-Type: application/json' -d '{"display_name":"Demo"}'
EOF
}

cmd="${1:-up}"
case "$cmd" in
  up)
    require_tools
    create_cluster
    build_images
    deploy
    ;;
  smoke)
    for tool in curl python3; do convene_have "$tool" || convene_die "missing: $tool"; done
    ;;
  *) convene_die "unknown command $cmd (usage: scripts/kind-up.sh [up|smoke])" ;;
esac
smoke
write_tokens
