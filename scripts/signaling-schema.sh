#!/usr/bin/env bash
#
# The signaling protocol's JSON Schema and the page's generated types: runs MC's
# `signaling-schema` example (the schema of every client and server message of the signaling
# WebSocket, with the close codes and default timings, generated from
# crates/mc-service/src/signaling), then web/scripts/generate-types.mjs, which generates
# web/src/generated-*.ts from that schema and from the OpenAPI documents of GC and AC
# (docs/openapi/, written by scripts/openapi.sh) with the npm tools pinned in web/package.json.
#
#   scripts/signaling-schema.sh           write docs/signaling.schema.json and web/src/generated-*.ts
#   scripts/signaling-schema.sh --check   change nothing; exit 1 with a diff when the schema or
#                                         a generated file is not what the code generates
#
# mc-service's unit tests also compare the checked-in schema with the code's. Node.js and npm
# are installed when missing, web/node_modules with `npm ci` when absent. CARGO_TARGET_DIR is
# honoured.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  -h | --help)
    sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) convene_die "unknown argument: $1 (usage: scripts/signaling-schema.sh [--check])" ;;
esac

SCHEMA=docs/signaling.schema.json

ensure_rust_tools
convene_log "cargo run -p mc-service --example signaling-schema"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo run --quiet -p mc-service --example signaling-schema >"$work/signaling.schema.json"

convene_have npm || convene_apt_install nodejs npm
if [ ! -d web/node_modules/json-schema-to-typescript ] || [ ! -d web/node_modules/openapi-typescript ]; then
  convene_log "web/: npm ci"
  (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

if [ "$check" = true ]; then
  status=0
  if ! diff -u "$SCHEMA" "$work/signaling.schema.json"; then
    convene_warn "$SCHEMA is not what the code generates: run scripts/signaling-schema.sh"
    status=1
  fi
  (cd web && node scripts/generate-types.mjs --check) || status=1
  if [ "$status" -eq 0 ]; then convene_log "the signaling schema and the page's generated types are up to date"; fi
  exit "$status"
fi

cp "$work/signaling.schema.json" "$SCHEMA"
convene_log "wrote $SCHEMA"
(cd web && node scripts/generate-types.mjs)
