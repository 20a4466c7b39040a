"""Uninstall plan additions: the VPC CNI revert (record, journal, steps), istioctl installs,
the gateway namespace, the kubeconfig passed on to every command."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ambient_tui.checks import vpc_cni
from ambient_tui.checks.vpc_cni import MODE_VAR, EnforcingModeChange
from ambient_tui.plans import uninstall as u
from ambient_tui.plans.uninstall import Discovery, Obj, Options, Release


def fix_end(tail: list[str], state: str = "succeeded", step: str = "fix-sg-enforcing-mode", ts: float = 0) -> dict:
    return {"type": "step-end", "step": step, "state": state, "tail": tail, "ts": ts}


def test_record_round_trips_through_output_lines():
    for change in (EnforcingModeChange("strict", False), EnforcingModeChange(None, False),
                   EnforcingModeChange("strict", True, "prod", "eu-west-1")):
        lines = vpc_cni.record_lines(change)
        assert vpc_cni.parse_record(["noise", *lines]) == change
    assert vpc_cni.record_lines(EnforcingModeChange(None, False))[0].startswith(
        f"{MODE_VAR} was unset (the VPC CNI default, strict)")
    assert vpc_cni.parse_record(["revert-record {not json", "x"]) is None


def test_unreverted_change_is_the_first_fix_since_the_last_revert():
    first = vpc_cni.record_lines(EnforcingModeChange("strict", False))
    second = vpc_cni.record_lines(EnforcingModeChange("standard", False))  # a second fix: no change
    recs = [fix_end(first), fix_end(second)]
    assert vpc_cni.unreverted_change(recs).previous == "strict"
    recs.append(fix_end(["done"], step="revert-sg-enforcing-mode"))
    assert vpc_cni.unreverted_change(recs) is None
    # dry-run (skipped) and failed fixes changed nothing
    assert vpc_cni.unreverted_change([fix_end(first, "skipped"), fix_end(first, "failed")]) is None


class StubKube:
    """Stands in for cluster.client.KubeClient: no API server in the unit tier."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = dict(env)
        self.patches: list[dict] = []
        self.apps = SimpleNamespace(patch_namespaced_daemon_set=self._patch)

    def get_daemonset(self, ns, name):
        return {"spec": {"template": {"spec": {"containers": [
            {"name": "aws-node", "env": [{"name": k, "value": v} for k, v in self.env.items()]}]}}}}

    def set_daemonset_env(self, ns, name, container, env):
        self.env.update(env)

    def call(self, what, fn, *args, **kw):
        return fn(*args, **kw)

    def _patch(self, name, ns, body, field_manager=""):
        self.patches.append(body)
        for e in body["spec"]["template"]["spec"]["containers"][0]["env"]:
            if e.get("$patch") == "delete":
                self.env.pop(e["name"], None)

    def list_security_group_policies(self):
        return []

    def list_pods(self):
        return []


def test_fix_records_the_previous_value_then_revert_restores_it():
    kube = StubKube({MODE_VAR: "strict", "ENABLE_POD_ENI": "true"})
    out = vpc_cni.enforcing_mode_fix_steps(kube, managed=False)[0].api.func()
    change = vpc_cni.parse_record(out)
    assert change == EnforcingModeChange("strict", False) and kube.env[MODE_VAR] == "standard"
    [step] = vpc_cni.revert_enforcing_mode_steps(lambda: kube, change)
    assert step.id == "revert-sg-enforcing-mode" and step.title == "revert VPC CNI enforcing mode to strict"
    assert step.api.describe == f"PATCH apps/v1 DaemonSet kube-system/aws-node env {MODE_VAR}=strict"
    out = step.api.func()
    assert out[0] == f"daemonset kube-system/aws-node: {MODE_VAR} is strict again"
    # The stub has no API client: the in-cluster record could not be written, and says so.
    assert out[1:] and "could not update the in-cluster record kube-system/ambient-tui-install" in out[1]
    assert kube.env[MODE_VAR] == "strict"


