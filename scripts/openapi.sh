#!/usr/bin/env bash
#
# The OpenAPI 3.1 documents of AC's and GC's HTTP APIs, generated from the code: builds the two
# binaries, runs `ac-service openapi` and `gc-service openapi` (no configuration, no database),
# and validates both documents as OpenAPI 3.1 with openapi-spec-validator (PyPI, pinned, in the
# project-local virtualenv .dev/openapi-tools, installed when missing).
#
#   scripts/openapi.sh           write docs/openapi/ac-service.json and docs/openapi/gc-service.json
#   scripts/openapi.sh --check   change nothing; exit 1 with a diff when a checked-in document
#                                differs from what the code generates, or when one is invalid
#
# The services' integration tests also compare the document they serve with the checked-in one,
# so a code change that is not followed by this script fails the tests. CARGO_TARGET_DIR is
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
    sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) convene_die "unknown argument: $1 (usage: scripts/openapi.sh [--check])" ;;
esac

SERVICES=(ac-service gc-service)
OUT_DIR=docs/openapi
VENV="$CONVENE_DEV_DIR/openapi-tools"
# Pinned: a new version is a deliberate change, reviewed like code.
PY_TOOLS=(openapi-spec-validator==0.9.0)

# The project-local virtualenv with the pinned validator.
ensure_validator() { convene_py_tools "$VENV" "${PY_TOOLS[@]}"; }

ensure_rust_tools
convene_log "cargo build -p ac-service -p gc-service --bins"
cargo build --quiet -p ac-service -p gc-service --bins
bin_dir="${CARGO_TARGET_DIR:-$CONVENE_REPO/target}/debug"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for service in "${SERVICES[@]}"; do
  "$bin_dir/$service" openapi >"$work/$service.json"
done

ensure_validator
for service in "${SERVICES[@]}"; do
  convene_log "openapi-spec-validator $service.json (OpenAPI 3.1)"
  "$VENV/bin/openapi-spec-validator" --schema 3.1 "$work/$service.json"
done

if [ "$check" = true ]; then
  status=0
  for service in "${SERVICES[@]}"; do
    if ! diff -u "$OUT_DIR/$service.json" "$work/$service.json"; then
      convene_warn "$OUT_DIR/$service.json is not what the code generates: run scripts/openapi.sh"
      status=1
    fi
  done
  if [ "$status" -eq 0 ]; then convene_log "the OpenAPI documents are up to date and valid"; fi
  exit "$status"
fi

mkdir -p "$OUT_DIR"
for service in "${SERVICES[@]}"; do
  cp "$work/$service.json" "$OUT_DIR/$service.json"
  convene_log "wrote $OUT_DIR/$service.json"
done
