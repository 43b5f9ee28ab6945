"""NetworkPolicy semantics for scripts/check_k8s.py: who may talk to whom in a rendered overlay.

A small model of the Kubernetes rules, enough for Convene's policies: a connection from a
source to a destination port is allowed when the source's egress allows it (or no policy
selects the source for egress) and the destination's ingress allows it (or no policy selects
the destination for ingress). Peers are pods (namespace, namespace labels, pod labels, named
ports) or an address outside the cluster. An ipBlock is read as "any outside address".
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    """A pod, or an address outside the cluster when `labels` is None."""

    name: str
    namespace: str | None = None
    namespace_labels: dict = field(default_factory=dict, hash=False, compare=False)
    labels: dict | None = field(default=None, hash=False, compare=False)
    # Named container ports: name -> (number, protocol).
    ports: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def external(self):
        return self.labels is None


def selector_matches(selector, labels):
    """A LabelSelector against a label set; `{}` matches everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(rule_peers, peer, policy_namespace):
    if not rule_peers:
        return True
    for entry in rule_peers:
        if "ipBlock" in entry:
            if peer.external:
                return True
            continue
        if peer.external:
            continue
        pod_sel = entry.get("podSelector")
        ns_sel = entry.get("namespaceSelector")
        if ns_sel is None:
            in_namespace = peer.namespace == policy_namespace
        else:
            in_namespace = selector_matches(ns_sel, peer.namespace_labels)
        if in_namespace and (pod_sel is None or selector_matches(pod_sel, peer.labels)):
            return True
    return False


def _port_matches(rule_ports, port, protocol, destination):
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            named = destination.ports.get(wanted)
            if named and named == (port, protocol):
                return True
            continue
        if wanted <= port <= entry.get("endPort", wanted):
            return True
    return False


def _policy_types(policy):
    spec = policy["spec"]
    if "policyTypes" in spec:
        return spec["policyTypes"]
    return ["Ingress"] + (["Egress"] if "egress" in spec else [])


class Policies:
    def __init__(self, policies):
        self.policies = policies

    def _selecting(self, peer, direction):
        if peer.external:
            return []
        return [
            p
            for p in self.policies
            if p["metadata"].get("namespace") == peer.namespace
            and direction in _policy_types(p)
            and selector_matches(p["spec"].get("podSelector") or {}, peer.labels)
        ]

    def egress_allows(self, source, destination, port, protocol="TCP"):
        selecting = self._selecting(source, "Egress")
        if not selecting:
            return True
        return any(
            _peer_matches(rule.get("to"), destination, p["metadata"].get("namespace"))
            and _port_matches(rule.get("ports"), port, protocol, destination)
            for p in selecting
            for rule in p["spec"].get("egress") or []
        )

    def ingress_allows(self, source, destination, port, protocol="TCP"):
        selecting = self._selecting(destination, "Ingress")
        if not selecting:
            return True
        return any(
            _peer_matches(rule.get("from"), source, p["metadata"].get("namespace"))
            and _port_matches(rule.get("ports"), port, protocol, destination)
            for p in selecting
            for rule in p["spec"].get("ingress") or []
        )

    def allows(self, source, destination, port, protocol="TCP"):
        return self.egress_allows(source, destination, port, protocol) and self.ingress_allows(
            source, destination, port, protocol
        )

    def default_deny(self, namespace):
        """A policy that selects every pod of the namespace for both directions, allowing nothing."""
        for p in self.policies:
            spec = p["spec"]
            if (
                p["metadata"].get("namespace") == namespace
                and spec.get("podSelector") == {}
                and set(_policy_types(p)) == {"Ingress", "Egress"}
                and not spec.get("ingress")
                and not spec.get("egress")
            ):
                return True
        return False


# ---------------------------------------------------------------------------------------
# What Convene's policies must allow and refuse

# Destination port -> the only sources (by app.kubernetes.io/name) that may connect to it.
ONLY_FROM = {
    ("mc-service", 50052): {"gc-service"},
    ("gc-service", 50051): {"mc-service"},
    # The ops listeners (probes and /metrics); the kubelet's probes come from the pod's own node,
    # which every policy admits.
    ("ac-service", 9082): {"prometheus"},
    ("gc-service", 9080): {"prometheus"},
    ("mc-service", 9081): {"prometheus"},
    ("postgres", 5432): {"ac-service", "gc-service", "convene-migrate", "convene-seed"},
    ("redis", 6379): {"mc-service"},
}

# Connections that must work: (source, destination, port, why).
MUST_ALLOW = [
    ("gc-service", "mc-service", 50052, "GC calls each MC's gRPC API (DESIGN section 9)"),
    ("mc-service", "gc-service", 50051, "MC registers and heartbeats with GC"),
    ("gc-service", "ac-service", 8082, "GC gets its service and meeting tokens and the JWKS"),
    ("mc-service", "ac-service", 8082, "MC gets its service token and the JWKS"),
    ("client", "gc-service", 8080, "clients use GC's public API"),
    ("client", "ac-service", 8082, "clients sign in at AC"),
    ("client", "mc-service", 8081, "clients open the signaling WebSocket"),
    ("prometheus", "ac-service", 9082, "Prometheus scrapes AC's ops port"),
    ("prometheus", "gc-service", 9080, "Prometheus scrapes GC's ops port"),
    ("prometheus", "mc-service", 9081, "Prometheus scrapes MC's ops port"),
    ("gc-service", "internet", 443, "GC delivers the organizations' webhooks (DESIGN section 13)"),
]
MUST_ALLOW_IN_CLUSTER_STORES = [
    (client, "postgres", 5432, f"{client} uses PostgreSQL")
    for client in ("ac-service", "gc-service", "convene-migrate", "convene-seed")
] + [("mc-service", "redis", 6379, "MC keeps the rooms in Redis")]
MUST_ALLOW_EXTERNAL_STORES = [
    (client, "database", 5432, f"{client} uses the external PostgreSQL")
    for client in ("ac-service", "gc-service", "convene-migrate")
] + [("mc-service", "database", 6379, "MC uses the external Redis Cluster")]

