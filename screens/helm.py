"""Helm pane: one row per release (its newest revision), from a release-Secret watcher.

Like the pod pane, it never gets a callback per watch event: a timer reads the provider's
`version` and merges a snapshot into the table by row key. `h` opens a release's history,
where `b` rolls back to the selected revision after a typed confirmation; `f` offers the fix
for a pending-* or failed release (roll back to the last deployed revision, or uninstall
when none was ever deployed). Commands run as argv lists through the engine Runner.
"""

from __future__ import annotations

import shlex
import time
from typing import Callable, Protocol

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Log, Static

from ambient_tui.engine.confirm import confirmation_phrase, confirmed
from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Phase, Plan, Step
from ambient_tui.engine.runner import Runner
from ambient_tui.watch.helm_releases import (DEPLOYED, FAILED, INSTALL_NAMESPACES, PENDING_PREFIX,
                                             Fix, HelmReleaseWatcher, HelmSnapshot, Release,
                                             fix_for, rollback_argv)
from ambient_tui.watch.pods import RECONNECTING
from ambient_tui.watch.rows import format_age
from screens import link

REFRESH = 0.25
AGE_REFRESH = 10.0  # the UPDATED column: each tick re-sends the whole (small) table, as the pods pane ages
COLUMNS = ("name", "namespace", "revision", "status", "chart", "app_version", "updated")
HEADERS = {"name": "NAME", "namespace": "NAMESPACE", "revision": "REV", "status": "STATUS",
           "chart": "CHART", "app_version": "APP", "updated": "UPDATED"}
ROLLBACK_TIMEOUT = 600.0


def status_style(status: str) -> str:
    """Named ANSI colours: legible in 256 colours, ansi themes and over SSH."""
    if status == DEPLOYED:
        return "green"
    if status in ("superseded", "uninstalled"):
        return "dim"
    if status.startswith(PENDING_PREFIX):
        return "bold yellow"
    if status == FAILED:
        return "bold red"
    if status == "uninstalling":
        return "magenta"
    return "red"


class HelmProvider(Protocol):
    @property
    def version(self) -> int: ...
    def snapshot(self) -> HelmSnapshot: ...
    def history(self, namespace: str, name: str) -> list[Release]: ...


def _cells(rel: Release, now: float) -> tuple[str, ...]:
    return (rel.name, rel.namespace, str(rel.revision), rel.status, rel.chart, rel.app_version,
            format_age(rel.updated, now))


