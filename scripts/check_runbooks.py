#!/usr/bin/env python3
"""Checks that the runbooks name only things that exist in this repository.

A runbook is read at 3 a.m. by someone who will copy its commands as they are, so every name
in it must be real. For each Markdown file of docs/runbooks/ (or the files given as arguments):

(a) metrics: every identifier starting with ``ac_``, ``gc_`` or ``mc_`` in inline code or in a
    fenced code block is in the service's catalog, docs/observability/metrics/<svc>-service.md.
    ``_bucket``, ``_sum`` and ``_count`` are accepted after a catalogued histogram. Rust paths
    (``gc_service::...``) and the crate names themselves are not metrics;
(b) alerts: every CamelCase word that starts like an alert (``GC``, ``MC``, ``AC`` or
    ``Convene`` followed by a capitalised word), and every CamelCase identifier in backticks
    that ends like one (the last word of a known alert: ``...Rate``, ``...Down``, ...), is an
    alert of infra/prometheus/rules/;
(c) paths: every repository path (``scripts/``, ``docs/``, ``infra/``, ``crates/``,
    ``migrations/``) exists, and the section a ``path.md#anchor`` names too. ``<placeholder>``
    and ``*`` match any name, ``{a,b}`` each alternative;
(d) kubectl: every command targets namespace ``convene`` and names only the Kubernetes
    objects below (a listing without a name, such as ``get pods``, is fine; pods are
    ``mc-service-N``, a Deployment's or Job's generated pod names, placeholders, or a throwaway
    pod the same runbook starts with ``kubectl run --rm``);
(e) no command runs anything but the service's own binary inside a service container
    (``kubectl exec ... -- sh``, ``bash``, ``psql``, ...): the images are distroless. ``psql``
    runs from an operator's machine or a throwaway pod (``kubectl run --rm -it psql
    --image=postgres:16 ...``);
(f) links: every relative Markdown link resolves to a file or folder, and its ``#anchor`` to a
    heading of the target, by GitHub's slug rules (lowercase, punctuation dropped, spaces to
    hyphens, ``-1``, ``-2`` for repeats).

Each failure is printed as ``path:line: message``; the exit status is 1 when there is any.
Python 3.11 standard library only. Usage: scripts/check_runbooks.py [FILE.md ...]
"""

from __future__ import annotations

import glob
import pathlib
import re
import shlex
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
RUNBOOKS = REPO / "docs" / "runbooks"
RULES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yaml"))
SERVICES = ("ac", "gc", "mc")

# The Kubernetes objects of Convene (see the manifests under infra/k8s/), by canonical type.
NAMESPACE = "convene"
OBJECTS = {
    "deployment": {"ac-service", "gc-service"},
    "statefulset": {"mc-service"},
    "service": {"ac-service", "gc-service", "mc-service-headless"},
    "job": {"convene-migrate", "convene-seed"},
    "horizontalpodautoscaler": {"gc-service"},
    "poddisruptionbudget": {"ac-service", "gc-service", "mc-service"},
    "configmap": {"ac-service-config", "gc-service-config", "mc-service-config"},
    # The first three are the services' own; the operator creates the shared ones too
    # (infra/k8s/overlays/production/kustomization.yaml): PostgreSQL's URL and Redis' nodes.
    "secret": {"ac-service-secrets", "gc-service-secrets", "mc-service-credentials",
               "convene-database", "convene-redis"},
    "pod": set(),  # by pattern, see POD_NAME
}
APP_LABELS = {"ac-service", "gc-service", "mc-service", "convene-migrate", "convene-seed"}
POD_NAME = re.compile(
    r"^(mc-service-\d+"  # the StatefulSet's pods
    r"|(ac|gc)-service-[a-z0-9]{5,10}-[a-z0-9]{5}"  # a Deployment's pods
    r"|convene-(migrate|seed)-[a-z0-9]{5})$"  # a Job's pods
)
TYPE_ALIASES = {
    "deployment": ("deploy", "deployment", "deployments", "deployment.apps"),
    "statefulset": ("sts", "statefulset", "statefulsets", "statefulset.apps"),
    "service": ("svc", "service", "services"),
    "job": ("job", "jobs", "job.batch"),
    "horizontalpodautoscaler": ("hpa", "horizontalpodautoscaler", "horizontalpodautoscalers"),
    "poddisruptionbudget": ("pdb", "poddisruptionbudget", "poddisruptionbudgets"),
    "configmap": ("cm", "configmap", "configmaps"),
    "secret": ("secret", "secrets"),
    "pod": ("po", "pod", "pods"),
}
CANONICAL = {alias: kind for kind, aliases in TYPE_ALIASES.items() for alias in aliases}
# Verbs that need no namespace: they read local files or the client's own configuration.
LOCAL_VERBS = {"kustomize", "version", "config", "explain", "api-resources", "api-versions",
               "completion", "help", "plugin", "cluster-info"}
