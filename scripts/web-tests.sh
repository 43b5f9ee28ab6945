#!/usr/bin/env bash
#
# The meeting page in a real browser (web/tests/, docs/web.md): headless Chromium, driven by
# playwright-core, against a running stack whose GC serves the page (scripts/dev.sh builds it
# and sets GC_WEB_DIR and AC's CORS origin). Screenshots go to web/test-results/;
# CONVENE_UPDATE_SCREENSHOTS=1 also copies the key ones to docs/screenshots/.
#
# Usage: scripts/web-tests.sh
# Needs the stack in the environment, as scripts/env-tests.sh --no-stack does: CONVENE_AC_URL,
# CONVENE_GC_URL, CONVENE_ADMIN_CLIENT_ID, CONVENE_ADMIN_CLIENT_SECRET, and CONVENE_LOG_DIR
# (the services' logs, searched for tokens) when the logs are at hand. scripts/stack-tests.sh
# starts a stack and calls this. Debian's chromium and Node.js with npm are installed when
# missing (playwright's own browser download is not used); CONVENE_CHROMIUM picks another binary.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

for var in CONVENE_AC_URL CONVENE_GC_URL CONVENE_ADMIN_CLIENT_ID CONVENE_ADMIN_CLIENT_SECRET; do
  [ -n "${!var:-}" ] || convene_die "$var is not set: run scripts/stack-tests.sh, or set the stack's URLs and admin client"
done

convene_have npm || convene_apt_install nodejs npm
if [ -z "${CONVENE_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  convene_apt_install chromium
fi
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$CONVENE_GC_URL/" || true)"
[ "$code" = 200 ] || convene_die "GC at $CONVENE_GC_URL serves no page (GET / answered ${code:-nothing}): start it with GC_WEB_DIR=web/dist (scripts/dev.sh does when npm is there)"

convene_log "web/: npm ci"
(cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
convene_log "browser tests (node --test web/tests/) against GC $CONVENE_GC_URL"
started=$SECONDS
if (cd web && timeout 600 node --test --test-concurrency=1 --test-reporter=spec tests/); then
  convene_log "browser tests passed in $((SECONDS - started)) s (screenshots in web/test-results/)"
else
  status=$?
  convene_log "browser tests FAILED (exit code $status; screenshots of the steps reached in web/test-results/)"
  exit "$status"
fi
