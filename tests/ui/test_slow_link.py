"""What `--slow-link` changes on screen (screens/link.py): the pod pane merges a churning list
every 2 s and ticks ages every 30 s, Textual's animations are off, the filter box does not
blink, elapsed counters move in 10 s steps, the output pane and step rows redraw twice a
second, the Helm pane merges every 2 s. Without the flag, everything is as before."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from ambient_tui.engine.plan import Phase, Plan, Step
from ambient_tui.watch.pods import WATCHING, Snapshot
from screens import link
from screens.app import AmbientApp, PodsApp
from screens.pods import PodsPane
from screens.progress import format_elapsed


class Provider:  # stands in for the PodWatcher: no cluster in the ui tier
    version = 1

    def snapshot(self):
        return Snapshot(1, {}, WATCHING, "", {}, None)


@pytest.mark.asyncio
@pytest.mark.parametrize("slow", [False, True])
async def test_pods_app_profile(slow):
    app = PodsApp(Provider(), slow_link=slow)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        pane = app.query_one(PodsPane)
        assert pane.pace == (4.0 if slow else 2.0)
        assert pane.age_interval == (30.0 if slow else 10.0)
        assert app.animation_level == ("none" if slow else "full")
        await pilot.press("slash")
        box = app.query_one("#pods-filter", Input)
        assert box.cursor_blink is (not slow)


def plan():
    return Plan("demo", [Phase("p", "Phase", [Step("s", "Step", argv=["true"])])])


@pytest.mark.asyncio
@pytest.mark.parametrize("slow", [False, True])
async def test_main_screen_profile(slow):
    app = AmbientApp(plan(), slow_link=slow)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert link.of(app.screen) is (link.SLOW if slow else link.NORMAL)
        assert app.animation_level == ("none" if slow else "full")
        # the main screen's redraw timer (output pane, step rows, progress)
        assert (0.5 if slow else 0.1) in {round(t._interval, 3) for t in app.screen._timers}


def test_elapsed_counters_move_in_steps():
    assert format_elapsed(47) == "0:47"
    assert format_elapsed(47, link.SLOW.elapsed_step) == "0:40"
    assert format_elapsed(3671, 10) == "1:01:10"
