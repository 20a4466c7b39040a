"""A resilient pod watcher: list, then watch from the resourceVersion, in threads.

One loop per scope entry (a namespace, or None for all namespaces) plus one loop for the
namespace labels (the ambient column). Each loop:

  list  -> replace every row of its scope (no ghosts, no duplicates) -> watch from the list's
  resourceVersion -> on a clean end of the watch, watch again from the last resourceVersion;
  on 410 Gone (expired resourceVersion), relist; on a lost connection (API server restarted),
  state "reconnecting", back off, relist; on 403/404, a message for that scope, retried slowly.

Nothing escapes the threads: every failure becomes `state`, `last_error` or a scope message.
Consumers poll `version` on a timer and call `snapshot()` when it changed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

from .rows import PodRow, pod_row

ISTIO_NAMESPACE = "istio-system"
LIST_PAGE = 500  # items per list request (the API server's continue tokens page the rest)


# --- the event source: the only part a unit test replaces --------------------------------

class ApiError(Exception):
    """The API server answered with an error status (403, 404, 410, 500...)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message


class ConnectionLost(Exception):
    """The API server could not be reached, or the stream broke."""


class EventSource(Protocol):
    def list(self, kind: str, namespace: str | None) -> tuple[Iterable[dict], str]: ...
    def watch(self, kind: str, namespace: str | None, resource_version: str,
              timeout: int) -> Iterator[dict]: ...
    def namespace_exists(self, namespace: str) -> bool | None: ...
    def close(self) -> None: ...


