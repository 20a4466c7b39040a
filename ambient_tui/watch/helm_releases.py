"""Helm releases, watched (not polled) through Helm's own storage: release Secrets.

Helm 3 and 4 keep one Secret per release revision, named `sh.helm.release.v1.NAME.vREV`,
labelled `owner=helm` and typed `helm.sh/release.v1`. Its `data.release` is the release JSON,
gzipped, base64-encoded by Helm, then base64-encoded again by the API as Secret data.

The watcher follows the pod watcher's model (ambient_tui.watch.pods): one list+watch loop per
namespace in scope, relist on 410 Gone, a "reconnecting" state with back-off when the API
server is unreachable, a message per namespace on 403/404. Consumers poll `version` on a
timer and take a `snapshot()` (newest revision per release) or a release's `history()`.
Only the fields the pane shows are kept, never the manifest or values (they hold secrets).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

from .pods import (LISTING, RECONNECTING, STOPPED, WATCHING, ApiError, ConnectionLost,
                   _status_message)
from .rows import parse_time

INSTALL_NAMESPACES = ("istio-system", "istio-ingress")
RELEASE_TYPE = "helm.sh/release.v1"
LABEL_SELECTOR = "owner=helm"
FIELD_SELECTOR = f"type={RELEASE_TYPE}"
GZIP_MAGIC = b"\x1f\x8b"

DEPLOYED = "deployed"
PENDING_PREFIX = "pending-"
FAILED = "failed"


class ReleaseDecodeError(ValueError):
    """A release Secret whose payload is not base64 -> (gzip) -> JSON."""


@dataclass(frozen=True)
class Release:
    """One revision of a Helm release, as `helm list` / `helm history` show it."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str           # name-version, as `helm list` prints it
    app_version: str
    updated: float | None  # info.last_deployed, epoch seconds
    description: str = ""
    resources: tuple[str, ...] = ()  # "Kind/name" from the manifest: what uninstall deletes

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def needs_attention(self) -> bool:
        return self.status.startswith(PENDING_PREFIX) or self.status == FAILED


