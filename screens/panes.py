"""The right side of the main screen: a tab line and the switchable panes (step output,
preflight, pods, Helm releases).

Cluster panes start on first show, so a screen that never shows them never connects. The pods
pane reads its watcher through a GatedProvider that looks unchanged while the pane is hidden:
the watch stays current (one stream), but a hidden table merges nothing.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Static

from screens.preflight import PreflightPane
from screens.widgets import OutputPane

# pane name -> (switcher child id, tab label)
PANES = {"output": ("pane-output", "Output"), "preflight": ("pane-preflight", "Preflight"),
         "pods": ("pane-pods", "Pods"), "helm": ("pane-helm", "Helm"), "mesh": ("pane-mesh", "Mesh")}


class GatedProvider:
    """A snapshot provider that looks unchanged while its pane is hidden, so the pane's timer
    finds no new version and merges nothing; shown again, the next tick merges once."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.open = True
        self._frozen = provider.version

    @property
    def version(self) -> int:
        if self.open:
            self._frozen = self.provider.version
        return self._frozen

    def snapshot(self):
        return self.provider.snapshot()

    @property
    def clock(self):  # the watcher's ServerClock, for the pane's ages
        return getattr(self.provider, "clock", None)


def stop_watchers(watchers) -> None:
    """Stop the watch threads a widget started; at exit this is best effort."""
    for watcher in watchers:
        try:
            watcher.stop(timeout=1.0)
        except Exception:  # noqa: BLE001 - stopping is best effort at exit
            pass


