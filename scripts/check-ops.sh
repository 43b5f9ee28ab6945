#!/usr/bin/env bash
#
# Checks the operations artefacts by machine (called by scripts/test.sh, so `.ci/run` runs it):
# - the Prometheus rules load (`promtool check rules`) and pass their unit tests
#   (`promtool test rules`: series that must fire and series that must not);
# - every metric a rule names is in the metric catalog of its service
#   (docs/observability/metrics/<service>.md), every alert is in docs/observability/alerts.md
#   and the reverse, and every runbook_url names a section that exists in docs/runbooks/;
# - the Grafana dashboards (infra/grafana/dashboards/) parse, every query is valid PromQL
#   (promtool parses them as recording rules) and names only catalogued metrics, and GC
#   Overview has the panels DESIGN section 8 names;
# - the runbooks (docs/runbooks/) name only catalogued metrics, existing alerts, repository
#   paths and Kubernetes objects, never a shell inside a service's container
#   (scripts/check_runbooks.py);
# - no script or workflow starts a server on a fixed port in Linux's ephemeral range
#   (scripts/check_ports.py);
# - the capacity model's tables in docs/capacity.md are what docs/capacity/inputs.json gives
#   (scripts/capacity-model.py --check);
# - the Kubernetes manifests render, validate against the Kubernetes schemas and keep the
#   network, security and identity rules; the Dockerfile and the kind scripts lint clean
#   (scripts/check-k8s.sh).
#
# promtool comes from Debian's `prometheus` package, installed when missing. The package's own
# service is never started. Usage: scripts/check-ops.sh
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

convene_have promtool || convene_apt_install prometheus
convene_have python3 || convene_apt_install python3

RULES=(infra/prometheus/rules/*.yaml)
convene_log "promtool check rules ${RULES[*]}"
promtool check rules "${RULES[@]}"
convene_log "promtool test rules infra/prometheus/tests/*.test.yaml"
(cd infra/prometheus/tests && promtool test rules ./*.test.yaml)

convene_log "rules against the metric catalogs, the alert catalog and the runbooks"
python3 - "${RULES[@]}" <<'PY'
import pathlib, re, sys

def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")

def anchors(path):
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}

def catalog(service):
    text = pathlib.Path(f"docs/observability/metrics/{service}-service.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+)`", text, re.M))

catalogs = {s: catalog(s) for s in ("ac", "gc", "mc")}
alert_catalog = pathlib.Path("docs/observability/alerts.md").read_text()
listed = set(re.findall(r"^\| `([A-Za-z0-9]+)`", alert_catalog, re.M))
problems, alerts = [], set()

for rule_file in sys.argv[1:]:
    text = pathlib.Path(rule_file).read_text()
    for name in re.findall(r"^\s*- alert: (\S+)", text, re.M):
        alerts.add(name)
    for metric in set(re.findall(r"\b((?:ac|gc|mc)_[a-z_]+)", text)):
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        if base not in catalogs[metric[:2]]:
            problems.append(f"{rule_file}: {metric} is not in docs/observability/metrics/{metric[:2]}-service.md")
    for url in re.findall(r'runbook_url: "([^"]+)"', text):
        path, _, anchor = url.partition("#")
        target = pathlib.Path(path)
        if not target.is_file():
            problems.append(f"{rule_file}: runbook {path} does not exist")
        elif anchor not in anchors(target):
            problems.append(f"{rule_file}: {path} has no section #{anchor}")
    if len(re.findall(r"^\s*- alert:", text, re.M)) != len(re.findall(r"^\s+runbook_url:", text, re.M)):
        problems.append(f"{rule_file}: an alert lacks a runbook_url")

for name in sorted(alerts - listed):
    problems.append(f"alert {name} is not in docs/observability/alerts.md")
for name in sorted(listed - alerts):
    problems.append(f"docs/observability/alerts.md lists {name}, which no rule defines")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(alerts)} alerts: metrics catalogued, alerts listed, runbook sections present")
PY
convene_log "dashboards: JSON, PromQL and catalogued metrics"
exprs="$(mktemp -d)"
trap 'rm -rf "$exprs"' EXIT
python3 - "$exprs/dashboard-exprs.yaml" infra/grafana/dashboards/*.json <<'PY'
import json, pathlib, re, sys

out, files = sys.argv[1], sys.argv[2:]
catalogs = {s: set(re.findall(r"^\| `([a-z_]+)`",
                              pathlib.Path(f"docs/observability/metrics/{s}-service.md").read_text(), re.M))
            for s in ("ac", "gc", "mc")}
problems, rules = [], []
for path in files:
    dashboard = json.loads(pathlib.Path(path).read_text())
    for key in ("uid", "title", "panels"):
        if key not in dashboard:
            problems.append(f"{path}: no {key}")
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = target["expr"]
            rules.append(expr)
            for metric in set(re.findall(r"\b((?:ac|gc|mc)_[a-z_]+)", expr)):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if base not in catalogs[metric[:2]]:
                    problems.append(f"{path}: panel {panel['title']!r} names {metric}, not in the catalog")
titles = {p["title"] for p in json.loads(pathlib.Path("infra/grafana/dashboards/gc-overview.json").read_text())["panels"]}
for needed in ("Meeting Creation Rate by Status", "Meeting Creation Latency (P50/P95/P99)"):
    if needed not in titles:
        problems.append(f"GC Overview lacks the panel {needed!r} (DESIGN section 8)")
# Every expression as a recording rule, so promtool parses it.
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
    for n, expr in enumerate(rules):
        f.write(f"      - record: dashboard_expression_{n}\n        expr: {json.dumps(expr)}\n")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"{len(files)} dashboards, {len(rules)} queries: metrics catalogued")
PY
promtool check rules "$exprs/dashboard-exprs.yaml" >/dev/null

convene_log "runbooks name only metrics, alerts, paths and Kubernetes objects that exist"
python3 scripts/check_runbooks.py

convene_log "scripts start servers only on ports below Linux's ephemeral range"
python3 scripts/check_ports.py

convene_log "docs/capacity.md's model tables are what its inputs give"
python3 scripts/capacity-model.py --check

# The Kubernetes manifests, the Dockerfile and the kind scripts.
"$CONVENE_REPO/scripts/check-k8s.sh"

convene_log "operations checks passed"
