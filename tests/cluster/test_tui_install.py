"""The full install from the TUI, driven with Pilot, on the real control plane, helm and charts.

Nothing runs before `r`; the preflight pane shows the real checks finishing; after `r` the
pods pane shows istio-system's pods appear and turn Ready (its rows equal the API's list at
the end), the running rows show workload counts that reach ready=desired, every step
succeeds and every release is deployed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from istio_cleanup import clean_cluster as clean_cluster_now  # same folder

from ambient_tui import catalog
from ambient_tui.checks.core import ALL
from ambient_tui.checks.model import FAIL, CheckContext
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.plans.install_session import InstallSession
from ambient_tui.sandbox import build
from ambient_tui.settings import Settings
from screens.app import AmbientApp
from screens.preflight import PreflightPane
from screens.widgets import StepChecklist

pytestmark = pytest.mark.cluster



def run(env, *argv, timeout=300, check=True):
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=check)


def helm_releases(env) -> list[dict]:
    return json.loads(run(env, "helm", "list", "-A", "-a", "-o", "json").stdout or "[]")


def gateway_api_file(tools) -> Path:
    channel = catalog.load().release(build.ISTIO_VERSION).gateway_api.channel
    return Path(tools.gateway_api) / f"{channel}-install.yaml"


@pytest.fixture
def clean_cluster(admin_env, tools):
    clean_cluster_now(admin_env)
    yield gateway_api_file(tools)
    clean_cluster_now(admin_env)


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # a widget not mounted yet, the API blinking
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


APP_NS = "tui-apps"  # enrolled by the plan; its pod must join the pods pane after enrolment


def core_api(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def api_pods(kubeconfig, namespaces=("istio-system", APP_NS)) -> set[str]:
    core = core_api(kubeconfig)
    return {p.metadata.name for ns in namespaces for p in core.list_namespaced_pod(ns).items}


@pytest.fixture
def app_namespace(kubeconfig):
    """A namespace with one pod (kwok schedules it and marks it Running), deleted afterwards."""
    from kubernetes.client.rest import ApiException

    core = core_api(kubeconfig)
    try:
        core.delete_namespace(APP_NS)
    except ApiException:
        pass
    deadline = time.monotonic() + 120
    while True:
        try:
            core.create_namespace({"metadata": {"name": APP_NS}})
            break
        except ApiException as e:  # 409 while the old one terminates
            if e.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    core.create_namespaced_pod(APP_NS, {"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "web", "image": "nginx"}]}})
    yield APP_NS
    core.delete_namespace(APP_NS)


@pytest.mark.asyncio
async def test_full_install_from_the_tui(admin_env, kubeconfig, tools, clean_cluster, app_namespace,
                                         tmp_path, monkeypatch):
    # The AWS checks read the process environment (boto3): point them at the loopback AWS.
    for k, v in admin_env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings(istio_version=build.ISTIO_VERSION, chart_source=str(tools.charts),
                        gateway_api_file=str(clean_cluster), enroll=[app_namespace])
    session = InstallSession(settings, kubeconfig=str(kubeconfig), env=admin_env)
    plan = session.initial_plan()
    runner = Runner(plan, journal=Journal(tmp_path / "journal.jsonl"), env=admin_env)
    app = AmbientApp(plan, runner, context="sandbox", istio_version=build.ISTIO_VERSION,
                     keymap_path=tmp_path / "none.yaml", kubeconfig=str(kubeconfig), install_session=session,
                     check_context_factory=lambda: CheckContext(settings, kubeconfig=str(kubeconfig),
                                                                env=admin_env))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        # Preflight: every check shows up, running first, then finished.
        await pilot.press("2")
        pane = screen.query_one(PreflightPane)
        await wait_for(lambda: len(pane.order) == len(ALL), 30, "the checks to start")
        await wait_for(lambda: screen.preflight_done, 180, "the checks to finish")
        await pilot.pause(0.3)
        assert pane.counts()["running"] == 0 and set(pane.results) == {c[0] for c in ALL}
        failing = {c.id: c.detail for c in pane.results.values() if c.status == FAIL}
        assert not failing, failing
        assert "Checks" in str(screen.query_one("#preflight-summary").render())

        # Nothing ran: no releases, every step pending.
        assert helm_releases(admin_env) == []
        assert all(s.state is StepState.PENDING for s in plan.steps)

        # The pods pane first (its watch starts now; istio-system does not exist yet).
        await pilot.press("3")
        await wait_for(lambda: bool(screen.query("#pods")), 60, "the pods pane")
        pods = screen.query_one("#pods")

        seen_rows: set[str] = set()
        ready_rows: set[str] = set()
        readiness_lines: list[str] = []
        done = asyncio.Event()

        async def sample():
            checklist = screen.query_one(StepChecklist)
            while True:  # one last look after `done`: the pane merges churn every 2 s (link.py)
                last = done.is_set()
                for row in pods.table_rows():
                    seen_rows.add(row[1])
                    n, _, m = row[2].partition("/")
                    if n == m and row[3] == "Running":
                        ready_rows.add(row[1])
                for step in plan.steps:
                    if step.state is StepState.RUNNING:
                        prompt = str(checklist.get_option(step.id).prompt)
                        if "ready " in prompt or " · " in prompt:
                            readiness_lines.append(prompt)
                if last:
                    return
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        await pilot.press("r")
        await wait_for(lambda: screen._worker is not None, 10, "the run to start")
        await wait_for(lambda: not screen.running, 1500, "the plan to finish")
        await pilot.pause(0.5)

        states = {s.id: s.state.value for s in plan.steps}
        # The post-check asks a real ztunnel, which kwok does not run: it may only warn.
        assert all(s.state is StepState.SUCCEEDED or (s.warn_only and s.state is StepState.WARNED)
                   for s in plan.steps), states

        # Rows equal the API's pod list, and every pod is Ready.
        await wait_for(lambda: {r[1] for r in pods.table_rows()} == api_pods(kubeconfig), 60,
                       "the pods pane to match the API")
        await wait_for(lambda: all(r[2].split("/")[0] == r[2].split("/")[1] and r[3] == "Running"
                                   for r in pods.table_rows()), 120, "every pod Ready in the pane")
        done.set()
        await sampler
        final = {r[1] for r in pods.table_rows()}
        assert "web" in final  # the namespace enrolled during the run joined the pane
        assert {r[6] for r in pods.table_rows() if r[1] == "web"} == {"yes"}
        assert any(n.startswith("istiod-") for n in final)
        assert any(n.startswith("ztunnel-") for n in final) and any(n.startswith("istio-cni-node-") for n in final)
        assert seen_rows >= final and ready_rows  # seen appearing and turning Ready during the run

        # Workload counts reach ready == desired; a running row showed them.
        assert screen.workloads is not None
        await wait_for(lambda: all(screen.workloads.snapshot().rows[n].complete
                                   for n in ("istiod", "istio-cni-node", "ztunnel")), 120,
                       "workloads ready")
        assert readiness_lines and any("ready " in line for line in readiness_lines)
        progress = screen.query_one("#progress")
        assert (progress.done, progress.total) == (len(plan.steps), len(plan.steps))

        # `a`: all namespaces (kube-system's aws-node pods appear), `a` again: back to the mesh.
        await pilot.press("a")
        await wait_for(lambda: {r[1] for r in pods.table_rows()} == api_pods(
            kubeconfig, [n.metadata.name for n in core_api(kubeconfig).list_namespace().items]),
            60, "all namespaces in the pods pane")
        assert any(r[0] == "kube-system" for r in pods.table_rows())
        await pilot.press("a")
        await wait_for(lambda: {r[1] for r in pods.table_rows()} == api_pods(kubeconfig), 60,
                       "the mesh scope again")

        # Helm: every release deployed.
        rel = {r["name"]: r for r in helm_releases(admin_env)}
        for name in ("istio-base", "istiod", "istio-cni", "ztunnel"):
            assert rel[name]["status"] == "deployed", rel
        await pilot.press("q")


MODE = "POD_SECURITY_GROUP_ENFORCING_MODE"


@pytest.fixture
def strict_security_groups(control_plane):
    """Trunking + a SecurityGroupPolicy + strict mode on aws-node; put back afterwards."""
    sgp = "/apis/vpcresources.k8s.aws/v1beta1/namespaces/default/securitygrouppolicies/sgp-tui"
    control_plane.api().request("DELETE", sgp)
    control_plane.set_aws_node_env(ENABLE_POD_ENI="true", **{MODE: "strict"})
    control_plane.create_security_group_policy("default", "sgp-tui", ["sg-0123456789abcdef0"], {"app": "payments"})
    yield control_plane
    control_plane.set_aws_node_env(ENABLE_POD_ENI="false", **{MODE: "standard"})
    control_plane.api().request("DELETE", sgp)


@pytest.mark.asyncio
async def test_preflight_fix_from_the_tui(admin_env, kubeconfig, tools, aws_local, strict_security_groups,
                                          tmp_path, monkeypatch):
    """Istio 1.28.6 has no branch-ENI probe fix: vpc-cni fails; `f` adds the managed add-on
    fix as the plan's first phase (nothing runs); enter on its steps runs them (UpdateAddon at
    the loopback AWS); `p` checks again and vpc-cni passes. Istio itself is never installed."""
    for k, v in aws_local.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    settings = Settings(istio_version="1.28.6", chart_source=str(tools.charts))
    session = InstallSession(settings, kubeconfig=str(kubeconfig), env=admin_env)
    plan = session.initial_plan()
    releases_before = helm_releases(admin_env)
    updates_before = len([c for c in aws_local.calls() if c["op"] == "UpdateAddon"])
    app = AmbientApp(plan, Runner(plan, env=admin_env), context="sandbox", keymap_path=tmp_path / "none.yaml",
                     kubeconfig=str(kubeconfig), install_session=session,
                     check_context_factory=lambda: CheckContext(settings, kubeconfig=str(kubeconfig),
                                                                env=admin_env))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(lambda: screen.preflight_done, 180, "the checks to finish")
        await pilot.press("2")
        await pilot.pause(0.2)
        pane = screen.query_one(PreflightPane)
        vpc = pane.results["vpc-cni"]
        assert vpc.status == FAIL and "SecurityGroupPolicies: 1" in vpc.detail, vpc
        assert pane.fixable(vpc) == {"managed": True, "cluster": aws_local.cluster, "region": aws_local.region}
        assert any("fix [f]" in line for line in pane.lines() if "VPC CNI" in line)

        await pilot.press("f")
        await wait_for(lambda: plan.phases[0].id == "preflight-fixes", 30, "the fix phase")
        await pilot.pause(0.2)
        fix_ids = [s.id for s in plan.phases[0].steps]
        assert fix_ids == ["fix-sg-enforcing-mode", "list-pods-to-restart"]
        assert "UpdateAddon" in plan.step("fix-sg-enforcing-mode").command
        assert strict_security_groups.aws_node_env()[MODE] == "strict"  # shown, not run

        await pilot.press("1")  # the checklist, on the first fix step
        assert screen.query_one(StepChecklist).selected_step_id == "fix-sg-enforcing-mode"
        for _ in fix_ids:
            await pilot.press("enter")
            await wait_for(lambda: not screen.running, 180, "the fix step")
            await pilot.pause(0.2)
            await pilot.press("down")
        assert [plan.step(i).state for i in fix_ids] == [StepState.SUCCEEDED] * 2
        ups = [c for c in aws_local.calls() if c["op"] == "UpdateAddon"]
        assert len(ups) == updates_before + 1
        assert json.loads(ups[-1]["request"]["configurationValues"])["env"][MODE] == "standard"
        assert strict_security_groups.aws_node_env()[MODE] == "standard"
        assert any("restart" in line or "no pods" in line for line in screen.buffers.lines("list-pods-to-restart"))

        await pilot.press("p")
        await wait_for(lambda: screen.preflight_done and "vpc-cni" in pane.results, 180, "the second preflight")
        assert pane.results["vpc-cni"].status == "pass", pane.results["vpc-cni"]
        # Only the fix ran: the install steps are untouched and no release appeared.
        assert all(s.state is StepState.PENDING for p in plan.phases[1:] for s in p.steps)
        assert helm_releases(admin_env) == releases_before
        await pilot.press("q")
