"""Start-up: process start -> first complete frame of the main screen, vs a bare Textual app.

Both apps run headless in fresh subprocesses, alternating, N times each in the same run. The
env var AMBIENT_TUI_EXIT_AFTER_FIRST_FRAME makes each exit from `call_after_refresh` after its
first mount, i.e. once the first full frame has been composed and painted. Wall time is
measured around the whole subprocess (interpreter start and imports included).

    python bench/startup_bench.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = """
import os
from textual.app import App
from textual.widgets import Footer, Header
class Bare(App):
    BINDINGS = [("q", "quit", "Quit")]
    def compose(self):
        yield Header()
        yield Footer()
    def on_mount(self):
        self.call_after_refresh(self.exit)
Bare().run(headless=True, size=(120, 40))
"""

MAIN = """
from ambient_tui.plans.install import build_install_plan
from ambient_tui.settings import Settings
from screens.app import AmbientApp
plan = build_install_plan(Settings())
AmbientApp(plan, context="bench", istio_version=plan.meta.get("istio_version", "")).run(
    headless=True, size=(120, 40))
"""


def once(code: str) -> float:
    env = {**os.environ, "AMBIENT_TUI_EXIT_AFTER_FIRST_FRAME": "1",
           "XDG_CONFIG_HOME": "/nonexistent", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    once(BARE), once(MAIN)  # warm the file cache and .pyc files
    bare, main_ = [], []
    for _ in range(args.runs):
        bare.append(once(BARE))
        main_.append(once(MAIN))
    mb, mm = statistics.median(bare), statistics.median(main_)
    ratio = mm / mb
    print(f"bare Header+Footer app: median {mb:.3f}s (min {min(bare):.3f}, max {max(bare):.3f})")
    print(f"ambient-tui main screen: median {mm:.3f}s (min {min(main_):.3f}, max {max(main_):.3f})")
    print(f"ratio {ratio:.2f} (goal <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'})")
    # Which heavy modules does the main app import? (lazy imports keep these out)
    probe = subprocess.run(
        [sys.executable, "-c", MAIN.replace("AmbientApp(plan", "import sys; print(sorted("
         "m for m in ('kubernetes', 'boto3', 'botocore') if m in sys.modules)); (lambda *a, **k: None)(plan")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    heavy = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else "?"
    print(f"kubernetes/boto3 imported by the plan + screens.app imports: {heavy}")


if __name__ == "__main__":
    main()
