"""What the lint needs from a live cluster: policies, pods, namespaces, capture, CNI.

One read per kind (namespaces, then policies and pods per namespace), each through
NetpolCluster so every API failure is one ClusterError line. What cannot be read
(the istio-cni ConfigMap, the CNI's DaemonSet, for a user without those rights) falls
back to the offline defaults and says so in `notes`, never fails the lint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .cluster import ClusterError, NetpolCluster, is_enrolled
from .lint import DEFAULT_EXCLUDED, ENFORCES, IGNORES, UNKNOWN, Context, Pod
from .parse import PolicyDoc, from_object

ISTIO_NAMESPACE = "istio-system"
CNI_CONFIGMAP = "istio-cni-config"


@dataclass
class Live:
    """A snapshot of the cluster for the lint."""

    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    policies: list[PolicyDoc] = field(default_factory=list)
    pods: dict[str, list[Pod]] = field(default_factory=dict)
    excluded: frozenset[str] = DEFAULT_EXCLUDED
    cni: str = UNKNOWN
    cni_reason: str = "the CNI could not be read"
    notes: list[str] = field(default_factory=list)
    assumed_enrolled: set[str] = field(default_factory=set)

    def context(self) -> Context:
        enrolled = {n for n, labels in self.namespaces.items() if is_enrolled(labels)}
        enrolled |= self.assumed_enrolled
        return Context(enrolled=enrolled, pods=self.pods, namespaces=self.namespaces,
                       excluded=self.excluded, cni=self.cni, cni_reason=self.cni_reason)


def pod_of(item: dict[str, Any]) -> Pod:
    """A Pod for the lint from the API's JSON: labels, host network, IPs, named ports."""
    meta = item.get("metadata") or {}
    spec = item.get("spec") or {}
    status = item.get("status") or {}
    ips = tuple(p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")) or (
        (status["podIP"],) if status.get("podIP") else ())
    ports: dict[str, set[tuple[str, int]]] = {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("name") and isinstance(p.get("containerPort"), int):
                ports.setdefault(p["name"], set()).add((p.get("protocol", "TCP"), p["containerPort"]))
    return Pod(meta.get("name", "?"), dict(meta.get("labels") or {}),
               bool(spec.get("hostNetwork")), ips, ports)


def excluded_namespaces(cluster: NetpolCluster, istio_ns: str = ISTIO_NAMESPACE
                        ) -> tuple[frozenset[str], str]:
    """istio-cni's EXCLUDE_NAMESPACES (plus its own namespace, never captured)."""
    try:
        cm = cluster.get_configmap(istio_ns, CNI_CONFIGMAP)
    except ClusterError as err:
        return DEFAULT_EXCLUDED, f"istio-cni config not read ({err.message}); chart defaults used"
    if cm is None:
        return DEFAULT_EXCLUDED, (f"no {istio_ns}/{CNI_CONFIGMAP} ConfigMap (istio-cni not "
                                  "installed?); chart defaults istio-system, kube-system used")
    raw = str((cm.get("data") or {}).get("EXCLUDE_NAMESPACES", ""))
    names = {n.strip() for n in raw.split(",") if n.strip()} | {istio_ns}
    return frozenset(names), ""


def cni_enforcement(cluster: NetpolCluster) -> tuple[str, str]:
    """Does the CNI enforce NetworkPolicies on the probe address? (state, reason)"""
    try:
        ds = cluster.get_daemonset("kube-system", "aws-node")
    except ClusterError as err:
        return UNKNOWN, f"the CNI could not be read: {err.message}"
    if ds is None:
        for name, label in (("calico-node", "Calico"), ("cilium", "Cilium")):
            try:
                if cluster.get_daemonset("kube-system", name) is not None:
                    return ENFORCES, f"{label} enforces NetworkPolicies"
            except ClusterError:
                break
        return UNKNOWN, "the CNI is not one this tool knows"
    containers = ((ds.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for c in containers:
        if c.get("name") == "aws-eks-nodeagent":
            if "--enable-network-policy=true" in (c.get("args") or []):
                return ENFORCES, "the VPC CNI network policy agent is enabled"
            return IGNORES, ("the VPC CNI network policy agent is disabled: NetworkPolicies "
                             "are not enforced at all")
    return IGNORES, "the VPC CNI runs without its network policy agent: policies are not enforced"


def load(cluster: NetpolCluster, namespaces: Iterable[str] | None = None,
         progress: Callable[[str], None] | None = None,
         istio_namespace: str = ISTIO_NAMESPACE) -> Live:
    """Read the cluster. `namespaces`: only these (each must exist); None: every namespace
    the user may list. ClusterError (403, unreachable) propagates as one line."""
    say = progress or (lambda _m: None)
    live = Live()
    wanted = list(namespaces or [])
    say("reading namespaces")
    try:
        live.namespaces = {n.name: n.labels for n in cluster.namespaces()}
    except ClusterError as err:
        if not wanted or err.status != 403:
            raise
        # A user who may not list namespaces can still lint the ones named.
        live.namespaces = {}
        for ns in wanted:
            try:
                labels = cluster.get_namespace(ns)
            except ClusterError as one:
                if one.status != 403:
                    raise
                labels = {}
                live.assumed_enrolled.add(ns)
            if labels is not None:
                live.namespaces[ns] = labels
        if live.assumed_enrolled:
            live.notes.append("namespace labels not readable for " +
                              ", ".join(sorted(live.assumed_enrolled)) +
                              ": taken as enrolled (the stricter judgement)")
    if wanted:
        missing = [n for n in wanted if n not in live.namespaces]
        if missing:
            raise ClusterError(f"Namespace {missing[0]!r} not found: check the name "
                               "(kubectl get namespaces).", 404, "NamespaceNotFound")
    for ns in wanted or sorted(live.namespaces):
        say(f"reading policies and pods in {ns}")
        live.policies.extend(from_object(p) for p in cluster.list_policies(ns))
        live.pods[ns] = [pod_of(p) for p in cluster.list_pod_objects(ns)]
    live.excluded, note = excluded_namespaces(cluster, istio_namespace)
    if note:
        live.notes.append(note)
    live.cni, live.cni_reason = cni_enforcement(cluster)
    return live
