"""The TUI never shows a secret a step prints, and says once that journal lines were damaged
(issue 15, items 6 and 7). Real local commands through the real Runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Log

from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from screens.app import AmbientApp

SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.mark.asyncio
async def test_output_pane_redacts_what_helm_echoed(tmp_path):
    line = f"Error: INSTALLATION FAILED: {KEY_ID} {SECRET} rejected"
    plan = Plan("t", [Phase("p", "p", [Step("leak", "Leak", argv=["sh", "-c", f"echo '{line}'; exit 1"])])])
    j = Journal(tmp_path / "j.jsonl")
    app = AmbientApp(plan, Runner(plan, journal=j), context="kind-test", istio_version="1.31.0",
                     keymap_path=tmp_path / "none.yaml")
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        shown = "\n".join(app.screen.query_one("#output", Log).lines)
        assert plan.step("leak").state is StepState.FAILED
        assert "INSTALLATION FAILED" in shown
        assert SECRET not in shown and KEY_ID not in shown and "[REDACTED-AWS-SECRET]" in shown
    j.close()
    assert SECRET not in (tmp_path / "j.jsonl").read_text()


@pytest.mark.asyncio
async def test_damaged_journal_lines_are_reported_once(tmp_path):
    """The journal the TUI reads at start has a damaged line: one notice names it."""
    from ambient_tui.checks.model import PASS, Check

    path = tmp_path / "j.jsonl"
    path.write_text("\n".join([
        json.dumps({"ts": 1, "run": "r1", "type": "plan", "title": "Install", "steps": ["a"]}),
        '{"type":"step-start"}',
        json.dumps({"ts": 2, "run": "r1", "type": "step-end", "step": "a", "state": "succeeded"}),
    ]) + "\n")
    plan = Plan("t", [Phase("p", "p", [Step("a", "a", argv=["true"])])])
    app = AmbientApp(plan, Runner(plan, journal=Journal(path)), context="kind-test", istio_version="1.31.0",
                     keymap_path=tmp_path / "none.yaml")
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.pause()
        existing = Check("existing-istio", "Existing Istio", PASS, "none", data={"releases": []})
        await app.screen._replan([existing])  # what preflight's end calls
        await pilot.pause()
        notes = [n.message for n in app._notifications if "damaged" in n.message]
        assert notes == ["journal line 2 is damaged (no step id) and was skipped"]


@pytest.mark.asyncio
async def test_journal_that_cannot_be_written_stops_the_run_with_a_notice(tmp_path):
    (tmp_path / "blocker").write_text("")
    marker = tmp_path / "ran"
    plan = Plan("t", [Phase("p", "p", [Step("a", "a", argv=["touch", str(marker)])])])
    app = AmbientApp(plan, Runner(plan, journal=Journal(tmp_path / "blocker" / "j.jsonl")),
                     context="kind-test", istio_version="1.31.0", keymap_path=tmp_path / "none.yaml")
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        notes = [n.message for n in app._notifications if n.title == "Journal"]
        assert len(notes) == 1 and "is a file, not a directory" in notes[0] and "nothing more was changed" in notes[0]
        assert not marker.exists() and plan.step("a").state is StepState.PENDING
