"""The guided uninstall through the TUI, driven with Pilot, on the real control plane with real
helm and charts: the typed confirmation refuses a wrong name (nothing deleted, checked through
the API), then the right name runs the plan and the end state is checked through the API."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App
from textual.screen import Screen
from textual.widgets import Input, Static

from ambient_tui.engine.journal import Journal, journal_path
from ambient_tui.engine.plan import StepState
from screens.uninstall import UninstallScreen
from istio_cleanup import clean_cluster  # same folder
from test_uninstall import helm_install, releases

# Generous: helm --wait and namespace deletion are slow on 2 shared cores.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

NS = "tui-shop"


class Host(App):
    def __init__(self, screen: UninstallScreen) -> None:
        super().__init__()
        self.uninstall = screen

    def on_mount(self) -> None:
        self.push_screen(Screen())
        self.push_screen(self.uninstall)


async def wait_for(pilot, cond, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out waiting for the screen")
        await pilot.pause(0.1)


def status(screen) -> str:
    return str(screen.query_one("#u-status", Static).render())


@pytest.fixture
def env(admin_env, tools, monkeypatch, tmp_path):
    """The admin environment in this process (the screen's workers run here), a fresh journal;
    no Istio before or after."""
    for k, v in admin_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    clean_cluster(admin_env)
    yield {**admin_env, "XDG_STATE_HOME": str(tmp_path / "state")}
    clean_cluster(admin_env)


@pytest.fixture
def core(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


@pytest.mark.asyncio
async def test_tui_uninstall_with_typed_confirmation(env, tools, core, control_plane):
    helm_install(env, tools, "istio-base", "base")
    helm_install(env, tools, "istiod", "istiod", "--set", "profile=ambient")
    core.create_namespace({"metadata": {"name": NS, "labels": {"istio.io/dataplane-mode": "ambient"}}})
    try:
        screen = UninstallScreen(context=control_plane.admin_context)
        app = Host(screen)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen.state in ("review", "failed"), 120)
            assert screen.state == "review", status(screen)
            review = str(screen.query_one("#u-review", Static).render())
            assert "HelmRelease istio-system/istiod" in review
            assert f"label istio.io/dataplane-mode on Namespace {NS}" in review and "lose mTLS" in review

            # A wrong name: refused, and nothing is deleted.
            await pilot.press(*"wrong-cluster", "enter")
            await pilot.pause(0.5)
            assert screen.state == "review" and screen.runner is None
            assert "refused: typed 'wrong-cluster'" in status(screen)
            assert releases(env, tools) == ["istio-base", "istiod"]
            assert "istio-system" in namespaces(core)
            assert core.read_namespace(NS).metadata.labels.get("istio.io/dataplane-mode") == "ambient"

            box = screen.query_one("#u-confirm-input", Input)
            box.value = ""
            await pilot.press(*control_plane.name, "enter")
            await wait_for(pilot, lambda: screen.state == "done", 600)
            assert all(s.state is StepState.SUCCEEDED for s in screen.plan.steps), screen.step_states
            assert screen.leftovers == [], screen.leftovers
            assert "verified" in str(screen.query_one("#u-result", Static).render())

        # The end state, through the API.
        assert releases(env, tools) == []
        assert "istio-system" not in namespaces(core)
        assert "istio.io/dataplane-mode" not in (core.read_namespace(NS).metadata.labels or {})
        # Journaled under the cluster name, as the headless command does.
        ends = [r for r in Journal.read(journal_path(control_plane.name)).records if r["type"] == "step-end"]
        assert [r["step"] for r in ends] == [s.id for s in screen.plan.steps]
        assert {r["state"] for r in ends} == {"succeeded"}
    finally:
        core.delete_namespace(NS)


def namespaces(core) -> set[str]:
    return {n.metadata.name for n in core.list_namespace().items}


@pytest.mark.asyncio
async def test_tui_restricted_user_sees_why_and_nothing_runs(env, restricted_kubeconfig, control_plane):
    screen = UninstallScreen(kubeconfig=str(restricted_kubeconfig))
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: screen.state in ("review", "failed"), 120)
        assert screen.state == "failed"
        text = status(screen)
        assert "refused, nothing changed" in text and "list customresourcedefinitions" in text
        assert "cluster-admin" in text
        assert screen.query_one("#u-confirm-input", Input).disabled and screen.runner is None
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen
