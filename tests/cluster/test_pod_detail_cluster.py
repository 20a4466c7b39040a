"""Pod describe / YAML / logs against the real API server (kwok nodes, no kubelet).

A real pod is created and scheduled onto a kwok node; its describe text (with the
scheduler's real Event) and YAML come from the API. kwok has no kubelet, so the API server's
log request fails: the error is shown cleanly in the logs screen. The restricted user gets a
message naming the missing permission; a missing namespace and a deleted pod are messages.
The row actions are driven from a PodsPane fed by the real PodWatcher.
"""

from __future__ import annotations

import time
import uuid

import pytest
import yaml
from textual.app import App, ComposeResult

from ambient_tui.watch.pod_detail import (DetailError, KubeDetailSource, LogFollower, ERROR,
                                          fetch_describe, pod_yaml, wait_until)
from ambient_tui.watch.pods import PodWatcher
from screens.pod_detail import PodDetailScreen
from screens.pod_grid import PodGrid
from screens.pods import PodsPane

pytestmark = pytest.mark.cluster


@pytest.fixture
def core(kubeconfig):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


@pytest.fixture
def pod(core):
    ns = f"poddetail-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        core.create_namespaced_pod(ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "labels": {"app": "web"},
                         "annotations": {"note": "[bold]not markup[/bold]"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]},
                                    {"name": "side", "image": "busybox"}]}})
        assert wait_until(lambda: core.read_namespaced_pod("web-0", ns).status.phase == "Running", 90), \
            "the pod did not turn Running on a kwok node"
        yield ns, "web-0"
    finally:
        core.delete_namespace(ns)


def test_describe_yaml_and_logs_error_from_the_api(pod, kubeconfig, core):
    ns, name = pod
    src = KubeDetailSource(str(kubeconfig))
    assert wait_until(lambda: any(e.get("reason") == "Scheduled" for e in src.pod_events(ns, name)), 30)
    text = fetch_describe(src, ns, name, time.time())
    lines = text.splitlines()
    node = core.read_namespaced_pod(name, ns).spec.node_name
    assert lines[0].split() == ["Name:", name] and lines[1].split() == ["Namespace:", ns]
    assert any(line.startswith("Node:") and node in line for line in lines)
    assert "Status:           Running" in lines
    assert "Annotations:      note=[bold]not markup[/bold]" in lines
    assert "  web:" in lines and "  side:" in lines
    ev = lines[lines.index("Events:"):]
    assert any("Scheduled" in line and "default-scheduler" in line for line in ev)

    doc = yaml.safe_load(pod_yaml(src.get_pod(ns, name)))
    assert doc["metadata"]["name"] == name and "managedFields" not in doc["metadata"]
    assert [c["name"] for c in doc["spec"]["containers"]] == ["web", "side"]

    # No kubelet on kwok nodes: the API server cannot fetch logs; a clean error, not a crash.
    f = LogFollower(src, ns, name, container="web").start()
    assert wait_until(lambda: f.state == ERROR, 60), f.state
    # The API server's own answer (it could not dial the kubelet), not a client-side error.
    assert f.message.startswith("logs unavailable: HTTP "), f.message
    f.stop()

    with pytest.raises(DetailError, match="namespace no-such-ns-h2b does not exist"):
        src.get_pod("no-such-ns-h2b", name)
    with pytest.raises(DetailError, match=f"pod gone not found in namespace {ns}"):
        src.get_pod(ns, "gone")


def test_restricted_user_gets_the_missing_permission(pod, restricted_kubeconfig):
    ns, name = pod
    src = KubeDetailSource(str(restricted_kubeconfig))
    with pytest.raises(DetailError) as e:
        src.get_pod(ns, name)
    assert e.value.status == 403
    assert str(e.value).startswith(f"forbidden: needs permission to get pods in namespace {ns} (")
    assert 'User "restricted"' in str(e.value)
    with pytest.raises(DetailError, match=f"forbidden: needs permission to get pods/log in namespace {ns}"):
        src.open_logs(ns, name, "web", False, 10, False)


class PaneApp(App):
    def __init__(self, watcher, kubeconfig):
        super().__init__()
        self.watcher, self.kubeconfig = watcher, kubeconfig

    def compose(self) -> ComposeResult:
        yield PodsPane(self.watcher, kubeconfig=self.kubeconfig, interval=0.1, id="pods")


async def detail_after(pilot, key, timeout=60):
    await pilot.press(key)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.1)
        screen = pilot.app.screen
        if isinstance(screen, PodDetailScreen) and screen.loaded:
            return screen
    raise AssertionError(f"{key}: the detail screen did not load")


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_row_actions_in_the_pods_pane(pod, kubeconfig, core):
    ns, name = pod
    watcher = PodWatcher(namespaces=[ns], kubeconfig=str(kubeconfig)).start()
    try:
        app = PaneApp(watcher, str(kubeconfig))
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(PodsPane)
            end = time.monotonic() + 60
            while not pane.table_rows() and time.monotonic() < end:
                await pilot.pause(0.1)
            assert [r[:2] for r in pane.table_rows()] == [(ns, name)]
            pane.query_one(PodGrid).focus()

            screen = await detail_after(pilot, "d")
            assert screen.error == "" and screen.text()[0].split() == ["Name:", name]
            await pilot.press("escape")
            screen = await detail_after(pilot, "y")
            assert "apiVersion: v1" in screen.text() and f"  name: {name}" in screen.text()
            await pilot.press("escape")
            screen = await detail_after(pilot, "l")
            assert screen.containers == ["web", "side"] and screen.container == "web"
            assert screen.error.startswith("logs unavailable: HTTP "), screen.error
            assert screen.error[:60] in str(screen.query_one("#detail-status").render())

            await pilot.press("escape")

            # The pod is deleted while its describe is open: a reload says so; the row goes.
            screen = await detail_after(pilot, "d")
            core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
            assert wait_until(lambda: not core.list_namespaced_pod(ns).items, 60)
            await pilot.press("R")
            end = time.monotonic() + 30
            while not screen.error and time.monotonic() < end:
                await pilot.pause(0.1)
            assert screen.error == f"pod {name} not found in namespace {ns}"
            assert screen.error in str(screen.query_one("#detail-status").render())
            await pilot.press("escape")
            end = time.monotonic() + 30
            while pane.table_rows() and time.monotonic() < end:
                await pilot.pause(0.1)
            assert pane.table_rows() == []
    finally:
        watcher.stop()