def test_revert_of_an_unset_value_removes_the_variable():
    kube = StubKube({"ENABLE_POD_ENI": "true"})
    change = vpc_cni.parse_record(vpc_cni.enforcing_mode_fix_steps(kube, managed=False)[0].api.func())
    assert change.previous is None
    [step] = vpc_cni.revert_enforcing_mode_steps(lambda: kube, change)
    assert step.api.describe.endswith(f"env {MODE_VAR} removed")
    step.api.func()
    assert MODE_VAR not in kube.env
    assert kube.patches[-1]["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": MODE_VAR, "$patch": "delete"}]
    assert vpc_cni.revert_command(change) == f"kubectl -n kube-system set env daemonset/aws-node {MODE_VAR}-"


def test_managed_revert_is_update_addon():
    change = EnforcingModeChange("strict", True, "prod", "eu-west-1")
    [step] = vpc_cni.revert_enforcing_mode_steps(lambda: None, change)
    assert step.api.describe == f"EKS UpdateAddon prod/vpc-cni configurationValues env {MODE_VAR}=strict"
    with pytest.raises(ValueError):
        vpc_cni.revert_enforcing_mode_steps(lambda: None, EnforcingModeChange("strict", True))


def base() -> Discovery:
    return Discovery(cluster="demo", releases=[Release("istiod", "istio-system", "istiod"),
                                               Release("istio-base", "istio-system", "base")],
                     istio_crds=["a.istio.io"], istio_namespace_exists=True)


def test_revert_cni_is_the_last_phase_and_listed():
    d = base()
    d.cni_change = EnforcingModeChange("strict", False)
    plan = u.build_uninstall_plan(d, Options(revert_cni=True))
    assert [p.id for p in plan.phases][-1] == "revert-cni"
    assert plan.steps[-1].id == "revert-sg-enforcing-mode"
    lines = u.deletion_list(d, Options(revert_cni=True))
    assert lines[-1] == "revert VPC CNI enforcing mode to strict (self-managed DaemonSet kube-system/aws-node)"
    assert "patch daemonsets.apps aws-node in namespace kube-system" in {
        str(p) for p in u.required_permissions(d, Options(revert_cni=True))}
    # Not asked: kept, and said so; no revert step.
    assert "revert-cni" not in [p.id for p in u.build_uninstall_plan(d).phases]
    assert any("stays standard (this tool changed it from strict" in k for k in u.kept_list(d, Options()))


def test_verify_reports_a_revert_that_did_not_happen():
    d = base()
    d.cni_change = EnforcingModeChange("strict", False)
    after = Discovery()
    left = u.verify(d, after, Options(revert_cni=True), cni_mode_now=(True, "standard"))
    assert [l.what for l in left] == ["VPC CNI enforcing mode is standard, not strict"]
    assert left[0].command == f"kubectl -n kube-system set env daemonset/aws-node {MODE_VAR}=strict"
    assert u.verify(d, after, Options(revert_cni=True), cni_mode_now=(True, "strict")) == []
    assert u.verify(d, after, Options(revert_cni=True), cni_mode_now=(False, None))[0].what.startswith(
        "VPC CNI enforcing mode is unknown")


def test_journal_records_merge_in_time_order(tmp_path):
    a, b = tmp_path / "ctx.jsonl", tmp_path / "cluster.jsonl"
    fix = vpc_cni.record_lines(EnforcingModeChange("strict", False))
    a.write_text(json.dumps({**fix_end(fix), "ts": 1}) + "\n")
    b.write_text(json.dumps(fix_end(["ok"], step="revert-sg-enforcing-mode", ts=2)) + "\n")
    recs = u.journal_records([b, a])
    assert [r["ts"] for r in recs] == [1, 2]
    assert vpc_cni.unreverted_change(recs) is None
    assert vpc_cni.unreverted_change(u.journal_records([a])).previous == "strict"


