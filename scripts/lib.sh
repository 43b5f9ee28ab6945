# shellcheck shell=bash
#
# Shared helpers for Convene's developer and CI scripts. Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Works under `set -euo pipefail`. Every helper is idempotent.
#
# Public functions:
#   ensure_rust_tools   cargo must exist
#   ensure_nextest      install cargo-nextest when missing (the test runner)
#   ensure_postgres     reuse a reachable PostgreSQL or start a project-local one in .dev/pg;
#                       exports DATABASE_URL (database `convene`, or CONVENE_PG_DATABASE) and
#                       TEST_DATABASE_URL (database `postgres`, for #[sqlx::test])
#   ensure_redis        reuse a reachable Redis or start a project-local one in .dev/redis;
#                       exports REDIS_URL (database CONVENE_REDIS_DB when set)
#   convene_pg_local_stop / convene_redis_local_stop
#                       stop the project-local servers (never anything else)
#   ensure_redis_cluster PORT...
#                       keep or start a project-local Redis Cluster of primaries, one node per
#                       port, in .dev/redis-cluster/node-<port>; exports REDIS_CLUSTER_URLS
#                       (the scale stack of `scripts/dev.sh up --scale`)
#   convene_redis_cluster_stop
#                       stop that cluster's nodes (never any other Redis)
#   ensure_nginx        install Debian's nginx when missing (dev.sh runs its binary, never its
#                       service)
#
# Settings (environment):
#   CONVENE_PG_HOST (127.0.0.1)  CONVENE_PG_PORT (5432)  CONVENE_PG_USER (postgres)
#   CONVENE_PG_PASSWORD (empty)  CONVENE_PG_FALLBACK_PORT (15432)  CONVENE_PG_BINDIR (auto)
#   CONVENE_PG_DATABASE (convene): the database DATABASE_URL names (created when missing)
#   CONVENE_REDIS_HOST (127.0.0.1)  CONVENE_REDIS_PORT (6379)  CONVENE_REDIS_FALLBACK_PORT (16379)
#   CONVENE_REDIS_DB (unset: the server's default database 0): the logical database REDIS_URL names
#   CONVENE_DEV_DIR (.dev in the repository): state, logs and project-local servers. Another
#     directory gives a second, independent stack (scripts/env-tests.sh uses .dev/env-tests)
#
# When the default port answers but cannot be used (e.g. a PostgreSQL that wants a password,
# a Redis that wants AUTH) and the port was not set explicitly, a project-local server is
# started on the fallback port instead.
#
# Every port a script starts a server on is below 32768: Linux hands out 32768-60999 to
# client sockets (/proc/sys/net/ipv4/ip_local_port_range), so on a busy machine a fixed port
# there may already be held by someone's connection. scripts/check_ports.py keeps it so.

