"""Checks Convene's Kubernetes manifests by machine (run by scripts/check-k8s.sh).

Usage: check_k8s.py RENDERED_DIR K8S_VERSION

RENDERED_DIR holds base.yaml, dev.yaml, kind.yaml and production.yaml: each overlay rendered by
`kubectl kustomize` from the committed files, the dev secrets from their *.example placeholders.
For every overlay it checks:
- each object against the Kubernetes schemas of K8S_VERSION (kubernetes-validate, strict:
  unknown fields are errors), and ServiceMonitors, a CRD it has no schema for, structurally;
- the names and labels other documents rely on (infra/README.md, the runbooks);
- every container: security settings, probes, requests and limits, a grace period longer than
  the service's stop, $(VAR) references, secrets only through Secrets, the image tag policy;
- the ServiceMonitors, and that they give Prometheus the job names the alert rules use;
- the NetworkPolicies, by what they allow (check_k8s_netpol.py);
- that no Secret holds anything but placeholders, and the MC identity scheme end to end.
check_k8s_build.py adds the Dockerfile, .dockerignore, the kind cluster and the git-ignored
secret files. Prints what it checked; exits 1 with every problem found.
"""

import base64
import json
import pathlib
import re
import sys

import kubernetes_validate
import yaml

import check_k8s_build
from check_k8s_netpol import check_network, selector_matches

OVERLAYS = ("base", "dev", "kind", "production")
NAMESPACE = "convene"
SERVICES = ("ac-service", "gc-service", "mc-service")
PLACEHOLDER = "change-me"
# Which image each Convene workload runs.
IMAGE_OF = {
    "ac-service": "ac-service",
    "gc-service": "gc-service",
    "mc-service": "mc-service",
    "convene-migrate": "gc-service",
    "convene-seed": "ac-service",
}
# The Secrets production's operator creates (infra/README.md): name -> keys, None for any.
OPERATOR_SECRETS = {
    "convene-database": {"DATABASE_URL"},
    "ac-service-secrets": {"AC_MASTER_KEY"},
    "gc-service-secrets": {"GC_CLIENT_SECRET", "GC_WEBHOOK_KEY"},
    "mc-service-credentials": None,
    "convene-redis": {"REDIS_CLUSTER_URLS"},
}
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|MASTER_KEY|WEBHOOK_KEY|TOKEN|DATABASE_URL|REDIS_CLUSTER_URLS)(?!.*_FILE$)")
VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
USERINFO = re.compile(r"://[^/@\s]+:[^/@\s]+@")


class Report:
    def __init__(self):
        self.problems = []

    def fail(self, where, message):
        self.problems.append(f"{where}: {message}")

    def ok(self, where, message):
        print(f"  {where}: {message}")


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(objects, kind, name):
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def workloads(objects):
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def config_of(objects, name):
    """The data of the rendered ConfigMap generated as `name` (kustomize adds a hash suffix)."""
    for o in objects:
        if o["kind"] == "ConfigMap" and re.fullmatch(rf"{name}(-[a-z0-9]+)?", o["metadata"]["name"]):
            return o.get("data") or {}
    return {}


def secret_data(secret):
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


# ---------------------------------------------------------------------------------------
# Schemas


