"""Readiness of Istio's workloads (istiod, istio-cni-node, ztunnel) by list+watch.

Deployments and DaemonSets in istio-system, each kind in its own thread with the loop of
watch/pods.py: list -> replace the kind's rows -> watch from the list's resourceVersion ->
on 410 Gone relist; on a lost connection "reconnecting", back off, relist; on 403/404 a
message for that kind, retried slowly. Consumers poll `version` and take a `snapshot()`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from .pods import (ISTIO_NAMESPACE, LISTING, RECONNECTING, STOPPED, WATCHING, ApiError,
                   ConnectionLost, _status_message)

DEPLOYMENTS, DAEMONSETS = "deployments", "daemonsets"
KINDS = (DEPLOYMENTS, DAEMONSETS)

# The workloads the install waits for, by name, with their kind.
ISTIO_WORKLOADS = {"istiod": DEPLOYMENTS, "istio-cni-node": DAEMONSETS, "ztunnel": DAEMONSETS}
SHORT = {"istiod": "istiod", "istio-cni-node": "cni", "ztunnel": "ztunnel"}

# Which workloads a plan step waits for (helm --wait, rollout status, istioctl install).
_STEP_WORKLOADS = {
    "helm-istiod": ("istiod",), "verify-istiod": ("istiod",),
    "helm-istio-cni": ("istio-cni-node",), "verify-istio-cni": ("istio-cni-node",),
    "helm-ztunnel": ("ztunnel",), "verify-ztunnel": ("ztunnel",),
    "istioctl-install": ("istiod", "istio-cni-node", "ztunnel"),
}


def workloads_for_step(step_id: str) -> tuple[str, ...]:
    return _STEP_WORKLOADS.get(step_id, ())


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


class KubeAppsSource:
    """AppsSource on the kubernetes client: raw JSON, closable streams (as KubeSource)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None, connect_timeout: float = 5.0) -> None:
        from kubernetes import client, config  # lazy: keeps start-up fast

        if api_client is None:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.apps = client.AppsV1Api(api_client)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._open: set = set()

    def _call(self, kind: str, namespace: str, read_timeout: float, **kw):
        from kubernetes.client.exceptions import ApiException

        kw.update(_preload_content=False, _request_timeout=(self.connect_timeout, read_timeout))
        method = (self.apps.list_namespaced_deployment if kind == DEPLOYMENTS
                  else self.apps.list_namespaced_daemon_set)
        try:
            return method(namespace, **kw)
        except ApiException as e:
            raise ApiError(e.status or 0, _status_message(e.body) or str(e.reason)) from None
        except Exception as e:  # urllib3 errors, timeouts, OSError
            raise ConnectionLost(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None

    def list(self, kind: str, namespace: str) -> tuple[list[dict], str]:
        resp = self._call(kind, namespace, 60)
        try:
            data = json.loads(resp.data)
        except Exception as e:
            raise ConnectionLost(f"bad list response: {e}") from None
        return data.get("items") or [], (data.get("metadata") or {}).get("resourceVersion", "")

    def watch(self, kind: str, namespace: str, resource_version: str, timeout: int) -> Iterator[dict]:
        from kubernetes.watch.watch import iter_resp_lines

        resp = self._call(kind, namespace, timeout + 15, watch=True, resource_version=resource_version,
                          timeout_seconds=timeout, allow_watch_bookmarks=True)
        with self._lock:
            self._open.add(resp)
        try:
            for line in iter_resp_lines(resp):
                if line:
                    yield json.loads(line)
        except (GeneratorExit, ApiError):
            raise
        except Exception as e:
            raise ConnectionLost(f"watch stream broke: {type(e).__name__}: {str(e)[:200]}") from None
        finally:
            with self._lock:
                self._open.discard(resp)
            try:
                resp.release_conn()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            opened = list(self._open)
        for resp in opened:
            for method in ("shutdown", "close"):
                try:
                    getattr(resp, method, lambda: None)()
                except Exception:
                    pass


@dataclass
class WorkloadSnapshot:
    version: int
    rows: dict[str, WorkloadCounts]
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)


class _Relist(Exception):
    pass