def test_istioctl_install_plan_purges_and_waits():
    d = Discovery(cluster="demo", istio_namespace_exists=True,
                  istio_crds=["a.istio.io", "b.istio.io"], istioctl_crds=["a.istio.io"],
                  istioctl_resources=[Obj("Deployment", "istiod", "istio-system", "apps/v1"),
                                      Obj("MutatingWebhookConfiguration", "istio-sidecar-injector", "",
                                          "admissionregistration.k8s.io/v1")])
    assert d.istioctl_install
    plan = u.build_uninstall_plan(d, Options(purge_crds=True), context="ctx", kubeconfig="/k")
    assert [s.id for s in plan.steps] == ["istioctl-uninstall", "wait-istioctl-gone", "purge-istio-crds",
                                          "wait-istio-crds", "namespace-istio-system"]
    assert plan.step("istioctl-uninstall").argv == ["istioctl", "uninstall", "--purge", "-y",
                                                   "--kubeconfig", "/k", "--context", "ctx"]
    # istioctl takes its own CRDs; the purge only the rest.
    assert plan.step("purge-istio-crds").argv[-4:] == ["customresourcedefinition", "b.istio.io",
                                                       "--ignore-not-found", "--wait=false"]
    text = "\n".join(u.deletion_list(d, Options()))
    assert "  Deployment istio-system/istiod" in text and "  CustomResourceDefinition a.istio.io" in text
    assert "1 Istio CRDs kept" in "\n".join(u.kept_list(d, Options()))
    perms = {str(p) for p in u.required_permissions(d, Options())}
    assert "delete mutatingwebhookconfigurations.admissionregistration.k8s.io istio-sidecar-injector (cluster-wide)" in perms
    # a helm release present: helm removes it, not istioctl
    d.releases = [Release("istiod", "istio-system", "istiod")]
    assert not d.istioctl_install
    assert "istioctl-uninstall" not in [s.id for s in u.build_uninstall_plan(d).steps]


def test_gateway_namespace_deleted_only_when_emptied():
    d = base()
    d.releases.append(Release("istio-ingress", "istio-ingress", "gateway"))
    d.release_namespaces_to_delete = ["istio-ingress"]
    plan = u.build_uninstall_plan(d)
    assert [s.id for s in plan.phases[-1].steps] == ["namespace-istio-ingress", "namespace-istio-system"]
    assert "Namespace istio-ingress (the gateway release was the last thing in it)" in u.deletion_list(d)
    after = Discovery(namespaces_seen=["default", "istio-ingress"])
    assert [l.what for l in u.verify(d, after)] == ["Namespace istio-ingress"]
    d.release_namespaces_to_delete, d.release_namespaces_kept = [], {"istio-ingress": "it also holds ConfigMap x"}
    assert "namespace-istio-ingress" not in [s.id for s in u.build_uninstall_plan(d).steps]
    assert "namespace istio-ingress is kept: it also holds ConfigMap x" in u.kept_list(d)


def test_kubeconfig_reaches_every_command():
    plan = u.build_uninstall_plan(base(), Options(purge_crds=True), kubeconfig="/tmp/kc")
    for s in plan.steps:
        if s.argv:
            assert s.argv[1:3] == ["--kubeconfig", "/tmp/kc"], s.argv


def test_session_resumes_only_an_unfinished_uninstall(tmp_path, monkeypatch):
    from ambient_tui.engine.journal import journal_path
    from ambient_tui.plans.uninstall_session import UninstallSession

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    session = UninstallSession()
    session.cluster = "demo"
    assert not session.unfinished()
    a, b = session.journal(), session.journal()
    assert a.run_id != b.run_id  # two runs in one second stay apart
    plan = {"type": "plan", "title": "Uninstall Istio ambient from demo", "steps": ["x", "y"]}
    a.write(plan)
    a.write({"type": "step-end", "step": "x", "state": "succeeded"})
    a.write({"type": "step-end", "step": "y", "state": "failed"})
    a.close()
    assert session.unfinished()
    assert session.last_run().step_states() == {"x": "succeeded", "y": "failed"}
    b.write(plan)
    b.write({"type": "step-end", "step": "x", "state": "succeeded"})
    b.write({"type": "step-end", "step": "y", "state": "succeeded"})
    b.close()
    assert not session.unfinished()
    assert journal_path("demo").exists()
