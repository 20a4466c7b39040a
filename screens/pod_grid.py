"""PodGrid: the pod pane's table, drawn with Textual's Line API.

Why not DataTable: at 20,000 pods its add/remove/update_cell are O(rows) (remove_row rebuilds
its row index, each change makes the next frame rebuild its ordered rows and offsets, and
update_cell repaints the whole table); see bench/results_pods.md. Here the owner (PodsPane)
keeps the display order as a sorted list, and the grid renders only the lines on screen,
asking the owner for each line's cells. Line 0 is the header, fixed on top while the body
scrolls.

The owner provides: `_order` (ascending list of (sort value, key)), `sort_reverse`,
`line_cells(key) -> tuple of (text, rich style name)` and `set_sort(column)` (header clicks).
Owners call `repaint()` after any change: only the cells that differ from what is on screen
are refreshed.
"""

from __future__ import annotations

from typing import Iterable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ambient_tui.watch.rows import COLUMNS

AGE = COLUMNS.index("age")
GAP = 2  # spaces after each column
SPAN_GAP = 6  # unchanged cells between two changes sent rather than a new cursor move (~8 bytes)
SCROLLBAR_PACE = 5.0  # seconds between scrollbar thumb updates while the row count churns


class PodGrid(ScrollView, can_focus=True):
    """Rows drawn from the owner's order on demand; line 0 is the header."""

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
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    def __init__(self, owner, headers: dict[str, str], **kw) -> None:
        super().__init__(**kw)
        self.owner = owner
        self.headers = headers
        self.cursor = 0  # index in display order
        self.widths = [len(headers[c]) for c in COLUMNS]  # only grow: no jitter while rows churn
        self._painted: dict[int, tuple] = {}  # screen line -> signature drawn there
        self._header_cells = tuple((headers[c], "") for c in COLUMNS)
        self._styles: dict[tuple, Style] = {}
        self._base: Style | None = None
        self._bar_timer = None
        self._bars_synced = False

    # -- geometry --
    @property
    def body_height(self) -> int:
        return max(1, self.size.height - 1)

    @property
    def row_count(self) -> int:
        return len(self.owner._order)

    def key_at(self, index: int):
        order = self.owner._order
        n = len(order)
        if not 0 <= index < n:
            return None
        return order[n - 1 - index][1] if self.owner.sort_reverse else order[index][1]

    def grow_widths(self, cells: tuple[str, ...]) -> bool:
        grew = False
        for i, v in enumerate(cells):
            if len(v) > self.widths[i]:
                self.widths[i] = len(v)
                grew = True
        return grew

    def update_size(self) -> None:
        size = Size(sum(self.widths) + GAP * len(self.widths), self.row_count + 1)
        if self.cursor >= self.row_count:
            self.cursor = max(0, self.row_count - 1)
        if size == self.virtual_size:
            return
        # Not `self.virtual_size = size`: that reactive runs a layout pass, and the compositor
        # then repaints every line of the grid because its geometry record changed, on each
        # merge of a churning list. The scroll limits read the widget's own virtual_size.
        self.set_reactive(ScrollView.virtual_size, size)
        bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        self._refresh_scrollbars()
        if bars != (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) or not self._bars_synced:
            self.refresh(layout=True)  # a scrollbar came or went: the content area changed
            self._sync_bars()
        elif self._bar_timer is None:
            # The thumb follows the row count at most every SCROLLBAR_PACE seconds: each
            # change redraws the whole bar (a column of 38 cells).
            self._bar_timer = self.set_timer(SCROLLBAR_PACE, self._sync_bars)

    def _sync_bars(self) -> None:
        self._bar_timer = None
        self._bars_synced = True
        self._scroll_update(self.virtual_size)

    def visible_indexes(self) -> range:
        top = self.scroll_offset.y
        return range(top, min(self.row_count, top + self.body_height))

    def column_at(self, x: int) -> str | None:
        """The column under screen column x (header clicks)."""
        x += self.scroll_offset.x
        for col, w in zip(COLUMNS, self.widths):
            if x < w + GAP:
                return col
            x -= w + GAP
        return None

    # -- rendering --
    # Each line is drawn from a signature: its cells as (text, style name), with what else
    # decides the pixels (cursor, widths, horizontal scroll). `_painted` keeps the signature
    # last drawn on each screen line; `repaint()` compares and refreshes only the cells that
    # differ, so a merge, an age tick or a scroll sends changed cells, never whole rows
    # (screens/partial_updates.py makes Textual write just those cells).
    def _view(self) -> tuple[tuple, int]:
        """(frame, top row) for line signatures; read once per pass (reactive reads add up)."""
        offset = self.scroll_offset
        return (tuple(self.widths), offset.x, self.size.width), offset.y

    def line_signature(self, y: int, view: tuple | None = None) -> tuple:
        frame, top = view or self._view()
        if y == 0:
            return (self._header_cells, "header", frame)
        index = top + y - 1
        key = self.key_at(index)
        if key is None:
            return ((), "blank", frame)
        cells = self.owner.line_cells(key)
        for i, (text, _) in enumerate(cells):
            if len(text) > self.widths[i]:  # an age grew past its column: widths only grow
                self.grow_widths(tuple(t for t, _ in cells))
                frame = self._view()[0]
                break
        return (cells, "cursor" if index == self.cursor else "row", frame)

    def render_line(self, y: int) -> Strip:
        before = tuple(self.widths)
        sig = self.line_signature(y)
        if tuple(self.widths) != before:  # a cell grew its column while drawing: redraw all
            self.refresh()
        self._painted[y] = sig
        cells, kind, (widths, sx, width) = sig
        base = self._base_style()
        if kind == "blank":
            return Strip.blank(width, base)
        over = None
        if kind == "header":
            over = self.get_component_rich_style("podgrid--header")
        elif kind == "cursor":
            over = self.get_component_rich_style("podgrid--cursor")
        # Neighbouring cells of one style make one segment: each segment costs a full SGR
        # sequence when written (partial updates crop inside segments all the same).
        segments: list[Segment] = []
        run, run_style = "", None
        for (text, name), w in zip(cells, widths):
            if name != run_style and run:
                segments.append(Segment(run, self._style(run_style, over)))
                run = ""
            run_style = name
            run += text.ljust(w + GAP)
        if run:
            segments.append(Segment(run, self._style(run_style, over)))
        length = sum(widths) + GAP * len(widths)  # cells are ASCII (names are DNS labels)
        if sx or length > width:
            return Strip(segments, length).crop(sx, sx + width).extend_cell_length(width, base)
        if length < width:
            segments.append(Segment(" " * (width - length), base))
        return Strip(segments, width)

    def _base_style(self) -> Style:
        """The grid's own style (background), computed once per style change: Widget.rich_style
        walks the ancestors on every call, and was a fifth of a sort's frame."""
        if self._base is None:
            self._base = self.rich_style
        return self._base

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None
        self._styles.clear()

    def _style(self, name: str, over: Style | None) -> Style:
        """A cell's style: the grid's, the cell's (a rich style name), the header/cursor style
        over both; cached."""
        key = (name, over)
        style = self._styles.get(key)
        if style is None:
            style = self._base_style() + (Style.parse(name) if name else Style())
            if over is not None:
                style = style + over
            self._styles[key] = style
        return style

    def column_span(self, i: int) -> tuple[int, int]:
        """Screen x range of column i (with its gap), before clipping."""
        x = sum(self.widths[:i]) + GAP * i - self.scroll_offset.x
        return x, x + self.widths[i] + GAP

    def repaint(self) -> int:
        """Refresh the cells on screen whose content differs from what was drawn there;
        returns how many regions were refreshed (tests, benchmarks)."""
        width = self.size.width
        regions = []
        view = self._view()
        for y in range(self.size.height):
            new, old = self.line_signature(y, view), self._painted.get(y)
            if new == old:
                continue
            view = (new[2], view[1])  # widths may have grown on this line
            if old is None or old[1:] != new[1:] or len(old[0]) != len(new[0]):
                regions.append(Region(0, y, width, 1))  # another row kind, cursor or widths
                continue
            spans: list[list[int]] = []
            for i, (a, b) in enumerate(zip(old[0], new[0])):
                if a == b:
                    continue
                x1, x2 = self.column_span(i)
                if a[1] == b[1]:  # same style: only the characters that differ (as tcell does)
                    w = x2 - x1
                    ta, tb = a[0].ljust(w), b[0].ljust(w)
                    first = next(j for j in range(w) if ta[j] != tb[j])
                    last = next(j for j in range(w - 1, -1, -1) if ta[j] != tb[j])
                    x1, x2 = x1 + first, x1 + last + 1
                x1, x2 = max(0, x1), min(width, x2)
                if x2 <= x1:
                    continue
                if spans and x1 - spans[-1][1] <= SPAN_GAP:  # resending a few cells is
                    spans[-1][1] = x2                       # cheaper than a cursor move
                else:
                    spans.append([x1, x2])
            regions += [Region(x1, y, x2 - x1, 1) for x1, x2 in spans]
        if regions:
            self.refresh(*regions)
        return len(regions)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        # ScrollView refreshes the whole region on a scroll; only the cells that differ
        # between the old and the new view need sending (most columns of shifted rows agree).
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.position = new_value
        if round(old_value) != round(new_value):
            self.repaint()

    def watch_scroll_x(self, old_value: float, new_value: float) -> None:
        if self.show_horizontal_scrollbar:
            self.horizontal_scrollbar.position = new_value
        if round(old_value) != round(new_value):
            self.repaint()

    def _on_screen(self, indexes: Iterable[int]) -> list[int]:
        top = self.scroll_offset.y
        return [i - top + 1 for i in indexes if top <= i < top + self.body_height]

    # -- cursor --
    def show_cursor(self) -> bool:
        """Scroll so the cursor line is in view; True if it scrolled."""
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + self.body_height:
            self.scroll_to(y=self.cursor - self.body_height + 1, animate=False, immediate=True)
        else:
            return False
        return True

    def move_cursor(self, index: int) -> None:
        n = self.row_count
        if n == 0:
            return
        self.cursor = max(0, min(n - 1, index))
        self.owner._cursor_moved(self.key_at(self.cursor))
        self.show_cursor()  # a scroll repaints what differs
        self.repaint()

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
        self.move_cursor(self.row_count - 1)

    def on_click(self, event: events.Click) -> None:
        # Header: sort by that column (again: reverse). Body: select the row.
        if event.y == 0:
            column = self.column_at(event.x)
            if column is not None:
                self.owner.set_sort(column)
        elif event.y > 0:
            index = self.scroll_offset.y + event.y - 1
            if index < self.row_count:
                self.move_cursor(index)