class WorkloadWatcher:
    """Deployments and DaemonSets in `namespace`, kept current by list+watch in threads."""

    def __init__(self, source: AppsSource | Callable[[], AppsSource] | None = None, *,
                 namespace: str = ISTIO_NAMESPACE, kubeconfig: str | None = None,
                 context: str | None = None, watch_timeout: int = 240,
                 backoff: tuple[float, float] = (0.5, 8.0), forbidden_retry: float = 30.0) -> None:
        self._source_arg = source
        self._kubeconfig, self._context = kubeconfig, context
        self.namespace = namespace
        self.watch_timeout, self.backoff, self.forbidden_retry = watch_timeout, backoff, forbidden_retry
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rows: dict[tuple[str, str], WorkloadCounts] = {}  # (kind, name)
        self._version = 0
        self._loop_state: dict[str, str] = {}
        self._messages: dict[str, str] = {}
        self.last_error = ""
        self._threads: list[threading.Thread] = []
        self.source: AppsSource | None = None
        self.relists = 0

    @property
    def version(self) -> int:
        return self._version

    @property
    def started(self) -> bool:
        return bool(self._threads)

    @property
    def state(self) -> str:
        states = set(self._loop_state.values())
        if not states:
            return STOPPED if self._stop.is_set() or not self._threads else LISTING
        for s in (RECONNECTING, LISTING, WATCHING):
            if s in states:
                return s
        return STOPPED

    def snapshot(self) -> WorkloadSnapshot:
        with self._lock:
            # A name is unique per kind; istio's three names do not collide across kinds.
            rows = {name: c for (_kind, name), c in sorted(self._rows.items())}
            return WorkloadSnapshot(self._version, rows, self.state, self.last_error, dict(self._messages))

    def start(self) -> "WorkloadWatcher":
        self._stop.clear()
        t = threading.Thread(target=self._run, name="workload-watcher", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        import time

        self._stop.set()
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                pass
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._loop_state.clear()
            self._version += 1

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set() and self.source is None:
            try:
                arg = self._source_arg
                if arg is None:
                    self.source = KubeAppsSource(self._kubeconfig, self._context)
                elif callable(arg) and not hasattr(arg, "list"):
                    self.source = arg()
                else:
                    self.source = arg
            except Exception as e:
                self._set_error(f"cannot build a client: {type(e).__name__}: {e}", "*", RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            if self._loop_state.pop("*", None) is not None:
                self._version += 1
        for kind in KINDS:
            if self._stop.is_set():
                return
            t = threading.Thread(target=self._loop, args=(kind,), daemon=True, name=f"watch-{kind}")
            self._threads.append(t)
            t.start()

    def _set_state(self, loop: str, state: str) -> None:
        with self._lock:
            if self._loop_state.get(loop) != state:
                self._loop_state[loop] = state
                self._version += 1

    def _set_error(self, error: str, loop: str, state: str) -> None:
        with self._lock:
            self.last_error = error
            self._loop_state[loop] = state
            self._version += 1

    def _set_message(self, kind: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                if self._messages.pop(kind, None) is None:
                    return
            elif self._messages.get(kind) == message:
                return
            else:
                self._messages[kind] = message
            self._version += 1

    def _loop(self, kind: str) -> None:
        delay = self.backoff[0]
        src = self.source
        assert src is not None
        while not self._stop.is_set():
            try:
                self._set_state(kind, LISTING)
                items, rv = src.list(kind, self.namespace)
                self._replace(kind, items)
                self._set_message(kind, None)
                self._set_state(kind, WATCHING)
                delay = self.backoff[0]
                while not self._stop.is_set():
                    rv = self._consume(kind, src.watch(kind, self.namespace, rv, self.watch_timeout), rv)
            except _Relist:
                continue
            except ApiError as e:
                if self._stop.is_set():
                    break
                if e.status == 410:
                    continue
                if e.status in (401, 403):
                    what = "unauthorized" if e.status == 401 else "forbidden"
                    self._replace(kind, [])
                    self._set_message(kind, f"{what}: {kind} in {self.namespace}")
                    self._set_state(kind, WATCHING)
                    self._stop.wait(self.forbidden_retry)
                    continue
                self._set_error(f"{kind}: {e}", kind, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
            except Exception as e:  # ConnectionLost, or a decoding bug: never kill the loop
                if self._stop.is_set():
                    break
                text = str(e) if isinstance(e, ConnectionLost) else f"{type(e).__name__}: {e}"
                self._set_error(f"{kind}: {text}", kind, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            self._loop_state.pop(kind, None)
            self._version += 1

    def _consume(self, kind: str, events: Iterator[dict], rv: str) -> str:
        for ev in events:
            if self._stop.is_set():
                break
            typ, obj = ev.get("type"), ev.get("object") or {}
            if typ == "ERROR":
                code = obj.get("code")
                if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                    raise _Relist()
                raise ApiError(int(code or 0), obj.get("message", ""))
            new_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if new_rv:
                rv = new_rv
            if typ == "BOOKMARK":
                continue
            self._apply(kind, typ, obj)
        return rv

    def _replace(self, kind: str, items: list[dict]) -> None:
        with self._lock:
            self.relists += 1
            new = {(kind, c.name): c for c in (counts_of(kind, o) for o in items)}
            for key in [k for k in self._rows if k[0] == kind and k not in new]:
                del self._rows[key]
            self._rows.update(new)
            self._version += 1

    def _apply(self, kind: str, typ: str, obj: dict) -> None:
        c = counts_of(kind, obj)
        key = (kind, c.name)
        with self._lock:
            if typ == "DELETED":
                if self._rows.pop(key, None) is None:
                    return
            else:
                if self._rows.get(key) == c:
                    return
                self._rows[key] = c
            self._version += 1
