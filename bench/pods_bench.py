"""Pod pane under load: `ambient-tui pods --all-namespaces` in a real pty against a sandbox
control plane holding N pods, N = 100 (baseline) and N = 20,000, in the same run.

For each N, on one fresh sandbox (etcd + kube-apiserver + kwok, loopback only):

1. create N pods (bound to the 3 kwok nodes, which kwok turns Running), concurrently;
2. start the app in a pty (120x40, TERM=xterm-256color, no COLORTERM); this process is the
   terminal and reads every byte the app writes, with its arrival time;
3. wait until the status line shows all pods ("N pods"), then 3 s more (settled);
4. idle: bytes/s and CPU over --idle seconds, no keys, no cluster changes;
5. keys, idle: --keys key presses, spaced out, cluster unchanged;
6. churn: 100 pod changes/s for --churn seconds (half creates of new pods, half deletes of
   random existing ones; kwok turns created pods Running and removes deleted ones, so rows
   appear, change status and disappear), with key presses during it;
7. peak RSS (VmHWM) of the app, then quit with `q`, delete the pods.

Key latency, two keys, alternating:
- `O` (reverse the sort): the status line's arrow flips (`sort namespace↑` <-> `↓`); the
  latency is write -> arrival of the chunk holding the new arrow text. This is exactly "key
  press to changed screen", whatever else the app writes meanwhile; it is the figure judged
  against the goal. (It re-sorts the whole table: the heaviest common key.)
- cursor down/up: nothing on screen identifies the new frame, so two bounds are kept: the
  first output byte after the write (a lower bound; under churn it may be an unrelated merge)
  and output quiescence (last byte before 50 ms of silence; an upper bound).

CPU is utime+stime of the app's process (all threads: UI and watcher) from /proc/PID/stat over
the phase's wall time; 100% = one core. Load average (/proc/loadavg) is recorded: the machine's
2 cores are shared with other work.

Pane variants (--variants, each run against the same pods, one after the other):
  current  screens/pods.py as it is in the tree (the line-rendered PodGrid since the
           DataTable version measured in bench/RESULTS.md was replaced).

    unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/pods_bench.py --variants current'
    options: --pods 20000 --baseline 100 --churn 60 --idle 20 --keys 100 [--no-write]
             [--profile DIR]  (cProfile of each app's UI thread, via AMBIENT_TUI_PODS_PROFILE)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _contenders import K9S_VERSION, Ambient, Contender, K9s, build_k9s, k9s_path  # noqa: E402
from _kube import Kube, pod_manifest  # noqa: E402
from _pty import PtyApp  # noqa: E402

from ambient_tui.sandbox.control_plane import NODES, ControlPlane  # noqa: E402

COLS, ROWS = 120, 40
DOWN, UP, REVERSE = b"\x1b[B", b"\x1b[A", b"O"
GOALS = {"p99": 150.0, "cpu": 50.0, "rss": 400.0, "idle": 1024.0}
PODS_PER_NS = 1000
VARIANTS = {
    "current": "screens/pods.py as it is in the tree (line-rendered PodGrid: sorted list + bisect, only visible lines drawn)",
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


def other_interfaces() -> list[str]:
    """Network interfaces of this network namespace besides lo (netns-aware, unlike /sys)."""
    import socket

    return [name for _, name in socket.if_nameindex() if name != "lo"]


# --- cluster load ------------------------------------------------------------------------------

class Load:
    def __init__(self, cp: ControlPlane, tag: str, n: int) -> None:
        self.kube = Kube(cp.url, cp.admin_token, str(cp.ca_file))
        self.namespaces = [f"bench-{tag}-{i:02d}" for i in range(max(1, (n + PODS_PER_NS - 1) // PODS_PER_NS))]
        self.n = n
        self.live: list[tuple[str, str]] = []
        self.serial = 0
        self.nodes = [name for name, _ in NODES]
        self.errors = 0
        self._live_lock = threading.Lock()  # creates append while the churn picks victims

    def _ok(self, code: int, out: dict, what: str) -> None:
        if code >= 300 and code != 409:
            self.errors += 1
            if self.errors <= 5:
                say(f"{what}: HTTP {code} {out.get('message', '')[:200]}")

    def create_all(self, workers: int = 16) -> float:
        t0 = time.monotonic()
        for ns in self.namespaces:
            code, out = self.kube.request("POST", "/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self._ok(code, out, f"namespace {ns}")
        todo = [(self.namespaces[i // PODS_PER_NS], f"pod-{i:05d}", self.nodes[i % len(self.nodes)])
                for i in range(self.n)]
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda a: self.create(*a), todo))
        return time.monotonic() - t0

    def create(self, ns: str, name: str, node: str, track: bool = True) -> float:
        code, out = self.kube.request("POST", f"/api/v1/namespaces/{ns}/pods", pod_manifest(ns, name, node))
        self._ok(code, out, f"create {ns}/{name}")
        if track and code < 300:
            with self._live_lock:
                self.live.append((ns, name))
        return time.monotonic()

    def delete(self, ns: str, name: str) -> float:
        # gracePeriodSeconds=0: the pod is gone at once. With the default grace kwok has to
        # finish each delete, and on a loaded machine it fell behind (hundreds of pods left
        # Terminating), so the next app in a --vs-k9s run saw a bigger cluster than the last.
        code, out = self.kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0")
        if code != 404:
            self._ok(code, out, f"delete {ns}/{name}")
        return time.monotonic()

    def count(self, selector: str = "") -> int:
        q = f"?limit=1&fieldSelector={quote(selector)}" if selector else "?limit=1"
        n = 0
        for ns in self.namespaces:
            code, out = self.kube.request("GET", f"/api/v1/namespaces/{ns}/pods{q}")
            if code == 200:
                n += len(out.get("items", [])) + int(out.get("metadata", {}).get("remainingItemCount") or 0)
        return n

    def settle(self, timeout: float = 120, near: int | None = None) -> int:
        """Pod count once it stops moving (in-flight creates done, kwok finished the deletes);
        with `near`, also once it is back within 2% of that (a loaded kwok lags on deletes, and
        the next app must see the same cluster as the last)."""
        last, t0 = -1, time.monotonic()
        while time.monotonic() - t0 < timeout:
            n = self.total_pods()
            if n == last and (near is None or abs(n - near) <= max(3, near // 50)):
                return n
            last = n
            time.sleep(2)
        say(f"pod count did not settle{f' near {near}' if near else ''} in {timeout:.0f}s: {last}")
        return last

    def total_pods(self) -> int:
        code, out = self.kube.request("GET", "/api/v1/pods?limit=1")
        return len(out.get("items", [])) + int(out.get("metadata", {}).get("remainingItemCount") or 0)

    def wait_running(self, timeout: float) -> float:
        """Seconds until no pod of ours is Pending (kwok has set them Running)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            pending = sum(1 for ns in self.namespaces for _ in
                          self.kube.request("GET", f"/api/v1/namespaces/{ns}/pods?limit=1&fieldSelector="
                                            + quote("status.phase!=Running"))[1].get("items", []))
            if pending == 0:
                return time.monotonic() - t0
            time.sleep(1.0)
        say(f"warning: pods still not Running after {timeout:.0f}s")
        return time.monotonic() - t0

    def churn(self, rate: float, seconds: float, stop: threading.Event, workers: int = 8) -> dict:
        """`rate` pod changes per second: creates and deletes alternate, paced on a fixed clock.

        Only pods whose create has completed are deleted (so the pod count stays level); when
        none is left, that step creates instead."""
        rnd = random.Random(5)
        done = {"create": 0, "delete": 0}
        t0 = time.monotonic()
        i = 0
        with ThreadPoolExecutor(workers) as ex:
            futures = []
            while not stop.is_set():
                due = t0 + i / rate
                now = time.monotonic()
                if now - t0 >= seconds:
                    break
                if due > now:
                    time.sleep(due - now)
                with self._live_lock:
                    if i % 2 == 0 or not self.live:  # create (also when no created pod is left to delete)
                        self.serial += 1
                        pod = (rnd.choice(self.namespaces), f"churn-{self.serial:06d}")
                        futures.append(ex.submit(self.create, *pod, self.nodes[self.serial % len(self.nodes)]))
                        done["create"] += 1
                    else:
                        j = rnd.randrange(len(self.live))
                        self.live[j], self.live[-1] = self.live[-1], self.live[j]
                        futures.append(ex.submit(self.delete, *self.live.pop()))
                        done["delete"] += 1
                i += 1
            last = max((f.result() for f in futures), default=time.monotonic())
        wall = last - t0  # until the last request completed: a lagging API server lowers the rate
        sent = done["create"] + done["delete"]
        return {**done, "seconds": wall, "rate": sent / wall}

    def delete_all(self, timeout: float = 300) -> None:
        for ns in self.namespaces:
            self.kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
            self.kube.request("DELETE", f"/api/v1/namespaces/{ns}")
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if all(self.kube.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404 for ns in self.namespaces):
                return
            time.sleep(1)
        say("warning: bench namespaces not gone yet")


