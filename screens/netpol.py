"""NetworkPolicy editor screen: policies per namespace, YAML editor, live ambient lint.

All knowledge lives in ambient_tui.netpol; this screen only shows it. Cluster calls
run in thread workers. The cluster-ops object (or None for offline use) and the
state directory come in through the constructor so tests run without a cluster.
User text is never parsed as markup: it goes into rich Text objects or
notify(markup=False).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static, TextArea, Tree
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from ambient_tui.netpol import assets, templates
from ambient_tui.netpol.cluster import ClusterError, NamespaceInfo, normalise
from ambient_tui.netpol.fixes import Fix, FixError, apply_fix
from ambient_tui.netpol.lint import ERROR, RULES, Context, Finding, Pod, lint
from ambient_tui.netpol.live import Live, pod_of
from ambient_tui.netpol.live import load as load_live
from ambient_tui.netpol.parse import BOUNDS, ParseError, decode, from_object, parse_text
from screens.widgets import CursorOptionList

LINT_DELAY = 0.3  # seconds of quiet typing before the lint runs
DRY_RUN_DELAY = 1.5  # the server round trip waits longer than the local lint


def _text(value: str, style: str = "") -> Text:
    return Text(value, style=style)


# --------------------------------------------------------------------------- dialogs


class ConfirmDialog(ModalScreen[str]):
    """Question with a few buttons; dismisses with the chosen button id."""

    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    /* max-width: at 80x24 a 90-wide box cut the buttons (Cancel) off the right edge */
    ConfirmDialog > Vertical { width: 90; max-width: 100%; max-height: 100%; height: auto;
                               border: thick $accent; background: $surface; padding: 1 2; }
    ConfirmDialog VerticalScroll { height: auto; max-height: 30; }
    ConfirmDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmDialog Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss('cancel')", "Cancel", id="netpol.dialog.cancel")]

    def __init__(self, title: str, body: Any, choices: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._title, self._body, self._choices = title, body, choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(_text(self._title, "bold"))
            with VerticalScroll():
                yield Static(self._body, id="confirm-body")
            with Horizontal():
                for ident, label, variant in self._choices:
                    yield Button(label, id=ident, variant=variant)  # type: ignore[arg-type]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "cancel")


class PathDialog(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    PathDialog { align: center middle; }
    PathDialog > Vertical { width: 80; max-width: 100%; height: auto; border: thick $accent; background: $surface;
                            padding: 1 2; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="netpol.dialog.cancel")]

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self._title, self._default = title, default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(_text(self._title, "bold"))
            yield Input(self._default, id="path")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(Path(value).expanduser() if value else None)


@dataclass
class TemplateChoice:
    name: str
    params: dict[str, Any]


class TemplateDialog(ModalScreen[TemplateChoice | None]):
    """Pick a template and its parameters; namespaces and labels are suggested from the cluster."""

    DEFAULT_CSS = """
    TemplateDialog { align: center middle; }
    TemplateDialog > Vertical { width: 80; max-width: 100%; height: auto; max-height: 100%; border: thick $accent;
                                background: $surface; padding: 1 2; }
    TemplateDialog Input { margin-bottom: 1; }
    TemplateDialog Horizontal { height: auto; align-horizontal: right; }
    TemplateDialog .config { display: none; }
    TemplateDialog.config-server .config { display: block; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="netpol.dialog.cancel")]

    def __init__(self, namespace: str = "", namespaces: list[str] | None = None,
                 labels: list[str] | None = None) -> None:
        super().__init__()
        self._namespace = namespace
        self._namespaces = namespaces or []
        self._labels = labels or []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(_text("New NetworkPolicy from a template", "bold"))
            yield Select([(t.title, t.name) for t in templates.TEMPLATES.values()],
                         value="allow-hbone", allow_blank=False, id="template")
            yield Input(self._namespace, placeholder="namespace (empty: the current one)",
                        id="namespace", suggester=SuggestFromList(self._namespaces))
            yield Input(placeholder="pod selector k=v,k2=v2 (empty: every pod)", id="selector",
                        suggester=SuggestFromList(self._labels))
            yield Input(placeholder="config server namespace", id="to_namespace",
                        classes="config", suggester=SuggestFromList(self._namespaces))
            yield Input(placeholder="config server labels (default app=config-server)",
                        id="to_selector", classes="config", suggester=SuggestFromList(self._labels))
            yield Input(placeholder=f"config server port (default {templates.DEFAULT_CONFIG_PORT})",
                        id="port", classes="config", type="integer")
            with Horizontal():
                yield Button("Create", id="create", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Select.Changed, "#template")
    def _template_changed(self, event: Select.Changed) -> None:
        self.set_class(event.value == "allow-egress-to-config-server", "config-server")

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._create()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self._create()
        else:
            self.dismiss(None)

    def _create(self) -> None:
        value = lambda ident: self.query_one(f"#{ident}", Input).value.strip()  # noqa: E731
        try:
            selector = templates.parse_selector(value("selector")) or None
            to_selector = templates.parse_selector(value("to_selector")) or None
        except ValueError as err:
            self.notify(str(err), severity="error", markup=False)
            return
        port = int(value("port")) if value("port") else None
        params = {"namespace": value("namespace") or None, "selector": selector,
                  "to_namespace": value("to_namespace") or None, "to_selector": to_selector,
                  "port": port}
        self.dismiss(TemplateChoice(str(self.query_one("#template", Select).value), params))


