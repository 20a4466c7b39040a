"""The mesh's state from the API's own JSON: pure functions, no client, no threads.

Inputs are the raw objects a list returns (namespaces, pods, nodes, Gateways, Deployments), so
the headless `mesh` command, the verify command and the Mesh pane's watcher share one reading:

- a namespace's data-plane mode: `ambient` (istio.io/dataplane-mode=ambient), `sidecar`
  (istio-injection=enabled or an istio.io/rev label), `none` (dataplane-mode=none: opted out),
  `excluded` (the control plane's and Kubernetes' own namespaces, which istio-cni never
  captures), or `-` (not in the mesh);
- captured pods: istio-cni annotates a pod it redirected with
  ambient.istio.io/redirection=enabled; a pod is counted while it is not finished;
- the waypoint in use (istio.io/use-waypoint on the namespace) and whether its Gateway is
  Programmed or its Deployment has a ready replica;
- nodes with their ztunnel and istio-cni pods; a node without a ready ztunnel is marked,
  because the ambient pods scheduled there are not in the mesh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

DATAPLANE_LABEL = "istio.io/dataplane-mode"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
REDIRECTION_ANNOTATION = "ambient.istio.io/redirection"
WAYPOINT_CLASS = "istio-waypoint"
ISTIO_NAMESPACE = "istio-system"
# istio-cni's default exclusions, plus the control plane's namespace.
EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", ISTIO_NAMESPACE)
ZTUNNEL_LABEL = ("app", "ztunnel")
CNI_LABEL = ("k8s-app", "istio-cni-node")
# Istio labels the Deployment it makes for a Gateway with the Gateway's name.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def namespace_mode(name: str, labels: dict | None) -> str:
    labels = labels or {}
    mode = labels.get(DATAPLANE_LABEL)
    if mode == "ambient":
        return "ambient"
    if mode == "none":
        return "none"
    if labels.get("istio-injection") == "enabled" or labels.get("istio.io/rev"):
        return "sidecar"
    if name in EXCLUDED_NAMESPACES:
        return "excluded"
    return "-"


def pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_live(pod: dict) -> bool:
    """Counts as a workload: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


@dataclass(frozen=True)
class PodFacts:
    """What the mesh needs of one pod (a few fields, so 20,000 pods stay small)."""

    namespace: str
    name: str
    node: str
    live: bool
    ready: bool
    captured: bool
    opted_out: bool
    host_network: bool
    agent: str = ""  # "ztunnel" or "cni" for istio-system's node agents
    owner: str = ""  # "Kind/name" of the controller, for the restart hint


def pod_facts(pod: dict) -> PodFacts:
    meta, spec = _meta(pod), pod.get("spec") or {}
    labels = meta.get("labels") or {}
    agent = ""
    if meta.get("namespace") == ISTIO_NAMESPACE:
        if labels.get(ZTUNNEL_LABEL[0]) == ZTUNNEL_LABEL[1]:
            agent = "ztunnel"
        elif labels.get(CNI_LABEL[0]) == CNI_LABEL[1]:
            agent = "cni"
    owner = next((f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or []
                  if o.get("controller")), "")
    return PodFacts(meta.get("namespace", ""), meta.get("name", ""), spec.get("nodeName") or "",
                    pod_live(pod), pod_ready(pod),
                    (meta.get("annotations") or {}).get(REDIRECTION_ANNOTATION) == "enabled",
                    labels.get(DATAPLANE_LABEL) == "none", bool(spec.get("hostNetwork")),
                    agent, owner)


def node_ready(node: dict) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


@dataclass(frozen=True)
class Waypoint:
    namespace: str
    name: str
    programmed: bool          # the Gateway's Programmed condition (istiod made it)
    deployment_ready: bool    # its Deployment has a ready replica
    has_deployment: bool
    for_: str = ""            # istio.io/waypoint-for: service, workload, all, none

    @property
    def ready(self) -> bool:
        return self.programmed and self.deployment_ready

    def reason(self) -> str:
        if self.ready:
            return "ready"
        if not self.has_deployment:
            return "no Deployment yet (istiod makes it when it programs the Gateway)"
        if not self.deployment_ready:
            return "Deployment has no ready replica"
        return "Gateway not Programmed"


def is_waypoint(gateway: dict) -> bool:
    return (gateway.get("spec") or {}).get("gatewayClassName") == WAYPOINT_CLASS


def waypoints(gateways: Iterable[dict], deployments: Iterable[dict]) -> dict[tuple[str, str], Waypoint]:
    deps: dict[tuple[str, str], bool] = {}
    for d in deployments:
        m = _meta(d)
        gw = (m.get("labels") or {}).get(GATEWAY_NAME_LABEL) or m.get("name", "")
        deps[(m.get("namespace", ""), gw)] = int((d.get("status") or {}).get("readyReplicas") or 0) > 0
    out = {}
    for g in gateways:
        if not is_waypoint(g):
            continue
        m = _meta(g)
        key = (m.get("namespace", ""), m.get("name", ""))
        programmed = any(c.get("type") == "Programmed" and c.get("status") == "True"
                         for c in (g.get("status") or {}).get("conditions") or [])
        out[key] = Waypoint(key[0], key[1], programmed, deps.get(key, False), key in deps,
                            (m.get("labels") or {}).get("istio.io/waypoint-for", ""))
    return out