# Flags that take a value (as the next word when not written `--flag=value`).
VALUE_FLAGS = {
    "-n", "--namespace", "-l", "--selector", "-o", "--output", "-c", "--container", "--since",
    "--since-time", "--tail", "--image", "--replicas", "--to-revision", "--timeout", "-k",
    "--kustomize", "-f", "--filename", "--field-selector", "--sort-by", "--restart", "--env",
    "--overrides", "--type", "-p", "--patch", "--revision", "--max-log-requests", "--for",
    "--context", "--cluster", "--user", "--kubeconfig", "-s", "--server", "--from",
    "--address", "--template", "-L", "--label-columns", "--grace-period", "--pod-running-timeout",
    "--limit-bytes", "--current-replicas", "--min", "--max", "--cpu-percent", "--dry-run",
    "--labels", "--override-type",
}
# `kubectl logs -f` follows and `-p` means --previous: no value there.
FLAG_VALUE_EXCEPTIONS = {"logs": {"-f", "-p"}}
SERVICE_BINARIES = {"ac-service", "gc-service", "mc-service"}

METRIC = re.compile(r"(?<![\w.:/-])((?:ac|gc|mc)_[a-z0-9_]*[a-z0-9])(?![\w])(?!::)")
ALERT_PREFIXED = re.compile(r"\b(?:GC|MC|AC|Convene)[A-Z][A-Za-z0-9]*\b")
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")
PATH = re.compile(
    r"(?<![\w./~$-])((?:scripts|docs|infra|crates|migrations)/[\w.\-/*{},<>]*)(#[\w-]+)?"
)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
FENCE = re.compile(r"^\s{0,3}(```+|~~~+)\s*([\w+-]*)")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: pathlib.Path, line: int, message: str) -> None:
        self.items.append(f"{rel(path)}:{line}: {message}")