CONVENE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVENE_DEV_DIR="${CONVENE_DEV_DIR:-$CONVENE_REPO/.dev}"
case "$CONVENE_DEV_DIR" in /*) ;; *) CONVENE_DEV_DIR="$PWD/$CONVENE_DEV_DIR" ;; esac

# ---------------------------------------------------------------------------------------
# Logging and small utilities

convene_log() { printf '[convene] %s\n' "$*" >&2; }
convene_warn() { printf '[convene] WARNING: %s\n' "$*" >&2; }
convene_die() {
  printf '[convene] ERROR: %s\n' "$*" >&2
  exit 1
}

convene_have() { command -v "$1" >/dev/null 2>&1; }

convene_is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when we are root, else through sudo (non-interactive
# when there is no terminal, so CI fails instead of hanging on a password prompt).
convene_as_root() {
  if convene_is_root; then
    "$@"
  elif convene_have sudo; then
    if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
  else
    convene_die "root privileges needed for: $* (not root and no sudo)"
  fi
}

# Install Debian packages non-interactively. Output goes to .dev/apt.log.
# A project-local Python virtualenv $1 holding exactly the pinned packages $2...: made (with
# Debian's python3-venv when the system Python needs it) and reinstalled when the pins change.
convene_py_tools() {
  local venv="$1"
  shift
  local wanted="$*"
  convene_have python3 || convene_apt_install python3
  if [ "$(cat "$venv/.pins" 2>/dev/null)" = "$wanted" ] && [ -x "$venv/bin/pip" ]; then
    return
  fi
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
      rm -rf "$venv"
      convene_apt_install python3-venv
      python3 -m venv "$venv"
    }
  fi
  convene_log "installing $* into ${venv#"$CONVENE_REPO"/}"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  printf '%s' "$wanted" >"$venv/.pins"
}

# How long apt-get waits for another package manager (a second test run, unattended-upgrades)
# to release its locks before giving up.
CONVENE_APT_LOCK_WAIT_SECS=120

# apt-get ARGS as root, its output appended to the file $1, waiting for the locks of another
# package manager. DPkg::Lock::Timeout makes apt-get wait for dpkg's lock by itself, but apt
# 2.6 applies it to nothing else: `update` and downloads fail at once on the lists and archive
# locks ("Could not get lock"). Such a failure is tried again, every 2 s, within the same wait.
convene_apt_get() {
  local log="$1" deadline=$((SECONDS + CONVENE_APT_LOCK_WAIT_SECS)) before
  shift
  while :; do
    before="$(wc -l <"$log")"
    if convene_as_root env DEBIAN_FRONTEND=noninteractive apt-get \
      -o DPkg::Lock::Timeout="$CONVENE_APT_LOCK_WAIT_SECS" "$@" >>"$log" 2>&1; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ] \
      || ! tail -n "+$((before + 1))" "$log" | grep -q 'Could not get lock'; then
      return 1
    fi
    convene_log "apt-get $1: another package manager holds a lock; trying again in 2 s"
    sleep 2
  done
}

convene_apt_install() {
  convene_have apt-get || convene_die "apt-get not found: install $* with your system's package manager and re-run"
  mkdir -p "$CONVENE_DEV_DIR"
  local log="$CONVENE_DEV_DIR/apt.log"
  touch "$log"
  convene_log "installing $* with apt-get (output in ${log#"$CONVENE_REPO"/})"
  if ! convene_apt_get "$log" update -q \
    || ! convene_apt_get "$log" install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; then
    tail -n 20 "$log" >&2 || true
    convene_die "apt-get install $* failed (see $log)"
  fi
}

# True when something accepts TCP connections on host:port.
convene_port_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

convene_is_local_host() {
  case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac
}

# Host as it appears in a URL (IPv6 literals in brackets).
convene_url_host() {
  case "$1" in *:*) printf '[%s]' "$1" ;; *) printf '%s' "$1" ;; esac
}

# Percent-encode a string for the user-info part of a URL.
convene_urlencode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# True when pid is a live (non-zombie) process whose command name is $2.
convene_pid_is() {
  local pid="$1" comm="$2" info
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  local stat="" name=""
  info="$(ps -p "$pid" -o stat=,comm= 2>/dev/null)" || return 1
  read -r stat name <<<"$info" || true
  [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ] && [ "$name" = "$comm" ]
}

# True when pid is a live (non-zombie) process, whatever its name.
convene_pid_alive() {
  local stat
  case "$1" in '' | *[!0-9]*) return 1 ;; esac
  stat="$(ps -p "$1" -o stat= 2>/dev/null)" || return 1
  stat="${stat//[[:space:]]/}"
  [ -n "$stat" ] && [ "${stat#Z}" = "$stat" ]
}

# Read a pid from a file (first line); empty when the file is missing or not a number.
convene_read_pid() {
  local pid=""
  if [ -f "$1" ]; then IFS= read -r pid <"$1" || true; fi
  case "$pid" in '' | *[!0-9]*) pid="" ;; esac
  printf '%s' "$pid"
}

# Stop a process we started: SIGTERM, wait up to $4 seconds (default 10), then SIGKILL.
# Only acts when the pid is alive and its command name matches, so a stale pid file never
# hits an unrelated process. Usage: convene_stop_pid PID COMM LABEL [TIMEOUT]
convene_stop_pid() {
  local pid="$1" comm="$2" label="$3" timeout="${4:-10}" i
  convene_pid_is "$pid" "$comm" || return 0
  convene_log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    convene_pid_is "$pid" "$comm" || return 0
    sleep 0.1
  done
  convene_warn "$label (pid $pid) still running after ${timeout}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    convene_pid_is "$pid" "$comm" || return 0
    sleep 0.1
  done
  convene_die "could not stop $label (pid $pid)"
}

# Serialize the set-up of project-local servers between scripts running at the same time
# (dev.sh up and test.sh, say). A directory is the lock (mkdir is atomic, and no file
# descriptor leaks into the servers we start); one left by a dead process is taken over.
_convene_lock() {
  local dir="$CONVENE_DEV_DIR/$1.lock" owner i
  mkdir -p "$CONVENE_DEV_DIR"
  for ((i = 0; i < 6000; i++)); do
    if mkdir "$dir" 2>/dev/null; then
      printf '%s\n' "$$" >"$dir/pid"
      return 0
    fi
    owner="$(convene_read_pid "$dir/pid")"
    if [ -n "$owner" ] && ! convene_pid_alive "$owner"; then
      rm -rf "$dir"
      continue
    fi
    if [ "$i" -eq 30 ]; then convene_log "waiting for another Convene script to finish setting up $1"; fi
    sleep 0.1
  done
  convene_die "timed out waiting for $dir (remove it if no other Convene script runs)"
}

_convene_unlock() { rm -rf "$CONVENE_DEV_DIR/$1.lock"; }

# ---------------------------------------------------------------------------------------
# Rust toolchain

ensure_rust_tools() {
  if ! convene_have cargo && [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
    export PATH
  fi
  convene_have cargo \
    || convene_die "cargo not found: install Rust (https://rustup.rs) and make sure cargo is on PATH"
}

# The test runner. Tests need cargo-nextest, not plain `cargo test`: nextest runs each test in
# its own process, and the metric assertions rely on that (a process has one global metrics
# recorder, which concurrent tests in one process would share). Installed once when missing.
ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    return 0
  fi
  convene_log "cargo-nextest not found: installing it (cargo install --locked cargo-nextest; a few minutes, once)"
  cargo install --locked cargo-nextest >&2 \
    || convene_die "cannot install cargo-nextest: install it yourself (cargo install --locked cargo-nextest)"
  # cargo installs into $CARGO_INSTALL_ROOT/bin or $CARGO_HOME/bin, which may not be on PATH.
  if ! cargo nextest --version >/dev/null 2>&1; then
    PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
    export PATH
  fi
  cargo nextest --version >/dev/null 2>&1 \
    || convene_die "cargo-nextest was installed but cannot be run: add cargo's bin folder to PATH"
}

# Fail clearly when a cargo subcommand (fmt, clippy) is missing. Usage: NAME COMPONENT
convene_require_cargo_subcommand() {
  cargo "$1" --version >/dev/null 2>&1 \
    || convene_die "cargo $1 not available: rustup component add $2"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

CONVENE_PG_DATA="$CONVENE_DEV_DIR/pg"

# Directory of the server binaries (initdb, pg_ctl). Prefers major version $1 when given
# (the version of an existing data directory), else the highest installed. Empty if none.
convene_pg_bindir() {
  local want="${1:-}" d
  if [ -n "${CONVENE_PG_BINDIR:-}" ]; then
    printf '%s' "$CONVENE_PG_BINDIR"
    return 0
  fi
  if [ -n "$want" ]; then
    [ -x "/usr/lib/postgresql/$want/bin/pg_ctl" ] && printf '%s' "/usr/lib/postgresql/$want/bin"
    return 0
  fi
  d="$(for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && printf '%s\n' "$d"
  done | sort -V | tail -n 1)"
  if [ -z "$d" ] && convene_have initdb && convene_have pg_ctl; then
    d="$(dirname "$(command -v pg_ctl)")"
  fi
  printf '%s' "$d"
}

# Path of a client tool (psql, pg_isready): on PATH, else in a server bin directory.
convene_pg_tool() {
  local bindir
  if convene_have "$1"; then
    command -v "$1"
    return 0
  fi
  bindir="$(convene_pg_bindir)"
  if [ -n "$bindir" ] && [ -x "$bindir/$1" ]; then printf '%s' "$bindir/$1"; fi
}

# psql against the configured server. Usage: _convene_psql HOST PORT DB ARGS...
_convene_psql() {
  local host="$1" port="$2" db="$3" psql
  shift 3
  psql="$(convene_pg_tool psql)"
  local -a envs=(PGCONNECT_TIMEOUT=5)
  if [ -n "${CONVENE_PG_PASSWORD:-}" ]; then envs+=("PGPASSWORD=$CONVENE_PG_PASSWORD"); fi
  env "${envs[@]}" "$psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$host" -p "$port" \
    -U "${CONVENE_PG_USER:-postgres}" -d "$db" "$@"
}

# 0: usable (answers and lets us in) · 1: nothing answers · 2: answers but refuses us
_convene_pg_probe() {
  local host="$1" port="$2" isready i rc
  isready="$(convene_pg_tool pg_isready)"
  for ((i = 0; i < 20; i++)); do
    rc=0
    "$isready" -q -h "$host" -p "$port" -t 3 >/dev/null 2>&1 || rc=$?
    case "$rc" in
      0) break ;;
      1) sleep 0.5 ;; # server is starting up (or shutting down): give it a moment
      *) return 1 ;;
    esac
  done
  [ "$rc" -eq 0 ] || return 2
  _convene_psql "$host" "$port" postgres -c 'SELECT 1' >/dev/null 2>&1 || return 2
  return 0
}

# Run a command as the owner of the project-local cluster. initdb and pg_ctl refuse to run
# as root, so as root they run as the `postgres` system user.
_convene_pg_as_owner() {
  if convene_is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The real (symlink-resolved) data directory, created and owned by the cluster owner.
# As root, when the `postgres` user cannot reach .dev/pg (repository under /root, say), the
# cluster lives in /var/tmp and .dev/pg is a symlink to it.
_convene_pg_prepare_datadir() {
  local data="$CONVENE_PG_DATA" alt sum id
  mkdir -p "$CONVENE_DEV_DIR"
  if ! convene_is_root; then
    mkdir -p "$data"
    chmod 700 "$data"
    (cd "$data" && pwd -P)
    return 0
  fi
  if ! id -u postgres >/dev/null 2>&1; then
    convene_log "creating system user postgres (initdb refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
      --shell /bin/sh postgres >&2
  fi
  if [ ! -L "$data" ]; then
    mkdir -p "$data"
    chown postgres:postgres "$data"
    chmod 700 "$data"
    if ! runuser -u postgres -- test -w "$data" 2>/dev/null; then
      # Named after the repository, or after the state directory when it is not the default
      # one, so that two stacks of one checkout never share a cluster.
      id="$CONVENE_REPO"
      [ "$CONVENE_DEV_DIR" = "$CONVENE_REPO/.dev" ] || id="$CONVENE_DEV_DIR"
      sum="$(printf '%s' "$id" | cksum | cut -d' ' -f1)"
      alt="/var/tmp/convene-pg-$sum"
      convene_log "user postgres cannot reach $data; keeping the cluster in $alt (symlinked)"
      rmdir "$data" 2>/dev/null || convene_die "$data is not empty but unreachable for user postgres"
      mkdir -p "$alt"
      ln -s "$alt" "$data"
    fi
  fi
  alt="$(cd "$data" && pwd -P)"
  chown postgres:postgres "$alt"
  chmod 700 "$alt"
  printf '%s' "$alt"
}

# Port of the running project-local cluster (from postmaster.pid), empty if not running.
convene_pg_local_port() {
  local pidfile="$CONVENE_PG_DATA/postmaster.pid" pid port
  [ -f "$pidfile" ] || return 0
  pid="$(convene_read_pid "$pidfile")"
  convene_pid_is "$pid" postgres || return 0
  port="$(sed -n 4p "$pidfile" 2>/dev/null || true)"
  printf '%s' "$port"
}

# Start (or restart on another port) the project-local cluster. Usage: HOST PORT
_convene_pg_start_local() {
  local host="$1" port="$2" data version="" bindir running_port sock
  if [ -f "$CONVENE_PG_DATA/PG_VERSION" ]; then
    version="$(cat "$CONVENE_PG_DATA/PG_VERSION")"
    bindir="$(convene_pg_bindir "$version")"
    [ -n "$bindir" ] || convene_die "$CONVENE_PG_DATA holds a PostgreSQL $version cluster but PostgreSQL $version is not installed; remove .dev/pg (its data is lost) or install postgresql-$version"
  else
    bindir="$(convene_pg_bindir)"
  fi
  [ -n "$bindir" ] || convene_die "PostgreSQL server binaries not found"
  data="$(_convene_pg_prepare_datadir)" || exit 1

  running_port="$(convene_pg_local_port)"
  if [ -n "$running_port" ] && [ "$running_port" != "$port" ]; then
    convene_log "project-local PostgreSQL runs on port $running_port, restarting it on $port"
    _convene_pg_as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  elif [ -n "$running_port" ]; then
    convene_die "project-local PostgreSQL runs on port $port but does not answer; see $data/log"
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    convene_log "initializing project-local PostgreSQL cluster in .dev/pg ($("$bindir/postgres" --version))"
    _convene_pg_as_owner "$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 \
      >"$CONVENE_DEV_DIR/initdb.log" 2>&1 || {
      tail -n 20 "$CONVENE_DEV_DIR/initdb.log" >&2
      convene_die "initdb failed (see .dev/initdb.log)"
    }
  fi

  # Unix socket paths are limited to ~107 bytes; without one, pg_ctl and we use TCP anyway.
  sock="-k '$data'"
  if [ $((${#data} + 20)) -gt 100 ]; then sock="-c unix_socket_directories=''"; fi
  convene_log "starting project-local PostgreSQL on $host:$port (log: .dev/pg/log)"
  if ! _convene_pg_as_owner "$bindir/pg_ctl" -D "$data" -w -t 60 -l "$data/log" \
    -o "-p $port $sock -c listen_addresses='$host' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null; then
    tail -n 20 "$data/log" >&2 || true
    convene_die "could not start PostgreSQL (see .dev/pg/log)"
  fi
}

ensure_postgres() {
  local host="${CONVENE_PG_HOST:-127.0.0.1}" port="${CONVENE_PG_PORT:-5432}"
  local fallback="${CONVENE_PG_FALLBACK_PORT:-15432}" user="${CONVENE_PG_USER:-postgres}"
  local db="${CONVENE_PG_DATABASE:-convene}"
  local may_fall_back=1 attempt rc how="" userinfo base createdb

  # Goes into SQL and a URL unquoted: a plain identifier only.
  [[ "$db" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] \
    || convene_die "CONVENE_PG_DATABASE must be a lowercase identifier (a-z, 0-9, _), not '$db'"

  [ -n "${CONVENE_PG_PORT:-}" ] && may_fall_back=0
  _convene_lock postgres
  if [ -z "$(convene_pg_tool pg_isready)" ] || [ -z "$(convene_pg_tool psql)" ]; then
    convene_apt_install postgresql-client
  fi

  for ((attempt = 0; attempt < 5; attempt++)); do
    rc=0
    _convene_pg_probe "$host" "$port" || rc=$?
    if [ "$rc" -eq 0 ]; then
      if [ "$(convene_pg_local_port)" = "$port" ] && convene_is_local_host "$host"; then
        how="project-local (.dev/pg)"
      else
        how="existing server"
      fi
      break
    elif [ "$rc" -eq 2 ]; then
      if [ "$may_fall_back" -eq 1 ] && [ "$port" != "$fallback" ] && convene_is_local_host "$host"; then
        convene_log "PostgreSQL on $host:$port does not let user $user in; using a project-local one on port $fallback"
        port="$fallback"
        continue
      fi
      convene_die "PostgreSQL on $host:$port answers but user $user cannot connect (auth?); set CONVENE_PG_USER/CONVENE_PG_PASSWORD, or CONVENE_PG_PORT=$fallback for a project-local cluster"
    fi
    # Nothing answers.
    convene_is_local_host "$host" \
      || convene_die "no PostgreSQL answers on $host:$port (a project-local cluster can only run on this machine)"
    if convene_port_open "$host" "$port"; then
      if [ "$may_fall_back" -eq 1 ] && [ "$port" != "$fallback" ]; then
        convene_log "port $port is taken by something that is not PostgreSQL; using port $fallback"
        port="$fallback"
        continue
      fi
      convene_die "port $host:$port is taken by something that is not PostgreSQL; set CONVENE_PG_PORT to a free port"
    fi
    if [ -z "$(convene_pg_bindir)" ] && [ ! -f "$CONVENE_PG_DATA/PG_VERSION" ]; then
      convene_apt_install postgresql
      # The package may have started a system cluster on this very port: probe again.
      continue
    fi
    _convene_pg_start_local "$host" "$port"
  done
  [ -n "$how" ] || convene_die "could not get a usable PostgreSQL on $host:$port"
  convene_log "PostgreSQL: $how on $host:$port"

  createdb="$(_convene_psql "$host" "$port" postgres -c \
    'SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user')"
  [ "$createdb" = "t" ] || convene_warn "role $user cannot CREATEDB: #[sqlx::test] tests will fail"
  if [ "$(_convene_psql "$host" "$port" postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    convene_log "creating database $db"
    _convene_psql "$host" "$port" postgres -c "CREATE DATABASE $db" >/dev/null 2>&1 \
      || [ "$(_convene_psql "$host" "$port" postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = "1" ] \
      || convene_die "could not create database $db on $host:$port"
  fi

  userinfo="$(convene_urlencode "$user")"
  if [ -n "${CONVENE_PG_PASSWORD:-}" ]; then
    userinfo+=":$(convene_urlencode "$CONVENE_PG_PASSWORD")"
  fi
  base="postgres://$userinfo@$(convene_url_host "$host"):$port"
  DATABASE_URL="$base/$db"
  TEST_DATABASE_URL="$base/postgres"
  export DATABASE_URL TEST_DATABASE_URL
  _convene_unlock postgres
}

# Stop the project-local cluster if it runs. Never touches any other PostgreSQL.
convene_pg_local_stop() {
  local data pid version bindir
  [ -e "$CONVENE_PG_DATA/postmaster.pid" ] || return 0
  pid="$(convene_read_pid "$CONVENE_PG_DATA/postmaster.pid")"
  convene_pid_is "$pid" postgres || return 0
  data="$(cd "$CONVENE_PG_DATA" && pwd -P)"
  version="$(cat "$data/PG_VERSION" 2>/dev/null || true)"
  bindir="$(convene_pg_bindir "$version")"
  if [ -n "$bindir" ]; then
    convene_log "stopping project-local PostgreSQL (pid $pid)"
    _convene_pg_as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null && return 0
  fi
  # No pg_ctl of that version: SIGINT is PostgreSQL's "fast shutdown".
  kill -INT "$pid" 2>/dev/null || true
  convene_stop_pid "$pid" postgres "project-local PostgreSQL" 30
}

# ---------------------------------------------------------------------------------------
# Redis

CONVENE_REDIS_DIR="$CONVENE_DEV_DIR/redis"

# True when Redis on host:port answers PING with PONG (redis-cli, else raw RESP over bash).
convene_redis_ping() {
  local host="$1" port="$2" out
  if convene_have redis-cli; then
    out="$(timeout 3 redis-cli -h "$host" -p "$port" ping 2>/dev/null)" || return 1
    [ "$out" = "PONG" ]
  else
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "PING\r\n" >&3
      IFS= read -r line <&3 || exit 1
      [ "${line%$'"'"'\r'"'"'}" = "+PONG" ]' _ "$host" "$port" 2>/dev/null
  fi
}

convene_redis_server_bin() {
  if convene_have redis-server; then
    command -v redis-server
  elif [ -x /usr/bin/redis-server ]; then
    printf '%s' /usr/bin/redis-server
  fi
}

# Pid of the project-local Redis if it runs, else empty.
convene_redis_local_pid() {
  local pid
  pid="$(convene_read_pid "$CONVENE_REDIS_DIR/redis.pid")"
  if convene_pid_is "$pid" redis-server; then printf '%s' "$pid"; fi
}

convene_redis_local_stop() {
  local pid
  pid="$(convene_redis_local_pid)"
  if [ -n "$pid" ]; then convene_stop_pid "$pid" redis-server "project-local Redis" 10; fi
  rm -f "$CONVENE_REDIS_DIR/redis.pid"
}

_convene_redis_start_local() {
  local host="$1" port="$2" bin bind i
  bin="$(convene_redis_server_bin)"
  [ -n "$bin" ] || convene_die "redis-server not found"
  mkdir -p "$CONVENE_REDIS_DIR"
  if [ -n "$(convene_redis_local_pid)" ]; then
    convene_log "project-local Redis runs on another port, restarting it on $port"
    convene_redis_local_stop
  fi
  bind="$host"
  [ "$host" = localhost ] && bind=127.0.0.1
  convene_log "starting project-local Redis on $host:$port (log: .dev/redis/redis.log)"
  "$bin" --daemonize yes --bind "$bind" --port "$port" --save '' --appendonly no \
    --dir "$CONVENE_REDIS_DIR" --pidfile "$CONVENE_REDIS_DIR/redis.pid" \
    --logfile "$CONVENE_REDIS_DIR/redis.log" >/dev/null \
    || convene_die "could not start redis-server (see .dev/redis/redis.log)"
  printf '%s\n' "$port" >"$CONVENE_REDIS_DIR/port"
  for ((i = 0; i < 100; i++)); do
    convene_redis_ping "$host" "$port" && return 0
    sleep 0.1
  done
  tail -n 20 "$CONVENE_REDIS_DIR/redis.log" >&2 || true
  convene_die "Redis did not answer on $host:$port within 10s (see .dev/redis/redis.log)"
}

ensure_redis() {
  local host="${CONVENE_REDIS_HOST:-127.0.0.1}" port="${CONVENE_REDIS_PORT:-6379}"
  local fallback="${CONVENE_REDIS_FALLBACK_PORT:-16379}" may_fall_back=1 attempt how=""
  local db="${CONVENE_REDIS_DB:-}"

  case "$db" in '' | [0-9] | [1-9][0-9]) ;; *) convene_die "CONVENE_REDIS_DB must be a database number (0-99), not '$db'" ;; esac

  [ -n "${CONVENE_REDIS_PORT:-}" ] && may_fall_back=0
  _convene_lock redis
  for ((attempt = 0; attempt < 5; attempt++)); do
    if convene_redis_ping "$host" "$port"; then
      if [ -n "$(convene_redis_local_pid)" ] && [ "$(cat "$CONVENE_REDIS_DIR/port" 2>/dev/null)" = "$port" ]; then
        how="project-local (.dev/redis)"
      else
        how="existing server"
      fi
      break
    fi
    convene_is_local_host "$host" \
      || convene_die "no Redis answers on $host:$port (a project-local Redis can only run on this machine)"
    if convene_port_open "$host" "$port"; then
      if [ "$may_fall_back" -eq 1 ] && [ "$port" != "$fallback" ]; then
        convene_log "port $port answers but not with PONG (password? not Redis?); using a project-local Redis on port $fallback"
        port="$fallback"
        continue
      fi
      convene_die "$host:$port answers but not like a usable Redis (password? not Redis?); set CONVENE_REDIS_PORT to a free port"
    fi
    if [ -z "$(convene_redis_server_bin)" ]; then
      convene_apt_install redis-server
      # The package may have started a system Redis on this very port: probe again.
      continue
    fi
    _convene_redis_start_local "$host" "$port"
  done
  [ -n "$how" ] || convene_die "could not get a usable Redis on $host:$port"
  convene_log "Redis: $how on $host:$port"
  REDIS_URL="redis://$(convene_url_host "$host"):$port${db:+/$db}"
  export REDIS_URL
  _convene_unlock redis
}

# For the benchmarks, whose services log at warn and error only (RUST_LOG=warn) into
# "$WORK/<service>.log": convene_log_mark before a run and convene_log_report after it print
# what each service logged meanwhile, grouped by level, message, error code and error.
declare -A CONVENE_LOG_AT
convene_log_mark() {
  local svc
  for svc in ac gc mc; do
    CONVENE_LOG_AT[$svc]="$( (wc -l <"$WORK/$svc.log") 2>/dev/null || echo 0)"
  done
}
convene_log_report() {
  local svc
  for svc in ac gc mc; do
    tail -n "+$((${CONVENE_LOG_AT[$svc]:-0} + 1))" "$WORK/$svc.log" 2>/dev/null | python3 -c '
import collections, json, sys
counts = collections.Counter()
for line in sys.stdin:
    try:
        e = json.loads(line)
        counts[" ".join(str(e.get(k)) for k in ("level", "message", "error_code", "error") if e.get(k))] += 1
    except ValueError:
        counts[line.strip()[:200]] += 1
for what, n in counts.most_common(5):
    print(f"log          {sys.argv[1]}: {n} x {what}")' "$svc"
  done
}

# ---------------------------------------------------------------------------------------
# Redis Cluster and nginx: the scale stack of `scripts/dev.sh up --scale`
# (docs/scale-stack.md). Both are project-local processes under the state directory, started
# and stopped by pid file, never a system service.

CONVENE_REDIS_CLUSTER_DIR="$CONVENE_DEV_DIR/redis-cluster"

# Pids of the project-local cluster's nodes that run, one a line.
convene_redis_cluster_pids() {
  local file pid
  for file in "$CONVENE_REDIS_CLUSTER_DIR"/node-*/redis.pid; do
    [ -f "$file" ] || continue
    pid="$(convene_read_pid "$file")"
    if convene_pid_is "$pid" redis-server; then printf '%s\n' "$pid"; fi
  done
}

