"""Preflight pane on the main screen: checks shown as they finish, the summary line, an
executable fix added to the plan as its first phase (nothing runs before `r`), text fixes
shown as commands; and an SVG snapshot with fed results.

No cluster here: the checks are small check functions given to the real concurrent runner,
and the Kubernetes client behind the enforcing-mode fix is `StubKube` (it records calls).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from screens.app import AmbientApp
from screens.preflight import FIX_PHASE_ID, PreflightPane, executable_fix
from screens.widgets import StepChecklist

MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


class StubKube:
    """Stands in for the cluster client (no cluster in the UI tier): records the calls the
    enforcing-mode fix steps make."""

    def __init__(self):
        self.calls = []

    def get_daemonset(self, ns, name):  # read before the patch, for --revert-cni (not a change)
        return {"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": [
            {"name": MODE, "value": "strict"}]}]}}}}

    def set_daemonset_env(self, ns, name, container, env):
        self.calls.append(("set_env", ns, name, container, dict(env)))

    def list_security_group_policies(self):
        self.calls.append(("list_sgp",))
        return []

    def list_pods(self):
        self.calls.append(("list_pods",))
        return []


class StubContext:
    """Stands in for CheckContext: the checks below ignore it; the fix asks it for a client."""

    def __init__(self):
        self.kube = StubKube()

    def client(self):
        return self.kube


def vpc_fail(managed=False, ds_managers=()) -> Check:
    return Check("vpc-cni", "VPC CNI and security groups for pods", FAIL,
                 f"aws-node present (self-managed); ENABLE_POD_ENI=true; SecurityGroupPolicies: 1; {MODE}=strict",
                 f"kubectl -n kube-system set env daemonset/aws-node {MODE}=standard",
                 data={"managed": managed, "pod_eni": True, "sgp_count": 1, "enforcing_mode": "strict",
                       "ds_managers": list(ds_managers)})


def make_plan() -> Plan:
    return Plan(title="Install", phases=[
        Phase("base", "Base", [Step("hello", "Say hello", argv=["printf", "hello\\n"])])])


def make_app(specs, ctx=None, plan=None) -> AmbientApp:
    plan = plan or make_plan()
    ctx = ctx or StubContext()
    return AmbientApp(plan, Runner(plan), context="kind-test", keymap_path=Path("/nonexistent"),
                      check_context_factory=lambda: ctx, preflight_checks=specs)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_checks_appear_as_they_finish_with_a_summary():
    release = threading.Event()

    def slow(ctx):
        release.wait(10)
        return Check("slow", "Slow check", PASS, "took its time")

    specs = [("fast", "Fast check", lambda ctx: Check("fast", "Fast check", PASS, "quick"), 5),
             ("broken", "Broken check", lambda ctx: 1 / 0, 5),
             ("slow", "Slow check", slow, 20),
             ("tools", "helm", lambda ctx: Check("tools", "helm", WARN, "helm 4", "use helm 3"), 5)]
    app = make_app(specs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        pane = app.screen.query_one(PreflightPane)
        await wait_for(lambda: len(pane.results) == 3)
        # The slow one is still running and shown so; the others are there already.
        assert pane.counts() == {PASS: 1, WARN: 1, FAIL: 1, SKIP: 0, "running": 1}
        lines = pane.lines()
        assert "running" in lines[2] and "Slow check" in lines[2]
        assert "ZeroDivisionError" in lines[1] and "fail" in lines[1]
        assert "fix: use helm 3" in lines[3]
        summary = str(app.screen.query_one("#preflight-summary").render())
        assert "1 pass" in summary and "1 fail" in summary and "1 running" in summary
        assert all(s.state is StepState.PENDING for s in app.plan.steps)  # preflight runs nothing
        release.set()
        await wait_for(lambda: app.screen.preflight_done)
        await pilot.pause(0.1)
        assert pane.counts()["running"] == 0 and pane.counts()[PASS] == 2


@pytest.mark.asyncio
async def test_executable_fix_becomes_the_first_phase_and_runs_only_with_the_plan():
    ctx = StubContext()
    specs = [("vpc-cni", "VPC CNI", lambda c: vpc_fail(), 5)]
    app = make_app(specs, ctx=ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.screen.preflight_done)
        await pilot.press("2")
        pane = app.screen.query_one(PreflightPane)
        assert "fix [f]: add it to the plan as steps" in pane.lines()[0]
        await pilot.press("f")
        await wait_for(lambda: app.plan.phases[0].id == FIX_PHASE_ID)
        await pilot.pause(0.1)
        assert [s.id for s in app.plan.phases[0].steps] == ["fix-sg-enforcing-mode", "list-pods-to-restart"]
        checklist = app.screen.query_one(StepChecklist)
        assert checklist.get_option_index("fix-sg-enforcing-mode") < checklist.get_option_index("hello")
        assert checklist.selected_step_id == "fix-sg-enforcing-mode"
        assert ctx.kube.calls == []  # seen, not run
        # A second f does not add it twice.
        await pilot.press("f")
        await pilot.pause(0.1)
        assert sum(p.id == FIX_PHASE_ID for p in app.plan.phases) == 1

        # The plan now fixes what failed, so r runs it at once, fix first.
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert ctx.kube.calls[0] == ("set_env", "kube-system", "aws-node", "aws-node", {MODE: "standard"})
        assert all(s.state is StepState.SUCCEEDED for s in app.plan.steps)


@pytest.mark.asyncio
async def test_text_only_fix_is_shown_as_a_command_and_not_added():
    specs = [("gateway-api", "Gateway API CRDs", lambda c: Check(
        "gateway-api", "Gateway API CRDs", FAIL, "v0.8 installed; 1.2 needed",
        "kubectl apply --server-side -f standard-install.yaml"), 5),
        # No AWS access, and the EKS add-on manages aws-node: which way the fix goes is unknown
        # (the same rule as `install --fix`: checks/vpc_cni.fix_target).
        ("vpc-cni", "VPC CNI", lambda c: vpc_fail(managed=None, ds_managers=["eks"]), 5)]
    app = make_app(specs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.screen.preflight_done)
        await pilot.press("2")
        await pilot.pause(0.1)
        lines = app.screen.query_one(PreflightPane).lines()
        assert "fix: kubectl apply --server-side -f standard-install.yaml" in lines[0]
        assert "fix [f]" not in lines[1] and "fix: kubectl -n kube-system set env" in lines[1]

        # r with a failure nothing in the plan fixes first warns; a second r runs anyway.
        await pilot.press("1")
        await pilot.press("r")
        await pilot.pause(0.1)
        assert app.plan.step("hello").state is StepState.PENDING
        assert any("Preflight fails: gateway-api, vpc-cni" in n.message for n in app._notifications)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert app.plan.step("hello").state is StepState.SUCCEEDED
        await pilot.press("f")
        await pilot.pause(0.1)
        assert [p.id for p in app.plan.phases] == ["base"]
        assert any("No finished check has a fix that runs as steps" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_p_runs_the_checks_again_with_a_new_context():
    contexts, verdicts = [], [FAIL, PASS]

    def factory():
        contexts.append(StubContext())
        return contexts[-1]

    def flaky(ctx):
        return Check("vpc-cni", "VPC CNI", verdicts[len(contexts) - 1], f"run {len(contexts)}")

    plan = make_plan()
    app = AmbientApp(plan, Runner(plan), keymap_path=Path("/nonexistent"), check_context_factory=factory,
                     preflight_checks=[("vpc-cni", "VPC CNI", flaky, 5)])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.screen.preflight_done)
        pane = app.screen.query_one(PreflightPane)
        assert pane.results["vpc-cni"].status == FAIL
        await pilot.press("p")
        assert app.screen.pane == "preflight"
        await wait_for(lambda: app.screen.preflight_done and len(contexts) == 2)
        await pilot.pause(0.1)
        assert pane.results["vpc-cni"].status == PASS and "run 2" in pane.lines()[0]


@pytest.mark.asyncio
async def test_without_a_cluster_preflight_says_so():
    plan = make_plan()
    app = AmbientApp(plan, Runner(plan), keymap_path=Path("/nonexistent"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.1)
        summary = str(app.screen.query_one("#preflight-summary").render())
        assert "not run: no cluster given" in summary


@pytest.mark.asyncio
async def test_a_context_that_cannot_be_built_is_a_message_not_a_crash():
    def factory():
        raise ValueError("unknown Istio version 9.9.9")

    plan = make_plan()
    app = AmbientApp(plan, Runner(plan), keymap_path=Path("/nonexistent"), check_context_factory=factory,
                     preflight_checks=[("fast", "Fast", lambda c: Check("fast", "Fast", PASS), 5)])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: app.screen.preflight_done)
        await pilot.press("2")
        await pilot.pause(0.1)
        pane = app.screen.query_one(PreflightPane)
        assert pane.counts()["running"] == 0 and pane.lines() == []
        summary = str(app.screen.query_one("#preflight-summary").render())
        assert "preflight could not run: unknown Istio version 9.9.9" in summary


def test_executable_fix_decides_the_way():
    assert executable_fix(vpc_fail(False), {}) == {"managed": False, "cluster": None, "region": None}
    managed = vpc_fail(True)
    assert executable_fix(managed, {}) is None  # needs the EKS cluster name
    aws = Check("aws-eks", "AWS", PASS, "", data={"cluster": "prod", "region": "eu-west-1"})
    assert executable_fix(managed, {"aws-eks": aws}) == {"managed": True, "cluster": "prod",
                                                         "region": "eu-west-1"}
    passing = Check("vpc-cni", "VPC CNI", PASS, "ok", data={"managed": False})
    assert executable_fix(passing, {}) is None
    # A warning about network policies only is not the enforcing-mode fix.
    netpol = Check("vpc-cni", "VPC CNI", WARN, "policies", "allow 15008",
                   data={"managed": False, "pod_eni": False, "sgp_count": 0})
    assert executable_fix(netpol, {}) is None


def _fed_results():
    return [
        Check("cluster-access", "Cluster access", PASS,
              "context sandbox at https://127.0.0.1:6443 answers (Kubernetes v1.34.1)"),
        Check("kubernetes-version", "Kubernetes version", PASS,
              "server v1.34.1; Istio 1.28.0 supports Kubernetes 1.30-1.34"),
        Check("helm", "helm", WARN, "helm 4.0.1; Helm 4 webhook conflicts are fixed in 1.28.2",
              "use Istio 1.28.2 or helm 3"),
        Check("aws-eks", "AWS identity and EKS cluster", SKIP, "no AWS configuration"),
        vpc_fail(),
    ]


async def _feed(pilot):
    await wait_for(lambda: bool(pilot.app.screen.query("#preflight-list")))
    await pilot.pause()
    pane = pilot.app.screen.query_one(PreflightPane)
    results = _fed_results()
    pane.start([(c.id, c.title) for c in results] + [("rbac", "RBAC for the install")])
    for c in results:
        pane.add_result(c)
    await pilot.press("2")
    await pilot.pause(0.3)


def test_preflight_pane_snapshot(snap_compare):
    plan = make_plan()
    app = AmbientApp(plan, Runner(plan), context="kind-test", istio_version="1.28.0",
                     keymap_path=Path("/nonexistent"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_feed)
