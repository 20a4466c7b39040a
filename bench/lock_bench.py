"""Benchmark the cluster lock's round trip on the sandbox: take (GET + create/PUT), renew (GET +
PUT), release (GET + PUT), against a baseline of one plain GET of the same Lease in the same run.

    unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/lock_bench.py --runs 50'

Each run takes the lock, renews it once and releases it, timing each call; the baseline GET
runs interleaved, so both see the same load. The ratio says how many API round trips each
operation costs (each is two: a read for the resourceVersion, then the write). Writes the
"Cluster lock" section of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.cluster import lease  # noqa: E402
from ambient_tui.cluster.client import load_client  # noqa: E402
from ambient_tui.sandbox.control_plane import ControlPlane  # noqa: E402

from preflight_bench import bench_args, loadavg, write_section  # noqa: E402


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.1f} ms / {sorted(xs)[int(len(xs) * 0.95) - 1] * 1000:.1f} ms"


def main() -> int:
    a = bench_args(50)
    if a is None:
        return 1
    state = Path(tempfile.mkdtemp(prefix="lock-bench-"))
    cp = ControlPlane(state_dir=state / "sandbox")
    cp.start(timeout=180)
    try:
        kube = load_client(str(cp.kubeconfig), cp.admin_context)
        lease.read_lease(kube)  # warm the connection pool
        times: dict[str, list[float]] = {"get": [], "take": [], "renew": [], "release": []}
        load0 = loadavg()
        for _ in range(a.runs):
            t = time.perf_counter()
            lease.read_lease(kube)
            times["get"].append(time.perf_counter() - t)
            lock = lease.ClusterLock(kube, "bench", duration=3600)  # no renewal thread tick
            t = time.perf_counter()
            lock.acquire()
            times["take"].append(time.perf_counter() - t)
            t = time.perf_counter()
            assert lock.renew()
            times["renew"].append(time.perf_counter() - t)
            t = time.perf_counter()
            lock.release()
            times["release"].append(time.perf_counter() - t)
        load1 = loadavg()
    finally:
        cp.stop(quiet=True)
    base = statistics.median(times["get"])
    rows = [f"| {name} | {ms(times[name])} | {statistics.median(times[name]) / base:.1f}x |"
            for name in ("get", "take", "renew", "release")]
    whole = [sum(x) for x in zip(times["take"], times["renew"], times["release"])]
    text = (f"## Cluster lock\n\n"
            f"Command: `unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/lock_bench.py --runs {a.runs}'`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()} ({os.cpu_count()} cores), "
            f"load average {load0} -> {load1}. The sandbox API server on loopback (etcd, kube-apiserver 1.34); "
            f"{a.runs} runs; baseline: one GET of the Lease, interleaved.\n\n"
            "| operation | median / p95 | vs GET (median) |\n|---|---|---|\n" + "\n".join(rows) + "\n"
            f"| take + renew + release | {ms(whole)} | {statistics.median(whole) / base:.1f}x |\n\n"
            "Each operation is a GET for the resourceVersion plus one write (an etcd commit, which "
            "costs more than a read); take also starts the renewal thread. Renewal runs in that "
            "thread every third of the lease duration (10 s of 30 s) and never delays a step; the "
            "whole round trip is paid once per run.\n")
    print(text)
    if not a.no_write:
        write_section("Cluster lock", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
