"""A thin kubernetes client made from a kubeconfig and context, with a timeout on every call.

`kubernetes` is imported inside functions so the CLI and TUI start without it. Failures to
reach the cluster become ClusterAccessError with a `kind` (unknown-context, no-kubeconfig,
unreachable, unauthorized, forbidden, error) and a message a person can act on.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import yaml

from ambient_tui.yaml_loader import SAFE_LOADER

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
TOO_MANY_REQUESTS_RETRIES = 4  # as client-go, answer 429 by waiting Retry-After (a few times)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# Server-side metadata-only answers (PartialObjectMetadata and its List).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_ONLY_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class ClusterAccessError(RuntimeError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def kubeconfig_path(kubeconfig: str | None = None) -> str:
    if kubeconfig:
        return kubeconfig
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return str(Path.home() / ".kube" / "config")


def read_kubeconfig(path: str) -> dict:
    try:
        data = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER) or {}
    except FileNotFoundError:
        raise ClusterAccessError("no-kubeconfig", f"no kubeconfig at {path}; set KUBECONFIG or run "
                                 "`aws eks update-kubeconfig --name CLUSTER`") from None
    except (OSError, yaml.YAMLError) as e:
        raise ClusterAccessError("no-kubeconfig", f"cannot read kubeconfig {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def resolve_context(data: dict, context: str | None, path: str) -> tuple[str, str]:
    """(context name, server URL) or ClusterAccessError('unknown-context')."""
    contexts = {c.get("name"): c.get("context") or {} for c in data.get("contexts") or []}
    name = context or data.get("current-context")
    if not name:
        raise ClusterAccessError("unknown-context", f"kubeconfig {path} has no current-context; "
                                 f"pass --context (known: {', '.join(sorted(contexts)) or 'none'})")
    if name not in contexts:
        raise ClusterAccessError("unknown-context", f"context {name!r} is not in kubeconfig {path}; "
                                 f"known contexts: {', '.join(sorted(map(str, contexts))) or 'none'}")
    cluster = contexts[name].get("cluster")
    servers = {c.get("name"): (c.get("cluster") or {}).get("server", "") for c in data.get("clusters") or []}
    return name, servers.get(cluster, "")


def api_error(e: Exception, what: str, server: str = "") -> ClusterAccessError:
    """Turn a kubernetes/urllib3 exception into a ClusterAccessError."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(e, ClusterAccessError):
        return e
    if isinstance(e, ApiException):
        if e.status == 401:
            return ClusterAccessError("unauthorized", f"{what}: the API server rejected the credentials "
                                      "(401 Unauthorized): the token is expired or invalid; refresh it "
                                      "(`aws eks update-kubeconfig --name CLUSTER`, or `aws eks get-token`)")
        if e.status == 403:
            return ClusterAccessError("forbidden", f"{what}: forbidden (403) for this user")
        if e.status == 404:
            return ClusterAccessError("not-found", f"{what}: not found (404)")
        return ClusterAccessError("error", f"{what}: HTTP {e.status} {e.reason}")
    return ClusterAccessError("unreachable", f"{what}: API server {server or ''} is unreachable "
                              f"({type(e).__name__}: {connection_reason(str(e))}); "
                              "check the network/VPN and the endpoint's public/private access")


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")
_CAUSED_BY = re.compile(r"\(Caused by \w+\((.*)\)\)\s*$")
REASON_LIMIT = 300


def connection_reason(text: str) -> str:
    """The part of a urllib3 error that says why, in whole sentences: "HTTPSConnectionPool(...):
    Max retries exceeded ... (Caused by NewConnectionError('<... object at 0x..>: Failed to
    establish a new connection: [Errno 111] Connection refused'))" -> "Failed to establish a new
    connection: [Errno 111] Connection refused". Never cut mid-sentence: a reason longer than
    REASON_LIMIT ends at the last sentence or clause boundary before it."""
    text = (text or "").strip().splitlines()[0] if text and text.strip() else ""
    m = _CAUSED_BY.search(text)
    if m:
        text = m.group(1).strip().strip("'\"")
    text = _OBJECT_REPR.sub("", text).strip()
    if len(text) <= REASON_LIMIT:
        return text
    head = text[:REASON_LIMIT]
    cut = max(head.rfind(". "), head.rfind("; "), head.rfind(": "))
    return (head[:cut] if cut > 40 else head.rsplit(" ", 1)[0]).rstrip(" .;:") + " …"


def _retry_after(headers) -> float:
    """The 429 answer's Retry-After in seconds, kept between 0.2 and 2 s (1 s when absent)."""
    try:
        value = float((headers or {}).get("Retry-After") or 1)
    except (TypeError, ValueError):
        value = 1.0
    return min(max(value, 0.2), 2.0)


