"""Time to the cause: how long after the failing step starts the headless install names why,
and when it ends the wait, per fault class; against helm's own time to report.

Each fault gets a fresh sandbox (real etcd, kube-apiserver, scheduler, controller-manager,
kwok), is made with the `sandbox fault` code (sandbox/faults.py), and `ambient-tui install
--yes --force` from local charts runs in a subprocess whose stdout lines are time-stamped as
they arrive. Measured: "▶ <step>" -> the first "! <step>: ..." cause line (shown), and -> the
"✘ <step> failed" line (the wait ended, helm cancelled). helm's own report of the same fault is
its `--timeout 10m` (600 s; kubectl rollout status --timeout=10m for the DaemonSets): it is not
waited out here, it is read from the plan's flags (no event makes helm report earlier).

TUI (--tui): `ambient-tui` in a real pty (bench/_pty.py), `r` pressed (twice when preflight
fails, as it does for predictable faults); measured from the failing step's step-start in the
journal (wall clock) to the first frame holding the cause mark "⚠" (the checklist row).

Run: unshare --net -- sh -c 'ip link set lo up && exec python bench/diagnose_bench.py [--tui]'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambient_tui.sandbox import build, faults  # noqa: E402
from ambient_tui.sandbox.aws_local import CLIENT_ENV_UNSET  # noqa: E402
from ambient_tui.sandbox.control_plane import ControlPlane  # noqa: E402

HELM_REPORTS_AFTER = 600.0  # helm --timeout 10m in the plan (kubectl rollout status --timeout=10m)
CASES = [  # (label, fault, extra install args builder, failing step)
    ("untolerated taints (every node)", "taints", None, "helm-istiod"),
    ("nodeSelector no node has (values)", None, "nodeselector", "helm-istiod"),
    ("Pod Security restricted", "psa-restricted", None, "helm-istiod"),
    ("pod quota", "pod-quota", None, "helm-istiod"),
    ("LimitRange below istiod's request", "limitrange", None, "helm-istiod"),
    ("Fargate node (DaemonSets)", "fargate", None, "verify-"),
    ("image pull failure (Stage)", "image-pull", None, "helm-istiod"),
    ("crash loop (Stage)", "crash-loop", None, "helm-istiod"),
    ("never Ready (Stage)", "never-ready", None, "helm-istiod"),
]


def run_install(env, charts: Path, gw: Path, extra: list[str]) -> list[tuple[float, str]]:
    p = subprocess.Popen([sys.executable, "-m", "ambient_tui.cli", "install", "--yes", "--force",
                          "--istio-version", build.ISTIO_VERSION, "--charts", str(charts),
                          "--gateway-api-file", str(gw), *extra],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True)
    lines: list[tuple[float, str]] = []
    killer = threading.Timer(400, p.kill)  # a stuck run must not hang the benchmark
    killer.start()
    for line in p.stdout:
        lines.append((time.monotonic(), line.rstrip("\n")))
    p.wait()
    killer.cancel()
    return lines


def measure(lines, step_prefix: str) -> tuple[float | None, float | None, str]:
    start = shown = ended = None
    step = None
    cause = ""
    for t, line in lines:
        if line.startswith("▶ ") and start is None:
            pass
        if step is None and line.startswith("! " + step_prefix):
            step = line[2:].split(":")[0]
        if line.startswith("! " + step_prefix) and shown is None:
            shown, cause = t, line
        if line.startswith("✘ " + step_prefix) and ended is None:
            ended = t
    # The failing step's start: its "▶" line (titles differ from ids: match by the command).
    want = {"helm-istiod": "helm: istiod", "verify-istio-cni": "istio-cni Ready",
            "verify-ztunnel": "ztunnel Ready"}.get(step or "", "")
    for t, line in lines:
        if line.startswith("▶ ") and want and want in line:
            start = t
            break
    if start is None:
        return None, None, cause
    return (shown - start if shown else None), (ended - start if ended else None), cause


def run_tui(env, charts: Path, gw: Path, extra: list[str], state: Path) -> float | None:
    from bench._pty import PtyApp

    env = {**env, "TERM": "xterm-256color"}
    app = PtyApp([sys.executable, "-m", "ambient_tui.cli", "--istio-version", build.ISTIO_VERSION,
                  "--charts", str(charts), "--gateway-api-file", str(gw), *extra], env, str(ROOT), 160, 45)
    offset = time.time() - time.monotonic()
    try:
        if app.first_output_after(0, 60) is None:
            return None
        time.sleep(25)  # preflight runs on mount (~10 s here); r before it ends would only warn
        idx = app.n_chunks()
        app.send(b"r")
        time.sleep(1.5)
        app.send(b"r")  # the second press runs past a failed preflight; harmless otherwise
        seen = app.wait_for("⚠".encode(), idx, 120)
    finally:
        app.stop(b"q")
    recs = []
    for f in (state / "ambient-tui" / "journal").glob("*.jsonl"):
        recs += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    starts = [r["ts"] for r in recs if r.get("type") == "step-start" and r.get("step") == "helm-istiod"]
    if seen is None or not starts:
        return None
    return seen + offset - starts[-1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--charts", type=Path, default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--tui", action="store_true", help="also time the cause in the TUI (a pty)")
    a = ap.parse_args()
    charts = a.charts or build.charts_dir()
    gw = build.gateway_api_dir() / "experimental-install.yaml"
    rows = []
    for label, fault, special, step in CASES:
        if a.only and a.only not in (fault or special or ""):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cp = ControlPlane(state_dir=Path(tmp) / "sb", with_aws=False, out=open(os.devnull, "w"))
            cp.start(timeout=120)
            try:
                env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_UNSET}
                env.update(cp.env())
                env.update(HOME=tmp, XDG_STATE_HOME=f"{tmp}/state", PYTHONPATH=str(ROOT))
                extra: list[str] = []
                if fault:
                    faults.add(cp, fault)
                if special == "nodeselector":
                    v = Path(tmp) / "istiod.yaml"
                    v.write_text("nodeSelector:\n  pool: mesh-only\n")
                    extra = ["--values", f"istiod={v}"]
                lines = run_install(env, charts, gw, extra)
                shown, ended, cause = measure(lines, step)
                tui = None
                if a.tui and step == "helm-istiod":
                    sh = lambda *x: subprocess.run(list(x), env=env, capture_output=True)  # noqa: E731
                    sh("helm", "uninstall", "istiod", "-n", "istio-system")
                    sh("kubectl", "delete", "pods", "-n", "istio-system", "--all", "--wait=false")
                    tui_env = {**env, "XDG_STATE_HOME": f"{tmp}/state-tui"}  # its own journal
                    tui = run_tui(tui_env, charts, gw, extra, Path(tmp) / "state-tui")
            finally:
                cp.stop(quiet=True)
        rows.append({"fault": label, "shown_s": shown, "ended_s": ended, "tui_s": tui, "cause": cause[:160]})
        print(json.dumps(rows[-1]), flush=True)
    print()
    print("| fault class | cause on console | wait ended (helm cancelled) | cause in the TUI (pty) | helm's own report | ratio (helm / ours) | goal <= 10 s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fmt = lambda v: "n/a" if v is None else f"{v:.1f} s"  # noqa: E731
        ratio = f"{HELM_REPORTS_AFTER / r['shown_s']:.0f}x" if r["shown_s"] else "n/a"
        met = "yes" if r["shown_s"] is not None and r["shown_s"] <= 10 else "no"
        print(f"| {r['fault']} | {fmt(r['shown_s'])} | {fmt(r['ended_s'])} | {fmt(r['tui_s'])} | 600 s (--timeout 10m) | {ratio} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
