"""--read-only in the TUI (Pilot): no key or palette entry that runs, skips, fixes or
uninstalls; the header says READ-ONLY and names the pinned target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import SystemCommand

from ambient_tui.cluster import target as tg
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from screens.app import AmbientApp
from screens.main import MUTATING


def plan() -> Plan:
    return Plan("t", [Phase("local", "Local", [Step("hello", "Say hello", argv=["printf", "hello\\n"])])])


def a_target(tmp_path, read_only=True):
    kc = tmp_path / "kc"
    kc.write_text(json.dumps({
        "clusters": [{"name": "c", "cluster": {"server": "https://prod.example:6443"}}],
        "users": [{"name": "ops", "user": {"token": "t"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "ops"}}],
        "current-context": "prod"}))
    return tg.resolve(str(kc), read_only=read_only)


@pytest.mark.asyncio
async def test_read_only_tui_has_no_mutating_keys_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    p = plan()
    app = AmbientApp(p, Runner(p), target=a_target(tmp_path), keymap_path=Path("/nonexistent/keymap.yaml"))
    async with app.run_test(size=(120, 30)) as pilot:
        assert app.sub_title == "context: prod · prod.example:6443 · user: ops · READ-ONLY"
        screen = app.screen
        enabled = {b.binding.id for b in screen.active_bindings.values() if b.enabled}
        assert "ambient.quit" in enabled and "ambient.pane_preflight" in enabled
        assert not enabled & MUTATING, enabled & MUTATING
        titles = [c.title for c in app.get_system_commands(screen) if isinstance(c, SystemCommand)]
        assert "Show the preflight pane" in titles
        assert not [t for t in titles if t.startswith(("Run the plan", "Run the selected", "Skip", "Retry", "Uninstall", "Add the", "Toggle dry"))]
        for key in ("r", "enter", "s", "t", "u", "f"):
            await pilot.press(key)
        await pilot.pause(0.2)
        assert p.steps[0].state is StepState.PENDING and app.screen is screen
        screen.command_run_step()  # even a direct call (as the palette would make) runs nothing
        await pilot.pause(0.2)
        assert p.steps[0].state is StepState.PENDING


@pytest.mark.asyncio
async def test_without_read_only_the_keys_are_there(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    p = plan()
    app = AmbientApp(p, Runner(p), target=a_target(tmp_path, read_only=False),
                     keymap_path=Path("/nonexistent/keymap.yaml"))
    async with app.run_test(size=(120, 30)) as pilot:
        assert "READ-ONLY" not in app.sub_title
        enabled = {b.binding.id for b in app.screen.active_bindings.values() if b.enabled}
        assert {"ambient.run", "ambient.uninstall"} <= enabled
        await pilot.press("r")
        await app.workers.wait_for_complete()
        assert p.steps[0].state is StepState.SUCCEEDED
