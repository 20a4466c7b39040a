"""Pod detail: describe text, YAML without managedFields, and the bounded log follower.

The log stream is served by RecordedLogSource, a named fake of the kubelet's log stream (the
kwok cluster has no kubelet, so no real stream exists here); describe/YAML of a real pod are
covered in tests/cluster/test_pod_detail.py.
"""

from __future__ import annotations

import threading

import yaml

from ambient_tui.watch.pod_detail import (DELETED, ENDED, ERROR, STREAMING, DetailError,
                                          LogFollower, container_names, default_container,
                                          describe_pod, fetch_describe, forbidden_message,
                                          pod_yaml, wait_until)
from ambient_tui.watch.rows import parse_time

T0 = parse_time("2026-01-01T00:00:00Z")


def make_pod():
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1",
                     "labels": {"app": "web", "tier": "[front]"},
                     "annotations": {"kubectl.kubernetes.io/default-container": "app"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7c9d8"}],
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
        "spec": {"nodeName": "node-a", "serviceAccountName": "web",
                 "initContainers": [{"name": "init", "image": "busybox"}],
                 "containers": [{"name": "sidecar", "image": "envoy:1"},
                                {"name": "app", "image": "web:2", "ports": [{"containerPort": 8080}]}]},
        "status": {"phase": "Running", "hostIP": "10.0.1.10", "podIP": "10.1.0.5", "qosClass": "BestEffort",
                   "startTime": "2026-01-01T00:00:01Z",
                   "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
                   "initContainerStatuses": [{"name": "init", "ready": True, "restartCount": 0,
                                              "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}],
                   "containerStatuses": [
                       {"name": "sidecar", "ready": True, "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}},
                       {"name": "app", "ready": False, "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]},
    }


def event(reason, at, typ="Normal", msg="m", count=1):
    return {"type": typ, "reason": reason, "message": msg, "count": count,
            "lastTimestamp": f"2026-01-01T00:{at:02d}:00Z", "source": {"component": "kubelet"}}


def test_describe_has_the_kubectl_sections():
    events = [event("Scheduled", 0, msg="Successfully assigned demo/web-1 to node-a"),
              event("BackOff", 5, "Warning", "Back-off restarting failed container app", count=7)]
    text = describe_pod(make_pod(), events, T0 + 600)
    lines = text.splitlines()
    assert lines[0].split() == ["Name:", "web-1"] and lines[1].split() == ["Namespace:", "demo"]
    assert "Node:             node-a/10.0.1.10" in lines
    assert "Labels:           app=web" in lines and any(l.strip() == "tier=[front]" for l in lines)
    assert "Status:           CrashLoopBackOff" in lines  # the STATUS kubectl get would show
    assert "Controlled By:    ReplicaSet/web-7c9d8" in lines
    body = "\n".join(lines)
    assert "Init Containers:\n  init:" in body and "Terminated" in body
    app = body[body.index("  app:"):]
    assert "Waiting" in app and "CrashLoopBackOff" in app and "Restart Count:  3" in app
    assert "Last State:     Terminated" in app
    assert "Ready                       False" in body
    # Events: oldest first, with age and count; a Warning row.
    ev = lines[lines.index("Events:") + 1:]
    assert ev[0].split()[:3] == ["Type", "Reason", "Age"]
    assert ev[2].split()[:3] == ["Normal", "Scheduled", "10m"]
    assert ev[3].split()[:4] == ["Warning", "BackOff", "5m", "(x7)"]
    assert ev[3].endswith("Back-off restarting failed container app")


def test_describe_without_events_and_with_forbidden_events():
    assert describe_pod(make_pod(), [], T0).splitlines()[-1] == "  <none>"

    class Source:
        def get_pod(self, ns, name):
            return make_pod()

        def pod_events(self, ns, name, uid=""):
            assert uid == "u-1"
            raise DetailError(403, forbidden_message("list", "events", ns))
    text = fetch_describe(Source(), "demo", "web-1", T0)
    assert text.splitlines()[-1] == "  forbidden: needs permission to list events in namespace demo"


def test_yaml_drops_managed_fields_and_round_trips():
    pod = make_pod()
    out = pod_yaml(pod)
    back = yaml.safe_load(out)
    assert "managedFields" not in back["metadata"] and "managedFields" not in out
    assert back["spec"] == pod["spec"] and back["metadata"]["labels"]["tier"] == "[front]"
    assert "managedFields" in pod["metadata"]  # the caller's object is not changed
    assert out.splitlines()[0] == "apiVersion: v1"


def test_containers_and_default_container():
    pod = make_pod()
    assert container_names(pod) == ["init", "sidecar", "app"]
    assert default_container(pod) == "app"
    del pod["metadata"]["annotations"]
    assert default_container(pod) == "sidecar"


# --- logs ------------------------------------------------------------------------------------

class RecordedLogSource:
    """A named fake of the kubelet log stream: replays recorded lines; with `hold`, the stream
    stays open (follow) until the test releases it; `pod_gone` answers pod_exists."""

    def __init__(self, lines, *, hold=False, open_error=None, break_error=None):
        self.lines, self.hold, self.open_error, self.break_error = lines, hold, open_error, break_error
        self.release = threading.Event()
        self.pod_gone = False
        self.opened = []
        self.closed = 0

    def open_logs(self, ns, name, container, previous, tail_lines, follow):
        self.opened.append((ns, name, container, previous, tail_lines, follow))
        if self.open_error:
            raise self.open_error
        src = self

        class Stream:
            def __iter__(self):
                yield from src.lines
                if src.hold:
                    src.release.wait(5)
                if src.break_error:
                    raise src.break_error

            def close(self):
                src.closed += 1
                src.release.set()
        return Stream()

    def pod_exists(self, ns, name):
        return not self.pod_gone


def test_follower_bounds_lines_and_reports_the_gap():
    src = RecordedLogSource([f"line {i}" for i in range(25)])
    f = LogFollower(src, "demo", "web-1", container="app", max_lines=10, follow=False).start()
    assert wait_until(lambda: f.state == ENDED, 5)
    assert src.opened == [("demo", "web-1", "app", False, 10, False)]
    lines, total, gap = f.take(0)
    assert total == 25 and gap and lines == [f"line {i}" for i in range(15, 25)]
    assert f.take(25) == ([], 25, False)
    lines, total, gap = f.take(20)
    assert lines == [f"line {i}" for i in range(20, 25)] and not gap


def test_follower_follows_then_pod_deleted():
    src = RecordedLogSource(["a", "b [red]not markup[/red]"], hold=True)
    f = LogFollower(src, "demo", "web-1", previous=True).start()
    assert wait_until(lambda: f.total == 2, 5)
    assert f.state == STREAMING and src.opened[0][3] is True
    src.pod_gone = True
    src.release.set()  # the stream ends, as the kubelet ends it when the pod goes
    assert wait_until(lambda: f.state == DELETED, 5)
    assert f.message == "pod web-1 was deleted"
    assert f.take(0)[0] == ["a", "b [red]not markup[/red]"]


def test_follower_errors_are_states():
    err = DetailError(400, "logs unavailable: HTTP 400: container app is waiting to start")
    f = LogFollower(RecordedLogSource([], open_error=err), "demo", "web-1").start()
    assert wait_until(lambda: f.state == ERROR, 5)
    assert f.message == str(err)
    src = RecordedLogSource(["x"], break_error=DetailError(0, "log stream broke: ProtocolError"))
    f = LogFollower(src, "demo", "web-1").start()
    assert wait_until(lambda: f.state == ERROR, 5) and "stream broke" in f.message
    src = RecordedLogSource(["x"], break_error=DetailError(0, "log stream broke"))
    src.pod_gone = True
    f = LogFollower(src, "demo", "web-1").start()
    assert wait_until(lambda: f.state == DELETED, 5) and f.message == "pod web-1 was deleted"


def test_follower_stop_closes_the_stream():
    src = RecordedLogSource(["a"], hold=True)
    f = LogFollower(src, "demo", "web-1").start()
    assert wait_until(lambda: f.total == 1, 5)
    f.stop()
    assert src.closed >= 1 and not f._thread.is_alive()


class FakeChunkedResponse:
    """Named fake of urllib3's streamed response: yields the given byte chunks."""

    def __init__(self, chunks, error=None):
        self.chunks, self.error, self.closed = chunks, error, 0

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks
        if self.error:
            raise self.error

    def close(self):
        self.closed += 1

    def release_conn(self):
        pass


def test_response_lines_split_across_chunks():
    from ambient_tui.watch.pod_detail import _RespLines

    # a line split over chunks, CRLF, a UTF-8 character split over chunks, a bad byte, no
    # final newline
    resp = FakeChunkedResponse([b"first li", b"ne\r\nsecond\nthird \xe2\x9c", b"\x93\xff"])
    assert list(_RespLines(resp)) == ["first line", "second", "third \u2713\ufffd"]
    assert resp.closed >= 1
    broken = _RespLines(FakeChunkedResponse([b"a\n"], error=OSError("reset")))
    it = iter(broken)
    assert next(it) == "a"
    try:
        next(it)
    except DetailError as e:
        assert "log stream broke: OSError: reset" in str(e)
    else:
        raise AssertionError("no error")


def test_follow_end_then_pod_goes_away_becomes_deleted():
    src = RecordedLogSource(["last words"])  # the stream ends at once; the pod still exists
    f = LogFollower(src, "demo", "web-1", gone_wait=5, gone_poll=0.01).start()
    assert wait_until(lambda: f.state == ENDED, 5)
    assert f.message == "log stream ended"
    src.pod_gone = True  # then the pod's deletion completes
    assert wait_until(lambda: f.state == DELETED, 5)
    assert f.message == "pod web-1 was deleted" and f.take(0)[0] == ["last words"]
