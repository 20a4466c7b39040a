"""The link profile: how often the live panes redraw, and whether anything moves for show.

`--slow-link` (ambient-tui --slow-link, ambient-tui pods --slow-link) is for a thin or distant
SSH link: merges of watched lists and the output pane's redraws come less often, ages tick
every 30 s, and decorative motion is off (Textual's animations, the blinking cursor of the
filter box, elapsed-time counters that tick every second). Nothing is hidden: every change
still reaches the screen, later and in fewer frames.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkProfile:
    slow: bool
    merge_pace: float      # seconds between merges of a churning list (pods, Helm)
    age_refresh: float     # seconds between AGE/UPDATED repaints
    output_flush: float    # seconds between redraws of the output pane and step rows
    elapsed_step: int      # elapsed-time counters move in steps of this many seconds
    animation_level: str   # Textual's App.animation_level
    cursor_blink: bool


NORMAL = LinkProfile(False, merge_pace=2.0, age_refresh=10.0, output_flush=1 / 10, elapsed_step=1,
                     animation_level="full", cursor_blink=True)
SLOW = LinkProfile(True, merge_pace=4.0, age_refresh=30.0, output_flush=0.5, elapsed_step=10,
                   animation_level="none", cursor_blink=False)


def profile(slow_link: bool) -> LinkProfile:
    return SLOW if slow_link else NORMAL


def of(node) -> LinkProfile:
    """The profile of the app a widget or screen belongs to (NORMAL outside such an app)."""
    try:
        return getattr(node.app, "link", NORMAL)
    except Exception:  # no active app (a widget built outside one)
        return NORMAL
