"""NetworkPolicy dry-run, apply, diff and RBAC refusal on the real local API server.

Fixtures from tests/cluster/conftest.py: `kubeconfig` (admin) and `restricted_kubeconfig`
(user "restricted", edit rights only in namespace "restricted").
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from ambient_tui.netpol import lint as lintmod
from ambient_tui.netpol.cluster import ClusterError, NetpolCluster
from ambient_tui.netpol.parse import from_object, parse_text
from ambient_tui.netpol.templates import allow_dns, allow_hbone, default_deny

pytestmark = pytest.mark.cluster


@pytest.fixture
def admin(kubeconfig) -> NetpolCluster:
    return NetpolCluster(kubeconfig=str(kubeconfig))


@pytest.fixture
def namespace(kubeconfig):
    """A fresh enrolled namespace, deleted afterwards."""
    from kubernetes import client, config

    name = f"netpol-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    core.create_namespace({"metadata": {"name": name,
                                        "labels": {"istio.io/dataplane-mode": "ambient"}}})
    yield name
    core.delete_namespace(name)


def test_dry_run_does_not_persist(admin, namespace):
    result = admin.dry_run(default_deny(namespace))
    assert result["metadata"]["name"] == "default-deny"
    assert admin.list_policies(namespace) == []


def test_apply_then_diff_then_list(admin, namespace):
    diff = admin.diff(allow_hbone(namespace))
    assert diff.startswith(f"--- cluster/{namespace}/allow-ambient-hbone")
    applied = admin.apply(allow_hbone(namespace))
    assert applied["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ambient-tui"
    managers = {m["manager"] for m in applied["metadata"].get("managedFields", [])}
    assert "ambient-tui" in managers
    assert admin.diff(allow_hbone(namespace)) == ""  # applied == desired
    changed = allow_hbone(namespace)
    changed["spec"]["podSelector"] = {"matchLabels": {"app": "web"}}
    assert "+      app: web" in admin.diff(changed)
    names = [p["metadata"]["name"] for p in admin.list_managed(namespace)]
    assert names == ["allow-ambient-hbone"]
    assert namespace in admin.enrolled_namespaces()


def test_cluster_policies_join_the_union(admin, namespace):
    admin.apply(allow_hbone(namespace))
    admin.apply(allow_dns(namespace))
    context = [from_object(p) for p in admin.list_policies(namespace)]
    deny = parse_text(yaml.safe_dump(default_deny(namespace)))
    assert lintmod.lint(deny, cluster_policies=context) == []
    assert lintmod.has_errors(lintmod.lint(deny))


def test_server_rejects_invalid_policy(admin, namespace):
    bad = allow_hbone(namespace)
    bad["spec"]["ingress"][0]["ports"][0]["port"] = 70000
    with pytest.raises(ClusterError) as info:
        admin.dry_run(bad)
    assert info.value.status == 422 and "port" in info.value.message


def test_missing_namespace_is_named(admin):
    with pytest.raises(ClusterError) as info:
        admin.dry_run(allow_hbone("no-such-namespace-x1"))
    assert info.value.status == 404
    assert "Namespace 'no-such-namespace-x1' not found" in info.value.message


def test_restricted_user_apply_is_forbidden(restricted_kubeconfig, namespace):
    user = NetpolCluster(kubeconfig=str(restricted_kubeconfig))
    with pytest.raises(ClusterError) as info:
        user.apply(allow_hbone(namespace))
    assert info.value.status == 403
    assert info.value.message.startswith(
        f"Forbidden: your user may not patch networkpolicies in namespace '{namespace}'")


def test_restricted_user_can_apply_in_own_namespace(restricted_kubeconfig):
    user = NetpolCluster(kubeconfig=str(restricted_kubeconfig))
    result = user.dry_run(allow_hbone("restricted"))
    assert result["metadata"]["namespace"] == "restricted"
