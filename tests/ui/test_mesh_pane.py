"""Mesh pane (screens/mesh.py) in the main screen: key 5, keyboard-only actions, plan dialogs,
SVG snapshots at 80x24 and 120x40.

The UI tier has no API server: the provider is a named stub of MeshWatcher's consumer side
(`version`, `snapshot()`, `pod_names()`) holding a state built by the real
ambient_tui.mesh.state from pod/namespace/node/Gateway JSON, and FakeKube is a named fake of
KubeClient that records the requests a step sends instead of sending them. The real watcher,
real label patches and real Gateways are in tests/cluster/test_mesh_cluster.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from ambient_tui.engine.journal import Journal, journal_path
from ambient_tui.mesh.state import build_state, pod_facts, waypoints
from ambient_tui.mesh.watch import MeshSnapshot, ReadinessHistory
from screens.mesh import MeshPane, MeshPlanDialog, PickPod
from ambient_tui.engine.plan import Phase, Plan, Step
from ambient_tui.engine.runner import Runner
from screens.app import AmbientApp

AMBIENT = {"istio.io/dataplane-mode": "ambient"}


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def pod(ns, name, node="kwok-node-0", captured=True, ready=True, labels=None):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {},
                         "annotations": {"ambient.istio.io/redirection": "enabled"} if captured else {}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


NAMESPACES = {"apps": {**AMBIENT, "istio.io/use-waypoint": "waypoint"}, "legacy": dict(AMBIENT),
              "web": {}, "shop": {"istio-injection": "enabled"}, "kube-system": {}, "istio-system": {}}
PODS = ([pod("apps", f"api-{i}") for i in range(3)] + [pod("apps", "worker-0", node="kwok-node-2")]
        + [pod("legacy", "db-0", captured=False), pod("legacy", "db-1"), pod("web", "front-0", captured=False)]
        + [pod("istio-system", f"ztunnel-{n}", node=f"kwok-node-{n}", ready=n != 2, labels={"app": "ztunnel"})
           for n in range(3)]
        + [pod("istio-system", f"istio-cni-node-{n}", node=f"kwok-node-{n}", labels={"k8s-app": "istio-cni-node"})
           for n in range(3)])
GATEWAYS = [{"metadata": {"namespace": "apps", "name": "waypoint"}, "spec": {"gatewayClassName": "istio-waypoint"},
             "status": {"conditions": [{"type": "Programmed", "status": "True"}]}}]
DEPLOYMENTS = [{"metadata": {"namespace": "apps", "name": "waypoint",
                             "labels": {"gateway.networking.k8s.io/gateway-name": "waypoint"}},
                "status": {"readyReplicas": 1}}]


class StubMeshProvider:
    """Named stub of MeshWatcher's consumer side; `history` grows as a watcher's would, one
    point per change (three states of the node agents are fed below)."""

    def __init__(self):
        self.version = 0
        self.history = ReadinessHistory()
        nodes = {f"kwok-node-{n}": True for n in range(3)}
        for ready in (True, False, True, False):  # kwok-node-2's ztunnel: up, down, up, down
            self._set(PODS, nodes, zt2_ready=ready)

    def _set(self, pods, nodes, zt2_ready):
        pods = [pod("istio-system", "ztunnel-2", node="kwok-node-2", ready=zt2_ready, labels={"app": "ztunnel"})
                if p["metadata"]["name"] == "ztunnel-2" else p for p in pods]
        self.state = build_state(NAMESPACES, [pod_facts(p) for p in pods], nodes, waypoints(GATEWAYS, DEPLOYMENTS))
        for row in self.state.namespaces:  # as MeshWatcher's lint of the live policies sets it
            row.netpol_errors = {"web": 1, "kube-system": None, "istio-system": None}.get(row.name, 0)
        self.history.record(self.state)
        self.version += 1

    def snapshot(self):
        return MeshSnapshot(self.version, self.state, "watching", "", {}, self.history.points())

    def pod_names(self, ns):
        return sorted(p["metadata"]["name"] for p in PODS if p["metadata"]["namespace"] == ns)


@pytest.fixture(autouse=True)
def no_cluster_lock(monkeypatch):
    """FakeKube is no API server, so there is no Lease to hold: the runner runs these plans
    without the cluster lock (tests/cluster/test_mesh_cluster.py runs them under the real one)."""
    from ambient_tui.mesh import enroll

    monkeypatch.setattr(enroll, "change_lock", lambda kube, what, journal=None: None)


class FakeKube:
    """Named fake of KubeClient: `call` records the request instead of sending it and answers
    as the API server would for a label patch; `list_json` serves the namespace's policies."""

    context = "kind-test"

    def __init__(self, policies=()):
        self.calls, self.policies = [], list(policies)

    def list_json(self, path, what, **kw):
        return [p for p in self.policies if f"/namespaces/{p['metadata']['namespace']}/" in path]

    def call(self, what, fn, *a, **kw):
        self.calls.append(what)
        return {"metadata": {"labels": {"istio.io/dataplane-mode": "ambient"}}}


