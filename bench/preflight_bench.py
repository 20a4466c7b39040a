"""Benchmark preflight: wall time of all checks run together (the concurrent runner) against
the sum of each check run alone, on a sandbox control plane of its own, loopback only.

Run it in a network namespace with only lo up:

    unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/preflight_bench.py --runs 5'

Each "alone" run gets a fresh CheckContext, as a person running one check would: so it pays
for its own cluster connection and its own AWS clients, which is the cost the shared context
saves. Every measured run, together or alone, starts as a new process would: without AWS
clients (boto3 keeps one client per service in the process) and without garbage from earlier
runs (a gc.collect() first; until 2026-11-26 10:30 UTC dropped sessions piled up and full
collections of them landed in random runs). Imports are warmed once for both sides; the tool
version cache is warm, as on every run after a person's first.
--reuse-aws-clients measures as this benchmark did until 2026-11-26 08:45 UTC: the warm-up
run's clients kept for every run.
--latency-ms 0,5,20 measures each round trip in turn, on a sandbox of its own: 0 is direct on
loopback, N > 0 puts the sandbox's latency relay (N ms round trip, as to a remote cluster)
between the checks and the API server and AWS endpoint. One table row per round trip.
Runs interleave (together, then the singles) so load from other work hits both sides alike.
Writes the "Preflight" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.sandbox import build  # noqa: E402
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET  # noqa: E402
from ambient_tui.sandbox.control_plane import ControlPlane  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
GOAL = 0.4
VERSION = "1.31.0"


def sandbox_environ(cp: ControlPlane) -> None:
    """Point this process (the checks read os.environ) at the sandbox, as admin_env does."""
    for k in CLIENT_ENV_UNSET:
        os.environ.pop(k, None)
    os.environ.update(cp.env())
    os.environ["HOME"] = str(cp.state_dir)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_section(title: str, text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pat.sub(lambda _: text, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new)


def bench_args(default_runs: int, extra=None):
    """--runs and --no-write; None (after saying why) when the sandbox parts are not built."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=default_runs)
    ap.add_argument("--no-write", action="store_true")
    if extra:
        extra(ap)
    a = ap.parse_args()
    if build.missing():
        print("parts missing; run python -m ambient_tui.sandbox.build", file=sys.stderr)
        return None
    return a


def measure(latency_ms: float, runs: int, fresh_process_state) -> dict | None:
    """Together and alone runs on a sandbox of its own with this round trip; None if a check fails."""
    from ambient_tui.checks.core import ALL
    from ambient_tui.checks.model import CheckContext
    from ambient_tui.checks.runner import run_checks
    from ambient_tui.settings import Settings

    together, alone = [], []
    per_check: dict[str, list[float]] = {c[0]: [] for c in ALL}
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        cp = ControlPlane(state_dir=Path(tmp) / "sandbox", latency_ms=latency_ms)
        cp.start(timeout=180)
        saved_environ = dict(os.environ)  # the next sandbox needs the real HOME (its parts cache)
        try:
            sandbox_environ(cp)
            settings = Settings(istio_version=VERSION)
            run_checks(CheckContext(settings), ALL)  # warm imports (kubernetes, boto3) once
            for i in range(runs):
                fresh_process_state()
                t0 = time.monotonic()
                res = run_checks(CheckContext(settings), ALL)
                together.append(time.monotonic() - t0)
                bad = [c.id for c in res if c.status == "fail"]
                if bad:
                    print(f"checks failed on the sandbox: {bad}", file=sys.stderr)
                    return None
                total = 0.0
                for spec in ALL:
                    fresh_process_state()
                    t0 = time.monotonic()
                    run_checks(CheckContext(settings), [spec])
                    dt = time.monotonic() - t0
                    per_check[spec[0]].append(dt)
                    total += dt
                alone.append(total)
                loads.append(loadavg())
                print(f"{latency_ms:g} ms, run {i + 1}: together {together[-1]:.2f}s, sum alone "
                      f"{alone[-1]:.2f}s (load {loads[-1]})", flush=True)
        finally:
            cp.stop(quiet=True)
            os.environ.clear()
            os.environ.update(saved_environ)
    return {"latency": latency_ms, "together": together, "alone": alone, "per_check": per_check,
            "loads": loads, "ratio": statistics.median(together) / statistics.median(alone)}


def main() -> int:
    from ambient_tui.aws import eks
    from ambient_tui.checks.core import ALL

    def options(ap) -> None:
        ap.add_argument("--reuse-aws-clients", action="store_true", help="keep the warm-up run's AWS clients")
        ap.add_argument("--latency-ms", default="0",
                        help="round trips to the API server and AWS to measure, comma-separated (0: direct)")
    a = bench_args(default_runs=5, extra=options)
    if a is None:
        return 1
    latencies = [float(x) for x in a.latency_ms.split(",")]

    def fresh_process_state() -> None:
        if not a.reuse_aws_clients:
            eks.forget_clients()
        gc.collect()
    results = []
    for latency in latencies:
        r = measure(latency, a.runs, fresh_process_state)
        if r is None:
            return 1
        results.append(r)

    def med(xs) -> str:
        return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"
    lines = [
        "## Preflight",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine ({os.cpu_count()} cores shared "
        f"with other work, {platform.system()} {platform.machine()}, Python {platform.python_version()}), by "
        f"`python bench/preflight_bench.py --runs {a.runs} --latency-ms {a.latency_ms}` under `unshare --net` "
        f"(loopback only). Each round trip has a sandbox control plane of its own (kube-apiserver 1.34, kwok "
        f"nodes, moto), reached direct (0 ms) or through the sandbox's latency relay; Istio {VERSION}, "
        f"{len(ALL)} checks including `istioctl x precheck`; "
        f"{'AWS clients kept from the warm-up run' if a.reuse_aws_clients else 'each run starting as a new process would (no AWS clients, no garbage)'}. "
        "Median (min-max) of the runs; ratio = median together / median sum alone.",
        "",
        "| round trip | runs | all checks together | sum of each check alone | ratio | goal <= 0.4 | istioctl x precheck alone |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['latency']:g} ms | {len(r['together'])} | {med(r['together'])} | {med(r['alone'])} | "
                     f"**{r['ratio']:.3f}** | {'met' if r['ratio'] <= GOAL else 'not met'} | "
                     f"{statistics.median(r['per_check']['istioctl-precheck']):.2f} s |")
    lines.append("")
    for r in results:
        lines.append(f"Each check alone at {r['latency']:g} ms (median): " + ", ".join(
            f"{k} {statistics.median(v):.2f} s"
            for k, v in sorted(r["per_check"].items(), key=lambda kv: -statistics.median(kv[1]))) + ".")
        lines.append("")
    lines.append("Load average (1/5/15 min) before and after each run: " + " | ".join(
        f"{r['latency']:g} ms: " + "; ".join(r["loads"]) for r in results) + ".")
    lines += ["", ""]  # a blank line before the next section
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        write_section("Preflight", text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
