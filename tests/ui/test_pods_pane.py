"""PodsPane with a snapshot provider (no cluster): merge by row key, filter, sort,
reconnecting line, one SVG snapshot at 80x24 with a frozen clock; and its line-rendered grid
(screens/pod_grid.py): incremental order against a full sort, the cursor following its pod,
mouse, and repaints limited to the lines that changed."""

from __future__ import annotations

import random

import pytest
from textual.app import App, ComposeResult

from ambient_tui.watch.pods import RECONNECTING, WATCHING, Snapshot
from ambient_tui.watch.rows import COLUMNS, PodRow, parse_time, pod_row
from screens.pod_grid import PodGrid
from screens.pods import PodsPane

T0 = parse_time("2026-01-01T00:00:00Z")
NOW = T0 + 3 * 3600 + 125  # frozen clock


def pod(name, ns="demo", phase="Running", waiting=None, restarts=0, labels=None, created=0,
        deleting=False, node="kwok-node-0"):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    meta = {"name": name, "namespace": ns, "labels": labels or {},
            "creationTimestamp": __import__("time").strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             __import__("time").gmtime(T0 + created))}
    if deleting:
        meta["deletionTimestamp"] = meta["creationTimestamp"]
    return {"metadata": meta, "spec": {"containers": [{"name": "c"}], "nodeName": node},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "ready": not waiting, "restartCount": restarts, "state": state}]}}


NS = {"demo": {"istio.io/dataplane-mode": "ambient"}, "istio-system": {}}


class Provider:
    """A snapshot provider: what a PodWatcher exposes (version + snapshot()), set by the test."""

    def __init__(self, pods, state=WATCHING, scope=("demo", "istio-system")):
        self.version = 0
        self.calls = 0
        self.state, self.scope, self.error, self.messages = state, scope, "", {}
        self.set(pods)

    def set(self, pods, **kw):
        self.rows = {}
        for p in pods:
            r = pod_row(p, NS.get(p["metadata"]["namespace"]))
            self.rows[r.key] = r
        for k, v in kw.items():
            setattr(self, k, v)
        self.version += 1

    def snapshot(self):
        self.calls += 1
        return Snapshot(self.version, dict(self.rows), self.state, self.error,
                        dict(self.messages), self.scope)


PODS = [
    pod("istiod-6d8f9c7b5-x2k4p", ns="istio-system", created=60),
    pod("ztunnel-4mzqv", ns="istio-system", created=90),
    pod("web-7c9d8-abcde", labels={"app": "web"}, created=3 * 3600),
    pod("db-0", labels={"app": "db", "istio.io/dataplane-mode": "none"}, restarts=4,
        waiting="CrashLoopBackOff", created=600),
    pod("api-5f6-[bold]x", labels={"app": "api"}, waiting="ContainerCreating", created=3 * 3600 + 100),
    pod("old-1", deleting=True, created=0),
]


class PaneApp(App):
    def __init__(self, provider, **kw):
        super().__init__()
        self.provider, self.kw = provider, kw

    def compose(self) -> ComposeResult:
        yield PodsPane(self.provider, now=lambda: NOW, interval=0.05, pace=0, **self.kw)


def names(pane):
    return [r[1] for r in pane.table_rows()]


