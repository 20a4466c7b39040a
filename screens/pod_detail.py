"""One pod's describe text, YAML or logs, on a screen of its own; escape goes back.

Fetches run in thread workers (the kubernetes client blocks; every request has a timeout)
and post their result back with `call_from_thread`. Logs are read by a LogFollower thread
into a bounded buffer; a timer here takes the new lines, so a chatty container costs one
redraw per tick. Text goes into a `Log` widget, which never parses markup.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from ambient_tui.watch.pod_detail import (CONNECTING, DELETED, ENDED, ERROR, MAX_LOG_LINES,
                                          STREAMING, DetailError, DetailSource, LogFollower,
                                          container_names, default_container, fetch_describe,
                                          pod_yaml)

LOG_REFRESH = 0.1  # seconds between looks at the log buffer
MODES = {"describe": "describe", "yaml": "YAML", "logs": "logs"}

SourceArg = DetailSource | Callable[[], DetailSource]


def _resolve(source: SourceArg) -> DetailSource:
    if callable(source) and not hasattr(source, "get_pod"):
        return source()
    return source  # type: ignore[return-value]


class PodDetailScreen(Screen):
    """mode: "describe", "yaml" or "logs" (with `previous` for the last terminated container)."""

    DEFAULT_CSS = """
    PodDetailScreen { layout: vertical; }
    PodDetailScreen #detail-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    PodDetailScreen #detail-status { height: auto; max-height: 4; padding: 0 1; }
    PodDetailScreen Log { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", id="pod_detail.back"),
        Binding("f", "toggle_follow", "Follow", id="pod_detail.follow"),
        Binding("p", "toggle_previous", "Previous", id="pod_detail.previous"),
        Binding("c", "next_container", "Container", id="pod_detail.container"),
        Binding("R", "reload", "Reload", id="pod_detail.reload"),
    ]

    def __init__(self, source: SourceArg, namespace: str, name: str, mode: str = "describe", *,
                 previous: bool = False, container: str | None = None, follow: bool = True,
                 max_lines: int = MAX_LOG_LINES, now: Callable[[], float] = time.time,
                 log_interval: float = LOG_REFRESH) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        super().__init__()
        self._source_arg = source
        self.source: DetailSource | None = None
        self.namespace, self.pod_name, self.mode = namespace, name, mode
        self.previous, self.container, self.follow = previous, container, follow
        self.max_lines, self.now, self.log_interval = max_lines, now, log_interval
        self.containers: list[str] = []
        self.follower: LogFollower | None = None
        self._seen = 0
        self._follower_version = -1
        self.error = ""      # the message shown when a fetch failed (tests read it)
        self.loaded = False  # describe/YAML text shown, or the log stream settled

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("toggle_follow", "toggle_previous", "next_container"):
            return self.mode == "logs"
        return True

    def compose(self) -> ComposeResult:
        yield Static(Text(self._title(), no_wrap=True, overflow="ellipsis"), id="detail-title")
        yield Static(Text("loading…", style="dim"), id="detail-status")
        yield Log(max_lines=self.max_lines, id="detail-text", auto_scroll=self.mode == "logs")
        yield Footer()

    def _title(self) -> str:
        what = MODES[self.mode]
        if self.mode == "logs":
            bits = [self.container or "", "previous" if self.previous else "",
                    "follow" if self.follow else ""]
            extra = ", ".join(b for b in bits if b)
            what = f"logs ({extra})" if extra else what
        return f"{what} · pod {self.namespace}/{self.pod_name}"

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self._load()
        if self.mode == "logs":
            self.set_interval(self.log_interval, self._drain)

    def on_unmount(self) -> None:
        self._stop_follower()

    # -- fetching (thread workers) --
    @work(thread=True, exclusive=True, group="pod-detail", exit_on_error=False)
    def _load(self) -> None:
        try:
            if self.source is None:
                self.source = _resolve(self._source_arg)
            if self.mode == "describe":
                text = fetch_describe(self.source, self.namespace, self.pod_name, self.now())
                self.app.call_from_thread(self._show_text, text)
            elif self.mode == "yaml":
                text = pod_yaml(self.source.get_pod(self.namespace, self.pod_name))
                self.app.call_from_thread(self._show_text, text)
            else:
                pod = self.source.get_pod(self.namespace, self.pod_name)
                self.app.call_from_thread(self._start_logs, container_names(pod), default_container(pod))
        except DetailError as e:
            self.app.call_from_thread(self._show_error, str(e))
        except Exception as e:  # no kubeconfig, a bug: shown, never a crash
            self.app.call_from_thread(self._show_error, f"{type(e).__name__}: {e}")

    def _show_text(self, text: str) -> None:
        log = self.query_one(Log)
        log.clear()
        log.write_lines(text.splitlines())
        log.scroll_home(animate=False)
        self.error, self.loaded = "", True
        lines = text.count("\n") + 1
        self._status(Text(f"{lines} lines · escape: back · R: reload", style="dim"))

    def _show_error(self, message: str) -> None:
        self.error, self.loaded = message, True
        self._status(Text(message, style="bold red"))

    def _status(self, text: Text) -> None:
        self.query_one("#detail-status", Static).update(text)

    def _start_logs(self, containers: list[str], default: str | None) -> None:
        self.containers = containers
        if self.container is None or self.container not in containers:
            self.container = default
        self._restart_follower()

    # -- logs --
    def _stop_follower(self) -> None:
        if self.follower is not None:
            self.follower.stop(timeout=0)
            self.follower = None

    def _restart_follower(self) -> None:
        self._stop_follower()
        assert self.source is not None
        self.query_one(Log).clear()
        self._seen, self._follower_version, self.loaded, self.error = 0, -1, False, ""
        self.query_one("#detail-title", Static).update(Text(self._title(), no_wrap=True, overflow="ellipsis"))
        self.follower = LogFollower(self.source, self.namespace, self.pod_name, container=self.container,
                                    previous=self.previous, follow=self.follow,
                                    max_lines=self.max_lines).start()
        self._drain()

    def _drain(self) -> None:
        f = self.follower
        if f is None or f.version == self._follower_version:
            return
        self._follower_version = f.version
        lines, self._seen, gap = f.take(self._seen)
        log = self.query_one(Log)
        if gap:
            log.clear()
        if lines:
            log.write_lines(lines)
        count = f"{min(self._seen, self.max_lines)} lines (last {self.max_lines} kept)"
        line = Text()
        if f.state == CONNECTING:
            line.append("connecting…", style="yellow")
        elif f.state == STREAMING:
            line.append("following" if self.follow else "reading", style="green")
            line.append(f" · {count}")
        elif f.state == ENDED:
            line.append(f.message, style="dim")
            line.append(f" · {count}")
        elif f.state == DELETED:
            line.append(f.message, style="bold magenta")
            line.append(f" · {count}")
        elif f.state == ERROR:
            line.append(f.message, style="bold red")
        if self.containers and len(self.containers) > 1:
            line.append(f" · c: container ({len(self.containers)})", style="dim")
        self._status(line)
        if f.state in (ENDED, DELETED, ERROR):
            self.loaded = True
            self.error = f.message if f.state in (DELETED, ERROR) else ""

    # -- actions --
    def action_close(self) -> None:
        self._stop_follower()
        self.app.pop_screen()

    def action_reload(self) -> None:
        if self.mode == "logs" and self.source is not None and self.containers:
            self._restart_follower()
        else:
            self._status(Text("loading…", style="dim"))
            self._load()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.source is not None and self.containers:
            self._restart_follower()

    def action_toggle_previous(self) -> None:
        self.previous = not self.previous
        if self.source is not None and self.containers:
            self._restart_follower()

    def action_next_container(self) -> None:
        if len(self.containers) < 2:
            return
        i = self.containers.index(self.container) if self.container in self.containers else -1
        self.container = self.containers[(i + 1) % len(self.containers)]
        self._restart_follower()

    # -- for tests --
    def text(self) -> list[str]:
        return list(self.query_one(Log).lines)