def _rk(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def helm_env(kubeconfig: str | None, context: str | None) -> dict[str, str]:
    """Point helm at the pane's cluster without changing the argv the user confirmed."""
    env = {}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    if context:
        env["HELM_KUBECONTEXT"] = context
    return env


class HelmPane(Widget):
    """Helm releases in `namespaces`: None for the install namespaces (istio-system,
    istio-ingress), ["*"] for all namespaces. `provider` (a HelmReleaseWatcher or anything
    with `version`, `snapshot()` and `history()`) is injectable; without it the real watcher
    is built and started on mount and stopped on unmount."""

    DEFAULT_CSS = """
    HelmPane { height: 1fr; layout: vertical; }
    HelmPane #helm-status { height: 1; padding: 0 1; }
    HelmPane #helm-hint { height: auto; max-height: 2; padding: 0 1; }
    HelmPane DataTable { height: 1fr; }
    """

    BINDINGS = [
        Binding("h", "history", "History", id="helm.history"),
        Binding("f", "fix", "Fix", id="helm.fix"),
    ]

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None,
                 namespaces: list[str] | None = None, provider=None,
                 now: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self.kubeconfig, self.context = kubeconfig, context
        if namespaces is None:
            self.namespaces: tuple[str, ...] | None = INSTALL_NAMESPACES
        elif "*" in namespaces:
            self.namespaces = None
        else:
            self.namespaces = tuple(namespaces)
        self.provider: HelmProvider | None = provider
        self._own_provider = provider is None
        self.now = now
        self.interval, self.age_interval = REFRESH, AGE_REFRESH
        self._seen = -1
        self._snap: HelmSnapshot | None = None
        self._shown: dict[tuple[str, str], Release] = {}
        self._cells: dict[tuple[str, str], tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="helm-status")
        yield DataTable(id="helm-table", cursor_type="row", zebra_stripes=False)
        yield Static("", id="helm-hint")

    def on_mount(self) -> None:
        if link.of(self).slow:  # --slow-link: fewer merges and age ticks (screens/link.py)
            self.interval, self.age_interval = link.SLOW.merge_pace, link.SLOW.age_refresh
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(HEADERS[col], key=col)
        if self.provider is None:
            self.provider = HelmReleaseWatcher(namespaces=self.namespaces, kubeconfig=self.kubeconfig,
                                               context=self.context).start()
        self.refresh_now()
        self.set_interval(self.interval, self._tick)
        self.set_interval(self.age_interval, self._tick_ages)

    def on_unmount(self) -> None:
        if self._own_provider and self.provider is not None:
            stop = getattr(self.provider, "stop", None)
            if stop is not None:
                stop(timeout=0)

    # -- merging --
    def _tick(self) -> None:
        if self.provider is not None and self.provider.version != self._seen:
            self.refresh_now()

    def refresh_now(self) -> None:
        assert self.provider is not None
        snap = self.provider.snapshot()
        self._seen, self._snap = snap.version, snap
        self._merge(snap)
        self._status(snap)
        self._hint()

    def _styled(self, col: str, value: str, rel: Release) -> Text:
        if col == "status":
            return Text(value, style=status_style(value))
        if col == "name" and rel.needs_attention:
            return Text(value, style=status_style(rel.status))
        return Text(value)

    def _merge(self, snap: HelmSnapshot) -> None:
        table = self.query_one(DataTable)
        want = snap.releases
        now = self.now()
        added = False
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in want]:
                table.remove_row(_rk(key))
                del self._shown[key], self._cells[key]
            for key, rel in want.items():
                if self._shown.get(key) == rel:
                    continue
                cells = _cells(rel, now)
                if key not in self._shown:
                    table.add_row(*(self._styled(c, v, rel) for c, v in zip(COLUMNS, cells)), key=_rk(key))
                    added = True
                else:
                    prev = self._cells[key]
                    for i, (c, v) in enumerate(zip(COLUMNS, cells)):
                        if prev[i] != v or c == "name":
                            table.update_cell(_rk(key), c, self._styled(c, v, rel))
                self._shown[key], self._cells[key] = rel, cells
            if added:
                table.sort("namespace", "name", key=lambda v: (v[0].plain, v[1].plain))

    def _tick_ages(self) -> None:
        if not self._shown:
            return
        table = self.query_one(DataTable)
        now = self.now()
        i = COLUMNS.index("updated")
        for key, rel in self._shown.items():
            age = format_age(rel.updated, now)
            if self._cells[key][i] != age:
                table.update_cell(_rk(key), "updated", Text(age))
                self._cells[key] = self._cells[key][:i] + (age,) + self._cells[key][i + 1:]

    def _status(self, snap: HelmSnapshot) -> None:
        scope = "all namespaces" if snap.scope is None else ", ".join(snap.scope)
        line = Text()
        stale = getattr(snap, "stale_since", None)
        if stale is not None:  # the API is away: the rows are the last known list, kept
            shown = time.strftime("%H:%M:%S", time.localtime(stale))
            line.append(f"STALE · last known list from {shown} ({len(snap.releases)} releases) · ",
                        style="bold yellow")
        if snap.state == RECONNECTING:
            line.append("reconnecting… ", style="bold yellow")
            line.append(snap.last_error[:120], style="yellow")
        else:
            line.append(snap.state, style="green" if snap.state == "watching" else "yellow")
            bad = sum(1 for r in snap.releases.values() if r.needs_attention)
            line.append(f" · {len(snap.releases)} releases · {scope}")
            if bad:
                line.append(f" · {bad} need attention", style="bold red")
        for _, msg in sorted(snap.messages.items()):
            line.append(" · ")
            line.append(msg[:160], style="red")
        self._set_line("#helm-status", line)

    def _set_line(self, selector: str, line) -> None:
        """Update a one-line Static only when its text changed, without a layout pass: each
        update re-sends the whole line (a merge or age tick re-sent two lines otherwise)."""
        widget = self.query_one(selector, Static)
        if getattr(widget, "_last_line", None) != line:
            widget._last_line = line
            widget.update(line, layout=False)

    @on(DataTable.RowHighlighted, "#helm-table")
    def _row_moved(self, event: DataTable.RowHighlighted) -> None:
        self._hint()

    def _hint(self) -> None:
        hint = self.query_one("#helm-hint", Static)
        rel = self.selected_release
        fix = self.fix_for_selected() if rel is not None else None
        if fix is None:
            hint.update(Text("h: history · b (in history): rollback", style="dim") if rel else "")
            return
        line = Text()
        line.append(f"{rel.name}: ", style=status_style(rel.status))
        line.append(fix.why)
        line.append(" · f: ", style="bold")
        line.append(shlex.join(fix.argv), style="bold")
        hint.update(line)

    # -- selection, actions --
    @property
    def selected_release(self) -> Release | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        ns, _, name = str(row_key.value).partition("/")
        return self._shown.get((ns, name))

    def fix_for_selected(self) -> Fix | None:
        rel = self.selected_release
        if rel is None or self.provider is None:
            return None
        return fix_for(self.provider.history(rel.namespace, rel.name))

    def action_history(self) -> None:
        rel = self.selected_release
        if rel is None or self.provider is None:
            return
        self.app.push_screen(HelmHistoryScreen(self.provider, rel.namespace, rel.name, now=self.now,
                                               env=helm_env(self.kubeconfig, self.context)))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # --read-only: no fix (a rollback or uninstall of a stuck release) from this pane.
        return not (action == "fix" and getattr(self.app, "read_only", False))

    def action_fix(self) -> None:
        rel, fix = self.selected_release, self.fix_for_selected()
        if rel is None or getattr(self.app, "read_only", False):
            return
        if fix is None:
            self.app.notify(f"{rel.name} is {rel.status}: nothing to fix", timeout=3)
            return
        self.app.push_screen(ConfirmHelmCommand(rel, fix.argv, fix.why,
                                                env=helm_env(self.kubeconfig, self.context)))

    def table_rows(self) -> list[tuple[str, ...]]:
        table = self.query_one(DataTable)
        return [tuple(c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i))
                for i in range(table.row_count)]


