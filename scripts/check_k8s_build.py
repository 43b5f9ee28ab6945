"""The parts of scripts/check_k8s.py outside the rendered manifests: the Dockerfile and its
build context, the kind cluster against the kind overlay, the kind workflow, the git-ignored
secret files, and the operator's list of Secrets in infra/README.md."""

import json
import re
import subprocess
import tomllib

import yaml

SERVICES = ("ac-service", "gc-service", "mc-service")
DEV_KUSTOMIZATION = "infra/k8s/overlays/dev/kustomization.yaml"


def check(report, repo, rendered, operator_secrets):
    uid = check_dockerfile(report, repo)
    for overlay, objects in rendered.items():
        for w in (o for o in objects if o["kind"] in ("Deployment", "StatefulSet")):
            if w["metadata"]["name"] in SERVICES:
                user = (w["spec"]["template"]["spec"].get("securityContext") or {}).get("runAsUser")
                if uid is not None and user != uid:
                    report.fail(overlay, f"{w['metadata']['name']} runs as {user}, the image's USER is {uid}")
    check_dockerignore(report, repo)
    check_kind(report, repo, rendered["kind"])
    check_workflow(report, repo)
    check_secret_files(report, repo)
    check_readme(report, repo, operator_secrets)


# ---------------------------------------------------------------------------------------
# Dockerfile


