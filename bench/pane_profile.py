"""Where the pod pane's UI time goes at N rows: cProfile of one age tick, one sort reversal and
one merge of 25 changes, in a headless app (no cluster: a static snapshot provider stands in
for the PodWatcher). Numbers are inflated by the profiler; read them as proportions.

    python bench/pane_profile.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ambient_tui.watch.pods import Snapshot  # noqa: E402
from ambient_tui.watch.rows import PodRow  # noqa: E402


class StaticProvider:
    """A snapshot provider holding fixed rows (the watcher's `version`/`snapshot()` contract)."""

    def __init__(self, n: int) -> None:
        created = time.time() - 30  # young pods: ages show seconds, as in the benchmark
        self.rows = {}
        for i in range(n):
            r = PodRow(f"bench-{i // 1000:02d}", f"pod-{i:05d}", "1/1", "Running", 0, created,
                       "ip-10-0-1-10", "none", {"app": "bench"}, "")
            self.rows[r.key] = r
        self.version = 1

    def snapshot(self) -> Snapshot:
        return Snapshot(self.version, dict(self.rows), "watching", "", {}, None)

    def churn(self, n: int) -> None:
        for key in random.sample(list(self.rows), n // 2):
            del self.rows[key]
        for j in range(n - n // 2):
            r = PodRow("bench-05", f"churn-{j}", "0/1", "Pending", 0, time.time(), "ip-10-0-1-10", "none", {}, "")
            self.rows[r.key] = r
        self.version += 1


async def profile(rows: int, top: int) -> None:
    from textual.app import App

    from screens import pods as pods_mod

    provider = StaticProvider(rows)

    class PaneApp(App):
        def get_default_screen(self):
            return pods_mod.PodsScreen(provider)

    app = PaneApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one(pods_mod.PodsPane)

        def merge() -> None:
            provider.churn(25)
            pane.refresh_now()

        for what, action in (("age tick", pane._tick_ages), ("reverse sort", pane.action_reverse_sort),
                             ("merge of 25 changes", merge)):
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            action()
            await pilot.pause()  # the frame that follows is part of the cost
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
            print(f"== {what}: {time.perf_counter() - t0:.3f} s (profiled)")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    asyncio.run(profile(args.rows, args.top))


if __name__ == "__main__":
    main()
