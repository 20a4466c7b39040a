"""Mesh pane: a compact live picture of the mesh and its namespaces, with the changes to make.

Top: the map (nodes with their ztunnel and istio-cni, a readiness history per component, one
point per change seen by the watch; a summary of enrolment and waypoints). Below: one row per
namespace (data-plane mode, captured/total pods, waypoint and its state). Like the pods and
Helm panes it never gets a callback per watch event: a timer reads the provider's `version`
and redraws only when it changed.

Actions on the selected namespace, each a plan shown before it runs, run by the engine's
Runner and journaled: `e` enrol (its live NetworkPolicies are linted first; a blocking finding
asks to type "force"), `u` unenrol (type the namespace), `o` opt a pod out, `w` apply a
waypoint and use it, `W` remove it (type the namespace), `n` its policies in the
NetworkPolicy editor, `v` verify against ztunnel's view.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Log, OptionList, Static
from textual.widgets.option_list import Option

from ambient_tui.engine.events import Event, EventKind
from ambient_tui.engine.plan import Plan
from ambient_tui.mesh.state import MeshState, NamespaceRow

REFRESH = 0.25
BIG, BIG_INTERVAL = 500, 0.5  # namespaces above which merges are spaced out, and by how much
COLUMNS = (("name", "NAMESPACE"), ("mode", "MODE"), ("captured", "CAPT"), ("waypoint", "WAYPOINT"),
           ("netpol", "NP"))
MODE_STYLE = {"ambient": "green", "sidecar": "cyan", "none": "yellow", "excluded": "dim", "-": "dim"}
SPARK = {1.0: ("█", "green"), 0.5: ("▄", "yellow"), 0.0: ("▁", "bold red")}


# --- drawing (pure: the snapshot tests and the benchmark use these) -------------------------

def spark(points: list[float], width: int) -> Text:
    """The newest `width` readiness points: █ ready, ▄ partly, ▁ not ready."""
    text = Text()
    for p in points[-width:]:
        glyph, style = SPARK.get(p, ("?", ""))
        text.append(glyph, style=style)
    return text


def render_map(state: MeshState, history: dict[str, list[float]], width: int, max_nodes: int) -> Text:
    """Nodes (ztunnel, istio-cni, history), then one summary line of namespaces and waypoints."""
    out = Text(no_wrap=True, overflow="ellipsis")
    nodes = state.nodes
    bad = [n for n in nodes if not n.ztunnel_ready]
    # Nodes without a ready ztunnel first: their pods are not in the mesh.
    shown = (bad + [n for n in nodes if n.ztunnel_ready])[:max_nodes]
    name_w = max([len(n.name) for n in shown] + [4])
    name_w = min(name_w, max(8, width - 30))
    hist_w = max(3, min(12, width - name_w - 21))
    for n in shown:
        ok = n.ztunnel_ready
        out.append("✔ " if ok else "✘ ", style="green" if ok else "bold red")
        out.append(n.name[:name_w].ljust(name_w) + " ")
        out.append("zt ")
        out.append_text(spark(history.get(f"ztunnel@{n.name}", []), hist_w))
        out.append(" " * (hist_w - len(history.get(f"ztunnel@{n.name}", [])[-hist_w:])))
        out.append(" cni")
        out.append("✔" if n.cni_ready else "✘", style="green" if n.cni_ready else "bold red")
        note = ""
        if not ok and n.ambient_pods:
            note = f" {n.ambient_pods} pod{'s' if n.ambient_pods != 1 else ''} out"
        elif not n.ztunnel:
            note = " no ztunnel"
        out.append(note, style="bold red")
        if width >= 80:  # room for the agents' pod names, in their own column
            out.append(" " * (12 - len(note)) + f"{n.ztunnel or '-'}  {n.cni or '-'}", style="dim")
        out.append("\n")
    if len(nodes) > len(shown):
        out.append(f"  + {len(nodes) - len(shown)} more nodes", style="dim")
        out.append("\n")
    if not nodes:
        out.append("no nodes listed yet\n", style="dim")
    modes: dict[str, int] = {}
    for ns in state.namespaces:
        modes[ns.mode] = modes.get(ns.mode, 0) + 1
    wp_ready = sum(w.ready for w in state.waypoints)
    out.append(f"{modes.get('ambient', 0)} ambient", style="green")
    # the least important last: at 80 columns the line's end is cut
    out.append(f" · waypoints {wp_ready}/{len(state.waypoints)}",
               style="green" if wp_ready == len(state.waypoints) else "yellow")
    for mode in ("sidecar", "none"):
        if modes.get(mode):
            out.append(f" · {modes[mode]} {mode}", style=MODE_STYLE[mode])
    out.append(f" · {modes.get('-', 0)} not in mesh", style="dim")
    return out


def row_cells(ns: NamespaceRow) -> tuple[Text, ...]:
    capt_style = "" if not ns.enrolled else ("green" if ns.captured == ns.pods else "bold yellow")
    wp = Text("-", style="dim")
    if ns.waypoint:
        ready = ns.waypoint_state == "ready"
        wp = Text(ns.waypoint + (" ✔" if ready else " ✘"), style="green" if ready else "yellow")
    # NP: blocking NetworkPolicy findings (HBONE or probes not allowed) of its live policies
    np = Text("-", style="dim") if ns.netpol_errors is None else (
        Text("ok", style="green") if not ns.netpol_errors else Text(f"{ns.netpol_errors}✘", style="bold red"))
    return (Text(ns.name), Text(ns.mode, style=MODE_STYLE.get(ns.mode, "")),
            Text(f"{ns.captured}/{ns.pods}", style=capt_style), wp, np)


# --- the pane ------------------------------------------------------------------------------

class LazyKube:
    """A KubeClient made on first use (in the worker that runs a step), not when the pane
    mounts: the kubernetes client costs a second of import the pane does not need to draw."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from ambient_tui.cluster.target import current_context  # the kubeconfig read with PyYAML only

        self._args = (kubeconfig, context)
        self._client = None
        self.context = context or current_context(kubeconfig)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._client is None:
            from ambient_tui.cluster.client import load_client
            self._client = load_client(*self._args)
            self.context = self._client.context
        return getattr(self._client, name)