def stages(dockerfile):
    """[(name, base, [(instruction, arguments)])] from a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            result.append((match.group(2), match.group(1), []))
        elif result:
            result[-1][2].append((instruction, args.strip()))
    return result


def check_dockerfile(report, repo):
    """Returns the numeric user the runtime images run as."""
    where = "Dockerfile"
    path = repo / "Dockerfile"
    if not path.is_file():
        report.fail(where, "missing")
        return None
    text = path.read_text()
    parsed = stages(text)
    by_name = {name: (base, body) for name, base, body in parsed if name}
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))

    def chain(name):
        """The instructions of a stage and of the stages it is built on, nearest first."""
        while name in by_name:
            base, body = by_name[name]
            yield name, base, body
            name = base

    uid = None
    for service in SERVICES:
        if service not in by_name:
            report.fail(where, f"no target {service} (docker build --target {service})")
            continue
        binary = f"/usr/local/bin/{service}"
        body = by_name[service][1]
        instructions = {i: a for i, a in body}
        if not any(i == "COPY" and a.endswith(binary) and "--from=" in a for i, a in body):
            report.fail(where, f"{service}: does not copy its binary to {binary}")
        health = instructions.get("HEALTHCHECK", "")
        if not re.search(rf'CMD \["{re.escape(binary)}", "healthcheck"\]$', health):
            report.fail(where, f"{service}: HEALTHCHECK is not the exec form [\"{binary}\", \"healthcheck\"]")
        if not instructions.get("ENTRYPOINT", "").startswith(f'["{binary}"'):
            report.fail(where, f"{service}: ENTRYPOINT is not the exec form of {binary}")
        users = [a for _, _, b in chain(service) for i, a in b if i == "USER"]
        bases = [base for _, base, _ in chain(service)]
        if not users or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[0]):
            report.fail(where, f"{service}: its USER is not a numeric non-root user")
        else:
            uid = int(users[0].split(":")[0])
        runtime = bases[-1]
        if "distroless" not in runtime:
            report.fail(where, f"{service}: the runtime image {runtime} is not a minimal (distroless) one")
    for name, base, _ in parsed:
        if base.endswith(":latest") or (":" not in base.split("/")[-1] and base not in by_name):
            report.fail(where, f"FROM {base}: pin a tag")
    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    needed = cargo["workspace"]["package"]["rust-version"]
    have = args.get("RUST_VERSION", "0")
    if tuple(int(x) for x in have.split(".")[:2]) < tuple(int(x) for x in needed.split(".")[:2]):
        report.fail(where, f"RUST_VERSION {have} is older than the workspace's rust-version {needed}")
    return uid


def check_dockerignore(report, repo):
    where = ".dockerignore"
    path = repo / ".dockerignore"
    if not path.is_file():
        report.fail(where, "missing: the build context would carry .dev/, target/ and the secret files")
        return
    patterns = [p.strip() for p in path.read_text().splitlines() if p.strip() and not p.startswith("#")]
    if not patterns or patterns[0] != "*":
        report.fail(where, "does not start with `*` (only what the build needs goes in)")
    included = {p[1:].strip("/") for p in patterns if p.startswith("!")}
    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    for member in cargo["workspace"]["members"]:
        if not any(member == inc or member.startswith(inc + "/") for inc in included):
            report.fail(where, f"workspace member {member} is left out of the build context")
    for needed in ("Cargo.toml", "Cargo.lock", "migrations", "proto"):
        if needed not in included:
            report.fail(where, f"{needed} is left out of the build context")
    for secret in ("infra", ".dev", "infra/k8s"):
        if secret in included:
            report.fail(where, f"{secret} is in the build context")


# ---------------------------------------------------------------------------------------
# kind


def check_kind(report, repo, objects):
    where = "infra/k8s/kind/cluster.yaml"
    cluster = yaml.safe_load((repo / where).read_text())
    if cluster.get("kind") != "Cluster" or cluster.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        report.fail(where, "not a kind Cluster (kind.x-k8s.io/v1alpha4)")
    mapped = {}
    for node in cluster.get("nodes") or []:
        for m in node.get("extraPortMappings") or []:
            mapped[m["containerPort"]] = m
    node_ports = {}
    for svc in (o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "NodePort"):
        for port in svc["spec"]["ports"]:
            node_ports[port["nodePort"]] = svc
            m = mapped.get(port["nodePort"])
            if not m or m.get("hostPort") != port["nodePort"] or m.get("listenAddress") != "127.0.0.1":
                report.fail(where, f"NodePort {port['nodePort']} ({svc['metadata']['name']}) is not mapped to 127.0.0.1:{port['nodePort']}")

    def node_port_for(selector_labels):
        for port, svc in node_ports.items():
            if all(selector_labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
                return port
        return None

    gc_url = ""
    for o in objects:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gc-service-config"):
            gc_url = o["data"].get("GC_PUBLIC_BASE_URL", "")
    if node_port_for({"app.kubernetes.io/name": "gc-service"}) is None or not gc_url.endswith(
        f":{node_port_for({'app.kubernetes.io/name': 'gc-service'})}"
    ):
        report.fail("kind overlay", f"GC_PUBLIC_BASE_URL {gc_url} is not GC's NodePort")
    if node_port_for({"app.kubernetes.io/name": "ac-service"}) is None:
        report.fail("kind overlay", "AC has no NodePort")
    sts = next((o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "mc-service"), None)
    if not sts:
        return
    env = {e["name"]: e.get("value", "") for e in sts["spec"]["template"]["spec"]["containers"][0].get("env") or []}
    for index in range(sts["spec"].get("replicas", 1)):
        pod = f"mc-service-{index}"
        url = env.get("MC_PUBLIC_WS_URL", "").replace("$(MC_POD_INDEX)", str(index))
        port = node_port_for({"app.kubernetes.io/name": "mc-service", "statefulset.kubernetes.io/pod-name": pod})
        if port is None or url != f"ws://127.0.0.1:{port}":
            report.fail("kind overlay", f"{pod} tells clients {url}, but its NodePort is {port}")


def check_workflow(report, repo):
    """The kind workflow brings the stack up with kind-up.sh on a kind that enforces policies."""
    where = ".github/workflows/kind.yml"
    path = repo / where
    if not path.is_file():
        report.fail(where, "missing")
        return
    steps = [s for job in yaml.safe_load(path.read_text())["jobs"].values() for s in job["steps"]]
    runs = " ".join(str(s.get("run", "")) for s in steps)
    for script in ("scripts/kind-up.sh", "scripts/kind-down.sh"):
        if script not in runs:
            report.fail(where, f"no step runs {script}")
    versions = [str((s.get("with") or {}).get("version", "")) for s in steps if "kind-action" in str(s.get("uses", ""))]
    if not versions or not all(re.fullmatch(r"v0\.(2[4-9]|[3-9]\d)\.\d+", v) for v in versions):
        report.fail(where, f"kind is not pinned to 0.24 or later (its CNI enforces NetworkPolicies): {versions}")


def check_readme(report, repo, operator_secrets):
    """infra/README.md tells the operator every Secret production needs."""
    text = (repo / "infra/README.md").read_text()
    for name in operator_secrets:
        if f"`{name}`" not in text:
            report.fail("infra/README.md", f"does not tell the operator about the Secret `{name}`")


# ---------------------------------------------------------------------------------------
# Secret files


def check_secret_files(report, repo):
    """The dev overlay's secret files are git-ignored, never tracked, and each has an example."""
    if git(repo, "rev-parse", "--is-inside-work-tree") != 0:
        report.fail("git", "not a git work tree: cannot check that the secret files are ignored")
        return
    kustomization = yaml.safe_load((repo / DEV_KUSTOMIZATION).read_text())
    base = (repo / DEV_KUSTOMIZATION).parent
    sources = []
    for gen in kustomization.get("secretGenerator") or []:
        sources += gen.get("envs") or []
        sources += [f.split("=", 1)[-1] for f in gen.get("files") or []]
        if gen.get("literals"):
            report.fail(DEV_KUSTOMIZATION, f"secretGenerator {gen['name']} has literals: values would be committed")
    for source in sources:
        path = (base / source).relative_to(repo)
        if not (repo / f"{path}.example").is_file():
            report.fail(DEV_KUSTOMIZATION, f"{path} has no {path.name}.example beside it")
        if git(repo, "check-ignore", "-q", str(path)) != 0:
            report.fail(".gitignore", f"{path} is not git-ignored")
    tracked = subprocess.run(
        ["git", "ls-files", "infra/k8s"], cwd=repo, capture_output=True, text=True, check=False
    ).stdout.split()
    for path in tracked:
        if "/secrets/" in path and not (path.endswith(".example") or path.endswith("README.md")):
            report.fail("git", f"{path} is tracked: only *.example files belong in secrets/")
    for example in (repo / "infra/k8s").rglob("*.json.example"):
        json.loads(example.read_text())


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False).returncode