def rel(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# What the repository holds: catalogued metrics, alerts, headings.


def catalogs() -> tuple[set[str], set[str]]:
    """All catalogued metric names, and those that are histograms."""
    names, histograms = set(), set()
    for service in SERVICES:
        text = (REPO / "docs" / "observability" / "metrics" / f"{service}-service.md").read_text()
        names |= set(re.findall(r"^\| `([a-z0-9_]+)`", text, re.M))
        histograms |= set(re.findall(r"^\| `([a-z0-9_]+)` \| histogram \|", text, re.M))
    return names, histograms


def alerts() -> set[str]:
    found = set()
    for rule_file in RULES:
        found |= set(re.findall(r"^\s*- alert: (\S+)", rule_file.read_text(), re.M))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


_anchor_cache: dict[pathlib.Path, set[str]] = {}


def anchors(path: pathlib.Path) -> set[str]:
    path = path.resolve()
    if path in _anchor_cache:
        return _anchor_cache[path]
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add(text: str) -> None:
        base = slug(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    previous = ""
    for line, in_code, _ in markdown_lines(path.read_text()):
        if in_code:
            previous = ""
            continue
        if m := re.match(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line):
            add(m.group(1))
        elif re.match(r"^\s{0,3}(=+|-+)\s*$", line) and previous.strip() and "|" not in previous:
            add(previous.strip())
        for name in re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line):
            found.add(name)
        previous = line
    _anchor_cache[path] = found
    return found


def markdown_lines(text: str):
    """(line, inside a fenced code block, the block's language) for each line; fence lines
    themselves count as code."""
    fence, lang = None, ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence, lang = m.group(1), m.group(2).lower()
            yield line, True, lang
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                and not m.group(2):
            yield line, True, lang
            fence, lang = None, ""
        else:
            yield line, fence is not None, lang


# ---------------------------------------------------------------------------------------------
# The checks.


def check_metrics(path, lineno, code: str, names, histograms, problems: Problems) -> None:
    for metric in METRIC.findall(code):
        if metric in {f"{s}_service" for s in SERVICES}:
            continue  # the crates, as in `gc_service::metrics`
        if metric in names:
            continue
        base, _, suffix = metric.rpartition("_")
        if suffix in {"bucket", "sum", "count"} and base in histograms:
            continue
        catalog = f"docs/observability/metrics/{metric[:2]}-service.md"
        problems.add(path, lineno, f"metric {metric} is not in {catalog}")


def check_alerts(path, lineno, text: str, spans: list[str], known, endings, problems) -> None:
    candidates = set(ALERT_PREFIXED.findall(text))
    candidates = {c for c in candidates if re.search(r"[a-z]", c)}
    for span in spans:
        span = span.strip()
        if CAMEL.match(span) and any(span.endswith(e) and span != e for e in endings) \
                and len(re.findall(r"[A-Z][a-z0-9]+", span)) >= 2:
            candidates.add(span)
    for name in sorted(candidates - known):
        problems.add(path, lineno, f"alert {name} is not defined in infra/prometheus/rules/")


def expand_braces(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out = []
    for alternative in m.group(1).split(","):
        out += expand_braces(pattern[: m.start()] + alternative + pattern[m.end():])
    return out


def check_paths(path, lineno, text: str, problems: Problems) -> None:
    for m in PATH.finditer(text):
        raw = m.group(1).rstrip(".,:;")
        anchor = (m.group(2) or "")[1:]
        pattern = re.sub(r"<[^<>/]*>", "*", raw)
        if "<" in pattern or ">" in pattern:
            problems.add(path, lineno, f"cannot read the path {raw}")
            continue
        matches = []
        for candidate in expand_braces(pattern):
            if "*" in candidate:
                matches += [pathlib.Path(p) for p in glob.glob(str(REPO / candidate))]
            elif (REPO / candidate).exists():
                matches.append(REPO / candidate)
            else:
                problems.add(path, lineno, f"path {candidate} does not exist")
        if not matches:
            if "*" in pattern:
                problems.add(path, lineno, f"path {raw} matches nothing")
            continue
        if anchor:
            for target in matches:
                if target.suffix == ".md" and anchor not in anchors(target):
                    problems.add(path, lineno, f"{rel(target)} has no section #{anchor}")


def check_links(path: pathlib.Path, lineno, text: str, problems: Problems) -> None:
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path.resolve()
        if not resolved.exists():
            problems.add(path, lineno, f"link {target}: {file_part} does not exist")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.add(path, lineno, f"link {target}: {rel(resolved)} has no section #{anchor}")


def split_commands(code: str) -> list[str]:
    """The pieces of a shell command line that may each hold one kubectl invocation: split at
    pipes, lists and command substitutions, but not inside quotes."""
    pieces, current, quote = [], "", None
    for char in code:
        if quote == '"' and char == "(" and current.endswith("$"):
            pieces.append(current)  # a command substitution inside double quotes
            current, quote = "", None
        elif quote:
            current += char
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current += char
        elif char in "|;&()`":
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return [p.removesuffix("$") for p in pieces if "kubectl" in p]


def quotes_closed(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
        return True
    except ValueError:
        return False


def words(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:
        return command.split()


def throwaway_pods(text: str) -> set[str]:
    """Pods a runbook starts itself with `kubectl run NAME --rm ...`."""
    names = set()
    for m in re.finditer(r"kubectl\b[^\n]*?\brun\s+(?:-\S+\s+)*([a-z0-9][a-z0-9-]*)", text):
        names.add(m.group(1))
    return names


def check_kubectl(path, lineno, code: str, inline: bool, throwaway: set[str], problems) -> None:
    for piece in split_commands(code):
        argv = words(piece)
        # `kubectl` may be glued to what precedes it in a word: X="$(kubectl ...)".
        starts = [i for i, word in enumerate(argv) if re.search(r"(^|[^\w-])kubectl$", word)]
        if not starts:
            continue
        argv = [re.sub(r"\)[\"']*$", "", word) for word in argv[starts[0] + 1:]]
        if inline and len([a for a in argv if not a.startswith("-")]) <= 1 and \
                not any(a.startswith("-n") or a.startswith("--namespace") for a in argv):
            continue  # prose naming a subcommand, like `kubectl port-forward`
        check_one_kubectl(path, lineno, argv, throwaway, problems)


def check_one_kubectl(path, lineno, argv: list[str], throwaway: set[str], problems) -> None:
    # The verb: the first word that is neither a flag nor a flag's value.
    verb, i = None, 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-"):
            if word in VALUE_FLAGS and "=" not in word:
                i += 1
        else:
            verb = word
            break
        i += 1
    if verb is None:
        return
    if verb in LOCAL_VERBS:
        return
    value_flags = VALUE_FLAGS - FLAG_VALUE_EXCEPTIONS.get(verb, set())
    namespace, selectors, positionals, after_dashes, rm = None, [], [], None, False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            after_dashes = argv[i + 1:]
            break
        if word.startswith("-") and len(word) > 1:
            flag, eq, value = word.partition("=")
            if not eq and flag in value_flags:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            elif not eq and re.match(r"^-n\S+$", flag):
                flag, value = "-n", flag[2:]
            if flag in ("-n", "--namespace"):
                namespace = value
            elif flag in ("-A", "--all-namespaces"):
                namespace = "*"
            elif flag in ("-l", "--selector"):
                selectors.append(value)
            elif flag == "--rm":
                rm = True
        else:
            positionals.append(word)
        i += 1
    shown = "kubectl " + " ".join(argv)
    if namespace is None:
        problems.add(path, lineno, f"`{shown}` lacks -n {NAMESPACE}")
    elif namespace != NAMESPACE and not is_placeholder(namespace):
        problems.add(path, lineno, f"`{shown}` targets namespace {namespace}, not {NAMESPACE}")
    for selector in selectors:
        for term in selector.split(","):
            key, eq, value = term.partition("=")
            if eq and key.strip() == "app.kubernetes.io/name" and value.strip() not in APP_LABELS \
                    and not is_placeholder(value):
                problems.add(path, lineno, f"`{shown}` selects app.kubernetes.io/name={value}, "
                                           "which no Convene object carries")
    args = positionals[1:]  # after the verb
    if verb == "run":
        if not rm:
            problems.add(path, lineno, f"`{shown}` starts a pod that is not removed (--rm)")
        return
    if verb in ("rollout", "set"):
        args = args[1:]  # the subcommand: status, undo, image, ...
    if verb in ("logs", "exec", "attach", "port-forward", "debug", "cp"):
        if verb == "cp":
            return
        target = args[0] if args else ""
        check_objects(path, lineno, shown, [target] if target else [], throwaway, problems,
                      default_type="pod")
        if verb == "exec":
            command = after_dashes if after_dashes is not None else args[1:]
            check_exec(path, lineno, shown, target, command, throwaway, problems)
        return
    if verb in ("apply", "diff", "replace", "kustomize"):
        return
    if verb == "create" and len(args) >= 2 and args[0] in ("secret", "configmap", "service"):
        args = args[:1] + args[2:] if args[1] in ("generic", "tls", "docker-registry",
                                                   "clusterip", "nodeport") else args
    args = [a for a in args if "=" not in a and not re.match(r"^\d+(:\d+)?$", a)]
    check_objects(path, lineno, shown, args, throwaway, problems)


def is_placeholder(word: str) -> bool:
    return bool(re.search(r"[<>$*{}]", word)) or word in ("...", "…")


def check_objects(path, lineno, shown, args, throwaway, problems, default_type=None) -> None:
    if not args:
        return
    if "/" in args[0] or default_type:
        items = []
        for arg in args:
            kind, slash, name = arg.partition("/")
            items.append((kind, name) if slash else (default_type or "", kind))
    else:
        kinds = args[0].split(",")
        items = [(kinds[0], name) for name in args[1:]] if len(kinds) == 1 else []
        for kind in kinds:
            if kind.lower() not in CANONICAL and kind.lower() not in KNOWN_LISTINGS:
                problems.add(path, lineno, f"`{shown}` names the unknown resource type {kind}")
    for kind, name in items:
        canonical = CANONICAL.get(kind.lower())
        if is_placeholder(name) or is_placeholder(kind):
            continue
        if canonical is None:
            problems.add(path, lineno, f"`{shown}` names {kind}/{name}, not a Convene object")
        elif canonical == "pod":
            if not (POD_NAME.match(name) or name in throwaway):
                problems.add(path, lineno, f"`{shown}` names the pod {name}, which is not a "
                                           "Convene pod (mc-service-N, a placeholder, or a "
                                           "throwaway pod started with kubectl run --rm)")
        elif name not in OBJECTS[canonical]:
            known = ", ".join(sorted(OBJECTS[canonical]))
            problems.add(path, lineno, f"`{shown}` names {canonical} {name}; Convene's are: {known}")


# Types that may be listed (no name) though Convene has no named object of that type to check.
KNOWN_LISTINGS = {"events", "event", "ev", "nodes", "node", "no", "endpoints", "ep",
                  "endpointslices", "replicasets", "replicaset", "rs", "networkpolicies",
                  "networkpolicy", "netpol", "servicemonitors", "servicemonitor", "pvc",
                  "persistentvolumeclaims", "all", "ingress", "ingresses",
                  "controllerrevisions"}


def check_exec(path, lineno, shown, target, command, throwaway, problems) -> None:
    if target in throwaway:
        return
    program = pathlib.PurePosixPath(command[0]).name if command else ""
    if program in SERVICE_BINARIES:
        return  # the service's own binary, e.g. `gc-service healthcheck`
    what = program or "a shell"
    problems.add(path, lineno, f"`{shown}` runs {what} inside {target or 'a service pod'}: the "
                               "service images are distroless; run it from an operator's machine "
                               "or a throwaway pod (kubectl run --rm -it ... --image=postgres:16)")


# ---------------------------------------------------------------------------------------------


def check_file(path: pathlib.Path, names, histograms, known_alerts, endings) -> list[str]:
    problems = Problems()
    text = path.read_text()
    throwaway = throwaway_pods(text)
    pending, pending_line = "", 0  # a command continued with a backslash
    for lineno, (line, in_code, _lang) in enumerate(markdown_lines(text), start=1):
        if in_code:
            if FENCE.match(line):
                if pending:  # a block that ends inside an open quote
                    check_kubectl(path, pending_line, pending, False, throwaway, problems)
                    pending = ""
                continue
            check_metrics(path, lineno, line, names, histograms, problems)
            check_alerts(path, lineno, line, [], known_alerts, endings, problems)
            check_paths(path, lineno, line, problems)
            if not pending:
                pending_line = lineno
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            if "kubectl" in pending + line and not quotes_closed(pending + line):
                pending += line + " "  # a quoted argument that goes on over the next lines
                continue
            check_kubectl(path, pending_line, pending + line, False, throwaway, problems)
            pending = ""
            continue
        spans = [m.group(2) for m in INLINE_CODE.finditer(line)]
        prose = INLINE_CODE.sub(" ", line)
        for span in spans:
            check_metrics(path, lineno, span, names, histograms, problems)
            if "kubectl" in span:
                check_kubectl(path, lineno, span, True, throwaway, problems)
        check_alerts(path, lineno, line, spans, known_alerts, endings, problems)
        check_paths(path, lineno, line, problems)
        check_links(path, lineno, prose, problems)
    return problems.items


def main(argv: list[str]) -> int:
    files = [pathlib.Path(a) for a in argv] or sorted(RUNBOOKS.glob("*.md"))
    names, histograms = catalogs()
    known_alerts = alerts()
    endings = {re.findall(r"[A-Z][a-z0-9]*", a)[-1] for a in known_alerts}
    problems = []
    for path in files:
        problems += check_file(path, names, histograms, known_alerts, endings)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} problem(s) in the runbooks", file=sys.stderr)
        return 1
    print(f"{len(files)} runbooks: metrics, alerts, paths, kubectl commands and links all exist")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
