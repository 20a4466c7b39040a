"""What the API watchers (pods, workloads, helm releases) share: list+watch over raw streams.

RawSource: list/watch calls on the kubernetes client returning decoded JSON (no model
objects), API errors mapped to ApiError and everything else to ConnectionLost, watch
responses kept so `close()` can interrupt a blocked read from another thread. A subclass
only says which list call serves a kind in a namespace (and its selectors).

ListWatcher: the threads, states and messages, and one loop per `Loop`:

  list  -> replace every item of the loop's scope (no ghosts, no duplicates) -> watch from the
  list's resourceVersion -> on a clean end of the watch, watch again from the last
  resourceVersion; on 410 Gone (expired resourceVersion), relist; on a lost connection (API
  server restarted), state "reconnecting", back off, relist; on 401/403/404, a message for
  that scope, retried slowly.

A subclass says which loops to run and how listed items and events change its rows.
Nothing escapes the threads: every failure becomes `state`, `last_error` or a message.
Consumers poll `version` on a timer and call `snapshot()` when it changed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

LISTING, WATCHING, RECONNECTING, STOPPED = "listing", "watching", "reconnecting", "stopped"
DENIED = {401: "unauthorized", 403: "forbidden", 404: "not found"}


class ApiError(Exception):
    """The API server answered with an error status (403, 404, 410, 500...)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message


class ConnectionLost(Exception):
    """The API server could not be reached, or the stream broke."""


class Relist(Exception):
    """The watch's resourceVersion expired (410 Gone in the stream): list again."""


def status_message(body) -> str:
    """The `message` of an API error body (a Status object), best effort."""
    try:
        return json.loads(body).get("message", "") if body else ""
    except Exception:
        return str(body)[:200] if body else ""


def _first_line(e: Exception) -> str:
    text = str(e)
    return text.splitlines()[0][:200] if text else ""


# --- the source ---------------------------------------------------------------------------

class RawSource:
    """List/watch on the kubernetes client as raw JSON; subclasses implement `_request`."""

    page_size: int | None = None  # items per list request; None: one response
    clock = None  # a ServerClock (set by the watcher): learns the skew from Date headers

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None, connect_timeout: float = 5.0) -> None:
        from kubernetes import client  # lazy: keeps start-up fast

        if api_client is None:
            from ambient_tui.cluster.client import new_api_client  # exec plugins run captured
            api_client = new_api_client(kubeconfig, context)
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)  # namespaces are read through it
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._open: set = set()

    def _request(self, kind: str, namespace: str | None, **kw):
        """Call the list endpoint for `kind` in `namespace` (None: all namespaces) with kw."""
        raise NotImplementedError

    def _call(self, kind: str, namespace: str | None, read_timeout: float, **kw):
        from kubernetes.client.exceptions import ApiException

        kw.update(_preload_content=False, _request_timeout=(self.connect_timeout, read_timeout))
        try:
            return self._request(kind, namespace, **kw)
        except ApiException as e:
            raise ApiError(e.status or 0, status_message(e.body) or str(e.reason)) from None
        except Exception as e:  # urllib3 MaxRetryError, ProtocolError, timeouts, OSError
            raise ConnectionLost(f"{type(e).__name__}: {_first_line(e)}") from None

    def _page(self, kind: str, namespace: str | None, token: str | None) -> dict:
        kw: dict = {} if self.page_size is None else {"limit": self.page_size}
        if token:
            kw["_continue"] = token
        resp = self._call(kind, namespace, 60, **kw)
        self._saw_date(resp)
        try:
            return json.loads(resp.data)
        except Exception as e:
            raise ConnectionLost(f"bad list response: {e}") from None

    def list(self, kind: str, namespace: str | None) -> tuple[Iterable[dict], str]:
        """Items and the list's resourceVersion. With `page_size`, the first page is read here
        (its resourceVersion holds for every page) and the rest as the items are consumed (a
        410 there means the continue token expired: relist). Pages keep the peak memory to
        one page: at 20,000 pods one response is ~60 MB of JSON, decoded all at once."""
        first = self._page(kind, namespace, None)
        rv = (first.get("metadata") or {}).get("resourceVersion", "")
        if not (first.get("metadata") or {}).get("continue"):
            return first.get("items") or [], rv

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
        self._saw_date(resp)
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

    def _saw_date(self, resp) -> None:
        if self.clock is not None:
            try:
                self.clock.saw_date((getattr(resp, "headers", None) or {}).get("Date"))
            except Exception:  # a clock hint, never a reason to fail a list
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
            raise ApiError(e.status or 0, status_message(e.body)) from None
        except Exception as e:
            raise ConnectionLost(f"{type(e).__name__}: {str(e)[:200]}") from None

    def close(self) -> None:
        """Interrupt every open watch (called from another thread by the watcher's stop)."""
        with self._lock:
            opened = list(self._open)
        for resp in opened:
            # shutdown() (urllib3 2.3+) wakes a read blocked in another thread; close() frees it.
            for method in ("shutdown", "close"):
                try:
                    getattr(resp, method, lambda: None)()
                except Exception:
                    pass


# --- the watcher ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Loop:
    """One list+watch loop: what it lists and the names its state and messages go under."""

    key: str                    # the loop's entry in the state map
    kind: str
    namespace: str | None       # None: all namespaces
    scope: str | None           # message key (cleared by a good list); None: no scope message
    label: str = ""             # error prefix in last_error (default: key)
    thread: str = ""            # thread name (default: watch-KEY)
    check_exists: bool = False  # a missing namespace is a message, not an error


