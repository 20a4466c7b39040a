"""The mesh kept live by list+watch (ListWatcher's loop: relist on 410, reconnect, messages).

Five loops: namespaces (labels), pods in every namespace (reduced to PodFacts at once, so
20,000 pods stay small), nodes (Ready), Gateways and the waypoints' Deployments. A missing
Gateway API (404) is a message, not an error. `snapshot()` builds the MeshState and adds one
point to each component's readiness history when that component changed, so the history
follows the watch events, not a timer.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from ambient_tui.mesh.state import (GATEWAY_NAME_LABEL, MeshState, PodFacts, build_state,
                                    node_ready, pod_facts, waypoints)
from ambient_tui.watch.listwatch import ApiError, ListWatcher, Loop, RawSource

HISTORY = 24  # points kept per component (the pane shows the newest that fit)
KINDS = ("namespaces", "pods", "nodes", "gateways", "deployments", "networkpolicies")


class MeshSource(RawSource):
    """The five kinds on the kubernetes client as raw JSON (pods paged)."""

    page_size = 500

    def __init__(self, kubeconfig=None, context=None, api_client=None, connect_timeout=5.0) -> None:
        from kubernetes import client

        super().__init__(kubeconfig, context, api_client, connect_timeout)
        self.apps = client.AppsV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.net = client.NetworkingV1Api(self.api_client)

    def _request(self, kind: str, namespace: str | None, **kw):
        if kind == "namespaces":
            return self.core.list_namespace(**kw)
        if kind == "pods":
            return self.core.list_pod_for_all_namespaces(**kw)
        if kind == "nodes":
            return self.core.list_node(**kw)
        if kind == "deployments":
            return self.apps.list_deployment_for_all_namespaces(label_selector=GATEWAY_NAME_LABEL, **kw)
        if kind == "networkpolicies":
            return self.net.list_network_policy_for_all_namespaces(**kw)
        if kind == "gateways":
            kw.pop("_continue", None)
            kw.pop("limit", None)
            return self.custom.list_cluster_custom_object("gateway.networking.k8s.io", "v1", "gateways", **kw)
        raise ValueError(kind)


@dataclass
class MeshSnapshot:
    version: int
    state: MeshState
    watch_state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)
    # component -> readiness points, oldest first (1.0 ready ... 0.0 not ready)
    history: dict[str, list[float]] = field(default_factory=dict)


class ReadinessHistory:
    """One point per change per component: `ztunnel@node`, `cni@node`, `waypoint@ns`."""

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self._last: dict[str, float] = {}
        self._points: dict[str, deque[float]] = {}

    def record(self, state: MeshState) -> None:
        now: dict[str, float] = {}
        for n in state.nodes:
            now[f"ztunnel@{n.name}"] = 1.0 if n.ztunnel_ready else 0.0
            now[f"cni@{n.name}"] = 1.0 if n.cni_ready else 0.0
        for w in state.waypoints:
            now[f"waypoint@{w.namespace}/{w.name}"] = 1.0 if w.ready else (0.5 if w.has_deployment else 0.0)
        for key, value in now.items():
            if self._last.get(key) != value:
                self._points.setdefault(key, deque(maxlen=self.size)).append(value)
                self._last[key] = value
        for key in [k for k in self._last if k not in now]:  # a node or waypoint went away
            self._last.pop(key)
            self._points.pop(key, None)

    def points(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self._points.items()}


class MeshWatcher(ListWatcher):
    thread_name = "mesh-watcher"

    def __init__(self, source=None, *, kubeconfig=None, context=None, watch_timeout: int = 240,
                 backoff=(0.5, 8.0), missing_retry: float = 5.0) -> None:
        super().__init__(source, kubeconfig=kubeconfig, context=context,
                         watch_timeout=watch_timeout, backoff=backoff, missing_retry=missing_retry)
        self._ns: dict[str, dict] = {}
        self._pods: dict[tuple[str, str], PodFacts] = {}
        self._nodes: dict[str, bool] = {}
        self._gws: dict[tuple[str, str], dict] = {}
        self._deps: dict[tuple[str, str], dict] = {}
        self._policies: dict[tuple[str, str], dict] = {}
        # namespace -> (its policies' resourceVersions, blocking findings): lint only on change
        self._linted: dict[str, tuple[tuple, int]] = {}
        self._history = ReadinessHistory()
        self._built: tuple[int, MeshSnapshot] | None = None

    def _default_source(self):
        return MeshSource(self.kubeconfig, self.context)

    def _loops(self) -> list[Loop]:
        return [Loop(key=k, kind=k, namespace=None, scope=k, thread=f"watch-mesh-{k}") for k in KINDS]

    def _denied_message(self, loop: Loop, what: str, e: ApiError) -> str:
        if loop.kind == "gateways" and e.status == 404:
            return "Gateways: the Gateway API CRDs are not installed (no waypoints)"
        return f"{what}: {loop.kind} ({e.message})".rstrip(" ()")

    @property
    def denied_retry(self) -> float:
        return self.missing_retry

    # -- merging --
    @staticmethod
    def _key(obj: dict) -> tuple[str, str]:
        m = obj.get("metadata") or {}
        return (m.get("namespace", ""), m.get("name", ""))

    def _reduce(self, kind: str, obj: dict):
        if kind == "namespaces":
            return dict((obj.get("metadata") or {}).get("labels") or {})
        if kind == "pods":
            return pod_facts(obj)
        if kind == "nodes":
            return node_ready(obj)
        if kind == "networkpolicies":
            return {k: obj.get(k) for k in ("metadata", "spec")}
        # Gateways and Deployments: keep only what `waypoints` reads.
        return {"metadata": {k: (obj.get("metadata") or {}).get(k) for k in ("name", "namespace", "labels")},
                "spec": {"gatewayClassName": (obj.get("spec") or {}).get("gatewayClassName")},
                "status": {"conditions": (obj.get("status") or {}).get("conditions"),
                           "readyReplicas": (obj.get("status") or {}).get("readyReplicas")}}

    def _table(self, kind: str) -> dict:
        return {"namespaces": self._ns, "pods": self._pods, "nodes": self._nodes,
                "gateways": self._gws, "deployments": self._deps, "networkpolicies": self._policies}[kind]

    def _k(self, kind: str, obj: dict):
        key = self._key(obj)
        return key[1] if kind in ("namespaces", "nodes") else key

    def _replace(self, loop: Loop, items: Iterable[dict]) -> None:
        new = {self._k(loop.kind, o): self._reduce(loop.kind, o) for o in items}
        with self._lock:
            self.relists += 1
            table = self._table(loop.kind)
            table.clear()
            table.update(new)
            self._version += 1

    def _apply(self, loop: Loop, typ: str, obj: dict) -> None:
        key, value = self._k(loop.kind, obj), self._reduce(loop.kind, obj)
        with self._lock:
            table = self._table(loop.kind)
            if typ == "DELETED":
                if table.pop(key, None) is None:
                    return
            elif table.get(key) == value:
                return
            else:
                table[key] = value
            self._version += 1

    def _lint(self, state: MeshState, policies: list[dict]) -> None:
        """Blocking NetworkPolicy findings per namespace, linted again only when its policies
        changed (their resourceVersions): 2,000 namespaces are not linted on every pod event."""
        from ambient_tui.mesh.enroll import lint_policies

        by_ns: dict[str, list[dict]] = {}
        for p in policies:
            by_ns.setdefault((p.get("metadata") or {}).get("namespace", ""), []).append(p)
        for row in state.namespaces:
            if row.mode == "excluded":
                continue
            mine = by_ns.get(row.name, [])
            sig = tuple(sorted((p["metadata"].get("name"), p["metadata"].get("resourceVersion")) for p in mine))
            cached = self._linted.get(row.name)
            if cached is None or cached[0] != sig:
                try:
                    cached = (sig, len(lint_policies(mine, row.name)))
                except Exception:  # noqa: BLE001 - a policy the lint cannot read: not counted
                    cached = (sig, 0)
                self._linted[row.name] = cached
            row.netpol_errors = cached[1]

    def pod_names(self, namespace: str) -> list[str]:
        """Live pods of a namespace (the pane's opt-out list)."""
        with self._lock:
            return sorted(p.name for p in self._pods.values() if p.namespace == namespace and p.live)

    def snapshot(self) -> MeshSnapshot:
        with self._lock:
            if self._built is not None and self._built[0] == self._version:
                return self._built[1]
            version = self._version
            ns, pods, nodes = dict(self._ns), list(self._pods.values()), dict(self._nodes)
            gws, deps = list(self._gws.values()), list(self._deps.values())
            policies = list(self._policies.values())
            messages, watch_state, error = dict(self._messages), self.state, self.last_error
        state = build_state(ns, pods, nodes, waypoints(gws, deps), list(messages.values()))
        self._lint(state, policies)
        self._history.record(state)
        snap = MeshSnapshot(version, state, watch_state, error, messages, self._history.points())
        self._built = (version, snap)
        return snap


def wait_for(watcher: MeshWatcher, predicate, timeout: float = 10.0) -> MeshSnapshot:
    """The first snapshot for which predicate(snapshot) holds (tests, headless waits)."""
    deadline = time.monotonic() + timeout
    snap = watcher.snapshot()
    while not predicate(snap) and time.monotonic() < deadline:
        time.sleep(0.05)
        snap = watcher.snapshot()
    return snap
