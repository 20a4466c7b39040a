"""The `istioctl x precheck` check: run it against the checked context, parse its findings.

precheck prints findings (`Error [IST0156] (Kind ns/name) message`) on stdout and exits 1 when
any is a Warning or worse; with nothing to report it prints "✔ No issues found" on stderr and
exits 0. It colours its level words even into a pipe, so the parser strips ANSI codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ambient_tui.checks import parsers
from ambient_tui.checks.model import FAIL, PASS, WARN, Check, CheckContext, Skip

CHECK_ID = "istioctl-precheck"
TITLE = "istioctl x precheck"
TIMEOUT = 45.0  # precheck's own client timeout is 15 s per call
ANALYSIS_URL = "https://istio.io/latest/docs/reference/config/analysis/{code}/"
# Findings about the Gateway API CRDs have a known fix: the catalogue's CRDs, server-side.
GATEWAY_API_CODES = {"IST0156", "IST0172"}


def precheck_argv(exe: str, kubeconfig: str | None, context: str | None, namespace: str) -> list[str]:
    argv = [exe, "x", "precheck", "--istioNamespace", namespace]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    return argv


def _first_error_line(text: str) -> str:
    for line in parsers.strip_ansi(text).splitlines():
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    lines = [l.strip() for l in parsers.strip_ansi(text).splitlines() if l.strip()]
    return lines[-1] if lines else ""


def decide(returncode: int, stdout: str, stderr: str, gateway_api_fix: str = "") -> Check:
    """The check from precheck's exit code and output (pure: unit-tested on recorded output)."""
    findings = parsers.parse_precheck(stdout)
    errors = [f for f in findings if f["level"] == "error"]
    warnings = [f for f in findings if f["level"] == "warning"]
    data = {"findings": findings}
    if not findings:
        if returncode == 0:
            return Check(CHECK_ID, TITLE, PASS, "no issues found; Istio is safe to install or upgrade",
                         data=data)
        # precheck itself could not run (e.g. forbidden to list CRDs): not a finding, but unknown.
        why = _first_error_line(stderr or stdout) or f"exit code {returncode}"
        return Check(CHECK_ID, TITLE, WARN, f"precheck could not finish: {why}",
                     "run `istioctl x precheck` with a cluster-admin identity to see its findings",
                     data=data)
    shown = errors + warnings or findings
    detail = "; ".join(f"{f['level']} {f['code']}" + (f" ({f['resource']})" if f["resource"] else "")
                       + f": {f['message']}" for f in shown)
    counts = f"{len(errors)} error(s), {len(warnings)} warning(s)"
    codes = sorted({f["code"] for f in shown})
    fixes = []
    if gateway_api_fix and GATEWAY_API_CODES & set(codes):
        fixes.append(gateway_api_fix)
    fixes.append("see " + ", ".join(ANALYSIS_URL.format(code=c.lower()) for c in codes))
    status = FAIL if errors else (WARN if warnings else PASS)
    return Check(CHECK_ID, TITLE, status, f"{counts}: {detail}", "; ".join(fixes), data=data)


def istioctl_precheck(ctx: CheckContext) -> Check:
    env = {**os.environ, **(ctx.env or {})}
    exe = shutil.which("istioctl", path=env.get("PATH"))
    if not exe:
        raise Skip("istioctl not found on PATH; see the istioctl check")
    context, _server = ctx.kube_context()
    env["NO_COLOR"] = "1"
    argv = precheck_argv(exe, ctx.kubeconfig, context, ctx.settings.namespace)
    # The longest check: it starts at once, from the kubeconfig alone, while this process is
    # still connecting. If the cluster turns out unreachable it is stopped and skipped.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # a credential plugin gets no terminal
    try:
        ctx.cluster()
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return Check(CHECK_ID, TITLE, WARN, f"istioctl x precheck did not finish within {TIMEOUT:g}s",
                     "run `istioctl x precheck` by hand")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    gw = ctx.release.gateway_api
    gw_fix = f"kubectl apply --server-side -f {gw.url(ctx.catalog.gateway_api_url)}"
    return decide(proc.returncode, out, err, gw_fix)