# Stop every node of the project-local cluster (never any other Redis). Its data goes with it:
# the nodes run without persistence.
convene_redis_cluster_stop() {
  local pid
  for pid in $(convene_redis_cluster_pids); do
    convene_stop_pid "$pid" redis-server "Redis Cluster node" 10
  done
  rm -f "$CONVENE_REDIS_CLUSTER_DIR"/node-*/redis.pid
}

# True when every node on the ports $@ answers and says `cluster_state:ok`.
_convene_redis_cluster_ok() {
  local port
  for port in "$@"; do
    timeout 3 redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | tr -d '\r' \
      | grep -qx 'cluster_state:ok' || return 1
  done
}

# A Redis Cluster of primaries only (no replicas), one node on each port given, each with its
# data directory CONVENE_REDIS_CLUSTER_DIR/node-<port> and its cluster bus on port + 10000.
# A cluster of ours that runs and is whole is kept; otherwise it is made afresh (the nodes keep
# no data). Exports REDIS_CLUSTER_URLS, MC's setting: the node URLs, comma-separated.
# Usage: ensure_redis_cluster PORT PORT PORT
ensure_redis_cluster() {
  local ports=("$@") port bin dir i urls=() nodes=()
  [ "${#ports[@]}" -ge 3 ] || convene_die "a Redis Cluster needs at least three primaries"
  _convene_lock redis-cluster
  bin="$(convene_redis_server_bin)"
  if [ -z "$bin" ] || ! convene_have redis-cli; then
    convene_apt_install redis-server redis-tools
    bin="$(convene_redis_server_bin)"
  fi
  [ -n "$bin" ] || convene_die "redis-server not found"
  for port in "${ports[@]}"; do
    urls+=("redis://127.0.0.1:$port")
    nodes+=("127.0.0.1:$port")
  done
  if [ "$(convene_redis_cluster_pids | wc -l)" -eq "${#ports[@]}" ] && _convene_redis_cluster_ok "${ports[@]}"; then
    convene_log "Redis Cluster: project-local, already running on ports ${ports[*]}"
  else
    convene_redis_cluster_stop
    for port in "${ports[@]}"; do
      if convene_port_open 127.0.0.1 "$port" || convene_port_open 127.0.0.1 "$((port + 10000))"; then
        convene_die "port $port or $((port + 10000)) (Redis Cluster node and its bus) is in use by a process dev.sh did not start; set CONVENE_REDIS_CLUSTER_PORT"
      fi
    done
    rm -rf "$CONVENE_REDIS_CLUSTER_DIR"
    convene_log "starting a project-local Redis Cluster: ${#ports[@]} primaries on ports ${ports[*]} (logs: ${CONVENE_REDIS_CLUSTER_DIR#"$CONVENE_REPO"/}/node-<port>/redis.log)"
    for port in "${ports[@]}"; do
      dir="$CONVENE_REDIS_CLUSTER_DIR/node-$port"
      mkdir -p "$dir"
      "$bin" --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-port "$((port + 10000))" --cluster-config-file nodes.conf \
        --save '' --appendonly no --dir "$dir" --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" >/dev/null \
        || convene_die "could not start redis-server on port $port (see $dir/redis.log)"
    done
    for port in "${ports[@]}"; do
      for ((i = 0; i < 100; i++)); do
        convene_redis_ping 127.0.0.1 "$port" && break
        sleep 0.1
      done
      convene_redis_ping 127.0.0.1 "$port" \
        || convene_die "Redis Cluster node on port $port did not answer within 10s (see $CONVENE_REDIS_CLUSTER_DIR/node-$port/redis.log)"
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$CONVENE_REDIS_CLUSTER_DIR/create.log" 2>&1 || {
      tail -n 20 "$CONVENE_REDIS_CLUSTER_DIR/create.log" >&2 || true
      convene_die "redis-cli --cluster create failed (see ${CONVENE_REDIS_CLUSTER_DIR#"$CONVENE_REPO"/}/create.log)"
    }
    for ((i = 0; i < 300; i++)); do
      _convene_redis_cluster_ok "${ports[@]}" && break
      sleep 0.1
    done
    _convene_redis_cluster_ok "${ports[@]}" \
      || convene_die "the Redis Cluster did not reach cluster_state:ok within 30s"
    convene_log "Redis Cluster: formed, cluster_state:ok on every node"
  fi
  REDIS_CLUSTER_URLS="$(IFS=,; printf '%s' "${urls[*]}")"
  export REDIS_CLUSTER_URLS
  _convene_unlock redis-cluster
}

# nginx from Debian's package (installed when missing); only its binary is used: dev.sh runs
# it as the current user with a configuration of its own (`-p`, `-c`), never the system service
# (the package's own configuration and service are left alone).
convene_nginx_bin() {
  if convene_have nginx; then
    command -v nginx
  elif [ -x /usr/sbin/nginx ]; then
    printf '%s' /usr/sbin/nginx
  fi
}

ensure_nginx() {
  if [ -z "$(convene_nginx_bin)" ]; then
    convene_apt_install nginx
  fi
  [ -n "$(convene_nginx_bin)" ] || convene_die "nginx not found after installing Debian's nginx package"
}
