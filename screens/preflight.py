"""Preflight pane: each check as it finishes (status, title, detail, fix) and a summary line.

The main screen runs the checks (read-only) in a worker and calls `start()` then
`add_result()` per finished check. A fix that can run as engine steps (today: the VPC CNI
enforcing mode) is marked `[f]`; the main screen turns it into a first phase of the plan.
Other fixes are shown as the command to run. Text is never parsed as markup.
"""

from __future__ import annotations

from typing import Iterable

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ambient_tui.checks.model import FAIL, PASS, SKIP, WARN, Check
from screens import link
from screens.widgets import CursorOptionList

RUNNING = "running"
# glyph, label style; named ANSI colours, and each status has its own glyph.
RESULT_BATCH = 0.1  # seconds: preflight results arriving together are drawn in one frame
LOOK = {PASS: ("✔", "green"), WARN: ("!", "bold yellow"), FAIL: ("✘", "bold red"),
        SKIP: ("»", "dim"), RUNNING: ("…", "yellow")}
FIX_PHASE_ID = "preflight-fixes"  # plans.install_session.FIX_PHASE_ID (not imported at start-up)


def executable_fix(check: Check, results: dict[str, Check]) -> dict | None:
    """Arguments for `enforcing_mode_fix_steps` when this check's fix can run as steps: the
    engine's rule (checks/vpc_cni.fix_target), the same one `install --fix` follows."""
    from ambient_tui.checks.vpc_cni import fix_target

    return fix_target(check, results)[0]


def check_prompt(check: Check, fixable: bool) -> Group:
    glyph, style = LOOK.get(check.status, ("?", ""))
    head = Text()
    head.append(f" {glyph} {check.status:<4} ", style=style)
    head.append(check.title, style="bold")
    body = Text()
    if check.detail:
        body.append(check.detail, style="dim" if check.status in (PASS, SKIP) else "")
    if check.fix and check.status in (FAIL, WARN):
        body.append("\n" if check.detail else "")
        if fixable:
            body.append("fix [f]: add it to the plan as steps; ", style="bold cyan")
        else:
            body.append("fix: ", style="bold cyan")
        body.append(check.fix, style="cyan")
    # Wrapped lines keep the indent under the title.
    return Group(head, Padding(body, (0, 0, 0, 3))) if body else Group(head)


def running_prompt(title: str) -> Text:  # one line: no Group needed
    glyph, style = LOOK[RUNNING]
    text = Text()
    text.append(f" {glyph} {RUNNING} ", style=style)
    text.append(title, style="bold")
    return text


def _plain(prompt) -> str:
    if isinstance(prompt, Group):
        return "\n".join(_plain(r) for r in prompt.renderables)
    if isinstance(prompt, Padding):
        return _plain(prompt.renderable)
    return prompt.plain if isinstance(prompt, Text) else str(prompt)


class PreflightPane(Widget):
    DEFAULT_CSS = """
    PreflightPane { height: 1fr; layout: vertical; }
    PreflightPane #preflight-summary { height: 1; padding: 0 1; background: $panel; }
    PreflightPane #preflight-list { height: 1fr; border: none; padding: 0; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.order: list[str] = []
        self.titles: dict[str, str] = {}
        self.results: dict[str, Check] = {}
        self.message = "preflight has not run"
        self._rebuild_timer = None
        self._summary_text: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._summary(), id="preflight-summary")
        yield CursorOptionList(id="preflight-list")  # red on the cursor is unreadable

    # -- fed by the main screen --
    def start(self, checks: Iterable[tuple[str, str]]) -> None:
        """The checks about to run, as (id, title), shown as running until they finish."""
        checks = list(checks)
        self.order = [cid for cid, _ in checks]
        self.titles = dict(checks)
        self.results.clear()
        self.message = ""
        self._rebuild()

    def add_result(self, check: Check) -> None:
        if check.id not in self.order:
            self.order.append(check.id)
        self.results[check.id] = check
        # Results come in bursts (11 checks in ~0.3 s); each rebuild redraws the whole list,
        # so a burst is drawn once, RESULT_BATCH s after its first result (--slow-link: 0.5 s).
        if self._rebuild_timer is None and self.is_mounted:
            delay = link.SLOW.output_flush if link.of(self).slow else RESULT_BATCH
            self._rebuild_timer = self.set_timer(delay, self._rebuild)
        elif not self.is_mounted:
            self._rebuild()

    def set_message(self, message: str, *, clear: bool = False) -> None:
        """A line instead of results (no cluster given, or the checks could not start)."""
        self.message = message
        if clear:  # nothing is running any more: drop the rows still waiting
            self.order = [cid for cid in self.order if cid in self.results]
            self._rebuild()
        self._refresh_summary()

    # -- reading --
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (PASS, WARN, FAIL, SKIP, RUNNING)}
        for cid in self.order:
            c = self.results.get(cid)
            out[c.status if c else RUNNING] += 1
        return out

    def fixable(self, check: Check) -> dict | None:
        return executable_fix(check, self.results)

    @property
    def selected_check(self) -> Check | None:
        option = self.query_one(OptionList).highlighted_option
        return self.results.get(option.id) if option is not None and option.id else None

    def lines(self) -> list[str]:
        """Each check's text as one plain string (tests)."""
        ol = self.query_one(OptionList)
        return [_plain(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]

    # -- drawing --
    def _summary(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Checks ", style="bold")
        if self.message and not self.order:
            text.append(self.message, style="dim")
            return text
        n = self.counts()
        for status in (PASS, WARN, FAIL, SKIP, RUNNING):
            glyph, style = LOOK[status]
            text.append(f"{n[status]} {status}", style=style if n[status] else "dim")
            if status != RUNNING:
                text.append(" ")
        if self.message:
            text.append(f"  {self.message}", style="red")
        return text

    def _refresh_summary(self) -> None:
        if self.is_mounted:
            text = self._summary()
            if text != self._summary_text:  # unchanged: nothing to send
                self._summary_text = text
                self.query_one("#preflight-summary", Static).update(text, layout=False)

    def _rebuild(self) -> None:
        if self._rebuild_timer is not None:
            self._rebuild_timer.stop()
            self._rebuild_timer = None
        found = self.query(OptionList)
        if not self.is_mounted or not found or not found.first().is_mounted:
            return  # on_mount draws what was fed before
        ol = found.first()
        keep = ol.highlighted_option.id if ol.highlighted_option is not None else None
        options = []
        for cid in self.order:
            c = self.results.get(cid)
            prompt = check_prompt(c, self.fixable(c) is not None) if c else running_prompt(self.titles.get(cid, cid))
            options.append(Option(prompt, id=cid))
        with self.app.batch_update():
            ol.clear_options()
            ol.add_options(options)
            if keep is not None and keep in self.order:
                ol.highlighted = ol.get_option_index(keep)
        self._refresh_summary()

    def on_mount(self) -> None:
        self.call_after_refresh(self._rebuild)
