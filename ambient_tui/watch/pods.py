"""A resilient pod watcher: list, then watch from the resourceVersion, in threads.

One loop per scope entry (a namespace, or None for all namespaces) plus one loop for the
namespace labels (the ambient column). The loop itself (relist on 410 Gone, "reconnecting"
with back-off on a lost connection, a scope message on 403/404) is ListWatcher's
(ambient_tui.watch.listwatch); this module says what a pod row is and how rows are merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

# ApiError...STOPPED are re-exported: screens and tests import them from here.
from .listwatch import (DENIED, END, LISTING, RECONNECTING, STOPPED, WATCHING,  # noqa: F401
                        ApiError, ConnectionLost, ListWatcher, Loop, RawSource, where)
from .rows import PodRow, pod_row

ISTIO_NAMESPACE = "istio-system"
LIST_PAGE = 500  # items per list request (the API server's continue tokens page the rest)


# --- the event source: the only part a unit test replaces --------------------------------

class EventSource(Protocol):
    def list(self, kind: str, namespace: str | None) -> tuple[Iterable[dict], str]: ...
    def watch(self, kind: str, namespace: str | None, resource_version: str,
              timeout: int) -> Iterator[dict]: ...
    def namespace_exists(self, namespace: str) -> bool | None: ...
    def close(self) -> None: ...


class KubeSource(RawSource):
    """EventSource on the kubernetes client; kind is "pods" or "namespaces".

    Lists are paged (LIST_PAGE): at 20,000 pods one response is ~60 MB of JSON.
    """

    page_size = LIST_PAGE

    def _request(self, kind: str, namespace: str | None, **kw):
        if kind == "namespaces":
            return self.core.list_namespace(**kw)
        if namespace is None:
            return self.core.list_pod_for_all_namespaces(**kw)
        return self.core.list_namespaced_pod(namespace, **kw)


# --- the watcher ---------------------------------------------------------------------------

@dataclass
class Snapshot:
    version: int
    rows: dict[tuple[str, str], PodRow]
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)  # scope -> problem (forbidden...)
    scope: tuple[str, ...] | None = None                      # None: all namespaces


class PodWatcher(ListWatcher):
    """Pods in `namespaces` (a set; None for all namespaces) kept current by list+watch."""

    thread_name = "pod-watcher"

    def __init__(self, source: EventSource | Callable[[], EventSource] | None = None, *,
                 namespaces: Iterable[str] | None = None, kubeconfig: str | None = None,
                 context: str | None = None, watch_timeout: int = 240,
                 backoff: tuple[float, float] = (0.5, 8.0), missing_retry: float = 5.0,
                 watch_namespace_labels: bool = True) -> None:
        super().__init__(source, kubeconfig=kubeconfig, context=context,
                         watch_timeout=watch_timeout, backoff=backoff, missing_retry=missing_retry)
        self.scope: tuple[str, ...] | None = None if namespaces is None else tuple(sorted(set(namespaces)))
        self.watch_namespace_labels = watch_namespace_labels
        self._rows: dict[tuple[str, str], PodRow] = {}
        self._ns_labels: dict[str, dict] = {}
        self._ns_gen = 0  # bumped when namespace labels change (rows built outside the lock)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._version, dict(self._rows), self.state, self.last_error,
                            dict(self._messages), self.scope)

    def _default_source(self) -> KubeSource:
        return KubeSource(self.kubeconfig, self.context)

    def _loops(self) -> list[Loop]:
        loops = [Loop(key=f"pods/{ns or '*'}", kind="pods", namespace=ns, scope=ns or "*",
                      thread=f"watch-pods-{ns or 'all'}", check_exists=True)
                 for ns in (self.scope if self.scope is not None else (None,))]
        if self.watch_namespace_labels:
            # No scope message: the labels are an extra for the ambient column.
            loops.append(Loop(key="namespaces/*", kind="namespaces", namespace=None, scope=None,
                              thread="watch-namespaces-all"))
        return loops

    def _on_denied(self, loop: Loop, e: ApiError) -> str | None:
        if loop.kind == "namespaces":
            # The ambient column then falls back to pod labels; not fatal.
            self._set_message("namespace labels",
                              f"namespace labels: {DENIED[e.status]} ({e.message})")
            self._set_state(loop.key, STOPPED)
            return END
        return super()._on_denied(loop, e)

    def _denied_message(self, loop: Loop, what: str, e: ApiError) -> str:
        return f"{what}: pods in {where(loop.namespace)} ({e.message})".rstrip(" ()")

    # -- merging (under the lock; version bumped once per change) --
    def _replace(self, loop: Loop, items: Iterable[dict]) -> None:
        kind, namespace = loop.kind, loop.namespace
        # Rows are built before taking the lock (20,000 pods take a while, and `items` may
        # still be reading pages from the API server): the pane's snapshot() never waits on it.
        if kind == "namespaces":
            labels = {(o.get("metadata") or {}).get("name", ""):
                      dict((o.get("metadata") or {}).get("labels") or {}) for o in items}
            with self._lock:
                self.relists += 1
                self._ns_labels = labels
                self._ns_gen += 1
                self._reambient(None)
                self._version += 1
            return
        gen = self._ns_gen
        ns_labels = self._ns_labels
        new = {}
        for o in items:
            row = pod_row(o, ns_labels.get((o.get("metadata") or {}).get("namespace", "")))
            new[row.key] = row
        with self._lock:
            self.relists += 1
            if gen != self._ns_gen:  # namespace labels changed meanwhile: redo the ambient column
                new = {k: r.with_ambient(self._ns_labels.get(k[0])) for k, r in new.items()}
            if namespace is None:
                self._rows = new
            else:
                for key in [k for k in self._rows if k[0] == namespace and k not in new]:
                    del self._rows[key]
                self._rows.update(new)
            self._version += 1

    def _apply(self, loop: Loop, typ: str, obj: dict) -> None:
        kind = loop.kind
        meta = obj.get("metadata") or {}
        with self._lock:
            if kind == "namespaces":
                name = meta.get("name", "")
                if typ == "DELETED":
                    self._ns_labels.pop(name, None)
                else:
                    labels = dict(meta.get("labels") or {})
                    if self._ns_labels.get(name) == labels:
                        return  # namespace status/annotation changes: nothing for the pane
                    self._ns_labels[name] = labels
                self._ns_gen += 1
                self._reambient(name)
            else:
                key = (meta.get("namespace", ""), meta.get("name", ""))
                if typ == "DELETED":
                    if self._rows.pop(key, None) is None:
                        return
                else:
                    row = pod_row(obj, self._ns_labels.get(key[0]))
                    if typ == "ADDED":  # just created: the server's clock has reached its timestamp
                        self.clock.saw_created(row.created)
                    if self._rows.get(key) == row:
                        return
                    self._rows[key] = row
            self._version += 1

    def _reambient(self, namespace: str | None) -> None:
        for key, row in list(self._rows.items()):
            if namespace is None or key[0] == namespace:
                self._rows[key] = row.with_ambient(self._ns_labels.get(key[0]))


def mesh_namespaces(source: KubeSource | None = None, kubeconfig: str | None = None,
                    context: str | None = None) -> set[str]:
    """istio-system plus the namespaces labelled istio.io/dataplane-mode=ambient (best effort)."""
    out = {ISTIO_NAMESPACE}
    try:
        src = source or KubeSource(kubeconfig, context)
        resp = src.core.list_namespace(label_selector="istio.io/dataplane-mode=ambient",
                                       _request_timeout=(5, 15))
        out |= {n.metadata.name for n in resp.items}
    except Exception:
        pass
    return out
