"""Headless uninstall against the real local API server with the built helm and charts.

The end state is checked through the API, never through the command's own output. Every test
starts from, and leaves, a cluster without Istio (the autouse `clean_slate` fixture): the
cluster tier shares one control plane and runs files in name order.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess

import pytest
from istio_cleanup import clean_cluster  # same folder

from ambient_tui.commands import uninstall as cmd
from ambient_tui.engine.journal import Journal

# Generous: helm --wait and namespace deletion are slow on 2 shared cores.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

MANAGED = {"app.kubernetes.io/managed-by": "ambient-tui"}
MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"


@pytest.fixture
def env(admin_env, monkeypatch, tmp_path):
    """The admin environment in this process (the command runs in-process), a fresh journal."""
    for k, v in admin_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture(autouse=True)
def clean_slate(admin_env, tools):
    clean_cluster(admin_env)
    yield
    clean_cluster(admin_env)


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
    if by_tool:  # what the install's record step leaves on the CRDs it created (in the cluster)
        sh(env, tools.kubectl, "label", "--overwrite", "-f", str(tools.gateway_api / "standard-install.yaml"),
           "app.kubernetes.io/managed-by=ambient-tui")


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
        # pinned to the one target: helm --kubeconfig PINNED --kube-context CONTEXT uninstall ...
        assert "--kube-context arn:aws:eks:" in out and " uninstall istiod --namespace istio-system" in out
        assert releases(env, tools) == ["istio-base", "istiod"]  # dry-run changed nothing

        code, out, err = uninstall("--yes", "--purge-crds")
        assert code == 0, out + err
        order = [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.+?): ", out, re.M)
                 if m.group(1) not in ("succeeded", "FAILED")]
        assert order == ["unenrol namespace shop", "delete waypoint shop/waypoint",
                         "helm uninstall istiod (istiod) in istio-system",
                         "helm uninstall istio-base (base) in istio-system",
                         f"delete {n_istio_crds} Istio CRDs", "wait until the Istio CRDs are gone",
                         "delete 8 Gateway API CRDs this tool created", "wait until the Gateway API CRDs are gone",
                         "delete the Gateway API admission policies",
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
    assert "HelmRelease istio-system/istio-base: remove with `helm --kube-context arn:aws:eks:" in out
    assert " uninstall istio-base -n istio-system`" in out
    assert releases(env, tools) == ["istio-base"]  # istiod went, base did not

    monkeypatch.setenv("PATH", env["PATH"])
    code, out, err = uninstall("--yes", "--resume", "--purge-crds")
    assert code == 0, out + err
    assert "helm uninstall istiod" not in out  # done before: not run again
    assert releases(env, tools) == []
    assert "istio-system" not in namespace_names(api)
    assert crd_names(api, ".istio.io") == []


# --- --revert-cni --------------------------------------------------------------------------

def run_enforcing_mode_fix(kubeconfig, journal_name: str, managed: bool, cluster=None, region=None) -> None:
    """The preflight fix, through the engine Runner with a journal, as the install runs it."""
    import asyncio

    from ambient_tui.checks.vpc_cni import enforcing_mode_fix_plan
    from ambient_tui.cluster.client import load_client
    from ambient_tui.engine.runner import Runner

    journal = Journal.for_cluster(journal_name)
    runner = Runner(enforcing_mode_fix_plan(load_client(str(kubeconfig)), managed, cluster, region),
                    journal=journal)
    try:
        assert asyncio.run(runner.run())
    finally:
        journal.close()


@pytest.fixture
def aws_node_restored(control_plane):
    before = control_plane.aws_node_env()
    yield control_plane
    control_plane.set_aws_node_env(**{MODE: before.get(MODE)})


@pytest.mark.parametrize("previous", ["strict", None])
def test_revert_cni_self_managed_restores_the_daemonset(env, kubeconfig, control_plane, aws_node_restored,
                                                       previous):
    control_plane.set_aws_node_env(**{MODE: previous})
    # The install journals under the kube context name; the uninstall must find it there.
    run_enforcing_mode_fix(kubeconfig, control_plane.admin_context, managed=False)
    assert control_plane.aws_node_env()[MODE] == "standard"
    shown = previous or "unset (the VPC CNI default, strict)"

    code, out, err = uninstall("--dry-run", "--revert-cni")
    assert code == 0, err
    assert f"revert VPC CNI enforcing mode to {shown} (self-managed DaemonSet kube-system/aws-node)" in out
    code, out, err = uninstall("--yes")  # without the flag: kept, and said so
    assert code == 0, out + err
    assert f"VPC CNI enforcing mode stays standard (this tool changed it from {shown}" in out
    assert control_plane.aws_node_env()[MODE] == "standard"

    code, out, err = uninstall("--yes", "--revert-cni")
    assert code == 0, out + err
    assert f"VPC CNI enforcing mode back to {shown}" in out
    env_now = control_plane.aws_node_env()
    if previous is None:
        assert MODE not in env_now
    else:
        assert env_now[MODE] == previous
    # Reverted: the journal now says so, and there is nothing more to revert.
    code, out, err = uninstall("--yes", "--revert-cni")
    assert code == 0 and "nothing to revert" in out, out + err


def test_revert_cni_managed_calls_update_addon(env, kubeconfig, control_plane, aws_local, aws_node_restored,
                                               monkeypatch):
    from ambient_tui.aws import eks

    for k, v in aws_local.env.items():
        monkeypatch.setenv(k, v)
    eks.update_vpc_cni_env(aws_local.cluster, aws_local.region, {MODE: "strict"})
    try:
        run_enforcing_mode_fix(kubeconfig, control_plane.name, managed=True,
                               cluster=aws_local.cluster, region=aws_local.region)
        n = len([c for c in aws_local.calls() if c["op"] == "UpdateAddon"])

        code, out, err = uninstall("--yes", "--revert-cni")
        assert code == 0, out + err
        assert f"revert VPC CNI enforcing mode to strict (EKS managed add-on vpc-cni of {aws_local.cluster})" in out
        ups = [c for c in aws_local.calls() if c["op"] == "UpdateAddon"]
        assert len(ups) == n + 1  # exactly one: the revert
        assert json.loads(ups[-1]["request"]["configurationValues"])["env"][MODE] == "strict"
        assert ups[-1]["request"]["resolveConflicts"] == "PRESERVE"
        assert control_plane.aws_node_env()[MODE] == "strict"  # the add-on rolled it out
    finally:
        eks.update_vpc_cni_env(aws_local.cluster, aws_local.region, {MODE: "standard"})


# --- gateway namespace, istioctl -------------------------------------------------------------

def test_gateway_namespace_removed_when_the_release_was_the_last_thing(env, tools, api):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")
    sh(env, tools.helm, "install", "istio-ingress", str(tools.charts / "gateway"), "-n", "istio-ingress",
       "--create-namespace")
    api.core.create_namespaced_config_map("istio-ingress", {"metadata": {"name": "team-notes"}})

    code, out, err = uninstall("--dry-run")
    assert code == 0, err
    assert "kept: namespace istio-ingress is kept: it also holds ConfigMap team-notes" in out
    assert "Namespace istio-ingress" not in out.split("kept:")[0]

    api.core.delete_namespaced_config_map("team-notes", "istio-ingress")
    code, out, err = uninstall("--yes")
    assert code == 0, out + err
    assert "Namespace istio-ingress (the gateway release was the last thing in it)" in out
    assert releases(env, tools) == []
    assert not {"istio-system", "istio-ingress"} & namespace_names(api)


def istioctl_objects(env, tools) -> list[str]:
    return sh(env, tools.kubectl, "get", "deploy,ds,svc,cm,sa,clusterrole,clusterrolebinding,"
              "mutatingwebhookconfiguration,validatingwebhookconfiguration", "-A",
              "-l", "operator.istio.io/component", "-o", "name").stdout.split()


def test_istioctl_install_is_discovered_and_purged(env, tools, api):
    # Only the objects matter here, not their readiness (kwok nodes flap NotReady when the
    # machine is loaded, and istioctl then waits its full readiness timeout).
    proc = sh(env, tools.istioctl, "install", "--set", "profile=ambient", "--skip-confirmation",
              "--readiness-timeout", "90s", check=False)
    objs = istioctl_objects(env, tools)
    assert "deployment.apps/istiod" in objs and "daemonset.apps/ztunnel" in objs, proc.stdout + proc.stderr
    assert releases(env, tools) == []
    api.core.create_namespace({"metadata": {"name": "ctl-shop", "labels": {"istio.io/dataplane-mode": "ambient"}}})
    try:
        code, out, err = uninstall("--dry-run")
        assert code == 0, err
        assert "istioctl install (istioctl uninstall --purge):" in out
        for want in ("Deployment istio-system/istiod", "DaemonSet istio-system/ztunnel",
                     "DaemonSet istio-system/istio-cni-node", "MutatingWebhookConfiguration istio-sidecar-injector",
                     "CustomResourceDefinition authorizationpolicies.security.istio.io"):
            assert f"      {want}\n" in out, want
        assert "istioctl uninstall --purge -y" in out
        assert "Istio CRDs kept" not in out  # istioctl's purge takes its CRDs

        code, out, err = uninstall("--yes")
        assert code == 0, out + err
        assert "verified:" in out
        assert istioctl_objects(env, tools) == []
        assert "istio-system" not in namespace_names(api)
        assert crd_names(api, ".istio.io") == []
        assert "istio.io/dataplane-mode" not in (api.core.read_namespace("ctl-shop").metadata.labels or {})
    finally:
        api.core.delete_namespace("ctl-shop")
