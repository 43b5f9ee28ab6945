#!/usr/bin/env bash
#
# Writes the secret files of the dev and kind overlays, in infra/k8s/overlays/dev/secrets/
# (git-ignored; the *.example files beside them show the shape), with fresh random values:
# the PostgreSQL password and DATABASE_URL, AC's master key, GC's client secret, one client
# secret per meeting controller pod (mc-service-0, mc-service-1, ...), and the seed with those
# clients, an admin client, the demo org and its two users sharing one random password.
#
# The files are written together or not at all, so they always agree with each other. When
# they all exist they are kept: a running cluster's database was initialised with them.
#
# Usage: scripts/k8s-secrets.sh [--force]
#   --force   write new values even if the files exist (then recreate the cluster: the dev
#             PostgreSQL keeps the password it was initialised with)
# Environment: CONVENE_MC_REPLICAS (2), the meeting controllers to create credentials for; the
# overlays run 2.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$CONVENE_REPO/infra/k8s/overlays/dev/secrets"
FILES=(database.env postgres.env ac-service.env gc-service.env mc-service-credentials.env seed.json)
MC_REPLICAS="${CONVENE_MC_REPLICAS:-2}"

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) convene_die "unknown option $1 (usage: scripts/k8s-secrets.sh [--force])" ;;
esac

present=0
for f in "${FILES[@]}"; do
  if [ -e "$DIR/$f" ]; then present=$((present + 1)); fi
done
if [ "$force" -eq 0 ] && [ "$present" -eq "${#FILES[@]}" ]; then
  convene_log "secret files present in ${DIR#"$CONVENE_REPO"/}: kept (--force writes new ones)"
  exit 0
fi
if [ "$force" -eq 0 ] && [ "$present" -ne 0 ]; then
  convene_die "only $present of the ${#FILES[@]} secret files exist in ${DIR#"$CONVENE_REPO"/}: they would not agree; rerun with --force"
fi

# 32 random bytes, URL-safe base64 without padding (43 characters).
token() { head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'; }
# Hexadecimal, for values that go into a URL unescaped.
hex() { od -An -vtx1 -N"$1" /dev/urandom | tr -d ' \n'; }

pg_password="$(hex 24)"
master_key="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
webhook_key="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
gc_secret="$(token)"
admin_secret="$(token)"
demo_password="$(hex 12)"

tmp="$(mktemp -d "$DIR/.new.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
umask 077

printf 'DATABASE_URL=postgres://convene:%s@postgres:5432/convene\n' "$pg_password" >"$tmp/database.env"
printf 'POSTGRES_PASSWORD=%s\n' "$pg_password" >"$tmp/postgres.env"
printf 'AC_MASTER_KEY=%s\n' "$master_key" >"$tmp/ac-service.env"
printf 'GC_CLIENT_SECRET=%s\nGC_WEBHOOK_KEY=%s\n' "$gc_secret" "$webhook_key" >"$tmp/gc-service.env"
: >"$tmp/mc-service-credentials.env"
mc_clients=""
for ((i = 0; i < MC_REPLICAS; i++)); do
  secret="$(token)"
  printf 'mc-service-%d=%s\n' "$i" "$secret" >>"$tmp/mc-service-credentials.env"
  mc_clients+="$(printf ',\n    {"client_id": "mc-service-%d", "client_secret": "%s", "service_type": "meeting-controller", "scopes": ["internal:gc"]}' "$i" "$secret")"
done
cat >"$tmp/seed.json" <<EOF
{
  "service_clients": [
    {"client_id": "convene-admin", "client_secret": "$admin_secret", "service_type": "admin", "scopes": ["admin"]},
    {"client_id": "convene-gc", "client_secret": "$gc_secret", "service_type": "global-controller", "scopes": ["internal:meeting-token", "internal:mc"]}$mc_clients
  ],
  "orgs": [
    {"slug": "demo", "name": "Demo Org", "max_concurrent_meetings": 10, "max_participants_per_meeting": 100,
     "users": [
       {"email": "host@demo.test", "password": "$demo_password", "display_name": "Demo Host", "roles": ["user"]},
       {"email": "guest@demo.test", "password": "$demo_password", "display_name": "Demo Guest", "roles": ["user"]}
     ]}
  ]
}
EOF

for f in "${FILES[@]}"; do
  mv -f "$tmp/$f" "$DIR/$f"
done
convene_log "wrote ${FILES[*]} in ${DIR#"$CONVENE_REPO"/} (git-ignored; $MC_REPLICAS meeting controllers)"
