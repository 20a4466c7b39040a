"""The install session's decisions from preflight results (no cluster: the checks' results are
given, no release exists, so no helm is asked). The cluster tier drives the same session
through `install` and the TUI."""

from __future__ import annotations

import pytest

from ambient_tui.checks.model import FAIL, PASS, WARN, Check
from ambient_tui.plans.install_session import InstallSession, values_diff
from ambient_tui.settings import Settings


def gw_check(present=False, version="v1.5.1", channel="standard", older=False, owner="field managers kubectl"):
    data = {"present": present}
    if present:
        data.update(version=version, channel=channel, older=older, owner=owner,
                    names=["gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"])
    return Check("gateway-api", "Gateway API CRDs", WARN if older else PASS, "", data=data)


def results(*extra):
    return [Check("cluster-access", "c", PASS, data={"context": "prod"}),
            Check("existing-istio", "e", PASS, data={"releases": [], "istiod_mode": None}), *extra]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the pinned kubeconfig goes here


def prod_target():
    """A real kubeconfig with one context, "prod", resolved as every front end does."""
    import tempfile
    from pathlib import Path

    from ambient_tui.cluster.target import resolve

    path = Path(tempfile.mkdtemp()) / "config"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
                    "clusters: [{name: prod, cluster: {server: 'https://prod.example:443'}}]\n"
                    "users: [{name: admin, user: {token: t}}]\n"
                    "contexts: [{name: prod, context: {cluster: prod, user: admin}}]\n")
    return resolve(str(path), "prod")


def session(tmp_path=None, **kw):
    return InstallSession(Settings(istio_version="1.31.0", **kw), cluster_target=prod_target(),
                          kube_factory=lambda: pytest.fail("no step runs here"))


def ids_argv(plan):
    return [(s.id, s.argv) for s in plan.steps]


def test_absent_crds_are_applied_and_marked_as_ours():
    out = session().decide(results(gw_check()))
    step = out.plan.step("gateway-api-crds")
    assert step.kind == "crds" and "--server-side" in step.argv and step.argv[1] == "--kubeconfig" \
        and step.argv[3:5] == ["--context", "prod"]  # pinned to the target (cluster/target.py)
    assert out.plan.step("record-install").kind == "record"
    assert any("none installed: apply v1.5.1 (experimental)" in n for n in out.plan.notes)
    assert not out.refusals and out.decisions[0].kind == "fresh"


def test_new_enough_foreign_crds_are_left_untouched():
    out = session().decide(results(gw_check(present=True, version="v1.5.1", channel="standard")))
    assert "gateway-api-crds" not in [s.id for s in out.plan.steps]
    assert any("v1.5.1 (standard) owned by field managers kubectl is left untouched" in n for n in out.plan.notes)


def test_older_crds_are_upgraded_in_their_channel_only_after_consent(tmp_path):
    (tmp_path / "experimental-install.yaml").write_text(
        "metadata:\n  annotations:\n    gateway.networking.k8s.io/channel: experimental\n")
    (tmp_path / "standard-install.yaml").write_text(
        "metadata:\n  annotations:\n    gateway.networking.k8s.io/channel: standard\n")
    s = InstallSession(Settings(istio_version="1.31.0", gateway_api_file=str(tmp_path / "experimental-install.yaml")),
                       kube_context="prod")
    old = gw_check(present=True, version="v1.2.0", channel="standard", older=True)
    refused = s.decide(results(old))
    assert [d.reason for d in refused.refusals] == [
        "Gateway API CRDs v1.2.0 (standard, owner field managers kubectl) are older than v1.5.1; "
        "pass --upgrade-gateway-api to upgrade them in their standard channel"]
    agreed = s.decide(results(old), upgrade_gateway_api=True)
    assert not agreed.refusals and [d.subject for d in agreed.consents] == ["gateway-api"]
    step = agreed.plan.step("gateway-api-crds")
    assert str(tmp_path / "standard-install.yaml") in step.argv  # never the experimental file
    assert step.title == "upgrade Gateway API CRDs v1.2.0 -> v1.5.1 (standard)"
    assert "owned by field managers kubectl" in step.note


def test_older_crds_and_a_file_of_the_other_channel_are_refused(tmp_path):
    f = tmp_path / "crds.yaml"
    f.write_text("metadata:\n  annotations:\n    gateway.networking.k8s.io/channel: experimental\n")
    s = InstallSession(Settings(istio_version="1.31.0", gateway_api_file=str(f)), kube_context="prod")
    out = s.decide(results(gw_check(present=True, version="v1.2.0", older=True)), upgrade_gateway_api=True)
    assert "holds the experimental channel; the installed Gateway API CRDs are standard" in out.refusals[0].reason


