"""Pod row formatting like `kubectl get pods`: ready, status, restarts, age, ambient; filters."""

from __future__ import annotations

import pytest

from ambient_tui.watch.rows import (ambient_mode, format_age, human_duration, parse_selector,
                                    parse_time, pod_row, pod_status, row_matches)


def pod(name="web-1", ns="demo", phase="Running", statuses=None, init=None, init_specs=None,
        labels=None, deleting=False, containers=1, node="kwok-node-0",
        created="2026-01-01T00:00:00Z"):
    meta = {"name": name, "namespace": ns, "creationTimestamp": created, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    spec = {"containers": [{"name": f"c{i}"} for i in range(containers)], "nodeName": node}
    if init_specs:
        spec["initContainers"] = init_specs
    status = {"phase": phase}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init is not None:
        status["initContainerStatuses"] = init
    return {"metadata": meta, "spec": spec, "status": status}


RUNNING = {"name": "c0", "ready": True, "restartCount": 0, "state": {"running": {}}}


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (185, "3m5s"), (600, "10m"),
    (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60 * 7, "3h7m"), (9 * 3600, "9h"),
    (47 * 3600, "47h"), (4 * 86400, "4d"), (4 * 86400 + 3600, "4d1h"), (30 * 86400, "30d"),
    (3 * 365 * 86400, "3y"), (-0.5, "0s"),
    # kubectl says <invalid> below -1 s; here it only means the server's clock is ahead
    (-5, "0s"), (-86400, "0s"),
])
def test_human_duration_matches_kubectl(seconds, text):
    assert human_duration(seconds) == text


def test_age_from_creation_timestamp():
    t = parse_time("2026-01-01T00:00:00Z")
    assert format_age(t, t + 3 * 3600) == "3h"
    assert format_age(None, t) == "<unknown>"


def test_ready_and_restarts():
    p = pod(containers=2, statuses=[dict(RUNNING, restartCount=2),
                                    {"name": "c1", "ready": False, "restartCount": 1,
                                     "state": {"running": {}}}])
    r = pod_row(p)
    assert (r.ready, r.restarts, r.node) == ("1/2", 3, "kwok-node-0")


def test_native_sidecar_counts_in_ready():
    p = pod(init_specs=[{"name": "proxy", "restartPolicy": "Always"}],
            init=[{"name": "proxy", "ready": True, "started": True, "state": {"running": {}}}],
            statuses=[RUNNING])
    assert pod_row(p).ready == "2/2"
    assert pod_status(p) == "Running"


@pytest.mark.parametrize("p,status", [
    (pod(statuses=[RUNNING]), "Running"),
    (pod(phase="Pending", statuses=[{"name": "c0", "ready": False, "state": {
        "waiting": {"reason": "ContainerCreating"}}}]), "ContainerCreating"),
    (pod(statuses=[{"name": "c0", "ready": False, "restartCount": 5, "state": {
        "waiting": {"reason": "CrashLoopBackOff"}}}]), "CrashLoopBackOff"),
    (pod(statuses=[RUNNING], deleting=True), "Terminating"),
    (pod(phase="Succeeded", statuses=[{"name": "c0", "ready": False, "state": {
        "terminated": {"reason": "Completed", "exitCode": 0}}}]), "Completed"),
    (pod(phase="Failed", statuses=[{"name": "c0", "ready": False, "state": {
        "terminated": {"exitCode": 137, "signal": 9}}}]), "Signal:9"),
    (pod(phase="Failed", statuses=[{"name": "c0", "ready": False, "state": {
        "terminated": {"exitCode": 3}}}]), "ExitCode:3"),
    (pod(phase="Pending", init_specs=[{"name": "i0"}, {"name": "i1"}],
         init=[{"name": "i0", "state": {"terminated": {"exitCode": 0}}},
               {"name": "i1", "state": {"running": {}}}]), "Init:1/2"),
    (pod(phase="Pending", init_specs=[{"name": "i0"}],
         init=[{"name": "i0", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]),
     "Init:ImagePullBackOff"),
    (pod(phase="Pending", init_specs=[{"name": "i0"}],
         init=[{"name": "i0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
     "Init:Error"),
    (pod(phase="Pending"), "Pending"),
])
def test_status_column(p, status):
    assert pod_status(p) == status


def test_evicted_reason_wins_over_phase():
    p = pod(phase="Failed")
    p["status"]["reason"] = "Evicted"
    assert pod_status(p) == "Evicted"


def test_ambient_mode():
    amb = {"istio.io/dataplane-mode": "ambient"}
    none = {"istio.io/dataplane-mode": "none"}
    assert ambient_mode({}, amb) == "enrolled"
    assert ambient_mode(none, amb) == "opted-out"
    assert ambient_mode({}, {}) == "none"
    assert ambient_mode({}, None) == "none"
    r = pod_row(pod(labels=none), amb)
    assert r.ambient == "opted-out"
    assert pod_row(pod(), {}).with_ambient(amb).ambient == "enrolled"


def test_cells_order_and_age():
    r = pod_row(pod(statuses=[RUNNING]), {})
    now = parse_time("2026-01-01T00:00:05Z")
    assert r.cells(now) == ("demo", "web-1", "1/1", "Running", "0", "5s", "none", "kwok-node-0")


def test_filters_text_and_selector():
    r = pod_row(pod(labels={"app": "web", "tier": "front"}, statuses=[RUNNING]))
    assert parse_selector("app=web,tier!=db") == [("=", "app", "web"), ("!=", "tier", "db")]
    assert parse_selector("web") is None
    assert row_matches(r, "WEB") and row_matches(r, "running") and row_matches(r, "")
    assert row_matches(r, "app=web") and row_matches(r, "app=web,tier")
    assert not row_matches(r, "app=db") and not row_matches(r, "!tier")
    assert not row_matches(r, "nomatch")
