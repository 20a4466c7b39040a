"""Ages against the API server's clock: ServerClock learns the skew from Date headers and new
pods' creation times, so an AGE is never negative or `<invalid>` when the clocks disagree."""

from __future__ import annotations

import time
from email.utils import formatdate

from ambient_tui.watch.listwatch import RawSource
from ambient_tui.watch.pods import WATCHING, PodWatcher
from ambient_tui.watch.rows import format_age, parse_time
from ambient_tui.watch.server_clock import ServerClock

from test_watch_pods import FakeEventSource, make, pod, wait_for

LOCAL = 1_800_000_000.0  # this machine's clock in these tests


def clock() -> ServerClock:
    return ServerClock(local=lambda: LOCAL)


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_no_hint_is_the_local_clock():
    assert clock().now() == LOCAL


def test_a_date_header_gives_the_skew_either_way():
    c = clock()
    c.saw_date(formatdate(LOCAL + 120, usegmt=True))  # server 2 min ahead
    assert abs(c.skew - 120.5) <= 0.5
    c.saw_date(formatdate(LOCAL - 300, usegmt=True))  # now 5 min behind: the newest header wins
    assert abs(c.skew + 299.5) <= 0.5
    # a pod created "now" on that server is 0 s old, not 300
    assert format_age(parse_time(rfc3339(LOCAL - 300)), c.now()) == "0s"


def test_bad_or_missing_date_headers_are_ignored():
    c = clock()
    for header in (None, "", "yesterday", "Fri, 99 Foo 2026 25:61:00 GMT"):
        c.saw_date(header)
    assert c.skew == 0.0


def test_a_new_pods_creation_time_is_a_floor_for_the_servers_clock():
    c = clock()
    c.saw_created(LOCAL + 42)  # created 42 s in our future: the server is at least that ahead
    assert c.skew == 42
    c.saw_created(LOCAL + 10)  # an earlier one says nothing new
    assert c.skew == 42
    assert format_age(LOCAL + 42, c.now()) == "0s"
    c.saw_created(None)
    assert c.skew == 42


def test_without_the_clock_a_future_creation_time_is_still_0s_not_invalid():
    assert format_age(LOCAL + 3600, LOCAL) == "0s"


def test_the_watcher_learns_the_skew_from_added_pods():
    """A fast server clock: the ADDED pod's creationTimestamp is 90 s ahead of this machine;
    the watcher's clock moves so that pod's age reads 0-1 s, not `<invalid>`."""
    ahead = time.time() + 90
    src = FakeEventSource([pod("a")])  # listed pods are old: they say nothing about "now"
    w = make(src)
    try:
        wait_for(lambda: w.state == WATCHING and len(w.snapshot().rows) == 1)
        assert w.clock.skew == 0.0
        new = pod("b", rv="9")
        new["metadata"]["creationTimestamp"] = rfc3339(ahead)
        src.push("pods", "demo", {"type": "ADDED", "object": new})
        wait_for(lambda: ("demo", "b") in w.snapshot().rows)
        assert 88 <= w.clock.skew <= 91
        row = w.snapshot().rows[("demo", "b")]
        assert format_age(row.created, w.clock.now()) in ("0s", "1s", "2s")
    finally:
        w.stop()


class _Resp:
    def __init__(self, date):
        self.headers = {"Date": date}


def test_raw_source_reads_the_date_header_of_responses():
    src = RawSource.__new__(RawSource)  # no kubernetes client: only the header hook
    src.clock = clock()
    src._saw_date(_Resp(formatdate(LOCAL + 30, usegmt=True)))
    assert abs(src.clock.skew - 30.5) <= 0.5
    src._saw_date(object())  # a response without headers: ignored
    assert abs(src.clock.skew - 30.5) <= 0.5


def test_a_pod_watcher_hands_its_clock_to_a_raw_source():
    src = RawSource.__new__(RawSource)
    src.closed = False
    w = PodWatcher(src, namespaces=("demo",))
    w.source = None
    w._source_arg = src
    # _run builds the source then the loops; only the hand-over is checked here
    w._loops = lambda: []  # type: ignore[method-assign]
    w._run()
    assert src.clock is w.clock
