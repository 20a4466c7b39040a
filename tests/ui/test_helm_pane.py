"""HelmPane, history and rollback confirmation with Pilot, and SVG snapshots at 80x24 with a
frozen clock. Releases are the recorded real release Secrets in
tests/unit/test_watch_helm_fixtures (written by the real helm binary); the provider below is
a named stub of the watcher's consumer side (version, snapshot(), history()), because the UI
tier has no API server. The real watcher and a real rollback are in tests/cluster/test_helm_pane.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input

from ambient_tui.watch.helm_releases import HelmSnapshot, decode_release_secret
from ambient_tui.watch.pods import RECONNECTING, WATCHING
from screens.helm import ConfirmHelmCommand, HelmHistoryScreen, HelmPane

FIXTURES = Path(__file__).parents[1] / "unit" / "test_watch_helm_fixtures"


def recorded(name):
    secret = json.loads((FIXTURES / f"sh.helm.release.v1.{name}.json").read_text())
    # recorded in namespace "rec"; shown as if installed into istio-system
    return replace(decode_release_secret(secret), namespace="istio-system")


REVS = [recorded(n) for n in ("tiny.v1", "tiny.v2", "tiny.v3", "stuck.v1")]
# The recording's last_deployed times are all within one second; freeze the clock 7m later.
NOW = max(r.updated for r in REVS) + 7 * 60


class StubHelmProvider:
    """Named stub of HelmReleaseWatcher's consumer side, holding decoded recorded revisions."""

    def __init__(self, revisions, state=WATCHING, messages=None, error=""):
        self.version = 0
        self.set(revisions, state=state, messages=messages or {}, error=error)

    def set(self, revisions, **kw):
        self.revisions = list(revisions)
        for k, v in kw.items():
            setattr(self, k, v)
        self.version += 1

    def snapshot(self):
        newest = {}
        for r in self.revisions:
            if r.key not in newest or r.revision > newest[r.key].revision:
                newest[r.key] = r
        return HelmSnapshot(self.version, newest, self.state, self.error, dict(self.messages),
                            ("istio-system", "istio-ingress"), getattr(self, "stale_since", None))

    def history(self, ns, name):
        return sorted((r for r in self.revisions if r.key == (ns, name)),
                      key=lambda r: r.revision, reverse=True)


class HelmApp(App):
    def __init__(self, provider):
        super().__init__()
        self.provider = provider

    def compose(self) -> ComposeResult:
        pane = HelmPane(provider=self.provider, now=lambda: NOW, id="helm")
        pane.interval = 0.05  # merge quickly in tests
        yield pane

    def on_mount(self):
        self.query_one("#helm-table", DataTable).focus()


def status_text(app):
    return str(app.query_one("#helm-status").render())


def hint_text(app):
    return str(app.query_one("#helm-hint").render())


async def select(pilot, pane, name):
    table = pane.query_one(DataTable)
    for i, row in enumerate(pane.table_rows()):
        if row[0] == name:
            table.move_cursor(row=i)
            await pilot.pause()
            return
    raise AssertionError(f"{name} not in {pane.table_rows()}")


@pytest.mark.asyncio
async def test_rows_highlight_and_fix_offers():
    provider = StubHelmProvider(REVS)
    app = HelmApp(provider)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await pilot.pause()
        assert pane.table_rows() == [
            ("stuck", "istio-system", "1", "pending-install", "stuck-0.1.0", "9.9", "7m"),
            ("tiny", "istio-system", "3", "failed", "tiny-0.3.0", "1.2", "7m"),
        ]
        assert "2 releases" in status_text(app) and "2 need attention" in status_text(app)
        # Highlight: status cells in named ANSI colours.
        table = pane.query_one(DataTable)
        assert str(table.get_cell_at((0, 3)).style) == "bold yellow"
        assert str(table.get_cell_at((1, 3)).style) == "bold red"
        # The fix offered depends on the history.
        await select(pilot, pane, "stuck")
        assert "no revision was ever deployed" in hint_text(app)
        assert "helm uninstall stuck -n istio-system --wait" in hint_text(app)
        await select(pilot, pane, "tiny")
        assert "helm rollback tiny 2 -n istio-system --wait" in hint_text(app)

        # Live: a rollback shows up as a new deployed revision; row updated in place.
        rolled = replace(recorded("tiny.v2"), revision=4, description="Rollback to 2")
        provider.set(REVS + [rolled])
        await pilot.pause(0.15)
        assert ("tiny", "istio-system", "4", "deployed", "tiny-0.2.0", "1.1", "7m") in pane.table_rows()
        assert "1 need attention" in status_text(app)
        await select(pilot, pane, "tiny")
        await pilot.press("f")  # nothing to fix on a deployed release: a notice, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmHelmCommand)

        # Reconnecting and forbidden are shown in the pane.
        provider.set(REVS, state=RECONNECTING, error="istio-system: connection refused")
        await pilot.pause(0.15)
        assert "reconnecting…" in status_text(app) and "connection refused" in status_text(app)
        assert len(pane.table_rows()) == 2
        provider.set([], state=WATCHING, messages={
            "istio-system": "forbidden: needs list and watch secrets in namespace istio-system"})
        await pilot.pause(0.15)
        assert pane.table_rows() == []
        assert "forbidden: needs list and watch secrets in namespace istio-system" in status_text(app)