def test_a_sidecar_istiod_is_refused_with_the_reason():
    res = results(gw_check())
    res[1] = Check("existing-istio", "e", FAIL, "", data={"releases": [], "istiod_mode": "sidecar"})
    out = session().decide(res)
    assert "runs in sidecar mode" in out.refusals[0].reason and "migrat" in out.refusals[0].reason


def test_same_state_same_plan_and_every_step_pinned():
    a = session().decide(results(gw_check()))
    b = session().decide(results(gw_check()))
    assert ids_argv(a.plan) == ids_argv(b.plan)
    for s in a.plan.steps:
        if s.argv and s.argv[0] == "helm":
            assert s.argv[-2:] == ["--kube-context", "prod"]
        elif s.argv and s.argv[0] == "kubectl":
            assert s.argv[1] == "--kubeconfig" and s.argv[3:5] == ["--context", "prod"]


def test_values_diff_names_what_is_kept_and_what_is_set():
    line = values_diff({"global": {"hub": "my.registry/istio"}, "meshConfig": {"accessLogFile": "/dev/stdout"}},
                       ["profile=ambient"])
    assert line == ("upgrade keeps its values: global.hub, meshConfig.accessLogFile; "
                    "sets profile=ambient (was unset)")
    assert values_diff({"profile": "ambient"}, ["profile=ambient"]) == "upgrade no values of its own to keep"


def test_gateway_api_ownership_reads_annotations_managers_labels_and_helm():
    from ambient_tui.checks.core import gateway_api_ownership
    from ambient_tui.cluster.raw import wrap

    def crd(name, labels=None, annotations=None, managers=()):
        return wrap({"metadata": {"name": name, "labels": labels, "annotations": {
            "gateway.networking.k8s.io/bundle-version": "v1.2.0",
            "gateway.networking.k8s.io/channel": "standard", **(annotations or {})},
            "managedFields": [{"manager": m, **({"subresource": "status"} if m == "kube-apiserver" else {})}
                              for m in managers]}})
    foreign = gateway_api_ownership([crd("gateways.gateway.networking.k8s.io", managers=("flux", "kube-apiserver")),
                                     crd("widgets.example.com")])
    assert foreign["names"] == ["gateways.gateway.networking.k8s.io"]
    assert (foreign["version"], foreign["channel"], foreign["owner"]) == ("v1.2.0", "standard", "field managers flux")
    helm = gateway_api_ownership([crd("gateways.gateway.networking.k8s.io", annotations={
        "meta.helm.sh/release-name": "gw", "meta.helm.sh/release-namespace": "infra"})])
    assert helm["owner"] == "Helm release infra/gw"
    ours = gateway_api_ownership([crd("gateways.gateway.networking.k8s.io",
                                      labels={"app.kubernetes.io/managed-by": "ambient-tui"})])
    assert ours["owner"] == "ambient-tui" and ours["ours"] == ["gateways.gateway.networking.k8s.io"]


def test_managed_fix_changes_only_the_mode_and_records_what_was_in_force(monkeypatch):
    """The add-on's configurationValues say ENABLE_POD_ENI=false while aws-node runs with true:
    UpdateAddon must not write it back; the record keeps both as they were. (The EKS calls are
    replaced here; the cluster tier runs them against the loopback add-on server.)"""
    import json

    from ambient_tui.aws import eks
    from ambient_tui.checks import vpc_cni

    mode = vpc_cni.MODE_VAR
    cfg_text = json.dumps({"env": {"ENABLE_POD_ENI": "false", mode: "standard"}})
    sent = []
    monkeypatch.setattr(eks, "describe_vpc_cni_addon", lambda c, r: {"configurationValues": cfg_text})
    monkeypatch.setattr(eks, "put_vpc_cni_config", lambda c, r, cfg: sent.append(cfg) or "UpdateAddon ok")

    class Kube:
        def get_daemonset(self, ns, name):
            return {"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": [
                {"name": "ENABLE_POD_ENI", "value": "true"}, {"name": mode, "value": "strict"}]}]}}}}

    out = vpc_cni.enforcing_mode_fix_steps(Kube(), True, "prod", "eu-west-1")[0].api.func()
    assert sent == [{"env": {mode: "standard"}}]
    assert any("left to what aws-node runs with" in line and "ENABLE_POD_ENI=true" in line for line in out)
    change = vpc_cni.parse_record(out)
    assert change.previous == "strict" and change.addon_config == cfg_text
    assert json.loads(change.ds_env) == {"ENABLE_POD_ENI": "true", mode: "strict"}