def check_schemas(report, overlay, objects, version):
    for o in objects:
        ident = f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"
        if o.get("kind") == "ServiceMonitor":
            check_service_monitor_shape(report, overlay, o)
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            report.fail(overlay, f"{ident}: no schema for {o['apiVersion']} {o['kind']} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            report.fail(overlay, f"{ident}: {path}: {e.message}")


SM_SPEC_KEYS = {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels", "sampleLimit"}
SM_ENDPOINT_KEYS = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def check_service_monitor_shape(report, overlay, sm):
    """ServiceMonitor is a CRD kubernetes-validate has no schema for: check what we use of it."""
    where = f"{overlay}: ServiceMonitor/{sm['metadata'].get('name')}"
    if sm.get("apiVersion") != "monitoring.coreos.com/v1":
        report.fail(where, f"apiVersion {sm.get('apiVersion')}, expected monitoring.coreos.com/v1")
    spec = sm.get("spec") or {}
    for key in sorted(set(spec) - SM_SPEC_KEYS):
        report.fail(where, f"unknown field spec.{key}")
    if not (spec.get("selector") or {}).get("matchLabels"):
        report.fail(where, "spec.selector.matchLabels is empty: it would select every Service")
    if not isinstance(spec.get("jobLabel"), str):
        report.fail(where, "no spec.jobLabel: the job label would be the Service's name")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        report.fail(where, "no spec.endpoints")
        return
    for ep in endpoints:
        for key in sorted(set(ep) - SM_ENDPOINT_KEYS):
            report.fail(where, f"unknown field endpoints[].{key}")
        if ep.get("port") != "ops" or ep.get("path") != "/metrics":
            report.fail(where, "an endpoint does not scrape port `ops` path /metrics")
        for key in ("interval", "scrapeTimeout"):
            if not DURATION.match(str(ep.get(key, ""))):
                report.fail(where, f"endpoints[].{key} {ep.get(key)!r} is not a duration")
        if DURATION.match(str(ep.get("interval", ""))) and DURATION.match(str(ep.get("scrapeTimeout", ""))):
            if seconds(ep["scrapeTimeout"]) > seconds(ep["interval"]):
                report.fail(where, "scrapeTimeout is longer than interval")


# ---------------------------------------------------------------------------------------
# Names, labels and the objects every overlay has


def check_inventory(report, overlay, objects):
    required = [
        ("Namespace", NAMESPACE),
        ("Deployment", "ac-service"),
        ("Deployment", "gc-service"),
        ("StatefulSet", "mc-service"),
        ("Service", "ac-service"),
        ("Service", "gc-service"),
        ("Service", "mc-service-headless"),
        ("Job", "convene-migrate"),
        ("HorizontalPodAutoscaler", "gc-service"),
    ] + [(kind, s) for s in SERVICES for kind in ("PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy")]
    for kind, name in required:
        if not find(objects, kind, name):
            report.fail(overlay, f"no {kind} {name}")
    seed = find(objects, "Job", "convene-seed")
    if overlay in ("dev", "kind") and not seed:
        report.fail(overlay, "no Job convene-seed")
    if overlay in ("base", "production") and seed:
        report.fail(overlay, "the seed Job (development credentials) must not be here")

    ports = {
        "ac-service": {"http": 8082, "ops": 9082},
        "gc-service": {"http": 8080, "grpc": 50051, "ops": 9080},
        "mc-service-headless": {"http": 8081, "grpc": 50052, "ops": 9081},
    }
    for name, wanted in ports.items():
        svc = find(objects, "Service", name)
        if svc and {p.get("name"): p["port"] for p in svc["spec"]["ports"]} != wanted:
            report.fail(overlay, f"Service {name} ports are not {wanted}")
    headless = find(objects, "Service", "mc-service-headless")
    if headless and headless["spec"].get("clusterIP") != "None":
        report.fail(overlay, "Service mc-service-headless is not headless")
    sts = find(objects, "StatefulSet", "mc-service")
    if sts and sts["spec"].get("serviceName") != "mc-service-headless":
        report.fail(overlay, "StatefulSet mc-service's serviceName is not mc-service-headless")

    hpa = find(objects, "HorizontalPodAutoscaler", "gc-service")
    if hpa:
        target = hpa["spec"]["scaleTargetRef"]
        if hpa["apiVersion"] != "autoscaling/v2" or (target["kind"], target["name"]) != ("Deployment", "gc-service"):
            report.fail(overlay, "HorizontalPodAutoscaler gc-service must be autoscaling/v2 on Deployment gc-service")
        gc = find(objects, "Deployment", "gc-service")
        if gc and "replicas" in gc["spec"]:
            report.fail(overlay, "Deployment gc-service sets replicas, which its HorizontalPodAutoscaler owns")

    for o in objects:
        ident = f"{o['kind']}/{o['metadata']['name']}"
        labels = o["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/part-of") != "convene":
            report.fail(overlay, f"{ident} lacks the label app.kubernetes.io/part-of: convene")
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != NAMESPACE:
            report.fail(overlay, f"{ident} is not in the namespace {NAMESPACE}")
    for w in workloads(objects):
        name = w["metadata"]["name"]
        template_labels = w["spec"]["template"]["metadata"].get("labels") or {}
        for where, labels in (("metadata", w["metadata"].get("labels") or {}), ("template", template_labels)):
            if labels.get("app.kubernetes.io/name") != name or labels.get("app.kubernetes.io/part-of") != "convene":
                report.fail(overlay, f"{w['kind']}/{name} {where} labels lack app.kubernetes.io/name: {name} or part-of")
        if w["kind"] != "Job" and not find_pdb(objects, template_labels) and name in SERVICES:
            report.fail(overlay, f"{w['kind']}/{name} has no PodDisruptionBudget")


def find_pdb(objects, labels):
    return any(o["kind"] == "PodDisruptionBudget" and selector_matches(o["spec"]["selector"], labels) for o in objects)


# ---------------------------------------------------------------------------------------
# Containers


def quantity(value):
    """A CPU or memory quantity as a number (cores or bytes)."""
    value = str(value)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def effective(pod_sc, container_sc, key):
    return container_sc.get(key, pod_sc.get(key))


def stop_seconds(config):
    """How long a service takes to stop on SIGTERM: readiness grace, drain, then 5 s for jobs."""
    grace = int(config.get("SHUTDOWN_READINESS_GRACE_SECS", 5))
    drain = int(config.get("SHUTDOWN_DRAIN_TIMEOUT_SECS", 15))
    return grace + drain + 5


def check_containers(report, overlay, objects):
    for w in workloads(objects):
        name = w["metadata"]["name"]
        where = f"{overlay}: {w['kind']}/{name}"
        pod = w["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            report.fail(where, "automountServiceAccountToken is not false")
        long_running = w["kind"] != "Job"
        if w["kind"] == "Job":
            for key in ("backoffLimit", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
                if key not in w["spec"]:
                    report.fail(where, f"no {key}")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if long_running and grace <= 25:
            report.fail(where, f"terminationGracePeriodSeconds {grace} is not above 25")
        if name in SERVICES:
            needed = stop_seconds(config_of(objects, f"{name}-config"))
            if grace <= needed:
                report.fail(where, f"terminationGracePeriodSeconds {grace} is not above the stop ({needed} s)")
        for c in pod.get("initContainers", []) + pod["containers"]:
            check_container(report, f"{where} container {c['name']}", pod_sc, c, name, long_running)
        check_env(report, where, objects, pod)


def check_container(report, where, pod_sc, c, workload, long_running):
    sc = c.get("securityContext") or {}
    if effective(pod_sc, sc, "runAsNonRoot") is not True:
        report.fail(where, "runAsNonRoot is not true")
    user = effective(pod_sc, sc, "runAsUser")
    if not isinstance(user, int) or user == 0:
        report.fail(where, f"runAsUser {user!r} is not a numeric non-root user")
    if (effective(pod_sc, sc, "seccompProfile") or {}).get("type") != "RuntimeDefault":
        report.fail(where, "seccompProfile is not RuntimeDefault")
    if sc.get("allowPrivilegeEscalation") is not False:
        report.fail(where, "allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        report.fail(where, "readOnlyRootFilesystem is not true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        report.fail(where, "capabilities do not drop ALL")
    if (sc.get("capabilities") or {}).get("add"):
        report.fail(where, "adds capabilities")
    resources = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if res not in (resources.get(kind) or {}):
                report.fail(where, f"no {res} in resources.{kind}")
    for res in ("cpu", "memory"):
        req, lim = (resources.get("requests") or {}).get(res), (resources.get("limits") or {}).get(res)
        if req is not None and lim is not None and quantity(req) > quantity(lim):
            report.fail(where, f"{res} request {req} is above its limit {lim}")
    if long_running:
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                report.fail(where, f"no {probe}")
    if workload in SERVICES:
        # The probes go to the ops listener: a flood that fills `http` must not fail them.
        wanted = {"startupProbe": "/health/live", "livenessProbe": "/health/live", "readinessProbe": "/health/ready"}
        for probe, path in wanted.items():
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") != "ops":
                report.fail(where, f"{probe} is not GET {path} on port ops")
        for port in ("http", "ops"):
            if port not in {p.get("name") for p in c.get("ports") or []}:
                report.fail(where, f"no container port named {port}")


def check_env(report, where, objects, pod):
    for c in pod["containers"]:
        defined = set()
        for source in c.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            data = config_of(objects, ref.get("name", "")) if "configMapRef" in source else {}
            if "configMapRef" in source and not data:
                report.fail(where, f"envFrom ConfigMap {ref.get('name')} is not rendered")
            defined |= set(data)
        for env in c.get("env") or []:
            for var in VAR_REF.findall(env.get("value", "")):
                if var not in defined:
                    report.fail(where, f"{env['name']} refers to $({var}), which is not defined before it")
            if SECRET_NAME.search(env["name"]) and "value" in env:
                report.fail(where, f"{env['name']} is set in plain text: it must come from a Secret")
            if USERINFO.search(env.get("value", "")):
                report.fail(where, f"{env['name']} holds a URL with credentials in plain text")
            defined.add(env["name"])


def check_config_maps(report, overlay, objects):
    for o in objects:
        if o["kind"] != "ConfigMap":
            continue
        for key, value in (o.get("data") or {}).items():
            if SECRET_NAME.search(key) or USERINFO.search(str(value)):
                report.fail(overlay, f"ConfigMap/{o['metadata']['name']} holds {key}, a secret: use a Secret")
    for service in ("ac-service", "gc-service"):
        if config_of(objects, f"{service}-config").get("MIGRATE_ON_START") != "false":
            report.fail(overlay, f"{service} migrates at start-up: the Job convene-migrate does (MIGRATE_ON_START=false)")


# ---------------------------------------------------------------------------------------
# Images


SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def split_image(image):
    if "@" in image:
        return image.split("@")[0], None, image.split("@")[1]
    repo, _, tag = image.rpartition(":")
    if not repo or "/" in tag:
        return image, None, None
    return repo, tag, None


def check_images(report, overlay, objects):
    tags = set()
    for w in workloads(objects):
        name = w["metadata"]["name"]
        for c in w["spec"]["template"]["spec"]["containers"]:
            where = f"{overlay}: {w['kind']}/{name}"
            repo, tag, digest = split_image(c["image"])
            if not tag and not digest:
                report.fail(where, f"image {c['image']} has neither a tag nor a digest")
            if tag == "latest":
                report.fail(where, f"image {c['image']} uses `latest`")
            if name not in IMAGE_OF:
                if not tag or not re.search(r"\d", tag) or "/" not in repo:
                    report.fail(where, f"third-party image {c['image']} is not a fully named, versioned image")
                continue
            service = IMAGE_OF[name]
            if repo.rsplit("/", 1)[-1] != service:
                report.fail(where, f"runs {c['image']}, expected the {service} image")
            tags.add(tag or digest)
            policy = c.get("imagePullPolicy")
            if overlay == "kind" and (c["image"] != f"convene/{service}:dev" or policy != "Never"):
                report.fail(where, f"kind runs {c['image']} ({policy}): expected convene/{service}:dev, imagePullPolicy Never")
            if overlay == "dev" and (c["image"] != f"convene/{service}:dev" or policy != "IfNotPresent"):
                report.fail(where, f"dev runs {c['image']} ({policy}): expected convene/{service}:dev, IfNotPresent")
            if overlay in ("base", "production"):
                if not (digest or SEMVER.match(tag or "")) or policy != "IfNotPresent":
                    report.fail(where, f"{c['image']} ({policy}): a release needs a version tag or a digest, IfNotPresent")
            if overlay == "production" and "." not in repo.split("/")[0]:
                report.fail(where, f"{c['image']} names no registry")
    if len(tags) > 1:
        report.fail(overlay, f"Convene's images are not one release: {sorted(tags)}")


# ---------------------------------------------------------------------------------------
# ServiceMonitors and the alert rules' job names


def alert_jobs(repo):
    jobs = set()
    for rules in (repo / "infra/prometheus/rules").glob("*.yaml"):
        text = rules.read_text()
        for value in re.findall(r'\bjob=~?"([^"]+)"', text):
            jobs |= set(value.split("|"))
        jobs |= set(re.findall(r'"job",\s*"([^"]+)"', text))
    return jobs


def check_scraping(report, overlay, objects, jobs):
    produced = set()
    for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
        spec = sm["spec"]
        where = f"{overlay}: ServiceMonitor/{sm['metadata']['name']}"
        services = [
            o for o in objects if o["kind"] == "Service" and selector_matches(spec["selector"], o["metadata"].get("labels") or {})
        ]
        if len(services) != 1:
            report.fail(where, f"selects {len(services)} Services, expected exactly one")
            continue
        svc = services[0]
        job = (svc["metadata"].get("labels") or {}).get(spec.get("jobLabel", ""))
        if job != sm["metadata"]["name"]:
            report.fail(where, f"gives job={job!r}, expected {sm['metadata']['name']!r}")
        produced.add(job)
        if "ops" not in {p.get("name") for p in svc["spec"]["ports"]}:
            report.fail(where, f"Service {svc['metadata']['name']} has no port named ops")
        pods = [w for w in workloads(objects) if w["metadata"]["name"] == sm["metadata"]["name"]]
        if not pods or not selector_matches({"matchLabels": svc["spec"]["selector"]}, pods[0]["spec"]["template"]["metadata"]["labels"]):
            report.fail(where, f"Service {svc['metadata']['name']} does not select the {sm['metadata']['name']} pods")
    for job in sorted(jobs - produced):
        report.fail(overlay, f"the alert rules use job={job!r}, which no ServiceMonitor produces")


# ---------------------------------------------------------------------------------------
# Secrets and the MC identity scheme


def check_secrets(report, overlay, objects):
    secrets = {o["metadata"]["name"]: secret_data(o) for o in objects if o["kind"] == "Secret"}
    if overlay in ("base", "production") and secrets:
        report.fail(overlay, f"renders Secrets {sorted(secrets)}: the operator creates them, nothing is committed")
    for name, data in secrets.items():
        for key, value in data.items():
            values = [value]
            if key.endswith(".json"):
                seed = json.loads(value)
                values = [c["client_secret"] for c in seed.get("service_clients", [])]
                values += [u["password"] for o in seed.get("orgs", []) for u in o.get("users", [])]
            real = [v for v in values if PLACEHOLDER not in v]
            if real:
                report.fail(overlay, f"Secret {name} key {key} holds {len(real)} value(s) without `{PLACEHOLDER}`: a real secret is committed")
    # Every reference resolves: to a rendered Secret (dev, kind) or to one the operator creates.
    for w in workloads(objects):
        pod = w["spec"]["template"]["spec"]
        refs = [
            (env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
            for c in pod["containers"]
            for env in c.get("env") or []
            if "secretKeyRef" in (env.get("valueFrom") or {})
        ] + [(v["secret"]["secretName"], None) for v in pod.get("volumes") or [] if "secret" in v]
        for name, key in refs:
            where = f"{overlay}: {w['kind']}/{w['metadata']['name']}"
            if overlay in ("dev", "kind"):
                if name not in secrets or (key and key not in secrets[name]):
                    report.fail(where, f"refers to Secret {name} key {key}, which is not rendered")
            elif name not in OPERATOR_SECRETS or (key and OPERATOR_SECRETS[name] is not None and key not in OPERATOR_SECRETS[name]):
                report.fail(where, f"refers to Secret {name} key {key}, not one the operator is told to create")
    check_mc_identity(report, overlay, objects, secrets)


def check_mc_identity(report, overlay, objects, secrets):
    """Each MC pod is its own AC client: client id = pod name, secret = the key of its name."""
    sts = find(objects, "StatefulSet", "mc-service")
    if not sts:
        return
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c.get("env") or []}
    mounts = {
        m["mountPath"]
        for m in c.get("volumeMounts") or []
        for v in pod.get("volumes") or []
        if v["name"] == m["name"] and (v.get("secret") or {}).get("secretName") == "mc-service-credentials"
    }
    if (env.get("POD_NAME", {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        report.fail(overlay, "mc-service: POD_NAME is not the pod's name (downward API)")
    if env.get("MC_CLIENT_ID", {}).get("value") != "$(POD_NAME)":
        report.fail(overlay, "mc-service: MC_CLIENT_ID is not $(POD_NAME)")
    if "MC_CLIENT_SECRET" in env or env.get("MC_CLIENT_SECRET_FILE", {}).get("value") not in {f"{m}/$(POD_NAME)" for m in mounts}:
        report.fail(overlay, "mc-service: the secret is not MC_CLIENT_SECRET_FILE=<mc-service-credentials mount>/$(POD_NAME)")
    if overlay not in ("dev", "kind"):
        return
    replicas = sts["spec"].get("replicas", 1)
    pods = [f"mc-service-{i}" for i in range(replicas)]
    creds = secrets.get("mc-service-credentials", {})
    seed = json.loads(secrets.get("convene-seed", {}).get("seed.json", "{}"))
    clients = {cl["client_id"]: cl for cl in seed.get("service_clients", [])}
    for name in pods:
        client = clients.get(name)
        if name not in creds:
            report.fail(overlay, f"Secret mc-service-credentials has no key {name}")
        if not client or client["service_type"] != "meeting-controller" or client.get("scopes") != ["internal:gc"]:
            report.fail(overlay, f"the seed lacks client {name} (meeting-controller, scopes [internal:gc])")
        elif client["client_secret"] != creds.get(name):
            report.fail(overlay, f"the seed's secret of {name} differs from mc-service-credentials")
    gc_id = config_of(objects, "gc-service-config").get("GC_CLIENT_ID")
    gc = clients.get(gc_id)
    if not gc or gc["service_type"] != "global-controller" or set(gc.get("scopes", [])) != {"internal:meeting-token", "internal:mc"}:
        report.fail(overlay, f"the seed lacks GC's client {gc_id} (global-controller, internal:meeting-token and internal:mc)")
    elif gc["client_secret"] != secrets.get("gc-service-secrets", {}).get("GC_CLIENT_SECRET"):
        report.fail(overlay, "the seed's GC secret differs from gc-service-secrets")
    password = secrets.get("postgres", {}).get("POSTGRES_PASSWORD")
    url = secrets.get("convene-database", {}).get("DATABASE_URL", "")
    if not password or f":{password}@" not in url:
        report.fail(overlay, "DATABASE_URL does not carry the dev PostgreSQL's POSTGRES_PASSWORD")


# ---------------------------------------------------------------------------------------


def main():
    rendered, version = pathlib.Path(sys.argv[1]), sys.argv[2]
    repo = pathlib.Path(__file__).resolve().parent.parent
    report = Report()
    jobs = alert_jobs(repo)
    rendered_overlays = {}
    for overlay in OVERLAYS:
        objects = load(rendered / f"{overlay}.yaml")
        rendered_overlays[overlay] = objects
        before = len(report.problems)
        check_schemas(report, overlay, objects, version)
        check_inventory(report, overlay, objects)
        check_containers(report, overlay, objects)
        check_config_maps(report, overlay, objects)
        check_images(report, overlay, objects)
        check_scraping(report, overlay, objects, jobs)
        check_secrets(report, overlay, objects)
        rules = check_network(report, objects, overlay, NAMESPACE)
        found = len(report.problems) - before
        report.ok(
            overlay,
            f"{len(objects)} objects valid for Kubernetes {version}; names, containers, images, "
            f"scraping (jobs {sorted(jobs)}), secrets and {rules} network rules: "
            + ("ok" if not found else f"{found} problems"),
        )
    check_k8s_build.check(report, repo, rendered_overlays, OPERATOR_SECRETS)
    if report.problems:
        print("\n".join(report.problems), file=sys.stderr)
        print(f"{len(report.problems)} problems", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
