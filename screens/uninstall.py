"""Guided uninstall: discover, show exactly what goes, type the cluster name, run, verify.

The engine does the work (plans/uninstall_session.py, the same as `ambient-tui uninstall`):
discovery, the permission check and the verification run in thread workers; the plan runs on
the engine Runner, journaled per cluster. As on the main screen, runner events only fill
buffers and a 1/20 s timer merges them into one redraw. Every text shown is a rich Text or a
plain Log line, never markup: resource names and helm output may contain `[`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, ContentSwitcher, Footer, Header, Input, Label, OptionList, Static
from textual.worker import Worker, WorkerState

from ambient_tui.engine.confirm import confirmed
from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Plan, StepState
from ambient_tui.plans.uninstall import Discovery, Options, deletion_list, kept_list
from screens.widgets import (MAX_OUTPUT_LINES, BufferedOutput, OutputBuffers, OutputPane, StepChecklist,
                             step_end_note)

FLUSH_INTERVAL = 1 / 20

# Screen states; the bindings each state offers are in `_ACTIONS`.
DISCOVERING, FAILED, REVIEW, CHECKING, RUNNING, VERIFYING, DONE = (
    "discovering", "failed", "review", "checking", "running", "verifying", "done")
TOGGLES = {"purge_crds": "Purge Istio CRDs", "keep_namespace_labels": "Keep ns labels",
           "revert_cni": "Revert VPC CNI", "dry_run": "Dry-run"}
_ACTIONS = {
    "toggle": {REVIEW},
    "run": {REVIEW},
    "rediscover": {FAILED, REVIEW, DONE},
    "cancel": {RUNNING},
    "switch_view": {DONE},
    "back": {DISCOVERING, FAILED, REVIEW, DONE},
}


class UninstallScreen(BufferedOutput, Screen):
    DEFAULT_CSS = """
    UninstallScreen #u-status { height: auto; max-height: 3; padding: 0 1; background: $panel; }
    UninstallScreen #u-options { height: 1; padding: 0 1; }
    UninstallScreen #u-options Checkbox {
        border: none; padding: 0; margin: 0 2 0 0; height: 1; width: auto; background: transparent;
    }
    UninstallScreen #u-options Checkbox:focus { background: $boost; }
    UninstallScreen #u-views { height: 1fr; }
    UninstallScreen #u-review-scroll, UninstallScreen #u-result-scroll { padding: 0 1; }
    UninstallScreen #u-run { height: 1fr; }
    UninstallScreen .u-steps {
        width: 34; border: none; border-right: vkey $panel-lighten-2; padding: 0;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    UninstallScreen #u-output { width: 1fr; padding: 0 1; }
    UninstallScreen #u-confirm { height: 1; padding: 0 1; }
    UninstallScreen #u-confirm Label { width: auto; padding: 0 1 0 0; }
    UninstallScreen #u-confirm Input { width: 1fr; }
    UninstallScreen #u-confirm Input:focus { background: $boost; }
    """

    BINDINGS = [
        Binding("escape", "back", "Back", id="uninstall.back"),
        Binding("f9", "run", "Run", id="uninstall.run"),
        Binding("f8", "cancel", "Cancel", id="uninstall.cancel"),
        Binding("f7", "switch_view", "Log/Result", id="uninstall.view"),
        Binding("f6", "rediscover", "Rediscover", id="uninstall.rediscover"),
        Binding("f2", "toggle('purge_crds')", "Purge CRDs", id="uninstall.purge_crds"),
        Binding("f3", "toggle('keep_namespace_labels')", "Keep labels", id="uninstall.keep_labels"),
        Binding("f4", "toggle('revert_cni')", "Revert CNI", id="uninstall.revert_cni"),
        Binding("f5", "toggle('dry_run')", "Dry-run", id="uninstall.dry_run"),
        Binding("f1", "help", "Help", id="uninstall.help"),
    ]
    HELP = {"uninstall.back": "Back to the previous screen", "uninstall.run": "Run (type the cluster name first)",
            "uninstall.cancel": "Cancel the running step", "uninstall.view": "Switch step log / result",
            "uninstall.rediscover": "Discover again", "uninstall.purge_crds": "Toggle: purge the Istio CRDs",
            "uninstall.keep_labels": "Toggle: keep namespace labels",
            "uninstall.revert_cni": "Toggle: revert the VPC CNI enforcing mode",
            "uninstall.dry_run": "Toggle: dry-run (nothing changes)", "uninstall.help": "Show the keys"}

    def __init__(self, context: str = "", *, kubeconfig: str | None = None,
                 options: Options | None = None, session: Any = None) -> None:
        """`session` is an UninstallSession (the default, built from context/kubeconfig)."""
        super().__init__()
        if session is None:
            from ambient_tui.plans.uninstall_session import UninstallSession

            session = UninstallSession(kubeconfig, context or None)
        self.session = session
        self.context = context
        self.options = dataclasses.replace(options) if options else Options()  # toggles change it
        self.dry_run = False
        self.state = DISCOVERING
        self.discovery: Discovery | None = None
        self.plan: Plan | None = None
        self.runner: Any = None
        self.leftovers: list | None = None
        self.error = ""
        self.buffers = OutputBuffers()
        self._pending: deque[str] = deque(maxlen=MAX_OUTPUT_LINES)
        self._dirty: set[str] = set()
        self._shown_step: str | None = None
        self._reset_pane = False
        self._run_ok = False
        self._runs = 0

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⎈")
        yield Static(id="u-status")
        with Horizontal(id="u-options"):
            for key, label in TOGGLES.items():
                yield Checkbox(label, self._option(key), id=f"u-{key.replace('_', '-')}", compact=True)
        with ContentSwitcher(id="u-views", initial="u-review-scroll"):
            with VerticalScroll(id="u-review-scroll"):
                yield Static(id="u-review")
            with Horizontal(id="u-run"):
                yield StepChecklist(Plan("uninstall"), id="u-steps-0", classes="u-steps")
                yield OutputPane(id="u-output")
            with VerticalScroll(id="u-result-scroll"):
                yield Static(id="u-result")
        with Horizontal(id="u-confirm"):
            yield Label("Type the cluster name to confirm:", id="u-confirm-label")
            yield Input(id="u-confirm-input", placeholder="cluster name, then Enter (or F9)", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "ambient-tui · uninstall"
        self.set_interval(FLUSH_INTERVAL, self._flush)
        self._discover()

    # ------------------------------------------------------------------ state

    def _option(self, key: str) -> bool:
        return self.dry_run if key == "dry_run" else bool(getattr(self.options, key))

    def _set_state(self, state: str) -> None:
        self.state = state
        busy = state not in (REVIEW,)
        for key in TOGGLES:
            self.query_one(f"#u-{key.replace('_', '-')}", Checkbox).disabled = busy
        box = self.query_one("#u-confirm-input", Input)
        box.disabled = busy
        if state == REVIEW:
            box.focus()
        self.refresh_bindings()
        self._show_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and getattr(self.app, "read_only", False):
            return False  # --read-only: the review shows what would go; nothing runs
        allowed = _ACTIONS.get(action)
        if allowed is None:
            return True
        return self.state in allowed  # False: hidden from the footer, and does nothing

    def _show_status(self) -> None:
        cluster = getattr(self.session, "cluster", "") or self.context or "the current context"
        t = Text(no_wrap=False)
        t.append(f"Cluster {cluster}", style="bold")
        if self.dry_run:
            t.append(" · DRY-RUN", style="bold cyan")
        t.append(" · ")
        if self.state == DISCOVERING:
            t.append("discovering… (reading releases, CRDs, namespaces, the journal)", style="yellow")
        elif self.state == FAILED:
            t.append(self.error, style="bold red")
        elif self.state == REVIEW:
            n = len(deletion_list(self.discovery, self.options)) if self.discovery else 0
            steps = len(self.plan.steps) if self.plan else 0
            t.append(f"{n} item(s) will be removed in {steps} step(s)" if steps else "nothing to remove")
            if self.error:
                t.append(f" · {self.error}", style="bold red")
        elif self.state == CHECKING:
            t.append("checking this user's permissions for every step…", style="yellow")
        elif self.state == RUNNING:
            done = sum(1 for s in self.plan.steps if s.state.done) if self.plan else 0
            t.append(f"running: {done}/{len(self.plan.steps) if self.plan else 0} step(s) done"
                     " · F8 cancels", style="yellow")
        elif self.state == VERIFYING:
            t.append("verifying: discovering again to see what is left…", style="yellow")
        elif self.state == DONE:
            t.append(self._outcome(), style="bold green" if self._clean() else "bold red")
        self.query_one("#u-status", Static).update(t)

    def _clean(self) -> bool:
        return self._run_ok and self.leftovers == []

    def _outcome(self) -> str:
        if self.dry_run:
            return "dry-run finished: nothing was changed"
        if self._clean():
            return "done: verified, nothing left"
        n = len(self.leftovers or [])
        return ("stopped: a step failed" if not self._run_ok else "done") + (
            f"; {n} item(s) left" if n else "") + " (F7 switches log/result)"

    # ------------------------------------------------------------------ discovery

    def _discover(self) -> None:
        self.discovery, self.plan, self.error = None, None, ""
        self._set_state(DISCOVERING)
        self.query_one(ContentSwitcher).current = "u-review-scroll"
        self.query_one("#u-review", Static).update(Text("discovering…", style="yellow"))
        self.run_worker(self.session.discover, thread=True, group="discover", name="discover",
                        exclusive=True, exit_on_error=False)

    def _discovered(self, d: Discovery) -> None:
        self.discovery = d
        self._rebuild()
        self._set_state(REVIEW)

    def _rebuild(self) -> None:
        """Plan and lists again from the same discovery: every toggle calls this."""
        d = self.discovery
        if d is None:
            return
        self.plan = self.session.plan(d, self.options)
        self.query_one("#u-review", Static).update(self._review_text(d))
        self.query_one("#u-confirm-label", Label).update(
            Text(f"Type {self.session.phrase} to confirm: " if not self.dry_run
                 else "Dry-run: F9 shows the steps, nothing changes: ", no_wrap=True))
        self._show_status()

    def _review_text(self, d: Discovery) -> Text:
        opts = self.options
        t = Text(no_wrap=False)
        items = deletion_list(d, opts)
        if items:
            t.append(f"Will be removed ({len(items)}):\n", style="bold")
            for line in items:
                t.append(("  " if line.startswith("  ") else "- ") + line.strip() + "\n",
                         style="" if line.startswith("  ") else "red")
        else:
            t.append("Nothing of Istio ambient to remove.\n", style="bold green")
        if d.enrolled_namespaces and not opts.keep_namespace_labels:
            t.append("\nWarning: ", style="bold dark_orange")
            t.append(f"unenrolled namespaces lose mTLS ({', '.join(sorted(d.enrolled_namespaces))}): "
                     "their traffic is sent in plain text.\n")
        kept = kept_list(d, opts)
        if opts.revert_cni and d.cni_change is None:
            kept.append("Revert VPC CNI: nothing to revert; the journal records no VPC CNI change by this tool")
        if kept:
            t.append("\nKept:\n", style="bold")
            for line in kept:
                t.append(f"- {line}\n", style="dim")
        if self.plan and self.plan.steps:
            t.append(f"\nSteps ({len(self.plan.steps)}):\n", style="bold")
            for i, s in enumerate(self.plan.steps, 1):
                t.append(f"{i:>2}. {s.title}\n")
                t.append(f"    $ {s.command}\n", style="dim")
        return t

    # ------------------------------------------------------------------ toggles

    @on(Checkbox.Changed)
    def _checkbox(self, event: Checkbox.Changed) -> None:
        key = (event.checkbox.id or "").removeprefix("u-").replace("-", "_")
        if key not in TOGGLES or self._option(key) == event.value:
            return
        if key == "dry_run":
            self.dry_run = event.value
        else:
            setattr(self.options, key, event.value)
        self._rebuild()

    def action_toggle(self, key: str) -> None:
        box = self.query_one(f"#u-{key.replace('_', '-')}", Checkbox)
        box.value = not box.value  # Checkbox.Changed does the rest

    def action_rediscover(self) -> None:
        self._discover()

    # ------------------------------------------------------------------ run

    @on(Input.Submitted, "#u-confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def action_run(self) -> None:
        if self.state != REVIEW or self.plan is None:
            return
        if getattr(self.app, "read_only", False):
            self.notify("Read-only (--read-only): the uninstall does not run.", severity="warning")
            return
        if self.dry_run:
            self._start_run()
            return
        typed = self.query_one("#u-confirm-input", Input).value
        phrase = self.session.phrase
        if self.plan.steps and not confirmed(typed, phrase):
            self.error = (f"refused: typed {typed!r}, expected {phrase!r} exactly; nothing was run"
                          if typed else f"type {phrase} ({self.session.phrase_kind}) to confirm; "
                                        "nothing was run")
            self.notify(self.error, severity="error", markup=False)
            self._show_status()
            return
        self.error = ""
        self._set_state(CHECKING)
        d, opts = self.discovery, self.options
        self.run_worker(lambda: self.session.denied(d, opts), thread=True, group="permissions",
                        name="permissions", exclusive=True, exit_on_error=False)

    def _permissions_checked(self, denied: list) -> None:
        if denied:
            self.error = self.session.refusal(denied)
            self.notify(self.error, severity="error", markup=False, timeout=10)
            self._set_state(REVIEW)
            return
        self._start_run()

    def _start_run(self) -> None:
        from ambient_tui.engine.runner import Runner

        from ambient_tui.engine.journal import JournalError

        plan = self.plan
        journal = None if self.dry_run else self.session.journal()
        if journal is not None:
            try:  # a journal that cannot be written stops the uninstall before its first change
                journal.check()
            except JournalError as e:
                journal.close()
                self.error = f"nothing was run: {e}"
                self.notify(self.error, severity="error", markup=False, timeout=15)
                self._set_state(REVIEW)
                return
        self.runner = Runner(plan, journal=journal, dry_run=self.dry_run,
                             lock=None if self.dry_run else self.session.lock(journal))
        if not self.dry_run and self.session.unfinished():
            done = self.session.resume(self.runner)
            if done:
                self.notify(f"Resuming the interrupted uninstall: {len(done)} step(s) already done.",
                            markup=False)
        self.runner.subscribe(self._on_runner_event)
        self.buffers = OutputBuffers()
        self._pending.clear()
        # A fresh checklist per run (ids must stay unique while the old one is removed).
        self._runs += 1
        old = self.query_one(".u-steps", StepChecklist)
        self.query_one("#u-run").mount(StepChecklist(plan, id=f"u-steps-{self._runs}", classes="u-steps"),
                                       before=old)
        old.remove()
        self._shown_step = None
        self.query_one(OutputPane).clear()
        self.query_one(ContentSwitcher).current = "u-run"
        self._set_state(RUNNING)
        self.run_worker(self._run(journal), group="runner", name="uninstall", exclusive=True,
                        exit_on_error=False)

    async def _run(self, journal) -> bool:
        ok = False
        try:
            ok = await self.runner.run()
            return ok
        finally:
            if journal is not None:
                if any(s.state.value != "pending" for s in self.plan.steps):
                    self.session.end_install_runs(journal, ok)
                journal.close()

    def action_cancel(self) -> None:
        if self.state == RUNNING and self.runner is not None:
            self.runner.cancel()
            self.notify("Cancelling…", severity="warning")

    def _run_finished(self, ok: bool) -> None:
        self._run_ok = bool(ok)
        self._dirty.update(s.id for s in self.plan.steps)
        if self.dry_run:
            self.leftovers = []
            self._finish()
            return
        self._set_state(VERIFYING)
        d, opts = self.discovery, self.options
        self.run_worker(lambda: self.session.verify(d, opts), thread=True, group="verify",
                        name="verify", exclusive=True, exit_on_error=False)

    def _verified(self, leftovers: list) -> None:
        self.leftovers = leftovers
        self._finish()

    def _finish(self) -> None:
        self.query_one("#u-result", Static).update(self._result_text())
        self.query_one(ContentSwitcher).current = "u-result-scroll"
        self._set_state(DONE)

    def _result_text(self) -> Text:
        t = Text(no_wrap=False)
        if self.dry_run:
            t.append("Dry-run: nothing was changed. The steps that would run are in the log (F7).\n",
                     style="bold cyan")
            return t
        failed = [s for s in self.plan.steps if not s.state.done]
        if failed:
            t.append(f"Stopped at: {failed[0].title} ({failed[0].state.value}).\n", style="bold red")
            t.append("Fix the cause, then F6 and F9: the steps the journal saw succeed are skipped.\n\n")
        if self.leftovers is None:
            t.append("Verification did not run.\n", style="bold red")
        elif not self.leftovers:
            from ambient_tui.plans.uninstall_session import verified_message

            t.append("✔ " + verified_message(self.discovery, self.options) + "\n", style="bold green")
        else:
            t.append(f"✘ {len(self.leftovers)} item(s) left:\n", style="bold red")
            for item in self.leftovers:
                t.append(f"- {item.what}\n")
                t.append(f"    $ {item.command}\n", style="dim")
        return t

    def action_switch_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "u-run" if switcher.current == "u-result-scroll" else "u-result-scroll"

    def action_help(self) -> None:
        from screens.help import HelpScreen

        keymap: dict[str, str] = getattr(self.app, "_keymap", {}) or {}
        rows = [(keymap.get(b.id, b.key), self.HELP[b.id], b.id) for b in self.BINDINGS]
        self.app.push_screen(HelpScreen(rows))

    def action_back(self) -> None:
        if self.state in (RUNNING, CHECKING, VERIFYING):
            self.notify("The uninstall is running: cancel it first (F8).", severity="warning")
            return
        self.app.pop_screen()

    # ------------------------------------------------------------------ runner events

    def _on_runner_event(self, event: Event) -> None:
        """Called on the event loop by the runner: only buffer, never draw."""
        step_id = event.step_id
        if event.kind is EventKind.OUTPUT:
            self._buffer(step_id, event.line)
            return
        if event.kind is EventKind.STARTED:
            self.buffers.clear(step_id)
            self._shown_step = step_id  # follow the running step
            self._pending.clear()
            self._reset_pane = True
            self._buffer(step_id, f"$ {event.line}")
        elif event.kind in (EventKind.FINISHED, EventKind.FAILED):
            self._buffer(step_id, step_end_note(event))
        self._dirty.add(step_id)

    def _flush(self) -> None:
        """Timer: one redraw for everything that arrived since the last tick."""
        if self.plan is None or self.runner is None:
            return
        pane = self.query_one(OutputPane)
        if self._reset_pane:
            self._reset_pane = False
            pane.clear()
            pane.write_lines(self.buffers.lines(self._shown_step) if self._shown_step else [])
            self._pending.clear()
            pane.refresh()
        if self._pending:
            lines = list(self._pending)
            self._pending.clear()
            pane.write_lines(lines)
        if self._dirty:
            checklist = self.query_one(".u-steps", StepChecklist)
            dirty, self._dirty = self._dirty, set()
            for step_id in dirty:
                try:
                    checklist.refresh_step(self.plan.step(step_id))
                except Exception:  # noqa: BLE001 - the checklist is being replaced
                    continue
            if self.state == RUNNING:
                self._show_status()

    @on(OptionList.OptionHighlighted, ".u-steps")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """After the run, moving in the checklist shows that step's output."""
        if self.state == RUNNING:
            return
        step_id = event.option.id
        if step_id and step_id != self._shown_step and not event.option.disabled:
            self._shown_step = step_id
            self._reset_pane = True

    # ------------------------------------------------------------------ workers

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place where every background result and failure lands."""
        group, worker = event.worker.group, event.worker
        if event.state is WorkerState.SUCCESS:
            if group == "discover":
                self._discovered(worker.result)
            elif group == "permissions":
                self._permissions_checked(worker.result)
            elif group == "runner":
                self._run_finished(worker.result)
            elif group == "verify":
                self._verified(worker.result)
        elif event.state is WorkerState.ERROR:
            message = str(worker.error) or type(worker.error).__name__
            if group == "discover":
                self.error = (message if message.startswith("refused")
                              else f"discovery failed, nothing changed: {message}") + " (F6 retries)"
                self.query_one("#u-review", Static).update(Text(self.error, style="bold red"))
                self._set_state(FAILED)
            elif group == "permissions":
                self.error = f"cannot check permissions, nothing changed: {message}"
                self._set_state(REVIEW)
            elif group == "runner":
                self.notify(f"runner: {message}", severity="error", markup=False, timeout=10)
                self._run_finished(False)
            elif group == "verify":
                self.notify(f"verification could not read the cluster: {message}",
                            severity="error", markup=False, timeout=10)
                self.leftovers = None
                self._finish()
        elif event.state is WorkerState.CANCELLED and group == "runner":
            self._run_finished(False)

    @property
    def step_states(self) -> dict[str, StepState]:
        return {s.id: s.state for s in self.plan.steps} if self.plan else {}
