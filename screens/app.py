"""The Textual app: a header (context, Istio version, dry-run), the main screen, a footer.

`AmbientApp` takes a ready Plan so tests can drive plans of real local commands; the CLI
builds the install plan and calls `run_app`. Cluster access for the panes is optional:
`kubeconfig`/`kube_context` for the watches, `check_context_factory` (a callable returning a
CheckContext) for preflight. Tests feed `pods_provider`, `workloads_provider`,
`helm_provider` and a frozen `now` instead. `lock_client` (a callable returning a KubeClient)
turns on the cluster lock: runs hold it, and the header names another run that holds it.

SIGHUP (the SSH session dropped), SIGTERM and SIGINT do what the headless install does: the
running step's process groups are ended, the step is journaled as interrupted, the lock is
released, then the app exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from ambient_tui.engine.plan import Plan
from screens.keymap import KeymapError, keymap_path as default_keymap_path, load_keymap
from screens import link, partial_updates
from screens.main import COMMANDS, MUTATING, MainScreen

partial_updates.install()  # partial frames send the changed cells only, not whole rows

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# Benchmarks set this so the process exits right after the first complete frame.
BENCH_EXIT_ENV = "AMBIENT_TUI_EXIT_AFTER_FIRST_FRAME"
LOCK_POLL = 5.0        # seconds between reads of the lock holder for the header
SIGNAL_GRACE = 15.0    # seconds a signalled app waits for its steps to end before it exits
EXIT_GRACE = 3.0       # seconds after that for Textual to restore the terminal


class AmbientApp(App):
    CSS_PATH = str(ASSETS / "app.tcss")
    TITLE = "ambient-tui"

    def __init__(self, plan: Plan, runner: Any = None, *, context: str = "",
                 istio_version: str = "", keymap_path: Path | None = None,
                 namespace: str = "default", kubeconfig: str | None = None,
                 kube_context: str | None = None,
                 check_context_factory: Callable[[], Any] | None = None,
                 install_session: Any = None,
                 preflight_checks: list | None = None, pods_provider: Any = None,
                 workloads_provider: Any = None, helm_provider: Any = None,
                 target: Any = None, read_only: bool = False,
                 now: Callable[[], float] = time.time, slow_link: bool = False,
                 lock_client: Callable[[], Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.link = link.profile(slow_link)  # --slow-link: screens/link.py
        self.animation_level = self.link.animation_level
        self.plan = plan
        # The pinned cluster (cluster/target.py): every watch, step and check reads its file.
        self.target = target
        if target is not None:
            kubeconfig, kube_context = target.kubeconfig_path(), target.context
            context = context or target.context
        self.kubeconfig, self.kube_context = kubeconfig, kube_context
        # --read-only: no key or palette entry that changes the cluster (see MainScreen).
        self.read_only = bool(read_only or getattr(target, "read_only", False))
        # Called in a thread when the main screen mounts; None: preflight is not run.
        self.check_context_factory = check_context_factory
        # plans.install_session.InstallSession: after preflight it decides the plan (None: the
        # given plan is run as it is, e.g. in tests).
        self.install_session = install_session
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
            watcher = None
            # A cluster to read (the CLI always gives a preflight): name why a wait is stuck.
            if kubeconfig or kube_context or check_context_factory:
                from ambient_tui.watch.diagnose import step_watcher
                watcher = step_watcher(kubeconfig, kube_context)
            runner = Runner(plan, journal=Journal.for_cluster(self.context or "default"),
                            env=target.tool_env() if target is not None else None, step_watcher=watcher)
        self.runner = runner
        self.istio_version = istio_version or plan.meta.get("istio_version", "")
        self.keymap_path = keymap_path
        self.namespace = namespace
        self.lock_client = lock_client
        self.lock_holder: str = ""  # another run that holds the cluster lock, for the header
        self._signalled: str | None = None
        self.refresh_title()

    def refresh_title(self) -> None:
        parts = [f"context: {self.context or 'none'}"]
        if self.target is not None:  # exactly the pinned target, whatever the file says now
            parts += [self.target.server_host, f"user: {self.target.user or 'none'}"]
        if self.istio_version:
            parts.append(f"Istio {self.istio_version}")
        if self.read_only:
            parts.append("READ-ONLY")
        elif getattr(self.runner, "dry_run", False):
            parts.append("DRY-RUN")
        if self.lock_holder:
            parts.append(f"LOCKED by {self.lock_holder} (watch only)")
        self.sub_title = " · ".join(parts)

    def get_default_screen(self) -> Screen:
        return MainScreen(self.plan, self.runner, namespace=self.namespace)

    def show_error(self, exc: BaseException, title: str = "Error") -> None:
        """The TUI's one handler for errors (cli.main is the CLI's): an AmbientError shows its
        cause and its next step; anything else its first line."""
        from ambient_tui.errors import AmbientError

        if isinstance(exc, AmbientError):
            text = exc.cause + (f"\n→ {exc.next_step}" if exc.next_step else "")
        else:
            text = (str(exc).splitlines() or [type(exc).__name__])[0]
        self.notify(text, title=title, severity="error", markup=False, timeout=15)

    def on_mount(self) -> None:
        self.load_user_keymap()
        self._install_signal_handlers()
        if self.lock_client is not None:
            self.run_worker(self._watch_lock(), name="cluster lock", group="lock", exit_on_error=False)
        if os.environ.get(BENCH_EXIT_ENV):
            self.call_after_refresh(self.exit)

    # ------------------------------------------------------------------ the cluster lock

    async def _watch_lock(self) -> None:
        """Give the runner the cluster lock, then keep the header's holder up to date."""
        from ambient_tui.cluster import lease

        kube = await asyncio.to_thread(self.lock_client)
        if getattr(self.runner, "lock", None) is None:
            self.runner.lock = lease.ClusterLock(kube, "tui", journal=getattr(self.runner, "journal", None))
        own = self.runner.lock
        while True:
            try:
                holder = await asyncio.to_thread(lease.current_holder, kube)
            except Exception:  # noqa: BLE001 - unreadable now (an outage): keep the last answer
                await asyncio.sleep(LOCK_POLL)
                continue
            shown = holder.short() if holder and holder.identity != own.identity \
                and not holder.expired() else ""
            if shown != self.lock_holder:
                self.lock_holder = shown
                self.refresh_title()
            await asyncio.sleep(LOCK_POLL)

    # ------------------------------------------------------------------ signals

    def _runners(self) -> list[Any]:
        """The main runner and any other screen's (the uninstall screen has its own)."""
        out = [self.runner]
        for screen in self.screen_stack:
            r = getattr(screen, "runner", None)
            if r is not None and r not in out and hasattr(r, "interrupt"):
                out.append(r)
        return out

    def _install_signal_handlers(self) -> None:
        from ambient_tui.engine.runner import INTERRUPT_SIGNALS

        loop = asyncio.get_running_loop()
        for sig in INTERRUPT_SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass

    def _on_signal(self, sig: int) -> None:
        reason = f"interrupted by {signal.Signals(sig).name}"
        if self._signalled:
            return
        self._signalled = reason
        for r in self._runners():
            r.interrupt(reason)
        # The terminal may be gone (SIGHUP): if drawing the exit blocks, leave anyway once the
        # steps are journaled and the lock is released (or after the grace period).
        killer = threading.Timer(SIGNAL_GRACE + 10, os._exit, (1,))
        killer.daemon = True
        killer.start()
        asyncio.ensure_future(self._exit_after_signal())

    async def _exit_after_signal(self) -> None:
        deadline = time.monotonic() + SIGNAL_GRACE
        runners = self._runners()

        def settled() -> bool:
            return all(not getattr(r, "busy", False) and not getattr(getattr(r, "lock", None), "held", False)
                       for r in runners)

        while not settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for r in runners:  # a run that never started still releases; release() never raises
            lock = getattr(r, "lock", None)
            if lock is not None and lock.held:
                await asyncio.to_thread(lock.release)
            journal = getattr(r, "journal", None)
            if journal is not None:
                journal.close()
        # Steps journaled, lock released: with the terminal gone, restoring it can block for
        # ever, so leave a few seconds later whatever Textual is doing.
        last = threading.Timer(EXIT_GRACE, os._exit, (1,))
        last.daemon = True
        last.start()
        self.exit(1)

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
            from screens.keymap import orphaned

            for line in orphaned(keymap, MainScreen.BINDINGS):  # Textual drops these silently
                self.notify(f"{line}; it has no key left. Give it one in {path}.", title="Keymap",
                            severity="warning", markup=False, timeout=15)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            keys = {binding_id: shown for shown, _d, binding_id in screen.help_rows()}
            for binding_id, action, description in COMMANDS:
                if self.read_only and binding_id in MUTATING:
                    continue
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
