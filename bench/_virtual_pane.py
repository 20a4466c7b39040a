"""What-if for the benchmark only (`pods_bench.py --variants virtual`): the pod pane on a table
that renders only the lines on screen, as proposed for screens/pods.py.

Why: Textual's DataTable is O(rows) per structural change at 20,000 rows: `remove_row` rebuilds
its row-location map (one pass per removed row), every add/remove/update_cell bumps its update
count, after which the next frame rebuilds `ordered_rows` and `_y_offsets` (20,000 entries
each), and `update_cell` repaints the whole table. Under 100 changes/s that is seconds of CPU
per second. Here instead:

- the pane keeps the display order itself, as a sorted list of (sort value, key) updated with
  bisect for each changed row (O(log n) search + one memmove), fully re-sorted only when the
  sort column, direction or filter changes;
- `PodGrid` (a ScrollView on the Line API) renders a line from that list on demand, so a
  frame costs the visible lines, not the row count; a merge that changes nothing on screen
  repaints nothing but the status line;
- once a second, only the age cells on screen whose text changed are repainted.

It subclasses the real PodsPane, so the status line, filter box, bindings and sort semantics
are the same code; only the table is swapped.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from ambient_tui.watch.rows import COLUMNS, format_age
from screens import pods as pods_mod
from screens.pods import HEADERS, PodsPane, _sort_value

AGE = COLUMNS.index("age")
GAP = 2


class PodGrid(ScrollView, can_focus=True):
    """Rows drawn from the pane's order on demand; line 0 is the (fixed) header."""

    DEFAULT_CSS = """
    PodGrid { height: 1fr; }
    PodGrid > .podgrid--header { text-style: bold; color: $text-accent; }
    PodGrid > .podgrid--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    """
    COMPONENT_CLASSES = {"podgrid--header", "podgrid--cursor"}
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]
    cursor = reactive(0, always_update=True, repaint=False)

    def __init__(self, pane: "VirtualPodsPane", **kw) -> None:
        super().__init__(**kw)
        self.pane = pane
        self.widths = [len(HEADERS[c]) for c in COLUMNS]

    # -- geometry --
    @property
    def body_height(self) -> int:
        return max(1, self.size.height - 1)

    def row_count(self) -> int:
        return len(self.pane._order)

    def key_at(self, index: int):
        order = self.pane._order
        n = len(order)
        if not 0 <= index < n:
            return None
        return order[n - 1 - index][1] if self.pane.sort_reverse else order[index][1]

    def grow_widths(self, cells: tuple[str, ...]) -> bool:
        grew = False
        for i, v in enumerate(cells):
            if len(v) > self.widths[i]:
                self.widths[i] = len(v)
                grew = True
        return grew

    def update_size(self) -> None:
        self.virtual_size = Size(sum(self.widths) + GAP * len(self.widths), self.row_count() + 1)
        if self.cursor >= self.row_count():
            self.cursor = max(0, self.row_count() - 1)

    def visible_indexes(self) -> range:
        top = self.scroll_offset.y
        return range(top, min(self.row_count(), top + self.body_height))

    # -- rendering --
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        sx = self.scroll_offset.x
        if y == 0:
            text = Text(no_wrap=True, end="")
            for i, c in enumerate(COLUMNS):
                text.append(HEADERS[c].ljust(self.widths[i] + GAP))
            style = self.get_component_rich_style("podgrid--header")
            return self._strip(text, sx, width, style)
        index = self.scroll_offset.y + y - 1
        key = self.key_at(index)
        if key is None:
            return Strip.blank(width, self.rich_style)
        cells = self.pane._cell_texts(key)
        text = Text(no_wrap=True, end="")
        for i, cell in enumerate(cells):
            text.append_text(cell)
            text.append(" " * (self.widths[i] - cell.cell_len + GAP))
        style = self.get_component_rich_style("podgrid--cursor") if index == self.cursor and self.has_focus else None
        return self._strip(text, sx, width, style)

    def _strip(self, text: Text, sx: int, width: int, style: Style | None) -> Strip:
        segments = list(text.render(self.app.console))
        if style is not None:  # header/cursor style over the cells' own colours
            segments = list(Segment.apply_style(segments, post_style=style))
        return Strip(segments).crop(sx, sx + width).extend_cell_length(width).apply_style(self.rich_style)

    def refresh_lines(self, indexes) -> None:
        top = self.scroll_offset.y
        regions = [Region(0, i - top + 1, self.size.width, 1) for i in indexes
                   if top <= i < top + self.body_height]
        if regions:
            self.refresh(*regions)

    def refresh_ages(self, indexes) -> None:
        """Repaint the age cell of these rows (the terminal gets the line up to the age column:
        Textual's compositor cuts lines at widget edges, not at the dirty region's left edge)."""
        x = sum(self.widths[:AGE]) + GAP * AGE - self.scroll_offset.x
        w = self.widths[AGE] + GAP
        if x + w <= 0 or x >= self.size.width:
            return
        top = self.scroll_offset.y
        regions = [Region(max(0, x), i - top + 1, w, 1) for i in indexes
                   if top <= i < top + self.body_height]
        if regions:
            self.refresh(*regions)

    # -- cursor --
    def move_cursor(self, index: int) -> None:
        n = self.row_count()
        if n == 0:
            return
        index = max(0, min(n - 1, index))
        old, self.cursor = self.cursor, index
        top = self.scroll_offset.y
        if index < top:
            self.scroll_to(y=index, animate=False)
            self.refresh()
        elif index >= top + self.body_height:
            self.scroll_to(y=index - self.body_height + 1, animate=False)
            self.refresh()
        else:
            self.refresh_lines([old, index])

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self.body_height)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self.body_height)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.row_count() - 1)

    def on_focus(self) -> None:
        self.refresh_lines([self.cursor])

    def on_blur(self) -> None:
        self.refresh_lines([self.cursor])


