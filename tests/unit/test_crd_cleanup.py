"""The CRD wait's nudging logic, on a scripted fake ApiextensionsV1Api (named as such: the
real API server's stall is not reproducible on demand; tests/cluster/test_crd_cleanup_cluster.py
runs the same code against the real API server)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from ambient_tui.cluster import crd_cleanup


def crd(name, deleting=True, reason=None, message=""):
    conds = [NS(type="Terminating", reason=reason, message=message)] if reason else []
    return NS(metadata=NS(name=name, deletion_timestamp="2026-11-26T00:00:00Z" if deleting else None),
              status=NS(conditions=conds))


class FakeExt:
    """Answers a scripted list per poll; records every patch."""

    def __init__(self, polls):
        self.polls = list(polls)
        self.patches = []

    def list_custom_resource_definition(self):
        return NS(items=self.polls.pop(0) if len(self.polls) > 1 else self.polls[0])

    def patch_custom_resource_definition(self, name, body):
        self.patches.append((name, body))


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


STALL = "could not list instances: storage is (re)initializing"


def test_a_stalled_crd_is_bumped_every_interval_and_others_are_left_alone():
    stalled = crd("envoyfilters.networking.istio.io", reason="InstanceDeletionFailed", message=STALL)
    busy = crd("gateways.networking.istio.io", reason="InstanceDeletionInProgress")
    other = crd("unrelated.example.com", reason="InstanceDeletionFailed", message=STALL)
    ext = FakeExt([[stalled, busy, other]] * 12 + [[other]])
    clock = Clock()
    seen = crd_cleanup.wait_crds_gone(ext, [stalled.metadata.name, busy.metadata.name], timeout=60,
                                      nudge_every=5, sleep=clock.sleep, clock=clock)
    # 12 polls one second apart, stalled from t=0: bumps at t=5 and 10; never the busy or the
    # unrelated CRD.
    assert [n for n, _ in ext.patches] == ["envoyfilters.networking.istio.io"] * 2
    assert [b["metadata"]["annotations"][crd_cleanup.RETRY_ANNOTATION] for _, b in ext.patches] == ["1", "2"]
    assert seen.nudges == {"envoyfilters.networking.istio.io": 2}
    assert seen.summary() == ["re-queued the API server's clean-up of envoyfilters.networking.istio.io "
                              f"2 time(s) (it reported: {STALL})"]


def test_nothing_stalled_means_no_patch_and_no_summary():
    ext = FakeExt([[crd("a.istio.io", reason="InstanceDeletionInProgress")], []])
    clock = Clock()
    seen = crd_cleanup.wait_crds_gone(ext, ["a.istio.io"], timeout=10, sleep=clock.sleep, clock=clock)
    assert ext.patches == [] and seen.summary() == []


def test_a_crd_not_being_deleted_is_never_bumped():
    assert crd_cleanup.stalled_message(crd("a.istio.io", deleting=False, reason="InstanceDeletionFailed")) is None


def test_timeout_names_what_is_left_and_why():
    stalled = crd("envoyfilters.networking.istio.io", reason="InstanceDeletionFailed", message=STALL)
    ext = FakeExt([[stalled]])
    clock = Clock()
    with pytest.raises(TimeoutError) as e:
        crd_cleanup.wait_crds_gone(ext, ["envoyfilters.networking.istio.io"], timeout=3,
                                   sleep=clock.sleep, clock=clock)
    assert str(e.value) == ("still present after 3s: envoyfilters.networking.istio.io (the API server "
                            f"reports envoyfilters.networking.istio.io: {STALL})")


def test_a_short_stall_is_left_to_the_api_servers_own_retry():
    stalled = crd("a.istio.io", reason="InstanceDeletionFailed", message=STALL)
    ext = FakeExt([[stalled], [stalled], [stalled], []])
    clock = Clock()
    seen = crd_cleanup.wait_crds_gone(ext, ["a.istio.io"], timeout=60, nudge_every=5,
                                      sleep=clock.sleep, clock=clock)
    assert ext.patches == [] and seen.nudges == {} and seen.stalled == {"a.istio.io": STALL}
