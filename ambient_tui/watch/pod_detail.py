"""One pod in detail: describe text, YAML, and logs (followed, bounded).

Everything here blocks (the kubernetes client is synchronous), so callers run it in thread
workers; every request has a timeout. API failures become DetailError with a message a
person can act on: a 403 names the verb and resource that are missing, a 404 says whether the
pod or its namespace is gone. Text returned is plain; the screen shows it without markup.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Callable, Iterator, Protocol

import yaml

from .rows import format_age, parse_time, pod_status

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# A followed log may be quiet for hours; the client rejects "no read timeout", so use a long
# one. stop() closes the response from another thread, so this never delays leaving.
FOLLOW_READ_TIMEOUT = 24 * 3600.0
MAX_LOG_LINES = 2000
EVENTS_SHOWN = 20


class DetailError(Exception):
    """A request for a pod's details failed; `str()` is the message to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def forbidden_message(verb: str, resource: str, namespace: str, server: str = "") -> str:
    need = f"forbidden: needs permission to {verb} {resource} in namespace {namespace}"
    return f"{need} ({server})" if server else need


def _server_message(body) -> str:
    try:
        return json.loads(body).get("message", "") if body else ""
    except Exception:
        return str(body)[:300] if body else ""


# --- the source: the kubernetes client, or a named fake in tests ---------------------------

class LogStream(Protocol):
    def __iter__(self) -> Iterator[str]: ...
    def close(self) -> None: ...


class DetailSource(Protocol):
    def get_pod(self, namespace: str, name: str) -> dict: ...
    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[dict]: ...
    def open_logs(self, namespace: str, name: str, container: str | None, previous: bool,
                  tail_lines: int, follow: bool) -> LogStream: ...
    def pod_exists(self, namespace: str, name: str) -> bool | None: ...


class _RespLines:
    """Lines of a streamed log response; close() interrupts a blocked read (another thread)."""

    def __init__(self, resp) -> None:
        self.resp = resp

    def __iter__(self) -> Iterator[str]:
        buf = b""
        try:
            # amt=None: one chunk as it arrives (the API server streams logs chunked)
            for chunk in self.resp.stream(amt=None, decode_content=False):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    yield ln.decode("utf-8", "replace").rstrip("\r")
            if buf:
                yield buf.decode("utf-8", "replace").rstrip("\r")
        except Exception as e:
            raise DetailError(0, f"log stream broke: {type(e).__name__}: {str(e)[:200]}") from None
        finally:
            self.close()

    def close(self) -> None:
        for fn in ("close", "release_conn"):
            try:
                getattr(self.resp, fn)()
            except Exception:
                pass


