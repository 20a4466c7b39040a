"""PodWatcher merge, 410 relist, reconnect, forbidden/missing namespaces.

Only the event stream is replaced: FakeEventSource stands in for the API server's list and
watch responses (KubeSource in production). The watcher's threads, merging and state are real.
"""

from __future__ import annotations

import queue
import time

from ambient_tui.watch.pods import (RECONNECTING, WATCHING, ApiError, ConnectionLost,
                                    PodWatcher)

AMB = {"istio.io/dataplane-mode": "ambient"}


def pod(name, ns="demo", rv="1", phase="Running", labels=None):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels or {}},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "ready": phase == "Running", "restartCount": 0,
                 "state": {"running": {}} if phase == "Running" else {"waiting": {"reason": "ContainerCreating"}}}]}}


class FakeEventSource:
    """A fake of the API's list/watch: `pods` is the truth a list returns; tests push events
    (or exceptions) into per-scope queues that the watch stream yields from."""

    END = object()

    def __init__(self, pods=(), namespaces=None, forbidden=(), missing=()):
        self.pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        self.namespaces = namespaces or {"demo": AMB, "istio-system": {}}
        self.forbidden, self.missing = set(forbidden), set(missing)
        self.streams: dict[tuple[str, str | None], queue.Queue] = {}
        self.lists: list[tuple[str, str | None]] = []
        self.watch_rvs: list[str] = []
        self.list_error: Exception | None = None
        self.rv = 100

    def q(self, kind, ns):
        return self.streams.setdefault((kind, ns), queue.Queue())

    def push(self, kind, ns, item):
        self.q(kind, ns).put(item)

    def list(self, kind, namespace):
        if self.list_error is not None:
            raise self.list_error
        self.lists.append((kind, namespace))
        if namespace in self.forbidden:
            raise ApiError(403, f'pods is forbidden: cannot list pods in "{namespace}"')
        self.rv += 1
        if kind == "namespaces":
            return [{"metadata": {"name": n, "labels": l}} for n, l in self.namespaces.items()], str(self.rv)
        return [p for (ns, _), p in self.pods.items() if namespace in (None, ns)], str(self.rv)

    def watch(self, kind, namespace, resource_version, timeout):
        self.watch_rvs.append(resource_version)
        q = self.q(kind, namespace)
        while True:
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                if self.closed:
                    return
                continue
            if item is self.END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    closed = False

    def namespace_exists(self, namespace):
        return namespace not in self.missing

    def close(self):
        self.closed = True


