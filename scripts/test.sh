#!/usr/bin/env bash
#
# Runs every test of the workspace: makes sure PostgreSQL and Redis are reachable (reusing
# running ones, else starting project-local ones under .dev/, installing the server packages
# if missing), then runs the doc tests, the operations checks (scripts/check-ops.sh: alert
# rules and their unit tests, catalogs, dashboards, runbooks, Kubernetes manifests), the
# OpenAPI documents' check (scripts/openapi.sh --check), the signaling schema's and the page's
# generated types' check (scripts/signaling-schema.sh --check), the check that no two modules of
# a crate import each other in a loop (scripts/check_module_cycles.py), the tests of a running stack
# (scripts/stack-tests.sh: env-tests, API fuzzing, the meeting page in Chromium), the fault suite
# (scripts/fault-tests.sh: PostgreSQL, Redis, AC and controllers broken under load) and every other
# test with cargo-nextest (installed when missing: the tests need one process each, see
# ensure_nextest in lib.sh). The exit code is the tests' exit code.
#
# Usage: scripts/test.sh [ARGS...]
#   ARGS are passed to `cargo nextest run`, e.g. a test-name filter or `-p gc-service`. Doc
#   tests, the operations checks, the stack tests and the fault suite run only when no ARGS are
#   given.
#
# Tests see DATABASE_URL (the `postgres` database of a server where the role may CREATEDB:
# #[sqlx::test] creates one database per test) and REDIS_URL. CARGO_TARGET_DIR is honoured.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$CONVENE_REPO"
ensure_rust_tools
ensure_nextest
ensure_postgres
ensure_redis
DATABASE_URL="$TEST_DATABASE_URL"
export DATABASE_URL REDIS_URL

# The test targets (libraries, binaries, integration tests), not --all-targets: the benches are
# load generators with a command line of their own and hold no tests (clippy still builds them).
# nextest cannot run doc tests: on a full run they go first, so that nextest's summary of every
# other test is the last thing a run prints.
status=0
if [ $# -eq 0 ]; then
  convene_log "cargo test --workspace --doc"
  cargo test --workspace --doc || status=$?
  ops_status=0
  "$CONVENE_REPO/scripts/check-ops.sh" || ops_status=$?
  if [ "$status" -eq 0 ]; then status="$ops_status"; fi
  # The OpenAPI documents: checked in as generated, and valid OpenAPI 3.1.
  openapi_status=0
  "$CONVENE_REPO/scripts/openapi.sh" --check || openapi_status=$?
  if [ "$status" -eq 0 ]; then status="$openapi_status"; fi
  # The signaling schema and the page's types generated from it and the OpenAPI documents.
  schema_status=0
  "$CONVENE_REPO/scripts/signaling-schema.sh" --check || schema_status=$?
  if [ "$status" -eq 0 ]; then status="$schema_status"; fi
  # No two modules of a crate import each other in a loop (state.rs keeps routes off startup).
  cycles_status=0
  convene_log "no import loops between a crate's modules"
  python3 scripts/check_module_cycles.py || cycles_status=$?
  if [ "$status" -eq 0 ]; then status="$cycles_status"; fi
  # A stack of its own: the env-tests, fuzzing from the OpenAPI documents, the browser tests.
  stack_status=0
  "$CONVENE_REPO/scripts/stack-tests.sh" || stack_status=$?
  if [ "$status" -eq 0 ]; then status="$stack_status"; fi
  # The fault suite: a stack of processes of its own, broken on purpose under load.
  fault_status=0
  "$CONVENE_REPO/scripts/fault-tests.sh" || fault_status=$?
  if [ "$status" -eq 0 ]; then status="$fault_status"; fi
fi
# With arguments (`-p gc-service`, a filter) they choose what runs; without, everything does.
scope=(--workspace)
if [ $# -gt 0 ]; then scope=(); fi
convene_log "cargo nextest run ${scope[*]} --no-fail-fast $*"
nextest_status=0
cargo nextest run "${scope[@]}" --no-fail-fast "$@" || nextest_status=$?
if [ "$status" -eq 0 ]; then status="$nextest_status"; fi

if [ "$status" -eq 0 ]; then
  convene_log "all tests passed"
else
  convene_log "tests FAILED (exit code $status)"
fi
exit "$status"