class MeshPane(Widget):
    """`provider`: a MeshWatcher or anything with `version` and `snapshot()` (a MeshSnapshot);
    without it the real watcher starts on mount and stops on unmount. `kube`: the client the
    actions use (default: made from kubeconfig/context on first use). `journal`: a factory of
    the Journal each change is written to (default: the cluster's)."""

    DEFAULT_CSS = """
    MeshPane { height: 1fr; layout: vertical; }
    MeshPane #mesh-status { height: 1; padding: 0 1; }
    MeshPane #mesh-map { height: auto; max-height: 9; padding: 0 1; border-bottom: solid $panel-lighten-2;
                         text-wrap: nowrap; text-overflow: ellipsis; }
    MeshPane DataTable { height: 1fr; }
    MeshPane #mesh-hint { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("e", "enroll", "Enrol", id="mesh.enroll"),
        Binding("u", "unenroll", "Unenrol", id="mesh.unenroll"),
        Binding("o", "opt_out", "Opt pod out", id="mesh.opt_out"),
        Binding("w", "waypoint_apply", "Waypoint", id="mesh.waypoint_apply"),
        Binding("W", "waypoint_delete", "Remove waypoint", id="mesh.waypoint_delete", key_display="W"),
        Binding("n", "netpol", "Policies", id="mesh.netpol"),
        Binding("v", "verify", "Verify", id="mesh.verify"),
    ]

    def __init__(self, provider=None, *, kubeconfig: str | None = None, context: str | None = None,
                 kube: Any = None, journal: Callable[[], Any] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.provider = provider
        self._own_provider = provider is None
        self.kubeconfig, self.context = kubeconfig, context
        self.kube = kube if kube is not None else LazyKube(kubeconfig, context)
        self._journal = journal
        self._seen = -1
        self._rows: dict[str, NamespaceRow] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        self.state: MeshState | None = None
        self._history: dict[str, list[float]] = {}
        self._merged = 0.0

    def compose(self) -> ComposeResult:
        yield Static("", id="mesh-status")
        yield Static("", id="mesh-map")
        yield DataTable(id="mesh-table", cursor_type="row", zebra_stripes=False)
        yield Static(Text("e enrol · u unenrol · o opt out · w/W waypoint · n policies · v verify"),
                     id="mesh-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        if self.provider is None:
            from ambient_tui.mesh.watch import MeshWatcher
            self.provider = MeshWatcher(kubeconfig=self.kubeconfig, context=self.context).start()
        self.refresh_now()
        self.set_interval(REFRESH, self._tick)

    def on_unmount(self) -> None:
        if self._own_provider and self.provider is not None:
            self.provider.stop(timeout=0)

    def on_resize(self) -> None:
        if self.state is not None:
            self._draw_map()

    # -- drawing --
    def _tick(self) -> None:
        if self.provider is None or self.provider.version == self._seen:
            return
        # Large meshes: at most two merges a second (a merge of 2,000 rows is the costly part
        # of a frame; the picture stays live, keys stay quick).
        now = time.monotonic()
        if len(self._rows) > BIG and now - self._merged < BIG_INTERVAL:
            return
        self._merged = now
        self.refresh_now()

    def refresh_now(self) -> None:
        snap = self.provider.snapshot()
        self._seen, self.state, self._history = snap.version, snap.state, snap.history
        self._draw_status(snap)
        self._draw_map()
        self._merge(snap.state)

    def _draw_status(self, snap) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        if snap.watch_state == "reconnecting":
            line.append("reconnecting… ", style="bold yellow")
            line.append(snap.last_error[:120], style="yellow")
        else:
            line.append(snap.watch_state, style="green" if snap.watch_state == "watching" else "yellow")
            enrolled = len(snap.state.enrolled)
            line.append(f" · {enrolled} enrolled · {len(snap.state.nodes)} nodes")
        for msg in sorted(snap.messages.values()):
            line.append(" · ")
            line.append(msg[:120], style="yellow")
        self.query_one("#mesh-status", Static).update(line)

    def _draw_map(self) -> None:
        width = max(20, self.size.width - 2)
        max_nodes = 4 if self.size.height < 30 else 7
        self.query_one("#mesh-map", Static).update(render_map(self.state, self._history, width, max_nodes))

    def _merge(self, state: MeshState) -> None:
        table = self.query_one(DataTable)
        want = {n.name: n for n in state.namespaces}
        added = False
        with self.app.batch_update():
            for name in [k for k in self._rows if k not in want]:
                table.remove_row(name)
                del self._rows[name], self._cells[name]
            for name, row in want.items():
                old = self._rows.get(name)
                if old == row:
                    continue
                cells = row_cells(row)
                if old is None:
                    table.add_row(*cells, key=name)
                    added = True
                else:  # only the cells that changed: a pod event changes one count
                    for (key, _), cell, was in zip(COLUMNS, cells, self._cells[name]):
                        if cell != was:
                            table.update_cell(name, key, cell)
                self._rows[name], self._cells[name] = row, cells
            if added:
                table.sort("name", key=lambda t: t.plain)

    # -- selection --
    @property
    def selected(self) -> NamespaceRow | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self._rows.get(str(key.value))

    def select(self, namespace: str) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(namespace))

    def table_rows(self) -> list[tuple[str, ...]]:
        table = self.query_one(DataTable)
        return [tuple(c.plain for c in table.get_row_at(i)) for i in range(table.row_count)]

    def _journal_now(self):
        if self._journal is not None:
            return self._journal()
        from ambient_tui.engine.journal import Journal
        return Journal.for_cluster(self.kube.context or self.context or "default")

    def _open(self, plan: Plan, confirm: str = "", warnings: list[str] | None = None) -> None:
        self.app.push_screen(MeshPlanDialog(plan, self.kube, self._journal_now, confirm=confirm,
                                            warnings=warnings or []))

    def _need(self, enrolled: bool | None = None) -> NamespaceRow | None:
        ns = self.selected
        if ns is None:
            self.app.notify("no namespace selected", timeout=3)
            return None
        if ns.mode == "excluded":
            self.app.notify(f"{ns.name} is the control plane's or Kubernetes' own namespace; "
                            "istio-cni never captures it", timeout=4)
            return None
        if enrolled is not None and ns.enrolled != enrolled:
            self.app.notify(f"{ns.name} is {'not ' if enrolled else 'already '}enrolled", timeout=3)
            return None
        return ns

    # -- actions --
    def action_enroll(self) -> None:
        ns = self._need(enrolled=False)
        if ns is None:
            return
        self.app.notify(f"linting the NetworkPolicies of {ns.name}…", timeout=2)
        self.run_worker(lambda: self._gate_then_open(ns.name), thread=True, group="mesh-gate",
                        exit_on_error=False)

    def _gate_then_open(self, ns: str) -> None:
        from ambient_tui.mesh import enroll

        try:
            problems = enroll.enrolment_gate(self.kube, [ns])
        except Exception as e:  # noqa: BLE001 - unreadable policies: say so, let the person decide
            problems = [f"could not lint the NetworkPolicies of {ns}: {e}"]
        plan = enroll.enroll_plan(self.kube, [ns])
        self.app.call_from_thread(self._open, plan, "force" if problems else "", problems)

    def action_unenroll(self) -> None:
        from ambient_tui.mesh import enroll

        ns = self._need(enrolled=True)
        if ns is not None:
            self._open(enroll.unenroll_plan(self.kube, [ns.name]), confirm=ns.name,
                       warnings=[f"{ns.name}'s pods leave the mesh: plain text, no mTLS, "
                                 "AuthorizationPolicies stop applying"])

    def action_opt_out(self) -> None:
        ns = self._need(enrolled=True)
        if ns is None:
            return
        names = getattr(self.provider, "pod_names", lambda _ns: [])(ns.name)
        if not names:
            self.app.notify(f"no pods in {ns.name}", timeout=3)
            return
        self.app.push_screen(PickPod(ns.name, names), self._opted)

    def _opted(self, pick: tuple[str, str] | None) -> None:
        from ambient_tui.mesh import enroll

        if pick:
            self._open(enroll.opt_out_plan(self.kube, pick[0], [pick[1]]))

    def action_waypoint_apply(self) -> None:
        from ambient_tui.mesh import waypoint

        ns = self._need()
        if ns is not None:
            self._open(waypoint.apply_plan(self.kube, ns.name, enroll_namespace=True))

    def action_waypoint_delete(self) -> None:
        from ambient_tui.mesh import waypoint

        ns = self._need()
        if ns is None:
            return
        name = ns.waypoint if ns.waypoint and ns.waypoint != "none" else waypoint.DEFAULT_NAME
        known = self.state is not None and any(w.namespace == ns.name and w.name == name
                                               for w in self.state.waypoints)
        if not known and not ns.waypoint:
            self.app.notify(f"{ns.name} has no waypoint", timeout=3)
            return
        self._open(waypoint.delete_plan(self.kube, ns.name, name, unlabel=bool(ns.waypoint)),
                   confirm=ns.name, warnings=[f"deletes Gateway {ns.name}/{name}; istiod removes its "
                                              "Deployment and Service"])

    def action_netpol(self) -> None:
        from ambient_tui.netpol.cluster import NetpolCluster
        from screens.netpol import NetpolScreen

        ns = self.selected
        self.app.push_screen(NetpolScreen(NetpolCluster(self.kubeconfig, self.context),
                                          namespace=ns.name if ns else ""))

    def action_verify(self) -> None:
        ns = self.selected
        chosen = [ns.name] if ns is not None and ns.enrolled else None
        self.app.push_screen(VerifyScreen(self.kube, chosen, self.kubeconfig, self.context))


# --- dialogs -------------------------------------------------------------------------------

class MeshPlanDialog(ModalScreen[bool]):
    """The plan (each step's exact call), then it runs on enter, or after the typed word when
    `confirm` is set (unenrol, waypoint removal, a forced enrolment). Output and the result stay
    visible; escape closes. `state`: confirming, running, succeeded or failed (tests read it)."""

    DEFAULT_CSS = """
    MeshPlanDialog { align: center middle; }
    MeshPlanDialog > Vertical { width: 78; height: auto; max-height: 22; border: thick $warning;
                                background: $surface; padding: 0 1; }
    MeshPlanDialog #plan-steps { height: auto; max-height: 8; }
    MeshPlanDialog #plan-warn { height: auto; max-height: 4; }
    MeshPlanDialog #plan-result { height: 1; }
    MeshPlanDialog Log { height: 5; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="mesh.dialog_close"),
                Binding("enter", "run", "Run", id="mesh.dialog_run", show=False)]

    def __init__(self, plan: Plan, kube: Any, journal: Callable[[], Any], *, confirm: str = "",
                 warnings: list[str] | None = None) -> None:
        super().__init__()
        self.plan, self.kube, self._journal = plan, kube, journal
        self.confirm, self.warnings = confirm, warnings or []
        self.state = "confirming"
        self.output: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.plan.title, style="bold"))
            steps = Text()
            for i, s in enumerate(self.plan.steps, 1):
                steps.append(f"{i}. {s.title}\n", style="bold")
                steps.append(f"   {s.command}\n")
            yield Static(steps, id="plan-steps")
            if self.warnings:
                yield Static(Text("\n".join(self.warnings), style="bold red" if self.confirm == "force"
                                  else "yellow"), id="plan-warn")
            if self.confirm:
                yield Static(Text(f"type {self.confirm!r} and press enter to run; escape cancels", style="dim"))
                yield Input(placeholder=self.confirm, id="plan-confirm")
            else:
                yield Static(Text("enter: run · escape: cancel", style="dim"))
            yield Static("", id="plan-result")
            yield Log(max_lines=200, id="plan-output")

    def on_mount(self) -> None:
        if self.confirm:
            self.query_one(Input).focus()

    @on(Input.Submitted, "#plan-confirm")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        if self.state != "confirming":
            return
        if event.value.strip() != self.confirm:
            self.query_one("#plan-result", Static).update(
                Text(f"does not match {self.confirm!r}; nothing was run", style="bold red"))
            return
        event.input.disabled = True
        self._start()

    def action_run(self) -> None:
        if not self.confirm and self.state == "confirming":
            self._start()

    def _start(self) -> None:
        self.state = "running"
        self.query_one("#plan-result", Static).update(Text("running…", style="yellow"))
        self.run_worker(self._run(), exclusive=True, group="mesh-plan")

    async def _run(self) -> None:
        from ambient_tui.mesh.enroll import run_plan_async

        log = self.query_one(Log)

        def on_event(ev: Event) -> None:
            line = ev.line if ev.kind is EventKind.OUTPUT else (
                f"{ev.step_id}: {ev.state}{' - ' + ev.message if ev.message else ''}"
                if ev.kind in (EventKind.FINISHED, EventKind.FAILED) else "")
            if line:
                self.output.append(line)
                log.write_line(line)

        try:
            journal = self._journal()
            try:
                ok = await run_plan_async(self.kube, self.plan, journal, on_event)
            finally:
                journal.close()
        except Exception as e:  # noqa: BLE001 - the journal or the client could not be made
            ok = False
            self.output.append(str(e))
            log.write_line(str(e))
        self.state = "succeeded" if ok else "failed"
        self.query_one("#plan-result", Static).update(
            Text(f"{self.state} · journaled · escape: close", style="bold green" if ok else "bold red"))

    def action_close(self) -> None:
        if self.state == "running":
            self.app.notify("the plan is running; wait for it to finish", timeout=3)
            return
        self.dismiss(self.state == "succeeded")


