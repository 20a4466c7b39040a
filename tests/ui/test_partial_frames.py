"""The bytes the pod pane writes, read back by a terminal emulator (pyte), show the screen the
app means, through merges, churn, age ticks, sorts, cursor moves and scrolls; and they are
few: only the cells that changed (screens/partial_updates.py, PodGrid.repaint).

The app runs headless; each frame Textual would write is rendered to terminal text with the
real renderer and fed to pyte. After every step pyte's screen must equal the compositor's
own picture of the screen (text and colours). The provider is a stand-in for the PodWatcher
(rows set by the test)."""

from __future__ import annotations

import random

import pyte
import pytest
from rich.segment import Segment
from textual._compositor import ChopsUpdate, CompositorUpdate, LayoutUpdate
from textual.app import App, ComposeResult
from textual.geometry import Region

from ambient_tui.watch.pods import WATCHING, Snapshot
from ambient_tui.watch.rows import PodRow
from screens import partial_updates
from screens.pods import PodsPane

W, H = 100, 30
NOW = 1_800_000_000.0


class RowsProvider:
    def __init__(self, rows):
        self.version, self.rows = 1, dict(rows)

    def set(self, rows):
        self.rows = dict(rows)
        self.version += 1

    def snapshot(self):
        return Snapshot(self.version, dict(self.rows), WATCHING, "", {}, None)


class Terminal:
    """What a user's terminal shows: every frame's bytes go through a VT100 emulator."""

    def __init__(self) -> None:
        self.screen = pyte.Screen(W, H)
        self.stream = pyte.Stream(self.screen)
        self.frames: list[str] = []

    def feed(self, text: str) -> None:
        self.frames.append(text)
        self.stream.feed(text)

    def lines(self) -> list[str]:
        return ["".join(self.screen.buffer[y][x].data for x in range(W)) for y in range(H)]


class FramesApp(App):
    def __init__(self, provider, clock) -> None:
        super().__init__()
        self.provider, self.clock = provider, clock
        self.terminal = Terminal()

    def compose(self) -> ComposeResult:
        yield PodsPane(self.provider, now=lambda: self.clock[0], interval=0.05, pace=0,
                       age_interval=0.05)

    def _display(self, screen, renderable) -> None:  # headless: write what a terminal would get
        if isinstance(renderable, CompositorUpdate):
            self.terminal.feed(renderable.render_segments(self.console))


def reference(app) -> Terminal:
    """The current screen as Textual itself writes a full frame, on a fresh terminal."""
    term = Terminal()
    screen = app.screen
    update = LayoutUpdate([[s] for s in screen._compositor.render_strips()], screen._compositor.size.region)
    term.feed(partial_updates.TEXTUAL_LAYOUT_RENDER(update, app.console))
    return term


def cells(term: Terminal) -> list[list[tuple]]:
    return [[(c.data, c.fg, c.bg, c.bold, c.reverse) for c in (term.screen.buffer[y][x] for x in range(W))]
            for y in range(H)]


def make_rows(rnd, n, start=0):
    rows = {}
    for i in range(start, start + n):
        r = PodRow(f"ns-{rnd.randrange(3)}", f"pod-{i:05d}", rnd.choice(["1/1", "0/1"]),
                   rnd.choice(["Running", "Pending", "CrashLoopBackOff"]), rnd.randrange(3),
                   NOW - rnd.randrange(1, 4000), f"node-{i % 3}", rnd.choice(["enrolled", "none"]))
        rows[r.key] = r
    return rows


def check(app) -> None:
    want = reference(app)
    assert app.terminal.lines() == want.lines()
    assert cells(app.terminal) == cells(want)  # colours and attributes too


@pytest.fixture(autouse=True)
def _patched():
    partial_updates.install()


