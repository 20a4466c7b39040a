"""Readiness of Istio's workloads (istiod, istio-cni-node, ztunnel) by list+watch.

Deployments and DaemonSets in istio-system, each kind in its own thread with ListWatcher's
loop (ambient_tui.watch.listwatch): list -> replace the kind's rows -> watch from the list's
resourceVersion -> on 410 Gone relist; on a lost connection "reconnecting", back off, relist;
on 401/403 a message for that kind, retried slowly. Consumers poll `version` and take a
`snapshot()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

from .listwatch import ApiError, ListWatcher, Loop, RawSource
from .pods import ISTIO_NAMESPACE

DEPLOYMENTS, DAEMONSETS = "deployments", "daemonsets"
KINDS = (DEPLOYMENTS, DAEMONSETS)

# The workloads the install waits for, by name, with their kind.
ISTIO_WORKLOADS = {"istiod": DEPLOYMENTS, "istio-cni-node": DAEMONSETS, "ztunnel": DAEMONSETS}
SHORT = {"istiod": "istiod", "istio-cni-node": "cni", "ztunnel": "ztunnel"}

def workloads_for_step(step) -> tuple[str, ...]:
    """The workloads a plan step waits for (helm --wait, rollout status, istioctl install):
    what the plan declared on the step (Step.watches), never guessed from its id."""
    return tuple(w for w in getattr(step, "watches", ()) if w in ISTIO_WORKLOADS)


@dataclass(frozen=True)
class WorkloadCounts:
    name: str
    kind: str
    desired: int
    ready: int
    updated: int

    @property
    def complete(self) -> bool:
        return self.desired > 0 and self.ready == self.desired and self.updated == self.desired

    def short(self) -> str:
        return f"{SHORT.get(self.name, self.name)} {self.ready}/{self.desired}"


def counts_of(kind: str, obj: dict) -> WorkloadCounts:
    """desired/ready/updated from a Deployment's or DaemonSet's JSON (pure: unit-tested)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if kind == DEPLOYMENTS:
        replicas = spec.get("replicas")
        desired = 1 if replicas is None else int(replicas)  # the API's default is 1
        ready = int(status.get("readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
    else:
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
    return WorkloadCounts(meta.get("name", ""), kind, desired, ready, updated)


class AppsSource(Protocol):
    def list(self, kind: str, namespace: str) -> tuple[list[dict], str]: ...
    def watch(self, kind: str, namespace: str, resource_version: str, timeout: int) -> Iterator[dict]: ...
    def close(self) -> None: ...


class KubeAppsSource(RawSource):
    """AppsSource on the kubernetes client: raw JSON, closable streams (as KubeSource)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None, connect_timeout: float = 5.0) -> None:
        from kubernetes import client  # lazy: keeps start-up fast

        super().__init__(kubeconfig, context, api_client, connect_timeout)
        self.apps = client.AppsV1Api(self.api_client)

    def _request(self, kind: str, namespace: str | None, **kw):
        method = (self.apps.list_namespaced_deployment if kind == DEPLOYMENTS
                  else self.apps.list_namespaced_daemon_set)
        return method(namespace, **kw)


@dataclass
class WorkloadSnapshot:
    version: int
    rows: dict[str, WorkloadCounts]
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)


class WorkloadWatcher(ListWatcher):
    """Deployments and DaemonSets in `namespace`, kept current by list+watch in threads."""

    thread_name = "workload-watcher"
    denied_statuses = (401, 403)  # a 404 here is an API problem: reconnect, not a message

    def __init__(self, source: AppsSource | Callable[[], AppsSource] | None = None, *,
                 namespace: str = ISTIO_NAMESPACE, kubeconfig: str | None = None,
                 context: str | None = None, watch_timeout: int = 240,
                 backoff: tuple[float, float] = (0.5, 8.0), forbidden_retry: float = 30.0) -> None:
        super().__init__(source, kubeconfig=kubeconfig, context=context,
                         watch_timeout=watch_timeout, backoff=backoff)
        self.namespace = namespace
        self.forbidden_retry = forbidden_retry
        self._rows: dict[tuple[str, str], WorkloadCounts] = {}  # (kind, name)

    @property
    def denied_retry(self) -> float:
        return self.forbidden_retry

    def snapshot(self) -> WorkloadSnapshot:
        with self._lock:
            # A name is unique per kind; istio's three names do not collide across kinds.
            rows = {name: c for (_kind, name), c in sorted(self._rows.items())}
            return WorkloadSnapshot(self._version, rows, self.state, self.last_error, dict(self._messages))

    def _default_source(self) -> KubeAppsSource:
        return KubeAppsSource(self.kubeconfig, self.context)

    def _loops(self) -> list[Loop]:
        return [Loop(key=kind, kind=kind, namespace=self.namespace, scope=kind) for kind in KINDS]

    def _denied_message(self, loop: Loop, what: str, e: ApiError) -> str:
        return f"{what}: {loop.kind} in {self.namespace}"

    def _replace(self, loop: Loop, items: Iterable[dict]) -> None:
        kind = loop.kind
        with self._lock:
            self.relists += 1
            new = {(kind, c.name): c for c in (counts_of(kind, o) for o in items)}
            for key in [k for k in self._rows if k[0] == kind and k not in new]:
                del self._rows[key]
            self._rows.update(new)
            self._version += 1

    def _apply(self, loop: Loop, typ: str, obj: dict) -> None:
        c = counts_of(loop.kind, obj)
        key = (loop.kind, c.name)
        with self._lock:
            if typ == "DELETED":
                if self._rows.pop(key, None) is None:
                    return
            else:
                if self._rows.get(key) == c:
                    return
                self._rows[key] = c
            self._version += 1
