"""Main screen panes: switching, lazy start, gating of hidden panes, zoom, enter only on the
checklist, uninstall hand-off, readiness counts and the plan progress bar; SVG snapshots of
each pane at 80x24 with a frozen clock.

Cluster data comes from providers the tests set (what a watcher exposes: `version` and
`snapshot()`); the screen, panes, runner and steps are real.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from pathlib import Path

import pytest
from textual.screen import Screen

from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.watch.pods import WATCHING, Snapshot
from ambient_tui.watch.rows import parse_time, pod_row
from ambient_tui.watch.workloads import DAEMONSETS, DEPLOYMENTS, WorkloadCounts, WorkloadSnapshot
from screens.app import AmbientApp
from screens.main import MainScreen
from screens.pod_grid import PodGrid
from screens.progress import PlanProgress
from screens.widgets import StepChecklist

T0 = parse_time("2026-01-01T00:00:00Z")
NOW = T0 + 3 * 3600 + 125  # frozen clock


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def pod(name, ns="istio-system", ready=True, created=0):
    state = {"running": {}} if ready else {"waiting": {"reason": "ContainerCreating"}}
    return {"metadata": {"name": name, "namespace": ns, "labels": {},
                         "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + created))},
            "spec": {"containers": [{"name": "c"}], "nodeName": "kwok-node-0"},
            "status": {"phase": "Running" if ready else "Pending", "containerStatuses": [
                {"name": "c", "ready": ready, "restartCount": 0, "state": state}]}}


class PodsProvider:
    """What a PodWatcher exposes, set by the test."""

    def __init__(self, pods):
        self.version, self.calls = 0, 0
        self.set(pods)

    def set(self, pods):
        self.rows = {}
        for p in pods:
            r = pod_row(p, {})
            self.rows[r.key] = r
        self.version += 1

    def snapshot(self):
        self.calls += 1
        return Snapshot(self.version, dict(self.rows), WATCHING, "", {}, ("istio-system",))


class WorkloadsProvider:
    """What a WorkloadWatcher exposes, set by the test."""

    def __init__(self, **rows):
        self.version = 0
        self.rows: dict[str, WorkloadCounts] = {}
        self.set(**rows)

    def set(self, **rows):
        for name, (desired, ready, updated) in rows.items():
            kind = DEPLOYMENTS if name == "istiod" else DAEMONSETS
            self.rows[name.replace("_", "-")] = WorkloadCounts(name.replace("_", "-"), kind, desired, ready, updated)
        self.version += 1

    def snapshot(self):
        return WorkloadSnapshot(self.version, dict(self.rows), WATCHING)


PODS = [pod("istiod-6d8f9c7b5-x2k4p", created=60), pod("ztunnel-4mzqv", created=90),
        pod("istio-cni-node-7xk2q", ready=False, created=3 * 3600 + 100)]


def make_plan() -> Plan:
    return Plan(title="Install Istio 1.28.0 ambient (helm)", phases=[
        Phase("base", "Istio base (CRDs)", [Step("helm-istio-base", "helm: istio-base (base)", argv=["true"])]),
        Phase("control-plane", "istiod (profile ambient)", [
            Step("helm-istiod", "helm: istiod (istiod)", argv=["true"], kind="helm-release", watches=("istiod",))]),
        Phase("data-plane", "istio-cni and ztunnel", [
            Step("helm-istio-cni", "helm: istio-cni (cni)", argv=["true"], group="node-agents",
                 kind="helm-release", watches=("istio-cni-node",)),
            Step("helm-ztunnel", "helm: ztunnel (ztunnel)", argv=["true"], group="node-agents",
                 kind="helm-release", watches=("ztunnel",))]),
        Phase("local", "Local", [Step("hello", "Say hello", argv=["printf", "hello\\n"])]),
    ])


class Clock:
    def __init__(self, t=NOW):
        self.t = t

    def __call__(self):
        return self.t


def make_app(plan=None, **kw) -> AmbientApp:
    plan = plan or make_plan()
    kw.setdefault("now", Clock())
    return AmbientApp(plan, Runner(plan), context="kind-test", istio_version="1.28.0",
                      keymap_path=Path("/nonexistent/keymap.yaml"), **kw)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.15)
    await pilot.pause()


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_panes_start_lazily_and_hidden_pods_pane_does_not_merge():
    pods = PodsProvider(PODS)
    app = make_app(pods_provider=pods)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.pause(0.3)
        assert screen.pane == "output" and pods.calls == 0  # not shown: never read
        assert not screen.query("#pods")
        await pilot.press("3")
        await wait_for(lambda: bool(screen.query("#pods")))
        pane = screen.query_one("#pods")
        await wait_for(lambda: len(pane.table_rows()) == 3)
        assert isinstance(app.focused, PodGrid)
        await pilot.press("2")
        assert screen.pane == "preflight"
        merges = pane.refreshes
        pods.set(PODS[:1])
        await pilot.pause(0.6)  # two pod-pane ticks while hidden
        assert pane.refreshes == merges and len(pane.table_rows()) == 3
        await pilot.press("3")
        await wait_for(lambda: [r[1] for r in pane.table_rows()] == ["istiod-6d8f9c7b5-x2k4p"])


@pytest.mark.asyncio
async def test_pods_pane_with_an_unusable_kubeconfig_shows_the_problem(tmp_path):
    # A kubeconfig path that does not exist: the real watcher cannot build a client (no
    # network is touched) and the pane says so instead of crashing.
    app = make_app(kubeconfig=str(tmp_path / "missing-kubeconfig"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(lambda: bool(app.screen.query("#pods")), 20)
        status = app.screen.query_one("#pods-status")
        await wait_for(lambda: "reconnecting" in str(status.render()), 20)
        assert "cannot build a client" in str(status.render())
        assert isinstance(app.screen, MainScreen)


@pytest.mark.asyncio
async def test_enter_runs_a_step_only_from_the_checklist():
    app = make_app(pods_provider=PodsProvider(PODS))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(lambda: isinstance(app.focused, PodGrid))
        await pilot.press("enter")
        await settle(pilot)
        assert all(s.state is StepState.PENDING for s in app.plan.steps)
        await pilot.press("1")
        assert app.focused is app.screen.query_one(StepChecklist)
        await pilot.press("enter")
        await settle(pilot)
        assert app.plan.step("helm-istio-base").state is StepState.SUCCEEDED
        assert app.plan.step("helm-istiod").state is StepState.PENDING
        # The palette's entry has no focus rule: it runs the selected step.
        checklist = app.screen.query_one(StepChecklist)
        checklist.highlighted = checklist.get_option_index("hello")
        await pilot.press("2")
        assert app.focused is not checklist
        app.screen.command_run_step()
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SUCCEEDED


@pytest.mark.asyncio
async def test_zoom_hides_the_checklist_and_r_shows_the_plan_again():
    app = make_app(pods_provider=PodsProvider(PODS))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.press("z")
        await pilot.pause()
        left = app.screen.query_one("#left")
        assert not left.display
        assert app.screen.query_one("#right").size.width == 80
        await pilot.press("z")
        await pilot.pause()
        assert left.display
        await pilot.press("z")
        await pilot.press("r")  # runs the plan and unzooms so the plan is in view
        await settle(pilot)
        assert left.display and not app.screen.zoomed
        assert all(s.state is StepState.SUCCEEDED for s in app.plan.steps)


@pytest.mark.asyncio
async def test_readiness_counts_and_elapsed_on_a_running_row_and_progress_bar():
    clock = Clock()
    workloads = WorkloadsProvider(istiod=(1, 0, 1))
    app = make_app(workloads_provider=workloads, now=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        progress = screen.query_one(PlanProgress)
        assert (progress.done, progress.total) == (0, 5)
        # The screen is a view of the runner's events: feed them as the runner would.
        for ev in (Event(EventKind.STARTED, "helm-istio-base", state="running"),
                   Event(EventKind.FINISHED, "helm-istio-base", state="succeeded", exit_code=0),
                   Event(EventKind.STARTED, "helm-istiod", state="running")):
            screen._on_runner_event(ev)
        assert screen.workloads is workloads  # started by the step that waits for istiod
        clock.t += 42
        await pilot.pause(0.2)
        checklist = screen.query_one(StepChecklist)
        row = str(checklist.get_option("helm-istiod").prompt)
        assert "ready 0/1 upd 1/1" in row and "0:42" in row
        assert (progress.done, progress.total, progress.running) == (1, 5, 1)
        assert "helm: istiod (istiod) 0:42" in progress.label
        workloads.set(istiod=(1, 1, 1))
        clock.t += 3
        await pilot.pause(0.2)
        row = str(checklist.get_option("helm-istiod").prompt)
        assert "ready 1/1 upd 1/1" in row and "0:45" in row
        screen._on_runner_event(Event(EventKind.FINISHED, "helm-istiod", state="succeeded", exit_code=0))
        await pilot.pause(0.2)
        assert "ready" not in str(checklist.get_option("helm-istiod").prompt)
        assert (progress.done, progress.running) == (2, 0)


@pytest.mark.asyncio
async def test_no_workload_watch_for_steps_that_wait_for_nothing():
    plan = Plan(title="p", phases=[Phase("p", "P", [Step("hello", "Say hello", argv=["true"])])])
    app = make_app(plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await settle(pilot)
        assert plan.step("hello").state is StepState.SUCCEEDED
        assert app.screen.workloads is None and not app.screen._owned
        assert app.screen.query_one(PlanProgress).label.startswith(" 1/1")


@pytest.mark.asyncio
async def test_uninstall_key_opens_the_uninstall_screen_or_says_why_not(monkeypatch):
    seen = {}

    class StubUninstallScreen(Screen):
        """Stands in for screens.uninstall (another helper's screen): records its context."""

        def __init__(self, context=None, **kw):
            super().__init__()
            seen["context"], seen["kw"] = context, kw

    monkeypatch.setitem(sys.modules, "screens.uninstall",
                        types.SimpleNamespace(UninstallScreen=StubUninstallScreen))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, StubUninstallScreen) and seen["context"] == "kind-test"
        assert seen["kw"] == {}

    app = make_app(kubeconfig="/tmp/kc.yaml", kube_context="prod-eu")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("u")
        await pilot.pause()
        assert seen["context"] == "prod-eu" and seen["kw"] == {"kubeconfig": "/tmp/kc.yaml"}

    monkeypatch.setitem(sys.modules, "screens.uninstall", None)  # import fails
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("uninstall screen is not available" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_pane_tabs_follow_the_user_keymap(tmp_path):
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text("ambient.pane_pods: p\nambient.zoom: ctrl+z\n")
    plan = make_plan()
    app = AmbientApp(plan, Runner(plan), keymap_path=keymap, pods_provider=PodsProvider(PODS))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        tabs = str(app.screen.query_one("#pane-tabs").render())
        assert "p Pods" in tabs and "3 Pods" not in tabs and "zoom" in tabs
        await pilot.press("p")
        await pilot.pause()
        assert app.screen.pane == "pods"


# ---------------------------------------------------------------- snapshots (80x24, frozen clock)

def _helm_provider():
    from ambient_tui.watch.helm_releases import HelmSnapshot, Release

    rels = [Release("istio-base", "istio-system", 1, "deployed", "base-1.28.0", "1.28.0", T0 + 60),
            Release("istiod", "istio-system", 2, "deployed", "istiod-1.28.0", "1.28.0", T0 + 120),
            Release("ztunnel", "istio-system", 1, "pending-install", "ztunnel-1.28.0", "1.28.0", T0 + 3600)]

    class HelmProvider:
        version = 1

        def snapshot(self):
            return HelmSnapshot(1, {r.key: r for r in rels}, WATCHING, "", {}, ("istio-system",))

        def history(self, namespace, name):
            return [r for r in rels if r.key == (namespace, name)]

    return HelmProvider()


def _snap_app() -> AmbientApp:
    return make_app(pods_provider=PodsProvider(PODS), helm_provider=_helm_provider(),
                    workloads_provider=WorkloadsProvider(istiod=(1, 1, 1), istio_cni_node=(3, 2, 3),
                                                         ztunnel=(3, 1, 3)))


def _keys(*keys):
    async def run_before(pilot):
        await wait_for(lambda: bool(pilot.app.screen.query(StepChecklist)))
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        await pilot.pause(0.4)
    return run_before


@pytest.mark.parametrize("keys", [("3",), ("3", "z"), ("4",)], ids=["pods", "pods-zoomed", "helm"])
def test_pane_snapshots(snap_compare, keys):
    assert snap_compare(_snap_app(), terminal_size=(80, 24), run_before=_keys(*keys))


async def _running_node_agents(pilot):
    await wait_for(lambda: bool(pilot.app.screen.query(StepChecklist)))
    screen = pilot.app.screen
    for ev in (Event(EventKind.STARTED, "helm-istio-base", state="running"),
               Event(EventKind.OUTPUT, "helm-istio-base", line="Release \"istio-base\" has been upgraded."),
               Event(EventKind.FINISHED, "helm-istio-base", state="succeeded", exit_code=0),
               Event(EventKind.STARTED, "helm-istiod", state="running"),
               Event(EventKind.FINISHED, "helm-istiod", state="succeeded", exit_code=0),
               Event(EventKind.STARTED, "helm-istio-cni", state="running"),
               Event(EventKind.STARTED, "helm-ztunnel", state="running")):
        screen._on_runner_event(ev)
    pilot.app.now.t += 83
    await pilot.pause(0.3)


def test_running_step_readiness_snapshot(snap_compare):
    assert snap_compare(_snap_app(), terminal_size=(80, 24), run_before=_running_node_agents)