class Panes(Vertical):
    """Tabs + ContentSwitcher. The app may carry fed providers (`pods_provider`,
    `helm_provider`), a frozen `now`, and the cluster target (`kubeconfig`, `kube_context`)."""

    BINDINGS = [
        # On Panes, not PodsPane: a new scope needs a new watcher, and Panes owns the watcher.
        Binding("a", "pods_scope", "All namespaces", id="pods.scope"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = "output"
        self.all_namespaces = False  # pods scope: istio-system + enrolled namespaces, or all
        self.owned: list[Any] = []  # watchers started here, stopped on unmount
        self._started: set[str] = set()
        self._pods_gate: GatedProvider | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="pane-tabs")
        with ContentSwitcher(initial="pane-output", id="panes"):
            with Vertical(id="pane-output"):
                yield Static(id="step-info")
                yield OutputPane(id="output")
            yield PreflightPane(id="pane-preflight")
            with Vertical(id="pane-pods"):
                yield Static("Pods: the watch starts when this pane is first shown.",
                             id="pods-placeholder", classes="placeholder")
            with Vertical(id="pane-helm"):
                yield Static("Helm releases: loading…", id="helm-placeholder", classes="placeholder")
            with Vertical(id="pane-mesh"):
                yield Static("Mesh: loading…", id="mesh-placeholder", classes="placeholder")

    def on_unmount(self) -> None:
        stop_watchers(self.owned)

    def _app(self, name: str, default: Any = None) -> Any:
        return getattr(self.app, name, default)

    # -- switching --
    def show(self, name: str) -> None:
        self.current = name
        self.query_one("#panes", ContentSwitcher).current = PANES[name][0]
        if self._pods_gate is not None:
            self._pods_gate.open = name == "pods"
        if name not in self._started:
            self._started.add(name)
            getattr(self, f"_start_{name}", lambda: None)()

    def draw_tabs(self, keys: dict[str, str], zoomed: bool) -> None:
        """keys: binding id -> key as displayed (the user keymap applied)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        for name, (_child, label) in PANES.items():
            style = "bold reverse" if name == self.current else ""
            text.append(f"{keys.get('ambient.pane_' + name, '?')} {label}", style=style)
            text.append(" ")
        text.append(f"{keys.get('ambient.zoom', 'z')} {'unzoom' if zoomed else 'zoom'}", style="dim")
        self.query_one("#pane-tabs", Static).update(text)

    def main_widget(self) -> Widget | None:
        """The widget that takes focus in the shown pane (None while it is loading)."""
        if self.current == "output":
            return self.query_one("#output")
        if self.current == "preflight":
            return self.query_one("#preflight-list")
        # The pods pane's table is a PodGrid (screens/pod_grid.py); the Helm pane's a DataTable.
        found = self.query_one(f"#{PANES[self.current][0]}").query("DataTable, PodGrid")
        return found.first() if found else None

    def _focus_if_shown(self, name: str) -> None:
        if self.current == name and (widget := self.main_widget()) is not None:
            widget.focus()

    # -- pods --
    def _start_pods(self) -> None:
        provider = self._app("pods_provider")
        if provider is not None:
            self._mount_pods(provider)
            return
        self.query_one("#pods-placeholder", Static).update("Pods: connecting…")
        self.run_worker(self._open_pod_watch, name="pod watch", group="watch", thread=True,
                        exit_on_error=False)

    def _open_pod_watch(self) -> None:
        """Thread: istio-system + the enrolled namespaces, then the watch (never blocks the UI)."""
        from ambient_tui.watch.pods import PodWatcher, mesh_namespaces

        kubeconfig, context = self._app("kubeconfig"), self._app("kube_context")
        namespaces = None if self.all_namespaces else mesh_namespaces(kubeconfig=kubeconfig, context=context)
        watcher = PodWatcher(namespaces=namespaces, kubeconfig=kubeconfig, context=context).start()
        self.owned.append(watcher)
        self.app.call_from_thread(self._mount_pods, watcher)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pods_scope":  # only with the pods pane shown and a real watch behind it
            return self.current == "pods" and self._app("pods_provider") is None
        return True

    def action_pods_scope(self) -> None:
        self.all_namespaces = not self.all_namespaces
        self.rescope_pods()
        self.notify("Pods: all namespaces" if self.all_namespaces
                    else "Pods: istio-system and the enrolled namespaces")

    def rescope_pods(self) -> None:
        """Replace the pod watch (new scope, or the enrolled namespaces changed)."""
        if "pods" not in self._started or self._app("pods_provider") is not None:
            return  # not started yet: the first show reads the scope anyway
        for watcher in self.owned:
            watcher.stop(timeout=1.0)
        self.owned.clear()
        self.run_worker(self._open_pod_watch, name="pod watch", group="watch", thread=True,
                        exit_on_error=False)

    def _mount_pods(self, provider: Any) -> None:
        from screens.pods import PodsPane

        self._pods_gate = GatedProvider(provider)
        self._pods_gate.open = self.current == "pods"
        box = self.query_one("#pane-pods")
        existing = box.query("#pods")
        if existing:  # a rescope: same table, new watcher; the next tick merges the new rows
            pane = existing.first()
            pane.provider, pane._seen = self._pods_gate, -1
            return
        box.query("#pods-placeholder").remove()
        box.mount(PodsPane(self._pods_gate, now=self._app("now", time.time),
                           slow_link=getattr(self._app("link"), "slow", False),
                           kubeconfig=self._app("kubeconfig"), context=self._app("kube_context"),
                           id="pods"))
        self.call_after_refresh(self._focus_if_shown, "pods")

    # -- helm --
    def _start_helm(self) -> None:
        from screens.helm import HelmPane  # loaded only when first shown

        box = self.query_one("#pane-helm")
        pane = HelmPane(kubeconfig=self._app("kubeconfig"), context=self._app("kube_context"),
                        namespaces=None, provider=self._app("helm_provider"),
                        now=self._app("now", time.time), id="helm")
        box.query("#helm-placeholder").remove()
        box.mount(pane)
        self.call_after_refresh(self._focus_if_shown, "helm")

    # -- mesh (screens/mesh.py) --
    def _start_mesh(self) -> None:
        from screens.mesh import MeshPane  # loaded only when first shown

        box = self.query_one("#pane-mesh")
        box.query("#mesh-placeholder").remove()
        box.mount(MeshPane(self._app("mesh_provider"), kubeconfig=self._app("kubeconfig"),
                           context=self._app("kube_context"), kube=self._app("mesh_kube"), id="mesh"))
        self.call_after_refresh(self._focus_if_shown, "mesh")
