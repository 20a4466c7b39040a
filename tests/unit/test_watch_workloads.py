"""WorkloadWatcher: counts from Deployments/DaemonSets, merge, 410 relist, reconnect, forbidden.

Only the API's list/watch is replaced: FakeAppsSource stands in for the API server
(KubeAppsSource in production). The watcher's threads, merging and state are real.
"""

from __future__ import annotations

import queue
import time

from ambient_tui.watch.pods import RECONNECTING, WATCHING, ApiError, ConnectionLost
from ambient_tui.watch.workloads import (DAEMONSETS, DEPLOYMENTS, WorkloadCounts, WorkloadWatcher,
                                         counts_of, workloads_for_step)


def deploy(name, replicas=1, ready=0, updated=0, rv="1"):
    status = {}
    if ready:
        status["readyReplicas"] = ready
    if updated:
        status["updatedReplicas"] = updated
    return {"metadata": {"name": name, "namespace": "istio-system", "resourceVersion": rv},
            "spec": {"replicas": replicas}, "status": status}


def daemonset(name, desired=3, ready=0, updated=0, rv="1"):
    return {"metadata": {"name": name, "namespace": "istio-system", "resourceVersion": rv},
            "spec": {}, "status": {"desiredNumberScheduled": desired, "numberReady": ready,
                                   "updatedNumberScheduled": updated}}


class FakeAppsSource:
    """A fake of the API's list/watch for deployments and daemonsets: `objects` is what a list
    returns; tests push watch events (or exceptions) into per-kind queues."""

    END = object()

    def __init__(self, deployments=(), daemonsets=()):
        self.objects = {DEPLOYMENTS: {o["metadata"]["name"]: o for o in deployments},
                        DAEMONSETS: {o["metadata"]["name"]: o for o in daemonsets}}
        self.streams = {DEPLOYMENTS: queue.Queue(), DAEMONSETS: queue.Queue()}
        self.lists: list[str] = []
        self.list_error: Exception | None = None
        self.forbidden: set[str] = set()
        self.closed = False
        self.rv = 100

    def push(self, kind, item):
        self.streams[kind].put(item)

    def list(self, kind, namespace):
        assert namespace == "istio-system"
        if self.list_error is not None:
            raise self.list_error
        if kind in self.forbidden:
            raise ApiError(403, f"{kind} is forbidden")
        self.lists.append(kind)
        self.rv += 1
        return list(self.objects[kind].values()), str(self.rv)

    def watch(self, kind, namespace, resource_version, timeout):
        q = self.streams[kind]
        while True:
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                if self.closed:
                    return
                continue
            if item is self.END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self):
        self.closed = True


