#!/usr/bin/env bash
#
# Every test of a running stack, against one stack of its own, started once (scripts/dev.sh on
# the env-test ports, beside any stack a developer runs; see scripts/env-tests.sh):
#   1. the env-tests (env-tests/): black-box tests through the public interfaces;
#   2. fuzzing from the OpenAPI documents (scripts/fuzz-api.sh, schemathesis);
#   3. the meeting page in headless Chromium (scripts/web-tests.sh).
# All three run even when one fails; the stack is stopped whatever happens. Called by
# scripts/test.sh (the README's test command), so .ci/run runs it.
#
# Usage: scripts/stack-tests.sh
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

TOKENS="$CONVENE_REPO/.dev/env-tests/tokens.env"
# shellcheck disable=SC2317 # called by the trap
stop_stack() { "$CONVENE_REPO/scripts/env-tests.sh" down >/dev/null 2>&1 || true; }
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

status=0
keep() { if [ "$status" -eq 0 ]; then status="$1"; fi; }

rm -f "$TOKENS"
"$CONVENE_REPO/scripts/env-tests.sh" --keep || keep $?
if [ -f "$TOKENS" ]; then
  set -a
  # shellcheck source=/dev/null
  source "$TOKENS"
  set +a
  # The browser tests read the logs (for tokens) and kill a controller (its failover).
  export CONVENE_LOG_DIR="$CONVENE_REPO/.dev/env-tests/logs"
  export CONVENE_PID_DIR="$CONVENE_REPO/.dev/env-tests/pids"
  "$CONVENE_REPO/scripts/fuzz-api.sh" || keep $?
  "$CONVENE_REPO/scripts/web-tests.sh" || keep $?
else
  convene_warn "the env-test stack did not come up: no fuzzing and no browser tests"
  keep 1
fi
exit "$status"