class KubeClient:
    """Blocking calls; run them in a thread. Every call carries a (connect, read) timeout."""

    def __init__(self, api_client, context: str, server: str) -> None:
        self.api_client = api_client
        self.context = context
        self.server = server
        self.timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)

    # the typed API group the DaemonSet patches use ---------------------------------------------
    @property
    def apps(self):
        from kubernetes import client
        return client.AppsV1Api(self.api_client)

    def call(self, what: str, fn, *args, **kw):
        kw.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - every failure becomes an actionable message
            raise api_error(e, what, self.server) from None

    # reads: JSON, not the typed models (see cluster/raw.py for why) --------------------------
    def request_json(self, method: str, path: str, what: str, query: list | None = None,
                     body: dict | None = None, accept: str = "application/json"):
        """One API request; the answer as raw.Obj. Errors as ClusterAccessError, like call()."""
        import json

        from ambient_tui.cluster.raw import wrap

        def go(_request_timeout):
            from kubernetes.client.exceptions import ApiException

            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = "application/json"
            for attempt in range(TOO_MANY_REQUESTS_RETRIES + 1):
                req = self.api_client.param_serialize(method, path, query_params=query or [],
                                                      header_params=dict(headers), body=body,
                                                      auth_settings=["BearerToken"])
                resp = self.api_client.call_api(*req, _request_timeout=_request_timeout)
                data = resp.read()
                if resp.status != 429 or attempt == TOO_MANY_REQUESTS_RETRIES:
                    break
                # 429: the API server asks to come back (priority and fairness, or a resource
                # whose storage is still initializing, as just after its CRD was created).
                time.sleep(_retry_after(resp.headers))
            if not 200 <= resp.status <= 299:
                raise ApiException.from_response(http_resp=resp, body=data.decode("utf-8", "replace"), data=None)
            return wrap(json.loads(data))

        return self.call(what, go)

    def get_json(self, path: str, what: str, **kw):
        return self.request_json("GET", path, what, **kw)

    def list_json(self, path: str, what: str, **kw) -> list:
        """A list's items, each a raw.Obj."""
        from ambient_tui.cluster.raw import wrap

        return wrap(self.get_json(path, what, **kw)["items"] or [])

    def whoami(self) -> str | None:
        """The user name the API server sees (SelfSubjectReview), or None where the API is absent."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            r = self.request_json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                  "asking the API server who this user is", body=body)
        except ClusterAccessError as e:
            if e.kind == "not-found":
                return None
            raise
        return (r.status.user_info.username if r.status and r.status.user_info else None) or ""

    def server_version(self) -> str:
        return self.get_json("/version", "reading the server version").git_version

    def _get_or_none(self, what: str, path: str, **kw):
        """A read that answers None for 404: absence is a finding, not an error."""
        try:
            return self.get_json(path, what, **kw)
        except ClusterAccessError as e:
            if e.kind == "not-found":
                return None
            raise

    def get_daemonset(self, ns: str, name: str):
        """The DaemonSet, or None when absent."""
        return self._get_or_none(f"reading daemonset {ns}/{name}", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}")

    def get_namespace(self, name: str):
        return self._get_or_none(f"reading namespace {name}", f"/api/v1/namespaces/{name}")

    def get_crd(self, name: str):
        """The CRD's metadata only (its schema can be hundreds of KiB), or None when absent."""
        return self._get_or_none(f"reading CRD {name}", f"{CRDS}/{name}", accept=METADATA_ONLY)

    def list_crds(self) -> list:
        """Every CRD's metadata only."""
        return self.list_json(CRDS, "listing CRDs", accept=METADATA_ONLY_LIST)

    def list_security_group_policies(self) -> list[dict]:
        """Every SecurityGroupPolicy; [] when the CRD is not installed."""
        try:
            return self.list_json("/apis/vpcresources.k8s.aws/v1beta1/securitygrouppolicies",
                                  "listing SecurityGroupPolicies")
        except ClusterAccessError as e:
            if e.kind == "not-found":
                return []
            raise

    def list_namespaces(self) -> list:
        return self.list_json("/api/v1/namespaces", "listing namespaces")

    def list_nodes(self) -> list:
        return self.list_json("/api/v1/nodes", "listing nodes")

    def list_pods(self, namespace: str | None = None, label_selector: str = "") -> list:
        query = [("labelSelector", label_selector)] if label_selector else []
        if namespace:
            return self.list_json(f"/api/v1/namespaces/{namespace}/pods", f"listing pods in {namespace}",
                                  query=query)
        return self.list_json("/api/v1/pods", "listing pods", query=query)

    def can_i(self, verb: str, resource: str, group: str = "", namespace: str | None = None) -> tuple[bool, str]:
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attrs}}
        r = self.request_json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                              "SelfSubjectAccessReview", body=review)
        return bool(r.status.allowed), (r.status.reason or "")

    # writes ----------------------------------------------------------------------------------
    def set_daemonset_env(self, ns: str, name: str, container: str, env: dict[str, str]) -> None:
        """Strategic-merge patch of env vars on one container (merged by name)."""
        body = {"spec": {"template": {"spec": {"containers": [
            {"name": container, "env": [{"name": k, "value": v} for k, v in env.items()]}]}}}}
        self.call(f"patching daemonset {ns}/{name}", self.apps.patch_namespaced_daemon_set, name, ns, body,
                  field_manager="ambient-tui")


def load_client(kubeconfig: str | None = None, context: str | None = None, target=None) -> KubeClient:
    """A client for the target (default: resolved from kubeconfig/context now). Does not contact
    the server; an exec credential plugin runs (captured) and may raise CredentialPluginError."""
    from ambient_tui.cluster import target as tg

    t = target or tg.resolve(kubeconfig, context)
    return KubeClient(tg.api_client(t), t.context, t.server)


def new_api_client(kubeconfig: str | None = None, context: str | None = None):
    """A kubernetes ApiClient for the watches: like load_client, exec plugins run captured."""
    from ambient_tui.cluster import target as tg

    return tg.api_client(tg.resolve(kubeconfig, context), fail_fast=False)
