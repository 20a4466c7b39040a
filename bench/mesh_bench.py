"""Mesh pane under load: 2,000 namespaces (half enrolled), 20,000 pods, 100 pod changes/s,
against a baseline of 20 namespaces and 200 pods in the same run.

What is real and what is not: the pane (screens/mesh.py), the app around it (AmbientApp in
Textual's headless driver, 120x40) and MeshWatcher's merge and snapshot code
(ambient_tui/mesh/watch.py) are the product's. The API server is NOT in the loop: a feeder
thread calls the watcher's list/event handlers (`_replace`, `_apply`, what its watch threads
call) with pod JSON shaped like the API's, 100 changes/s (half new pods, half deletions), so
the figures are the pane's and the merge's cost, not the API server's or the network's.

Figures per size:
- first frame: app start -> the mesh pane shown with every namespace row (press 5 at once);
- key p99: a `down`/`up` key event posted to the app -> the table's cursor moved AND the
  table painted after that (its render_lines called by the compositor), 200 keys during
  churn. (Pilot's press is not used: it waits for the process to go idle, which it never
  does under churn.);
- CPU: process CPU time / wall time during 20 s of churn with keys (100% = one core; the
  feeder thread counts too, so this is an upper bound for the pane);
- RSS: peak resident set (VmHWM) of the process.

    .venv/bin/python bench/mesh_bench.py [--churn 20] [--keys 200] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"first_frame_s": 2.0, "key_p99_ms": 100.0, "cpu_pct": 30.0, "rss_mb": 300.0}


def pod_json(ns, name, node, captured):
    return {"metadata": {"namespace": ns, "name": name, "labels": {"app": name.rsplit("-", 1)[0]},
                         "annotations": {"ambient.istio.io/redirection": "enabled"} if captured else {}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def load(watcher, namespaces: int, pods: int):
    from ambient_tui.watch.listwatch import Loop

    loops = {k: Loop(key=k, kind=k, namespace=None, scope=k) for k in
             ("namespaces", "pods", "nodes", "gateways", "deployments", "networkpolicies")}
    names = [f"team-{i:04d}" for i in range(namespaces)]
    watcher._replace(loops["namespaces"], [
        {"metadata": {"name": n, "labels": {"istio.io/dataplane-mode": "ambient"} if i % 2 == 0 else {}}}
        for i, n in enumerate(names)])
    nodes = [f"kwok-node-{i}" for i in range(3)]
    watcher._replace(loops["nodes"], [{"metadata": {"name": n}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}} for n in nodes])
    items = [pod_json(names[i % namespaces], f"app-{i}", nodes[i % 3], i % 4 != 0) for i in range(pods)]
    items += [{**pod_json("istio-system", f"ztunnel-{n}", nodes[n], False),
               "metadata": {"namespace": "istio-system", "name": f"ztunnel-{n}", "labels": {"app": "ztunnel"}}}
              for n in range(3)]
    watcher._replace(loops["pods"], items)
    for k in ("gateways", "deployments", "networkpolicies"):
        watcher._replace(loops[k], [])
    watcher._set_state("bench", "watching")
    return loops, names, nodes


def churn(watcher, loops, names, nodes, rate, stop: threading.Event, counter: list[int]):
    rng = random.Random(7)
    live = [f"app-{i}" for i in range(len(names) * 0)]  # new pods only; deletions pick them
    n = 0
    period = 1.0 / rate
    t_next = time.monotonic()
    while not stop.is_set():
        ns = names[rng.randrange(len(names))]
        if live and n % 2:
            name, ns = live.pop(rng.randrange(len(live)))
            watcher._apply(loops["pods"], "DELETED", pod_json(ns, name, nodes[0], True))
        else:
            name = f"churn-{n}"
            live.append((name, ns))
            watcher._apply(loops["pods"], "ADDED", pod_json(ns, name, nodes[n % 3], n % 3 != 0))
        n += 1
        counter[0] = n
        t_next += period
        stop.wait(max(0.0, t_next - time.monotonic()))


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(namespaces: int, pods: int, churn_s: float, keys: int) -> dict:
    from ambient_tui.engine.plan import Phase, Plan, Step
    from ambient_tui.engine.runner import Runner
    from ambient_tui.mesh.watch import MeshWatcher
    from screens.app import AmbientApp
    from screens.mesh import MeshPane

    watcher = MeshWatcher(source=object())
    loops, names, nodes = load(watcher, namespaces, pods)
    plan = Plan("bench", [Phase("p", "p", [Step("noop", "noop", argv=["true"])])])
    app = AmbientApp(plan, Runner(plan), context="bench", keymap_path=Path("/nonexistent"))
    app.mesh_provider, app.mesh_kube = watcher, object()
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        while not (app.screen.query(MeshPane) and
                   app.screen.query_one(MeshPane).query_one("DataTable").row_count >= namespaces + 1):
            await asyncio.sleep(0.01)
        await pilot.pause()
        first = time.perf_counter() - t0
        pane = app.screen.query_one(MeshPane)
        table = pane.query_one("DataTable")
        stop, counter = threading.Event(), [0]
        feeder = threading.Thread(target=churn, args=(watcher, loops, names, nodes, 100, stop, counter), daemon=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        feeder.start()
        from textual import events

        painted = [0.0]
        real_render = table.render_lines

        def render_lines(crop):  # the compositor paints the table: note when
            painted[0] = time.perf_counter()
            return real_render(crop)

        table.render_lines = render_lines
        lat, moved = [], []
        end = wall0 + churn_s
        step = 1
        for i in range(keys):
            before = table.cursor_row
            if before + step < 0 or before + step >= table.row_count:
                step = -step  # turn at the table's ends, so every key moves the cursor
            key = "down" if step > 0 else "up"
            k0 = time.perf_counter()
            app.post_message(events.Key(key, None))
            while table.cursor_row == before or painted[0] < k0:
                await asyncio.sleep(0.001)
                if time.perf_counter() - k0 > 5:
                    raise AssertionError("the key was not handled within 5 s")
            moved_at = time.perf_counter()
            moved.append((moved_at - k0) * 1000)
            while painted[0] < moved_at - 0.0005 and time.perf_counter() - moved_at < 1:
                await asyncio.sleep(0.001)
            lat.append((painted[0] - k0) * 1000)
            await asyncio.sleep(max(0.0, (end - time.perf_counter()) / max(1, keys - i)) * 0.5)
        while time.perf_counter() < end:
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - wall0
        cpu = (time.process_time() - cpu0) / wall * 100
        stop.set()
        feeder.join()
        shown = sum(r.pods for r in pane.state.namespaces if r.name.startswith("team-"))
    lat.sort()
    moved.sort()
    return {"namespaces": namespaces, "pods": pods, "first_frame_s": round(first, 3),
            "key_p50_ms": round(lat[len(lat) // 2], 1), "key_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
            "moved_p50_ms": round(moved[len(moved) // 2], 1), "moved_p99_ms": round(moved[int(len(moved) * 0.99) - 1], 1),
            "cpu_pct": round(cpu, 1), "rss_mb": round(peak_rss_mb(), 1), "changes": counter[0],
            "changes_per_s": round(counter[0] / wall, 1), "pods_shown_at_end": shown}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--churn", type=float, default=20.0)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("XDG_STATE_HOME", "/tmp/mesh-bench-state")
    asyncio.run(measure(5, 50, 2, 10))  # warm-up (imports, first app): not reported
    base = asyncio.run(measure(20, 200, args.churn, args.keys))
    big = asyncio.run(measure(2000, 20000, args.churn, args.keys))
    rows = []
    for k in ("first_frame_s", "moved_p50_ms", "moved_p99_ms", "key_p50_ms", "key_p99_ms", "cpu_pct",
              "rss_mb", "changes_per_s"):
        ratio = big[k] / base[k] if base[k] else float("nan")
        goal = GOALS.get(k)
        verdict = "" if goal is None else ("meets" if big[k] <= goal else "MISSES")
        rows.append(f"| {k} | {base[k]} | {big[k]} | {ratio:.2f} | {goal if goal else ''} {verdict} |")
    load_avg = open("/proc/loadavg").read().split()[:3]
    text = "\n".join([
        "", "## Mesh pane at 2,000 namespaces and 20,000 pods", "",
        f"`bench/mesh_bench.py --churn {args.churn:g} --keys {args.keys}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
        f" load average {' '.join(load_avg)} (2 shared cores). The pane, the app and MeshWatcher's merge are real;"
        " the API server is not in the loop (a feeder thread calls the watcher's event handlers at 100 pod"
        " changes/s), so these are the pane's and the merge's costs. CPU includes the feeder thread."
        " moved: key event -> the cursor row changed; key: -> the table painted after that.", "",
        "| figure | baseline (20 ns, 200 pods) | 2,000 ns, 20,000 pods | ratio | goal |",
        "|---|---|---|---|---|", *rows, ""])
    print(text)
    print(base, big, sep="\n")
    if not args.no_write:
        with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
