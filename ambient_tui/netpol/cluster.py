"""NetworkPolicy operations against a live API server (kubernetes Python client).

The client is imported inside functions so that the editor and the lint start
instantly and work without it. Every call has a timeout; every API failure becomes
a ClusterError whose message a person can act on.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from .templates import MANAGED_SELECTOR, is_managed, label_managed

FIELD_MANAGER = "ambient-tui"
AMBIENT_LABEL = "istio.io/dataplane-mode"
AMBIENT_VALUE = "ambient"
TIMEOUT = 15  # seconds per request, so a cancelled worker is noticed

# Fields the server owns; left out of diffs so only intent shows.
_SERVER_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
                "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class ClusterError(Exception):
    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.message


@dataclass
class NamespaceInfo:
    name: str
    enrolled: bool
    labels: dict[str, str] = field(default_factory=dict)


def is_enrolled(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get(AMBIENT_LABEL) == AMBIENT_VALUE


def normalise(obj: dict[str, Any] | None) -> dict[str, Any]:
    """A policy without server bookkeeping, for diffs."""
    if not obj:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _SERVER_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop(_LAST_APPLIED, None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def unified_diff(live: dict[str, Any] | None, desired: dict[str, Any], name: str) -> str:
    a = yaml.safe_dump(normalise(live), sort_keys=True).splitlines(keepends=True) if live else []
    b = yaml.safe_dump(normalise(desired), sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"cluster/{name}", f"local/{name}"))


def map_api_error(err: Exception, *, verb: str, resource: str = "networkpolicies",
                  namespace: str | None = None, name: str | None = None) -> ClusterError:
    """ApiException / connection failure -> ClusterError with a message a person can act on."""
    status = getattr(err, "status", None)
    body: dict[str, Any] = {}
    raw = getattr(err, "body", None)
    if raw:
        try:
            body = json.loads(raw)
        except (TypeError, ValueError):
            body = {}
    server_msg = body.get("message") or getattr(err, "reason", None) or str(err)
    details = body.get("details") or {}
    where = f" in namespace {namespace!r}" if namespace else ""
    target = f"{resource}/{name}" if name else resource
    if status == 404:
        if details.get("kind") == "namespaces" or (namespace and f'namespaces "{namespace}"' in
                                                  str(server_msg)):
            return ClusterError(f"Namespace {namespace!r} not found: create it first or fix "
                                "metadata.namespace.", 404, "NamespaceNotFound")
        return ClusterError(f"{target} not found{where}.", 404, "NotFound")
    if status == 403:
        return ClusterError(f"Forbidden: your user may not {verb} {resource}{where}. "
                            f"The API server said: {server_msg}", 403, "Forbidden")
    if status == 401:
        return ClusterError("Unauthorized: the credentials in the kubeconfig were refused "
                            "(expired token?).", 401, "Unauthorized")
    if status == 409:
        return ClusterError(f"Conflict on {target}{where}: another field manager owns these "
                            f"fields. The API server said: {server_msg}", 409, "Conflict")
    if status == 422:
        causes = details.get("causes") or []
        lines = [f"  {c.get('field', '?')}: {c.get('message', '')}" for c in causes]
        text = "\n".join(lines) if lines else f"  {server_msg}"
        return ClusterError(f"The API server rejected {target}{where}:\n{text}", 422, "Invalid")
    if status is not None:
        return ClusterError(f"API error {status} on {verb} {target}{where}: {server_msg}", status)
    # urllib3 connection errors carry no status.
    return ClusterError(f"Cannot reach the API server: {err}", None, "Unreachable")


class NetpolCluster:
    """Cluster operations for the NetworkPolicy editor; one instance per kubeconfig/context.

    Uses the typed CoreV1Api/NetworkingV1Api methods with _preload_content=False, so
    objects come back as the API's own JSON (exact field names, nothing dropped).
    """

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 api_client: Any = None, *, core: Any = None, networking: Any = None) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._api_client = api_client
        self._core = core
        self._networking = networking

    # -- plumbing ---------------------------------------------------------------------------

    def _apis(self) -> tuple[Any, Any]:
        if self._core is None or self._networking is None:
            from kubernetes import client

            if self._api_client is None:
                try:
                    from ambient_tui.cluster.client import new_api_client  # plugins captured
                    self._api_client = new_api_client(self._kubeconfig, self._context)
                except Exception as err:  # config errors come in many exception types
                    raise ClusterError(f"Cannot load kubeconfig: {err}") from None
            self._core = self._core or client.CoreV1Api(self._api_client)
            self._networking = self._networking or client.NetworkingV1Api(self._api_client)
        return self._core, self._networking

    @contextlib.contextmanager
    def locked(self, command: str):
        """Hold the cluster lock (cluster/lease.py) around a change, as every other write does;
        another run holding it is one ClusterError line, and nothing is applied."""
        from ambient_tui.cluster.client import ClusterAccessError, KubeClient
        from ambient_tui.cluster.lease import LockError, LockHeld, cluster_lock

        self._apis()
        kube = KubeClient(self._api_client, self._context or "", "")
        try:
            lock = cluster_lock(kube, command)
            lock.__enter__()
        except (LockHeld, LockError, ClusterAccessError) as e:
            raise ClusterError(f"{e}; nothing was applied") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def _call(self, fn: Callable[..., Any], *args: Any, verb: str,
              resource: str = "networkpolicies", namespace: str | None = None,
              name: str | None = None, **kwargs: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = fn(*args, _preload_content=False, _request_timeout=TIMEOUT, **kwargs)
        except ApiException as err:
            raise map_api_error(err, verb=verb, resource=resource, namespace=namespace,
                                name=name) from None
        except ClusterError:
            raise
        except Exception as err:  # urllib3 MaxRetryError, timeouts, TLS errors
            raise map_api_error(err, verb=verb, resource=resource, namespace=namespace,
                                name=name) from None
        data = getattr(resp, "data", resp)
        return json.loads(data) if data else {}

    # -- reads ------------------------------------------------------------------------------

    def namespaces(self) -> list[NamespaceInfo]:
        core, _ = self._apis()
        data = self._call(core.list_namespace, verb="list", resource="namespaces")
        out = []
        for item in data.get("items", []):
            meta = item.get("metadata", {})
            labels = meta.get("labels") or {}
            out.append(NamespaceInfo(meta.get("name", ""), is_enrolled(labels), labels))
        return sorted(out, key=lambda n: n.name)

    def enrolled_namespaces(self) -> set[str]:
        core, _ = self._apis()
        data = self._call(core.list_namespace, verb="list", resource="namespaces",
                          label_selector=f"{AMBIENT_LABEL}={AMBIENT_VALUE}")
        return {i["metadata"]["name"] for i in data.get("items", [])}

    def list_policies(self, namespace: str) -> list[dict[str, Any]]:
        _, net = self._apis()
        data = self._call(net.list_namespaced_network_policy, namespace, verb="list",
                          namespace=namespace)
        return [self._complete(i) for i in data.get("items", [])]

    def list_managed(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Policies this tool created (for the uninstall plan)."""
        _, net = self._apis()
        if namespace:
            data = self._call(net.list_namespaced_network_policy, namespace, verb="list",
                              namespace=namespace, label_selector=MANAGED_SELECTOR)
        else:
            data = self._call(net.list_network_policy_for_all_namespaces, verb="list",
                              label_selector=MANAGED_SELECTOR)
        return [self._complete(i) for i in data.get("items", [])]

    def list_pods(self, namespace: str) -> list[dict[str, Any]]:
        core, _ = self._apis()
        data = self._call(core.list_namespaced_pod, namespace, verb="list", resource="pods",
                          namespace=namespace)
        return [{"name": p["metadata"]["name"], "labels": p["metadata"].get("labels") or {}}
                for p in data.get("items", [])]

    def list_pod_objects(self, namespace: str) -> list[dict[str, Any]]:
        """Pods as the API's JSON (spec and status too: host network, IPs, named ports)."""
        core, _ = self._apis()
        data = self._call(core.list_namespaced_pod, namespace, verb="list", resource="pods",
                          namespace=namespace)
        return data.get("items", [])

    def get_namespace(self, name: str) -> dict[str, str] | None:
        """A namespace's labels, or None when it does not exist."""
        core, _ = self._apis()
        try:
            data = self._call(core.read_namespace, name, verb="get", resource="namespaces",
                              name=name)
        except ClusterError as err:
            if err.status == 404:
                return None
            raise
        return (data.get("metadata") or {}).get("labels") or {}

    def label_namespace(self, name: str, labels: dict[str, str | None]) -> None:
        core, _ = self._apis()
        self._call(core.patch_namespace, name, {"metadata": {"labels": labels}}, verb="patch",
                   resource="namespaces", name=name)

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        core, _ = self._apis()
        return self._get(core.read_namespaced_config_map, name, namespace, "configmaps")

    def get_daemonset(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes import client

        self._apis()
        apps = client.AppsV1Api(self._api_client) if self._api_client is not None else None
        if apps is None:
            return None  # injected fakes without an API client: no DaemonSets known
        return self._get(apps.read_namespaced_daemon_set, name, namespace, "daemonsets")

    def _get(self, fn: Callable[..., Any], name: str, namespace: str,
             resource: str) -> dict[str, Any] | None:
        try:
            return self._call(fn, name, namespace, verb="get", resource=resource,
                              namespace=namespace, name=name)
        except ClusterError as err:
            if err.status == 404:
                return None
            raise

    def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        _, net = self._apis()
        try:
            return self._complete(self._call(net.read_namespaced_network_policy, name, namespace,
                                             verb="get", namespace=namespace, name=name))
        except ClusterError as err:
            if err.reason == "NotFound":
                return None
            raise

    @staticmethod
    def _complete(item: dict[str, Any]) -> dict[str, Any]:
        # List items omit apiVersion/kind; put them back so the YAML is appliable.
        item.setdefault("apiVersion", "networking.k8s.io/v1")
        item.setdefault("kind", "NetworkPolicy")
        return {"apiVersion": item.pop("apiVersion"), "kind": item.pop("kind"), **item}

    # -- writes -----------------------------------------------------------------------------

    def _target(self, doc: dict[str, Any], namespace: str | None) -> tuple[str, str]:
        meta = doc.get("metadata") or {}
        ns = meta.get("namespace") or namespace
        name = meta.get("name")
        if not ns:
            raise ClusterError(f"Policy {name!r} has no metadata.namespace; choose a namespace.")
        if not name:
            raise ClusterError("Policy has no metadata.name.")
        return ns, name

    def apply(self, doc: dict[str, Any], *, namespace: str | None = None, dry_run: bool = False,
              force: bool = False, mark_managed: bool = True) -> dict[str, Any]:
        """Server-side apply (field manager ambient-tui); dry_run=True asks for dryRun=All."""
        body = copy.deepcopy(doc)
        ns, name = self._target(body, namespace)
        body.setdefault("metadata", {})["namespace"] = ns
        if mark_managed:
            label_managed(body)
        _, net = self._apis()
        extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        if force:
            extra["force"] = True
        result = self._call(net.patch_namespaced_network_policy, name, ns, body, verb="patch",
                            namespace=ns, name=name, field_manager=FIELD_MANAGER,
                            _content_type="application/apply-patch+yaml", **extra)
        return self._complete(result)

    def dry_run(self, doc: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        return self.apply(doc, namespace=namespace, dry_run=True)

    def diff(self, doc: dict[str, Any], *, namespace: str | None = None) -> str:
        """Unified diff: the cluster's copy -> what applying `doc` would produce (via dry-run)."""
        ns, name = self._target(doc, namespace)
        live = self.get_policy(ns, name)
        merged = self.dry_run(doc, namespace=ns)
        return unified_diff(live, merged, f"{ns}/{name}")

    def delete_managed(self, namespace: str, name: str) -> None:
        """Delete one policy, only if this tool created it."""
        live = self.get_policy(namespace, name)
        if live is None:
            return
        if not is_managed(live):
            raise ClusterError(f"{namespace}/{name} was not created by ambient-tui; not deleting.")
        _, net = self._apis()
        self._call(net.delete_namespaced_network_policy, name, namespace, verb="delete",
                   namespace=namespace, name=name)