class KubeDetailSource:
    """DetailSource on the kubernetes client; JSON is decoded here (no model objects)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None) -> None:
        from kubernetes import client  # lazy: keeps start-up fast

        if api_client is None:
            from ambient_tui.cluster.client import new_api_client  # exec plugins run captured
            api_client = new_api_client(kubeconfig, context)
        self.core = client.CoreV1Api(api_client)

    def _fail(self, e: Exception, verb: str, resource: str, namespace: str, name: str) -> DetailError:
        from kubernetes.client.exceptions import ApiException

        if not isinstance(e, ApiException):
            first = str(e).splitlines()[0][:200] if str(e) else ""
            return DetailError(0, f"cannot reach the API server: {type(e).__name__}: {first}")
        server = _server_message(e.body) or str(e.reason or "")
        if e.status in (401, 403):
            return DetailError(e.status, forbidden_message(verb, resource, namespace, server))
        if e.status == 404:
            if self._namespace_exists(namespace) is False:
                return DetailError(404, f"namespace {namespace} does not exist")
            return DetailError(404, f"pod {name} not found in namespace {namespace}")
        return DetailError(e.status or 0, f"HTTP {e.status}: {server}")

    def _namespace_exists(self, namespace: str) -> bool | None:
        try:
            self.core.read_namespace(namespace, _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            return True
        except Exception as e:
            return False if getattr(e, "status", None) == 404 else None

    def get_pod(self, namespace: str, name: str) -> dict:
        try:
            resp = self.core.read_namespaced_pod(name, namespace, _preload_content=False,
                                                 _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            return json.loads(resp.data)
        except Exception as e:
            raise self._fail(e, "get", "pods", namespace, name) from None

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[dict]:
        sel = f"involvedObject.kind=Pod,involvedObject.name={name}"
        if uid:
            sel += f",involvedObject.uid={uid}"
        try:
            resp = self.core.list_namespaced_event(namespace, field_selector=sel, _preload_content=False,
                                                   _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            return json.loads(resp.data).get("items") or []
        except Exception as e:
            raise self._fail(e, "list", "events", namespace, name) from None

    def open_logs(self, namespace: str, name: str, container: str | None, previous: bool,
                  tail_lines: int, follow: bool) -> LogStream:
        kw = dict(follow=follow, previous=previous, tail_lines=tail_lines, _preload_content=False,
                  _request_timeout=(CONNECT_TIMEOUT, FOLLOW_READ_TIMEOUT if follow else READ_TIMEOUT))
        if container:
            kw["container"] = container
        try:
            return _RespLines(self.core.read_namespaced_pod_log(name, namespace, **kw))
        except Exception as e:
            err = self._fail(e, "get", "pods/log", namespace, name)
            if err.status not in (401, 403, 404):
                err = DetailError(err.status, f"logs unavailable: {err.message}")
            raise err from None

    def pod_exists(self, namespace: str, name: str) -> bool | None:
        try:
            self.core.read_namespaced_pod(name, namespace, _preload_content=False,
                                          _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            return True
        except Exception as e:
            return False if getattr(e, "status", None) == 404 else None


# --- describe and YAML -----------------------------------------------------------------------

def pod_yaml(pod: dict) -> str:
    """The object as YAML, like `kubectl get -o yaml`, without metadata.managedFields."""
    pod = dict(pod)
    meta = dict(pod.get("metadata") or {})
    meta.pop("managedFields", None)
    pod["metadata"] = meta
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def _kv(label: str, value, width: int = 18) -> str:
    return f"{label + ':':<{width}}{'' if value is None else value}"


def _mapping_lines(label: str, mapping: dict | None, width: int = 18) -> list[str]:
    items = sorted((mapping or {}).items())
    if not items:
        return [_kv(label, "<none>", width)]
    out = [_kv(label, f"{items[0][0]}={items[0][1]}", width)]
    out += [" " * width + f"{k}={v}" for k, v in items[1:]]
    return out


def _state_lines(state: dict | None, indent: str, label: str = "State") -> list[str]:
    state = state or {}
    if "running" in state:
        return [f"{indent}{label + ':':<16}Running",
                f"{indent}  {'Started:':<14}{(state['running'] or {}).get('startedAt', '')}"]
    if "waiting" in state:
        w = state["waiting"] or {}
        out = [f"{indent}{label + ':':<16}Waiting", f"{indent}  {'Reason:':<14}{w.get('reason', '')}"]
        if w.get("message"):
            out.append(f"{indent}  {'Message:':<14}{w['message']}")
        return out
    if "terminated" in state:
        t = state["terminated"] or {}
        out = [f"{indent}{label + ':':<16}Terminated", f"{indent}  {'Reason:':<14}{t.get('reason', '')}",
               f"{indent}  {'Exit Code:':<14}{t.get('exitCode', '')}"]
        for k, lab in (("startedAt", "Started:"), ("finishedAt", "Finished:")):
            if t.get(k):
                out.append(f"{indent}  {lab:<14}{t[k]}")
        return out
    return [f"{indent}{label + ':':<16}<unknown>"]


def _container_lines(spec: dict, status: dict | None) -> list[str]:
    ind = "    "
    out = [f"  {spec.get('name', '?')}:", f"{ind}{'Image:':<16}{spec.get('image', '')}"]
    ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    out.append(f"{ind}{'Port:':<16}{ports or '<none>'}")
    if status is None:
        out.append(f"{ind}{'State:':<16}<no status yet>")
    else:
        out += _state_lines(status.get("state"), ind)
        if status.get("lastState"):
            out += _state_lines(status.get("lastState"), ind, "Last State")
        out.append(f"{ind}{'Ready:':<16}{'True' if status.get('ready') else 'False'}")
        out.append(f"{ind}{'Restart Count:':<16}{status.get('restartCount', 0)}")
    return out


def _event_time(ev: dict) -> float:
    for k in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(ev.get(k))
        if t is not None:
            return t
    return parse_time((ev.get("metadata") or {}).get("creationTimestamp")) or 0.0


def describe_pod(pod: dict, events: list[dict] | None, now: float, events_note: str = "") -> str:
    """A `kubectl describe pod`-like text built from the pod's JSON and its Events."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    lines = [_kv("Name", meta.get("name", "")), _kv("Namespace", meta.get("namespace", "")),
             _kv("Service Account", spec.get("serviceAccountName", "default")),
             _kv("Node", f"{spec.get('nodeName', '<none>')}/{st.get('hostIP', '')}".rstrip("/")),
             _kv("Start Time", st.get("startTime", "<unknown>"))]
    lines += _mapping_lines("Labels", meta.get("labels"))
    lines += _mapping_lines("Annotations", meta.get("annotations"))
    lines.append(_kv("Status", pod_status(pod)))
    if meta.get("deletionTimestamp"):
        lines.append(_kv("Terminating", f"since {meta['deletionTimestamp']}"))
    lines.append(_kv("IP", st.get("podIP", "")))
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append(_kv("Controlled By", ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners)))
    for title, specs, statuses in (("Init Containers", spec.get("initContainers"), st.get("initContainerStatuses")),
                                   ("Containers", spec.get("containers"), st.get("containerStatuses"))):
        if not specs and title == "Init Containers":
            continue
        by_name = {s.get("name"): s for s in statuses or []}
        lines.append(f"{title}:")
        for c in specs or []:
            lines += _container_lines(c, by_name.get(c.get("name")))
    conds = st.get("conditions") or []
    lines.append("Conditions:")
    if conds:
        lines.append(f"  {'Type':<28}Status")
        lines += [f"  {c.get('type', ''):<28}{c.get('status', '')}" for c in conds]
    else:
        lines.append("  <none>")
    lines.append(_kv("QoS Class", st.get("qosClass", "")))
    node_sel = spec.get("nodeSelector")
    lines += _mapping_lines("Node-Selectors", node_sel)
    lines.append("Events:")
    if events_note:
        lines.append(f"  {events_note}")
    elif not events:
        lines.append("  <none>")
    else:
        recent = sorted(events, key=_event_time)[-EVENTS_SHOWN:]
        rows = [("Type", "Reason", "Age", "From", "Message"), ("----", "------", "----", "----", "-------")]
        for ev in recent:
            src = ev.get("source") or {}
            frm = src.get("component") or ev.get("reportingComponent") or ""
            age = format_age(_event_time(ev) or None, now)
            count = ev.get("count") or 0
            if count > 1:
                age += f" (x{count})"
            rows.append((ev.get("type", ""), ev.get("reason", ""), age, frm,
                         " ".join(str(ev.get("message", "")).split())))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append("  " + "  ".join(f"{r[i]:<{widths[i]}}" for i in range(4)) + "  " + r[4])
    return "\n".join(lines)


