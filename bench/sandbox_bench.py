"""Benchmark the sandbox: warm `sandbox up` (until API ready + nodes Ready) and `sandbox down`.

Runs the real CLI (`python -m ambient_tui.sandbox.commands`) several times and writes the
"Sandbox" section of bench/RESULTS.md, with the cold build times from the part stamps.

    python bench/sandbox_bench.py [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.sandbox import build  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
UP_GOAL, DOWN_GOAL = 15.0, 5.0


def cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ambient_tui.sandbox.commands", *args],
                       capture_output=True, text=True, env=env, timeout=300)
    return time.monotonic() - t0, p


def pgrep(pattern: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()


def cold_build() -> list[tuple[str, float | None]]:
    rows = []
    for p in build.PARTS:
        stamp = p.path() / build.STAMP
        secs = json.loads(stamp.read_text()).get("seconds") if stamp.is_file() else None
        rows.append((p.dirname, secs))
    return rows


def section(ups: list[float], downs: list[float], leftovers: int, cold_note: str = "") -> str:
    rows = cold_build()
    total = sum(s for _, s in rows if s)
    cpu = os.cpu_count()
    lines = [
        "## Sandbox",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({cpu} cores, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}), "
        "by `python bench/sandbox_bench.py`.",
        "",
        "| measure | runs | median | min | max | goal | met |",
        "|---|---|---|---|---|---|---|",
        f"| warm `sandbox up` (API answers, 3 nodes Ready, AWS up) | {len(ups)} | "
        f"{statistics.median(ups):.1f} s | {min(ups):.1f} s | {max(ups):.1f} s | "
        f"<= {UP_GOAL:.0f} s | {'yes' if statistics.median(ups) <= UP_GOAL else 'no'} |",
        f"| `sandbox down` | {len(downs)} | {statistics.median(downs):.1f} s | {min(downs):.1f} s | "
        f"{max(downs):.1f} s | <= {DOWN_GOAL:.0f} s | "
        f"{'yes' if statistics.median(downs) <= DOWN_GOAL else 'no'} |",
        "",
        f"Processes left after `down`: {leftovers}.",
        "",
        "Cold build (first `python -m ambient_tui.sandbox.build`, from the part stamps; "
        "Go module downloads included, no goal):",
        "",
        "| part | seconds |",
        "|---|---|",
        *(f"| {name} | {secs if secs is not None else 'not built'} |" for name, secs in rows),
        f"| **total** | **{total:.0f}** |",
        "",
        *([cold_note, ""] if cold_note else []),
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    # Replace our own section only; other sections belong to other benchmarks.
    pat = re.compile(r"^## Sandbox\n.*?(?=^## |\Z)", re.S | re.M)
    new = pat.sub(text, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cold-note", default="", help="a line about how the cold build was run")
    a = ap.parse_args()
    if build.missing():
        print("parts missing; run python -m ambient_tui.sandbox.build", file=sys.stderr)
        return 1
    ups, downs, leftovers = [], [], 0
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        sd = str(Path(tmp) / "sb")
        for i in range(a.runs):
            t, p = cli("up", "--state-dir", sd, "--no-build")
            if p.returncode != 0:
                print(p.stdout, p.stderr, file=sys.stderr)
                cli("down", "--state-dir", sd)
                return 1
            ups.append(t)
            t, p = cli("down", "--state-dir", sd)
            downs.append(t)
            left = pgrep(sd)
            leftovers += len(left)
            print(f"run {i + 1}: up {ups[-1]:.2f}s down {downs[-1]:.2f}s leftovers {len(left)}")
    text = section(ups, downs, leftovers, a.cold_note)
    print(text)
    if not a.no_write:
        write_section(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
