"""Help overlay: the main screen's commands with the keys they have now (keymap applied)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    """rows: (keys as displayed, description, binding id)."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="ambient.help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Command")
        table.add_column("Binding id", style="dim", no_wrap=True)
        for keys, description, binding_id in self.rows:
            table.add_row(Text(keys), Text(description), Text(binding_id))
        with Vertical(id="help-box"):
            yield Label(Text("Keys  (Esc closes; ctrl+p opens the command palette)", style="bold"))
            with VerticalScroll(id="help-scroll"):  # scrolls when the terminal is short
                yield Static(table, id="help-table")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