RETRY, END = "retry", "end"  # what a denied loop does next (see _on_denied)


class ListWatcher:
    """Lifecycle, state and the list+watch loop; subclasses say what to watch and keep."""

    thread_name = "list-watcher"
    denied_statuses: tuple[int, ...] = (401, 403, 404)

    def __init__(self, source=None, *, kubeconfig: str | None = None,
                 context: str | None = None, watch_timeout: int = 240,
                 backoff: tuple[float, float] = (0.5, 8.0), missing_retry: float = 5.0) -> None:
        self._source_arg = source
        self.kubeconfig, self.context = kubeconfig, context
        self.watch_timeout, self.backoff, self.missing_retry = watch_timeout, backoff, missing_retry
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._version = 0
        self._loop_state: dict[str, str] = {}
        self._messages: dict[str, str] = {}
        self.last_error = ""
        self._threads: list[threading.Thread] = []
        self.source = None
        self.relists = 0  # how many times a scope was (re)listed: tests and the status line
        from .server_clock import ServerClock

        self.clock = ServerClock()  # the server's "now", for ages

    # -- what subclasses provide --
    def _default_source(self):
        raise NotImplementedError

    def _loops(self) -> list[Loop]:
        raise NotImplementedError

    def _list(self, src, loop: Loop) -> tuple[Iterable[dict], str]:
        return src.list(loop.kind, loop.namespace)

    def _watch(self, src, loop: Loop, rv: str) -> Iterator[dict]:
        return src.watch(loop.kind, loop.namespace, rv, self.watch_timeout)

    def _replace(self, loop: Loop, items: Iterable[dict]) -> None:
        raise NotImplementedError

    def _apply(self, loop: Loop, typ: str, obj: dict) -> None:
        raise NotImplementedError

    def _denied_message(self, loop: Loop, what: str, e: ApiError) -> str:
        raise NotImplementedError

    @property
    def denied_retry(self) -> float:
        """Seconds before a denied scope is listed again (permissions change rarely)."""
        return self.missing_retry * 6

    # -- consumer side --
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

    # -- lifecycle --
    def start(self):
        self._stop.clear()
        t = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        src = self.source
        if src is not None:
            try:
                src.close()  # interrupts blocked watch reads, so the joins below return
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
                    self.source = self._default_source()
                elif callable(arg) and not hasattr(arg, "list"):  # a factory, not a source
                    self.source = arg()
                else:
                    self.source = arg
                if isinstance(self.source, RawSource):
                    self.source.clock = self.clock
            except Exception as e:
                self._set_error(f"cannot build a client: {type(e).__name__}: {e}", "*", RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            if self._loop_state.pop("*", None) is not None:
                self._version += 1
        for loop in self._loops():
            if self._stop.is_set():
                return
            t = threading.Thread(target=self._loop, args=(loop,), daemon=True,
                                 name=loop.thread or f"watch-{loop.key}")
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
    def _loop(self, loop: Loop) -> None:
        delay = self.backoff[0]
        src = self.source
        assert src is not None
        while not self._stop.is_set():
            try:
                self._set_state(loop.key, LISTING)
                if loop.check_exists and loop.namespace is not None \
                        and src.namespace_exists(loop.namespace) is False:
                    self._replace(loop, [])
                    self._set_message(loop.scope or loop.key, f"namespace {loop.namespace} not found")
                    self._set_state(loop.key, WATCHING)
                    self._stop.wait(self.missing_retry)
                    continue
                items, rv = self._list(src, loop)
                self._replace(loop, items)
                if loop.scope is not None:
                    self._set_message(loop.scope, None)
                self._set_state(loop.key, WATCHING)
                delay = self.backoff[0]
                # Watch; on a clean end (server timeout) watch again from the last rv.
                while not self._stop.is_set():
                    rv = self._consume(loop, self._watch(src, loop, rv), rv)
            except Relist:
                continue  # 410 Gone: list again now, replacing the whole scope
            except ApiError as e:
                if self._stop.is_set():
                    break
                if e.status == 410:
                    continue
                then = self._on_denied(loop, e) if e.status in self.denied_statuses else None
                if then == END:
                    return
                if then == RETRY:
                    continue
                self._set_error(f"{loop.label or loop.key}: {e}", loop.key, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
            except Exception as e:  # ConnectionLost, or a decoding bug: never kill the pane silently
                if self._stop.is_set():
                    break
                text = str(e) if isinstance(e, ConnectionLost) else f"{type(e).__name__}: {e}"
                self._set_error(f"{loop.label or loop.key}: {text}", loop.key, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            self._loop_state.pop(loop.key, None)
            self._version += 1

    def _on_denied(self, loop: Loop, e: ApiError) -> str | None:
        """A denied scope: empty it, say why, and list again slowly (RETRY). A subclass may
        return END (the loop stops) or None (treated as an error: back off, retry)."""
        self._replace(loop, [])
        self._set_message(loop.scope or loop.key, self._denied_message(loop, DENIED[e.status], e))
        self._set_state(loop.key, WATCHING)
        self._stop.wait(self.denied_retry)
        return RETRY

    def _consume(self, loop: Loop, events: Iterator[dict], rv: str) -> str:
        for ev in events:
            if self._stop.is_set():
                break
            typ, obj = ev.get("type"), ev.get("object") or {}
            if typ == "ERROR":
                code = obj.get("code")
                if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                    raise Relist()
                raise ApiError(int(code or 0), obj.get("message", ""))
            new_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if new_rv:
                rv = new_rv
            if typ != "BOOKMARK":
                self._apply(loop, typ, obj)
        return rv


def where(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "all namespaces"

