"""The cause of a stuck wait in the TUI, driven with Pilot on the real control plane: the
preflight pane names what it can predict, the failing step's checklist row and output pane
show the cause while helm waits, the step fails with it long before helm's 10-minute
timeout, and the pods pane says why the pod is not Ready. Faults come from the same
`sandbox fault` code as the headless tests (faults.add/clear)."""

from __future__ import annotations

import asyncio
import time

import pytest
from istio_cleanup import clean_cluster  # same folder

from ambient_tui import catalog
from ambient_tui.checks.model import CheckContext
from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import StepState
from ambient_tui.engine.runner import Runner
from ambient_tui.plans.install import build_install_plan
from ambient_tui.sandbox import build, faults
from ambient_tui.settings import Settings
from ambient_tui.watch.diagnose import step_watcher
from screens.app import AmbientApp
from screens.preflight import PreflightPane
from screens.widgets import OutputPane, StepChecklist

pytestmark = pytest.mark.cluster


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # a widget not mounted yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def clean(admin_env, control_plane):
    clean_cluster(admin_env)
    yield
    faults.clear(control_plane)
    clean_cluster(admin_env)


@pytest.mark.asyncio
@pytest.mark.parametrize("fault, check_id, words", [
    ("taints", "scheduling", ("untolerated taint", "dedicated=gpu:NoSchedule")),
    ("image-pull", None, ("cannot pull docker.io/istio/pilot:1.31.0", "not found")),
])
async def test_the_cause_shows_in_the_tui(admin_env, kubeconfig, tools, control_plane, clean, tmp_path,
                                          monkeypatch, fault, check_id, words):
    for k, v in admin_env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    faults.add(control_plane, fault)
    channel = catalog.load().release(build.ISTIO_VERSION).gateway_api.channel
    settings = Settings(istio_version=build.ISTIO_VERSION, chart_source=str(tools.charts),
                        gateway_api_file=f"{tools.gateway_api}/{channel}-install.yaml")
    plan = build_install_plan(settings)
    watcher = step_watcher(str(kubeconfig))
    runner = Runner(plan, journal=Journal(tmp_path / "journal.jsonl"), env=admin_env, step_watcher=watcher)
    app = AmbientApp(plan, runner, context="sandbox", istio_version=build.ISTIO_VERSION,
                     keymap_path=tmp_path / "none.yaml", kubeconfig=str(kubeconfig),
                     check_context_factory=lambda: CheckContext(settings, kubeconfig=str(kubeconfig),
                                                                env=admin_env))
    try:
        async with app.run_test(size=(160, 45)) as pilot:
            screen = app.screen
            await wait_for(lambda: screen.preflight_done, 180, "the checks to finish")
            pane = screen.query_one(PreflightPane)
            if check_id:
                c = pane.results[check_id]
                assert c.status == "fail" and all(w in c.detail for w in words[1:]), c.detail
            await pilot.press("r")
            if screen._failures_acknowledged and screen._worker is None:
                await pilot.press("r")  # preflight failed as predicted: run anyway
            await wait_for(lambda: plan.step("helm-istiod").state is StepState.RUNNING, 120, "istiod's step")
            checklist = screen.query_one(StepChecklist)
            row = lambda: str(checklist.get_option("helm-istiod").prompt)  # noqa: E731
            # The running row shows the cause while helm still waits.
            await wait_for(lambda: words[0] in row(), 60, f"the cause on the row: {row()}")
            assert plan.step("helm-istiod").state in (StepState.RUNNING, StepState.FAILED)
            await wait_for(lambda: not screen.running, 120, "the run to end early")
            step = plan.step("helm-istiod")
            assert step.state is StepState.FAILED
            assert words[0] in row()  # the failed row keeps the cause
            checklist.highlighted = checklist.get_option_index("helm-istiod")
            await pilot.pause(0.5)
            out = "\n".join(str(line) for line in screen.query_one(OutputPane).lines)
            assert "⚠ cause:" in out and words[0] in out and "next:" in out, out[-2000:]
            # The pods pane: the istiod row says why it is not Ready.
            await pilot.press("3")
            await wait_for(lambda: bool(screen.query("#pods")), 30, "the pods pane")
            pods = screen.query_one("#pods")
            reason = "untolerated taint" if fault == "taints" else "not found"
            await wait_for(lambda: any(r[1].startswith("istiod-") and reason in r[3] for r in pods.table_rows()),
                           60, "the istiod row's reason")
    finally:
        watcher.stop()
