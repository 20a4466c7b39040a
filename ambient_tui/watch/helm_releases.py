"""Helm releases, watched (not polled) through Helm's own storage: release Secrets.

Helm 3 and 4 keep one Secret per release revision, named `sh.helm.release.v1.NAME.vREV`,
labelled `owner=helm` and typed `helm.sh/release.v1`. Its `data.release` is the release JSON,
gzipped, base64-encoded by Helm, then base64-encoded again by the API as Secret data.

The watcher is a ListWatcher (ambient_tui.watch.listwatch), as the pod watcher: one list+watch
loop per namespace in scope, relist on 410 Gone, a "reconnecting" state with back-off when the API
server is unreachable, a message per namespace on 403/404. Consumers poll `version` on a
timer and take a `snapshot()` (newest revision per release) or a release's `history()`.
During an API outage the last known list stays, marked stale (`stale_since`): a restarting
API server that answers 401/403/404 for a moment does not empty it either.
Only the fields the pane shows are kept, never the manifest or values (they hold secrets).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

from .listwatch import (RECONNECTING, RETRY, ApiError, ConnectionLost, ListWatcher, Loop, RawSource,
                        status_message, where)
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
    # The install's repair rule (plans/repair.py): only a revision that was deployed.
    from ambient_tui.plans.repair import rollback_target

    target = rollback_target([{"revision": r.revision, "status": r.status, "description": r.description}
                              for r in revs], cur.revision)
    if target is not None:
        to = next(r for r in revs if r.revision == target)
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


class KubeSecretSource(RawSource):
    """Release Secrets through the kubernetes client, as raw JSON (no model objects).

    There is one kind here, so list/watch take no kind (SecretSource)."""

    def _request(self, kind: str, namespace: str | None, **kw):
        kw.update(label_selector=LABEL_SELECTOR, field_selector=FIELD_SELECTOR)
        if namespace is None:
            return self.core.list_secret_for_all_namespaces(**kw)
        return self.core.list_namespaced_secret(namespace, **kw)

    def list(self, namespace: str | None) -> tuple[list[dict], str]:  # type: ignore[override]
        return super().list("secrets", namespace)  # type: ignore[return-value]

    def namespace_exists(self, namespace: str) -> bool | None:
        """False only when the API server says this namespace is not found. A restarting server
        answers 404 for every path for a moment ("the server could not find the requested
        resource"): that is an outage (the last list stays, stale), not a deleted namespace."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespace(namespace, _request_timeout=(self.connect_timeout, 10))
            return True
        except ApiException as e:
            if e.status == 404 and _names(e.body, namespace):
                return False
            if e.status in (401, 403):
                return None
            raise ApiError(e.status or 0, status_message(e.body)) from None
        except Exception as e:
            raise ConnectionLost(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None

    def watch(self, namespace: str | None, resource_version: str,  # type: ignore[override]
              timeout: int) -> Iterator[dict]:
        return super().watch("secrets", namespace, resource_version, timeout)


def _names(body, namespace: str) -> bool:
    """True when a 404 Status body is about this namespace (details.name), not a missing path."""
    try:
        details = (json.loads(body) or {}).get("details") or {}
    except (TypeError, ValueError):
        return False
    return details.get("name") == namespace and details.get("kind") in ("namespaces", None)


# --- the watcher ---------------------------------------------------------------------------

@dataclass
class HelmSnapshot:
    version: int
    releases: dict[tuple[str, str], Release]   # newest revision per (namespace, name)
    state: str
    last_error: str = ""
    messages: dict[str, str] = field(default_factory=dict)  # namespace -> problem
    scope: tuple[str, ...] | None = None                      # None: all namespaces
    # When the list shown stopped being current (API outage), else None: the rows are the
    # last known ones.
    stale_since: float | None = None


def _secret_key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


class HelmReleaseWatcher(ListWatcher):
    """Release Secrets in `namespaces` (None: all namespaces) kept current by list+watch."""

    thread_name = "helm-watcher"

    def __init__(self, source: SecretSource | None = None, *,
                 namespaces: Iterable[str] | None = INSTALL_NAMESPACES,
                 kubeconfig: str | None = None, context: str | None = None,
                 watch_timeout: int = 240, backoff: tuple[float, float] = (0.5, 8.0),
                 missing_retry: float = 5.0) -> None:
        super().__init__(source, kubeconfig=kubeconfig, context=context,
                         watch_timeout=watch_timeout, backoff=backoff, missing_retry=missing_retry)
        self.scope: tuple[str, ...] | None = None if namespaces is None else tuple(sorted(set(namespaces)))
        # secret (namespace, name) -> decoded revision; a Secret is one revision.
        self._secrets: dict[tuple[str, str], Release] = {}
        # loop key -> when its rows stopped being current (an error after a good list).
        self._stale: dict[str, float] = {}

    def snapshot(self) -> HelmSnapshot:
        with self._lock:
            newest: dict[tuple[str, str], Release] = {}
            for rel in self._secrets.values():
                cur = newest.get(rel.key)
                if cur is None or rel.revision > cur.revision:
                    newest[rel.key] = rel
            return HelmSnapshot(self._version, newest, self.state, self.last_error,
                                dict(self._messages), self.scope,
                                min(self._stale.values()) if self._stale else None)

    def history(self, namespace: str, name: str) -> list[Release]:
        """Every revision still stored for the release, newest first."""
        with self._lock:
            revs = [r for r in self._secrets.values() if r.key == (namespace, name)]
        return sorted(revs, key=lambda r: r.revision, reverse=True)

    # -- what ListWatcher asks --
    def _default_source(self) -> KubeSecretSource:
        return KubeSecretSource(self.kubeconfig, self.context)

    def _loops(self) -> list[Loop]:
        return [Loop(key=ns or "*", kind="secrets", namespace=ns, scope=ns or "*", label=where(ns),
                     thread=f"watch-helm-{ns or 'all'}", check_exists=True)
                for ns in (self.scope if self.scope is not None else (None,))]

    def _list(self, src, loop: Loop) -> tuple[Iterable[dict], str]:
        return src.list(loop.namespace)

    def _watch(self, src, loop: Loop, rv: str) -> Iterator[dict]:
        return src.watch(loop.namespace, rv, self.watch_timeout)

    def _denied_message(self, loop: Loop, what: str, e: ApiError) -> str:
        msg = f"{what}: needs list and watch secrets in {where(loop.namespace)}"
        return f"{msg} ({e.message})" if e.message else msg

    def _decode(self, obj: dict) -> Release | None:
        try:
            return decode_release_secret(obj)
        except ReleaseDecodeError as e:
            ns, name = _secret_key(obj)
            self._messages[f"{ns}/{name}"] = f"cannot decode {ns}/{name}: {e}"
            return None

    def _has_rows(self, loop: Loop) -> bool:
        return any(loop.namespace is None or k[0] == loop.namespace for k in self._secrets)

    def _set_error(self, error: str, loop: str, state: str) -> None:
        with self._lock:
            lp = next((lp for lp in self._loops() if lp.key == loop), None)
            if state == RECONNECTING and loop not in self._stale and (
                    self._has_rows(lp) if lp is not None else bool(self._secrets)):
                self._stale[loop] = time.time()
        super()._set_error(error, loop, state)

    def _on_denied(self, loop: Loop, e: ApiError) -> str | None:
        """401/403/404 after a good list: keep the rows, stale, and say why (a restarting API
        server answers so for a moment); with nothing listed yet, the scope's message as before."""
        with self._lock:
            had_rows = self._has_rows(loop)
        if not had_rows:
            return super()._on_denied(loop, e)
        from .listwatch import DENIED

        self._set_error(f"{loop.label or loop.key}: {self._denied_message(loop, DENIED[e.status], e)}",
                        loop.key, RECONNECTING)
        self._stop.wait(self.denied_retry)
        return RETRY

    def _replace(self, loop: Loop, items: Iterable[dict]) -> None:
        namespace = loop.namespace
        with self._lock:
            # Decode everything first: a list that fails part way leaves the old rows as they were.
            new: dict[tuple[str, str], Release] = {}
            for obj in items:
                rel = self._decode(obj)
                if rel is not None:
                    new[_secret_key(obj)] = rel
            self.relists += 1
            for k in [k for k in self._secrets if namespace is None or k[0] == namespace]:
                del self._secrets[k]
            self._secrets.update(new)
            self._stale.pop(loop.key, None)
            self._version += 1

    def _apply(self, loop: Loop, typ: str, obj: dict) -> None:
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