@pytest.mark.asyncio
async def test_merge_filter_sort_and_reconnecting():
    provider = Provider(PODS)
    app = PaneApp(provider)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        await pilot.pause(0.1)
        rows = {r[1]: r for r in pane.table_rows()}
        assert len(rows) == 6
        assert rows["db-0"][2:] == ("0/1", "CrashLoopBackOff", "4", "172m", "out", "kwok-node-0")
        assert rows["web-7c9d8-abcde"][5] == "2m5s" and rows["web-7c9d8-abcde"][6] == "yes"
        assert rows["old-1"][3] == "Terminating"
        assert rows["istiod-6d8f9c7b5-x2k4p"][6] == "no"
        assert rows["api-5f6-[bold]x"][1] == "api-5f6-[bold]x"  # escaped: shown literally

        # No new version: no new snapshot taken.
        calls = provider.calls
        await pilot.pause(0.2)
        assert provider.calls == calls

        # Changes merge by row key: one removed, one added, one cell changed.
        table = pane.query_one(PodGrid)
        changed = [p for p in PODS if p["metadata"]["name"] != "old-1"]
        changed[2] = pod("web-7c9d8-abcde", labels={"app": "web"}, created=3 * 3600, restarts=1)
        changed.append(pod("web-7c9d8-fghij", labels={"app": "web"}, created=3 * 3600 + 120))
        provider.set(changed)
        await pilot.pause(0.15)
        rows = {r[1]: r for r in pane.table_rows()}
        assert "old-1" not in rows and "web-7c9d8-fghij" in rows
        assert rows["web-7c9d8-abcde"][4] == "1"
        assert table.row_count == 6 == len(set(names(pane)))

        # Sort: default namespace then name; `o` cycles to name; header click sorts by column.
        assert names(pane)[0].startswith("api-")
        table.focus()
        await pilot.press("o")
        assert app.focused is table and pane.sort_column == "name"
        assert names(pane) == sorted(names(pane))
        pane.set_sort("restarts", reverse=True)
        await pilot.pause()
        assert names(pane)[0] == "db-0"
        pane.set_sort("age", reverse=False)
        await pilot.pause()
        assert names(pane)[0] == "web-7c9d8-fghij"  # newest first

        # `/` filter: text, then a label selector, then escape clears.
        table.focus()
        await pilot.press("slash")
        await pilot.press(*"crash")
        await pilot.press("enter")
        await pilot.pause()
        assert names(pane) == ["db-0"]
        await pilot.press("slash")
        await pilot.press("ctrl+a", "ctrl+k", *"app=web")
        await pilot.press("enter")
        await pilot.pause()
        assert sorted(names(pane)) == ["web-7c9d8-abcde", "web-7c9d8-fghij"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(names(pane)) == 6

        # Reconnecting is visible, with the error; rows stay.
        provider.set(changed, state=RECONNECTING, error="pods/demo: connection refused")
        await pilot.pause(0.15)
        status = str(pane.query_one("#pods-status").render())
        assert "reconnecting…" in status and "connection refused" in status
        assert len(names(pane)) == 6

        # A forbidden namespace is a message, not a crash.
        provider.set(changed, state=WATCHING, messages={"secret": "forbidden: pods in namespace secret"})
        await pilot.pause(0.15)
        assert "forbidden: pods in namespace secret" in str(pane.query_one("#pods-status").render())


def test_pods_pane_snapshot(snap_compare):
    provider = Provider(PODS)
    assert snap_compare(PaneApp(provider), terminal_size=(80, 24))


# --- row actions: describe, YAML, logs (previous) ------------------------------------------

class StubDetailSource:
    """Named stub of the pod-detail API source (no API server in the UI tier): the pod's JSON
    comes from PODS; logs are a short recorded stream; a namespace may be forbidden."""

    def __init__(self, forbidden=()):
        self.forbidden = set(forbidden)
        self.log_calls = []

    def _pod(self, ns, name):
        from ambient_tui.watch.pod_detail import DetailError, forbidden_message

        if ns in self.forbidden:
            raise DetailError(403, forbidden_message("get", "pods", ns))
        for p in PODS:
            if (p["metadata"]["namespace"], p["metadata"]["name"]) == (ns, name):
                return p
        raise DetailError(404, f"pod {name} not found in namespace {ns}")

    def get_pod(self, ns, name):
        return self._pod(ns, name)

    def pod_events(self, ns, name, uid=""):
        return []

    def open_logs(self, ns, name, container, previous, tail_lines, follow):
        self._pod(ns, name)
        self.log_calls.append((ns, name, container, previous))
        return iter([f"{name} says hi"])

    def pod_exists(self, ns, name):
        return True


@pytest.mark.asyncio
async def test_row_actions_open_detail_screens():
    from screens.pod_detail import PodDetailScreen

    src = StubDetailSource(forbidden={"istio-system"})
    app = PaneApp(Provider(PODS), detail_source=src)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        await pilot.pause(0.1)
        table = pane.query_one(PodGrid)
        table.focus()
        row = names(pane).index("db-0")
        table.move_cursor(row)
        await pilot.pause()
        assert pane.selected_key == ("demo", "db-0")

        async def open_with(key):
            before = app.screen
            await pilot.press(key)
            for _ in range(100):
                await pilot.pause(0.02)
                if isinstance(app.screen, PodDetailScreen) and app.screen is not before and app.screen.loaded:
                    return app.screen
            raise AssertionError(f"{key}: no detail screen")

        screen = await open_with("d")
        assert (screen.mode, screen.namespace, screen.pod_name) == ("describe", "demo", "db-0")
        assert screen.text()[0].split() == ["Name:", "db-0"]
        assert any("CrashLoopBackOff" in line for line in screen.text())
        await pilot.press("escape")
        await pilot.pause()
        screen = await open_with("y")
        assert screen.mode == "yaml" and "  name: db-0" in screen.text()
        await pilot.press("escape")
        screen = await open_with("l")
        assert src.log_calls[-1] == ("demo", "db-0", "c", False)
        assert screen.text() == ["db-0 says hi"]
        await pilot.press("escape")
        screen = await open_with("p")
        assert src.log_calls[-1] == ("demo", "db-0", "c", True)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one(PodsPane) is pane

        # A forbidden namespace: the message names the missing permission; no crash.
        table.move_cursor(names(pane).index("ztunnel-4mzqv"))
        await pilot.pause()
        screen = await open_with("d")
        assert screen.error == "forbidden: needs permission to get pods in namespace istio-system"


# --- the line-rendered grid: incremental order, cursor, partial repaints ----------------------

STATUSES = ["Running", "Pending", "CrashLoopBackOff", "Completed", "Terminating"]


class RowsProvider:
    """A snapshot provider holding PodRow objects directly (thousands of rows, no pod JSON)."""

    def __init__(self, rows):
        self.version, self.rows = 1, dict(rows)

    def set(self, rows):
        self.rows = dict(rows)
        self.version += 1

    def snapshot(self):
        return Snapshot(self.version, dict(self.rows), WATCHING, "", {}, None)


def random_row(rnd, i):
    ready = rnd.choice(["1/1", "0/1", "2/2", "1/2"])
    return PodRow(f"ns-{rnd.randrange(20):02d}", f"pod-{i:05d}", ready, rnd.choice(STATUSES),
                  rnd.randrange(5), T0 + rnd.randrange(0, 10_000), f"node-{rnd.randrange(9)}",
                  rnd.choice(["enrolled", "none", "opted-out"]))


def full_sort(rows, column, reverse):
    """The expected order, by a plain sort of all rows (ties by namespace, name)."""
    def value(r):
        if column == "restarts":
            return r.restarts
        if column == "age":
            return -r.created
        if column == "ready":
            n, _, m = r.ready.partition("/")
            return (int(n), int(m))
        return getattr(r, column)
    return [r.key for r in sorted(rows.values(), key=lambda r: (value(r), r.key), reverse=reverse)]


class RowsApp(App):
    def __init__(self, provider, clock, **kw):
        super().__init__()
        self.provider, self.clock, self.kw = provider, clock, kw

    def compose(self) -> ComposeResult:
        self.kw.setdefault("pace", 0)  # merge at every check (pacing: its own test)
        yield PodsPane(self.provider, now=lambda: self.clock[0], interval=0.05, **self.kw)


def shown_keys(pane):
    return [(r[0], r[1]) for r in pane.table_rows()]


@pytest.mark.asyncio
async def test_incremental_insert_remove_matches_a_full_sort():
    rnd = random.Random(5)
    rows = {r.key: r for r in (random_row(rnd, i) for i in range(2000))}
    provider = RowsProvider(rows)
    app = RowsApp(provider, [NOW])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        await pilot.pause(0.1)
        assert shown_keys(pane) == full_sort(rows, "namespace", False)
        next_id = 2000
        for round_ in range(12):
            column = COLUMNS[round_ % len(COLUMNS)]
            pane.set_sort(column, reverse=bool(round_ % 2))
            # Churn with the sort fixed: remove some, add some, change some (incl. sort values).
            for key in rnd.sample(sorted(rows), 150):
                del rows[key]
            for _ in range(150):
                r = random_row(rnd, next_id)
                rows[r.key] = r
                next_id += 1
            for key in rnd.sample(sorted(rows), 150):
                old = random_row(rnd, 0)
                r = rows[key]
                rows[key] = PodRow(r.namespace, r.name, old.ready, old.status, old.restarts,
                                   old.created, old.node, old.ambient)
            merges = pane.refreshes
            provider.set(rows)
            pane.refresh_now()  # merge now (the timer would do the same)
            assert pane.refreshes == merges + 1
            assert shown_keys(pane) == full_sort(rows, column, bool(round_ % 2)), column
        assert len(pane.table_rows()) == 2000


@pytest.mark.asyncio
async def test_cursor_stays_on_the_same_pod_when_rows_above_it_go():
    rnd = random.Random(7)
    rows = {r.key: r for r in (random_row(rnd, i) for i in range(60))}
    provider = RowsProvider(rows)
    app = RowsApp(provider, [NOW])
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        grid = pane.query_one(PodGrid)
        await pilot.pause(0.1)
        assert app.focused is grid
        for _ in range(25):
            await pilot.press("down")
        key = pane.selected_key
        assert key == shown_keys(pane)[25]
        above = shown_keys(pane)[:10]
        provider.set({k: r for k, r in rows.items() if k not in above})
        await pilot.pause(0.15)
        assert pane.selected_key == key and grid.cursor == 15
        # Sorting differently moves the pod; the cursor goes with it.
        await pilot.press("O")
        assert pane.selected_key == key
        # Keys: end / home / page down.
        await pilot.press("end")
        assert pane.selected_key == shown_keys(pane)[-1]
        await pilot.press("home")
        assert pane.selected_key == shown_keys(pane)[0]
        await pilot.press("pagedown")
        assert grid.cursor == grid.body_height
        # The selected pod itself goes: the cursor keeps its place.
        gone = pane.selected_key
        provider.set({k: r for k, r in provider.rows.items() if k != gone})
        await pilot.pause(0.15)
        assert gone not in shown_keys(pane) and grid.cursor == grid.body_height


@pytest.mark.asyncio
async def test_mouse_click_selects_a_row_and_sorts_by_a_header():
    app = PaneApp(Provider(PODS))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        grid = pane.query_one(PodGrid)
        await pilot.pause(0.1)
        await pilot.click(grid, offset=(20, 3))  # line 0 header, line 3 = third row
        assert pane.selected_key == (pane.table_rows()[2][0], pane.table_rows()[2][1])
        # Header click on RST (after NAMESPACE, NAME, READY, STATUS and their gaps): sort by
        # it; a second click reverses.
        rst_x = sum(grid.widths[:4]) + 2 * 4 + 1
        await pilot.click(grid, offset=(rst_x, 0))
        assert pane.sort_column == "restarts" and not pane.sort_reverse
        assert [int(r[4]) for r in pane.table_rows()] == sorted(int(r[4]) for r in pane.table_rows())
        await pilot.click(grid, offset=(rst_x, 0))
        assert pane.sort_reverse and names(pane)[0] == "db-0"


@pytest.mark.asyncio
async def test_only_changed_visible_lines_are_repainted():
    rnd = random.Random(3)
    rows = {}
    for i in range(60):  # 60 pods, ~20 on screen; all old except the first five (young)
        r = random_row(rnd, i)
        created = NOW - 5 - i if i < 5 else NOW - 7200 - 60 * i
        r = PodRow("demo", r.name, "1/1", "Running", 0, created, "node-0", "enrolled")
        rows[r.key] = r
    clock = [NOW]
    provider = RowsProvider(rows)
    app = RowsApp(provider, clock, age_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(PodsPane)
        grid = pane.query_one(PodGrid)
        await pilot.pause(0.2)
        drawn = []
        real = grid.render_line

        def spy(y):
            drawn.append(y)
            return real(y)
        grid.render_line = spy
        on_screen = [k for k in (grid.key_at(i) for i in grid.visible_indexes())]
        assert 10 < len(on_screen) < 60

        # Idle (timers keep ticking, nothing changed): nothing is drawn.
        await pilot.pause(0.3)
        assert drawn == []

        # One visible pod changes: only its line is drawn.
        key = on_screen[7]
        r = rows[key]
        rows[key] = PodRow(r.namespace, r.name, r.ready, r.status, 3, r.created, r.node, r.ambient)
        provider.set(rows)
        await pilot.pause(0.2)
        assert set(drawn) == {1 + 7}

        # A pod below the screen changes: nothing is drawn.
        drawn.clear()
        key = grid.key_at(grid.row_count - 1)
        assert key not in on_screen
        r = rows[key]
        rows[key] = PodRow(r.namespace, r.name, r.ready, "Pending", 0, r.created, r.node, r.ambient)
        provider.set(rows)
        await pilot.pause(0.2)
        assert drawn == []

        # One second later only the young pods' ages read differently: only their lines.
        clock[0] = NOW + 1
        await pilot.pause(0.2)
        young = {1 + i for i, k in enumerate(on_screen) if NOW - rows[k].created < 60}
        assert len(young) == 5 and set(drawn) == young


@pytest.mark.asyncio
async def test_a_big_full_list_is_frozen_out_of_gc_scans_a_small_one_is_not():
    """screens/gc_pauses.py: the rows of a full list of BIG_LIST pods or more are moved out of
    the collector's full scans (they are long-lived); a small list is left alone."""
    import gc

    from screens.gc_pauses import BIG_LIST

    small = Provider(PODS)
    gc.unfreeze()
    async with PaneApp(small).run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert len(pilot.app.query_one(PodsPane).table_rows()) == len(PODS)
        assert gc.get_freeze_count() == 0

    big = Provider([pod(f"p-{i}", created=i) for i in range(BIG_LIST)])
    async with PaneApp(big).run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert len(pilot.app.query_one(PodsPane).table_rows()) == BIG_LIST
        frozen = gc.get_freeze_count()
    gc.unfreeze()  # give the rest of the test session its collector back
    assert frozen > BIG_LIST  # at least the rows, each an object tracked by the collector
