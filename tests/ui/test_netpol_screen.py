"""NetworkPolicy editor screen, offline (cluster=None): Pilot flow and an SVG snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Input, OptionList, Select
from textual.widgets.text_area import Selection

from ambient_tui.netpol import assets
from ambient_tui.netpol.lint import lint
from ambient_tui.netpol.parse import parse_file
from screens.netpol import ConfirmDialog, NetpolScreen, PathDialog, TemplateDialog

GUIDE_81 = assets.GUIDE_DIR / "8.1-allow-app-to-ztunnel.yaml"


class NetpolApp(App):
    """The smallest host for the screen: no cluster, state under a test directory."""

    def __init__(self, state_dir: Path, path: Path | None = None) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.start_path = path

    def on_mount(self) -> None:
        self.push_screen(NetpolScreen(None, state_dir=self.state_dir, path=self.start_path,
                                      cursor_blink=False))


async def settle(pilot, screen: NetpolScreen) -> None:
    # Past the lint debounce, then let the screen redraw.
    await pilot.pause(0.45)
    await pilot.pause()


async def until(pilot, condition, tries: int = 40) -> None:
    # A loaded machine runs the debounce timer late: wait for the effect, not a fixed time.
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.1)


def highlight(screen: NetpolScreen, rule: str) -> None:
    ol = screen.query_one("#findings", OptionList)
    index = next(i for i, f in enumerate(screen.findings) if f.rule == rule)
    offset = 1 if screen.problem is not None else 0
    ol.highlighted = index + offset


@pytest.mark.asyncio
async def test_template_edit_finding_fix_save(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    app = NetpolApp(state)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = app.screen
        assert isinstance(screen, NetpolScreen)

        # New from template: allow-hbone in namespace demo.
        await pilot.press("ctrl+n")
        dialog = app.screen
        assert isinstance(dialog, TemplateDialog)
        dialog.query_one("#template", Select).value = "allow-hbone"
        dialog.query_one("#namespace", Input).value = "demo"
        await pilot.click("#create")
        await settle(pilot, screen)
        assert app.screen is screen
        assert "port: 15008" in screen.editor.text
        assert screen.findings == [] and screen.dirty

        # Edit: retype 15008 as the guide's 15441.
        row = next(i for i, line in enumerate(screen.editor.text.splitlines())
                   if "port: 15008" in line)
        col = screen.editor.document.get_line(row).index("15008")
        screen.editor.focus()
        screen.editor.selection = Selection((row, col), (row, col + 5))
        await pilot.press("1", "5", "4", "4", "1")
        await settle(pilot, screen)
        rules = {f.rule for f in screen.findings}
        assert {"hbone-blocked", "meaningless-port"} <= rules
        shown = [str(o.prompt) for o in screen.query_one("#findings", OptionList).options]
        assert any("hbone-blocked" in s for s in shown)

        # Quick fix for the error, then for the warning.
        highlight(screen, "hbone-blocked")
        await pilot.press("ctrl+f")
        await settle(pilot, screen)
        assert "hbone-blocked" not in {f.rule for f in screen.findings}
        highlight(screen, "meaningless-port")
        await pilot.press("ctrl+f")
        await settle(pilot, screen)
        assert screen.findings == []

        # The draft was autosaved while the buffer was dirty.
        assert assets.list_drafts(state)

        # Save to a file.
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, PathDialog)
        target = tmp_path / "out" / "hbone.yaml"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert not screen.dirty

    saved = parse_file(target)
    assert "15441" not in target.read_text()
    assert lint(saved) == []
    assert {d.name for d in saved} == {"allow-ambient-hbone", "allow-ambient-hbone-2"}
    assert not assets.list_drafts(state)  # saving clears the draft


@pytest.mark.asyncio
async def test_yaml_syntax_error_shows_line_and_keeps_text(tmp_path):
    app = NetpolApp(tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.editor.load_text("apiVersion: networking.k8s.io/v1\nkind: [\n")
        await settle(pilot, screen)
        assert screen.problem is not None and screen.problem.line == 3
        first = str(screen.query_one("#findings", OptionList).options[0].prompt)
        assert "line 3" in first
        assert screen.editor.text.startswith("apiVersion")  # the user's text stays


@pytest.mark.asyncio
async def test_leaving_with_unsaved_changes_asks(tmp_path):
    app = NetpolApp(tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.editor.insert("# [bold]not markup[/bold]\n")
        await settle(pilot, screen)
        screen.query_one("#findings", OptionList).focus()
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#cancel")
        assert app.screen is screen and "[bold]" in screen.editor.text


@pytest.mark.asyncio
async def test_guide_example_opens_with_findings(tmp_path):
    app = NetpolApp(tmp_path / "state", path=GUIDE_81)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, screen)
        rules = {f.rule for f in screen.findings}
        # 8.1 keeps the guide's <placeholders>: schema errors, and no HBONE verdict on a
        # document the API server would refuse; the app=ztunnel peer is still explained.
        assert {"schema", "meaningless-port"} <= rules and "hbone-blocked" not in rules
        assert screen.path is None  # examples are never overwritten by ctrl+s


def test_snapshot_guide_example(snap_compare, tmp_path):
    app = NetpolApp(tmp_path / "state", path=GUIDE_81)

    async def run_before(pilot) -> None:
        await pilot.pause(0.5)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.asyncio
@pytest.mark.parametrize("pasted,name", [("metadata: {name: \x1b[31mred}\n", "ESC"),
                                         ("kind: Network\x00Policy\n", "NUL")])
async def test_pasting_control_characters_shows_a_parse_error(tmp_path, pasted, name):
    from textual import events

    app = NetpolApp(tmp_path / "state")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        screen.editor.focus()
        screen.editor.post_message(events.Paste(pasted))
        await until(pilot, lambda: screen.problem is not None)
        assert app.is_running and app.screen is screen  # the app did not exit
        assert screen.problem is not None and name in screen.problem.message
        first = str(screen.query_one("#findings", OptionList).options[0].prompt)
        assert name in first and "line 1" in first
        # Removing the character clears the problem.
        screen.editor.load_text(pasted.replace("\x1b", "").replace("\x00", ""))
        await settle(pilot, screen)
        assert screen.problem is None or name not in screen.problem.message


@pytest.mark.asyncio
@pytest.mark.parametrize("raw", [b"kind: NetworkPolicy\nmetadata: {name: caf\xe9}\n",
                                 b"a: \x1b\x00\n", b"a: " + b"[" * 5000])
async def test_opening_a_bad_file_keeps_the_app_and_says_why(tmp_path, raw):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(raw)
    app = NetpolApp(tmp_path / "state", path=bad)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await settle(pilot, screen)
        assert app.is_running and app.screen is screen
        assert screen.problem is not None  # shown in the findings list
        assert screen.query_one("#findings", OptionList).options[0].id == "problem"


def test_snapshot_unsaved_changes_dialog_at_80x24(snap_compare):
    # A fixed state directory: the dialog shows the draft's path.
    app = NetpolApp(Path("/tmp/ambient-tui-netpol-snapshot-state"))

    async def run_before(pilot) -> None:
        screen = app.screen
        screen.editor.insert("# unsaved\n")
        await pilot.pause(0.45)
        screen.query_one("#findings", OptionList).focus()
        await pilot.press("escape")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.asyncio
async def test_unsaved_changes_dialog_fits_80x24(tmp_path):
    app = NetpolApp(tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        screen.editor.insert("# unsaved\n")
        await settle(pilot, screen)
        screen.query_one("#findings", OptionList).focus()
        await pilot.press("escape")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        for ident in ("save", "discard", "cancel"):
            region = dialog.query_one(f"#{ident}").region
            assert region.right <= 80 and region.bottom <= 24 and region.width > 0
        await pilot.click("#cancel")
        assert app.screen is screen