def decode_payload(data_release: str | bytes) -> dict:
    """`data.release` of a release Secret as the API returns it -> the release JSON."""
    try:
        helm_b64 = base64.b64decode(data_release, validate=False)
        raw = base64.b64decode(helm_b64, validate=False)
    except (binascii.Error, ValueError) as e:
        raise ReleaseDecodeError(f"not base64: {e}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ReleaseDecodeError(f"bad gzip: {e}") from None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReleaseDecodeError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ReleaseDecodeError("release JSON is not an object")
    return obj


def manifest_resources(manifest: str) -> tuple[str, ...]:
    """"Kind/name" of each document of a rendered manifest (top-level kind, metadata.name)."""
    out = []
    for doc in manifest.split("\n---"):
        kind = name = ""
        in_meta = False
        for line in doc.splitlines():
            if line.startswith("kind:"):
                kind = line[5:].strip().strip("'\"")
            elif line.startswith("metadata:"):
                in_meta = True
            elif in_meta and line.startswith("  name:") and not name:
                name = line[7:].strip().strip("'\"")
            elif line and not line.startswith((" ", "#")):
                in_meta = False
        if kind and name:
            out.append(f"{kind}/{name}")
    return tuple(out)


def release_from_json(rel: dict, secret_labels: dict | None = None) -> Release:
    info = rel.get("info") or {}
    meta = (rel.get("chart") or {}).get("metadata") or {}
    labels = secret_labels or {}
    chart = "-".join(x for x in (meta.get("name", ""), meta.get("version", "")) if x)
    try:
        revision = int(rel.get("version") or labels.get("version") or 0)
    except (TypeError, ValueError):
        revision = 0
    return Release(
        name=str(rel.get("name") or labels.get("name", "")),
        namespace=str(rel.get("namespace", "")),
        revision=revision,
        status=str(info.get("status") or labels.get("status", "unknown")),
        chart=chart,
        app_version=str(meta.get("appVersion") or ""),
        updated=parse_time(info.get("last_deployed")),
        description=str(info.get("description") or ""),
        resources=manifest_resources(str(rel.get("manifest") or "")),
    )


def decode_release_secret(secret: dict) -> Release:
    """A release Secret (API JSON) -> Release. Raises ReleaseDecodeError."""
    meta = secret.get("metadata") or {}
    payload = (secret.get("data") or {}).get("release")
    if not payload:
        raise ReleaseDecodeError(f"secret {meta.get('name', '?')} has no data.release")
    rel = release_from_json(decode_payload(payload), meta.get("labels") or {})
    if not rel.namespace:  # very old releases: the Secret's namespace is the release's
        rel = Release(**{**rel.__dict__, "namespace": meta.get("namespace", "")})
    return rel


# --- commands offered on a release ---------------------------------------------------------

def rollback_argv(name: str, revision: int, namespace: str, helm: str = "helm") -> list[str]:
    return [helm, "rollback", name, str(revision), "-n", namespace, "--wait"]


def uninstall_argv(name: str, namespace: str, helm: str = "helm") -> list[str]:
    return [helm, "uninstall", name, "-n", namespace, "--wait"]


@dataclass(frozen=True)
class Fix:
    """What to do about a pending-* or failed release."""

    action: str          # "rollback" or "uninstall"
    argv: list[str]
    why: str
    revision: int | None = None


def fix_for(history: list[Release]) -> Fix | None:
    """The fix for a release's newest revision, given all its revisions (any order).

    pending-install with no deployed revision: uninstall, then re-run the install step.
    pending-upgrade / pending-rollback / failed with a deployed (or superseded-but-good)
    revision before it: roll back to the newest such revision.
    """
    if not history:
        return None
    revs = sorted(history, key=lambda r: r.revision)
    cur = revs[-1]
    if not cur.needs_attention:
        return None
    good = [r for r in revs[:-1] if r.status in (DEPLOYED, "superseded")]
    deployed = [r for r in good if r.status == DEPLOYED] or good
    if deployed:
        to = deployed[-1]
        return Fix("rollback", rollback_argv(cur.name, to.revision, cur.namespace),
                   f"{cur.status} at revision {cur.revision}; revision {to.revision} was "
                   f"{to.status}: roll back to it", to.revision)
    return Fix("uninstall", uninstall_argv(cur.name, cur.namespace),
               f"{cur.status} and no revision was ever deployed: uninstall, then re-run the "
               "install step")


# --- the source: the only part unit tests replace -----------------------------------------

class SecretSource(Protocol):
    def list(self, namespace: str | None) -> tuple[list[dict], str]: ...
    def watch(self, namespace: str | None, resource_version: str, timeout: int) -> Iterator[dict]: ...
    def namespace_exists(self, namespace: str) -> bool | None: ...
    def close(self) -> None: ...


class KubeSecretSource:
    """Release Secrets through the kubernetes client, as raw JSON (no model objects)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client=None, connect_timeout: float = 5.0) -> None:
        from kubernetes import client, config  # lazy: keeps start-up fast

        if api_client is None:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(api_client)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._open: set = set()

    def _call(self, namespace: str | None, read_timeout: float, **kw):
        from kubernetes.client.exceptions import ApiException

        kw.update(label_selector=LABEL_SELECTOR, field_selector=FIELD_SELECTOR,
                  _preload_content=False, _request_timeout=(self.connect_timeout, read_timeout))
        try:
            if namespace is None:
                return self.core.list_secret_for_all_namespaces(**kw)
            return self.core.list_namespaced_secret(namespace, **kw)
        except ApiException as e:
            raise ApiError(e.status or 0, _status_message(e.body) or str(e.reason)) from None
        except Exception as e:  # urllib3 errors, timeouts, OSError
            first = str(e).splitlines()[0][:200] if str(e) else ""
            raise ConnectionLost(f"{type(e).__name__}: {first}") from None

    def list(self, namespace: str | None) -> tuple[list[dict], str]:
        resp = self._call(namespace, 60)
        try:
            data = json.loads(resp.data)
        except Exception as e:
            raise ConnectionLost(f"bad list response: {e}") from None
        return data.get("items") or [], (data.get("metadata") or {}).get("resourceVersion", "")

    def watch(self, namespace: str | None, resource_version: str, timeout: int) -> Iterator[dict]:
        from kubernetes.watch.watch import iter_resp_lines

        resp = self._call(namespace, timeout + 15, watch=True, resource_version=resource_version,
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
                resp.close()
            except Exception:
                pass


# --- the watcher ---------------------------------------------------------------------------

@dataclass
class HelmSnapshot:
    version: int
    releases: dict[tuple[str, str], Release]   # newest revision per (namespace, name)
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)  # namespace -> problem
    scope: tuple[str, ...] | None = None                      # None: all namespaces


def _secret_key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


class HelmReleaseWatcher:
    """Release Secrets in `namespaces` (None: all namespaces) kept current by list+watch."""

    def __init__(self, source: SecretSource | None = None, *,
                 namespaces: Iterable[str] | None = INSTALL_NAMESPACES,
                 kubeconfig: str | None = None, context: str | None = None,
                 watch_timeout: int = 240, backoff: tuple[float, float] = (0.5, 8.0),
                 missing_retry: float = 5.0) -> None:
        self._source_arg = source
        self.kubeconfig, self.context = kubeconfig, context
        self.scope: tuple[str, ...] | None = None if namespaces is None else tuple(sorted(set(namespaces)))
        self.watch_timeout, self.backoff, self.missing_retry = watch_timeout, backoff, missing_retry
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # secret (namespace, name) -> decoded revision; a Secret is one revision.
        self._secrets: dict[tuple[str, str], Release] = {}
        self._version = 0
        self._loop_state: dict[str, str] = {}
        self._messages: dict[str, str] = {}
        self.last_error = ""
        self._threads: list[threading.Thread] = []
        self.source: SecretSource | None = None

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

    def snapshot(self) -> HelmSnapshot:
        with self._lock:
            newest: dict[tuple[str, str], Release] = {}
            for rel in self._secrets.values():
                cur = newest.get(rel.key)
                if cur is None or rel.revision > cur.revision:
                    newest[rel.key] = rel
            return HelmSnapshot(self._version, newest, self.state, self.last_error,
                                dict(self._messages), self.scope)

    def history(self, namespace: str, name: str) -> list[Release]:
        """Every revision still stored for the release, newest first."""
        with self._lock:
            revs = [r for r in self._secrets.values() if r.key == (namespace, name)]
        return sorted(revs, key=lambda r: r.revision, reverse=True)

    # -- lifecycle --
    def start(self) -> "HelmReleaseWatcher":
        self._stop.clear()
        t = threading.Thread(target=self._run, name="helm-watcher", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
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
                self.source = self._source_arg or KubeSecretSource(self.kubeconfig, self.context)
            except Exception as e:  # no kubeconfig, unknown context...
                self._set_error(f"cannot build a client: {type(e).__name__}: {e}", "*", RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            if self._loop_state.pop("*", None) is not None:
                self._version += 1
        for ns in (self.scope if self.scope is not None else (None,)):
            if self._stop.is_set():
                return
            t = threading.Thread(target=self._loop, args=(ns,), daemon=True,
                                 name=f"watch-helm-{ns or 'all'}")
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

    def _set_message(self, scope: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                if self._messages.pop(scope, None) is not None:
                    self._version += 1
            elif self._messages.get(scope) != message:
                self._messages[scope] = message
                self._version += 1

    def _loop(self, namespace: str | None) -> None:
        loop = scope = namespace or "*"
        where = f"namespace {namespace}" if namespace else "all namespaces"
        delay = self.backoff[0]
        src = self.source
        assert src is not None
        while not self._stop.is_set():
            try:
                self._set_state(loop, LISTING)
                if namespace is not None and src.namespace_exists(namespace) is False:
                    self._replace(namespace, [])
                    self._set_message(scope, f"namespace {namespace} not found")
                    self._set_state(loop, WATCHING)
                    self._stop.wait(self.missing_retry)
                    continue
                items, rv = src.list(namespace)
                self._replace(namespace, items)
                self._set_message(scope, None)
                self._set_state(loop, WATCHING)
                delay = self.backoff[0]
                while not self._stop.is_set():
                    rv = self._consume(src.watch(namespace, rv, self.watch_timeout), rv)
            except _Relist:
                continue
            except ApiError as e:
                if self._stop.is_set():
                    break
                if e.status == 410:
                    continue
                if e.status in (401, 403, 404):
                    what = {401: "unauthorized", 403: "forbidden", 404: "not found"}[e.status]
                    self._replace(namespace, [])
                    need = "list and watch secrets"
                    msg = f"{what}: needs {need} in {where}"
                    self._set_message(scope, f"{msg} ({e.message})" if e.message else msg)
                    self._set_state(loop, WATCHING)
                    self._stop.wait(self.missing_retry * 6)
                    continue
                self._set_error(f"{where}: {e}", loop, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
            except Exception as e:  # ConnectionLost, or a bug: never kill the pane silently
                if self._stop.is_set():
                    break
                text = str(e) if isinstance(e, ConnectionLost) else f"{type(e).__name__}: {e}"
                self._set_error(f"{where}: {text}", loop, RECONNECTING)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        with self._lock:
            self._loop_state.pop(loop, None)
            self._version += 1

    def _consume(self, events: Iterator[dict], rv: str) -> str:
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
            if typ != "BOOKMARK":
                self._apply(typ, obj)
        return rv

    def _decode(self, obj: dict) -> Release | None:
        try:
            return decode_release_secret(obj)
        except ReleaseDecodeError as e:
            ns, name = _secret_key(obj)
            self._messages[f"{ns}/{name}"] = f"cannot decode {ns}/{name}: {e}"
            return None

    def _replace(self, namespace: str | None, items: list[dict]) -> None:
        with self._lock:
            for k in [k for k in self._secrets if namespace is None or k[0] == namespace]:
                del self._secrets[k]
            for obj in items:
                rel = self._decode(obj)
                if rel is not None:
                    self._secrets[_secret_key(obj)] = rel
            self._version += 1

    def _apply(self, typ: str, obj: dict) -> None:
        key = _secret_key(obj)
        with self._lock:
            if typ == "DELETED":
                if self._secrets.pop(key, None) is None:
                    return
            else:
                rel = self._decode(obj)
                if rel is None or self._secrets.get(key) == rel:
                    return
                self._secrets[key] = rel
            self._version += 1


class _Relist(Exception):
    pass
