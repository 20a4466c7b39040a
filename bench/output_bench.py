"""Output: N lines (`seq N`) streamed through one step, the real Runner and a Journal, into
the main screen's output pane (headless `run_test`, 120x40).

Reports lines/s (lines that reached the journal / wall time of the step, from the key press to
the end of the run) and RSS growth: VmHWM (peak) after the run minus VmRSS before it, with the
peak counter reset (/proc/self/clear_refs) just before the run.

    python bench/output_bench.py [--lines 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["XDG_CONFIG_HOME"] = "/nonexistent"

from ambient_tui.engine.events import EventKind  # noqa: E402
from ambient_tui.engine.journal import Journal  # noqa: E402
from ambient_tui.engine.plan import Phase, Plan, Step, StepState  # noqa: E402
from ambient_tui.engine.runner import Runner  # noqa: E402
from screens.app import AmbientApp  # noqa: E402


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def bench(n: int, journal_dir: Path) -> dict:
    plan = Plan(title="output bench", phases=[Phase("p", "Stream", [
        Step("seq", f"seq {n}", argv=["seq", str(n)], timeout=600)])])
    journal = Journal(journal_dir / "journal.jsonl")
    runner = Runner(plan, journal=journal)
    seen = 0

    def count(event) -> None:
        nonlocal seen
        if event.kind is EventKind.OUTPUT:
            seen += 1

    runner.subscribe(count)
    app = AmbientApp(plan, runner, context="bench", istio_version="0")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        before = _status_kb("VmRSS")
        peak_reset = _reset_peak()
        start = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        elapsed = time.perf_counter() - start
        await pilot.pause(0.2)  # the last flush tick
        pane_lines = app.screen.query_one("#output").line_count
        peak = _status_kb("VmHWM")
        state = plan.step("seq").state
    journal.close()
    return {"lines": seen, "elapsed": elapsed, "rate": seen / elapsed, "rss_before_mb": before / 1024,
            "rss_growth_mb": (peak - before) / 1024, "peak_reset": peak_reset,
            "pane_lines": pane_lines, "state": state.value}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = asyncio.run(bench(args.lines, Path(d)))
    assert r["state"] == StepState.SUCCEEDED.value, r
    print(f"{r['lines']} lines in {r['elapsed']:.2f}s: {r['rate']:,.0f} lines/s reached the journal")
    print(f"RSS before {r['rss_before_mb']:.1f} MB, peak growth {r['rss_growth_mb']:.1f} MB"
          f"{'' if r['peak_reset'] else ' (peak not reset: includes start-up)'}")
    print(f"pane holds {r['pane_lines']} lines (bounded)")


if __name__ == "__main__":
    main()