@pytest.mark.asyncio
async def test_the_terminal_shows_what_the_app_draws_through_churn_and_keys():
    rnd = random.Random(7)
    rows = make_rows(rnd, 120)
    clock = [NOW]
    provider = RowsProvider(rows)
    app = FramesApp(provider, clock)
    async with app.run_test(size=(W, H)) as pilot:
        await pilot.pause(0.2)
        check(app)
        serial = 1000
        for step in range(30):
            # churn: some pods go, some come, some change status
            for key in rnd.sample(list(rows), 4):
                del rows[key]
            rows.update(make_rows(rnd, 4, serial))
            serial += 4
            key = rnd.choice(list(rows))
            r = rows[key]
            rows[key] = PodRow(r.namespace, r.name, r.ready, "Terminating", r.restarts, r.created, r.node, r.ambient)
            provider.set(rows)
            clock[0] += rnd.choice([0, 1, 7, 65])  # ages change (the age tick is fast here)
            await pilot.press(rnd.choice(["down", "down", "up", "pagedown", "O", "o", "end", "home"]))
            await pilot.pause(0.12)
            check(app)


@pytest.mark.asyncio
async def test_an_unchanged_screen_sends_nothing_and_a_changed_cell_sends_about_that_cell():
    rnd = random.Random(3)
    rows = make_rows(rnd, 60)
    for k, r in list(rows.items()):  # all old: ages only change by the hour
        rows[k] = PodRow(r.namespace, r.name, "1/1", "Running", 0, NOW - 30 * 86400, r.node, r.ambient)
    clock = [NOW]
    provider = RowsProvider(rows)
    app = FramesApp(provider, clock)
    async with app.run_test(size=(W, H)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one(PodsPane)
        sent = len(app.terminal.frames)
        await pilot.pause(0.3)  # merges and age ticks run: nothing changed, nothing is written
        assert len(app.terminal.frames) == sent
        key = pane.grid.key_at(5)
        r = rows[key]
        rows[key] = PodRow(r.namespace, r.name, r.ready, r.status, 3, r.created, r.node, r.ambient)
        provider.set(rows)
        await pilot.pause(0.2)
        new = "".join(app.terminal.frames[sent:])
        check(app)
        # one RST cell: a cursor move, a colour, "3" and its padding, a reset; not the row
        assert 0 < len(new) < 60, repr(new)


def test_a_span_in_the_middle_of_a_line_is_written_from_its_own_column():
    """The renderer fix itself: a span (y=0, x 10..14) of a 30-cell strip writes one cursor
    move to column 10 and those 4 cells, with one colour sequence for a run of one style."""
    from rich.console import Console
    from rich.style import Style
    from textual.strip import Strip

    partial_updates.install()
    red = Style(color="red")
    strip = Strip([Segment("a" * 10, red), Segment("b" * 10, red), Segment("c" * 10)])
    update = ChopsUpdate([{0: strip}], [(0, 10, 14)], [[30]])
    text = update.render_segments(Console(color_system="standard"))
    assert text == "\x1b[1;11H\x1b[31mbbbb\x1b[0m"
    full = LayoutUpdate([[strip]], Region(0, 0, 30, 1))
    text = full.render_segments(Console(color_system="standard"))
    assert text == "\x1b[1;1H\x1b[31m" + "a" * 10 + "b" * 10 + "\x1b[0m" + "c" * 10


class PacedApp(FramesApp):
    def compose(self) -> ComposeResult:
        yield PodsPane(self.provider, now=lambda: self.clock[0], interval=0.02, pace=0.5)


@pytest.mark.asyncio
async def test_a_churn_burst_costs_one_merge_per_pace_and_a_key_never_waits_for_it():
    rnd = random.Random(5)
    rows = make_rows(rnd, 80)
    provider = RowsProvider(rows)
    app = PacedApp(provider, [NOW])
    async with app.run_test(size=(W, H)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one(PodsPane)
        start = pane.refreshes
        serial = 5000
        for _ in range(25):  # a change every 40 ms for 1 s: 25 versions
            rows.update(make_rows(rnd, 1, serial))
            serial += 1
            provider.set(rows)
            await pilot.pause(0.04)
        merges = pane.refreshes - start
        assert 1 <= merges <= 3, merges  # 1 s at one merge per 0.5 s, not 25
        # a key repaints at once, between merges
        frames = len(app.terminal.frames)
        await pilot.press("O")
        await pilot.pause()
        assert "sort namespace↓" in "".join(app.terminal.frames[frames:])
        await pilot.pause(0.6)
        check(app)  # and the last change got drawn within a pace
        assert len(pane.table_rows()) == len(rows)
