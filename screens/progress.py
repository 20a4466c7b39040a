"""The plan's progress bar (one line, always visible) and the readiness text of a running step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widget import Widget

from ambient_tui.engine.plan import Plan, StepState

if TYPE_CHECKING:  # the watcher module loads only when a step waits for a workload
    from ambient_tui.watch.workloads import WorkloadCounts


def format_elapsed(seconds: float, step: int = 1) -> str:
    """`0:42`, `1:02:03`; with `step` (--slow-link: 10) the counter moves in steps of that many
    seconds, so a running step's row is redrawn every 10 s, not every second."""
    seconds = max(0, int(seconds))
    seconds -= seconds % max(1, step)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def readiness_text(names: tuple[str, ...], rows: dict[str, "WorkloadCounts"]) -> str:
    """`istiod 0/1 upd 1/1` for one workload; `istiod 1/1 · cni 2/3` for several."""
    parts = []
    for name in names:
        c = rows.get(name)
        if c is None:
            parts.append(f"{name} –")  # not created yet
        elif len(names) == 1:
            parts.append(f"ready {c.ready}/{c.desired} upd {c.updated}/{c.desired}")
        else:
            parts.append(c.short())
    return " · ".join(parts)


def plan_counts(plan: Plan) -> tuple[int, int, int, int]:
    """(finished+skipped, failed/cancelled, running, total) over the plan's steps."""
    steps = plan.steps
    done = sum(1 for s in steps if s.state.done)
    bad = sum(1 for s in steps if s.state in (StepState.FAILED, StepState.CANCELLED))
    running = sum(1 for s in steps if s.state is StepState.RUNNING)
    return done, bad, running, len(steps)


class PlanProgress(Widget):
    """`Plan ━━━━━━━━──────  3/9 · 1 failed · helm: istiod 0:42`: redrawn only on change."""

    DEFAULT_CSS = "PlanProgress { height: 1; padding: 0 1; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.done = self.bad = self.running = self.total = 0
        self.note = ""

    def set_progress(self, done: int, bad: int, running: int, total: int, note: str = "") -> None:
        state = (done, bad, running, total, note)
        if state != (self.done, self.bad, self.running, self.total, self.note):
            self.done, self.bad, self.running, self.total, self.note = state
            self.refresh()

    @property
    def label(self) -> str:
        text = f" {self.done}/{self.total} steps"
        if self.bad:
            text += f" · {self.bad} failed"
        if self.note:
            text += f" · {self.note}"
        return text

    def render(self) -> Text:
        label = self.label
        width = max(10, min(60, self.size.width - 7 - len(label)))
        filled = round(width * self.done / self.total) if self.total else 0
        # Named ANSI colours and distinct glyphs: legible without truecolor or colour at all.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Plan ", style="bold")
        text.append("━" * filled, style="bold red" if self.bad else "green")
        text.append("╌" * (width - filled), style="dim")
        text.append(label)
        return text