DENY_ALL = {"metadata": {"name": "deny-all", "namespace": "web"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def make_app() -> AmbientApp:
    plan = Plan("Install", [Phase("p", "Phase", [Step("one", "First step", argv=["true"])])])
    return AmbientApp(plan, Runner(plan), context="kind-test", istio_version="1.31.0",
                      keymap_path=Path("/nonexistent/keymap.yaml"), now=lambda: 1767225600.0)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def mesh_app(kube=None):
    app = make_app()
    app.mesh_provider = StubMeshProvider()
    app.mesh_kube = kube or FakeKube()
    return app


async def show_mesh(pilot):
    await wait_for(lambda: bool(pilot.app.screen.query("#pane-tabs")))
    await pilot.press("5")
    await wait_for(lambda: bool(pilot.app.screen.query(MeshPane)))
    await pilot.pause(0.3)
    return pilot.app.screen.query_one(MeshPane)


async def to_row(pilot, pane, name):
    names = [r[0] for r in pane.table_rows()]
    moves = names.index(name) - names.index(pane.selected.name)
    for _ in range(abs(moves)):
        await pilot.press("down" if moves > 0 else "up")
    await pilot.pause()
    assert pane.selected.name == name


@pytest.mark.asyncio
async def test_key_5_shows_the_namespaces_with_mode_captured_pods_and_waypoint():
    app = mesh_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await show_mesh(pilot)
        rows = {r[0]: r for r in pane.table_rows()}
        assert rows["apps"][1:] == ("ambient", "4/4", "waypoint ✔", "ok")
        assert rows["web"][4] == "1✘" and rows["kube-system"][4] == "-"
        assert rows["legacy"][1:3] == ("ambient", "1/2")
        assert rows["shop"][1] == "sidecar" and rows["kube-system"][1] == "excluded"
        picture = str(app.screen.query_one("#mesh-map").render())
        # the node without a ready ztunnel comes first, with its out-of-mesh pods
        assert picture.splitlines()[0].startswith("✘ kwok-node-2") and "1 pod out" in picture
        assert "2 ambient · waypoints 1/1 · 1 sidecar · 1 not in mesh" in picture
        assert "5 Mesh" in str(app.screen.query_one("#pane-tabs").render())
        # the palette entry and the help rows (`?`) name the pane and its keys
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Show the mesh pane (enrolment, waypoints, ztunnel)" in titles
        help_rows = {r[1] for r in app.screen.pane_help_rows()}
        assert {"mesh pane: Enrol", "mesh pane: Unenrol", "mesh pane: Verify"} <= help_rows


@pytest.mark.asyncio
async def test_unenrol_asks_for_the_namespace_name_and_runs_nothing_on_a_wrong_answer():
    kube = FakeKube()
    app = mesh_app(kube)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await show_mesh(pilot)
        await to_row(pilot, pane, "legacy")
        await pilot.press("u")
        await wait_for(lambda: isinstance(app.screen, MeshPlanDialog))
        dialog = app.screen
        assert "PATCH v1 Namespace legacy labels istio.io/dataplane-mode-" in dialog.plan.steps[0].command
        await pilot.press(*"legac", "enter")
        await pilot.pause()
        assert dialog.state == "confirming" and kube.calls == []
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen.query_one(MeshPane), MeshPane)


@pytest.mark.asyncio
async def test_enrol_blocked_by_a_deny_all_policy_runs_only_after_typing_force_and_is_journaled(
        tmp_path, monkeypatch):
    from ambient_tui.mesh import enroll

    # A named fake of the enrolment gate (netpol/gate.py reads live pods, policies and the CNI
    # through a real client; tests/cluster/test_mesh_cluster.py drives it for real): here it
    # lints the fake's policies offline, as the gate would judge a deny-all.
    monkeypatch.setattr(enroll, "enrolment_gate", lambda kube, namespaces: [
        f"{ns}: NetworkPolicy {f.policy}: {f.message}" for ns in namespaces
        for f in enroll.blocking_findings(kube, ns)])
    kube = FakeKube([DENY_ALL])
    app = mesh_app(kube)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await show_mesh(pilot)
        await to_row(pilot, pane, "web")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, MeshPlanDialog))
        dialog = app.screen
        assert dialog.confirm == "force" and "deny-all" in " ".join(dialog.warnings)
        await pilot.press("enter")  # enter alone never runs a blocked enrolment
        await pilot.pause()
        assert dialog.state == "confirming" and kube.calls == []
        await pilot.press(*"force", "enter")
        await wait_for(lambda: dialog.state in ("succeeded", "failed"))
        assert dialog.state == "succeeded" and kube.calls == ["Namespace web"]
        await pilot.press("escape")
    read = Journal.read(journal_path("kind-test"))
    ends = [r for r in read.records if r["type"] == "step-end"]
    assert [(r["step"], r["state"]) for r in ends] == [("enroll-web", "succeeded")]
    start = next(r for r in read.records if r["type"] == "step-start")
    assert start["api"] == "PATCH v1 Namespace web labels istio.io/dataplane-mode=ambient"


