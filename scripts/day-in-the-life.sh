#!/usr/bin/env bash
#
# The day-in-the-life load generator (issue 27; crates/fault-suite/src/day/) against the scale
# stack (docs/scale-stack.md): meetings created at a steady rate, each with a host and 2-20
# people who join over REST, open the signaling socket and send audio levels, some waiting in
# the lobby until admitted, some leaving and coming back, some dropping their socket and
# reconnecting; then the delays, every refusal, the CPU, Redis commands and PostgreSQL rows the
# run cost, and the fault suite's checker on the stack's stores.
#
# It builds the generator (release profile), starts the scale stack with
# `scripts/dev.sh up --scale` when it is not running (and leaves it running), and runs it with
# the stack's URLs from .dev/tokens.env and the arguments given, e.g.
#   scripts/day-in-the-life.sh --duration 3m
#   scripts/day-in-the-life.sh --duration 60s --create-per-sec 0.2 --size 2..=6 --hold 20..=40
# (`--help` lists every flag). The report is printed and written as JSON to --report
# (default .dev/day-in-the-life/report-<time>.json).
# Environment: CARGO_TARGET_DIR is honoured; CONVENE_DEV_DIR as for scripts/dev.sh.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

ensure_rust_tools
convene_log "building the generator (cargo build --release --bin day-in-the-life)"
cargo build --release --quiet -p fault-suite --bin day-in-the-life
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$CONVENE_REPO/$TARGET" ;; esac

if [ ! -f "$CONVENE_DEV_DIR/scale-stack" ] || ! scripts/dev.sh status >/dev/null 2>&1; then
  convene_log "the scale stack is not running: starting it (scripts/dev.sh up --scale)"
  scripts/dev.sh up --scale >/dev/null
fi
# Fresh tokens are not needed (the generator signs in its own users), but the URLs are.
[ -f "$CONVENE_DEV_DIR/tokens.env" ] || convene_die "$CONVENE_DEV_DIR/tokens.env missing"
set -a
# shellcheck disable=SC1091
source "$CONVENE_DEV_DIR/tokens.env"
set +a
export CONVENE_DEV_DIR
# The checker reads the stack's database directly (the reachable server dev.sh reuses; a
# project-local one or a password: give DAY_DATABASE_URL).
: "${DAY_DATABASE_URL:=postgres://${CONVENE_PG_USER:-postgres}@${CONVENE_PG_HOST:-127.0.0.1}:${CONVENE_PG_PORT:-5432}/${CONVENE_PG_DATABASE:-convene}}"
export DAY_DATABASE_URL

REPORT_DIR="$CONVENE_DEV_DIR/day-in-the-life"
mkdir -p "$REPORT_DIR"
REPORT="$REPORT_DIR/report-$(date -u +%Y%m%dT%H%M%SZ).json"
ARGS=("$@")
for arg in "$@"; do
  case "$arg" in --report | --report=*) REPORT="" ;; esac
done
if [ -n "$REPORT" ]; then ARGS+=(--report "$REPORT"); fi

status=0
"$TARGET/release/day-in-the-life" "${ARGS[@]}" || status=$?
if [ -n "$REPORT" ]; then convene_log "report: $REPORT"; fi
convene_log "the scale stack is left running (scripts/dev.sh down stops it)"
exit "$status"
