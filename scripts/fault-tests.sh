#!/usr/bin/env bash
#
# The fault suite (docs/reliability.md, "The fault suite"): a stack of its own, broken on
# purpose under a running load, with the checker of what must survive after each scenario.
# It builds the services and crates/fault-suite (dev profile), then runs the suite binary,
# which starts, on loopback ports 17010-17155 (below the ephemeral range; the table is in
# crates/fault-suite/src/stack.rs):
#   - its own PostgreSQL cluster (initdb into a fresh directory, .dev/faults/pg, or
#     /var/tmp/convene-faults-pg-<n> as root; a streaming replica beside it, <dir>.replica,
#     for the promotion scenario), its own Redis server without persistence, and for the
#     failover scenario a Redis Cluster of three primaries with a replica each;
#   - AC, two GC replicas and three MCs from the binaries just built, each MC and GC talking
#     to its data store through a fault proxy (crates/fault-proxy) in the suite's process;
# and runs each scenario in turn, printing what it measured and the checker's counts.
# Whatever happens, everything it started is stopped on exit (its own process group, and
# pg_ctl stop for the cluster). Called by scripts/test.sh (the README's test command).
#
# Usage: scripts/fault-tests.sh [SCENARIO...]   (default: all; the names are in
#        crates/fault-suite/src/scenarios.rs, ALL)
# Environment: CARGO_TARGET_DIR is honoured; CONVENE_FAULT_TIMEOUT (2400 s) bounds the run.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

ensure_rust_tools
# The servers it starts are its own: their programs must be installed, running ones or not.
PG_BINDIR="$(convene_pg_bindir)"
if [ -z "$PG_BINDIR" ]; then
  convene_apt_install postgresql
  PG_BINDIR="$(convene_pg_bindir)"
fi
[ -n "$PG_BINDIR" ] || convene_die "PostgreSQL's server programs (initdb, pg_ctl) not found"
if [ -z "$(convene_redis_server_bin)" ] || ! convene_have redis-cli; then
  convene_apt_install redis-server
fi
# The clock-skew scenario runs AC with libfaketime preloaded.
convene_have faketime || convene_apt_install faketime
FAULT_LIBFAKETIME="$(find /usr/lib /usr/lib64 -name libfaketime.so.1 2>/dev/null | head -n 1 || true)"
export FAULT_LIBFAKETIME

FAULT_DIR="$CONVENE_DEV_DIR/faults"
FAULT_PG_DATA="$FAULT_DIR/pg"
if convene_is_root; then
  if ! id -u postgres >/dev/null 2>&1; then
    convene_log "creating system user postgres (initdb refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
      --shell /bin/sh postgres >&2
  fi
  # The cluster's directory must be reachable by user postgres, which .dev may not be.
  FAULT_PG_DATA="/var/tmp/convene-faults-pg-$(printf '%s' "$CONVENE_REPO" | cksum | cut -d' ' -f1)"
fi
rm -rf "$FAULT_DIR"
mkdir -p "$FAULT_DIR"
export FAULT_DIR FAULT_PG_DATA
export FAULT_PG_BINDIR="$PG_BINDIR"

convene_log "building ac-service, gc-service, mc-service and fault-suite (cargo build, dev profile)"
cargo build --bin ac-service --bin gc-service --bin mc-service --bin fault-suite
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$CONVENE_REPO/$target" ;; esac
export FAULT_BINS="$target/debug"

# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local data
  if [ -n "${suite_pid:-}" ]; then kill -KILL -- "-$suite_pid" 2>/dev/null || true; fi
  # The cluster and the replica the promotion scenario makes beside it.
  for data in "$FAULT_PG_DATA" "$FAULT_PG_DATA.replica"; do
    [ -f "$data/postmaster.pid" ] || continue
    if convene_is_root; then
      (cd / && runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$data" -m immediate stop) >/dev/null 2>&1 || true
    else
      "$PG_BINDIR/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

convene_log "fault suite: ${*:-every scenario} (logs in ${FAULT_DIR#"$CONVENE_REPO"/}/logs)"
# Its own process group (setsid), so that the cleanup reaches every process it started.
setsid timeout -s KILL "${CONVENE_FAULT_TIMEOUT:-2400}" "$FAULT_BINS/fault-suite" "$@" &
suite_pid=$!
status=0
wait "$suite_pid" || status=$?
exit "$status"