@pytest.mark.asyncio
async def test_opt_out_picks_a_pod_with_the_keyboard_and_shows_its_plan():
    app = mesh_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await show_mesh(pilot)
        await to_row(pilot, pane, "apps")
        await pilot.press("o")
        await wait_for(lambda: isinstance(app.screen, PickPod))
        await pilot.press("down", "enter")
        await wait_for(lambda: isinstance(app.screen, MeshPlanDialog))
        assert app.screen.plan.steps[0].command == \
            "PATCH v1 Pod apps/api-1 labels istio.io/dataplane-mode=none"
        await pilot.press("escape")


@pytest.mark.asyncio
async def test_waypoint_keys_show_the_gateway_plan_and_refuse_excluded_namespaces():
    app = mesh_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await show_mesh(pilot)
        await to_row(pilot, pane, "legacy")
        await pilot.press("w")
        await wait_for(lambda: isinstance(app.screen, MeshPlanDialog))
        cmds = [s.command for s in app.screen.plan.steps]
        assert "gatewayClassName=istio-waypoint" in cmds[0] and "istio.io/use-waypoint=waypoint" in cmds[1]
        await pilot.press("escape")
        await pilot.pause()
        await to_row(pilot, pane, "apps")
        await pilot.press("W")
        await wait_for(lambda: isinstance(app.screen, MeshPlanDialog))
        assert app.screen.confirm == "apps" and app.screen.plan.steps[0].command.startswith("DELETE")
        await pilot.press("escape")
        await pilot.pause()
        await to_row(pilot, pane, "kube-system")
        await pilot.press("e")
        await pilot.pause()
        assert not isinstance(app.screen, MeshPlanDialog)


async def _mesh(pilot):
    await show_mesh(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_mesh_pane_snapshot(snap_compare, size):
    assert snap_compare(mesh_app(), terminal_size=size, run_before=_mesh)


def test_mesh_pane_zoomed_snapshot(snap_compare):
    async def run(pilot):
        await show_mesh(pilot)
        await pilot.press("z")
        await pilot.pause(0.3)
    assert snap_compare(mesh_app(), terminal_size=(80, 24), run_before=run)


@pytest.mark.asyncio
async def test_the_palette_entry_opens_the_mesh_pane():
    app = mesh_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: bool(app.screen.query("#pane-tabs")))
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"mesh pane")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(lambda: bool(app.screen.query(MeshPane)))
        assert app.screen.pane == "mesh"