@dataclass
class NamespaceRow:
    name: str
    mode: str
    pods: int
    captured: int
    waypoint: str = ""        # istio.io/use-waypoint
    waypoint_state: str = ""  # ready, missing, or why it is not ready
    netpol_errors: int | None = None  # lint errors of its live policies; None: not linted

    @property
    def enrolled(self) -> bool:
        return self.mode == "ambient"


@dataclass
class NodeRow:
    name: str
    ready: bool
    ztunnel: str = ""        # pod name, "" when none is scheduled there
    ztunnel_ready: bool = False
    cni: str = ""
    cni_ready: bool = False
    ambient_pods: int = 0    # pods of enrolled namespaces scheduled here

    @property
    def in_mesh(self) -> bool:
        """Ambient pods on this node are in the mesh only with a ready ztunnel."""
        return self.ztunnel_ready


@dataclass
class MeshState:
    namespaces: list[NamespaceRow] = field(default_factory=list)
    nodes: list[NodeRow] = field(default_factory=list)
    waypoints: list[Waypoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read

    def namespace(self, name: str) -> NamespaceRow | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def node(self, name: str) -> NodeRow | None:
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def enrolled(self) -> list[str]:
        return [n.name for n in self.namespaces if n.enrolled]

    def to_dict(self) -> dict:
        return {
            "namespaces": [{**asdict(n), "enrolled": n.enrolled} for n in self.namespaces],
            "nodes": [{**asdict(n), "in_mesh": n.in_mesh} for n in self.nodes],
            "waypoints": [{**asdict(w), "for": w.for_, "ready": w.ready} for w in self.waypoints],
            "notes": list(self.notes),
        }


def build_state(namespaces: dict[str, dict], pods: Iterable[PodFacts], nodes: dict[str, bool],
                wps: dict[tuple[str, str], Waypoint], notes: Iterable[str] = ()) -> MeshState:
    """namespaces: name -> labels; nodes: name -> Ready. Pods already reduced to PodFacts."""
    modes = {name: namespace_mode(name, labels) for name, labels in namespaces.items()}
    counts: dict[str, list[int]] = {name: [0, 0] for name in namespaces}
    node_rows = {name: NodeRow(name, ready) for name, ready in nodes.items()}
    for p in pods:
        if not p.live:
            continue
        c = counts.setdefault(p.namespace, [0, 0])
        c[0] += 1
        c[1] += p.captured
        node = node_rows.get(p.node)
        if node is None:
            continue
        if p.agent == "ztunnel" and not (node.ztunnel and node.ztunnel_ready):
            node.ztunnel, node.ztunnel_ready = p.name, p.ready
        elif p.agent == "cni" and not (node.cni and node.cni_ready):
            node.cni, node.cni_ready = p.name, p.ready
        elif modes.get(p.namespace) == "ambient":
            node.ambient_pods += 1
    rows = []
    for name in sorted(set(namespaces) | set(counts)):
        labels = namespaces.get(name) or {}
        wp_name = labels.get(USE_WAYPOINT_LABEL, "")
        wp_state = ""
        if wp_name and wp_name != "none":
            wp = wps.get((name, wp_name))
            wp_state = "missing: no Gateway of class istio-waypoint" if wp is None else wp.reason()
        rows.append(NamespaceRow(name, modes.get(name, "-"), *counts.get(name, [0, 0]),
                                 waypoint=wp_name, waypoint_state=wp_state))
    return MeshState(rows, [node_rows[n] for n in sorted(node_rows)],
                     [wps[k] for k in sorted(wps)], list(notes))


# --- reading it headless --------------------------------------------------------------------

GATEWAYS = "/apis/gateway.networking.k8s.io/v1/gateways"
WAYPOINT_DEPLOYMENTS = "/apis/apps/v1/deployments"


def _optional_list(kube, path: str, what: str, notes: list[str], **kw) -> list:
    """A list that may legitimately be absent (the Gateway API CRDs not installed)."""
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        return kube.list_json(path, what, **kw)
    except ClusterAccessError as e:
        if e.kind == "not-found":
            notes.append(f"{what}: the Gateway API CRDs are not installed")
            return []
        if e.kind == "forbidden":
            notes.append(f"{what}: forbidden for this user")
            return []
        raise


def collect(kube, lint_policies: bool = True) -> MeshState:
    """One read of the cluster (namespaces, pods, nodes, waypoints) into a MeshState."""
    notes: list[str] = []
    namespaces = {_meta(n).get("name", ""): dict(_meta(n).get("labels") or {})
                  for n in kube.list_namespaces()}
    nodes = {_meta(n).get("name", ""): node_ready(n) for n in kube.list_nodes()}
    pods = [pod_facts(p) for p in kube.list_pods()]
    gws = _optional_list(kube, GATEWAYS, "listing Gateways", notes)
    deps = kube.list_json(WAYPOINT_DEPLOYMENTS, "listing waypoint Deployments",
                          query=[("labelSelector", GATEWAY_NAME_LABEL)]) if gws else []
    state = build_state(namespaces, pods, nodes, waypoints(gws, deps), notes)
    if lint_policies:
        from ambient_tui.mesh.enroll import findings_by_namespace

        linted = [r.name for r in state.namespaces if r.mode != "excluded"]
        try:
            found = findings_by_namespace(kube, linted)
        except Exception as e:  # noqa: BLE001 - a missing right is a note, not a crash
            notes.append(f"NetworkPolicies not linted: {e}")
        else:
            for row in state.namespaces:
                if row.name in found:
                    row.netpol_errors = len(found[row.name])
    return state
