"""Main screen, driven by Pilot over plans of real local commands and the real Runner."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import Log

from ambient_tui.engine.journal import Journal
from ambient_tui.engine.plan import Phase, Plan, Step, StepState
from ambient_tui.engine.runner import Runner
from screens.app import AmbientApp
from screens.help import HelpScreen
from screens.main import COMMANDS, SKIP_REASON, MainScreen
from screens.widgets import StepChecklist

MARKUP_LINE = "[bold]not markup[/] [red]x"


def make_plan(tmp_path: Path) -> Plan:
    return Plan(title="Test plan", phases=[
        Phase("prepare", "Prepare", [
            Step("hello", "Say hello", argv=["printf", "hello\\n%s\\n", MARKUP_LINE]),
            Step("count", "Count to five", argv=["seq", "1", "5"]),
        ]),
        Phase("install", "Install", [
            Step("flag", "Read the flag file", argv=["cat", str(tmp_path / "flag")]),
            Step("sleep", "Sleep a while", argv=["sleep", "30"]),
        ]),
    ])


def make_app(tmp_path: Path, *, keymap: str | None = None, journal: bool = False,
             plan: Plan | None = None) -> AmbientApp:
    plan = plan or make_plan(tmp_path)
    keymap_file = tmp_path / "keymap.yaml"
    if keymap is not None:
        keymap_file.write_text(keymap)
    j = Journal(tmp_path / "journal.jsonl") if journal else None
    return AmbientApp(plan, Runner(plan, journal=j), context="kind-test",
                      istio_version="1.28.0", keymap_path=keymap_file)


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.15)  # past the 1/20 s flush timer
    await pilot.pause()


async def select(pilot, step_id: str) -> None:
    checklist = pilot.app.screen.query_one(StepChecklist)
    checklist.highlighted = checklist.get_option_index(step_id)
    await pilot.pause()


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def pane_lines(app) -> list[str]:
    return list(app.screen.query_one("#output", Log).lines)


@pytest.mark.asyncio
async def test_run_step_output_appears_escaped(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(StepChecklist).selected_step_id == "hello"
        await pilot.press("enter")
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SUCCEEDED
        lines = pane_lines(app)
        assert lines[:2] == ["hello", MARKUP_LINE]  # brackets shown as they are
        assert app.plan.step("count").state is StepState.PENDING  # one step only
        # Moving the selection shows that step's (empty) output; moving back restores it.
        await pilot.press("down")
        assert app.screen.query_one(StepChecklist).selected_step_id == "count"
        assert pane_lines(app) == []
        await pilot.press("up")
        assert pane_lines(app)[:2] == ["hello", MARKUP_LINE]


@pytest.mark.asyncio
async def test_run_plan_then_cancel_sleep(tmp_path):
    (tmp_path / "flag").write_text("flag-content\n")
    app = make_app(tmp_path, journal=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await select(pilot, "sleep")
        await pilot.press("r")
        await wait_for(lambda: app.plan.step("sleep").state is StepState.RUNNING)
        for step_id in ("hello", "count", "flag"):
            assert app.plan.step(step_id).state is StepState.SUCCEEDED
        await pilot.press("c")
        await settle(pilot)
        assert app.plan.step("sleep").state is StepState.CANCELLED
        assert any("cancelled" in line for line in pane_lines(app))
        prompt = app.screen.query_one(StepChecklist).get_option("sleep").prompt
        assert "cancelled" in str(prompt)
    journal = (tmp_path / "journal.jsonl").read_text()
    assert "flag-content" in journal or "sleep" in journal


@pytest.mark.asyncio
async def test_skip_and_retry(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await select(pilot, "count")
        await pilot.press("s")
        await settle(pilot)
        step = app.plan.step("count")
        assert step.state is StepState.SKIPPED and step.skip_reason == SKIP_REASON

        await select(pilot, "flag")
        await pilot.press("enter")
        await settle(pilot)
        assert app.plan.step("flag").state is StepState.FAILED
        (tmp_path / "flag").write_text("now-here\n")
        await pilot.press("t")
        await settle(pilot)
        assert app.plan.step("flag").state is StepState.SUCCEEDED
        assert "now-here" in pane_lines(app)


@pytest.mark.asyncio
async def test_dry_run_toggle(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        assert "DRY-RUN" not in app.sub_title
        await pilot.press("d")
        assert app.runner.dry_run is True
        assert "DRY-RUN" in app.sub_title
        await pilot.press("enter")
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SKIPPED
        assert any(line.startswith("dry-run: would run printf") for line in pane_lines(app))
        await pilot.press("d")
        assert app.runner.dry_run is False and "DRY-RUN" not in app.sub_title


@pytest.mark.asyncio
async def test_help_overlay_and_palette_list_the_commands(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = [row[2] for row in app.screen.rows]
        assert ids[:len(COMMANDS)] == [c[0] for c in COMMANDS]
        # then the pane keys, which win over the main screen's while their pane has focus
        assert {"pods.describe", "pods.logs", "helm.history", "helm.fix"} <= set(ids[len(COMMANDS):])
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {c[2] for c in COMMANDS} <= titles
        # Every binding of the main screen has an id.
        assert all(b.id for b in MainScreen.BINDINGS)


@pytest.mark.asyncio
async def test_keymap_override(tmp_path):
    app = make_app(tmp_path, keymap="ambient.skip: k\nambient.run_step: [x, ctrl+g]\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")  # no longer bound
        await pilot.pause()
        assert app.plan.step("hello").state is StepState.PENDING
        await pilot.press("k")
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SKIPPED
        await select(pilot, "count")
        await pilot.press("x")
        await settle(pilot)
        assert app.plan.step("count").state is StepState.SUCCEEDED
        await pilot.press("question_mark")
        rows = {row[2]: row[0] for row in app.screen.rows}
        assert rows["ambient.skip"] == "k"


@pytest.mark.asyncio
async def test_bad_keymap_is_a_notice_not_a_crash(tmp_path):
    app = make_app(tmp_path, keymap="ambient.skip: [unclosed\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any("not valid YAML" in m for m in notices)
        await pilot.press("s")  # default keys still work
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SKIPPED


def _snapshot_app() -> AmbientApp:
    plan = Plan(title="Install Istio 1.28.0 (ambient)", phases=[
        Phase("prepare", "Prepare", [
            Step("hello", "Say hello", argv=["printf", "hello\\n%s\\n", MARKUP_LINE]),
            Step("count", "Count to five", argv=["seq", "1", "5"]),
        ]),
        Phase("install", "Install", [
            Step("base", "Install istio-base chart", argv=["true"]),
            Step("istiod", "Install istiod (profile ambient)", argv=["true"]),
        ]),
    ])
    return AmbientApp(plan, Runner(plan), context="kind-test", istio_version="1.28.0",
                      keymap_path=Path("/nonexistent/keymap.yaml"))


async def _run_two_steps(pilot) -> None:
    # snap_compare starts run_before before the screen is composed: wait for it.
    await wait_for(lambda: bool(pilot.app.screen.query(StepChecklist)))
    await pilot.pause()
    # Run "count" first, then "hello" (the selected step whose output is in view).
    await select(pilot, "count")
    await pilot.press("enter")
    await settle(pilot)
    await select(pilot, "hello")
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_main_screen_snapshot(snap_compare, size):
    assert snap_compare(_snapshot_app(), terminal_size=size, run_before=_run_two_steps)


@pytest.mark.asyncio
async def test_output_pane_is_bounded(tmp_path):
    plan = Plan(title="big", phases=[Phase("p", "P", [Step("big", "Lots", argv=["seq", "12000"])])])
    app = make_app(tmp_path, plan=plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await settle(pilot)
        lines = pane_lines(app)
        assert len(lines) == 5000
        assert lines[-2:] == ["12000", "── succeeded (exit 0)"]


@pytest.mark.asyncio
async def test_netpol_screen_opens_from_main(tmp_path):
    from screens.netpol import NetpolScreen

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NetpolScreen)


@pytest.mark.asyncio
@pytest.mark.parametrize("keymap, expect", [
    ('ambient.run: ","\n', "an empty key"),
    ('ambient.run: "ctrl+"\n', "'ctrl+' is not a key"),
    ("ambient.run: [x, 'nokey']\n", "'nokey' is not a key Textual knows"),
])
async def test_keymap_keys_must_be_real_keys(tmp_path, keymap, expect):
    """`","` and `"ctrl+"` used to be accepted and left Run without a key (issue 15)."""
    app = make_app(tmp_path, keymap=keymap)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any(expect in m and "using the default keys" in m for m in notices), notices
        await pilot.press("s", "r")  # the defaults stand: skip, then run the rest
        await settle(pilot)
        assert app.plan.step("hello").state is StepState.SKIPPED
        assert app.plan.step("count").state is StepState.SUCCEEDED


@pytest.mark.asyncio
async def test_keymap_that_takes_a_bindings_only_key_reports_it(tmp_path):
    app = make_app(tmp_path, keymap="ambient.skip: r\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any(m.startswith("ambient.run (Run): r now belongs to ambient.skip; it has no key left")
                   for m in notices), notices