class OpenDialog(ModalScreen[Path | None]):
    """The guide's examples, autosaved drafts, or any file path."""

    DEFAULT_CSS = """
    OpenDialog { align: center middle; }
    OpenDialog > Vertical { width: 90; max-width: 100%; height: auto; max-height: 100%; border: thick $accent;
                            background: $surface; padding: 1 2; }
    OpenDialog OptionList { height: auto; max-height: 16; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="netpol.dialog.cancel")]

    def __init__(self, drafts_base: Path | None) -> None:
        super().__init__()
        self._drafts_base = drafts_base
        self._paths: list[Path] = []

    def compose(self) -> ComposeResult:
        options: list[Option] = []
        for ex in assets.guide_examples():
            options.append(Option(_text(f"example  {ex.title}"), id=str(len(self._paths))))
            self._paths.append(ex.path)
        for draft in assets.list_drafts(self._drafts_base)[:20]:
            options.append(Option(_text(f"draft    {draft.name}"), id=str(len(self._paths))))
            self._paths.append(draft)
        with Vertical():
            yield Label(_text("Open: the guide's section 8 examples, drafts, or a file", "bold"))
            yield OptionList(*options, id="choices", markup=False)
            yield Input(placeholder="or type a file path and press Enter", id="path")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._paths[int(event.option.id or 0)])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(Path(value).expanduser() if value else None)


# --------------------------------------------------------------------------- the screen


class NetpolScreen(Screen):
    """Edit NetworkPolicies with ambient-aware findings while typing."""

    DEFAULT_CSS = """
    NetpolScreen #body { height: 1fr; }
    NetpolScreen #side { width: 34; border-right: solid $primary-darken-2; }
    NetpolScreen #policies { height: 1fr; }
    NetpolScreen #status { height: 1; background: $boost; padding: 0 1; }
    NetpolScreen #editor { height: 1fr; }
    NetpolScreen #editor .text-area--gutter { color: $foreground 60%; }  /* 40%: 2.8:1 in 256 colours */
    NetpolScreen #findings { height: 9; border-top: solid $primary-darken-2; }
    NetpolScreen #detail { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("ctrl+n", "new_template", "New", id="netpol.new"),
        Binding("ctrl+o", "open", "Open", id="netpol.open"),
        Binding("ctrl+s", "save", "Save", id="netpol.save"),
        Binding("ctrl+f", "quick_fix", "Quick fix", id="netpol.fix"),
        Binding("ctrl+t", "toggle_enrolled", "Enrolled?", id="netpol.enrolled"),
        Binding("f5", "refresh", "Refresh", id="netpol.refresh"),
        Binding("f8", "diff", "Diff", id="netpol.diff"),
        Binding("f9", "apply_cluster", "Apply", id="netpol.apply"),
        Binding("escape", "leave", "Back", id="netpol.leave"),
    ]

    def __init__(self, cluster: Any = None, *, state_dir: Path | None = None,
                 path: Path | None = None, namespace: str = "", cursor_blink: bool = True,
                 name: str | None = None) -> None:
        """cluster: a NetpolCluster-like object, or None to work on files only."""
        super().__init__(name=name)
        self.cluster = cluster
        self.state_dir = state_dir
        self.path: Path | None = path
        self.buffer_key = str(path) if path else "untitled"
        self.saved_text = ""
        self.namespace = namespace  # where documents without metadata.namespace go
        self.assume_enrolled = True
        self.findings: list[Finding] = []
        self.problem: ParseError | None = None
        self.server_notes: list[str] = []
        self._cursor_blink = cursor_blink
        self._lint_timer: Timer | None = None
        self._dry_timer: Timer | None = None
        self._namespaces: list[NamespaceInfo] = []
        self._cluster_policies: dict[str, list[dict[str, Any]]] = {}
        self._pods: dict[str, list[Pod]] = {}
        self._capture: tuple[frozenset[str], str, str] | None = None  # excluded, cni, reason
        self._load_problem: tuple[ParseError, str] | None = None  # undecodable file, its text
        self._cluster_problem = ""  # why the cluster could not be read, for the status line
        self._cluster_docs: list | None = None  # the live policies as PolicyDocs, for the union
        self._untitled = 0

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="side"):
                tree: Tree[Any] = Tree(_text("NetworkPolicies"), id="policies")
                tree.show_root = False
                yield tree
            with Vertical(id="main"):
                yield Static(id="status")
                # the app theme's colours, not code_editor's monokai: its comments (the
                # examples' explanations) are 2.2:1 on the cursor line and vanish there in
                # 16 colours (as in every built-in TextArea theme but "css")
                editor = TextArea.code_editor("", language="yaml", id="editor", theme="css")
                editor.cursor_blink = self._cursor_blink
                yield editor
                yield CursorOptionList(id="findings", markup=False)
                yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        if self.path is not None:
            self._load_path(self.path)
        self._rebuild_tree()
        self._update_status()
        if self.cluster is not None:
            self._load_namespaces()
        self.query_one("#editor", TextArea).focus()

    @property
    def editor(self) -> TextArea:
        return self.query_one("#editor", TextArea)

    @property
    def dirty(self) -> bool:
        return self.editor.text != self.saved_text

    def _update_status(self) -> None:
        where = str(self.path) if self.path else self.buffer_key
        mark = " [modified]" if self.dirty else ""
        if self.cluster is not None and self._namespaces:
            mode = "enrolled: from cluster labels"
        else:
            mode = "namespaces taken as enrolled" if self.assume_enrolled else "not enrolled"
        if self.cluster is None:
            conn = "offline"
        elif self._cluster_problem:
            conn = f"not connected: {self._cluster_problem}"
        else:
            conn = "connected" if self._namespaces else "connecting"
        self.query_one("#status", Static).update(_text(f"{where}{mark}  |  {mode}  |  {conn}"))

    # -- buffer -----------------------------------------------------------------------------

    def set_buffer(self, text: str, *, path: Path | None, key: str, saved: bool) -> None:
        self.path = path
        self.buffer_key = key
        self.saved_text = text if saved else ""
        self.editor.load_text(text)
        self._relint()

    def _load_path(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except OSError as err:
            self.notify(f"Cannot open {path}: {err.strerror or err}", severity="error",
                        markup=False)
            return
        try:
            text = decode(raw, str(path))
        except ParseError as err:
            # Open it anyway, bad bytes shown as U+FFFD: the person sees where, and the
            # error stays in the findings until the text is changed.
            text = raw[:BOUNDS.input_bytes].decode("utf-8", "replace")
            self._load_problem = (err, text)
        draft = path.parent == assets.drafts_dir(self.state_dir)
        example = path.parent == assets.GUIDE_DIR
        if draft or example:
            # Examples are read-only assets and drafts are scratch: saving asks for a path.
            self.set_buffer(text, path=None, key=f"{'draft' if draft else 'example'}:{path.name}",
                            saved=example)
        else:
            self.set_buffer(text, path=path, key=str(path), saved=True)

    # -- lint -------------------------------------------------------------------------------

    @on(TextArea.Changed, "#editor")
    def _changed(self) -> None:
        if self._lint_timer is not None:
            self._lint_timer.stop()
        self._lint_timer = self.set_timer(LINT_DELAY, self._relint)
        self._update_status()

    def _enrolled_arg(self) -> Any:
        if not self.assume_enrolled:
            return False
        if self.cluster is not None and self._namespaces:
            return {n.name for n in self._namespaces if n.enrolled}
        return True

    def _lint_context(self) -> Context:
        """Offline: chart defaults. Connected: live enrolment, pods, capture and CNI."""
        ctx = Context(enrolled=self._enrolled_arg(), pods=self._pods or None)
        if self.cluster is not None and self._namespaces:
            ctx.namespaces = {n.name: n.labels for n in self._namespaces}
        if self._capture is not None:
            ctx.excluded, ctx.cni, ctx.cni_reason = self._capture
        return ctx

    def _relint(self) -> None:
        text = self.editor.text
        self.problem = None
        self.findings = []
        try:
            docs = parse_text(text, str(self.path) if self.path else self.buffer_key)
        except ParseError as err:
            self.problem = err
            docs = []
        if self._load_problem is not None:
            if self._load_problem[1] == text:
                self.problem = self._load_problem[0]
            else:
                self._load_problem = None
        if docs:
            if self._cluster_docs is None:  # built once per cluster read, not per keystroke
                self._cluster_docs = [from_object(p) for ns in self._cluster_policies.values()
                                      for p in ns]
            context = self._cluster_docs
            try:
                self.findings = lint(docs, cluster_policies=context, namespace=self.namespace,
                                     context=self._lint_context())
            except Exception as err:  # never let a buffer end the app; say what broke
                self.problem = ParseError(f"the lint failed on this buffer: {err!r}")
        self._render_findings()
        self._rebuild_buffer_nodes(docs)
        self._autosave(text)
        self._update_status()
        if self.cluster is not None and docs and self.problem is None:
            if self._dry_timer is not None:
                self._dry_timer.stop()
            payload = [d.data for d in docs]
            self._dry_timer = self.set_timer(DRY_RUN_DELAY, lambda: self._dry_run(payload))

    def _render_findings(self) -> None:
        options: list[Option] = []
        if self.problem is not None:
            p = self.problem
            where = f"line {p.line}, col {p.column}" if p.line else "input"
            options.append(Option(Text.assemble(("E ", "bold red"), f"{where}: {p.message}"),
                                  id="problem"))
        for i, f in enumerate(self.findings):
            style = "bold red" if f.severity == ERROR else "bold yellow"
            tag = "E " if f.severity == ERROR else "W "
            fix = "  (fix)" if f.fix else ""
            # One line per finding; the full explanation is in the detail pane below.
            summary = f.message if f.rule == "schema" else RULES[f.rule][1]
            options.append(Option(Text.assemble((tag, style), f"{f.line:>4}  {f.rule}  ",
                                                (f.policy, "bold"), f"  {summary}",
                                                (fix, "cyan")), id=f"f{i}"))
        for j, note in enumerate(self.server_notes):
            options.append(Option(Text.assemble(("S ", "bold magenta"), note), id=f"s{j}"))
        if not options:
            options.append(Option(_text("no findings", "green"), id="none"))
        findings = self.query_one("#findings", OptionList)
        findings.set_options(options)
        if self.findings:
            findings.highlighted = 1 if self.problem is not None else 0
        self._show_detail()

    def _selected_finding(self) -> Finding | None:
        ol = self.query_one("#findings", OptionList)
        opt = ol.highlighted_option
        if opt is not None and opt.id and opt.id.startswith("f"):
            return self.findings[int(opt.id[1:])]
        return None

    @on(OptionList.OptionHighlighted, "#findings")
    def _show_detail(self) -> None:
        f = self._selected_finding()
        detail = self.query_one("#detail", Static)
        if f is None:
            detail.update("")
            return
        fix = f"Quick fix (ctrl+f): {f.fix.title}" if f.fix else "No automatic fix."
        detail.update(Text.assemble((f"{f.rule} ({f.severity}) ", "bold"), f.message, "\n", fix))

    @on(OptionList.OptionSelected, "#findings")
    def _goto(self, event: OptionList.OptionSelected) -> None:
        line = None
        if event.option.id == "problem" and self.problem is not None:
            line = self.problem.line
        elif event.option.id and event.option.id.startswith("f"):
            line = self.findings[int(event.option.id[1:])].line
        if line:
            self.editor.move_cursor((line - 1, 0))
            self.editor.focus()

    def _autosave(self, text: str) -> None:
        if not self.dirty:
            return
        try:
            assets.save_draft(self.buffer_key, text, self.state_dir)
        except OSError as err:
            self.notify(f"Draft not saved: {err}", severity="warning", markup=False)

    # -- actions ----------------------------------------------------------------------------

    def action_quick_fix(self) -> None:
        self._relint()  # fixes are located against the text as it is now
        finding = self._selected_finding() or next((f for f in self.findings if f.fix), None)
        if finding is None or finding.fix is None:
            self.notify("No quick fix for this finding.", severity="warning")
            return
        try:
            new_text = apply_fix(self.editor.text, finding.fix)
        except FixError as err:
            self.notify(str(err), severity="error", markup=False)
            return
        # replace() keeps the edit in the undo history, unlike load_text().
        self.editor.replace(new_text, (0, 0), self.editor.document.end)
        self._relint()
        self.notify(f"Applied: {finding.fix.title}", markup=False)

    def action_toggle_enrolled(self) -> None:
        self.assume_enrolled = not self.assume_enrolled
        self._relint()

    def action_new_template(self) -> None:
        namespaces = [n.name for n in self._namespaces]
        labels = sorted({f"{k}={v}" for pods in self._pods.values() for p in pods
                         for k, v in p.labels.items()})
        self.app.push_screen(TemplateDialog(self.namespace, namespaces, labels), self._new_from)

    def _new_from(self, choice: TemplateChoice | None) -> None:
        if choice is None:
            return
        text = templates.render(choice.name, **choice.params)
        if self.dirty and self.editor.text.strip():
            # Never drop unsaved edits: the template joins the buffer as another document.
            self.editor.replace(apply_fix(self.editor.text, _append(text)), (0, 0),
                                self.editor.document.end)
            self._relint()
        else:
            self._untitled += 1
            self.set_buffer(text, path=None, key=f"untitled-{choice.name}-{self._untitled}",
                            saved=False)
        self.editor.focus()

    def action_open(self) -> None:
        def opened(path: Path | None) -> None:
            if path is None:
                return
            self._confirm_discard(lambda: self._load_path(path))

        self.app.push_screen(OpenDialog(self.state_dir), opened)

    def action_save(self) -> None:
        if self.path is None:
            default = str(Path.cwd() / f"{self._suggest_name()}.yaml")
            self.app.push_screen(PathDialog("Save as", default),
                                 lambda p: self._save_to(p) if p else None)
        else:
            self._save_to(self.path)

    def _suggest_name(self) -> str:
        try:
            docs = parse_text(self.editor.text)
        except ParseError:
            docs = []
        return docs[0].name if docs else "networkpolicy"

    def _save_to(self, path: Path, then: Callable[[], None] | None = None) -> None:
        text = self.editor.text
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            # The text stays in the editor and in the draft: nothing is lost.
            self.notify(f"Not saved: {err}", severity="error", markup=False)
            return
        assets.remove_draft(self.buffer_key, self.state_dir)
        self.path, self.buffer_key, self.saved_text = path, str(path), text
        self._update_status()
        self.notify(f"Saved {path}", markup=False)
        if then:
            then()

    def _confirm_discard(self, proceed: Callable[[], None]) -> None:
        if not self.dirty:
            proceed()
            return

        def answered(choice: str | None) -> None:
            if choice == "save":
                if self.path is None:
                    self.app.push_screen(
                        PathDialog("Save as", str(Path.cwd() / f"{self._suggest_name()}.yaml")),
                        lambda p: self._save_to(p, proceed) if p else None)
                else:
                    self._save_to(self.path, proceed)
            elif choice == "discard":
                proceed()

        draft = assets.draft_path(self.buffer_key, self.state_dir)
        body = _text(f"The buffer has unsaved changes. A draft is kept at {draft}.")
        self.app.push_screen(ConfirmDialog("Unsaved changes", body, [
            ("save", "Save", "primary"), ("discard", "Discard", "error"),
            ("cancel", "Cancel", "default")]), answered)

    def action_leave(self) -> None:
        if self.app.focused is not None and self.app.focused.id == "editor" and self.dirty:
            # First escape leaves the editor (as in most editors); the second asks to leave.
            self.query_one("#findings", OptionList).focus()
            return
        self._confirm_discard(self.dismiss)

    # -- tree -------------------------------------------------------------------------------

    def _rebuild_tree(self, docs: list | None = None) -> None:
        tree: Tree[Any] = self.query_one("#policies", Tree)
        tree.clear()
        self._buffer_node = tree.root.add(_text("This buffer", "bold"), expand=True)
        self._rebuild_buffer_nodes(docs or [])
        if self.cluster is not None:
            cl = tree.root.add(_text("Cluster", "bold"), expand=True)
            for info in self._namespaces:
                node = cl.add(self._ns_label(info.name, info.enrolled), data=("ns", info.name))
                for pol in self._cluster_policies.get(info.name, []):
                    name = (pol.get("metadata") or {}).get("name", "?")
                    node.add_leaf(_text(name), data=("cluster", info.name, name))
        ex = tree.root.add(_text("Guide examples (section 8)", "bold"))
        for example in assets.guide_examples():
            ex.add_leaf(_text(example.title), data=("file", example.path))

    def _rebuild_buffer_nodes(self, docs: list) -> None:
        # Only this branch changes while typing; the cluster branch keeps its state.
        node = getattr(self, "_buffer_node", None)
        if node is None:
            return
        node.remove_children()
        enrolled = {n.name for n in self._namespaces if n.enrolled}
        by_ns: dict[str, list] = {}
        for d in docs:
            by_ns.setdefault(d.namespace or self.namespace or "(no namespace)", []).append(d)
        for ns, items in sorted(by_ns.items()):
            child = node.add(self._ns_label(ns, ns in enrolled or (
                not self._namespaces and self.assume_enrolled)), expand=True)
            for d in items:
                child.add_leaf(_text(d.name), data=("line", d.line))

    @staticmethod
    def _ns_label(ns: str, enrolled: bool) -> Text:
        if enrolled:
            return Text.assemble(("◆ ", "green"), ns, (" ambient", "green"))
        return Text.assemble(("◇ ", "dim"), ns)

    @on(Tree.NodeSelected, "#policies")
    def _tree_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if not data:
            return
        if data[0] == "line":
            self.editor.move_cursor((data[1] - 1, 0))
        elif data[0] == "file":
            self._confirm_discard(lambda: self._load_path(data[1]))
        elif data[0] == "ns":
            self.namespace = data[1]
            if data[1] not in self._cluster_policies:
                self._load_namespace(data[1])
        elif data[0] == "cluster":
            _, ns, name = data
            pol = next((p for p in self._cluster_policies.get(ns, [])
                        if (p.get("metadata") or {}).get("name") == name), None)
            if pol is not None:
                text = templates.dump(normalise(pol))
                self._confirm_discard(lambda: self.set_buffer(
                    text, path=None, key=f"cluster:{ns}/{name}", saved=True))

    # -- cluster workers --------------------------------------------------------------------

    def _thread(self, fn: Callable[[], Any], done: Callable[[Any], None], group: str) -> None:
        def run() -> None:
            try:
                result = fn()
            except ClusterError as err:
                self.app.call_from_thread(self._cluster_error, err)
                return
            self.app.call_from_thread(done, result)

        self.run_worker(run, thread=True, group=group, exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"Background task failed: {event.worker.error}", severity="error",
                        markup=False)

    def _cluster_error(self, err: ClusterError) -> None:
        self.notify(err.message, severity="error", markup=False, timeout=10)
        if not self._namespaces:
            self._cluster_problem = err.message.splitlines()[0][:80]
            self._update_status()

    def _load_namespaces(self) -> None:
        """Everything the lint uses, read as `netpol lint --cluster` reads it."""
        wanted = [self.namespace] if self.namespace else None

        def fetch() -> Live:
            try:
                return load_live(self.cluster)
            except ClusterError as err:
                if err.status != 403 or not wanted:
                    raise
                return load_live(self.cluster, wanted)  # a user who may not list namespaces

        def done(live: Live) -> None:
            self._cluster_problem = ""
            self._namespaces = [NamespaceInfo(n, n in live.context().enrolled, labels)
                                for n, labels in sorted(live.namespaces.items())]
            self._cluster_policies = {}
            self._cluster_docs = None
            for doc in live.policies:
                self._cluster_policies.setdefault(doc.namespace or "", []).append(doc.data)
            self._pods = live.pods
            self._capture = (live.excluded, live.cni, live.cni_reason)
            self._rebuild_tree(self._docs_or_empty())
            self._relint()
            for note in live.notes:
                self.notify(note, severity="warning", markup=False)

        self._thread(fetch, done, "namespaces")

    def _load_namespace(self, ns: str) -> None:
        def fetch() -> tuple[list, list]:
            return (self.cluster.list_policies(ns),
                    [pod_of(p) for p in self.cluster.list_pod_objects(ns)])

        def done(result: tuple[list, list]) -> None:
            self._cluster_policies[ns], self._pods[ns] = result
            self._cluster_docs = None
            self._rebuild_tree(self._docs_or_empty())
            self._relint()

        self._thread(fetch, done, f"ns-{ns}")

    def _docs_or_empty(self) -> list:
        try:
            return parse_text(self.editor.text)
        except ParseError:
            return []

    def action_refresh(self) -> None:
        if self.cluster is None:
            self.notify("Offline: no cluster to refresh from.")
            return
        self._cluster_policies.clear()
        self._cluster_docs = None
        self._pods.clear()
        self._load_namespaces()

    def _dry_run(self, payload: list[dict[str, Any]]) -> None:
        def fetch() -> list[str]:
            notes = []
            for doc in payload:
                name = (doc.get("metadata") or {}).get("name", "?")
                try:
                    self.cluster.dry_run(doc, namespace=self.namespace or None)
                    notes.append(f"{name}: server-side dry-run accepted")
                except ClusterError as err:
                    notes.append(f"{name}: {err.message}")
            return notes

        def done(notes: list[str]) -> None:
            self.server_notes = notes
            self._render_findings()

        self._thread(fetch, done, "dry-run")

    def _docs_for_cluster(self) -> list[dict[str, Any]] | None:
        if self.cluster is None:
            self.notify("Offline: start with a cluster connection to diff or apply.",
                        severity="warning")
            return None
        try:
            docs = parse_text(self.editor.text)
        except ParseError as err:
            self.notify(str(err), severity="error", markup=False)
            return None
        if not docs:
            self.notify("Nothing to send: the buffer has no NetworkPolicy.", severity="warning")
            return None
        return [d.data for d in docs]

    def action_diff(self) -> None:
        docs = self._docs_for_cluster()
        if docs is None:
            return
        self._thread(lambda: self._diffs(docs), lambda diff: self.app.push_screen(
            ConfirmDialog("Diff against the cluster", _diff_view(diff),
                          [("close", "Close", "primary")])), "diff")

    def _diffs(self, docs: list[dict[str, Any]]) -> str:
        parts = [self.cluster.diff(d, namespace=self.namespace or None) for d in docs]
        return "".join(parts)

    def action_apply_cluster(self) -> None:
        if getattr(self.app, "read_only", False):
            self.notify("Read-only session: apply is off (diff with f8 still works).",
                        severity="warning")
            return
        docs = self._docs_for_cluster()
        if docs is None:
            return
        errors = [f for f in self.findings if f.severity == ERROR]

        def show(diff: str) -> None:
            body: Any = _diff_view(diff)
            if errors:
                body = Text.assemble((f"{len(errors)} error finding(s) remain.\n\n", "bold red"),
                                     diff or "(no changes)")
            self.app.push_screen(ConfirmDialog(
                f"Server-side apply {len(docs)} policy(ies) as field manager ambient-tui?", body,
                [("apply", "Apply", "warning"), ("cancel", "Cancel", "default")]),
                lambda choice: self._apply(docs) if choice == "apply" else None)

        self._thread(lambda: self._diffs(docs), show, "diff")

    def _apply(self, docs: list[dict[str, Any]]) -> None:
        def run() -> list[str]:
            with self.cluster.locked("netpol apply"):  # a second operator's run is refused
                return [str((self.cluster.apply(d, namespace=self.namespace or None).get("metadata")
                             or {}).get("name")) for d in docs]

        def done(names: list[str]) -> None:
            self.notify(f"Applied: {', '.join(names)}", markup=False)
            self.action_refresh()

        self._thread(run, done, "apply")


def _append(text: str) -> Fix:
    return Fix(title="append template", kind="append", text=text)


def _diff_view(diff: str) -> Any:
    if not diff:
        return _text("No changes: the cluster already has this.")
    return Syntax(diff, "diff", word_wrap=True)
