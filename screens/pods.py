"""Pod pane: a live table (screens/pod_grid.py) fed from a PodWatcher snapshot.

The pane never gets a callback per watch event. A timer (0.25 s) reads the provider's
`version`; only when it changed does it take a `snapshot()` and merge it by row key. The
display order is a sorted list of (sort value, key) kept with bisect, one O(log n) step per
changed row, fully re-sorted only when the sort column or the filter changes; the grid draws
only the lines on screen, and a merge repaints only the on-screen lines that changed (why
not DataTable: O(rows) per change at 20,000 pods, bench/results_pods.md). Ages are
refreshed by a slower timer. Cell text goes into rich Text objects, so pod names and error
messages are never parsed as markup.

On the selected row: `d` describe, `y` YAML, `l` logs, `p` the previous container's logs,
each on a PodDetailScreen (screens/pod_detail.py); `enter` is left to the main screen.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from typing import Callable, Protocol

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from ambient_tui.watch.pod_detail import DetailSource, KubeDetailSource
from ambient_tui.watch.pods import RECONNECTING, Snapshot
from ambient_tui.watch.rows import COLUMNS, PodRow, format_age, row_matches
from screens.gc_pauses import BIG_LIST, freeze_long_lived
from screens.link import profile as link_profile
from screens.pod_detail import PodDetailScreen
from screens.pod_grid import AGE, PodGrid

REFRESH = 0.25  # seconds between version checks
# Frame pacing (screens/link.py): the first change after a quiet spell is drawn at the next
# check, but merges follow each other at most every `merge_pace` seconds (2 s, k9s's refresh;
# 4 s with --slow-link), so a churn burst costs one frame per pace, not one per check; keys
# are drawn at once, never waiting for it. Ages are repainted every `age_refresh` seconds (10 s; 30 s),
# in place: only AGE cells whose text changed.

HEADERS = {"namespace": "NAMESPACE", "name": "NAME", "ready": "READY", "status": "STATUS",
           "restarts": "RST", "age": "AGE", "node": "NODE", "ambient": "MESH"}
# The ambient column is shown short so all but NODE fit 80 columns: enrolled (namespace
# label) -> yes, opted-out (pod label istio.io/dataplane-mode=none) -> out, none -> no.
# Filters still match the long words (row_matches).
AMBIENT_SHORT = {"enrolled": "yes", "opted-out": "out", "none": "no"}

# Named ANSI colours: legible in 256 colours, ansi themes and over SSH without COLORTERM.
GOOD = {"Running", "Completed", "Succeeded"}
WAITING_PREFIXES = ("Init:", "Pending", "ContainerCreating", "PodInitializing", "NotReady")
AMBIENT_STYLE = {"yes": "green", "out": "yellow", "no": "dim"}


def status_style(status: str) -> str:
    if status == "Running":
        return "green"
    if status in ("Completed", "Succeeded"):
        return "dim"
    if status == "Terminating":
        return "magenta"
    if status.startswith(WAITING_PREFIXES) and not status.startswith(("Init:Error", "Init:Crash", "Init:ImagePull", "Init:ErrImage", "Init:ExitCode", "Init:Signal")):
        return "yellow"
    return "bold red"


def ready_style(ready: str) -> str:
    n, _, m = ready.partition("/")
    return "" if n == m else "yellow"


class SnapshotProvider(Protocol):
    @property
    def version(self) -> int: ...
    def snapshot(self) -> Snapshot: ...


def _sort_value(row: PodRow, column: str):
    if column == "restarts":
        return row.restarts
    if column == "age":
        return -(row.created or 0.0)  # ascending age = newest first
    if column == "ready":
        n, _, m = row.ready.partition("/")
        return (int(n or 0), int(m or 0)) if n.isdigit() and m.isdigit() else (0, 0)
    return getattr(row, column)


class PodsPane(Widget):
    """Pods table + status line + `/` filter. `provider` is a PodWatcher or anything with
    `version` and `snapshot()`; `now` is injectable so snapshots can freeze the clock."""

    DEFAULT_CSS = """
    PodsPane { height: 1fr; layout: vertical; }
    PodsPane #pods-status { height: 1; padding: 0 1; }
    PodsPane #pods-status.reconnecting { color: $warning; text-style: bold; }
    PodsPane #pods-filter { display: none; height: 3; }
    PodsPane #pods-filter.shown { display: block; }
    PodsPane PodGrid { height: 1fr; }
    """

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="pods.filter"),
        Binding("o", "cycle_sort", "Sort", id="pods.sort"),
        Binding("O", "reverse_sort", "Reverse", id="pods.sort_reverse"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="pods.filter_clear"),
        Binding("d", "detail('describe')", "Describe", id="pods.describe"),
        Binding("y", "detail('yaml')", "YAML", id="pods.yaml"),
        Binding("l", "detail('logs')", "Logs", id="pods.logs"),
        Binding("p", "detail('logs', True)", "Prev logs", show=False, id="pods.logs_previous"),
    ]

    def __init__(self, provider: SnapshotProvider, *, now: Callable[[], float] | None = None,
                 interval: float = REFRESH, age_interval: float | None = None,
                 pace: float | None = None, slow_link: bool = False,
                 detail_source: DetailSource | Callable[[], DetailSource] | None = None,
                 kubeconfig: str | None = None, context: str | None = None,
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.provider = provider
        # describe/YAML/logs: an injected source (tests), else a client for the same cluster
        # as the watcher, built on first use in the detail screen's worker thread.
        self._detail_arg = detail_source
        self._detail_built: DetailSource | None = None
        self.kubeconfig = kubeconfig if kubeconfig is not None else getattr(provider, "_kubeconfig", None)
        self.context = context if context is not None else getattr(provider, "_context", None)
        # The server's clock when the provider learns it (PodWatcher.clock) and no test clock
        # is given: ages are server timestamps, so "now" must be the server's, fresh each use.
        clock = getattr(provider, "clock", None)
        if (now is None or now is time.time) and clock is not None:
            now = clock.now
        self.now = now or time.time
        link = link_profile(slow_link)
        self.slow_link = slow_link
        self.interval = interval
        self.age_interval = age_interval or link.age_refresh
        self.pace = pace if pace is not None else link.merge_pace
        self._last_merge = float("-inf")  # monotonic time of the last merge (pacing)
        self.filter_text = ""
        self.sort_column = "namespace"
        self.sort_reverse = False
        self._seen = -1
        self._snap: Snapshot | None = None
        self._shown: dict[tuple[str, str], PodRow] = {}   # rows in the table
        self._cells: dict[tuple[str, str], tuple[str, ...]] = {}  # their cell text (age: at merge)
        self._ages: dict[tuple[str, str], str] = {}  # AGE text as drawn (fresh when absent)
        self._lines: dict[tuple[str, str], tuple] = {}  # line_cells per row (cache)
        self._status_line: Text | None = None  # last status text drawn
        self._order: list[tuple] = []  # ascending (sort value, key): the display order
        self._sortkey: dict[tuple[str, str], tuple] = {}  # key -> its entry in _order
        self._cursor_key: tuple[str, str] | None = None  # the cursor follows this pod
        self.refreshes = 0  # merges done (tests, benchmarks)

    def compose(self) -> ComposeResult:
        yield Static("", id="pods-status")
        yield Input(placeholder="filter: text, or a label selector k=v,k2!=v2", id="pods-filter")
        yield PodGrid(self, HEADERS, id="pods-table")

    @property
    def grid(self) -> PodGrid:
        return self.query_one(PodGrid)

    def on_mount(self) -> None:
        self.refresh_now()
        if self.screen.focused is None:
            self.grid.focus()
        self.set_interval(self.interval, self._tick)
        self.set_interval(self.age_interval, self._tick_ages)

    # -- merging --
    def _tick(self) -> None:
        if self.provider.version != self._seen and time.monotonic() - self._last_merge >= self.pace:
            self.refresh_now()

    def refresh_now(self, force: bool = False) -> None:
        """Take a snapshot and merge it into the table (also after a filter/sort change)."""
        snap = self.provider.snapshot()
        self._last_merge = time.monotonic()
        self._seen = snap.version
        self._snap = snap
        self._merge(snap, force)
        self._status(snap)

    def _visible(self, snap: Snapshot) -> dict[tuple[str, str], PodRow]:
        if not self.filter_text:
            return snap.rows
        return {k: r for k, r in snap.rows.items() if row_matches(r, self.filter_text)}

    def _row_cells(self, row: PodRow, now: float) -> tuple[str, ...]:
        cells = row.cells(now)
        i = COLUMNS.index("ambient")
        return cells[:i] + (AMBIENT_SHORT.get(cells[i], cells[i]),) + cells[i + 1:]

    def _cell_texts(self, key: tuple[str, str]) -> list[Text]:
        """Styled cells as rich Text (tests; the grid draws from line_cells)."""
        return [Text(t, style=st) for t, st in self.line_cells(key)]

    def _age(self, key: tuple[str, str]) -> str:
        """AGE as drawn: set when the row changed, renewed by the age tick for the rows on
        screen, computed fresh (server clock) for a row coming into view."""
        age = self._ages.get(key)
        if age is None:
            age = self._ages[key] = format_age(self._shown[key].created, self.now())
        return age

    def line_cells(self, key: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        """(text, rich style name) per column, for the grid's lines (never markup-parsed);
        kept per row until its cells or its age change (a repaint asks for every line)."""
        line = self._lines.get(key)
        if line is None:
            cells = list(self._cells[key])
            cells[AGE] = self._age(key)
            line = self._lines[key] = tuple((v, self._style_name(c, v)) for c, v in zip(COLUMNS, cells))
        return line

    @staticmethod
    def _style_name(column: str, value: str) -> str:
        if column == "status":
            return status_style(value)
        if column == "ready":
            return ready_style(value)
        if column == "ambient":
            return AMBIENT_STYLE.get(value, "")
        if column == "restarts" and value != "0":
            return "yellow"
        return ""

    def _entry(self, key: tuple[str, str], row: PodRow) -> tuple:
        return (_sort_value(row, self.sort_column), key)

    def _merge(self, snap: Snapshot, force: bool = False) -> None:
        grid = self.grid
        want = self._visible(snap)
        now = self.now()
        cursor_seen = grid.cursor in grid.visible_indexes()
        if force or (not self._order and want):
            self._shown, self._cells, self._ages, self._lines = dict(want), {}, {}, {}
            for key, row in want.items():
                self._put_cells(key, row, now)
            self._resort()
            if len(want) >= BIG_LIST:
                freeze_long_lived()  # a full list's rows are long-lived: keep them out of GC scans
        else:
            for key in [k for k in self._shown if k not in want]:
                del self._order[bisect_left(self._order, self._sortkey.pop(key))]
                del self._shown[key], self._cells[key]
                self._ages.pop(key, None)
                self._lines.pop(key, None)
            for key, row in want.items():
                old = self._shown.get(key)
                if old is row:
                    continue
                self._put_cells(key, row, now)
                entry = self._entry(key, row)
                if old is None:
                    insort(self._order, entry)
                elif self._sortkey[key] != entry:  # its sort value changed: move it
                    del self._order[bisect_left(self._order, self._sortkey[key])]
                    insort(self._order, entry)
                self._sortkey[key] = entry
                self._shown[key] = row
        grid.update_size()
        self._follow_cursor(scroll=cursor_seen)
        grid.repaint()  # only the cells that differ from the screen
        self.refreshes += 1

    def _put_cells(self, key: tuple[str, str], row: PodRow, now: float) -> bool:
        cells = self._row_cells(row, now)
        self._cells[key] = cells
        self._ages[key] = cells[AGE]  # a changed row shows its age as of now
        self._lines.pop(key, None)
        return self.grid.grow_widths(cells)

    def index_of(self, key: tuple[str, str]) -> int | None:
        """Display index of a shown pod: O(log n) through the sorted order."""
        entry = self._sortkey.get(key)
        if entry is None:
            return None
        i = bisect_left(self._order, entry)
        return len(self._order) - 1 - i if self.sort_reverse else i

    def _cursor_moved(self, key: tuple[str, str] | None) -> None:
        self._cursor_key = key

    def _follow_cursor(self, scroll: bool = True) -> bool:
        """Keep the cursor on the same pod when rows move around it (else keep its index).
        With `scroll`, keep it in view (not when the user scrolled away from it with the
        mouse wheel: a merge must not yank the view back). True if the grid scrolled."""
        grid = self.grid
        index = self.index_of(self._cursor_key) if self._cursor_key is not None else None
        if index is not None:
            grid.cursor = index
        self._cursor_key = grid.key_at(grid.cursor)
        return grid.show_cursor() if scroll else False

    def _resort(self) -> None:
        self._order = sorted(self._entry(k, r) for k, r in self._shown.items())
        self._sortkey = {e[1]: e for e in self._order}

    def _tick_ages(self) -> None:
        """Renew the ages of the rows on screen (the others are computed fresh when they come
        into view); the grid repaints only the AGE cells whose text changed."""
        grid = self.grid
        now = self.now()
        ages = {}
        for i in grid.visible_indexes():
            key = grid.key_at(i)
            row = self._shown.get(key)
            if row is not None:
                ages[key] = format_age(row.created, now)
                if self._ages.get(key) != ages[key]:
                    self._lines.pop(key, None)
        for key in self._ages.keys() - ages.keys():  # off screen: fresh when next drawn
            self._lines.pop(key, None)
        self._ages = ages
        grid.repaint()

    def _status(self, snap: Snapshot) -> None:
        status = self.query_one("#pods-status", Static)
        scope = "all namespaces" if snap.scope is None else ", ".join(snap.scope)
        shown, total = len(self._shown), len(snap.rows)
        count = f"{shown}/{total} pods" if self.filter_text else f"{total} pods"
        line = Text()
        if snap.state == RECONNECTING:
            line.append("reconnecting… ", style="bold yellow")
            if snap.last_error:
                line.append(snap.last_error[:120], style="yellow")
            line.append(" (rows are the last known)", style="dim")
        else:
            line.append(f"{snap.state}", style="green" if snap.state == "watching" else "yellow")
            line.append(f" · {count} · {scope}")
            if self.filter_text:
                line.append(" · filter: ")
                line.append(self.filter_text, style="bold")
            arrow = "↓" if self.sort_reverse else "↑"
            line.append(f" · sort {HEADERS[self.sort_column].lower()}{arrow}", style="dim")
        for where, msg in sorted(snap.messages.items()):
            line.append(" · ")
            line.append(msg[:100], style="red")
        if line != self._status_line:  # unchanged text: nothing to send
            self._status_line = line
            status.update(line, layout=False)  # one fixed line: no layout pass
        status.set_class(snap.state == RECONNECTING, "reconnecting")

    # -- filter and sort --
    def action_filter(self) -> None:
        box = self.query_one("#pods-filter", Input)
        box.cursor_blink = not self.slow_link  # a blinking cursor is a frame every 0.5 s
        box.add_class("shown")
        box.value = self.filter_text
        box.focus()

    @on(Input.Submitted, "#pods-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_filter(event.value)
        event.input.remove_class("shown")
        self.grid.focus()

    @on(Input.Changed, "#pods-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text != self.filter_text:
            self.filter_text = text
            self.refresh_now(force=True)

    def action_clear_filter(self) -> None:
        box = self.query_one("#pods-filter", Input)
        box.remove_class("shown")
        self.set_filter("")
        self.grid.focus()

    def set_sort(self, column: str, reverse: bool | None = None) -> None:
        if column == self.sort_column and reverse is None:
            reverse = not self.sort_reverse
        resort = column != self.sort_column
        self.sort_column, self.sort_reverse = column, bool(reverse)
        if self._snap is not None:
            if resort:
                self._resort()
            self.grid.update_size()
            self._follow_cursor()
            self.grid.repaint()  # at once: a key never waits for the merge pace
            self._status(self._snap)

    def action_cycle_sort(self) -> None:
        i = COLUMNS.index(self.sort_column)
        self.set_sort(COLUMNS[(i + 1) % len(COLUMNS)], False)

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort_column, not self.sort_reverse)

    # -- row actions: describe, YAML, logs --
    def _detail_source(self) -> DetailSource:
        if self._detail_arg is not None:
            arg = self._detail_arg
            return arg() if callable(arg) and not hasattr(arg, "get_pod") else arg  # type: ignore[return-value]
        if self._detail_built is None:
            self._detail_built = KubeDetailSource(self.kubeconfig, self.context)
        return self._detail_built

    def action_detail(self, mode: str, previous: bool = False) -> None:
        key = self.selected_key
        if key is None:
            self.app.notify("no pod selected", timeout=2)
            return
        self.app.push_screen(PodDetailScreen(self._detail_source, key[0], key[1], mode,
                                             previous=previous, now=self.now))

    # -- for tests and other panes --
    def table_rows(self) -> list[tuple[str, ...]]:
        """The table's rows as plain text, in display order."""
        grid = self.grid
        return [tuple(t.plain for t in self._cell_texts(grid.key_at(i))) for i in range(grid.row_count)]

    @property
    def selected_key(self) -> tuple[str, str] | None:
        grid = self.grid
        return grid.key_at(grid.cursor)


class PodsScreen(Screen):
    """A full-screen pod pane with a footer; escape goes back."""

    BINDINGS = [Binding("q", "app.pop_screen", "Back", id="pods.back")]

    def __init__(self, provider: SnapshotProvider, *, now: Callable[[], float] | None = None,
                 slow_link: bool = False) -> None:
        super().__init__()
        self.provider, self.now, self.slow_link = provider, now, slow_link

    def compose(self) -> ComposeResult:
        yield PodsPane(self.provider, now=self.now, slow_link=self.slow_link, id="pods")
        yield Footer()
