"""Main screen: the plan's checklist on the left; on the right, switchable panes (the selected
step's output, preflight, pods, Helm releases); the plan's progress bar under both.

Nothing here runs a command: the engine's Runner does, in an async worker, and its events
arrive through `runner.subscribe`. Events only fill buffers; a 1/20 s timer merges them and
redraws, so a flood of output lines costs one redraw per tick, never one per event.
Cluster watches start only when something needs them (a pane first shown, a step that waits
for istiod/istio-cni/ztunnel), so the screen without a cluster never connects.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList, Static
from textual.worker import Worker, WorkerState

from ambient_tui.checks.model import FAIL
from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Phase, Plan, StepState
from screens import link
from screens.help import HelpScreen
from screens.panes import Panes, stop_watchers
from screens.preflight import FIX_PHASE_ID, PreflightPane
from screens.progress import PlanProgress, format_elapsed, plan_counts, readiness_text
from screens.widgets import (MAX_OUTPUT_LINES, BufferedOutput, OutputBuffers, OutputPane, StepChecklist,
                             step_end_note)


def workloads_for_step(step) -> tuple[str, ...]:
    # Imported on first use: the watch modules stay out of start-up.
    from ambient_tui.watch.workloads import workloads_for_step as lookup

    return lookup(step)
SKIP_REASON = "skipped by user"

# (binding id, action, description): the one list behind the bindings, help and palette.
COMMANDS: list[tuple[str, str, str]] = [
    ("ambient.run", "run_plan", "Run the plan (all pending steps)"),
    ("ambient.run_step", "run_step", "Run the selected step"),
    ("ambient.skip", "skip_step", "Skip the selected step"),
    ("ambient.retry", "retry_step", "Retry the selected step"),
    ("ambient.cancel", "cancel", "Cancel the running step"),
    ("ambient.dry_run", "toggle_dry_run", "Toggle dry-run mode"),
    ("ambient.pane_output", "pane_output", "Show the step output pane"),
    ("ambient.pane_preflight", "pane_preflight", "Show the preflight pane"),
    ("ambient.pane_pods", "pane_pods", "Show the pods pane"),
    ("ambient.pane_helm", "pane_helm", "Show the Helm releases pane"),
    ("ambient.pane_mesh", "pane_mesh", "Show the mesh pane (enrolment, waypoints, ztunnel)"),
    ("ambient.zoom", "zoom", "Zoom: hide the checklist / show it again"),
    ("ambient.add_fix", "add_fix", "Add the selected preflight fix to the plan"),
    ("ambient.preflight", "preflight", "Run the preflight checks again"),
    ("ambient.uninstall", "uninstall", "Uninstall Istio (guided, confirmed)"),
    ("ambient.netpol", "netpol", "Open the NetworkPolicy editor"),
    ("ambient.help", "help", "Show the keys"),
    ("ambient.quit", "quit", "Quit"),
]
# What --read-only takes away: every key that runs, skips or adds steps, or uninstalls.
MUTATING = {"ambient.run", "ambient.run_step", "ambient.skip", "ambient.retry", "ambient.cancel",
            "ambient.dry_run", "ambient.add_fix", "ambient.uninstall"}
MUTATING_ACTIONS = {action for binding_id, action, _d in COMMANDS if binding_id in MUTATING}

class MainScreen(BufferedOutput, Screen):
    BINDINGS = [
        Binding("r", "run_plan", "Run", id="ambient.run"),
        # priority: the checklist (an OptionList) would otherwise take enter for itself;
        # the action skips itself unless the checklist has focus (enter in a table is its own).
        Binding("enter", "run_step", "Step", id="ambient.run_step", priority=True),
        Binding("s", "skip_step", "Skip", id="ambient.skip"),
        Binding("t", "retry_step", "Retry", id="ambient.retry"),
        Binding("c", "cancel", "Cancel", id="ambient.cancel"),
        Binding("d", "toggle_dry_run", "Dry-run", id="ambient.dry_run"),
        Binding("1", "pane_output", "Output", id="ambient.pane_output", show=False),
        Binding("2", "pane_preflight", "Preflight", id="ambient.pane_preflight", show=False),
        Binding("3", "pane_pods", "Pods", id="ambient.pane_pods", show=False),
        Binding("4", "pane_helm", "Helm", id="ambient.pane_helm", show=False),
        Binding("5", "pane_mesh", "Mesh", id="ambient.pane_mesh", show=False),
        Binding("z", "zoom", "Zoom", id="ambient.zoom", show=False),
        Binding("f", "add_fix", "Add fix", id="ambient.add_fix", show=False),
        Binding("p", "preflight", "Preflight", id="ambient.preflight", show=False),
        Binding("u", "uninstall", "Uninstall", id="ambient.uninstall", show=False),
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
        self._rescope_pods = False
        self.zoomed = False
        self._started_at: dict[str, float] = {}
        self._progress_keys: dict[str, str] = {}  # running step -> its row's second line
        self._causes: dict[str, Any] = {}  # step -> the last Cause its watcher reported
        self.workloads: Any = None  # a WorkloadWatcher (or a fed provider), started on demand
        self._wl_snap: tuple[int, Any] | None = None
        self._owned: list[Any] = []  # watchers this screen started and must stop
        self._check_ctx: Any = None
        self.preflight_done = False
        self._failures_acknowledged = False
        self.outcome: Any = None  # the install session's decisions and plan (plans/install_session)
        self._fix_wanted = False  # `f`: the session adds the preflight fix as the first phase
        self._resumed = False
        self._damage_said = False  # the journal's damaged lines are reported once
        self._consented = False  # the person agreed to the changes that ask first (CRD upgrade)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⎈")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Label(Text(self.plan.title, style="bold", no_wrap=True,
                                 overflow="ellipsis"), id="plan-title")
                yield StepChecklist(self.plan, id="checklist")
            yield Panes(id="right")
        yield PlanProgress(id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self.runner.subscribe(self._on_runner_event)
        # 10 Hz (each redraw of a streaming output pane repaints all of it), 2 Hz with --slow-link
        self.set_interval(link.of(self).output_flush, self._flush)
        self.query_one(StepChecklist).focus()
        self._show_step(self.query_one(StepChecklist).selected_step_id)
        self._draw_tabs()
        self._update_progress()
        self._start_preflight()

    def on_unmount(self) -> None:
        stop_watchers(self._owned)

    def _now(self) -> float:
        return getattr(self.app, "now", time.time)()

    # ------------------------------------------------------------------ events

    def _on_runner_event(self, event: Event) -> None:
        """Called by the runner on the event-loop thread: only buffer, never draw."""
        step_id = event.step_id
        if event.kind is EventKind.OUTPUT:
            self._buffer(step_id, event.line)
            return
        try:
            step = self.plan.step(step_id)
        except KeyError:
            step = None
        if event.kind is EventKind.CAUSE and event.cause is not None:  # watch/diagnose.py
            self._causes[step_id] = event.cause
            end = "ending the wait" if event.cause.permanent else "still waiting"
            self._buffer(step_id, f"⚠ cause: {event.message} ({end})")
            for line in event.cause.detail.splitlines():
                self._buffer(step_id, f"  {line}")
            for line in (f"next: {event.line}".splitlines() if event.line else []):
                self._buffer(step_id, f"  {line}")
            self._dirty.add(step_id)
            return
        if event.kind is EventKind.STARTED:
            self._started_at[step_id] = self._now()
            self._causes.pop(step_id, None)
            if workloads_for_step(step):
                self._ensure_workloads()
            self.buffers.clear(step_id)
            if step_id == self._shown_step:
                self._pending.clear()
                self._reset_pane = True
        elif event.kind in (EventKind.FINISHED, EventKind.FAILED):
            self._buffer(step_id, step_end_note(event))
            if event.kind is EventKind.FAILED:
                self._notices.append((step_id, event.message or "failed"))
            elif step is not None and step.kind == "enroll":
                self._rescope_pods = True  # a newly enrolled namespace joins the pods pane
        if event.state:
            try:
                state = StepState(event.state)
            except ValueError:
                state = None
            if state is not None:
                if step is not None and step.state is not state:
                    step.state = state
        self._dirty.add(step_id)

    def _flush(self) -> None:
        """Timer: merge what arrived since the last tick into one redraw."""
        if self._rescope_pods:
            self._rescope_pods = False
            panes = self.query_one(Panes)
            if not panes.all_namespaces:
                panes.rescope_pods()
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
                    step = self.plan.step(step_id)
                except KeyError:
                    continue
                text = self._progress_text(step)
                self._progress_keys[step_id] = text
                checklist.refresh_step(step, text)
            if self._shown_step in dirty:
                self._update_info()
        self._update_running_rows()
        self._update_progress()
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
        if step.note:  # e.g. an upgrade's values diff, a CRD owner: seen before anything runs
            text.append(f"\n{step.note}", style="italic")
        info.update(text)

    def _title_of(self, step_id: str) -> str:
        try:
            return self.plan.step(step_id).title
        except KeyError:
            return step_id

    # ------------------------------------------------------------------ readiness, progress

    def _elapsed(self, step_id: str) -> str:
        started = self._started_at.get(step_id)
        return "" if started is None else format_elapsed(self._now() - started, link.of(self).elapsed_step)

    def _progress_text(self, step) -> str:
        """A running step's second line: its workloads' counts (if it waits for any), elapsed."""
        cause = self._causes.get(step.id)
        if step.state is StepState.FAILED and cause is not None:
            return f"⚠ {cause.summary}"
        if step.state is not StepState.RUNNING:
            return ""
        names = workloads_for_step(step)
        elapsed = self._elapsed(step.id)
        if cause is not None:
            elapsed = f"{elapsed}  ⚠ {cause.summary}" if elapsed else f"⚠ {cause.summary}"
        if not names or self.workloads is None:
            return elapsed
        snap = self._workload_snapshot()
        counts = readiness_text(names, snap.rows)
        if snap.state == "reconnecting":
            counts = "reconnecting… " + counts
        return f"{counts}  {elapsed}" if elapsed else counts

    def _workload_snapshot(self):
        """The watcher's snapshot, taken again only when its version moved."""
        version = self.workloads.version
        if self._wl_snap is None or self._wl_snap[0] != version:
            self._wl_snap = (version, self.workloads.snapshot())
        return self._wl_snap[1]

    def _update_running_rows(self) -> None:
        """Redraw a running step's row only when its counts or elapsed second changed."""
        checklist = self.query_one(StepChecklist)
        for step in self.plan.steps:
            if step.state is not StepState.RUNNING and step.id not in self._progress_keys:
                continue
            text = self._progress_text(step)
            if self._progress_keys.get(step.id) != text:
                self._progress_keys[step.id] = text
                checklist.refresh_step(step, text)
            if step.state is not StepState.RUNNING:
                self._progress_keys.pop(step.id, None)

    def _update_progress(self) -> None:
        done, bad, running, total = plan_counts(self.plan)
        note = ""
        runs = [s for s in self.plan.steps if s.state is StepState.RUNNING]
        if runs:
            note = runs[0].title
            elapsed = self._elapsed(runs[0].id)
            if elapsed:
                note += f" {elapsed}"
            if len(runs) > 1:
                note += f" (+{len(runs) - 1})"
        self.query_one(PlanProgress).set_progress(done, bad, running, total, note)

    def _ensure_workloads(self) -> None:
        if self.workloads is not None:
            return
        provider = getattr(self.app, "workloads_provider", None)
        if provider is None:
            from ambient_tui.watch.workloads import WorkloadWatcher

            provider = WorkloadWatcher(kubeconfig=getattr(self.app, "kubeconfig", None),
                                       context=getattr(self.app, "kube_context", None)).start()
            self._owned.append(provider)
        self.workloads = provider

    # ------------------------------------------------------------------ panes

    @property
    def pane(self) -> str:
        return self.query_one(Panes).current

    def _draw_tabs(self) -> None:
        keys = {binding_id: shown for shown, _d, binding_id in self.help_rows()}
        self.query_one(Panes).draw_tabs(keys, self.zoomed)

    def show_pane(self, name: str) -> None:
        self.query_one(Panes).show(name)
        self._draw_tabs()
        self._focus_pane()

    def _focus_pane(self) -> None:
        """Focus the shown pane's main widget; the checklist when the output pane is shown."""
        panes = self.query_one(Panes)
        if panes.current == "output" and not self.zoomed:
            target = self.query_one(StepChecklist)
        else:
            target = panes.main_widget()
        if target is not None:
            target.focus()

    # ------------------------------------------------------------------ preflight

    def _start_preflight(self) -> None:
        """Read-only checks at start, not on first show: their results (and any fix) must be
        there before `r`, even for a person who never opens the preflight pane."""
        pane = self.query_one(PreflightPane)
        factory = getattr(self.app, "check_context_factory", None)
        if factory is None:
            pane.set_message("not run: no cluster given (headless: ambient-tui preflight)")
            return
        self.preflight_done = False
        self._failures_acknowledged = False
        self.run_worker(self._run_preflight(factory), name="preflight", group="preflight",
                        exit_on_error=False)

    async def _run_preflight(self, factory) -> None:
        from ambient_tui.checks.runner import run_checks_async

        specs = getattr(self.app, "preflight_checks", None)
        if specs is None:
            from ambient_tui.checks.core import ALL as specs
        pane = self.query_one(PreflightPane)
        pane.start((s[0], s[1]) for s in specs)
        try:
            self._check_ctx = await asyncio.to_thread(factory)
            await run_checks_async(self._check_ctx, list(specs), on_result=pane.add_result)
        except Exception as exc:  # e.g. an unknown Istio version: shown, never a crash
            pane.set_message(f"preflight could not run: {exc}", clear=True)
        finally:
            self.preflight_done = True
        await self._replan(list(pane.results.values()))

    async def _replan(self, results: list) -> None:
        """The plan for this cluster, from the install session the headless `install` uses:
        the decisions (fresh, upgrade, repair, CRDs, fixes, refusals) and the plan they make.
        Nothing runs until `r`, as with every other step."""
        from ambient_tui.engine.journal import Journal, JournalRead
        from ambient_tui.plans import resume

        if self.running:
            return
        journal = getattr(self.runner, "journal", None)
        previous = await asyncio.to_thread(Journal.read, journal.path) if journal is not None else JournalRead()
        if not self._damage_said:
            self._damage_said = True
            damage = previous.damage_report()
            if damage:  # said once; the damaged lines are skipped, the rest of the journal counts
                self.notify("\n".join(damage), title="Journal", severity="warning", markup=False, timeout=20)
        session = getattr(self.app, "install_session", None)
        if session is None or not results:  # a plan given as it is (tests, a runbook)
            return
        previous.records = resume.since_uninstall(previous.records)
        if session.kube_context is None:  # pin the context preflight checked, as `install` does
            from ambient_tui.plans.install_session import kube_context_of

            session.kube_context = kube_context_of(results)
        if self._check_ctx is not None and session.kube_factory is None:
            session.kube_factory = self._check_ctx.client  # the checks' client: no new connection
        try:
            outcome = await asyncio.to_thread(session.decide, results, journal=previous, fix=self._fix_wanted,
                                              upgrade_gateway_api=True)
        except Exception as exc:  # e.g. aws-node unreadable for the fix: shown, never a crash
            self.app.show_error(exc, title="Cannot plan the install")
            return
        self.outcome = outcome
        new = outcome.plan
        self.plan.title, self.plan.meta, self.plan.notes = new.title, new.meta, new.notes
        # Steps that ran (or were resumed, skipped) keep their state in the new plan.
        kept = {st.id: (st.state, st.skip_reason) for st in self.plan.steps if st.state is not StepState.PENDING}
        for st in new.steps:
            if st.id in kept:
                st.state, st.skip_reason = kept[st.id]
        self.plan.phases[:] = new.phases  # the runner holds this Plan object
        self.query_one("#plan-title", Label).update(Text(self.plan.title, style="bold", no_wrap=True,
                                                         overflow="ellipsis"))
        notes = []
        if outcome.interrupted and not self._resumed:
            self._resumed = True
            run = outcome.interrupted[0].run
            existing = next((c for c in results if c.id == "existing-istio"), None)
            releases = (existing.data.get("releases") if existing is not None else None) or []
            # Skipped only where the cluster still shows the step's effect (plans/resume.py).
            done, again = await asyncio.to_thread(resume.continue_run, self.plan, previous.records, run,
                                                  self._check_ctx, releases, journal)
            notes += again
            if done:
                notes.append(f"Continuing that run; already done: {', '.join(done)}")
        checklist = self.query_one(StepChecklist)
        first = next((s.id for s in self.plan.steps if s.state is StepState.PENDING), None)
        checklist.rebuild(select=first)
        for step in self.plan.steps[:1]:  # kept in the output pane, where a notice would vanish
            self.buffers.clear(step.id)
            for d in outcome.decisions:
                self.buffers.append(step.id, f"{'!' if d.kind in ('interrupted', 'repair', 'refuse') else '·'} "
                                             f"{d.line()}")
            for note in notes:
                self.buffers.append(step.id, f"! {note}")
        self._shown_step = None
        self._show_step(checklist.selected_step_id)
        self._dirty.update(s.id for s in self.plan.steps)
        self._update_progress()
        urgent = [d.line() for d in outcome.decisions if d.kind in ("interrupted", "repair")] + notes
        if urgent:
            self.notify("\n".join(urgent), title="Interrupted run", severity="warning", markup=False, timeout=30)
        for d in outcome.refusals:
            self.notify(d.reason, title="The install is refused", severity="error", markup=False, timeout=30)


    # ------------------------------------------------------------------ actions

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.state in (
            WorkerState.PENDING, WorkerState.RUNNING)

    def _start(self, coro, name: str) -> None:
        if getattr(self.app, "read_only", False):
            coro.close()
            self.notify("Read-only (--read-only): nothing runs.", severity="warning")
            return
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
        if self.zoomed:
            self.action_zoom()  # the checklist is the plan: show what runs
        outcome = self.outcome
        if outcome is not None and outcome.refusals:
            self.notify("; ".join(d.reason for d in outcome.refusals), title="The install is refused",
                        severity="error", markup=False, timeout=30)
            return
        if outcome is not None:
            failing = [c.id for c in outcome.blocking]
        else:  # a plan given without a session: a failure its fix phase covers does not count
            fixed = {"vpc-cni"} if any(p.id == FIX_PHASE_ID for p in self.plan.phases) else set()
            failing = [c.id for c in self.query_one(PreflightPane).results.values()
                       if c.status == FAIL and c.id not in fixed]
        if failing and not self._failures_acknowledged and not self.running:
            self._failures_acknowledged = True
            self.notify(f"Preflight fails: {', '.join(failing)}. Add a fix (f) or press r again "
                        "to run anyway.", title="Preflight", severity="warning", markup=False)
            return
        asks = outcome.consents if outcome is not None else []
        if asks and not self._consented and not self.running:
            self._consented = True
            self.notify("\n".join(d.reason for d in asks) + "\nPress r again to agree and run the plan.",
                        title="This changes what you did not install", severity="warning", markup=False,
                        timeout=30)
            return
        self._start(self.runner.run(), "run plan")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in MUTATING_ACTIONS and getattr(self.app, "read_only", False):
            return False  # the key does nothing and the footer does not show it
        if action == "run_step":
            # False: enter goes on to the focused pane, and the footer drops "Step".
            checklist = self.query(StepChecklist)
            return bool(checklist) and self.focused is checklist.first()
        return True

    def action_run_step(self) -> None:
        # enter belongs to the checklist; in a pane (a table, the preflight list) it is theirs.
        if self.focused is not self.query_one(StepChecklist):
            raise SkipAction()
        self.command_run_step()

    def command_run_step(self) -> None:
        """Run the selected step (also the palette's entry, which has no focus rule)."""
        step_id = self._selected()
        if step_id is not None:
            self._start(self.runner.run_step(step_id), f"run {step_id}")

    def action_pane_output(self) -> None:
        self.show_pane("output")

    def action_pane_preflight(self) -> None:
        self.show_pane("preflight")

    def action_pane_pods(self) -> None:
        self.show_pane("pods")

    def action_pane_helm(self) -> None:
        self.show_pane("helm")

    def action_pane_mesh(self) -> None:
        self.show_pane("mesh")

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.set_class(self.zoomed, "-zoomed")
        self._draw_tabs()
        self._focus_pane()

    def action_add_fix(self) -> None:
        pane = self.query_one(PreflightPane)
        selected = pane.selected_check
        candidates = ([selected] if selected else []) + list(pane.results.values())
        check = next((c for c in candidates if pane.fixable(c)), None)
        if check is None:
            self.notify("No finished check has a fix that runs as steps; other fixes are shown "
                        "as commands in the preflight pane.", severity="information")
            return
        if self.running:
            self.notify("A run is in progress: add fixes before running.", severity="warning")
            return
        if any(p.id == FIX_PHASE_ID for p in self.plan.phases):
            self.notify("The fix is already the plan's first phase.", severity="information")
            return
        self.run_worker(self._add_fix(check), name="add fix", group="preflight", exit_on_error=False)

    async def _add_fix(self, check) -> None:
        """The session builds the plan again with the fix (as `install --fix` does). A plan
        given without a session (tests, a runbook of local commands) gets the same steps."""
        self._fix_wanted = True
        results = self.query_one(PreflightPane).results
        if getattr(self.app, "install_session", None) is not None:
            await self._replan(list(results.values()))
        else:
            from ambient_tui.checks.vpc_cni import enforcing_mode_fix_steps, fix_target

            target, why = fix_target(check, results)
            try:
                steps = await asyncio.to_thread(enforcing_mode_fix_steps, self._check_ctx.client(), **target)
            except Exception as exc:
                self.notify(f"Cannot build the fix for {check.id}: {exc}", severity="error", markup=False)
                return
            self.plan.phases.insert(0, Phase(FIX_PHASE_ID, f"Preflight fix: {check.title}", steps))
        fix = next((p for p in self.plan.phases if p.id == FIX_PHASE_ID), None)
        if fix is None:
            self._fix_wanted = False
            self.notify(f"Cannot build the fix for {check.id}.", severity="error", markup=False)
            return
        self.query_one(StepChecklist).rebuild(select=fix.steps[0].id)
        if self.zoomed:
            self.action_zoom()
        self._update_progress()
        self.notify(f"Added {len(fix.steps)} steps as the plan's first phase; they run with the plan (r).",
                    title="Preflight fix", markup=False)

    def action_preflight(self) -> None:
        """Check again (e.g. after a fix ran); the context is new, so nothing is cached."""
        if not self.preflight_done and getattr(self.app, "check_context_factory", None):
            self.notify("Preflight is still running.", severity="information")
            return
        self._start_preflight()
        self.show_pane("preflight")

    def action_uninstall(self) -> None:
        try:
            from screens.uninstall import UninstallScreen
        except (ImportError, AttributeError) as exc:
            self.notify(f"The uninstall screen is not available: {exc}", title="Uninstall",
                        severity="error", markup=False)
            return
        app: Any = self.app
        extra = {"kubeconfig": app.kubeconfig} if getattr(app, "kubeconfig", None) else {}
        self.app.push_screen(UninstallScreen(context=getattr(app, "kube_context", None) or app.context,
                                             **extra))

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
        self.app.push_screen(HelpScreen(self.help_rows() + self.pane_help_rows()))

    def action_netpol(self) -> None:
        from ambient_tui.netpol.cluster import NetpolCluster
        from screens.netpol import NetpolScreen

        # The editor works on the TUI's own cluster (read through getattr: the target may be pinned).
        cluster = NetpolCluster(getattr(self.app, "kubeconfig", None), getattr(self.app, "kube_context", None))
        self.app.push_screen(NetpolScreen(cluster, namespace=self.namespace))

    def action_quit(self) -> None:
        if self.running:
            self.runner.cancel()
        self.app.exit()

    def help_rows(self) -> list[tuple[str, str, str]]:
        by_id = {b.id: b for b in self.BINDINGS if isinstance(b, Binding)}
        return [(self._keys_shown(by_id[binding_id]), description, binding_id)
                for binding_id, _action, description in COMMANDS]

    def pane_help_rows(self) -> list[tuple[str, str, str]]:
        """Keys of the pods and Helm panes: they apply while that pane has focus and then
        take precedence over the main screen's keys with the same letter (d, f, p)."""
        from screens.helm import HelmPane
        from screens.mesh import MeshPane
        from screens.pods import PodsPane

        rows = []
        for pane, bindings in (("pods", PodsPane.BINDINGS), ("Helm", HelmPane.BINDINGS),
                               ("mesh", MeshPane.BINDINGS)):
            for b in bindings:
                if isinstance(b, Binding) and b.id:
                    rows.append((self._keys_shown(b), f"{pane} pane: {b.description or b.action}", b.id))
        return rows

    def _keys_shown(self, binding: Binding) -> str:
        keymap: dict[str, str] = getattr(self.app, "_keymap", {}) or {}
        keys = keymap.get(binding.id or "", binding.key)
        return ", ".join(
            binding.key_display if (binding.key_display and k == binding.key)
            else self.app.get_key_display(Binding(k, ""))
            for k in keys.split(","))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place where a failed run (or a failed watch/preflight worker) becomes visible."""
        if event.worker.group != "runner":
            if event.state is WorkerState.ERROR:
                self.notify(f"{event.worker.name}: {event.worker.error}", title="Error",
                            severity="error", markup=False)
            return
        if event.state is WorkerState.ERROR:
            self.notify(f"{event.worker.name}: {event.worker.error}", title="Runner error",
                        severity="error", markup=False)
        error = getattr(self.runner, "journal_error", None)
        if error is not None and event.state is WorkerState.SUCCESS:
            self.notify(f"{error}. The run stopped at a step boundary; nothing more was changed.",
                        title="Journal", severity="error", markup=False, timeout=30)
        # A finished run may leave states the events did not carry (e.g. skipped).
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self._dirty.update(s.id for s in self.plan.steps)
