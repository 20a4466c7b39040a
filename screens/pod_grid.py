"""PodGrid: the pod pane's table, drawn with Textual's Line API.

Why not DataTable: at 20,000 pods its add/remove/update_cell are O(rows) (remove_row rebuilds
its row index, each change makes the next frame rebuild its ordered rows and offsets, and
update_cell repaints the whole table); see bench/results_pods.md. Here the owner (PodsPane)
keeps the display order as a sorted list, and the grid renders only the lines on screen,
asking the owner for each line's cells. Line 0 is the header, fixed on top while the body
scrolls.

The owner provides: `_order` (ascending list of (sort value, key)), `sort_reverse`,
`_cell_texts(key) -> list[Text]` and `set_sort(column)` (header clicks).
"""

from __future__ import annotations

from typing import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ambient_tui.watch.rows import COLUMNS

AGE = COLUMNS.index("age")
GAP = 2  # spaces after each column


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
        self.virtual_size = Size(sum(self.widths) + GAP * len(self.widths), self.row_count + 1)
        if self.cursor >= self.row_count:
            self.cursor = max(0, self.row_count - 1)

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
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        sx = self.scroll_offset.x
        if y == 0:
            text = Text(no_wrap=True, end="")
            for i, c in enumerate(COLUMNS):
                text.append(self.headers[c].ljust(self.widths[i] + GAP))
            return self._strip(text, sx, width, self.get_component_rich_style("podgrid--header"))
        index = self.scroll_offset.y + y - 1
        key = self.key_at(index)
        if key is None:
            return Strip.blank(width, self.rich_style)
        text = Text(no_wrap=True, end="")
        for i, cell in enumerate(self.owner._cell_texts(key)):
            text.append_text(cell)  # rich Text, never markup-parsed
            text.append(" " * (self.widths[i] - cell.cell_len + GAP))
        style = self.get_component_rich_style("podgrid--cursor") if index == self.cursor else None
        return self._strip(text, sx, width, style)

    def _strip(self, text: Text, sx: int, width: int, style: Style | None) -> Strip:
        segments = list(text.render(self.app.console))
        if style is not None:  # header/cursor style over the cells' own colours
            segments = list(Segment.apply_style(segments, post_style=style))
        return Strip(segments).crop(sx, sx + width).extend_cell_length(width).apply_style(self.rich_style)

    def _on_screen(self, indexes: Iterable[int]) -> list[int]:
        top = self.scroll_offset.y
        return [i - top + 1 for i in indexes if top <= i < top + self.body_height]

    def refresh_lines(self, indexes: Iterable[int]) -> None:
        regions = [Region(0, y, self.size.width, 1) for y in self._on_screen(indexes)]
        if regions:
            self.refresh(*regions)

    def refresh_ages(self, indexes: Iterable[int]) -> None:
        """Repaint only the age cell of these rows."""
        x = sum(self.widths[:AGE]) + GAP * AGE - self.scroll_offset.x
        w = self.widths[AGE] + GAP
        if x + w <= 0 or x >= self.size.width:
            return
        regions = [Region(max(0, x), y, w, 1) for y in self._on_screen(indexes)]
        if regions:
            self.refresh(*regions)

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
        old, self.cursor = self.cursor, max(0, min(n - 1, index))
        self.owner._cursor_moved(self.key_at(self.cursor))
        if self.show_cursor():
            self.refresh()
        else:
            self.refresh_lines([old, self.cursor])

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
