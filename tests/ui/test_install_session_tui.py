"""The TUI plans through the install session, as `install` does: after preflight the checklist
is the session's plan with its decisions in the output pane; a change that needs consent (an
older Gateway API CRD upgrade) asks at the first `r`, runs at the second; a refusal never runs.
No cluster here: the checks are small functions with fixed results, and the runner is in
dry-run mode (nothing is executed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ambient_tui.checks.model import FAIL, PASS, WARN, Check
from ambient_tui.engine.plan import StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.plans.install_session import InstallSession
from ambient_tui.settings import Settings
from screens.app import AmbientApp


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


class NoCluster:
    def client(self):
        raise AssertionError("no step runs in dry-run")


def specs(istiod_mode=None):
    older = {"present": True, "version": "v1.2.0", "channel": "standard", "older": True,
             "owner": "field managers flux", "names": ["gateways.gateway.networking.k8s.io"]}
    return [
        ("cluster-access", "Cluster access", lambda c: Check("cluster-access", "Cluster access", PASS,
                                                              data={"context": "prod"}), 5),
        ("existing-istio", "Existing Istio", lambda c: Check(
            "existing-istio", "Existing Istio", FAIL if istiod_mode else PASS, "",
            data={"releases": [], "istiod_mode": istiod_mode}), 5),
        ("gateway-api", "Gateway API CRDs", lambda c: Check("gateway-api", "Gateway API CRDs", WARN, "older",
                                                             data=older), 5),
    ]


def kubeconfig(tmp_path) -> Path:
    """A real kubeconfig whose context "prod" is the one preflight checks: the session pins to it."""
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
                    "clusters: [{name: prod, cluster: {server: 'https://prod.example:443'}}]\n"
                    "users: [{name: admin, user: {token: t}}]\n"
                    "contexts: [{name: prod, context: {cluster: prod, user: admin}}]\n")
    return path


def make_app(tmp_path, istiod_mode=None):
    session = InstallSession(Settings(istio_version="1.31.0", gateway_api_file=str(tmp_path)),
                             kubeconfig=str(kubeconfig(tmp_path)))
    (tmp_path / "standard-install.yaml").write_text(
        "metadata:\n  annotations:\n    gateway.networking.k8s.io/channel: standard\n")
    plan = session.initial_plan()
    runner = Runner(plan, dry_run=True)
    return AmbientApp(plan, runner, context="prod", keymap_path=Path("/nonexistent"), install_session=session,
                      check_context_factory=NoCluster, preflight_checks=specs(istiod_mode))


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_the_crd_upgrade_asks_at_the_first_r_and_runs_at_the_second(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(lambda: app.screen.outcome is not None)
        await pilot.pause(0.1)
        step = app.plan.step("gateway-api-crds")
        assert step.title == "upgrade Gateway API CRDs v1.2.0 -> v1.5.1 (standard)"
        # Pinned to the checked context (cluster/target.py): the single-context copy, then the context.
        assert step.argv[1] == "--kubeconfig" and step.argv[3:5] == ["--context", "prod"], step.argv
        first = app.plan.steps[0].id
        assert any("older than the v1.5.1" in line for line in app.screen.buffers.lines(first))
        await pilot.press("r")
        await pilot.pause(0.1)
        assert app.screen._worker is None  # asked, nothing started
        assert any("Press r again to agree" in n.message for n in app._notifications)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert app.plan.step("gateway-api-crds").state is StepState.SKIPPED  # dry-run: seen, not run


@pytest.mark.asyncio
async def test_a_sidecar_istiod_refuses_the_run(tmp_path):
    app = make_app(tmp_path, istiod_mode="sidecar")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(lambda: app.screen.outcome is not None)
        for _ in range(3):
            await pilot.press("r")
            await pilot.pause(0.05)
        assert app.screen._worker is None
        assert any("runs in sidecar mode" in n.message for n in app._notifications)
        assert all(s.state is StepState.PENDING for s in app.plan.steps)
