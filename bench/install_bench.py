"""Benchmark the full helm install on the sandbox: the installer's wall time against the
guide's helm commands (base, istiod, istio-cni, ztunnel, each with --wait, one after another)
run as a generated shell script, on the same cluster, uninstalling between runs.

    unshare --net sh -c 'ip link set lo up && .venv/bin/python bench/install_bench.py --runs 3'

The installer run is the real CLI, `ambient-tui install --yes` from the built charts: it
includes interpreter start, preflight (every check), the journal and the verify steps; it
installs istio-cni and ztunnel together, without helm's --wait, and its Verify phase waits for
all three rollouts with `kubectl rollout status`: both sides end when their waits say the
workloads are Ready. The Gateway API CRDs are applied once before the runs and kept, so neither
side applies them (the guide's four helm commands are the baseline).
Runs interleave, and alternate which side goes first. Writes the "Full install" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.sandbox import build  # noqa: E402
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET  # noqa: E402
from ambient_tui.sandbox.control_plane import ControlPlane  # noqa: E402

from preflight_bench import bench_args, loadavg, write_section  # noqa: E402

GOAL = 1.0
VERSION = "1.31.0"
RELEASES = ["ztunnel", "istio-cni", "istiod", "istio-base"]  # uninstall order


def guide_script(charts: Path) -> str:
    """The guide's helm install, corrected to local charts (no network here), as bash."""
    cmds = [
        ["helm", "install", "istio-base", str(charts / "base"), "-n", "istio-system", "--create-namespace", "--wait"],
        ["helm", "install", "istiod", str(charts / "istiod"), "-n", "istio-system", "--set", "profile=ambient", "--wait"],
        ["helm", "install", "istio-cni", str(charts / "cni"), "-n", "istio-system", "--set", "profile=ambient", "--wait"],
        ["helm", "install", "ztunnel", str(charts / "ztunnel"), "-n", "istio-system", "--wait"],
    ]
    return "set -euo pipefail\n" + "".join(shlex.join(c) + "\n" for c in cmds)


def run(argv, env, timeout=1200) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return time.monotonic() - t0, p


def breakdown(state: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Where the installer's wall time went, from its journal: start-up + preflight (process
    start to the plan record), the helm/kubectl steps, and the verify steps."""
    from ambient_tui.engine.journal import Journal

    [path] = list((state / "ambient-tui" / "journal").glob("*.jsonl"))
    recs = Journal.read(path).records
    plan_ts = next(r["ts"] for r in recs if r["type"] == "plan")
    ends = [r for r in recs if r["type"] == "step-end"]
    verify = [r for r in ends if r["step"].startswith("verify-")]
    install = [r for r in ends if not r["step"].startswith("verify-")]
    out = {"start-up + preflight": plan_ts - t_start,
           "install steps": max(r["ended"] for r in install) - min(r["started"] for r in install),
           "verify steps (together)": max(r["ended"] for r in verify) - min(r["started"] for r in verify)}
    out["exit"] = t_end - max(r["ended"] for r in ends)
    return out


def uninstall(env) -> None:
    rows = json.loads(subprocess.run(["helm", "list", "-A", "-a", "-o", "json"], env=env, capture_output=True,
                                     text=True, check=True).stdout or "[]")
    present = {r["name"] for r in rows if r["namespace"] == "istio-system"}
    for name in RELEASES:
        if name in present:
            subprocess.run(["helm", "uninstall", name, "-n", "istio-system", "--wait", "--timeout", "5m"],
                           env=env, capture_output=True, text=True, check=True)


def main() -> int:
    a = bench_args(default_runs=3)
    if a is None:
        return 1
    charts = build.charts_dir()
    gw = build.gateway_api_dir() / "experimental-install.yaml"
    tool, script = [], []
    parts: dict[str, list[float]] = {}
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="install-bench-") as tmp:
        cp = ControlPlane(state_dir=Path(tmp) / "sandbox")
        cp.start(timeout=180)
        try:
            env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_UNSET}
            env.update(cp.env())
            env.update(HOME=str(cp.state_dir), PYTHONPATH=str(ROOT))
            subprocess.run(["kubectl", "apply", "--server-side", "-f", str(gw)], env=env, check=True,
                           capture_output=True)
            sfile = Path(tmp) / "guide-install.sh"
            sfile.write_text(guide_script(charts))
            for i in range(a.runs):
                order = ["tool", "script"] if i % 2 == 0 else ["script", "tool"]
                for side in order:
                    if side == "tool":
                        state = Path(tmp) / f"state-{i}"
                        wall0 = time.time()
                        t, p = run([sys.executable, "-m", "ambient_tui.cli", "install", "--yes",
                                    "--istio-version", VERSION, "--charts", str(charts)],
                                   {**env, "XDG_STATE_HOME": str(state)})
                        if p.returncode != 0 or "installed Istio" not in p.stdout:
                            print(p.stdout[-3000:], p.stderr[-2000:], file=sys.stderr)
                            return 1
                        tool.append(t)
                        for k, v in breakdown(state, wall0, time.time()).items():
                            parts.setdefault(k, []).append(v)
                    else:
                        t, p = run(["bash", str(sfile)], env)
                        if p.returncode != 0:
                            print(p.stdout[-3000:], p.stderr[-2000:], file=sys.stderr)
                            return 1
                        script.append(t)
                    uninstall(env)
                loads.append(loadavg())
                print(f"run {i + 1}: tool {tool[-1]:.2f}s, script {script[-1]:.2f}s (load {loads[-1]})", flush=True)
        finally:
            cp.stop(quiet=True)
    ratio = statistics.median(tool) / statistics.median(script)
    lines = [
        "## Full install",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine ({os.cpu_count()} cores shared "
        f"with other work, {platform.system()} {platform.machine()}, Python {platform.python_version()}), by "
        f"`python bench/install_bench.py --runs {a.runs}` under `unshare --net`, on its own sandbox control plane "
        f"(kube-apiserver 1.34, 3 kwok nodes), helm 3.22, the built Istio {VERSION} charts. Load average "
        f"(1/5/15 min) before and after each pair: {'; '.join(loads)}.",
        "",
        "| side | runs | median | min | max |",
        "|---|---|---|---|---|",
        f"| `ambient-tui install --yes` (preflight, plan, journal, cni + ztunnel together, 3 rollout-status verify steps) | "
        f"{len(tool)} | {statistics.median(tool):.2f} s | {min(tool):.2f} s | {max(tool):.2f} s |",
        f"| the guide's 4 `helm install --wait` commands as `bash script.sh` | {len(script)} | "
        f"{statistics.median(script):.2f} s | {min(script):.2f} s | {max(script):.2f} s |",
        "",
        f"Ratio (median/median): **{ratio:.2f}** (goal <= {GOAL}: {'met' if ratio <= GOAL else 'not met'}).",
        "",
        "Where the installer's time went (median of its runs, from its journal): " + ", ".join(
            f"{k} {statistics.median(v):.2f} s" for k, v in parts.items()) + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        write_section("Full install", text)
        print(f"wrote {RESULTS_NAME}")
    return 0


RESULTS_NAME = "bench/RESULTS.md"

if __name__ == "__main__":
    sys.exit(main())
