"""Headless uninstall against the real local API server with the built helm and charts.

The end state is checked through the API, never through the command's own output.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess

import pytest

from ambient_tui.commands import uninstall as cmd
from ambient_tui.engine.journal import Journal, journal_path

pytestmark = pytest.mark.cluster

MANAGED = {"app.kubernetes.io/managed-by": "ambient-tui"}


@pytest.fixture
def env(admin_env, monkeypatch, tmp_path):
    """The admin environment in this process (the command runs in-process), a fresh journal."""
    for k, v in admin_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def api(kubeconfig):
    from kubernetes import client, config

    c = config.new_client_from_config(str(kubeconfig))
    return types_ns(core=client.CoreV1Api(c), ext=client.ApiextensionsV1Api(c),
                    custom=client.CustomObjectsApi(c), net=client.NetworkingV1Api(c))


def types_ns(**kw):
    import types
    return types.SimpleNamespace(**kw)


def sh(env, *argv, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stdout}\n{proc.stderr}")
    return proc


def helm_install(env, tools, release, chart, *extra):
    sh(env, tools.helm, "install", release, str(tools.charts / chart), "-n", "istio-system",
       "--create-namespace", *extra)


def releases(env, tools) -> list[str]:
    return sorted(r["name"] for r in json.loads(sh(env, tools.helm, "list", "-A", "-a", "-o", "json").stdout))


def uninstall(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="ambient-tui")
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["uninstall", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = cmd.run(args, out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def namespace_names(api) -> set[str]:
    return {n.metadata.name for n in api.core.list_namespace().items}


def crd_names(api, suffix: str) -> list[str]:
    return [c.metadata.name for c in api.ext.list_custom_resource_definition().items
            if c.metadata.name.endswith(suffix)]


def install_gateway_api(env, tools, cluster: str, by_tool: bool = True):
    sh(env, tools.kubectl, "apply", "--server-side", "--force-conflicts", "-f",
       str(tools.gateway_api / "standard-install.yaml"))
    sh(env, tools.kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f",
       str(tools.gateway_api / "standard-install.yaml"))
    if by_tool:  # what the install plan's journal says after its gateway-api-crds step
        j = Journal(journal_path(cluster), run_id="install-1")
        j.write({"type": "plan", "title": "Install Istio", "steps": ["gateway-api-crds"]})
        j.write({"type": "step-end", "step": "gateway-api-crds", "state": "succeeded", "exit_code": 0})
        j.close()


def test_install_then_uninstall_headless(env, tools, api, control_plane):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")
    install_gateway_api(env, tools, control_plane.name)
    # The Gateway API's own admission policy (shipped beside the CRDs): removed with them.
    sh(env, tools.kubectl, "apply", "-f",
       str(tools.gateway_api / "standard" / "gateway.networking.k8s.io_vap_safeupgrades.yaml"))
    api.core.create_namespace({"metadata": {"name": "shop", "labels": {
        "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}}})
    api.custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", "shop", "gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "waypoint", "namespace": "shop"},
        "spec": {"gatewayClassName": "istio-waypoint",
                 "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})
    api.net.create_namespaced_network_policy("shop", {
        "metadata": {"name": "allow-ambient-hbone", "labels": MANAGED},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"port": 15008, "protocol": "TCP"}]}]}})
    api.net.create_namespaced_network_policy("shop", {
        "metadata": {"name": "users-own"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    try:
        n_istio_crds = len(crd_names(api, ".istio.io"))
        assert n_istio_crds

        code, out, err = uninstall("--dry-run", "--purge-crds")
        assert code == 0, err
        assert "Gateway shop/waypoint (waypoint)" in out and "HelmRelease istio-system/istiod" in out
        assert "CustomResourceDefinition httproutes.gateway.networking.k8s.io" in out
        assert "helm uninstall istiod --namespace istio-system" in out
        assert releases(env, tools) == ["istio-base", "istiod"]  # dry-run changed nothing

        code, out, err = uninstall("--yes", "--purge-crds")
        assert code == 0, out + err
        order = [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.+?): ", out, re.M)
                 if m.group(1) not in ("succeeded", "FAILED")]
        assert order == ["unenrol namespace shop", "delete waypoint shop/waypoint",
                         "helm uninstall istiod (istiod) in istio-system",
                         "helm uninstall istio-base (base) in istio-system",
                         f"delete {n_istio_crds} Istio CRDs", "wait until the Istio CRDs are gone",
                         "delete 8 Gateway API CRDs", "wait until the Gateway API CRDs are gone", "delete the Gateway API admission policies",
                         "delete NetworkPolicy shop/allow-ambient-hbone",
                         "delete namespace istio-system"], out
        assert "verified:" in out

        # The end state, through the API.
        assert releases(env, tools) == []
        assert "istio-system" not in namespace_names(api)
        assert crd_names(api, ".istio.io") == []
        assert crd_names(api, ".gateway.networking.k8s.io") == []
        vaps = sh(env, tools.kubectl, "get", "validatingadmissionpolicies", "-o", "name").stdout
        assert "gateway.networking.k8s.io" not in vaps
        labels = api.core.read_namespace("shop").metadata.labels or {}
        assert "istio.io/dataplane-mode" not in labels and "istio.io/use-waypoint" not in labels
        assert [p.metadata.name for p in api.net.list_namespaced_network_policy("shop").items] == ["users-own"]
    finally:
        api.core.delete_namespace("shop")
        for f in ("standard-install.yaml", "standard/gateway.networking.k8s.io_vap_safeupgrades.yaml"):
            sh(env, tools.kubectl, "delete", "-f", str(tools.gateway_api / f), "--ignore-not-found", check=False)


def test_partial_install_with_typed_confirmation(env, tools, api, control_plane):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")

    code, out, err = uninstall(stdin="not-the-cluster\n")
    assert code == 1 and "aborted, nothing changed" in err
    assert releases(env, tools) == ["istio-base", "istiod"]

    code, out, err = uninstall(stdin=control_plane.name + "\n")
    assert code == 0, out + err
    assert f"Type the cluster name ({control_plane.name})" in out
    assert "Istio CRDs kept (pass --purge-crds" in out
    assert releases(env, tools) == []
    assert "istio-system" not in namespace_names(api)
    assert crd_names(api, ".istio.io")  # kept: not asked to purge

    code, out, err = uninstall("--yes", "--purge-crds")  # the CRDs alone, afterwards
    assert code == 0, out + err
    assert crd_names(api, ".istio.io") == []


def test_gateway_api_object_blocks_crd_removal(env, tools, api, control_plane):
    install_gateway_api(env, tools, control_plane.name)
    api.core.create_namespace({"metadata": {"name": "web"}})
    api.custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", "web", "httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop-route", "namespace": "web"},
        "spec": {"parentRefs": [{"name": "gw"}]}})
    try:
        code, out, err = uninstall("--yes", "--purge-crds")
        assert code == 0, out + err
        assert ("kept: Gateway API CRDs are kept: 1 object(s) still use them (HTTPRoute web/shop-route)"
                in out)
        assert "httproutes.gateway.networking.k8s.io" in crd_names(api, ".gateway.networking.k8s.io")
        assert api.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", "web",
                                                       "httproutes", "shop-route")
    finally:
        api.core.delete_namespace("web")
        sh(env, tools.kubectl, "delete", "-f", str(tools.gateway_api / "standard-install.yaml"),
           "--ignore-not-found", check=False)


def test_restricted_user_is_refused_with_nothing_deleted(env, tools, api, restricted_kubeconfig, monkeypatch):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")
    try:
        monkeypatch.setenv("KUBECONFIG", str(restricted_kubeconfig))
        code, out, err = uninstall("--yes", "--purge-crds")
        assert code == 1, out + err
        assert "refused, nothing changed" in err and "cluster-admin" in err
        assert "list customresourcedefinitions" in err
        monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
        assert releases(env, tools) == ["istio-base", "istiod"]
        assert "istio-system" in namespace_names(api)
        assert crd_names(api, ".istio.io")
    finally:
        monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
        code, out, err = uninstall("--yes", "--purge-crds")
        assert code == 0, out + err


def test_interrupted_uninstall_resumes(env, tools, api, control_plane, monkeypatch, tmp_path):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")
    # A helm that fails to remove istio-base: the uninstall stops midway, as if cut off.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "helm").write_text(f'#!/bin/sh\ncase "$*" in *"uninstall istio-base"*) echo "connection reset" >&2; '
                               f'exit 1;; esac\nexec {tools.helm} "$@"\n')
    (fake / "helm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{env['PATH']}")
    code, out, err = uninstall("--yes")
    assert code == 1, out + err
    assert "FAILED" in out and "rerun with --resume" in out
    assert "HelmRelease istio-system/istio-base: remove with `helm uninstall istio-base -n istio-system`" in out
    assert releases(env, tools) == ["istio-base"]  # istiod went, base did not

    monkeypatch.setenv("PATH", env["PATH"])
    code, out, err = uninstall("--yes", "--resume", "--purge-crds")
    assert code == 0, out + err
    assert "helm uninstall istiod" not in out  # done before: not run again
    assert releases(env, tools) == []
    assert "istio-system" not in namespace_names(api)
    assert crd_names(api, ".istio.io") == []