# --- the app in a pty --------------------------------------------------------------------------

class ScreenTracker:
    """A terminal emulator (pyte) fed the app's output chunk by chunk, for apps whose screen
    changes can only be recognised on the screen (k9s rewrites just the changed cells)."""

    def __init__(self, app: PtyApp) -> None:
        import pyte

        self.app = app
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.fed = 0

    def wait_for(self, pattern: re.Pattern, since_index: int, timeout: float) -> float | None:
        """Arrival time of the first chunk at or after since_index after which the screen
        matches `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            with self.app._lock:
                chunks, times = self.app.chunks[self.fed:], self.app.times[self.fed:]
            for chunk, t in zip(chunks, times):
                self.stream.feed(chunk)
                self.fed += 1
                if self.fed > since_index and pattern.search("\n".join(self.screen.display)):
                    return t
            if time.monotonic() > deadline:
                return None
            time.sleep(0.002)


class KeyProbe:
    """Key presses and what the terminal saw after each."""

    def __init__(self, app: PtyApp, contender: Contender | None = None) -> None:
        self.app = app
        self.contender = contender or Ambient()
        self.tracker = getattr(app, "tracker", None)  # set for screen-matched contenders
        self.reverse = False
        self.sort_ms: list[float] = []
        self.sort_missed = 0
        self.cursor_first_ms: list[float] = []
        self.cursor_quiet_ms: list[float] = []
        self.down = self.contender.cursor_down_first

    def press_sort(self, timeout: float = 5.0) -> None:
        self.reverse = not self.reverse
        marker = self.contender.sort_marker(self.reverse)
        idx = self.app.n_chunks()
        t = self.app.send(self.contender.sort_key)
        if isinstance(marker, re.Pattern):
            got = self.tracker.wait_for(marker, idx, timeout)
        else:
            got = self.app.wait_for(marker, idx, timeout)
        if got is None:
            self.sort_missed += 1
        else:
            self.sort_ms.append((got - t) * 1000)

    def press_cursor(self, timeout: float = 3.0) -> None:
        key = DOWN if self.down else UP
        self.down = not self.down
        t = self.app.send(key)
        first = self.app.first_output_after(t, timeout)
        quiet = self.app.quiet_after(t, 0.05, timeout)
        if first is not None:
            self.cursor_first_ms.append((first - t) * 1000)
        if quiet is not None:
            self.cursor_quiet_ms.append((quiet - t) * 1000)

    def run(self, presses: int, spacing: float, stop_at: float | None = None) -> None:
        """`presses` keys, cycling sort, down, sort, up; `spacing` s of pause after each."""
        for k in range(presses):
            if stop_at is not None and time.monotonic() >= stop_at:
                break
            if k % 2 == 0:
                self.press_sort()
            else:
                self.press_cursor()
            time.sleep(spacing * (0.5 + random.random()))  # jitter: don't lock to app timers

    def summary(self) -> dict:
        return {"sort_n": len(self.sort_ms), "sort_missed": self.sort_missed,
                "sort_p50": pct(self.sort_ms, 50), "sort_p99": pct(self.sort_ms, 99),
                "sort_max": max(self.sort_ms, default=float("nan")),
                "cur_n": len(self.cursor_first_ms),
                "cur_first_p50": pct(self.cursor_first_ms, 50), "cur_first_p99": pct(self.cursor_first_ms, 99),
                "cur_quiet_p50": pct(self.cursor_quiet_ms, 50), "cur_quiet_p99": pct(self.cursor_quiet_ms, 99)}


def start_app(cp: ControlPlane, profile: str | None, variant: str = "current",
              contender: Contender | None = None) -> PtyApp:
    contender = contender or Ambient()
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "KUBECONFIG", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    if profile:
        env["AMBIENT_TUI_PODS_PROFILE"] = profile
    home = cp.state_dir / f"home-{contender.name}"
    home.mkdir(parents=True, exist_ok=True)
    argv, env = contender.argv_env(str(cp.kubeconfig), home, env)
    return PtyApp(argv, env, str(ROOT), COLS, ROWS)


COUNT = re.compile(rb"\xc2\xb7 (\d+) pods")


def wait_load(below: float = 1.0, max_wait: float = 20.0) -> str:
    """Wait for the 1-minute load average to drop below `below` (at most max_wait s: the
    machine is shared); returns the load seen at the end, for the record."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        if float(loadavg().split()[0]) < below:
            break
        time.sleep(3)
    return loadavg()


