"""PodDetailScreen (describe / YAML / logs) with Pilot, and SVG snapshots at 80x24 with a
frozen clock. StubDetailSource is a named stub of the API (pod JSON, events); its log stream
is a recorded one, because the kwok cluster has no kubelet to stream real logs. The same
screens against the real API server are in tests/cluster/test_pod_detail.py.
"""

from __future__ import annotations

import threading

import pytest
from textual.app import App

from ambient_tui.watch.pod_detail import DetailError, forbidden_message
from ambient_tui.watch.rows import parse_time
from screens.pod_detail import PodDetailScreen

NOW = parse_time("2026-01-01T00:12:00Z")

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "istiod-6d8f9c7b5-x2k4p", "namespace": "istio-system", "uid": "u-1",
                 "labels": {"app": "istiod", "istio.io/rev": "default"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "istiod-6d8f9c7b5"}],
                 "creationTimestamp": "2026-01-01T00:00:00Z",
                 "managedFields": [{"manager": "kube-controller-manager"}]},
    "spec": {"nodeName": "ip-10-0-1-10.us-west-2.compute.internal", "serviceAccountName": "istiod",
             "containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.31.0",
                             "ports": [{"containerPort": 15010}, {"containerPort": 15017}]},
                            {"name": "debug", "image": "busybox"}]},
    "status": {"phase": "Running", "hostIP": "10.0.1.10", "podIP": "10.0.1.77", "qosClass": "Burstable",
               "startTime": "2026-01-01T00:00:01Z",
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "discovery", "ready": True, "restartCount": 1,
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}},
                                     {"name": "debug", "ready": True, "restartCount": 0,
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}}]},
}
EVENTS = [{"type": "Normal", "reason": "Scheduled", "lastTimestamp": "2026-01-01T00:00:00Z",
           "source": {"component": "default-scheduler"},
           "message": "Successfully assigned istio-system/istiod-6d8f9c7b5-x2k4p to ip-10-0-1-10"},
          {"type": "Warning", "reason": "Unhealthy", "lastTimestamp": "2026-01-01T00:10:00Z", "count": 3,
           "source": {"component": "kubelet"}, "message": "Readiness probe failed: [HTTP 503]"}]
LOG = ["2026-01-01T00:00:05Z info  FLAG: --domain=\"cluster.local\"",
       "2026-01-01T00:00:06Z info  ads  [bold]not markup[/bold] push debounce",
       "2026-01-01T00:00:07Z warn  validation webhook not ready"]


class StubDetailSource:
    """Named stub of KubeDetailSource: pod JSON and events from the test; logs replay LOG
    and, with `hold`, stay open like a followed stream until `end` is set."""

    def __init__(self, pod=POD, error=None, log_error=None, hold=False, lines=LOG):
        self.pod, self.error, self.log_error, self.hold, self.lines = pod, error, log_error, hold, lines
        self.end = threading.Event()
        self.exists = True
        self.log_calls = []

    def get_pod(self, ns, name):
        if self.error:
            raise self.error
        return self.pod

    def pod_events(self, ns, name, uid=""):
        return EVENTS

    def open_logs(self, ns, name, container, previous, tail_lines, follow):
        self.log_calls.append((container, previous, follow))
        if self.log_error:
            raise self.log_error
        src = self

        class Stream:
            def __iter__(self):
                yield from (f"[{container}] {line}" for line in src.lines)
                if src.hold:
                    src.end.wait(5)

            def close(self):
                src.end.set()
        return Stream()

    def pod_exists(self, ns, name):
        return self.exists


class DetailApp(App):
    def __init__(self, source, mode, **kw):
        super().__init__()
        self.source, self.mode, self.kw = source, mode, kw

    def on_mount(self):
        self.push_screen(PodDetailScreen(self.source, "istio-system", "istiod-6d8f9c7b5-x2k4p",
                                         self.mode, now=lambda: NOW, log_interval=0.02, **self.kw))


async def settled(pilot, pred=None):
    for _ in range(100):
        await pilot.pause(0.02)
        screen = pilot.app.screen
        if isinstance(screen, PodDetailScreen) and screen.loaded and (pred is None or pred(screen)):
            return screen
    raise AssertionError("detail screen did not settle")


