"""Widgets of the main screen: the step checklist and the bounded output pane."""

from __future__ import annotations

from collections import deque
from typing import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import Log, OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from ambient_tui.engine.events import Event
from ambient_tui.engine.plan import Plan, Step, StepState
from ambient_tui.engine.redact import redact

# glyph, style per state; colour is never the only signal (each state has its own glyph).
STATE_LOOK: dict[StepState, tuple[str, str]] = {
    StepState.PENDING: ("·", "dim"),
    StepState.RUNNING: ("▶", "bold yellow"),
    StepState.SUCCEEDED: ("✔", "green"),
    StepState.WARNED: ("!", "yellow"),  # named ANSI colours only: legible in 16/256 colours
    StepState.FAILED: ("✘", "bold red"),
    StepState.SKIPPED: ("»", "cyan"),
    StepState.CANCELLED: ("■", "magenta"),
}

PHASE_PREFIX = "phase:"
MAX_OUTPUT_LINES = 5000


def step_prompt(step: Step, progress: str = "") -> Text:
    """One line per step; a running step may add a second line (readiness, elapsed time)."""
    glyph, style = STATE_LOOK.get(step.state, ("?", ""))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {glyph} ", style=style)
    text.append(step.title)  # plain text: titles are never parsed as markup
    if step.state not in (StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED):
        text.append(f" {step.state.value}", style=style)
    if progress:
        text.append(f"\n   {progress}", style="yellow")
    return text


class CursorOptionList(OptionList):
    """An OptionList whose highlighted option is drawn in the cursor's colours only.

    A prompt's own colours would otherwise sit on the cursor background: bold red on the blue
    cursor is 1.1:1 in truecolor and 1.0:1 in 256 colours (tests/ui/test_colour_legibility.py).
    Nothing is lost: every state also has its own glyph and word."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.highlighted is None or not any(
                seg.style is not None and seg.style.meta.get("option") == self.highlighted for seg in strip):
            return strip
        # the cursor's colours over the spans' own (as PodGrid does); dim would fade them
        cursor = self.get_visual_style("option-list--option", "option-list--option-highlighted")
        post = cursor.rich_style + Style(dim=False)
        return Strip(Segment.apply_style(strip, post_style=post), strip.cell_length)


class StepChecklist(CursorOptionList):
    """Phases (disabled headers) and their steps; the option id of a step is its step id."""

    def __init__(self, plan: Plan, **kwargs) -> None:
        super().__init__(*self._plan_options(plan), **kwargs)
        self.plan = plan

    def rebuild(self, select: str | None = None) -> None:
        """Re-read the plan (a phase was added); keep or move the selection."""
        keep = select or self.selected_step_id
        self.clear_options()
        self.add_options(list(self._plan_options(self.plan)))
        if keep is not None:
            try:
                self.highlighted = self.get_option_index(keep)
                return
            except OptionDoesNotExist:  # the step is gone
                pass
        self.on_mount()

    @staticmethod
    def _plan_options(plan: Plan) -> Iterable[Option]:
        for phase in plan.phases:
            yield Option(Text(phase.title, style="bold", no_wrap=True, overflow="ellipsis"),
                         id=PHASE_PREFIX + phase.id, disabled=True)
            for step in phase.steps:
                yield Option(step_prompt(step), id=step.id)

    def on_mount(self) -> None:
        # Start on the first step, not on a phase header.
        for index, option in enumerate(self.options):
            if not option.disabled:
                self.highlighted = index
                break

    @property
    def selected_step_id(self) -> str | None:
        option = self.highlighted_option
        if option is None or option.disabled or option.id is None:
            return None
        return option.id

    def refresh_step(self, step: Step, progress: str = "") -> None:
        self.replace_option_prompt(step.id, step_prompt(step, progress))


class OutputPane(Log):
    """Bounded plain-text log: lines are never parsed as markup, so `[` from helm is safe."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_OUTPUT_LINES, highlight=False, **kwargs)

    def _update_maximum_width(self, updates: int, size: int) -> None:
        # Log measures new lines' width in a thread; when the width changes, Textual 8.2.8
        # can leave rows painted while the log was empty. Repaint the whole pane then, and
        # only then: an unconditional repaint here was a second full frame per flush tick.
        before = self.virtual_size
        super()._update_maximum_width(updates, size)
        if self.virtual_size != before:
            self.refresh()


class OutputBuffers:
    """Per-step bounded tails, so switching steps shows that step's recent output."""

    def __init__(self, max_lines: int = MAX_OUTPUT_LINES) -> None:
        self.max_lines = max_lines
        self._tails: dict[str, deque[str]] = {}

    def append(self, step_id: str, line: str) -> None:
        tail = self._tails.get(step_id)
        if tail is None:
            tail = self._tails[step_id] = deque(maxlen=self.max_lines)
        tail.append(line)

    def clear(self, step_id: str) -> None:
        self._tails.pop(step_id, None)

    def lines(self, step_id: str) -> list[str]:
        return list(self._tails.get(step_id, ()))


def step_end_note(event: Event) -> str:
    """The line that closes a step's output, e.g. "── failed (exit 2): timed out"."""
    note = f"── {event.state or event.kind.value}"
    if event.exit_code is not None:
        note += f" (exit {event.exit_code})"
    if event.message:
        note += f": {event.message}"
    return note


class BufferedOutput:
    """For screens that show runner output: every line goes to its step's bounded buffer, and
    is queued for the output pane when its step is the one shown; a timer draws the queue."""

    buffers: OutputBuffers
    _shown_step: str | None
    _pending: deque[str]

    def _buffer(self, step_id: str, line: str) -> None:
        line = redact(line)  # what a step prints may hold a token or key: never on screen
        self.buffers.append(step_id, line)
        if step_id == self._shown_step:
            self._pending.append(line)