# Connections that must not work: nothing else leaves the namespace (GC's webhooks leave on
# TCP 443 only, to public addresses: the policy excludes the private and link-local ranges,
# which GC also refuses after resolving every name).
MUST_REFUSE = [
    ("ac-service", "internet", 443, "AC has no business outside the cluster"),
    ("gc-service", "internet", 80, "webhooks are delivered over https only"),
    ("mc-service", "internet", 443, "MC has no business outside the cluster"),
    ("gc-service", "database", 6379, "only MC uses Redis"),
    ("mc-service", "database", 5432, "MC never talks to PostgreSQL"),
]


def peers_of(objects):
    """Every pod the overlay runs (one per workload name), plus the outside parties."""
    namespaces = {
        o["metadata"]["name"]: {
            **(o["metadata"].get("labels") or {}),
            "kubernetes.io/metadata.name": o["metadata"]["name"],
        }
        for o in objects
        if o["kind"] == "Namespace"
    }
    peers = {}
    for o in objects:
        if o["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        template = o["spec"]["template"]
        labels = template["metadata"].get("labels") or {}
        ports = {
            p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
            for c in template["spec"]["containers"]
            for p in c.get("ports") or []
            if "name" in p
        }
        ns = o["metadata"].get("namespace")
        name = labels.get("app.kubernetes.io/name", o["metadata"]["name"])
        peers[name] = Peer(name, ns, namespaces.get(ns, {"kubernetes.io/metadata.name": ns}), labels, ports)
    peers["client"] = Peer("client")
    peers["database"] = Peer("database")
    peers["internet"] = Peer("internet")
    peers["prometheus"] = Peer(
        "prometheus",
        "monitoring",
        {"kubernetes.io/metadata.name": "monitoring"},
        {"app.kubernetes.io/name": "prometheus"},
    )
    peers["other-namespace"] = Peer(
        "other-namespace", "default", {"kubernetes.io/metadata.name": "default"}, {"app": "other"}
    )
    peers["kube-dns"] = Peer(
        "kube-dns",
        "kube-system",
        {"kubernetes.io/metadata.name": "kube-system"},
        {"k8s-app": "kube-dns"},
        {"dns": (53, "UDP")},
    )
    return peers


def check_network(report, objects, overlay, namespace):
    """The policies of one rendered overlay against the tables above."""
    policies = Policies([o for o in objects if o["kind"] == "NetworkPolicy"])
    peers = peers_of(objects)
    if not policies.default_deny(namespace):
        report.fail(overlay, f"no default-deny NetworkPolicy (all pods, Ingress and Egress) in {namespace}")
    own_pods = [p for p in peers.values() if p.namespace == namespace]
    for pod in own_pods:
        if not policies.allows(pod, peers["kube-dns"], 53, "UDP"):
            report.fail(overlay, f"{pod.name} cannot resolve names (no DNS egress to kube-dns on UDP 53)")

    in_cluster_stores = "postgres" in peers
    expected = list(MUST_ALLOW)
    if overlay != "base":
        expected += MUST_ALLOW_IN_CLUSTER_STORES if in_cluster_stores else MUST_ALLOW_EXTERNAL_STORES
    for source, destination, port, why in expected:
        if source not in peers or destination not in peers:
            report.fail(overlay, f"cannot check '{why}': {source} or {destination} is not rendered")
            continue
        if not policies.allows(peers[source], peers[destination], port):
            report.fail(overlay, f"{source} -> {destination} TCP {port} is refused, but {why}")
    for source, destination, port, why in MUST_REFUSE:
        if source in peers and policies.allows(peers[source], peers[destination], port):
            report.fail(overlay, f"{source} -> {destination} TCP {port} is allowed, but {why}")

    # Both the path as a whole and the destination's own ingress rules, so that a lax ingress
    # rule is caught even while the sources' egress rules still stop the connection.
    for (destination, port), allowed in ONLY_FROM.items():
        if destination not in peers:
            continue
        present = allowed & set(peers)
        for what, allows in (("accept", policies.allows), ("admit by its ingress rules", policies.ingress_allows)):
            let_in = {name for name, peer in peers.items() if allows(peer, peers[destination], port)}
            if let_in != present:
                extra = sorted(let_in - present)
                missing = sorted(present - let_in)
                report.fail(
                    overlay,
                    f"{destination} TCP {port} must {what} exactly {sorted(present)}:"
                    + (f" also open to {extra}" if extra else "")
                    + (f" refused to {missing}" if missing else ""),
                )
    return len(expected) + len(MUST_REFUSE) + len(ONLY_FROM)