@pytest.mark.asyncio
async def test_history_and_rollback_confirmation_needs_the_typed_name():
    provider = StubHelmProvider(REVS)
    app = HelmApp(provider)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await pilot.pause()
        await select(pilot, pane, "tiny")
        await pilot.press("h")
        await pilot.pause()
        hist = app.screen
        assert isinstance(hist, HelmHistoryScreen)
        rows = hist.history_rows()
        assert [r[:5] for r in rows] == [("3", "7m", "failed", "tiny-0.3.0", "1.2"),
                                         ("2", "7m", "deployed", "tiny-0.2.0", "1.1"),
                                         ("1", "7m", "superseded", "tiny-0.1.0", "1.0")]
        assert rows[2][5] == "Install complete"
        assert rows[0][5].startswith('Upgrade "tiny" failed')
        # `b` on the current revision: refused.
        await pilot.press("b")
        await pilot.pause()
        assert app.screen is hist
        # Revision 2: the confirmation shows exactly the command.
        await pilot.press("down", "b")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmHelmCommand)
        assert str(confirm.query_one("#confirm-command").render()) == "helm rollback tiny 2 -n istio-system --wait"
        # A wrong name runs nothing: a prefix, empty, blanks, the wrong case, surrounding blanks.
        box = confirm.query_one("#confirm-input")
        for typed in ("tin", "", "   ", "TINY", " tiny "):
            box.value = typed
            await pilot.press("enter")
            await pilot.pause()
            assert confirm.state == "confirming", typed
            assert "does not match tiny; nothing was run" in str(confirm.query_one("#confirm-result").render())
        # Escape cancels and goes back to the history.
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is hist
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one(HelmPane) is pane


@pytest.mark.asyncio
async def test_uninstall_fix_lists_what_it_deletes():
    provider = StubHelmProvider(REVS)
    app = HelmApp(provider)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await pilot.pause()
        await select(pilot, pane, "stuck")
        await pilot.press("f")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmHelmCommand)
        assert str(confirm.query_one("#confirm-command").render()) == "helm uninstall stuck -n istio-system --wait"
        assert "deletes 1 objects: Service/stuck-lb" in str(confirm.query_one("#confirm-what").render())
        assert confirm.query_one(Input).has_focus


async def to_history(pilot):
    await select(pilot, pilot.app.query_one(HelmPane), "tiny")
    await pilot.press("h")
    await pilot.pause()


def test_helm_pane_snapshot(snap_compare):
    async def run(pilot):
        await select(pilot, pilot.app.query_one(HelmPane), "tiny")
    assert snap_compare(HelmApp(StubHelmProvider(REVS)), terminal_size=(80, 24), run_before=run)


def test_helm_history_snapshot(snap_compare):
    assert snap_compare(HelmApp(StubHelmProvider(REVS)), terminal_size=(80, 24), run_before=to_history)


def test_helm_rollback_confirm_snapshot(snap_compare):
    async def run(pilot):
        await to_history(pilot)
        await pilot.press("down", "b")
        await pilot.pause()
        await pilot.press(*"tiny")
        await pilot.pause()
    assert snap_compare(HelmApp(StubHelmProvider(REVS)), terminal_size=(80, 24), run_before=run)


class ReadOnlyHelmApp(HelmApp):
    read_only = True  # as AmbientApp(read_only=True) / --read-only


@pytest.mark.asyncio
async def test_read_only_offers_no_fix_and_no_rollback():
    app = ReadOnlyHelmApp(StubHelmProvider(REVS))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await pilot.pause()
        await select(pilot, pane, "tiny")
        await pilot.press("f")  # a failed release: without --read-only this opens the confirmation
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmHelmCommand)
        await pilot.press("h")  # the history is a read: still there
        await pilot.pause()
        hist = app.screen
        assert isinstance(hist, HelmHistoryScreen)
        assert "helm.rollback" not in {b.binding.id for b in hist.active_bindings.values() if b.enabled}
        await pilot.press("down", "b")
        await pilot.pause()
        assert app.screen is hist


@pytest.mark.asyncio
async def test_stale_list_is_kept_and_marked():
    """During an API outage the watcher keeps the last list with stale_since: the pane keeps
    the rows and says they are the last known ones (issue 15)."""
    provider = StubHelmProvider(REVS)
    app = HelmApp(provider)
    async with app.run_test(size=(120, 24)) as pilot:
        pane = app.query_one(HelmPane)
        await pilot.pause()
        assert "STALE" not in status_text(app)
        provider.set(REVS, state=RECONNECTING, error="istio-system: connection refused", stale_since=NOW - 30)
        await pilot.pause(0.15)
        assert len(pane.table_rows()) == 2
        text = status_text(app)
        assert "STALE · last known list from" in text and "(2 releases)" in text and "reconnecting…" in text
        provider.set(REVS, state=WATCHING, error="", stale_since=None)
        await pilot.pause(0.15)
        assert "STALE" not in status_text(app)