def wait_for(cond, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def make(src, namespaces=("demo",), **kw):
    return PodWatcher(src, namespaces=namespaces, backoff=(0.01, 0.05), missing_retry=0.05, **kw).start()


def test_list_then_events_merge_and_version():
    src = FakeEventSource([pod("a"), pod("b", phase="Pending")])
    w = make(src)
    try:
        wait_for(lambda: w.state == WATCHING and len(w.snapshot().rows) == 2)
        snap = w.snapshot()
        assert snap.rows[("demo", "a")].status == "Running"
        assert snap.rows[("demo", "b")].status == "ContainerCreating"
        wait_for(lambda: w.snapshot().rows[("demo", "a")].ambient == "enrolled")
        v = w.version
        src.push("pods", "demo", {"type": "MODIFIED", "object": pod("b", rv="5")})
        src.push("pods", "demo", {"type": "ADDED", "object": pod("c", rv="6")})
        src.push("pods", "demo", {"type": "DELETED", "object": pod("a", rv="7")})
        wait_for(lambda: set(w.snapshot().rows) == {("demo", "b"), ("demo", "c")})
        assert w.snapshot().rows[("demo", "b")].status == "Running"
        assert w.version > v
        # The snapshot is a copy: later events don't change it.
        snap = w.snapshot()
        src.push("pods", "demo", {"type": "DELETED", "object": pod("b", rv="8")})
        wait_for(lambda: ("demo", "b") not in w.snapshot().rows)
        assert ("demo", "b") in snap.rows
        # A watch that ends cleanly resumes from the last resourceVersion, without a relist.
        lists = len(src.lists)
        src.push("pods", "demo", FakeEventSource.END)
        wait_for(lambda: src.watch_rvs.count("8") >= 1)
        assert len(src.lists) == lists
    finally:
        w.stop()
    assert w.state == "stopped"


def test_410_gone_relists_and_replaces_without_ghosts():
    src = FakeEventSource([pod("a"), pod("b")])
    w = make(src)
    try:
        wait_for(lambda: len(w.snapshot().rows) == 2)
        # While the watch was away, a was deleted and c created; the stream then expires.
        del src.pods[("demo", "a")]
        src.pods[("demo", "c")] = pod("c")
        src.push("pods", "demo", {"type": "ERROR", "object": {
            "kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}})
        wait_for(lambda: set(w.snapshot().rows) == {("demo", "b"), ("demo", "c")})
        assert src.lists.count(("pods", "demo")) == 2
        # 410 as an HTTP error when the watch starts: same thing.
        del src.pods[("demo", "b")]
        src.push("pods", "demo", ApiError(410, "Gone"))
        wait_for(lambda: set(w.snapshot().rows) == {("demo", "c")})
        assert w.state == WATCHING
    finally:
        w.stop()


def test_connection_lost_reconnecting_then_relist():
    src = FakeEventSource([pod("a"), pod("b")])
    w = make(src)
    try:
        wait_for(lambda: len(w.snapshot().rows) == 2)
        src.list_error = ConnectionLost("connection refused")
        src.push("pods", "demo", ConnectionLost("stream broke"))
        wait_for(lambda: w.state == RECONNECTING)
        assert "connection refused" in w.snapshot().last_error or "stream broke" in w.snapshot().last_error
        # Rows are kept while reconnecting (last known), then replaced by the relist.
        assert len(w.snapshot().rows) == 2
        del src.pods[("demo", "a")]
        src.list_error = None
        wait_for(lambda: w.state == WATCHING and set(w.snapshot().rows) == {("demo", "b")})
    finally:
        w.stop()


def test_forbidden_and_missing_namespaces_are_messages():
    src = FakeEventSource([pod("a"), pod("x", ns="secret")], forbidden={"secret"}, missing={"ghost"})
    w = make(src, namespaces=("demo", "secret", "ghost"))
    try:
        wait_for(lambda: {"secret", "ghost"} <= set(w.snapshot().messages))
        snap = w.snapshot()
        assert "forbidden" in snap.messages["secret"]
        assert snap.messages["ghost"] == "namespace ghost not found"
        assert set(snap.rows) == {("demo", "a")}
        # The namespace appears later: the message goes, its pods come.
        src.missing.clear()
        src.pods[("ghost", "g")] = pod("g", ns="ghost")
        wait_for(lambda: ("ghost", "g") in w.snapshot().rows and "ghost" not in w.snapshot().messages)
    finally:
        w.stop()


def test_all_namespaces_scope_and_namespace_label_change():
    src = FakeEventSource([pod("a"), pod("i", ns="istio-system"),
                           pod("o", labels={"istio.io/dataplane-mode": "none"})])
    w = make(src, namespaces=None)
    try:
        wait_for(lambda: len(w.snapshot().rows) == 3 and w.snapshot().rows[("demo", "a")].ambient == "enrolled")
        rows = w.snapshot().rows
        assert rows[("istio-system", "i")].ambient == "none"
        assert rows[("demo", "o")].ambient == "opted-out"
        src.push("namespaces", None, {"type": "MODIFIED", "object": {
            "metadata": {"name": "istio-system", "resourceVersion": "9", "labels": AMB}}})
        wait_for(lambda: w.snapshot().rows[("istio-system", "i")].ambient == "enrolled")
    finally:
        w.stop()


def test_source_that_cannot_be_built_is_a_state_not_an_exception():
    def boom():
        raise RuntimeError("no kubeconfig at /nope")
    w = PodWatcher(boom, namespaces=("demo",), backoff=(0.01, 0.02)).start()
    try:
        wait_for(lambda: w.state == RECONNECTING and "no kubeconfig" in w.last_error)
    finally:
        w.stop()