class PickPod(ModalScreen[tuple[str, str] | None]):
    DEFAULT_CSS = """
    PickPod { align: center middle; }
    PickPod > Vertical { width: 60; height: auto; max-height: 20; border: thick $accent;
                         background: $surface; padding: 0 1; }
    PickPod OptionList { height: auto; max-height: 14; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="mesh.pick_cancel")]

    def __init__(self, namespace: str, pods: list[str]) -> None:
        super().__init__()
        self.namespace, self.pods = namespace, pods

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Opt which pod of {self.namespace} out of the mesh?", style="bold"))
            yield OptionList(*(Option(Text(p), id=p) for p in self.pods), id="pick-pod")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#pick-pod")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss((self.namespace, str(event.option.id)))


class VerifyScreen(ModalScreen[None]):
    """`ambient-tui verify` as a dialog: runs in a thread, says when ztunnel could not be asked."""

    DEFAULT_CSS = """
    VerifyScreen { align: center middle; }
    VerifyScreen > Vertical { width: 90%; height: 80%; border: thick $accent; background: $surface;
                              padding: 0 1; }
    VerifyScreen Log { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="mesh.verify_close")]

    def __init__(self, kube: Any, namespaces: list[str] | None, kubeconfig: str | None,
                 context: str | None, runner: Callable | None = None) -> None:
        super().__init__()
        self.kube, self.namespaces = kube, namespaces
        self.kubeconfig, self.context, self.runner = kubeconfig, context, runner
        self.result = None
        self.lines: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Verify: the API's pods against ztunnel's workloads (HBONE)", style="bold"))
            yield Log(id="verify-log")
            yield Static(Text("escape: close", style="dim"))

    def on_mount(self) -> None:
        self._say("asking ztunnel (istioctl ztunnel-config workloads)…")
        self.run_worker(self._verify, thread=True, group="mesh-verify", exit_on_error=False)

    def _say(self, line: str) -> None:
        self.lines.append(line)
        self.query_one(Log).write_line(line)

    def _verify(self) -> None:
        from ambient_tui.mesh.verify import run_istioctl, verify

        try:
            result = verify(self.kube, self.namespaces, self.kubeconfig, self.context,
                            runner=self.runner or run_istioctl)
        except Exception as e:  # noqa: BLE001
            self.app.call_from_thread(self._say, f"verify could not run: {e}")
            return
        self.result = result
        self.app.call_from_thread(self._show, result)

    def _show(self, r) -> None:
        if not r.ztunnel_asked:
            self._say(f"ztunnel could not be asked: {r.ztunnel_error}")
            self._say("NOT VERIFIED: no pod counts as in the mesh without ztunnel's own view.")
        if not r.namespaces:
            self._say("no enrolled namespaces to verify")
        for n in r.namespaces:
            self._say(f"{n.namespace}: {n.in_mesh}/{n.pods} in the mesh" if r.ztunnel_asked
                      else f"{n.namespace}: {n.pods} pods (not verified)")
            for m in n.missing:
                self._say(f"  - {m.pod}: {m.reason}" + (f"; {m.fix}" if m.fix else ""))
        for s in r.services:
            self._say(f"  service {s.namespace}/{s.name}: waypoint {s.waypoint or 'None'}")
        self._say("verified: every pod is in the mesh" if r.proven else "result: not proven")