class HelmHistoryScreen(Screen):
    """All stored revisions of one release, newest first; live while open."""

    DEFAULT_CSS = """
    HelmHistoryScreen { layout: vertical; }
    HelmHistoryScreen #history-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    HelmHistoryScreen #history-hint { height: 1; padding: 0 1; }
    HelmHistoryScreen DataTable { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="helm.history_back"),
        Binding("b", "rollback", "Rollback", id="helm.rollback"),
    ]

    def __init__(self, provider: HelmProvider, namespace: str, name: str, *,
                 now: Callable[[], float] = time.time, env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.provider, self.namespace, self.release_name = provider, namespace, name
        self.now, self.env = now, env or {}
        self._seen = -1
        self.revisions: list[Release] = []

    def compose(self) -> ComposeResult:
        yield Static(Text(f"history · release {self.namespace}/{self.release_name}", no_wrap=True,
                          overflow="ellipsis"), id="history-title")
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=False)
        yield Static(Text("b: roll back to the selected revision · escape: back", style="dim"),
                     id="history-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("revision", "REV"), ("updated", "UPDATED"), ("status", "STATUS"),
                           ("chart", "CHART"), ("app", "APP"), ("description", "DESCRIPTION")):
            table.add_column(label, key=key)
        self._refresh()
        table.focus()
        self.set_interval(REFRESH, self._refresh)

    def _refresh(self) -> None:
        if self.provider.version == self._seen:
            return
        self._seen = self.provider.version
        revs = self.provider.history(self.namespace, self.release_name)
        if revs == self.revisions:
            return
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self.revisions = revs
        now = self.now()
        with self.app.batch_update():
            table.clear()
            for r in revs:
                table.add_row(Text(str(r.revision)), Text(format_age(r.updated, now)),
                              Text(r.status, style=status_style(r.status)), Text(r.chart),
                              Text(r.app_version), Text(r.description), key=str(r.revision))
            if revs:
                table.move_cursor(row=min(cursor, len(revs) - 1))

    @property
    def selected(self) -> Release | None:
        table = self.query_one(DataTable)
        if not self.revisions or table.row_count == 0:
            return None
        return self.revisions[min(table.cursor_row, len(self.revisions) - 1)]

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (action == "rollback" and getattr(self.app, "read_only", False))  # --read-only

    def action_rollback(self) -> None:
        target = self.selected
        if target is None:
            return
        if getattr(self.app, "read_only", False):
            self.app.notify("Read-only (--read-only): no rollback.", severity="warning", timeout=3)
            return
        current = self.revisions[0]
        if target.revision == current.revision:
            self.app.notify(f"revision {target.revision} is the current one; pick an older revision",
                            timeout=3)
            return
        argv = rollback_argv(target.name, target.revision, target.namespace)
        why = (f"roll {target.name} back from revision {current.revision} ({current.status}) to "
               f"revision {target.revision} ({target.chart}); helm records it as a new revision")
        self.app.push_screen(ConfirmHelmCommand(current, argv, why, env=self.env))

    def history_rows(self) -> list[tuple[str, ...]]:
        table = self.query_one(DataTable)
        return [tuple(c.plain for c in table.get_row_at(i)) for i in range(table.row_count)]


class ConfirmHelmCommand(ModalScreen[bool]):
    """Shows the exact command; runs it only after the release name is typed.

    For an uninstall it lists what the release's manifest holds (what helm deletes)."""

    DEFAULT_CSS = """
    ConfirmHelmCommand { align: center middle; }
    ConfirmHelmCommand > Vertical { width: 76; height: auto; max-height: 22; border: thick $warning;
                                    background: $surface; padding: 0 1; }
    ConfirmHelmCommand #confirm-command { text-style: bold; margin: 1 0 0 0; }
    ConfirmHelmCommand #confirm-what { height: auto; max-height: 6; }
    ConfirmHelmCommand #confirm-result { height: 1; }
    ConfirmHelmCommand Log { height: 6; display: none; }
    ConfirmHelmCommand Log.shown { display: block; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="helm.confirm_cancel")]

    def __init__(self, release: Release, argv: list[str], why: str, *,
                 env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.release, self.argv, self.why, self.env = release, argv, why, env or {}
        # The release name, or (a release Secret without a name) a fixed sentence: never "".
        self.phrase = confirmation_phrase(release.name)
        self.state = "confirming"   # then running, succeeded or failed (tests read it)
        self.output: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.why), id="confirm-why")
            yield Static(Text(shlex.join(self.argv)), id="confirm-command")
            if self.argv[1:2] == ["uninstall"]:
                res = self.release.resources
                shown = ", ".join(res[:12]) + (f" … and {len(res) - 12} more" if len(res) > 12 else "")
                yield Static(Text(f"deletes {len(res)} objects: {shown or '(none listed)'}",
                                  style="yellow"), id="confirm-what")
            yield Static(Text(f"type {'the release name ' if self.phrase == self.release.name else ''}"
                              f"({self.phrase}) and press enter; escape cancels", style="dim"),
                         id="confirm-help")
            yield Input(placeholder=self.phrase, id="confirm-input")
            yield Static("", id="confirm-result")
            yield Log(max_lines=400, id="confirm-output")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.state != "confirming":
            return
        if not confirmed(event.value, self.phrase):  # exact: no trimming, case or prefix
            self.query_one("#confirm-result", Static).update(
                Text(f"does not match {self.phrase}; nothing was run", style="bold red"))
            return
        self.state = "running"
        event.input.disabled = True
        self.query_one("#confirm-result", Static).update(Text("running…", style="yellow"))
        self.query_one(Log).add_class("shown")
        self.run_worker(self._run(), exclusive=True, group="helm-command")

    async def _run(self) -> None:
        step = Step(id="helm-command", title=shlex.join(self.argv), argv=list(self.argv),
                    timeout=ROLLBACK_TIMEOUT)
        runner = Runner(Plan(title=step.title, phases=[Phase("helm", "helm", [step])]), env=self.env)
        log = self.query_one(Log)

        def on_event(ev: Event) -> None:
            if ev.kind is EventKind.OUTPUT:
                self.output.append(ev.line)
                log.write_line(ev.line)
            elif ev.kind in (EventKind.FINISHED, EventKind.FAILED) and ev.message:
                self.output.append(ev.message)
                log.write_line(ev.message)
        runner.subscribe(on_event)
        state = await runner.run_step(step.id)
        ok = state.value == "succeeded"
        self.state = "succeeded" if ok else "failed"
        self.query_one("#confirm-result", Static).update(
            Text(f"{self.state} · escape: close", style="bold green" if ok else "bold red"))

    def action_cancel(self) -> None:
        if self.state == "running":
            self.app.notify("the command is running; wait for it to finish", timeout=3)
            return
        self.dismiss(self.state == "succeeded")
