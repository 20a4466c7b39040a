"""Main screen: the plan's checklist on the left, the selected step's live output on the right.

Nothing here runs a command: the engine's Runner does, in an async worker, and its events
arrive through `runner.subscribe`. Events only fill buffers; a 1/20 s timer merges them and
redraws, so a flood of output lines costs one redraw per tick, never one per event.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList, Static
from textual.worker import Worker, WorkerState

from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Plan, StepState
from screens.help import HelpScreen
from screens.widgets import MAX_OUTPUT_LINES, OutputBuffers, OutputPane, StepChecklist

FLUSH_INTERVAL = 1 / 20
SKIP_REASON = "skipped by user"

# (binding id, action, description): the one list behind the bindings, help and palette.
COMMANDS: list[tuple[str, str, str]] = [
    ("ambient.run", "run_plan", "Run the plan (all pending steps)"),
    ("ambient.run_step", "run_step", "Run the selected step"),
    ("ambient.skip", "skip_step", "Skip the selected step"),
    ("ambient.retry", "retry_step", "Retry the selected step"),
    ("ambient.cancel", "cancel", "Cancel the running step"),
    ("ambient.dry_run", "toggle_dry_run", "Toggle dry-run mode"),
    ("ambient.netpol", "netpol", "Open the NetworkPolicy editor"),
    ("ambient.help", "help", "Show the keys"),
    ("ambient.quit", "quit", "Quit"),
]


class MainScreen(Screen):
    BINDINGS = [
        Binding("r", "run_plan", "Run", id="ambient.run"),
        # priority: the checklist (an OptionList) would otherwise take enter for itself.
        Binding("enter", "run_step", "Step", id="ambient.run_step", priority=True),
        Binding("s", "skip_step", "Skip", id="ambient.skip"),
        Binding("t", "retry_step", "Retry", id="ambient.retry"),
        Binding("c", "cancel", "Cancel", id="ambient.cancel"),
        Binding("d", "toggle_dry_run", "Dry-run", id="ambient.dry_run"),
        Binding("n", "netpol", "Netpol", id="ambient.netpol", show=False),
        Binding("question_mark", "help", "Help", id="ambient.help", key_display="?"),
        Binding("q", "quit", "Quit", id="ambient.quit"),
    ]

    def __init__(self, plan: Plan, runner: Any, *, namespace: str = "default") -> None:
        super().__init__()
        self.plan = plan
        self.runner = runner
        self.namespace = namespace
        self.buffers = OutputBuffers()
        self._pending: deque[str] = deque(maxlen=MAX_OUTPUT_LINES)
        self._reset_pane = False
        self._dirty: set[str] = set()
        self._notices: list[tuple[str, str]] = []
        self._worker: Worker | None = None
        self._shown_step: str | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⎈")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Label(Text(self.plan.title, style="bold", no_wrap=True,
                                 overflow="ellipsis"), id="plan-title")
                yield StepChecklist(self.plan, id="checklist")
            with Vertical(id="right"):
                yield Static(id="step-info")
                yield OutputPane(id="output")
        yield Footer()

    def on_mount(self) -> None:
        self.runner.subscribe(self._on_runner_event)
        self.set_interval(FLUSH_INTERVAL, self._flush)
        self.query_one(StepChecklist).focus()
        self._show_step(self.query_one(StepChecklist).selected_step_id)

    # ------------------------------------------------------------------ events

    def _on_runner_event(self, event: Event) -> None:
        """Called by the runner on the event-loop thread: only buffer, never draw."""
        step_id = event.step_id
        if event.kind is EventKind.OUTPUT:
            self.buffers.append(step_id, event.line)
            if step_id == self._shown_step:
                self._pending.append(event.line)
            return
        if event.kind is EventKind.STARTED:
            self.buffers.clear(step_id)
            if step_id == self._shown_step:
                self._pending.clear()
                self._reset_pane = True
        elif event.kind in (EventKind.FINISHED, EventKind.FAILED):
            note = f"── {event.state or event.kind.value}"
            if event.exit_code is not None:
                note += f" (exit {event.exit_code})"
            if event.message:
                note += f": {event.message}"
            self.buffers.append(step_id, note)
            if step_id == self._shown_step:
                self._pending.append(note)
            if event.kind is EventKind.FAILED:
                self._notices.append((step_id, event.message or "failed"))
        if event.state:
            try:
                state = StepState(event.state)
            except ValueError:
                state = None
            if state is not None:
                try:
                    step = self.plan.step(step_id)
                except KeyError:
                    step = None
                if step is not None and step.state is not state:
                    step.state = state
        self._dirty.add(step_id)

    def _flush(self) -> None:
        """Timer: merge what arrived since the last tick into one redraw."""
        pane = self.query_one(OutputPane)
        if self._reset_pane:
            self._reset_pane = False
            pane.clear()
            pane.scroll_to(0, 0, animate=False, immediate=True)
            pane.refresh()
        if self._pending:
            lines = list(self._pending)
            self._pending.clear()
            pane.write_lines(lines)
        if self._dirty:
            checklist = self.query_one(StepChecklist)
            dirty, self._dirty = self._dirty, set()
            for step_id in dirty:
                try:
                    checklist.refresh_step(self.plan.step(step_id))
                except KeyError:
                    continue
            if self._shown_step in dirty:
                self._update_info()
        while self._notices:
            step_id, message = self._notices.pop(0)
            title = self._title_of(step_id)
            self.notify(f"{title}: {message}", title="Step failed", severity="error",
                        markup=False)

    @on(OptionList.OptionHighlighted, "#checklist")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_step(self.query_one(StepChecklist).selected_step_id)

    def _show_step(self, step_id: str | None) -> None:
        if step_id == self._shown_step:
            return
        self._shown_step = step_id
        self._pending.clear()
        self._reset_pane = False
        pane = self.query_one(OutputPane)
        pane.clear()
        pane.scroll_to(0, 0, animate=False, immediate=True)
        if step_id is not None:
            pane.write_lines(self.buffers.lines(step_id), scroll_end=False)
        pane.refresh()  # Log.clear() alone does not repaint
        pane.scroll_end(animate=False)  # after the next layout, with the pane's real height
        self._update_info()

    def _update_info(self) -> None:
        info = self.query_one("#step-info", Static)
        if self._shown_step is None:
            info.update("")
            return
        step = self.plan.step(self._shown_step)
        text = Text(no_wrap=False)
        text.append(f"{step.title}", style="bold")
        text.append(f"  [{step.state.value}]", style="dim")
        if step.skip_reason:
            text.append(f" {step.skip_reason}", style="dim")
        text.append("\n$ ", style="dim")
        text.append(step.command)
        info.update(text)

    def _title_of(self, step_id: str) -> str:
        try:
            return self.plan.step(step_id).title
        except KeyError:
            return step_id

    # ------------------------------------------------------------------ actions

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.state in (
            WorkerState.PENDING, WorkerState.RUNNING)

    def _start(self, coro, name: str) -> None:
        if self.running:
            coro.close()
            self.notify("A run is in progress: cancel it first (c).", severity="warning")
            return
        self._worker = self.run_worker(coro, name=name, group="runner", exclusive=True,
                                       exit_on_error=False)

    def _selected(self) -> str | None:
        step_id = self.query_one(StepChecklist).selected_step_id
        if step_id is None:
            self.notify("Select a step first.", severity="warning")
        return step_id

    def action_run_plan(self) -> None:
        self._start(self.runner.run(), "run plan")

    def action_run_step(self) -> None:
        step_id = self._selected()
        if step_id is not None:
            self._start(self.runner.run_step(step_id), f"run {step_id}")

    def action_retry_step(self) -> None:
        step_id = self._selected()
        if step_id is not None:
            self._start(self.runner.retry(step_id), f"retry {step_id}")

    def action_skip_step(self) -> None:
        step_id = self._selected()
        if step_id is None:
            return
        try:
            self.runner.skip(step_id, SKIP_REASON)
        except Exception as exc:  # the runner refuses (e.g. the step is running)
            self.notify(f"Cannot skip: {exc}", severity="error", markup=False)
            return
        self._dirty.add(step_id)

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("Nothing is running.", severity="information")
            return
        self.runner.cancel()
        self.notify("Cancelling…", severity="warning")

    def action_toggle_dry_run(self) -> None:
        self.runner.dry_run = not self.runner.dry_run
        self.app.refresh_title()  # type: ignore[attr-defined]
        self.notify("Dry-run ON: commands are shown, not run." if self.runner.dry_run
                    else "Dry-run OFF: commands will run.")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.help_rows()))

    def action_netpol(self) -> None:
        from screens.netpol import NetpolScreen

        self.app.push_screen(NetpolScreen(None, namespace=self.namespace))

    def action_quit(self) -> None:
        if self.running:
            self.runner.cancel()
        self.app.exit()

    def help_rows(self) -> list[tuple[str, str, str]]:
        keymap: dict[str, str] = getattr(self.app, "_keymap", {}) or {}
        by_id = {b.id: b for b in self.BINDINGS if isinstance(b, Binding)}
        rows = []
        for binding_id, _action, description in COMMANDS:
            binding = by_id[binding_id]
            keys = keymap.get(binding_id, binding.key)
            shown = ", ".join(
                binding.key_display if (binding.key_display and k == binding.key)
                else self.app.get_key_display(Binding(k, ""))
                for k in keys.split(","))
            rows.append((shown, description, binding_id))
        return rows

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place where a failed run becomes visible."""
        if event.worker.group != "runner":
            return
        if event.state is WorkerState.ERROR:
            self.notify(f"{event.worker.name}: {event.worker.error}", title="Runner error",
                        severity="error", markup=False)
        # A finished run may leave states the events did not carry (e.g. skipped).
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self._dirty.update(s.id for s in self.plan.steps)
