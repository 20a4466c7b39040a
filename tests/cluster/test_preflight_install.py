"""Preflight and the headless install against the real local control plane, real helm and charts."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from istio_cleanup import clean_cluster  # same folder

pytestmark = pytest.mark.cluster

MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"


def cli(env, *args, timeout=600, stdin=None):
    return subprocess.run([sys.executable, "-m", "ambient_tui.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, input=stdin, cwd=Path(__file__).parents[2])


@pytest.fixture(scope="module")
def env(admin_env, tmp_path_factory):
    return {**admin_env, "XDG_STATE_HOME": str(tmp_path_factory.mktemp("state"))}


def checks(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def helm_releases(env) -> list[dict]:
    out = subprocess.run(["helm", "list", "-A", "-a", "-o", "json"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return json.loads(out or "[]")


def test_preflight_passes_on_the_sandbox(env, control_plane, tools):
    # Local charts: the sandbox has no network, and preflight renders the charts it would install.
    p = cli(env, "preflight", "--json", "--istio-version", "1.31.0", "--charts", str(tools.charts))
    c = checks(p)
    assert p.returncode == 0, json.dumps(c, indent=1)
    for cid in ("cluster-access", "kubernetes-version", "helm", "istioctl", "aws-eks", "vpc-cni",
                "rbac", "nodes", "existing-istio", "gateway-api", "istioctl-precheck"):
        assert c[cid]["status"] in ("pass", "warn"), (cid, c[cid])
        assert set(c[cid]) == {"id", "title", "status", "detail", "fix"}
    assert "EKS managed add-on" in c["vpc-cni"]["detail"]
    assert "endpoint matches" in c["aws-eks"]["detail"]
    assert "v1.34" in c["cluster-access"]["detail"]
    # DescribeCluster's platformVersion, answered by the loopback AWS server (moto).
    assert re.search(r"EKS 1\.34 platform eks\.\d+", c["kubernetes-version"]["detail"]), c["kubernetes-version"]
    # The real istioctl 1.31.0 ran `x precheck` against the control plane.
    assert c["istioctl-precheck"]["detail"] == "no issues found; Istio is safe to install or upgrade"


GATEWAY_CLASS_CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gatewayclasses.gateway.networking.k8s.io"


@pytest.fixture
def old_gateway_class_crd(control_plane):
    """A GatewayClass CRD that serves only v1alpha2, as a very old Gateway API install left it."""
    api = control_plane.api()
    _delete_crd(api)
    api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gatewayclasses.gateway.networking.k8s.io",
                     # the API server requires this on *.k8s.io groups
                     "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/891"}},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Cluster",
                 "names": {"kind": "GatewayClass", "listKind": "GatewayClassList", "plural": "gatewayclasses",
                           "singular": "gatewayclass"},
                 "versions": [{"name": "v1alpha2", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    yield
    _delete_crd(api)


def _delete_crd(api) -> None:
    api.request("DELETE", GATEWAY_CLASS_CRD)
    for _ in range(300):  # deletion is asynchronous (finalizer)
        if api.request("GET", GATEWAY_CLASS_CRD)[0] == 404:
            return
        time.sleep(0.2)
    raise AssertionError("the GatewayClass CRD was not deleted")


def test_precheck_findings_fail_preflight_with_codes(env, old_gateway_class_crd):
    p = cli(env, "preflight", "--json", "--istio-version", "1.31.0")
    c = checks(p)["istioctl-precheck"]
    assert p.returncode == 1 and c["status"] == "fail", c
    assert "error IST0156 (CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io)" in c["detail"]
    assert "warning IST0172" in c["detail"]
    assert "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/" in c["fix"]


def _kubeconfig_variant(src: Path, dst: Path, **changes) -> Path:
    data = yaml.safe_load(src.read_text())
    if "server" in changes:
        for cl in data["clusters"]:
            cl["cluster"]["server"] = changes["server"]
    if "token" in changes:
        for u in data["users"]:
            u["user"]["token"] = changes["token"]
    dst.write_text(yaml.safe_dump(data))
    return dst


def test_access_failures_have_distinct_messages(env, kubeconfig, tmp_path):
    wrong = cli(env, "preflight", "--json", "--context", "no-such-context")
    c = checks(wrong)
    assert wrong.returncode == 1 and c["cluster-access"]["status"] == "fail"
    assert "context 'no-such-context' is not in kubeconfig" in c["cluster-access"]["detail"]

    expired = _kubeconfig_variant(kubeconfig, tmp_path / "expired", token="deadbeef" * 4)
    p = cli(env, "preflight", "--json", "--kubeconfig", str(expired))
    d = checks(p)["cluster-access"]["detail"]
    assert p.returncode == 1 and "401 Unauthorized" in d and "expired" in d
    # precheck starts before the connection is known; it is then stopped and skipped
    assert checks(p)["istioctl-precheck"]["status"] == "skip"

    down = _kubeconfig_variant(kubeconfig, tmp_path / "down", server="https://127.0.0.1:1")
    p = cli(env, "preflight", "--json", "--kubeconfig", str(down))
    c = checks(p)
    assert p.returncode == 1 and "unreachable" in c["cluster-access"]["detail"]
    assert c["rbac"]["status"] == "skip" and c["istioctl-precheck"]["status"] == "skip"
    # helm list also starts from the kubeconfig alone; it is stopped and the check skipped too
    assert c["existing-istio"]["status"] == "skip", c["existing-istio"]
    # AWS needs no API server: it says why this one is unreachable (a stale kubeconfig)
    assert c["aws-eks"]["status"] == "fail"
    assert "differs from the kube context server https://127.0.0.1:1" in c["aws-eks"]["detail"]
    assert "aws eks update-kubeconfig --name ambient-sandbox" in c["aws-eks"]["fix"]
    # and the install never starts
    p = cli(env, "install", "--yes", "--kubeconfig", str(down))
    assert p.returncode == 1 and "nothing was installed" in p.stderr


@pytest.fixture
def strict_sg(control_plane):
    control_plane.set_aws_node_env(ENABLE_POD_ENI="true", **{MODE: "strict"})
    try:
        control_plane.create_security_group_policy("default", "sgp-test", ["sg-0123456789abcdef0"],
                                                   {"app": "payments"})
    except Exception:  # already there from an earlier run of this fixture
        pass
    yield control_plane
    control_plane.set_aws_node_env(ENABLE_POD_ENI="false", **{MODE: "standard"})
    control_plane.api().request(
        "DELETE", "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/sgp-test")


def _run_fix(kubeconfig, managed, cluster=None, region=None):
    from ambient_tui.checks.vpc_cni import enforcing_mode_fix_plan
    from ambient_tui.cluster.client import load_client
    from ambient_tui.engine.runner import Runner

    kube = load_client(str(kubeconfig))
    plan = enforcing_mode_fix_plan(kube, managed, cluster, region)
    lines = []
    runner = Runner(plan)
    runner.subscribe(lambda ev: lines.append(ev.line) if ev.line else None)
    assert asyncio.run(runner.run()), lines
    return lines


def test_strict_mode_fails_then_self_managed_fix_patches_aws_node(env, strict_sg, kubeconfig):
    p = cli(env, "preflight", "--json", "--istio-version", "1.28.6")
    c = checks(p)["vpc-cni"]
    assert p.returncode == 1 and c["status"] == "fail", c
    assert "SecurityGroupPolicies: 1" in c["detail"] and "ENABLE_POD_ENI=true" in c["detail"]
    assert "update-addon" in c["fix"]  # the sandbox's vpc-cni is a managed add-on
    # With the branch-ENI probe fix the same cluster is a warning.
    assert checks(cli(env, "preflight", "--json", "--istio-version", "1.31.0"))["vpc-cni"]["status"] == "warn"

    lines = _run_fix(kubeconfig, managed=False)
    assert strict_sg.aws_node_env()[MODE] == "standard"
    assert any("patched daemonset kube-system/aws-node" in l for l in lines)
    assert any("no pods" in l or "restart" in l for l in lines)
    assert checks(cli(env, "preflight", "--json", "--istio-version", "1.28.6"))["vpc-cni"]["status"] == "pass"


def test_managed_fix_calls_update_addon(env, strict_sg, kubeconfig, aws_local, monkeypatch):
    for k, v in aws_local.env.items():
        monkeypatch.setenv(k, v)
    before = len([c for c in aws_local.calls() if c["op"] == "UpdateAddon"])
    lines = _run_fix(kubeconfig, managed=True, cluster=aws_local.cluster, region=aws_local.region)
    ups = [c for c in aws_local.calls() if c["op"] == "UpdateAddon"]
    assert len(ups) == before + 1
    assert json.loads(ups[-1]["request"]["configurationValues"])["env"][MODE] == "standard"
    assert any(l.startswith("UpdateAddon vpc-cni") for l in lines)
    assert strict_sg.aws_node_env()[MODE] == "standard"  # the add-on mirrors it onto aws-node


def test_restricted_user_fails_rbac_and_installs_nothing(env, restricted_kubeconfig):
    before = helm_releases(env)
    p = cli(env, "preflight", "--json", "--kubeconfig", str(restricted_kubeconfig))
    c = checks(p)
    assert p.returncode == 1 and c["rbac"]["status"] == "fail"
    assert "create customresourcedefinitions" in c["rbac"]["detail"]
    p = cli(env, "install", "--yes", "--kubeconfig", str(restricted_kubeconfig))
    assert p.returncode == 1 and "rbac" in p.stderr and "nothing was installed" in p.stderr
    assert helm_releases(env) == before


@pytest.fixture
def clean_istio(env):
    clean_cluster(env)
    yield
    clean_cluster(env)  # later tests install their own


def test_full_install_then_second_install_is_noop(env, tools, clean_istio):
    gw = Path(tools.gateway_api) / "experimental-install.yaml"
    args = ["install", "--yes", "--istio-version", "1.31.0", "--charts", str(tools.charts),
            "--gateway-api-file", str(gw)]
    p = cli(env, *args, timeout=1200)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "▶ helm: istiod" in p.stdout and "installed Istio 1.31.0" in p.stdout
    rel = {r["name"]: r for r in helm_releases(env)}
    for name in ("istio-base", "istiod", "istio-cni", "ztunnel"):
        assert rel[name]["status"] == "deployed"
    revisions = {n: r["revision"] for n, r in rel.items()}

    st = cli(env, "status", "--json")
    s = json.loads(st.stdout)
    assert st.returncode == 0, st.stdout
    assert s["workloads"]["istiod"]["ok"] and s["workloads"]["ztunnel"]["ok"]

    again = cli(env, *args)
    assert again.returncode == 0, again.stderr
    assert "already installed: Istio 1.31.0" in again.stdout and "nothing to change" in again.stdout
    assert {r["name"]: r["revision"] for r in helm_releases(env)} == revisions