def fetch_describe(source: DetailSource, namespace: str, name: str, now: float) -> str:
    """get pod, then its events (forbidden events are a note, not a failure)."""
    pod = source.get_pod(namespace, name)
    note = ""
    try:
        events = source.pod_events(namespace, name, (pod.get("metadata") or {}).get("uid", ""))
    except DetailError as e:
        events, note = [], str(e)
    return describe_pod(pod, events, now, note)


def container_names(pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    return [c.get("name", "") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


def default_container(pod: dict) -> str | None:
    """kubectl's choice: the kubectl.kubernetes.io/default-container annotation, else the first."""
    ann = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if ann and ann in container_names(pod):
        return ann
    return names[0] if names else None


# --- logs --------------------------------------------------------------------------------

CONNECTING, STREAMING, ENDED, ERROR, DELETED = "connecting", "streaming", "ended", "error", "deleted"


class LogFollower:
    """Reads one log stream in a daemon thread into a bounded buffer.

    The consumer polls `version` and calls `take(seen)` for the lines it has not shown yet.
    When the stream ends or breaks, the pod is looked up: gone -> state "deleted".
    """

    def __init__(self, source: DetailSource, namespace: str, name: str, *,
                 container: str | None = None, previous: bool = False, follow: bool = True,
                 max_lines: int = MAX_LOG_LINES, gone_wait: float = 30.0,
                 gone_poll: float = 1.0) -> None:
        self.source, self.namespace, self.name = source, namespace, name
        self.gone_wait, self.gone_poll = gone_wait, gone_poll
        self.container, self.previous, self.follow = container, previous, follow
        self.max_lines = max_lines
        self._buf: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._lock = threading.Lock()
        self.total = 0      # lines received since the start (the buffer keeps the last max_lines)
        self.version = 0
        self.state = CONNECTING
        self.message = ""
        self._stream: LogStream | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "LogFollower":
        self._thread = threading.Thread(target=self._run, name=f"logs-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _set(self, state: str, message: str = "") -> None:
        with self._lock:
            self.state, self.message = state, message
            self.version += 1

    def _run(self) -> None:
        try:
            self._stream = self.source.open_logs(self.namespace, self.name, self.container,
                                                 self.previous, self.max_lines, self.follow)
            self._set(STREAMING)
            for line in self._stream:
                if self._stop.is_set():
                    return
                with self._lock:
                    self._buf.append(line)
                    self.total += 1
                    self.version += 1
        except DetailError as e:
            if self._stop.is_set():
                return
            gone = e.status == 404 or self.source.pod_exists(self.namespace, self.name) is False
            if gone and self.total:  # it was there, we read from it, now it is not
                self._set(DELETED, f"pod {self.name} was deleted")
            else:
                self._set(ERROR, str(e))
            return
        except Exception as e:  # never let a thread die silently
            self._set(ERROR, f"{type(e).__name__}: {e}")
            return
        if self._stop.is_set():
            return
        if not self.follow:
            self._set(ENDED, "log stream ended")
            return
        # A followed stream ends when the container stops, often because the pod is being
        # deleted: keep looking for a while so the pane can say "deleted" once it is gone.
        self._set(ENDED, "log stream ended")
        deadline = time.monotonic() + self.gone_wait
        while not self._stop.is_set():
            if self.source.pod_exists(self.namespace, self.name) is False:
                self._set(DELETED, f"pod {self.name} was deleted")
                return
            if time.monotonic() >= deadline:
                return
            self._stop.wait(self.gone_poll)

    def take(self, seen: int) -> tuple[list[str], int, bool]:
        """(new lines, new total, gap) for a consumer that has shown `seen` lines so far;
        gap is True when lines were dropped from the buffer before the consumer saw them."""
        with self._lock:
            new = self.total - seen
            if new <= 0:
                return [], self.total, False
            buf = list(self._buf)
            gap = new > len(buf)
            return (buf if gap else buf[len(buf) - new:]), self.total, gap


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll `pred` until true or timeout (tests and the headless path)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