class KubeSource:
    """EventSource on the kubernetes client; JSON is decoded here (no model objects).

    kind is "pods" or "namespaces". Watches are raw streams (`_preload_content=False`) whose
    response is kept so `close()` can interrupt a blocked read from another thread.
    """

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None, connect_timeout: float = 5.0) -> None:
        from kubernetes import client, config  # lazy: keeps start-up fast

        if api_client is None:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(api_client)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._open: set = set()

    def _call(self, kind: str, namespace: str | None, read_timeout: float, **kw):
        from kubernetes.client.exceptions import ApiException

        kw.update(_preload_content=False, _request_timeout=(self.connect_timeout, read_timeout))
        try:
            if kind == "namespaces":
                return self.core.list_namespace(**kw)
            if namespace is None:
                return self.core.list_pod_for_all_namespaces(**kw)
            return self.core.list_namespaced_pod(namespace, **kw)
        except ApiException as e:
            raise ApiError(e.status or 0, _status_message(e.body) or str(e.reason)) from None
        except Exception as e:  # urllib3 MaxRetryError, ProtocolError, timeouts, OSError
            raise ConnectionLost(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None

    def _page(self, kind: str, namespace: str | None, token: str | None) -> dict:
        kw = {"limit": LIST_PAGE}
        if token:
            kw["_continue"] = token
        resp = self._call(kind, namespace, 60, **kw)
        try:
            return json.loads(resp.data)
        except Exception as e:
            raise ConnectionLost(f"bad list response: {e}") from None

    def list(self, kind: str, namespace: str | None) -> tuple[Iterable[dict], str]:
        """Items and the list's resourceVersion. Read in pages of LIST_PAGE: at 20,000 pods one
        response is ~60 MB of JSON, decoded all at once; pages keep the peak to one page.
        The first page is read here (its resourceVersion holds for every page); the rest as
        the items are consumed (a 410 there means the continue token expired: relist)."""
        first = self._page(kind, namespace, None)
        rv = (first.get("metadata") or {}).get("resourceVersion", "")

        def items() -> Iterator[dict]:
            page = first
            while True:
                yield from page.get("items") or []
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    return
                page = self._page(kind, namespace, token)
        return items(), rv

    def watch(self, kind: str, namespace: str | None, resource_version: str,
              timeout: int) -> Iterator[dict]:
        from kubernetes.watch.watch import iter_resp_lines

        resp = self._call(kind, namespace, timeout + 15, watch=True,
                          resource_version=resource_version, timeout_seconds=timeout,
                          allow_watch_bookmarks=True)
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

    def namespace_exists(self, namespace: str) -> bool | None:
        """True/False, or None when this user may not read namespaces."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespace(namespace, _request_timeout=(self.connect_timeout, 10))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status in (401, 403):
                return None
            raise ApiError(e.status or 0, _status_message(e.body)) from None
        except Exception as e:
            raise ConnectionLost(f"{type(e).__name__}: {str(e)[:200]}") from None

    def close(self) -> None:
        with self._lock:
            opened = list(self._open)
        for resp in opened:
            try:
                resp.shutdown() if hasattr(resp, "shutdown") else None
            except Exception:
                pass
            try:
                resp.close()
            except Exception:
                pass


def _status_message(body) -> str:
    try:
        return json.loads(body).get("message", "") if body else ""
    except Exception:
        return str(body)[:200] if body else ""


# --- the watcher ---------------------------------------------------------------------------

LISTING, WATCHING, RECONNECTING, STOPPED = "listing", "watching", "reconnecting", "stopped"


@dataclass
class Snapshot:
    version: int
    rows: dict[tuple[str, str], PodRow]
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)  # scope -> problem (forbidden...)
    scope: tuple[str, ...] | None = None                      # None: all namespaces


class PodWatcher:
    """Pods in `namespaces` (a set; None for all namespaces) kept current by list+watch."""

    def __init__(self, source: EventSource | Callable[[], EventSource] | None = None, *,
                 namespaces: Iterable[str] | None = None, kubeconfig: str | None = None,
                 context: str | None = None, watch_timeout: int = 240,
                 backoff: tuple[float, float] = (0.5, 8.0), missing_retry: float = 5.0,
                 watch_namespace_labels: bool = True) -> None:
        self._source_arg = source
        self._kubeconfig, self._context = kubeconfig, context
        self.scope: tuple[str, ...] | None = None if namespaces is None else tuple(sorted(set(namespaces)))
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.missing_retry = missing_retry
        self.watch_namespace_labels = watch_namespace_labels
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rows: dict[tuple[str, str], PodRow] = {}
        self._ns_labels: dict[str, dict] = {}
        self._ns_gen = 0  # bumped when namespace labels change (rows built outside the lock)
        self._version = 0
        self._loop_state: dict[str, str] = {}
        self._messages: dict[str, str] = {}
        self.last_error = ""
        self._threads: list[threading.Thread] = []
        self.source: EventSource | None = None
        self.relists = 0  # how many times a scope was (re)listed: tests and the status line

    # -- consumer side --
    @property
    def version(self) -> int:
        return self._version

    @property
    def state(self) -> str:
        states = set(self._loop_state.values())
        if not states:
            return STOPPED if self._stop.is_set() or not self._threads else LISTING
        for s in (RECONNECTING, LISTING, WATCHING):
            if s in states:
                return s
        return STOPPED

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._version, dict(self._rows), self.state, self.last_error,
                            dict(self._messages), self.scope)

    # -- lifecycle --
    def start(self) -> "PodWatcher":
        self._stop.clear()
        t = threading.Thread(target=self._run, name="pod-watcher", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        src = self.source
        if src is not None:
            try:
                src.close()
            except Exception:
                pass
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._loop_state.clear()
            self._version += 1

    def _run(self) -> None:
        """Make the source (may fail: no kubeconfig...), then one thread per loop."""
        delay = self.backoff[0]
        while not self._stop.is_set() and self.source is None:
            try:
                arg = self._source_arg
                if arg is None:
                    self.source = KubeSource(self._kubeconfig, self._context)
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
        loops = [("pods", ns) for ns in (self.scope if self.scope is not None else (None,))]
        if self.watch_namespace_labels:
            loops.append(("namespaces", None))
        for kind, ns in loops:
            if self._stop.is_set():
                return
            t = threading.Thread(target=self._loop, args=(kind, ns), daemon=True,
                                 name=f"watch-{kind}-{ns or 'all'}")
            self._threads.append(t)
            t.start()

    # -- state helpers --
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

    def _set_message(self, scope: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                if self._messages.pop(scope, None) is not None:
                    self._version += 1
            elif self._messages.get(scope) != message:
                self._messages[scope] = message
                self._version += 1

    # -- the list/watch loop --
    def _loop(self, kind: str, namespace: str | None) -> None:
        loop = f"{kind}/{namespace or '*'}"
        scope = namespace or "*"
        delay = self.backoff[0]
        src = self.source
        assert src is not None
        while not self._stop.is_set():
            try:
                self._set_state(loop, LISTING)
                if kind == "pods" and namespace is not None:
                    exists = src.namespace_exists(namespace)
                    if exists is False:
                        self._replace(kind, namespace, [])
                        self._set_message(scope, f"namespace {namespace} not found")
                        self._set_state(loop, WATCHING)
                        self._stop.wait(self.missing_retry)
                        continue
                items, rv = src.list(kind, namespace)
                self._replace(kind, namespace, items)
                if kind == "pods":
                    self._set_message(scope, None)
                self._set_state(loop, WATCHING)
                delay = self.backoff[0]
                # Watch; on a clean end (server timeout) watch again from the last rv.
                while not self._stop.is_set():
                    rv = self._consume(kind, src.watch(kind, namespace, rv, self.watch_timeout), rv)
            except _Relist:
                continue  # 410 Gone: list again now, replacing the whole scope
            except ApiError as e:
                if self._stop.is_set():
                    break
                if e.status == 410:
                    continue
                if e.status in (401, 403, 404):
                    what = {401: "unauthorized", 403: "forbidden", 404: "not found"}[e.status]
                    where = f"namespace {namespace}" if namespace else "all namespaces"
                    if kind == "namespaces":
                        # The ambient column then falls back to pod labels; not fatal.
                        self._set_message("namespace labels", f"namespace labels: {what} ({e.message})")
                        self._set_state(loop, STOPPED)
                        return
                    self._replace(kind, namespace, [])
                    self._set_message(scope, f"{what}: pods in {where} ({e.message})".rstrip(" ()"))
                    self._set_state(loop, WATCHING)
                    self._stop.wait(self.missing_retry * 6)
                    continue
                self._set_error(f"{loop}: {e}", loop, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
            except ConnectionLost as e:
                if self._stop.is_set():
                    break
                self._set_error(f"{loop}: {e}", loop, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
            except Exception as e:  # a bug in decoding must not kill the pane silently
                if self._stop.is_set():
                    break
                self._set_error(f"{loop}: {type(e).__name__}: {e}", loop, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            self._loop_state.pop(loop, None)
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

    # -- merging (under the lock; version bumped once per change) --
    def _replace(self, kind: str, namespace: str | None, items: Iterable[dict]) -> None:
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

    def _apply(self, kind: str, typ: str, obj: dict) -> None:
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
                    if self._rows.get(key) == row:
                        return
                    self._rows[key] = row
            self._version += 1

    def _reambient(self, namespace: str | None) -> None:
        for key, row in list(self._rows.items()):
            if namespace is None or key[0] == namespace:
                self._rows[key] = row.with_ambient(self._ns_labels.get(key[0]))


class _Relist(Exception):
    pass


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
