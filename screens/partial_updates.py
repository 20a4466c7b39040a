"""Send only what changed on screen: two fixes to how Textual writes a frame to the terminal.

Textual (8.2.8, pinned in pyproject.toml) keeps the dirty regions of a frame as spans
(y, x1, x2), but:

1. `ChopsUpdate.render_segments` writes each span from the start of the widget it falls in,
   not from x1 ("TODO: crop to x extents" in textual/_compositor.py): a changed AGE cell 60
   columns into the pod table re-sent the whole row up to it;
2. every segment is written as `SGR text reset`, so each cell of a row pays a full colour
   sequence (~25 bytes in 256 colours) even when it has the same style as the one before.

`install()` replaces the two render_segments methods (partial and full frames) with ones
that crop each piece to its span and write an SGR sequence only when the style changes
(cursor moves keep the terminal's current attributes; one reset ends the frame). Over a thin
SSH link that is most of what a live pane sends. Which regions are dirty and how strips are
drawn stay Textual's. tests/ui/test_partial_frames.py checks the bytes against a terminal
emulator's view, so a Textual upgrade that changes these classes fails there, not silently.
"""

from __future__ import annotations

from rich.color import ColorSystem
from rich.console import Console
from rich.control import Control
from textual._compositor import ChopsUpdate, LayoutUpdate
from textual.strip import Strip

RESET = "\x1b[0m"
_installed = False
# Textual's own methods (tests compare against them).
TEXTUAL_CHOPS_RENDER = ChopsUpdate.render_segments
TEXTUAL_LAYOUT_RENDER = LayoutUpdate.render_segments


class _Writer:
    """Strips to terminal text, remembering the SGR in force so repeats are not re-sent."""

    def __init__(self, console: Console) -> None:
        self.color_system = console._color_system or ColorSystem.TRUECOLOR
        self.out: list[str] = []
        self.sgr = ""  # the attributes in force ("" = default)

    def move(self, x: int, y: int) -> None:
        self.out.append(Control.move_to(x, y).segment.text)

    def strip(self, strip: Strip) -> None:
        append, render_ansi = self.out.append, Strip.render_ansi
        for text, style, control in strip._segments:
            if control:
                append(text)
                continue
            if style is None:
                ansi = ""
            elif style._link:  # hyperlinks: Textual's own form, self-contained
                if self.sgr:
                    append(RESET)
                    self.sgr = ""
                append(Strip.render_style(style, text, self.color_system))
                continue
            else:
                ansi = style._ansi if style._ansi is not None else render_ansi(style, self.color_system)
            if ansi != self.sgr:
                if self.sgr:
                    append(RESET)
                if ansi:
                    append(f"\x1b[{ansi}m")
                self.sgr = ansi
            append(text)

    def text(self) -> str:
        if self.sgr:
            self.out.append(RESET)
            self.sgr = ""
        return "".join(self.out)


def chops_render_segments(self: ChopsUpdate, console: Console) -> str:
    """ChopsUpdate.render_segments, writing only [x1, x2) of each span."""
    w = _Writer(console)
    chops, chop_ends = self.chops, self.chop_ends
    for y, x1, x2 in self.spans:
        for end, (x, strip) in zip(chop_ends[y], chops[y].items()):
            if strip is None or x >= x2 or end <= x1:
                continue
            start = max(x, x1)
            if start != x or end > x2:
                strip = strip.crop(start - x, min(end, x2) - x)
            w.move(start, y)
            w.strip(strip)
    # (Textual also wrote a newline after each span: every piece starts with a cursor move.)
    return w.text()


def layout_render_segments(self: LayoutUpdate, console: Console) -> str:
    """LayoutUpdate.render_segments (a full frame), with SGR sequences only on changes."""
    w = _Writer(console)
    x = self.region.x
    for y, line in enumerate(self.strips, self.region.y):
        w.move(x, y)
        for strip in line:
            w.strip(strip)
    return w.text()


def install() -> None:
    global _installed
    if not _installed:
        ChopsUpdate.render_segments = chops_render_segments  # type: ignore[method-assign]
        LayoutUpdate.render_segments = layout_render_segments  # type: ignore[method-assign]
        _installed = True
