#!/usr/bin/env python3
"""Fails when a script would start a server on a fixed port in Linux's ephemeral range.

Linux gives client sockets local ports from 32768 to 60999 (its default
/proc/sys/net/ipv4/ip_local_port_range). On a busy machine a fixed port there may already be
held by some process's outgoing connection, and the stack then fails to start with "Address
already in use" for reasons that have nothing to do with it: a fresh-clone `.ci/run` once failed
so, its MC on 51052. So every port our scripts start a service on (the dev stack, the test
stacks, the benchmarks, the fallback PostgreSQL and Redis) stays below 32768. The services'
own defaults (GC's gRPC 50051, MC's 50052) are for containers, where nothing else runs; a
script that starts a service passes its port explicitly.

What is read: the shell scripts (scripts/*.sh, .ci/run) and the GitHub workflows
(.github/workflows/*.yml), comment lines aside. What counts as a port:
- an assignment or default of a variable whose name contains PORT (`MC_GRPC_PORT=18052`,
  `${CONVENE_PG_FALLBACK_PORT:-15432}`, `CONVENE_REDIS_PORT: "16379"` in YAML);
- an address on this machine (`127.0.0.1:8080`, `localhost:8080`, `0.0.0.0:8080`, `[::1]:8080`);
- a `--port` option (`redis-server --port 16379`).

The patterns check themselves against a few lines first (see SELF_TEST), so that a change to
them that stops catching what they must fails here rather than passing everything.

Usage: python3 scripts/check_ports.py [FILE...] (default: the files above). Each finding is
printed as `path:line: message`; the exit status is 1 when there is any.
"""

import pathlib
import re
import sys

EPHEMERAL = range(32768, 61000)

PATTERNS = [
    # NAME=1234, NAME="1234", NAME: "1234" (YAML), with PORT in the name.
    re.compile(r"\b[A-Za-z0-9_]*PORT[A-Za-z0-9_]*\s*[=:]\s*[\"']?(\d{1,5})\b"),
    # ${NAME:-1234} and ${NAME-1234}.
    re.compile(r"\$\{[A-Za-z0-9_]*PORT[A-Za-z0-9_]*:?-[\"']?(\d{1,5})\b"),
    # Loopback and wildcard addresses with a port.
    re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1?\]):(\d{1,5})\b"),
    # --port 1234, --port=1234.
    re.compile(r"--port[= ][\"']?(\d{1,5})\b"),
]

# (line, the ports it must report).
SELF_TEST = [
    ("  CONVENE_MC_GRPC_PORT=51052", [51052]),
    ('local fallback="${CONVENE_PG_FALLBACK_PORT:-55432}"', [55432]),
    ('  CONVENE_REDIS_PORT: "56379"', [56379]),
    ('redis-server --port 40000 --save ""', [40000]),
    ("curl -s http://127.0.0.1:50051/health/live", [50051]),
    ("  CONVENE_MC_GRPC_PORT=18052", []),
    ('GC_GRPC_PORT="${CONVENE_GC_GRPC_PORT:-8051}"', []),
    ("ulimit -n 65536", []),
    ("for port in 30080 30082; do", []),
    ("AC_URL=http://127.0.0.1:30082", []),
]


def ports_in(line):
    """The ephemeral ports a line names."""
    found = []
    for pattern in PATTERNS:
        for match in pattern.finditer(line):
            port = int(match.group(1))
            if port in EPHEMERAL and port not in found:
                found.append(port)
    return found


def default_files(repo):
    files = sorted(repo.glob("scripts/*.sh")) + [repo / ".ci/run"]
    files += sorted(repo.glob(".github/workflows/*.yml"))
    return [f for f in files if f.is_file()]


def main(argv):
    for line, expected in SELF_TEST:
        if ports_in(line) != expected:
            print(f"check_ports.py: its patterns find {ports_in(line)} in {line!r}, "
                  f"not {expected}", file=sys.stderr)
            return 1

    repo = pathlib.Path(__file__).resolve().parent.parent
    files = [pathlib.Path(a) for a in argv] or default_files(repo)
    problems = []
    for path in files:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for port in ports_in(line):
                shown = path.resolve().relative_to(repo) if path.resolve().is_relative_to(repo) else path
                problems.append(
                    f"{shown}:{lineno}: port {port} is in Linux's ephemeral range "
                    f"({EPHEMERAL.start}-{EPHEMERAL.stop - 1}), where a client socket may "
                    f"already hold it: start the service on a port below {EPHEMERAL.start}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{len(files)} scripts and workflows: no server on a port in "
          f"{EPHEMERAL.start}-{EPHEMERAL.stop - 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
