"""The few writes the mesh needs (merge patch, server-side apply, delete) on KubeClient's
ApiClient, as raw JSON like its reads. KubeClient.request_json sends application/json, which
the API server refuses for PATCH; these say which patch they send."""

from __future__ import annotations

import json

MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
FIELD_MANAGER = "ambient-tui"


def send(kube, method: str, path: str, what: str, body: dict | None = None,
         content_type: str = "application/json", query: list | None = None):
    """One request; the answer's JSON (or None for an empty body). ClusterAccessError on failure."""

    def go(_request_timeout):
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        req = kube.api_client.param_serialize(method, path, query_params=query or [],
                                              header_params=headers,
                                              body=body,
                                              auth_settings=["BearerToken"])
        resp = kube.api_client.call_api(*req, _request_timeout=_request_timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=data.decode("utf-8", "replace"), data=None)
        return json.loads(data) if data else None

    return kube.call(what, go)


def merge_patch(kube, path: str, what: str, body: dict):
    return send(kube, "PATCH", path, what, body, MERGE)


def apply(kube, path: str, what: str, body: dict):
    return send(kube, "PATCH", path, what, body, APPLY,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")])


def delete(kube, path: str, what: str) -> bool:
    """True when deleted, False when it was already gone."""
    from ambient_tui.cluster.client import ClusterAccessError

    try:
        send(kube, "DELETE", path, what)
        return True
    except ClusterAccessError as e:
        if e.kind == "not-found":
            return False
        raise


def namespace_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}"


def set_labels(kube, path: str, what: str, labels: dict[str, str | None]) -> dict:
    """Merge-patch metadata.labels (None removes a label); the object after the patch."""
    return merge_patch(kube, path, what, {"metadata": {"labels": labels}}) or {}
