"""The Textual app: a header (context, Istio version, dry-run), the main screen, a footer.

`AmbientApp` takes a ready Plan so tests can drive plans of real local commands; the CLI
builds the install plan and calls `run_app`. Cluster access for the panes is optional:
`kubeconfig`/`kube_context` for the watches, `check_context_factory` (a callable returning a
CheckContext) for preflight. Tests feed `pods_provider`, `workloads_provider`,
`helm_provider` and a frozen `now` instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from ambient_tui.engine.plan import Plan
from screens.keymap import KeymapError, keymap_path as default_keymap_path, load_keymap
from screens import link, partial_updates
from screens.main import COMMANDS, MainScreen

partial_updates.install()  # partial frames send the changed cells only, not whole rows

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# Benchmarks set this so the process exits right after the first complete frame.
BENCH_EXIT_ENV = "AMBIENT_TUI_EXIT_AFTER_FIRST_FRAME"


class AmbientApp(App):
    CSS_PATH = str(ASSETS / "app.tcss")
    TITLE = "ambient-tui"

    def __init__(self, plan: Plan, runner: Any = None, *, context: str = "",
                 istio_version: str = "", keymap_path: Path | None = None,
                 namespace: str = "default", kubeconfig: str | None = None,
                 kube_context: str | None = None,
                 check_context_factory: Callable[[], Any] | None = None,
                 preflight_checks: list | None = None, pods_provider: Any = None,
                 workloads_provider: Any = None, helm_provider: Any = None,
                 now: Callable[[], float] = time.time, slow_link: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.link = link.profile(slow_link)  # --slow-link: screens/link.py
        self.animation_level = self.link.animation_level
        self.plan = plan
        self.kubeconfig, self.kube_context = kubeconfig, kube_context
        # Called in a thread when the main screen mounts; None: preflight is not run.
        self.check_context_factory = check_context_factory
        self.preflight_checks = preflight_checks  # None: every check (checks.core.ALL)
        self.pods_provider, self.workloads_provider = pods_provider, workloads_provider
        self.helm_provider = helm_provider
        self.now = now
        self.context = context or plan.meta.get("context", "")
        if runner is None:
            from ambient_tui.engine.journal import Journal
            from ambient_tui.engine.runner import Runner

            # The journal file opens on the first write; an unwritable state directory
            # becomes a visible worker error when a run starts, not a crash here.
            runner = Runner(plan, journal=Journal.for_cluster(self.context or "default"))
        self.runner = runner
        self.istio_version = istio_version or plan.meta.get("istio_version", "")
        self.keymap_path = keymap_path
        self.namespace = namespace
        self.refresh_title()

    def refresh_title(self) -> None:
        parts = [f"context: {self.context or 'none'}"]
        if self.istio_version:
            parts.append(f"Istio {self.istio_version}")
        if getattr(self.runner, "dry_run", False):
            parts.append("DRY-RUN")
        self.sub_title = " · ".join(parts)

    def get_default_screen(self) -> Screen:
        return MainScreen(self.plan, self.runner, namespace=self.namespace)

    def on_mount(self) -> None:
        self.load_user_keymap()
        if os.environ.get(BENCH_EXIT_ENV):
            self.call_after_refresh(self.exit)

    def load_user_keymap(self) -> None:
        path = self.keymap_path or default_keymap_path()
        try:
            keymap = load_keymap(path)
        except KeymapError as exc:
            self.notify(f"{exc}; using the default keys.", title="Keymap ignored",
                        severity="error", markup=False, timeout=10)
            return
        if keymap:
            self.set_keymap(keymap)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            keys = {binding_id: shown for shown, _d, binding_id in screen.help_rows()}
            for binding_id, action, description in COMMANDS:
                yield SystemCommand(description, f"key {keys[binding_id]}  ·  {binding_id}",
                                    getattr(screen, f"command_{action}", None)
                                    or getattr(screen, f"action_{action}"))


def run_app(plan: Plan, *, mouse: bool = True, **kwargs: Any) -> Any:
    """Start the TUI on `plan` (used by cli.py); returns the app's return value.
    mouse=False leaves the terminal's own selection (copy/paste over SSH) alone."""
    from screens.gc_pauses import freeze_long_lived

    app = AmbientApp(plan, **kwargs)
    freeze_long_lived()  # everything imported so far lives as long as the app
    return app.run(mouse=mouse)


class PodsApp(App):
    """`ambient-tui pods`: the pod pane on its own, full screen."""

    CSS_PATH = str(ASSETS / "app.tcss")
    TITLE = "ambient-tui pods"

    def __init__(self, provider: Any, slow_link: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.provider = provider
        self.link = link.profile(slow_link)
        self.animation_level = self.link.animation_level

    def get_default_screen(self) -> Screen:
        from screens.pods import PodsScreen

        return PodsScreen(self.provider, slow_link=self.link.slow)

    async def action_pop_screen(self) -> None:
        # PodsScreen's `q` pops it; with nothing under it, that means quit.
        if len(self.screen_stack) <= 1:
            self.exit()
        else:
            self.pop_screen()


def run_pods_app(provider: Any, *, title: str = "ambient-tui pods", mouse: bool = True,
                 slow_link: bool = False) -> Any:
    from screens.gc_pauses import freeze_long_lived

    app = PodsApp(provider, slow_link=slow_link)
    app.title = title
    freeze_long_lived()  # everything imported so far lives as long as the app
    return app.run(mouse=mouse)