def wait_for(cond, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def make(src):
    return WorkloadWatcher(src, backoff=(0.01, 0.05), forbidden_retry=0.05).start()


def test_counts_of_deployment_and_daemonset():
    c = counts_of(DEPLOYMENTS, deploy("istiod", replicas=2, ready=1, updated=2))
    assert (c.name, c.desired, c.ready, c.updated) == ("istiod", 2, 1, 2)
    assert not c.complete
    # replicas unset means the API's default of one; an empty status means zero ready.
    c = counts_of(DEPLOYMENTS, {"metadata": {"name": "istiod"}, "spec": {}, "status": {}})
    assert (c.desired, c.ready, c.updated) == (1, 0, 0)
    c = counts_of(DAEMONSETS, daemonset("ztunnel", desired=3, ready=3, updated=3))
    assert c.complete and c.short() == "ztunnel 3/3"
    assert counts_of(DAEMONSETS, daemonset("istio-cni-node", 0)).complete is False


def test_step_to_workload_mapping():
    """The plan declares what each step waits for (Step.watches); nothing reads step ids."""
    from ambient_tui.plans.install import build_install_plan
    from ambient_tui.settings import Settings

    plan = build_install_plan(Settings(istio_version="1.31.0"))
    assert workloads_for_step(plan.step("helm-istiod")) == ("istiod",)
    assert workloads_for_step(plan.step("verify-istio-cni")) == ("istio-cni-node",)
    assert workloads_for_step(plan.step("helm-istio-base")) == ()
    plan = build_install_plan(Settings(istio_version="1.31.0", method="istioctl"))
    assert workloads_for_step(plan.step("istioctl-install")) == ("istiod", "istio-cni-node", "ztunnel")
    # An id that looks like one is not enough: a step says what it watches.
    from ambient_tui.engine.plan import Step
    assert workloads_for_step(Step("helm-istiod", "lookalike", argv=["true"])) == ()


def test_list_then_watch_events_update_counts():
    src = FakeAppsSource([deploy("istiod")], [daemonset("ztunnel")])
    w = make(src)
    try:
        wait_for(lambda: w.state == WATCHING and set(w.snapshot().rows) == {"istiod", "ztunnel"})
        assert w.snapshot().rows["istiod"] == WorkloadCounts("istiod", DEPLOYMENTS, 1, 0, 0)
        v = w.version
        src.push(DEPLOYMENTS, {"type": "MODIFIED", "object": deploy("istiod", ready=1, updated=1, rv="5")})
        src.push(DAEMONSETS, {"type": "ADDED", "object": daemonset("istio-cni-node", 3, 2, 3, rv="6")})
        wait_for(lambda: w.snapshot().rows.get("istiod", None) is not None
                 and w.snapshot().rows["istiod"].complete and "istio-cni-node" in w.snapshot().rows)
        assert w.snapshot().rows["istio-cni-node"].ready == 2
        assert w.version > v
        src.push(DAEMONSETS, {"type": "DELETED", "object": daemonset("ztunnel", rv="7")})
        wait_for(lambda: "ztunnel" not in w.snapshot().rows)
        # A clean end of the watch resumes without a relist.
        lists = len(src.lists)
        src.push(DEPLOYMENTS, FakeAppsSource.END)
        time.sleep(0.2)
        assert len(src.lists) == lists
    finally:
        w.stop()
    assert w.state == "stopped"


def test_410_relists_without_ghosts_and_reconnects_after_connection_loss():
    src = FakeAppsSource([deploy("istiod")], [daemonset("ztunnel"), daemonset("istio-cni-node")])
    w = make(src)
    try:
        wait_for(lambda: len(w.snapshot().rows) == 3)
        del src.objects[DAEMONSETS]["ztunnel"]
        src.push(DAEMONSETS, {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}})
        wait_for(lambda: set(w.snapshot().rows) == {"istiod", "istio-cni-node"})
        assert src.lists.count(DAEMONSETS) == 2

        src.list_error = ConnectionLost("connection refused")
        src.push(DEPLOYMENTS, ConnectionLost("stream broke"))
        wait_for(lambda: w.state == RECONNECTING)
        assert "stream broke" in w.snapshot().last_error or "refused" in w.snapshot().last_error
        assert "istiod" in w.snapshot().rows  # last known while reconnecting
        src.objects[DEPLOYMENTS]["istiod"] = deploy("istiod", ready=1, updated=1)
        src.list_error = None
        wait_for(lambda: w.state == WATCHING and w.snapshot().rows["istiod"].complete)
    finally:
        w.stop()


def test_forbidden_is_a_message_and_the_other_kind_still_works():
    src = FakeAppsSource([deploy("istiod")], [daemonset("ztunnel")])
    src.forbidden.add(DAEMONSETS)
    w = make(src)
    try:
        wait_for(lambda: "daemonsets" in w.snapshot().messages and "istiod" in w.snapshot().rows)
        assert "forbidden" in w.snapshot().messages["daemonsets"]
        assert "ztunnel" not in w.snapshot().rows
        src.forbidden.clear()
        wait_for(lambda: "ztunnel" in w.snapshot().rows and not w.snapshot().messages)
    finally:
        w.stop()


def test_source_that_cannot_be_built_is_a_state():
    def boom():
        raise RuntimeError("no kubeconfig")

    w = WorkloadWatcher(boom, backoff=(0.01, 0.02)).start()
    try:
        wait_for(lambda: w.state == RECONNECTING)
        assert "no kubeconfig" in w.snapshot().last_error
    finally:
        w.stop()
