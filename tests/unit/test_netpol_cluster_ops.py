"""Cluster operations against fake typed APIs: arguments sent and errors mapped.

The real API server is exercised in tests/cluster/test_netpol_cluster.py.
"""

from __future__ import annotations

import json
import types

import pytest
from kubernetes.client.exceptions import ApiException

from ambient_tui.netpol.cluster import ClusterError, NetpolCluster, map_api_error, unified_diff
from ambient_tui.netpol.templates import allow_hbone


def response(obj: dict) -> types.SimpleNamespace:
    return types.SimpleNamespace(data=json.dumps(obj).encode())


def api_error(status: int, message: str, **details) -> ApiException:
    return ApiException(status=status, reason="x", body=json.dumps(
        {"kind": "Status", "message": message, "details": details}))


class FakeNetworking:
    def __init__(self, live: dict | None = None, error: ApiException | None = None):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.live, self.error = live, error

    def patch_namespaced_network_policy(self, name, namespace, body, **kw):
        self.calls.append(("patch", (name, namespace, body), kw))
        if self.error:
            raise self.error
        out = dict(body, metadata=dict(body["metadata"], uid="u1", resourceVersion="7",
                                       managedFields=[{"manager": "ambient-tui"}]))
        return response(out)

    def read_namespaced_network_policy(self, name, namespace, **kw):
        self.calls.append(("read", (name, namespace), kw))
        if self.live is None:
            raise api_error(404, f'networkpolicies.networking.k8s.io "{name}" not found',
                            kind="networkpolicies", name=name)
        return response(self.live)

    def list_namespaced_network_policy(self, namespace, **kw):
        self.calls.append(("list", (namespace,), kw))
        return response({"items": [{"metadata": {"name": "a", "namespace": namespace},
                                    "spec": {"podSelector": {}}}]})


class FakeCore:
    def list_namespace(self, **kw):
        return response({"items": [
            {"metadata": {"name": "demo", "labels": {"istio.io/dataplane-mode": "ambient"}}},
            {"metadata": {"name": "plain"}}]})


def test_apply_is_server_side_with_field_manager_and_label():
    net = FakeNetworking()
    ops = NetpolCluster(core=FakeCore(), networking=net)
    result = ops.apply(allow_hbone("demo"))
    kind, (name, ns, body), kw = net.calls[0]
    assert (kind, name, ns) == ("patch", "allow-ambient-hbone", "demo")
    assert kw["field_manager"] == "ambient-tui"
    assert kw["_content_type"] == "application/apply-patch+yaml"
    assert kw["_request_timeout"] and "dry_run" not in kw
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ambient-tui"
    assert result["kind"] == "NetworkPolicy"


def test_dry_run_sends_dry_run_all_and_namespace_default():
    net = FakeNetworking()
    doc = allow_hbone(None)
    NetpolCluster(core=FakeCore(), networking=net).dry_run(doc, namespace="demo")
    assert net.calls[0][2]["dry_run"] == "All" and net.calls[0][1][1] == "demo"
    assert "namespace" not in doc["metadata"]  # the caller's object is not modified


def test_missing_namespace_needs_a_choice():
    with pytest.raises(ClusterError, match="no metadata.namespace"):
        NetpolCluster(core=FakeCore(), networking=FakeNetworking()).apply(allow_hbone(None))


def test_diff_new_policy_and_changed_policy():
    net = FakeNetworking()
    ops = NetpolCluster(core=FakeCore(), networking=net)
    diff = ops.diff(allow_hbone("demo"))
    assert diff.startswith("--- cluster/demo/allow-ambient-hbone")
    assert "+  name: allow-ambient-hbone" in diff and "managedFields" not in diff
    live = ops.apply(allow_hbone("demo"))
    net.live = live
    assert ops.diff(allow_hbone("demo")) == ""


def test_namespaces_marks_enrolled():
    ops = NetpolCluster(core=FakeCore(), networking=FakeNetworking())
    assert [(n.name, n.enrolled) for n in ops.namespaces()] == [("demo", True), ("plain", False)]
    assert ops.list_policies("demo")[0]["apiVersion"] == "networking.k8s.io/v1"


def test_forbidden_is_mapped_with_verb_and_resource():
    err = api_error(403, 'networkpolicies.networking.k8s.io "x" is forbidden: User "bob" cannot '
                    'patch resource "networkpolicies" in API group "networking.k8s.io" in the '
                    'namespace "demo"', kind="networkpolicies")
    ops = NetpolCluster(core=FakeCore(), networking=FakeNetworking(error=err))
    with pytest.raises(ClusterError) as info:
        ops.apply(allow_hbone("demo"))
    assert info.value.status == 403
    assert info.value.message.startswith("Forbidden: your user may not patch networkpolicies "
                                         "in namespace 'demo'")
    assert 'User "bob"' in info.value.message


def test_namespace_not_found_is_mapped():
    err = api_error(404, 'namespaces "nope" not found', kind="namespaces", name="nope")
    ops = NetpolCluster(core=FakeCore(), networking=FakeNetworking(error=err))
    with pytest.raises(ClusterError, match="Namespace 'nope' not found"):
        ops.apply(allow_hbone("nope"))


def test_invalid_lists_causes():
    err = api_error(422, "invalid", causes=[{"field": "spec.ingress[0].ports[0].port",
                                             "message": "must be between 1 and 65535"}])
    mapped = map_api_error(err, verb="patch", namespace="demo", name="x")
    assert "spec.ingress[0].ports[0].port: must be between 1 and 65535" in mapped.message


def test_unreachable_server():
    mapped = map_api_error(ConnectionRefusedError("refused"), verb="list")
    assert mapped.message.startswith("Cannot reach the API server")


def test_unified_diff_ignores_server_fields():
    a = {"metadata": {"name": "x", "uid": "1", "resourceVersion": "2"}, "status": {}}
    b = {"metadata": {"name": "x"}}
    assert unified_diff(a, b, "ns/x") == ""
