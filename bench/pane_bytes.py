"""Where the bytes to the terminal go: bytes per frame, frames per second and bytes per screen
row of the pod pane, in a real pty, without a cluster.

The app is the real `PodsApp` (screens/app.py) on a real pty; only the PodWatcher is replaced
by `ChurnProvider`, a stand-in for the API server (named so: it is the one fake here) that
holds N pods and, after SIGUSR1, creates and deletes `--rate` pods per second, each new pod
going Pending -> ContainerCreating -> Running over its first second like kwok's. The cluster
benchmark (bench/pods_bench.py) measures the same pane against a real API server; this one
only says which part of the screen the bytes are spent on, quickly.

A frame is a run of output chunks with less than 10 ms between them (Textual writes one frame
per screen update, at most 60 a second; a big one arrives in 4 KB pieces). Rows are told apart by the cursor moves in the byte stream (CSI y;x H).

    python bench/pane_bytes.py [--pane pods|output] [--rows 100] [--rate 100] [--seconds 15] [--slow-link]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

COLS, ROWS = 120, 40
FRAME_GAP = 0.010  # frames are >= 16 ms apart (60 fps at most); a big one arrives in 4 KB pieces
MOVE = re.compile(rb"\x1b\[(\d+);(\d+)H")


# --- the child: the real app on a stand-in provider -----------------------------------------

class ChurnProvider:
    """The PodWatcher's `version`/`snapshot()` contract over rows made here (stand-in for the
    API server: no cluster in this benchmark)."""

    def __init__(self, n: int, rate: float) -> None:
        from ambient_tui.watch.rows import PodRow

        self.PodRow = PodRow
        self.rate = rate
        self._lock = threading.Lock()
        self.version = 1
        now = time.time()
        self.rows = {}
        for i in range(n):
            self._put(PodRow(f"bench-{i // 1000:02d}", f"pod-{i:05d}", "1/1", "Running", 0, now - 30,
                             f"kwok-node-{i % 3}", "none", {}, ""))
        self.serial = 0
        self.rnd = random.Random(5)
        self.state = "watching"

    def _put(self, row) -> None:
        self.rows[row.key] = row

    def snapshot(self):
        from ambient_tui.watch.pods import Snapshot

        with self._lock:
            return Snapshot(self.version, dict(self.rows), self.state, "", {}, None)

    def start_churn(self) -> None:
        threading.Thread(target=self._churn, daemon=True).start()

    def _churn(self) -> None:
        PodRow, i, t0 = self.PodRow, 0, time.monotonic()
        young: list[tuple[float, tuple[str, str]]] = []
        while True:
            due = t0 + i / self.rate
            time.sleep(max(0.0, due - time.monotonic()))
            now = time.time()
            with self._lock:
                if i % 2 == 0:
                    self.serial += 1
                    ns = f"bench-{self.rnd.randrange(max(1, len(self.rows) // 1000)):02d}"
                    r = PodRow(ns, f"churn-{self.serial:06d}", "0/1", "Pending", 0, now,
                               f"kwok-node-{self.serial % 3}", "none", {}, "")
                    self._put(r)
                    young.append((now, r.key))
                else:
                    key = self.rnd.choice(list(self.rows))
                    del self.rows[key]
                for born, key in list(young):  # kwok: ContainerCreating at 0.3 s, Running at 1 s
                    r = self.rows.get(key)
                    if r is None:
                        young.remove((born, key))
                        continue
                    want = ("1/1", "Running") if now - born >= 1 else ("0/1", "ContainerCreating") \
                        if now - born >= 0.3 else None
                    if want and (r.ready, r.status) != want:
                        self._put(PodRow(r.namespace, r.name, want[0], want[1], 0, r.created, r.node,
                                         r.ambient, {}, ""))
                        if want[1] == "Running":
                            young.remove((born, key))
                self.version += 1
            i += 1


def output_child(args) -> int:
    """The output pane (screens/widgets.OutputPane) as the main screen drives it: lines are
    buffered as they come (`--rate` per second after SIGUSR1) and written by the redraw timer
    (screens/link.py output_flush: 20 Hz, --slow-link 2 Hz)."""
    from textual.app import App

    from screens import link, partial_updates
    from screens.widgets import OutputPane

    partial_updates.install()
    prof = link.profile(args.slow_link)
    pending: list[str] = []
    state = {"on": False, "n": 0, "t0": 0.0}

    class OutputApp(App):
        def compose(self):
            yield OutputPane()

        def on_mount(self):
            self.animation_level = prof.animation_level
            self.set_interval(prof.output_flush, self.flush)

        def flush(self):
            if state["on"]:  # the lines a step printed since the last redraw
                due = int((time.monotonic() - state["t0"]) * args.rate)
                pending.extend(f"helm: {i:07d} applying manifest chunk, {i * 7 % 1000} objects"
                               for i in range(state["n"], due))
                state["n"] = due
            if pending:
                self.query_one(OutputPane).write_lines(list(pending))
                pending.clear()

    def go(*_):
        state.update(on=True, t0=time.monotonic())

    signal.signal(signal.SIGUSR1, go)
    return int(OutputApp().run() or 0)


def child(args) -> int:
    if args.pane == "output":
        return output_child(args)
    from screens.app import run_pods_app

    provider = ChurnProvider(args.rows, args.rate)
    signal.signal(signal.SIGUSR1, lambda *_: provider.start_churn())
    extra = {"slow_link": True} if args.slow_link else {}
    return int(run_pods_app(provider, title="pane_bytes", **extra) or 0)


# --- the parent: the terminal ---------------------------------------------------------------

def frames(chunks: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    out: list[tuple[float, bytes]] = []
    last = -1.0
    for t, c in chunks:
        if out and t - last < FRAME_GAP:
            out[-1] = (out[-1][0], out[-1][1] + c)
        else:
            out.append((t, c))
        last = t
    return out


def bytes_per_row(data: bytes) -> Counter:
    """Bytes written to each screen row (0-based), following cursor moves and newlines."""
    rows: Counter = Counter()
    y, pos = 0, 0
    for m in MOVE.finditer(data):
        seg = data[pos:m.start()]
        for part_i, part in enumerate(seg.split(b"\n")):
            rows[y + part_i] += len(part) + (1 if part_i else 0)
        y = int(m.group(1)) - 1
        rows[y] += len(m.group(0))
        pos = m.end()
    for part_i, part in enumerate(data[pos:].split(b"\n")):
        rows[y + part_i] += len(part) + (1 if part_i else 0)
    return rows


def phase(app, seconds: float) -> dict:
    t0 = time.monotonic()
    c0 = app.cpu_seconds()
    time.sleep(seconds)
    t1 = time.monotonic()
    c1 = app.cpu_seconds()
    with app._lock:
        chunks = [(t, c) for t, c in zip(app.times, app.chunks) if t0 <= t < t1]
    fr = frames(chunks)
    total = sum(len(c) for _, c in chunks)
    per_row: Counter = Counter()
    rows_touched = []
    for _, data in fr:
        r = bytes_per_row(data)
        per_row.update(r)
        rows_touched.append(len([y for y in r if 2 <= y < ROWS - 1]))
    wall = t1 - t0
    return {"bytes_s": total / wall, "fps": len(fr) / wall,
            "bytes_frame": total / len(fr) if fr else 0.0,
            "body_rows_per_frame": sum(rows_touched) / len(rows_touched) if rows_touched else 0.0,
            "cpu": 100 * (c1 - c0) / wall,
            "bands": {"status line (row 0)": per_row[0] / wall, "table header (row 1)": per_row[1] / wall,
                      "table body": sum(v for y, v in per_row.items() if 2 <= y < ROWS - 1) / wall,
                      "footer": per_row[ROWS - 1] / wall}}


def parent(args) -> int:
    from _pty import PtyApp

    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "NO_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT))
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--rows", str(args.rows),
            "--rate", str(args.rate), "--pane", args.pane] + (["--slow-link"] if args.slow_link else [])
    app = PtyApp(argv, env, str(ROOT), COLS, ROWS)
    try:
        time.sleep(args.settle)
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        idle = phase(app, args.seconds)
        os.kill(app.pid, signal.SIGUSR1)
        time.sleep(1.0)
        churn = phase(app, args.seconds)
        load += " -> " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    finally:
        app.stop()
    mode = " --slow-link" if args.slow_link else ""
    what = f"{args.rows} rows, {args.rate:g} changes/s" if args.pane == "pods" else f"{args.rate:g} lines/s"
    print(f"{args.pane} pane{mode}, {what}, {args.seconds:g} s per phase, load {load}")
    print("| phase | bytes/s | frames/s | bytes/frame | body rows/frame | status line B/s | "
          "table header B/s | table body B/s | footer B/s | CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, p in (("idle", idle), ("churn", churn)):
        b = p["bands"]
        print(f"| {name} | {p['bytes_s']:,.0f} | {p['fps']:.1f} | {p['bytes_frame']:,.0f} | "
              f"{p['body_rows_per_frame']:.1f} | {b['status line (row 0)']:,.0f} | "
              f"{b['table header (row 1)']:,.0f} | {b['table body']:,.0f} | {b['footer']:,.0f} | {p['cpu']:.1f} % |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=4.0)
    ap.add_argument("--slow-link", action="store_true")
    ap.add_argument("--pane", choices=["pods", "output"], default="pods")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
