"""Before a namespace is enrolled: would its live NetworkPolicies break the mesh there?

The namespace's live policies are linted as if it were enrolled already (live pods,
istio-cni's excluded namespaces, the CNI). An error finding (HBONE blocked either way,
probes blocked where the CNI enforces) stops that enrolment with the finding and its
fix, unless forced. Used by the install plan's enrol phase and by the TUI.
"""

from __future__ import annotations

from typing import Any

from .cluster import ClusterError, NetpolCluster
from .lint import ERROR, Finding, lint
from .live import load

BLOCKING = ("hbone-blocked", "egress-hbone-blocked", "probe-blocked")


class EnrolmentBlocked(Exception):
    """A live policy would drop mesh traffic once the namespace is enrolled."""

    def __init__(self, namespace: str, findings: list[Finding]) -> None:
        self.namespace = namespace
        self.findings = findings
        super().__init__(describe(namespace, findings))


def enrolment_findings(kube: NetpolCluster, namespace: str,
                       istio_namespace: str = "istio-system") -> list[Finding]:
    """Blocking findings for `namespace` if it were enrolled now (empty: safe to enrol).
    ClusterError (403, unreachable) propagates: an unreadable namespace is not judged safe."""
    live = load(kube, [namespace], istio_namespace=istio_namespace)
    ctx = live.context()
    ctx.enrolled = set(ctx.enrolled) | {namespace}  # type: ignore[arg-type]
    docs = [d for d in live.policies if d.namespace == namespace]
    return [f for f in lint(docs, context=ctx) if f.severity == ERROR and f.rule in BLOCKING]


def describe(namespace: str, findings: list[Finding]) -> str:
    first = findings[0]
    text = (f"enrolling {namespace} would break the mesh there: {len(findings)} blocking "
            f"NetworkPolicy finding(s). {first.rule} [{first.policy}]: {first.message}")
    if first.fix:
        text += f" Fix: {first.fix.title} (`ambient-tui netpol lint --cluster -n {namespace}` " \
                "shows the YAML; the editor applies it)."
    return text + " Or pass --force-enroll to enrol anyway."


def gate_argv(settings: Any, namespace: str) -> list[str]:
    """The install plan's gate step before `enroll-<namespace>`: `ambient-tui netpol gate`, run
    as a command so it gets the plan's KUBECONFIG and shows in the runbook as it ran."""
    import sys

    argv = [sys.executable, "-m", "ambient_tui.cli", "netpol", "gate", namespace,
            "--istio-namespace", getattr(settings, "namespace", "istio-system")]
    if getattr(settings, "context", None):
        argv += ["--context", settings.context]
    if getattr(settings, "force_enroll", False):
        argv.append("--force")
    return argv