@pytest.mark.asyncio
async def test_describe_and_yaml_and_escape_back():
    app = DetailApp(StubDetailSource(), "describe")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settled(pilot)
        text = screen.text()
        assert text[0].split() == ["Name:", "istiod-6d8f9c7b5-x2k4p"]
        assert any("Readiness probe failed: [HTTP 503]" in line for line in text)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PodDetailScreen)
    app = DetailApp(StubDetailSource(), "yaml")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settled(pilot)
        assert screen.text()[0] == "apiVersion: v1"
        assert not any("managedFields" in line for line in screen.text())


@pytest.mark.asyncio
async def test_errors_are_shown_not_raised():
    err = DetailError(403, forbidden_message("get", "pods", "istio-system",
                                             'pods "x" is forbidden: User "restricted" cannot get resource "pods"'))
    app = DetailApp(StubDetailSource(error=err), "describe")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settled(pilot)
        assert screen.error.startswith("forbidden: needs permission to get pods in namespace istio-system")
        assert screen.error in str(screen.query_one("#detail-status").render())
    app = DetailApp(StubDetailSource(error=DetailError(404, "namespace nope does not exist")), "logs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settled(pilot)
        assert screen.error == "namespace nope does not exist"


@pytest.mark.asyncio
async def test_logs_follow_container_choice_previous_and_deleted():
    src = StubDetailSource(hold=True)
    app = DetailApp(src, "logs", max_lines=2)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            screen = app.screen
            if isinstance(screen, PodDetailScreen) and len(screen.text()) == 2:
                break
        # bounded: the last 2 of 3 lines; markup shown literally
        assert screen.text() == [f"[discovery] {LOG[1]}", f"[discovery] {LOG[2]}"]
        assert src.log_calls == [("discovery", False, True)]
        assert "following" in str(screen.query_one("#detail-status").render())
        # `c` switches container; `p` asks for the previous container's logs; `f` stops following
        await pilot.press("c")
        await pilot.press("p")
        await pilot.press("f")
        await pilot.pause(0.1)
        assert src.log_calls[1:] == [("debug", False, True), ("debug", True, True), ("debug", True, False)]
        assert "logs (debug, previous)" in str(screen.query_one("#detail-title").render())
    # The pod is deleted while its logs are open.
    src = StubDetailSource(hold=True)
    app = DetailApp(src, "logs")
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if isinstance(app.screen, PodDetailScreen) and len(app.screen.text()) == 3:
                break
        src.exists = False
        src.end.set()
        screen = await settled(pilot)
        assert screen.error == "pod istiod-6d8f9c7b5-x2k4p was deleted"
        assert "was deleted" in str(screen.query_one("#detail-status").render())
        assert len(screen.text()) == 3  # what was read stays


def test_pod_describe_snapshot(snap_compare):
    async def run(pilot):
        await settled(pilot)
    assert snap_compare(DetailApp(StubDetailSource(), "describe"), terminal_size=(80, 24), run_before=run)


def test_pod_yaml_snapshot(snap_compare):
    async def run(pilot):
        await settled(pilot)
    assert snap_compare(DetailApp(StubDetailSource(), "yaml"), terminal_size=(80, 24), run_before=run)


def test_pod_logs_snapshot(snap_compare):
    async def run(pilot):
        await settled(pilot)  # not following: the recorded lines, then "log stream ended"
    assert snap_compare(DetailApp(StubDetailSource(), "logs", follow=False), terminal_size=(80, 24),
                        run_before=run)


def test_pod_logs_error_snapshot(snap_compare):
    err = DetailError(500, "logs unavailable: HTTP 500: Get \"https://127.0.0.1:10250/containerLogs/"
                           "istio-system/istiod-6d8f9c7b5-x2k4p/discovery\": dial tcp 127.0.0.1:10250: "
                           "connect: connection refused")

    async def run(pilot):
        await settled(pilot)
    assert snap_compare(DetailApp(StubDetailSource(log_error=err), "logs"), terminal_size=(80, 24),
                        run_before=run)