class VirtualPodsPane(PodsPane):
    """PodsPane with PodGrid instead of DataTable (same status line, filter, keys)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._order: list[tuple] = []      # ascending (sort value, key)
        self._sortkey: dict = {}           # key -> its entry in _order
        self._age_now = 0.0

    def compose(self):
        yield Static("", id="pods-status")
        yield Input(placeholder="filter: text, or a label selector k=v,k2!=v2", id="pods-filter")
        yield PodGrid(self, id="pods-table")

    @property
    def grid(self) -> PodGrid:
        return self.query_one(PodGrid)

    def on_mount(self, event) -> None:
        event.prevent_default()  # PodsPane.on_mount sets up a DataTable
        self._age_now = self.now()
        self.refresh_now()
        if self.screen.focused is None:
            self.grid.focus()
        self.set_interval(self.interval, self._tick)
        self.set_interval(self.age_interval, self._tick_ages)

    def _cell_texts(self, key) -> list[Text]:
        """Styled cells, built only for the lines being drawn (strings are kept per row)."""
        cells = list(self._cells[key])
        cells[AGE] = format_age(self._shown[key].created, self._age_now)
        return [self._styled(c, v) for c, v in zip(COLUMNS, cells)]

    def _entry(self, key, row) -> tuple:
        return (_sort_value(row, self.sort_column), key)

    def _merge(self, snap, force: bool = False) -> None:
        grid = self.grid
        want = self._visible(snap)
        now = self.now()
        before = [grid.key_at(i) for i in grid.visible_indexes()]
        changed_keys = set()
        grew = False
        if force or not self._order and want:
            self._shown, self._cells = {}, {}
            for key, row in want.items():
                self._put_cells(key, row, now)
            self._shown = dict(want)
            self._resort()
            grew = True
        else:
            for key in [k for k in self._shown if k not in want]:
                entry = self._sortkey.pop(key)
                i = bisect_left(self._order, entry)
                del self._order[i]
                del self._shown[key], self._cells[key]
                changed_keys.add(key)
            for key, row in want.items():
                old = self._shown.get(key)
                if old is row:
                    continue
                grew |= self._put_cells(key, row, now)
                entry = self._entry(key, row)
                if old is not None:
                    prev = self._sortkey[key]
                    if prev != entry:
                        del self._order[bisect_left(self._order, prev)]
                        insort(self._order, entry)
                else:
                    insort(self._order, entry)
                self._sortkey[key] = entry
                self._shown[key] = row
                changed_keys.add(key)
        grid.update_size()
        after = [grid.key_at(i) for i in grid.visible_indexes()]
        if grew or before != after or any(k in changed_keys for k in after):
            grid.refresh()
        self.refreshes += 1

    def _put_cells(self, key, row, now) -> bool:
        cells = self._row_cells(row, now)
        self._cells[key] = cells
        return self.grid.grow_widths(cells)

    def _resort(self) -> None:
        self._order = sorted(self._entry(k, r) for k, r in self._shown.items())
        self._sortkey = {e[1]: e for e in self._order}

    def _sort(self, table=None) -> None:
        self._resort()
        self.grid.update_size()
        self.grid.refresh()

    def _tick_ages(self) -> None:
        grid = self.grid
        new = self.now()
        old = self._age_now
        self._age_now = new
        changed = []
        for i in grid.visible_indexes():
            row = self._shown.get(grid.key_at(i))
            if row is not None and format_age(row.created, old) != format_age(row.created, new):
                changed.append(i)
        grid.refresh_ages(changed)

    def set_sort(self, column: str, reverse: bool | None = None) -> None:
        if column == self.sort_column and reverse is None:
            reverse = not self.sort_reverse
        resort = column != self.sort_column
        self.sort_column, self.sort_reverse = column, bool(reverse)
        if self._snap is not None:
            if resort:
                self._resort()
            self.grid.update_size()
            self.grid.refresh()
            self._status(self._snap)

    def action_filter(self) -> None:
        box = self.query_one("#pods-filter", Input)
        box.add_class("shown")
        box.value = self.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#pods-filter", Input)
        box.remove_class("shown")
        self.set_filter("")
        self.grid.focus()

    def table_rows(self) -> list[tuple[str, ...]]:
        out = []
        for i in range(self.grid.row_count()):
            out.append(tuple(t.plain for t in self._cell_texts(self.grid.key_at(i))))
        return out

    @property
    def selected_key(self):
        return self.grid.key_at(self.grid.cursor)


def apply() -> None:
    pods_mod.PodsPane = VirtualPodsPane