def wait_for_count(app: PtyApp, total: int, timeout: float, count: re.Pattern = COUNT) -> float | None:
    """Arrival time of the first status line showing `total` pods (within 1%: a pod or two may
    still be coming or going when the count was read)."""
    deadline = time.monotonic() + timeout
    seen = 0
    if isinstance(count.pattern, str):  # a pattern over the screen: emulate the terminal
        import pyte

        screen = pyte.Screen(COLS, ROWS)
        stream = pyte.ByteStream(screen)
        while time.monotonic() < deadline:
            with app._lock:
                chunks, times = app.chunks[seen:], app.times[seen:]
            for chunk, t in zip(chunks, times):
                stream.feed(chunk)
                for m in count.finditer("\n".join(screen.display)):
                    if abs(int(m.group(1).replace(",", "")) - total) <= max(3, total // 20):
                        return t
            seen += len(chunks)
            time.sleep(0.05)
        say(f"screen at the timeout: {chr(10).join(screen.display[:12])}")
        return None
    while time.monotonic() < deadline:
        with app._lock:
            chunks, times = app.chunks[seen:], app.times[seen:]
        for chunk, t in zip(chunks, times):
            for m in count.finditer(chunk):
                if abs(int(m.group(1)) - total) <= max(1, total // 100):
                    return t
        seen += len(chunks)
        time.sleep(0.05)
    return None


def warm_sort(app: PtyApp, contender: Contender) -> None:
    """k9s: press its sort key once and see which arrow it drew; the probe alternates from
    there (the first press may only choose the column)."""
    tracker = app.tracker = ScreenTracker(app)  # type: ignore[attr-defined]
    for _ in range(2):
        idx = app.n_chunks()
        app.send(contender.sort_key)
        time.sleep(2.0)
        tracker.wait_for(re.compile("."), app.n_chunks(), 0.5)  # feed what came
        text = "\n".join(tracker.screen.display)
        if contender.sort_marker(False).search(text) or contender.sort_marker(True).search(text):
            app.sort_reverse = bool(contender.sort_marker(True).search(text))  # type: ignore[attr-defined]
            return
    say("warning: k9s drew no sort arrow after two presses")


def run_case(cp: ControlPlane, tag: str, n: int, args) -> dict:
    """Create n pods, run every pane variant against them (one after the other), delete them."""
    out: dict = {}
    load = Load(cp, tag, n)
    say(f"[{n}] creating {n} pods in {len(load.namespaces)} namespace(s)")
    create_s = load.create_all()
    running_s = load.wait_running(timeout=900)
    say(f"[{n}] created in {create_s:.1f}s, Running after {running_s:.1f}s more; load {loadavg()}")
    try:
        if args.vs_k9s:  # both apps, alternately, two rounds in opposite order (one with --rounds 1)
            rounds = args.rounds if n <= args.baseline else args.big_rounds
            for r in range(rounds):
                order = [Ambient(), K9s()] if r % 2 == 0 else [K9s(), Ambient()]
                for contender in order:
                    res = run_app(cp, load, n, "current", args, contender)
                    res.update(create_s=create_s, running_s=running_s, round=r + 1)
                    out.setdefault(contender.name, []).append(res)
                    time.sleep(5)
            return out
        for variant in args.variants:
            res = run_app(cp, load, n, variant, args)
            res.update(create_s=create_s, running_s=running_s)
            out[variant] = res
            time.sleep(5)  # let kwok finish the churn's deletes before the next count
    finally:
        say(f"[{n}] deleting the pods")
        load.delete_all()
    return out


def run_app(cp: ControlPlane, load: Load, n: int, variant: str, args,
            contender: Contender | None = None) -> dict:
    contender = contender or Ambient()
    res: dict = {"n": n, "variant": variant, "app": contender.name}
    if not hasattr(load, "first_total"):
        load.first_total = load.settle()  # type: ignore[attr-defined]
    total = load.settle(near=load.first_total)  # type: ignore[attr-defined]
    res["total_pods"] = total
    n = f"{n}/{contender.name if args.vs_k9s else variant}"
    res["start_load"] = wait_load() if args.vs_k9s else loadavg()
    profile = str(Path(args.profile) / f"pods-{res['n']}-{variant}.prof") if args.profile and contender.name == "ambient-tui" else None
    app = start_app(cp, profile, variant, contender)
    t_start = time.monotonic()
    try:
        got = wait_for_count(app, total, timeout=300, count=contender.count)
        if got is None:
            raise RuntimeError(f"the pane never showed {total} pods; last output: "
                               f"{app.text_since(max(0, app.n_chunks() - 3))[-600:]!r}")
        res["first_full_s"] = got - t_start
        res["rss_after_load_mb"] = app.status_kb("VmRSS") / 1024
        say(f"[{n}] pane shows {total} pods after {res['first_full_s']:.2f}s; RSS {res['rss_after_load_mb']:.0f} MB")
        time.sleep(3.0)
        if isinstance(contender, K9s):
            warm_sort(app, contender)  # find which way its name sort points now

        # idle: nothing changes, no keys
        la0 = wait_load() if args.vs_k9s else loadavg()
        c0, t0, w0 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        time.sleep(args.idle)
        c1, t1, w1 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        res["idle_wait"] = 100 * (w1 - w0) / (t1 - t0)
        res["idle_bps"] = app.bytes_between(t0, t1) / (t1 - t0)
        res["idle_cpu"] = 100 * (c1 - c0) / (t1 - t0)
        res["idle_load"] = f"{la0} -> {loadavg()}"
        say(f"[{n}] idle: {res['idle_bps']:.0f} B/s, CPU {res['idle_cpu']:.1f}%")

        # keys, idle
        probe = KeyProbe(app, contender)
        probe.reverse = getattr(app, "sort_reverse", False)
        c0, t0, w0 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        probe.run(args.keys, spacing=0.3)
        c1, t1, w1 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        res["keys_idle_wait"] = 100 * (w1 - w0) / (t1 - t0)
        res["keys_idle"] = probe.summary()
        res["keys_idle_cpu"] = 100 * (c1 - c0) / (t1 - t0)
        say(f"[{n}] keys idle: {json.dumps(res['keys_idle'])}")
        if probe.reverse:  # back to ascending, so the churn starts from the same view
            probe.press_sort()
        reverse = probe.reverse

        # churn, with keys during it
        stop = threading.Event()
        churn_out: dict = {}
        la0 = wait_load() if args.vs_k9s else loadavg()
        c0, t0, w0 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        th = threading.Thread(target=lambda: churn_out.update(load.churn(args.rate, args.churn, stop)))
        th.start()
        probe = KeyProbe(app, contender)
        probe.reverse = reverse
        time.sleep(1.0)
        probe.run(10 ** 6, spacing=args.churn / max(1, args.keys) * 0.6, stop_at=t0 + args.churn - 1)
        th.join()
        c1, t1, w1 = app.cpu_seconds(), time.monotonic(), app.runqueue_wait()
        res["churn_wait"] = 100 * (w1 - w0) / (t1 - t0)
        res["churn"] = churn_out
        res["churn_bps"] = app.bytes_between(t0, t1) / (t1 - t0)
        res["churn_cpu"] = 100 * (c1 - c0) / (t1 - t0)
        res["churn_load"] = f"{la0} -> {loadavg()}"
        res["keys_churn"] = probe.summary()
        say(f"[{n}] churn {churn_out.get('rate', 0):.1f}/s: {res['churn_bps']:.0f} B/s, CPU {res['churn_cpu']:.1f}%, "
            f"keys {json.dumps(res['keys_churn'])}")
        res["peak_rss_mb"] = app.status_kb("VmHWM") / 1024
        res["errors"] = load.errors
    finally:
        rc = app.stop(quit_keys=contender.quit_keys)
        res["exit_code"] = rc
        res["wall_s"] = time.monotonic() - t_start
    say(f"[{n}] app exit code {rc}; peak RSS {res.get('peak_rss_mb', 0):.0f} MB")
    return res


# --- results ---------------------------------------------------------------------------------

def fmt(v: float, unit: str = "", nd: int = 0) -> str:
    if v == float("inf"):
        return "> 5,000 ms"  # presses whose screen change never came within the probe's 5 s
    return "n/a" if v != v else f"{v:,.{nd}f}{unit}"


def sort_p(summary: dict, q: int) -> float:
    """Percentile of the `O` latency counting presses that timed out (> 5 s) as slowest."""
    n, missed = summary["sort_n"], summary["sort_missed"]
    if missed and missed / (n + missed) > (100 - q) / 100:
        return float("inf")
    return summary[f"sort_p{q}"]


def ratio(a: float, b: float) -> str:
    if not a or a != a or b != b or float("inf") in (a, b):
        return "n/a"
    return f"{b / a:.1f}x"


def report(base: dict, big: dict, args, started: str, variant: str) -> str:
    B, G = base, big
    kb_i, kg_i, kb_c, kg_c = B["keys_idle"], G["keys_idle"], B["keys_churn"], G["keys_churn"]
    p99_big = max(sort_p(kg_i, 99), sort_p(kg_c, 99))
    rows = [
        ("key `O` -> changed screen, p50, idle", sort_p(kb_i, 50), sort_p(kg_i, 50), " ms", "", ""),
        ("key `O` -> changed screen, p99, idle", sort_p(kb_i, 99), sort_p(kg_i, 99), " ms", "< 150 ms",
         sort_p(kg_i, 99) < GOALS["p99"]),
        ("key `O` -> changed screen, p50, churn", sort_p(kb_c, 50), sort_p(kg_c, 50), " ms", "", ""),
        ("key `O` -> changed screen, p99, churn", sort_p(kb_c, 99), sort_p(kg_c, 99), " ms", "< 150 ms",
         sort_p(kg_c, 99) < GOALS["p99"]),
        ("cursor key -> first output byte, p50 / p99, idle", None, None, "", "", ""),
        ("cursor key -> output quiet (50 ms), p50 / p99, idle", None, None, "", "", ""),
        ("cursor key -> first output byte, p50 / p99, churn", None, None, "", "", ""),
        ("cursor key -> output quiet (50 ms), p50 / p99, churn", None, None, "", "", ""),
        ("app CPU, idle (no keys)", B["idle_cpu"], G["idle_cpu"], " %", "", ""),
        ("app CPU, churn (keys included)", B["churn_cpu"], G["churn_cpu"], " %", "< 50 %",
         G["churn_cpu"] < GOALS["cpu"]),
        ("peak RSS (VmHWM)", B["peak_rss_mb"], G["peak_rss_mb"], " MB", "< 400 MB",
         G["peak_rss_mb"] < GOALS["rss"]),
        ("bytes/s to the terminal, idle", B["idle_bps"], G["idle_bps"], " B/s", "< 1 KB/s",
         G["idle_bps"] < GOALS["idle"]),
        ("bytes/s to the terminal, churn (keys included)", B["churn_bps"], G["churn_bps"], " B/s", "recorded", ""),
        ("start -> status line shows all pods", B["first_full_s"], G["first_full_s"], " s", "", ""),
    ]
    cursor = {
        "cursor key -> first output byte, p50 / p99, idle": ("keys_idle", "cur_first"),
        "cursor key -> output quiet (50 ms), p50 / p99, idle": ("keys_idle", "cur_quiet"),
        "cursor key -> first output byte, p50 / p99, churn": ("keys_churn", "cur_first"),
        "cursor key -> output quiet (50 ms), p50 / p99, churn": ("keys_churn", "cur_quiet"),
    }
    lines = [
        f"## Pod pane: {variant}",
        "",
        f"Pane variant `{variant}`: {VARIANTS[variant]}.",
        "",
        f"Measured {started} UTC on this machine ({os.cpu_count()} cores, shared with the sandbox's "
        f"API server, etcd and kwok, and with whatever else ran: see the load averages; Linux {platform.machine()}, Python {platform.python_version()}), by "
        "`unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/pods_bench.py'` "
        f"(--pods {args.pods} --baseline {args.baseline} --rate {args.rate:g} --churn {args.churn:g} "
        f"--idle {args.idle:g} --keys {args.keys} --variants {','.join(args.variants)}).",
        "",
        f"`ambient-tui pods --all-namespaces` runs in a real pty ({COLS}x{ROWS}, TERM=xterm-256color, no "
        "COLORTERM) against a sandbox control plane (etcd + kube-apiserver 1.34 + kwok, loopback only); the "
        "benchmark process is the terminal and reads every byte with its arrival time. "
        f"Baseline: {base['total_pods']} pods in the cluster ({args.baseline} bench pods + the aws-node "
        f"DaemonSet's); load: {big['total_pods']} pods. Both in the same run, on the same sandbox, one "
        "after the other.",
        "",
        f"| measure | {base['total_pods']:,} pods | {big['total_pods']:,} pods | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, b, g, unit, goal, met in rows:
        if name in cursor:
            k, pre = cursor[name]
            bb, gg = B[k], G[k]
            lines.append(f"| {name} | {fmt(bb[pre + '_p50'], ' ms')} / {fmt(bb[pre + '_p99'], ' ms')} | "
                         f"{fmt(gg[pre + '_p50'], ' ms')} / {fmt(gg[pre + '_p99'], ' ms')} | "
                         f"{ratio(bb[pre + '_p99'], gg[pre + '_p99'])} (p99) | | |")
            continue
        nd = 2 if unit == " s" else (1 if unit in (" %",) else 0)
        m = "" if met == "" else ("yes" if met else "**no**")
        lines.append(f"| {name} | {fmt(b, unit, nd)} | {fmt(g, unit, nd)} | {ratio(b, g)} | {goal} | {m} |")
    lines += [
        "",
        "Load and counts:",
        "",
        f"- churn achieved: {base['churn'].get('rate', 0):.1f} and {big['churn'].get('rate', 0):.1f} pod "
        f"changes/s over {big['churn'].get('seconds', 0):.0f} s ({big['churn'].get('create', 0)} creates + "
        f"{big['churn'].get('delete', 0)} deletes at {big['total_pods']:,} pods); API errors: "
        f"{base['errors']} / {big['errors']}.",
        f"- key presses measured (sort / cursor): idle {kb_i['sort_n']}/{kb_i['cur_n']} and "
        f"{kg_i['sort_n']}/{kg_i['cur_n']}; churn {kb_c['sort_n']}/{kb_c['cur_n']} and "
        f"{kg_c['sort_n']}/{kg_c['cur_n']}; sort presses whose new arrow never appeared within 5 s: "
        f"{kb_i['sort_missed'] + kb_c['sort_missed']} / {kg_i['sort_missed'] + kg_c['sort_missed']}.",
        f"- worst `O` latency at {big['total_pods']:,} pods: "
        f"{fmt(float('inf') if kg_i['sort_missed'] + kg_c['sort_missed'] else max(kg_i['sort_max'], kg_c['sort_max']), ' ms')}; "
        f"p99 over both phases {fmt(p99_big, ' ms')}.",
        f"- creating the pods: {base['create_s']:.1f} s and {big['create_s']:.1f} s (16 concurrent "
        f"keep-alive clients); kwok had them Running {big['running_s']:.1f} s later.",
        f"- RSS right after the pane showed all pods: {base['rss_after_load_mb']:.0f} MB and "
        f"{big['rss_after_load_mb']:.0f} MB.",
        f"- load average (1/5/15 min) idle phase: {base['idle_load']} and {big['idle_load']}; churn phase: "
        f"{base['churn_load']} and {big['churn_load']}.",
    ]
    if "churn_wait" in base and "churn_wait" in big:  # runs before schedstat was recorded lack it
        lines.append(
            f"- UI thread runnable but waiting for a CPU (run-queue wait, /proc/PID/schedstat), share of "
            f"wall time: idle {fmt(base['idle_wait'], ' %', 1)} and {fmt(big['idle_wait'], ' %', 1)}; keys "
            f"{fmt(base['keys_idle_wait'], ' %', 1)} and {fmt(big['keys_idle_wait'], ' %', 1)}; churn "
            f"{fmt(base['churn_wait'], ' %', 1)} and {fmt(big['churn_wait'], ' %', 1)}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=20000)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--rate", type=float, default=100.0, help="pod changes per second during the churn")
    ap.add_argument("--churn", type=float, default=60.0, help="churn seconds")
    ap.add_argument("--idle", type=float, default=20.0, help="idle seconds measured")
    ap.add_argument("--keys", type=int, default=100, help="key presses per phase")
    ap.add_argument("--profile", metavar="DIR", help="write a cProfile of each app run here")
    ap.add_argument("--variants", default="current",
                    help="comma-separated pane variants: current (screens/pods.py as it is)")
    ap.add_argument("--no-write", action="store_true", help="kept for old command lines: nothing is written")
    ap.add_argument("--vs-k9s", action="store_true",
                    help=f"run ambient-tui and k9s {K9S_VERSION} alternately on the same pods")
    ap.add_argument("--rounds", type=int, default=2, help="--vs-k9s rounds (opposite order each)")
    ap.add_argument("--big-rounds", type=int, default=2, help="--vs-k9s rounds at --pods")
    ap.add_argument("--build-k9s", action="store_true",
                    help="build the pinned k9s from the Go module proxy into the cache, then exit "
                         "(run it outside `unshare --net`)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw numbers as JSON")
    ap.add_argument("--from-json", metavar="FILE", help="no run: write the report from a --json file")
    args = ap.parse_args()
    if args.build_k9s:
        return build_k9s()
    if args.vs_k9s and not args.from_json and not k9s_path().exists():
        print(f"--vs-k9s: no k9s at {k9s_path()}; build it first (outside `unshare --net`): "
              "python bench/pods_bench.py --build-k9s", file=sys.stderr)
        return 2
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        for k, v in data["meta"]["args"].items():
            setattr(args, k, v)
        if args.vs_k9s:
            print(report_vs(data["baseline"], data.get("load"), args, data["meta"]["started"]))
            return 0
        return write_report(data["baseline"], data["load"], args, data["meta"]["started"])
    args.variants = [v for v in args.variants.split(",") if v]
    if not set(args.variants) <= set(VARIANTS):
        print(f"--variants: choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    others = other_interfaces()
    if others:
        print(f"run this inside `unshare --net` (loopback only); interfaces: {', '.join(others)}", file=sys.stderr)
        return 2
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="pods-bench-") as tmp:
        # Pods are bound to the nodes directly; the capacity is raised anyway so the sandbox
        # stays consistent (58 per node would make the node over-committed).
        cp = ControlPlane(state_dir=Path(tmp) / "sandbox", with_aws=False,
                          node_pods=args.pods + args.baseline + 1000)
        cp.start(timeout=180)
        try:
            base = run_case(cp, "base", args.baseline, args)
            if args.json:  # the small scale is kept even if the big one fails
                dump(args, started, base, None)
            big = run_case(cp, "load", args.pods, args) if args.pods else None
        finally:
            cp.stop(quiet=True)
    if args.json:
        dump(args, started, base, big)
    if args.vs_k9s:
        print(report_vs(base, big, args, started))
        return 0
    return write_report(base, big, args, started)


def dump(args, started: str, base, big) -> None:
    meta = {"started": started, "args": {k: getattr(args, k) for k in
                                          ("pods", "baseline", "rate", "churn", "idle", "keys", "variants",
                                           "vs_k9s", "rounds", "big_rounds")}}
    Path(args.json).write_text(json.dumps({"baseline": base, "load": big, "meta": meta}, indent=1, default=str))


def write_report(base: dict, big: dict, args, started: str) -> int:
    """Print the tables; they go into the "Pod pane at 20,000 pods" section of bench/RESULTS.md
    by hand, beside the notes on what they mean."""
    print("\n".join(report(base[v], big[v], args, started, v) for v in args.variants))
    return 0



# --- side by side with k9s ---------------------------------------------------------------------

VS_ROWS = [  # (label, getter, unit, decimals)
    ("sort key -> changed screen, p50, idle", lambda r: sort_p(r["keys_idle"], 50), " ms", 0),
    ("sort key -> changed screen, p99, idle", lambda r: sort_p(r["keys_idle"], 99), " ms", 0),
    ("sort key -> changed screen, p50, churn", lambda r: sort_p(r["keys_churn"], 50), " ms", 0),
    ("sort key -> changed screen, p99, churn", lambda r: sort_p(r["keys_churn"], 99), " ms", 0),
    ("cursor key -> first byte, p99, churn", lambda r: r["keys_churn"]["cur_first_p99"], " ms", 0),
    ("bytes/s to the terminal, churn", lambda r: r["churn_bps"], " B/s", 0),
    ("bytes/s to the terminal, idle", lambda r: r["idle_bps"], " B/s", 0),
    ("CPU, churn", lambda r: r["churn_cpu"], " %", 1),
    ("peak RSS", lambda r: r["peak_rss_mb"], " MB", 0),
    ("start -> all pods on screen", lambda r: r["first_full_s"], " s", 2),
]


def _mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    if not values:
        return float("nan")
    if float("inf") in values:
        return float("inf")
    return sum(values) / len(values)


def report_vs(base: dict, big: dict | None, args, started: str) -> str:
    scales = [("small", base)] + ([("big", big)] if big else [])
    head = "| measure |"
    sep = "|---|"
    for _, case in scales:
        n = case["ambient-tui"][0]["total_pods"]
        head += f" ambient-tui, {n:,} pods | k9s, {n:,} pods | ratio |"
        sep += "---|---|---|"
    lines = [f"## Pod pane vs k9s {K9S_VERSION}", "",
             f"Measured {started} UTC on this machine ({os.cpu_count()} cores, shared with other "
             f"work: load averages below), by `unshare --net sh -c 'ip link set lo up && "
             f".venv/bin/python bench/pods_bench.py --vs-k9s'` (--pods {args.pods} --baseline "
             f"{args.baseline} --rate {args.rate:g} --churn {args.churn:g} --idle {args.idle:g} "
             f"--keys {args.keys} --rounds {args.rounds} --big-rounds {getattr(args, 'big_rounds', args.rounds)}). Values: mean of the rounds (each "
             "round's value in brackets); ratio = ambient-tui / k9s.", "", head, sep]
    for label, get, unit, nd in VS_ROWS:
        row = f"| {label} |"
        for _, case in scales:
            a = [get(r) for r in case["ambient-tui"]]
            k = [get(r) for r in case["k9s"]]
            am, km = _mean(a), _mean(k)
            each = lambda vs: " / ".join(fmt(v, "", nd) for v in vs)  # noqa: E731
            rat = "n/a" if not km or km != km or am != am or float("inf") in (am, km) else f"{am / km:.2f}"
            row += f" {fmt(am, unit, nd)} [{each(a)}] | {fmt(km, unit, nd)} [{each(k)}] | {rat} |"
        lines.append(row)
    lines += ["", "Load averages (1/5/15 min) at each phase start, per run (app, round):", ""]
    for name, case in scales:
        for app in ("ambient-tui", "k9s"):
            for r in case[app]:
                lines.append(f"- {r['total_pods']:,} pods, {app}, round {r['round']}: pods on screen {r['total_pods']}, load: start {r['start_load']}; "
                             f"idle {r['idle_load']}; churn {r['churn_load']}; churn achieved "
                             f"{r['churn'].get('rate', 0):.1f}/s; sort presses missed "
                             f"{r['keys_idle']['sort_missed'] + r['keys_churn']['sort_missed']}; "
                             f"run-queue wait in churn {fmt(r.get('churn_wait', float('nan')), ' %', 1)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
